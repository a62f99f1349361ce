"""The OpenCI scenario split over two real BOSS sites (issue 16, item 5).

Each site is a whole installation, as an operator would run it: its own
broker (a RabbitMQ vhost, or the embedded broker for community A in the
second variant), its own store and graph (a key prefix), a ``boss worker``
process (engine threads, and its aggregator child that stores the events
and fires the triggers), its own participant processes
(``participants.runtime``), its triggers (``boss triggers add``) and its
``boss federate serve`` bridge; the bridges talk CloudEvents over HTTP.

* community A: ``openci_a_build`` (git, build, Eiffel publishers) and
  ``openci_a_promote`` (triggered by B's verdict);
* community B: ``openci_b_baseline`` (triggered by A's artifact; its test
  participant) and the same process for a CDEvents producer's artifact;
* a third "site", a CDEvents producer (``cdevents_producer.py``, as a
  Tekton or Jenkins plugin): it posts ``artifact.packaged`` to B's
  endpoint with a bearer token, and B baselines and tests that artifact.

The test shows the whole chain across the boundary, ``boss trace up`` and
lead time at A, the placeholders of A's unshared events at B, each run once
and nothing dead-lettered at either site.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import kombu
import pytest

from engine.broker import list_deadletters
from engine.core import states
from engine.trace import TraceTopology, lead_time, trace_down, trace_up, unshared_event
from engine.trace.activity import activity_id
from engine.trace.aggregator import graph_prefix
from engine.trace.graph import Graph
from tests.e2e.conftest import System
from tests.federation.conftest import free_port
from tests.standard.conftest import HANDLERS, standard_participant
from tests.standard.gitrepo import make_repo
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
OPENCI = ROOT / "processes" / "openci"
PRODUCER = Path(__file__).with_name("cdevents_producer.py")
SECRET = "community-a-and-b-shared-secret"
TOKEN = "tekton-bearer-token"
A, B, TEKTON = "community-a", "community-b", "tekton.example"
GIT = "git_(clone|commits|source_change)"
EIFFEL = (
    "artifact_created|artifact_published|composition_defined|baseline_defined|"
    "confidence_level_modified"
)
#: a busy machine: every wait is on a condition, with a generous deadline
SLOW = 180


@dataclass
class SiteSystem(System):
    """A ``System`` (tests/e2e/conftest.py) that is one federated site: its
    ``[boss] eiffel_domain`` and a ``[federation]`` section in its ini."""

    site: str = ""
    port: int = 0
    federation: str = ""

    def __post_init__(self) -> None:
        self.settings = {**self.settings, "eiffel_domain": self.site}
        super().__post_init__()
        self.ini.write_text(self._boss_section() + self.federation)
        self.graph = Graph(self.store.client, prefix=graph_prefix(self.config))

    def _boss_section(self) -> str:
        return super()._boss_section() + f"eiffel_domain = {self.site}\n"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/federation/v1/events"

    def bridge(self) -> None:
        """``boss federate setup``, then ``boss federate serve`` until its
        health answers."""
        self.boss("federate", "setup")
        cmd = [sys.executable, "-m", "bossapp.cli", "-c", str(self.ini), "federate", "serve"]
        proc = self._spawn("bridge", cmd)

        def healthy() -> bool:
            assert proc.alive(), self.logs()
            url = f"http://127.0.0.1:{self.port}/federation/v1/health"
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_for(healthy, SLOW, f"{self.site}'s bridge to answer")

    def fields(self, wfid: str) -> dict[str, Any]:
        loaded = self.store.load_run(wfid)
        assert loaded is not None, wfid
        return loaded[0]["fields"]

    def trace(self, *args: str) -> Any:
        return json.loads(self.boss("trace", *args, "--json").stdout)

    def deadletters(self) -> dict[str, list[dict[str, Any]]]:
        """The engine's and the trace's dead letters (none is consumed)."""
        with kombu.Connection(self.config.resolved_broker_url()) as conn:
            return {
                "engine": list_deadletters(self.config, conn),
                "trace": list_deadletters(TraceTopology(self.config).deadletter_config, conn),
            }


def _federation(port: int, prefix: str, peers: dict[str, dict[str, str]], extra: str = "") -> str:
    text = (
        f"\n[federation]\nbind = 127.0.0.1:{port}\npeers = {', '.join(peers)}\n"
        f"queue_prefix = {prefix}.fed\nin_queue_prefix = {prefix}.fedin\n"
        "retry_initial = 0.2\nretry_max = 2\nlinger = 0.05\n" + extra
    )
    for name, keys in peers.items():
        text += f"\n[federation.peer.{name}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
    return text


def _rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    assert ctl, "rabbitmqctl is needed to make the sites' vhosts"
    subprocess.run([ctl, "-q", *args], check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def rabbitmq_vhost(base_url: str, name: str) -> Iterator[str]:
    """A vhost of its own on the machine's RabbitMQ (deleted afterwards)."""
    parts = urlsplit(base_url)
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, parts.username or "guest", ".*", ".*", ".*")
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    finally:
        with contextlib.suppress(Exception):
            _rabbitmqctl("delete_vhost", name)


