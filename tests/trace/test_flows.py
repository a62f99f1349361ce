"""The graph on the Eiffel protocol's example flows (build-avoidance,
confidence-level-joining, delivery-interface: 61 linked events), read from
the shared conformance tree at test time.

Every expected set below was worked out by hand from the flows' events.json
files (who links to whom, with which link type), not by the code under test.
The ids of each flow are ``aaaaaaaa-bbbb-5ccc-8ddd-eeeeeeeeeeXX``; ``n("a8")``
spells ``...eeeeeeeeeea8``, ``n("10")`` ``...eeeeeeeeee10``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from engine.trace.graph import Graph, Hit, IngestResult
from engine.trace.metrics import lead_time, lead_times
from engine.trace.queries import find_by_data, find_source_change, trace_down, trace_up
from tests.trace.conformance import CONFORMANCE

pytestmark = pytest.mark.redis

FLOWS = CONFORMANCE / "eiffel" / "examples" / "flows"


def n(tail: str) -> str:
    return "aaaaaaaa-bbbb-5ccc-8ddd-" + tail.rjust(12, "e")


def ns(*tails: str) -> set[str]:
    return {n(t) for t in tails}


def load(flow: str) -> list[dict[str, Any]]:
    path = FLOWS / flow / "events.json"
    if not path.exists():
        pytest.skip(f"the Eiffel example flows are not there ({path})")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(params=["in order", "reversed"])
def order(request: pytest.FixtureRequest) -> str:
    return request.param


def _graph(client: redis.Redis, prefix: str, flow: str, order: str) -> Graph:
    events = load(flow)
    graph = Graph(client, f"{prefix}{flow}:", batch_size=5)
    result = graph.ingest(events[::-1] if order == "reversed" else events)
    assert result.stored == len(events) and result.duplicates == 0
    assert graph.stats() == {"events": len(events), "waiting": 0, "placeholders": 0}
    return graph


@pytest.fixture
def delivery(redis_client: redis.Redis, key_prefix: str, order: str) -> Graph:
    return _graph(redis_client, key_prefix, "delivery-interface", order)


@pytest.fixture
def avoidance(redis_client: redis.Redis, key_prefix: str, order: str) -> Graph:
    return _graph(redis_client, key_prefix, "build-avoidance", order)


@pytest.fixture
def joining(redis_client: redis.Redis, key_prefix: str, order: str) -> Graph:
    return _graph(redis_client, key_prefix, "confidence-level-joining", order)


def depths(hits: list[Hit]) -> dict[str, int]:
    return {h.event["meta"]["id"]: h.depth for h in hits}


def idset(events: list[dict[str, Any]]) -> set[str]:
    return {e["meta"]["id"] for e in events}


# -- every event imports ----------------------------------------------------
@pytest.mark.parametrize(
    "flow,count,waiting",
    [
        ("build-avoidance", 16, 1),  # event 12 links to 13, 14, 15, listed after it
        ("confidence-level-joining", 23, 0),
        ("delivery-interface", 22, 3),  # events 1, 2 and 4 link to the issues at the end
    ],
)
def test_every_event_imports(
    redis_client: redis.Redis, key_prefix: str, flow: str, count: int, waiting: int
) -> None:
    events = load(flow)
    assert len(events) == count
    graph = Graph(redis_client, key_prefix)
    result = graph.ingest(events)
    assert (result.stored, result.duplicates, result.waiting, result.resolved) == (
        count,
        0,
        waiting,
        waiting,
    )
    for event in events:
        assert graph.get(event["meta"]["id"]) == event
    assert graph.ingest(events) == IngestResult(duplicates=count)
    assert graph.stats() == {"events": count, "waiting": 0, "placeholders": 0}


def test_all_three_flows_hold_61_events() -> None:
    assert (
        sum(
            len(load(f))
            for f in ("build-avoidance", "confidence-level-joining", "delivery-interface")
        )
        == 61
    )


# -- delivery-interface -----------------------------------------------------
def test_delivery_upstream_of_the_last_confidence_level(delivery: Graph) -> None:
    hits = delivery.upstream(n("16"))
    assert depths(hits) == {
        n("10"): 1,
        n("8"): 2,
        n("5"): 3,
        n("7"): 3,
        n("4"): 4,
        n("3"): 4,
        n("6"): 4,
        n("19"): 5,
        n("2"): 5,
        n("0"): 5,
        n("1"): 6,
        n("17"): 6,
        n("18"): 6,
    }
    assert hits[0].via == "SUBJECT" and hits[1].via == "COMPOSITION"
    assert set(depths(delivery.upstream(n("16"), depth=3))) == ns("10", "8", "5", "7")
    assert [h.event["meta"]["id"] for h in delivery.upstream(n("16"), limit=5)] == [
        n("10"),
        n("8"),
        n("5"),
        n("7"),
        n("4"),
    ]
    only = ["SUBJECT", "COMPOSITION", "ELEMENT", "CHANGE", "RESOLVED_ISSUE"]
    assert set(depths(delivery.upstream(n("16"), only))) == ns("10", "8", "5", "4", "19")


def test_delivery_downstream_of_the_first_submission(delivery: Graph) -> None:
    assert depths(delivery.downstream(n("0"))) == {
        n("1"): 1,
        n("2"): 1,
        n("3"): 1,
        n("6"): 1,
        n("4"): 2,
        n("5"): 2,
        n("7"): 2,
        n("9"): 2,
        n("8"): 3,
        n("a11"): 3,
        n("15"): 3,
        n("10"): 4,
        n("11"): 4,
        n("a12"): 5,
        n("16"): 5,
        n("13"): 5,
        n("12"): 6,
        n("14"): 7,
    }
    assert set(depths(delivery.downstream(n("17")))) == ns(
        "1", "2", "3", "4", "5", "7", "8", "10", "a12", "12", "14", "16"
    )
    assert set(depths(delivery.downstream(n("17"), ["RESOLVED_ISSUE"]))) == ns("2")


def test_delivery_trace_up_from_a_change(delivery: Graph) -> None:
    up = trace_up(delivery, n("2"))
    assert idset(up["source_changes"]) == ns("3", "4", "5")
    assert idset(up["compositions"]) == ns("7", "8")
    assert idset(up["artifacts"]) == ns("10")
    assert idset(up["confidence_levels"]) == ns("16")
    assert up["deployments"] == [] and up["publications"] == []

    up = trace_up(delivery, n("0"))
    assert idset(up["source_changes"]) == ns("1", "2", "3", "4", "5")
    assert idset(up["compositions"]) == ns("6", "7", "8")
    assert idset(up["artifacts"]) == ns("9", "10")
    assert idset(up["confidence_levels"]) == ns("15", "16")
    assert [e["meta"]["time"] for e in up["artifacts"]] == [3000, 204000]

    # the first patchset was replaced (PREVIOUS_VERSION): nothing contains it
    assert all(v == [] for v in trace_up(delivery, n("1")).values())


def test_delivery_trace_down_from_an_artifact(delivery: Graph) -> None:
    down = trace_down(delivery, n("10"))
    assert idset(down["source_changes"]) == ns("5", "4")
    assert idset(down["issues"]) == ns("19")
    assert idset(down["compositions"]) == ns("8")
    assert down["artifacts"] == [] and down["environments"] == []

    down = trace_down(delivery, n("10"), history=True)
    assert idset(down["source_changes"]) == ns("5", "4", "3", "2", "0")
    assert idset(down["issues"]) == ns("19", "17", "18")

    down = trace_down(delivery, n("15"))  # a confidence level: via its subject
    assert idset(down["artifacts"]) == ns("9")
    assert idset(down["compositions"]) == ns("6")
    assert idset(down["source_changes"]) == ns("0")


def test_delivery_lead_times(delivery: Graph) -> None:
    level = "approvedForSystemIntegration"
    # change -> first SUCCESS of the level downstream (times in ms from the file)
    assert lead_time(delivery, n("0"), level) == 5.0  # 1000 -> CLM 15 at 6000
    assert lead_time(delivery, n("2"), level) == 105.0  # 102000 -> CLM 16 at 207000
    assert lead_time(delivery, n("3"), level) == 104.0  # 103000 -> 207000
    assert lead_time(delivery, n("4"), level) == 6.0  # 201000 -> 207000
    assert lead_time(delivery, n("5"), level) == 5.0  # 202000 -> 207000
    assert lead_time(delivery, n("1"), level) is None  # superseded patchset
    assert lead_time(delivery, n("2"), level, "FAILURE") is None
    assert lead_time(delivery, n("2"), "noSuchLevel") is None
    assert lead_time(delivery, "not-there", level) is None

    created = lead_times(delivery, None, None, level)
    assert created["per_change"] == {n("1"): None, n("2"): 105.0, n("4"): 6.0}
    assert (created["count"], created["pending"]) == (2, 1)
    assert created["p50"] == pytest.approx(55.5)  # between 6 and 105
    assert created["p90"] == pytest.approx(95.1)
    assert created["p99"] == pytest.approx(104.01)

    submitted = lead_times(delivery, None, None, level, change_type="SourceChangeSubmitted")
    assert submitted["per_change"] == {n("0"): 5.0, n("3"): 104.0, n("5"): 5.0}
    assert submitted["p50"] == 5.0
    assert submitted["p90"] == pytest.approx(84.2)  # 5 + 0.8 * 99

    window = lead_times(delivery, 150_000, 300_000, level)
    assert window["per_change"] == {n("4"): 6.0} and window["p99"] == 6.0
    assert lead_times(delivery, 0, 500, level)["p50"] is None


def test_delivery_lookups(delivery: Graph) -> None:
    sha = "fd090b60a4aedc5161da9c035a49b14a319829b4"
    assert [
        e["meta"]["id"]
        for e in find_by_data(delivery, "SourceChangeCreated", "gitIdentifier.commitId", sha)
    ] == [n("1"), n("2")]
    assert [e["meta"]["id"] for e in find_source_change(delivery, "f7744f53cf94")] == [n("3")]
    assert [
        e["meta"]["id"]
        for e in find_by_data(delivery, "CompositionDefined", "name", "My composition")
    ] == [n("6"), n("7"), n("8")]
    assert [
        e["meta"]["id"]
        for e in find_by_data(
            delivery, "ConfidenceLevelModified", "name", "approvedForSystemIntegration"
        )
    ] == [n("15"), n("16")]
    assert [e["meta"]["id"] for e in find_by_data(delivery, "IssueDefined", "id", "JIRA-1236")] == [
        n("19")
    ]


# -- build-avoidance --------------------------------------------------------
def test_avoidance_downstream_reaches_everything(avoidance: Graph) -> None:
    assert depths(avoidance.downstream(n("0"))) == {
        n("1"): 1,
        n("2"): 1,
        n("3"): 2,
        n("4"): 2,
        n("5"): 2,
        n("6"): 2,
        n("7"): 2,
        n("8"): 2,
        n("9"): 3,
        n("10"): 3,
        n("11"): 3,
        n("13"): 3,
        n("14"): 3,
        n("15"): 3,
        n("12"): 4,
    }


def test_avoidance_trace_up_through_reused_artifacts(avoidance: Graph) -> None:
    up = trace_up(avoidance, n("0"))  # revision 42
    assert idset(up["compositions"]) == ns("2", "11", "12")
    assert idset(up["artifacts"]) == ns("4", "5", "6", "7", "8")
    assert up["source_changes"] == []
    up = trace_up(avoidance, n("1"))  # revision 43
    assert idset(up["compositions"]) == ns("3", "12")
    assert idset(up["artifacts"]) == ns("9", "10")


def test_avoidance_trace_down_of_the_baselines(avoidance: Graph) -> None:
    down = trace_down(avoidance, n("12"))  # Other Composition B: rebuilt a, e, reused b, c, d
    assert idset(down["artifacts"]) == ns("9", "10", "5", "6", "7")
    assert idset(down["compositions"]) == ns("3", "2")
    assert idset(down["source_changes"]) == ns("1", "0")
    down = trace_down(avoidance, n("11"))  # Other Composition A
    assert idset(down["artifacts"]) == ns("4", "5", "6", "7", "8")
    assert idset(down["compositions"]) == ns("2")
    assert idset(down["source_changes"]) == ns("0")
    assert [
        e["meta"]["id"]
        for e in find_by_data(
            avoidance,
            "ArtifactCreated",
            "identity",
            "pkg:maven/com.mycompany.myproduct/component-a@1.0.1",
        )
    ] == [n("9")]


# -- confidence-level-joining -----------------------------------------------
def test_joining_upstream_of_the_joined_level(joining: Graph) -> None:
    hits = joining.upstream(n("18"))
    assert depths(hits) == {
        n("13"): 1,
        n("14"): 1,
        n("15"): 1,
        n("16"): 1,
        n("2"): 1,
        n("a9"): 2,
        n("a10"): 2,
        n("4"): 2,
        n("1"): 2,
        n("0"): 2,
        n("5"): 3,
        n("3"): 3,
    }
    via = {h.event["meta"]["id"]: h.via for h in hits}
    assert via[n("2")] == "SUBJECT" and via[n("0")] == "ENVIRONMENT"
    assert via[n("4")] == "ACTIVITY_EXECUTION" and via[n("a10")] == "TEST_CASE_EXECUTION"


def test_joining_downstream_of_the_artifact(joining: Graph) -> None:
    assert depths(joining.downstream(n("2"))) == {
        n("3"): 1,
        n("a8"): 1,
        n("a9"): 1,
        n("a10"): 1,
        n("a11"): 1,
        n("18"): 1,
        n("4"): 2,
        n("5"): 2,
        n("8"): 2,
        n("12"): 2,
        n("9"): 2,
        n("13"): 2,
        n("10"): 2,
        n("14"): 2,
        n("15"): 2,
        n("11"): 2,
        n("6"): 3,
        n("16"): 3,
        n("7"): 3,
        n("17"): 3,
    }
    assert set(depths(joining.downstream(n("2"), "IUT"))) == ns("a8", "a9", "a10", "a11")


def test_joining_traces_and_lead_time(joining: Graph) -> None:
    up = trace_up(joining, n("1"))
    assert idset(up["artifacts"]) == ns("2")
    assert idset(up["publications"]) == ns("3")
    assert idset(up["confidence_levels"]) == ns("18")
    down = trace_down(joining, n("18"))
    assert idset(down["artifacts"]) == ns("2")
    assert idset(down["compositions"]) == ns("1")
    assert idset(down["environments"]) == ns("0")
    # composition at 2000 -> the joined level (FAILURE) at 21000
    assert lead_time(joining, n("1"), "functionalComponentTestsPassed", "FAILURE") == 19.0
    assert lead_time(joining, n("1"), "functionalComponentTestsPassed") is None


def test_joining_chains_are_the_two_test_activities(joining: Graph) -> None:
    first = ns("4", "6", "a8", "a9", "8", "9", "12", "13", "16")
    second = ns("5", "7", "a10", "a11", "10", "11", "14", "15", "17")
    for member in first:
        assert idset(joining.chain(member)) == first
        assert joining.chain_root(member) == n("4")
    assert idset(joining.chain(n("a11"))) == second
    assert idset(joining.chain(n("18"))) == ns("18")
