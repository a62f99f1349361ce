"""Site B stopped for 30 s in the middle of the scenario (issue 16).

Two sites over the HTTP bridge (``sites``: ODL on the embedded broker,
OPNFV on RabbitMQ). Each site's "engine side" is its aggregator (trace
queue -> graph) plus a worker of the scenario: OPNFV's baselines and tests
every ODL artifact it holds (CompositionDefined, ConfidenceLevelModified
``community-b-tested``), ODL promotes its artifact (its own
ConfidenceLevelModified ``odl-promoted``) when OPNFV's verdict on it is in
its graph. OPNFV's bridge, aggregator and worker are all stopped for at
least 30 s (measured) while ODL keeps publishing changes and artifacts;
when OPNFV returns, every event arrives exactly once (counted by type and
by id in both graphs), each artifact is promoted on OPNFV's verdict, and
neither site has a dead letter.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from engine.trace import trace_up
from tests.federation.conftest import Site
from tests.federation.test_two_sites import (
    EXAMPLES,
    example,
    odl_change_and_artifact,
    opnfv_verdict,
)
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not EXAMPLES.is_dir(), reason=f"no Eiffel conformance examples at {EXAMPLES}"
    ),
]

OUTAGE = 30.0


class Worker:
    """A scenario worker of one site: ``step()`` every ``interval`` in a
    thread until stopped (each event it publishes, it publishes once)."""

    def __init__(self, step: Callable[[], None], interval: float = 0.05) -> None:
        self.step, self.interval = step, interval
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> Worker:
        self.stop_event.clear()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.step()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(10)
            self.thread = None


def opnfv_tester(opnfv: Site, artifacts: list[str], verdicts: dict[str, dict[str, Any]]) -> Worker:
    """OPNFV's worker: a baseline and a verdict for each ODL artifact in its graph."""

    def step() -> None:
        for aid in list(artifacts):
            if aid in verdicts or not opnfv.graph.exists(aid):
                continue
            comp, clm = opnfv_verdict(aid)
            opnfv.bus.publish([comp, clm])
            verdicts[aid] = {"composition": comp, "verdict": clm}

    return Worker(step)


def odl_promoter(odl: Site, artifacts: list[str], promotions: dict[str, dict[str, Any]]) -> Worker:
    """ODL's worker: its artifact promoted once OPNFV's verdict on it is at ODL."""

    def step() -> None:
        for aid in list(artifacts):
            if aid in promotions:
                continue
            levels = trace_up(odl.graph, aid)["confidence_levels"]
            if not any(
                e["data"].get("name") == "community-b-tested"
                and e["meta"]["source"]["domainId"] == "opnfv"
                for e in levels
            ):
                continue
            promo = example(
                "ConfidenceLevelModified",
                domain="odl",
                links=[("SUBJECT", aid)],
                name="odl-promoted",
            )
            odl.bus.publish(promo)
            promotions[aid] = promo

    return Worker(step)