#: whether site A shares every event of its own with B (the embedded
#: variant), or only its artifacts (``ART_TYPES``)
SHARES_ALL = {"rabbitmq+rabbitmq": False, "embedded+rabbitmq": True}
ART_TYPES = "ArtifactCreated, ArtifactPublished"


@pytest.fixture(params=list(SHARES_ALL))
def openci_sites(
    request: pytest.FixtureRequest, rabbitmq_url: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[SiteSystem, SiteSystem]]:
    """``(A, B)``: two sites with their workers, participants, triggers and
    bridges running; B also knows the CDEvents producer (``tekton``)."""
    if not shutil.which("rabbitmqctl"):
        pytest.skip("rabbitmqctl is needed to make a vhost per site")
    tag = uuid.uuid4().hex[:8]
    ports = {A: free_port(), B: free_port()}
    made: list[SiteSystem] = []
    with contextlib.ExitStack() as stack:
        brokers = {
            B: stack.enter_context(rabbitmq_vhost(rabbitmq_url, f"boss-openci-{tag}-b")),
            A: (
                request.getfixturevalue("embedded_broker_url")
                if request.param.startswith("embedded")
                else stack.enter_context(rabbitmq_vhost(rabbitmq_url, f"boss-openci-{tag}-a"))
            ),
        }
        prefixes = {A: f"oca{tag}", B: f"ocb{tag}"}
        peers = {
            A: {
                B: {
                    "url": f"http://127.0.0.1:{ports[B]}/federation/v1/events",
                    "secret": SECRET,
                    # the embedded variant: A shares all of its own (its
                    # sources and its promotion too), else only its artifacts
                    "publish_type": "" if SHARES_ALL[request.param] else ART_TYPES,
                    "accept_type": "CompositionDefined, ConfidenceLevelModified",
                },
            },
            B: {
                A: {
                    "url": f"http://127.0.0.1:{ports[A]}/federation/v1/events",
                    "secret": SECRET,
                    "publish_type": "CompositionDefined, ConfidenceLevelModified",
                    "publish_data": "name=~^community-b",
                    "accept_type": "" if SHARES_ALL[request.param] else ART_TYPES,
                },
                "tekton": {
                    "domain": TEKTON,
                    "token": TOKEN,
                    "accept_type": "ArtifactCreated",
                },
            },
        }
        try:
            for site in (A, B):
                tmp = tmp_path / site
                (tmp / "processes").mkdir(parents=True)
                shutil.copytree(OPENCI, tmp / "processes" / "openci")
                made.append(
                    SiteSystem(
                        tmp,
                        brokers[site],
                        redis_url,
                        prefixes[site],
                        site=site,
                        port=ports[site],
                        federation=_federation(ports[site], prefixes[site], peers[site]),
                    )
                )
            a, b = made
            for s in made:
                s.bridge()
                s.worker()
            _community_a(a, tmp_path)
            _community_b(b)
            yield a, b
        finally:
            failed = getattr(request.node, "rep_call", None)
            if failed is not None and failed.failed:
                for s in made:
                    print(f"######## site {s.site}\n{s.logs()}")
            for s in made:
                s.stop()
            for s in made:
                s.cleanup()


def _community_a(a: SiteSystem, tmp: Path) -> None:
    """A's participants and its promotion trigger (processes/openci/README.md)."""
    standard_participant(
        a,
        "git",
        "participants.standard.git_source",
        "Git",
        regexp=GIT,
        sections={"git": {"workdir": tmp / "clones"}},
    )
    standard_participant(
        a,
        "eiffel_publish",
        "participants.standard.eiffel_publish",
        "EiffelPublish",
        regexp=EIFFEL,
    )
    standard_participant(a, "build", str(HANDLERS), "Build")
    standard_participant(
        a, "promoted_notice", "participants.standard.notices", "Notice", regexp="promoted_notice_.*"
    )
    a.boss(
        "triggers",
        "add",
        "openci-a-promote",
        "--process",
        "openci/community_a_promote",
        "--type",
        "ConfidenceLevelModified",
        "--data",
        "name=community-b-tested",
        "--data",
        "value=SUCCESS",
    )


def _community_b(b: SiteSystem) -> None:
    """B's participants and its triggers: A's artifacts, and the CDEvents
    producer's (its own level name, so A does not promote what is not its)."""
    standard_participant(
        b,
        "eiffel_publish",
        "participants.standard.eiffel_publish",
        "EiffelPublish",
        regexp=EIFFEL,
    )
    standard_participant(b, "test", str(HANDLERS), "Test")
    b.boss(
        "triggers",
        "add",
        "openci-b-baseline",
        "--process",
        "openci/community_b_baseline",
        "--type",
        "ArtifactCreated",
        "--data",
        "identity=~^pkg:generic/",
        "--data",
        "customData.value=community-a",
    )
    b.boss(
        "triggers",
        "add",
        "tekton-baseline",
        "--process",
        "openci/community_b_baseline",
        "--type",
        "ArtifactCreated",
        "--data",
        "identity=~^pkg:generic/tekton-",
        "--field",
        "level=tekton-tested",
    )


def _runs(site: SiteSystem) -> dict[str, str]:
    return {r.wfid: r.status for r in site.store.list_runs(limit=1000)}