def test_site_b_down_for_30_seconds_loses_and_doubles_nothing(sites: tuple[Site, Site]) -> None:
    odl, opnfv = sites
    artifacts: list[str] = []
    changes: list[str] = []
    verdicts: dict[str, dict[str, Any]] = {}
    promotions: dict[str, dict[str, Any]] = {}
    tester = opnfv_tester(opnfv, artifacts, verdicts).start()
    promoter = odl_promoter(odl, artifacts, promotions).start()

    def publish_one() -> str:
        scc, art = odl_change_and_artifact()
        odl.bus.publish([scc, art])
        changes.append(scc["meta"]["id"])
        artifacts.append(art["meta"]["id"])
        return str(art["meta"]["id"])

    try:
        # the scenario once with both sites up
        first = publish_one()
        wait_for(lambda: first in promotions, 30, "the first artifact promoted at ODL")

        # OPNFV down: its bridge, its aggregator and its worker
        tester.stop()
        opnfv.stop_bridge()
        opnfv.stop_aggregator()
        down = time.monotonic()
        sender = odl.bridge.senders[0]  # type: ignore[union-attr]
        failures = sender.stats.failures
        during: list[str] = []
        # ODL keeps publishing, one change and artifact a second, until the
        # outage has lasted OUTAGE seconds (a wait on a deadline)
        deadline = down + OUTAGE
        tick = threading.Event()
        while time.monotonic() < deadline:
            during.append(publish_one())
            tick.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        assert not any(opnfv.graph.exists(a) for a in during)
        assert sender.stats.failures > failures  # ODL's sender kept trying
        assert all(a not in promotions for a in during)

        # OPNFV back
        opnfv.start_aggregator()
        opnfv.start_bridge()
        tester.start()
        outage = time.monotonic() - down
        assert outage >= OUTAGE
        back = time.monotonic()
        wait_for(
            lambda: all(opnfv.graph.exists(a) for a in artifacts), 60, "every artifact at OPNFV"
        )
        arrived = time.monotonic() - back
        wait_for(lambda: len(promotions) == len(artifacts), 60, "every artifact promoted at ODL")
        promoted = time.monotonic() - back
        tester.stop()
        promoter.stop()
        promos = [p["meta"]["id"] for p in promotions.values()]
        wait_for(lambda: all(odl.graph.exists(p) for p in promos), 30, "the promotions stored")
        print(
            f"\noutage {outage:.1f}s, {len(during)} artifacts published meanwhile; "
            f"all {len(artifacts)} at OPNFV {arrived:.2f}s after it returned, "
            f"all promoted at ODL {promoted:.2f}s after"
        )

        n = len(artifacts)
        assert n == len(during) + 1 >= 30
        comps = {v["composition"]["meta"]["id"] for v in verdicts.values()}
        levels = {v["verdict"]["meta"]["id"] for v in verdicts.values()}
        # OPNFV's own aggregator stores its baselines and verdicts apart from
        # the bridge that took them to ODL
        wait_for(
            lambda: all(opnfv.graph.exists(x) for x in comps | levels),
            30,
            "OPNFV's baselines and verdicts in its own graph",
        )
        # OPNFV's graph: ODL's artifacts (not its changes), its own baselines
        # and verdicts, each exactly once; none of ODL's promotions
        assert opnfv.graph.count("EiffelArtifactCreatedEvent") == n
        assert set(opnfv.graph.ids_by_type("ArtifactCreated", limit=10 * n)) == set(artifacts)
        assert opnfv.graph.count("EiffelSourceChangeCreatedEvent") == 0
        assert set(opnfv.graph.ids_by_type("CompositionDefined", limit=10 * n)) == comps
        assert set(opnfv.graph.ids_by_type("ConfidenceLevelModified", limit=10 * n)) == levels
        assert opnfv.graph.count("EiffelConfidenceLevelModifiedEvent") == n
        assert opnfv.graph.stats()["events"] == 3 * n
        # ODL's graph: its changes, artifacts and promotions, OPNFV's
        # baselines and verdicts, each exactly once
        assert set(odl.graph.ids_by_type("SourceChangeCreated", limit=10 * n)) == set(changes)
        assert set(odl.graph.ids_by_type("ArtifactCreated", limit=10 * n)) == set(artifacts)
        assert set(odl.graph.ids_by_type("CompositionDefined", limit=10 * n)) == comps
        assert set(odl.graph.ids_by_type("ConfidenceLevelModified", limit=10 * n)) == (
            levels | set(promos)
        )
        assert odl.graph.stats()["events"] == 5 * n
        # each promotion came after OPNFV's verdict on its artifact
        for aid, promo in promotions.items():
            assert promo["meta"]["time"] >= verdicts[aid]["verdict"]["meta"]["time"]
            up = trace_up(odl.graph, changes[artifacts.index(aid)])
            names = sorted(e["data"]["name"] for e in up["confidence_levels"])
            assert names == ["community-b-tested", "odl-promoted"], names
        assert odl.deadletters() == [] and opnfv.deadletters() == []
    finally:
        tester.stop()
        promoter.stop()