def test_openci_over_two_real_sites(
    openci_sites: tuple[SiteSystem, SiteSystem], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    a, b = openci_sites
    shares_all = SHARES_ALL[request.node.callspec.params["openci_sites"]]
    bare, shas = make_repo(tmp_path, 2)
    t0 = time.monotonic()
    marks: dict[str, float] = {}

    # -- A's push: openci_a_build at A (A's worker, git, build, publishers),
    # launched from A's process store by the CLI
    a_build = f"{a.prefix}-push"
    a.boss(
        "launch",
        "openci/community_a_build",
        "--field",
        f"repo={bare}",
        "--field",
        "project=libfoo",
        "--field",
        "version=2.0",
        "--wfid",
        a_build,
    )
    a.wait_status(a_build, timeout=SLOW)
    marks["A built"] = time.monotonic() - t0
    a_fields = a.fields(a_build)
    artifact = a_fields["artifact"]
    change = a_fields["commits"][0]["submitted"]

    # -- A's ArtifactCreated crossed; B's trigger launched openci_b_baseline at B
    wait_for(lambda: b.graph.exists(artifact), SLOW, "A's artifact in B's graph")
    marks["artifact at B"] = time.monotonic() - t0
    assert b.graph.get(artifact)["meta"]["source"]["domainId"] == A
    b_run = f"openci-b-baseline-{artifact}"
    wait_for(lambda: b.status(b_run), SLOW, "B's baseline run to start")
    b.wait_status(b_run, timeout=SLOW)
    marks["B tested"] = time.monotonic() - t0
    b_fields = b.fields(b_run)
    assert b_fields["upstream_artifact"] == artifact and b_fields["status"] == "SUCCESS"
    b_level, baseline = b_fields["confidence_level"], b_fields["baseline"]
    triggered = activity_id(b_run, None, "triggered")
    wait_for(
        lambda: ("CAUSE", artifact) in b.graph.links_out(triggered),
        SLOW,
        "B's run caused by A's artifact, in B's graph",
    )

    # -- B's verdict crossed back; A's trigger launched openci_a_promote at A
    wait_for(lambda: a.graph.exists(b_level), SLOW, "B's verdict in A's graph")
    assert a.graph.get(b_level)["meta"]["source"]["domainId"] == B
    assert a.graph.get(b_level)["data"]["name"] == "community-b-tested"
    a_promote = f"openci-a-promote-{b_level}"
    wait_for(lambda: a.status(a_promote), SLOW, "A's promotion run to start")
    a.wait_status(a_promote, timeout=SLOW)
    promoted = a.fields(a_promote)["confidence_level"]
    wait_for(lambda: a.graph.exists(promoted), SLOW, "the promotion in A's graph")
    marks["A promoted"] = time.monotonic() - t0
    promotion = a.graph.get(promoted)
    assert promotion["data"]["name"] == "promoted"
    assert {"type": "CAUSE", "target": b_level} in promotion["links"]
    assert {"type": "SUBJECT", "target": artifact} in promotion["links"]

    # -- the third site: a CDEvents producer posts to B; B consumes its artifact
    tekton_purl = f"pkg:generic/tekton-built@{uuid.uuid4().hex[:8]}"
    posted = subprocess.run(
        [
            sys.executable,
            str(PRODUCER),
            b.endpoint,
            "--token",
            TOKEN,
            "--site",
            "tekton",
            "--artifact",
            tekton_purl,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert posted.returncode == 0, posted.stdout + posted.stderr
    answer = json.loads(posted.stdout)
    tekton_art = answer["id"]
    assert answer["answer"]["accepted"] == [tekton_art], answer
    wait_for(lambda: b.graph.exists(tekton_art), SLOW, "the producer's artifact in B's graph")
    stored = b.graph.get(tekton_art)
    assert stored["meta"]["source"]["domainId"] == TEKTON
    assert stored["data"]["identity"] == tekton_purl
    t_run = f"tekton-baseline-{tekton_art}"
    wait_for(lambda: b.status(t_run), SLOW, "B's run for the producer's artifact to start")
    b.wait_status(t_run, timeout=SLOW)
    t_level = b.fields(t_run)["confidence_level"]
    wait_for(lambda: b.graph.exists(t_level), SLOW, "B's level on the producer's artifact")
    t_up = trace_up(b.graph, tekton_art)
    assert [(e["data"]["name"], e["data"]["value"]) for e in t_up["confidence_levels"]] == [
        ("tekton-tested", "SUCCESS")
    ]
    marks["producer's artifact tested at B"] = time.monotonic() - t0

    # -- trace up from A's change, asked at A (the real CLI, by commit sha)
    up = a.trace("up", shas[0])
    assert [e["meta"]["id"] for e in up["artifacts"]] == [artifact]
    assert sorted(e["data"]["name"] for e in up["compositions"]) == [
        "community-a/libfoo-sources",
        "community-b/integration",
    ]
    levels = {
        (e["data"]["name"], e["meta"]["source"].get("domainId")) for e in up["confidence_levels"]
    }
    # every level names its site (A's own promotion too: its participant
    # stamps the site's eiffel_domain)
    assert levels == {("community-b-tested", B), ("promoted", A)}, levels
    text = a.boss("trace", "up", shas[0]).stdout
    assert f"[{B}]" in text and "community-b-tested" in text and "promoted" in text

    # -- lead time from A's change to B's verdict, at A
    answer_lt = a.trace("lead-time", shas[0], "--level", "community-b-tested")
    expected = lead_time(a.graph, change, "community-b-tested")
    assert expected is not None and expected > 0
    assert answer_lt["seconds"] == expected and answer_lt["value"] == "SUCCESS"
    assert expected < marks["B tested"] + 5  # no longer than the scenario took

    # -- asked at B: A's artifact leads to B's baseline and verdict
    up_b = trace_up(b.graph, artifact)
    assert b_level in [e["meta"]["id"] for e in up_b["confidence_levels"]]
    if shares_all:
        # A shared its sources and its promotion: trace up from A's change,
        # asked at B, reaches B's verdict and A's promotion as at A (the
        # promotion was waited for in A's graph: it crosses to B apart)
        wait_for(lambda: b.graph.exists(promoted), SLOW, "A's promotion in B's graph")
        up_b_change = b.trace("up", shas[0])
        assert [e["meta"]["id"] for e in up_b_change["artifacts"]] == [artifact]
        assert {
            (e["data"]["name"], e["meta"]["source"].get("domainId"))
            for e in up_b_change["confidence_levels"]
        } == {("community-b-tested", B), ("promoted", A)}
        assert lead_time(b.graph, change, "community-b-tested") == expected
    else:
        _unshared_at_b(a, b, a_fields, artifact, change, promoted, b_level, up_b)

    # -- each run once, finished; nothing doubled in the graphs
    finished = {wfid: states.FINISHED for wfid in (a_build, a_promote)}
    assert _runs(a) == finished
    assert _runs(b) == {b_run: states.FINISHED, t_run: states.FINISHED}
    assert set(a.graph.ids_by_type("ArtifactCreated", limit=100)) == {artifact}
    assert set(b.graph.ids_by_type("ArtifactCreated", limit=100)) == {artifact, tekton_art}
    a_levels = set(a.graph.ids_by_type("ConfidenceLevelModified", limit=100))
    assert a_levels == {b_level, promoted}, a_levels  # not B's level on tekton's artifact
    assert set(b.graph.ids_by_type("ConfidenceLevelModified", limit=100)) == (
        {b_level, t_level, promoted} if shares_all else {b_level, t_level}
    )
    assert baseline in set(a.graph.ids_by_type("CompositionDefined", limit=100))

    # -- nothing dead-lettered at either site (engine or trace)
    for s in (a, b):
        assert s.deadletters() == {"engine": [], "trace": []}, (s.site, s.deadletters())
    print(
        f"\n{a.config.broker_url.split(':')[0]} A, {b.config.broker_url.split(':')[0]} B: "
        + ", ".join(f"{k} {v:.1f}s" for k, v in marks.items())
        + f"; lead time A's change -> community-b-tested {expected:.2f}s"
    )


def _unshared_at_b(
    a: SiteSystem,
    b: SiteSystem,
    a_fields: dict[str, Any],
    artifact: str,
    change: str,
    promoted: str,
    b_level: str,
    up_b: dict[str, Any],
) -> None:
    """A shared only its artifacts: asked at B, A's events that were not
    shared (its sources, its run) are placeholders of A."""
    assert [e["meta"]["id"] for e in up_b["confidence_levels"]] == [b_level]
    # A's events that were not shared (its sources, its run) are
    # placeholders of A
    assert not b.graph.exists(change) and not b.graph.exists(promoted)
    down_b = trace_down(b.graph, b_level, placeholders=True)
    assert [e["meta"]["id"] for e in down_b["artifacts"]] == [artifact]
    unshared = {p["id"]: p for p in down_b["not_shared"]}
    sources = a_fields["sources"]
    assert sources in unshared and unshared[sources]["domain"] == A, down_b["not_shared"]
    assert all(p["domain"] == A for p in unshared.values()), unshared
    assert unshared_event(b.graph, sources)["domain"] == A
    cli_down = b.trace("down", b_level)  # the CLI says the same
    assert {p["id"]: p["domain"] for p in cli_down["not_shared"]} == {
        i: p["domain"] for i, p in unshared.items()
    }
    got = b.boss("trace", "get", sources, check=False)
    assert f"an event of site {A} that was not shared" in got.stdout + got.stderr
