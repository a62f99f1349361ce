"""Trace up/down, lookups, lead time and the DORA metrics on a small graph
built by hand (engine.trace.queries, engine.trace.metrics)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from engine.trace.graph import Graph, event_type
from engine.trace.metrics import dora, lead_time, lead_times, percentile
from engine.trace.queries import find_by_data, find_source_change, trace_down, trace_up

pytestmark = pytest.mark.redis

S = 1000  # ms


def ev(
    eid: str, etype: str, t_s: int, links: list[tuple[str, str]] = (), **data: Any
) -> dict[str, Any]:
    return {
        "meta": {
            "id": eid,
            "type": event_type(etype),
            "version": "4.0.0",
            "time": t_s * S,
            "source": {"domainId": "test"},
        },
        "data": data,
        "links": [{"type": t, "target": target} for t, target in links],
    }


def clm(eid: str, t_s: int, subject: str, name: str, value: str = "SUCCESS") -> dict[str, Any]:
    return ev(eid, "ConfidenceLevelModified", t_s, [("SUBJECT", subject)], name=name, value=value)


#: three changes on one branch, each built, three baselines deployed (the
#: second deployment rolled back), then an artifact deployed whose smoke test
#: failed. Times in seconds.
PIPELINE = [
    ev("c1", "SourceChangeCreated", 0, gitIdentifier={"commitId": "1111"}),
    ev("s1", "SourceChangeSubmitted", 100, [("CHANGE", "c1")], gitIdentifier={"commitId": "1111"}),
    ev("b1", "ActivityTriggered", 110, [("CAUSE", "s1")], name="build"),
    ev("a1", "ArtifactCreated", 200, [("CONTEXT", "b1"), ("CAUSE", "s1")], identity="pkg:rpm/x@1"),
    clm("l1", 300, "a1", "unit"),
    ev("c2", "SourceChangeCreated", 1000, [("BASE", "s1")], gitIdentifier={"commitId": "2222"}),
    ev("s2", "SourceChangeSubmitted", 1100, [("CHANGE", "c2"), ("PREVIOUS_VERSION", "s1")]),
    ev("a2", "ArtifactCreated", 1200, [("CAUSE", "s2")], identity="pkg:rpm/x@2"),
    ev("comp1", "CompositionDefined", 2000, [("ELEMENT", "a1")], name="os"),
    clm("d1", 3000, "comp1", "production"),
    ev(
        "comp2",
        "CompositionDefined",
        4000,
        [("ELEMENT", "a2"), ("PREVIOUS_VERSION", "comp1")],
        name="os",
    ),
    clm("d2", 5000, "comp2", "production"),
    clm("f2", 5600, "comp2", "production", "FAILURE"),
    ev("c3", "SourceChangeCreated", 6000, [("BASE", "s2")]),
    ev("s3", "SourceChangeSubmitted", 6100, [("CHANGE", "c3"), ("PREVIOUS_VERSION", "s2")]),
    ev("a3", "ArtifactCreated", 6200, [("CAUSE", "s3")], identity="pkg:rpm/x@3"),
    ev(
        "comp3",
        "CompositionDefined",
        7000,
        [("ELEMENT", "a3"), ("PREVIOUS_VERSION", "comp2")],
        name="os",
    ),
    clm("d3", 8000, "comp3", "production"),
    ev("dep4", "ArtifactDeployed", 9000, [("ARTIFACT", "a3")]),
    ev("t4", "ActivityTriggered", 9100, [("CAUSE", "dep4")], name="smoke"),
    ev(
        "t4f",
        "ActivityFinished",
        9500,
        [("ACTIVITY_EXECUTION", "t4")],
        outcome={"conclusion": "FAILED"},
    ),
]


@pytest.fixture
def graph(redis_client: redis.Redis, key_prefix: str) -> Graph:
    graph = Graph(redis_client, key_prefix)
    graph.ingest(PIPELINE)
    return graph


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["meta"]["id"] for e in events]


def test_trace_up_from_a_change(graph: Graph) -> None:
    up = trace_up(graph, "c1")
    assert ids(up["source_changes"]) == ["s1", "c2", "s2", "c3", "s3"]
    assert ids(up["artifacts"]) == ["a1", "a2", "a3"]
    assert ids(up["compositions"]) == ["comp1", "comp2", "comp3"]
    assert ids(up["confidence_levels"]) == ["l1", "d1", "d2", "f2", "d3"]
    assert ids(up["deployments"]) == ["dep4"]
    assert ids(trace_up(graph, "c3")["artifacts"]) == ["a3"]
    # BASE is what makes later builds contain c1; without it only its own
    no_base = trace_up(graph, "c1", link_types=["CHANGE", "CAUSE", "CONTEXT", "ELEMENT", "SUBJECT"])
    assert ids(no_base["artifacts"]) == ["a1"]
    assert ids(no_base["confidence_levels"]) == ["l1", "d1"]
    assert sum(map(len, trace_up(graph, "c1", limit=3).values())) == 3
    assert ids(trace_up(graph, "c1", depth=2)["source_changes"]) == ["s1", "c2"]


def test_trace_down_from_a_deployment_and_a_baseline(graph: Graph) -> None:
    down = trace_down(graph, "d3")
    assert ids(down["compositions"]) == ["comp3"]
    assert ids(down["artifacts"]) == ["a3"]
    assert ids(down["source_changes"]) == ["c3", "s3"]
    assert down["issues"] == [] and down["environments"] == []
    down = trace_down(graph, "comp3", history=True)
    assert ids(down["source_changes"]) == ["c1", "s1", "c2", "s2", "c3", "s3"]
    assert ids(down["artifacts"]) == ["a3"]  # not the builds of the older changes
    assert ids(trace_down(graph, "a1")["source_changes"]) == ["c1", "s1"]


def test_lookups(graph: Graph) -> None:
    assert ids(find_by_data(graph, "ArtifactCreated", "identity", "pkg:rpm/x@2")) == ["a2"]
    assert ids(find_by_data(graph, "CompositionDefined", "name", "os")) == [
        "comp1",
        "comp2",
        "comp3",
    ]
    assert ids(find_by_data(graph, "EiffelConfidenceLevelModifiedEvent", "name", "production")) == [
        "d1",
        "d2",
        "f2",
        "d3",
    ]
    assert ids(find_source_change(graph, "1111")) == ["c1", "s1"]
    assert find_source_change(graph, "9999") == []


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 0) == 1 and percentile([1, 2, 3, 4], 100) == 4
    assert percentile([10, 20], 90) == pytest.approx(19.0)


def test_lead_time_to_a_confidence_level(graph: Graph) -> None:
    assert lead_time(graph, "c1", "unit") == 300.0
    assert lead_time(graph, "c1", "production") == 3000.0  # d1, the first
    assert lead_time(graph, "c2", "production") == 4000.0  # d2
    assert lead_time(graph, "c3", "production") == 2000.0  # d3
    assert lead_time(graph, "c2", "production", "FAILURE") == 4600.0  # f2
    assert lead_time(graph, "c3", "unit") is None


def test_lead_times_over_a_window(graph: Graph) -> None:
    got = lead_times(graph, 0, 10_000 * S, "production")
    assert got["per_change"] == {"c1": 3000.0, "c2": 4000.0, "c3": 2000.0}
    assert (got["count"], got["pending"]) == (3, 0)
    assert got["p50"] == 3000.0
    assert got["p90"] == pytest.approx(3800.0)
    assert got["p99"] == pytest.approx(3980.0)
    got = lead_times(graph, 500 * S, 10_000 * S, "unit")
    assert got["per_change"] == {"c2": None, "c3": None}
    assert (got["count"], got["pending"], got["p50"]) == (0, 2, None)
    assert lead_times(graph, 0, 10_000 * S, "production", change_type="SourceChangeSubmitted")[
        "per_change"
    ] == {"s1": 2900.0, "s2": 3900.0, "s3": 1900.0}


def test_dora_over_the_whole_history(graph: Graph) -> None:
    got = dora(graph, 0, 10_000 * S)
    assert got["deployments"] == 4  # d1, d2, d3, dep4
    assert got["window"]["days"] == pytest.approx(10_000 / 86_400)
    assert got["deployment_frequency_per_day"] == pytest.approx(4 / (10_000 / 86_400))
    # c1 -> d1 3000 s, c2 -> d2 4000 s, c3 -> d3 2000 s
    assert got["lead_time_for_changes"] == {
        "median_s": 3000.0,
        "p90_s": pytest.approx(3800.0),
        "count": 3,
    }
    # d2 rolled back (f2), dep4's smoke test failed
    assert got["failed_deployments"] == 2
    assert got["change_failure_rate"] == 0.5
    # f2 at 5600 -> d3 at 8000; dep4 never restored
    assert got["time_to_restore"] == {"median_s": 2400.0, "count": 1, "unrestored": 1}


def test_dora_over_a_window_and_other_conventions(graph: Graph) -> None:
    got = dora(graph, 4000 * S, 10_000 * S)
    assert got["deployments"] == 3
    assert got["lead_time_for_changes"] == {
        "median_s": 3000.0,
        "p90_s": pytest.approx(3800.0),
        "count": 2,
    }
    assert got["change_failure_rate"] == pytest.approx(2 / 3)
    only_artifacts = dora(graph, 0, 10_000 * S, deploy_level=None)
    assert only_artifacts["deployments"] == 1
    assert only_artifacts["lead_time_for_changes"]["count"] == 1  # c3 -> dep4
    assert only_artifacts["lead_time_for_changes"]["median_s"] == 3000.0
    assert only_artifacts["change_failure_rate"] == 1.0
    empty = dora(graph, 20_000 * S, 30_000 * S)
    assert empty["deployments"] == 0 and empty["change_failure_rate"] is None
    assert empty["lead_time_for_changes"] == {"median_s": None, "p90_s": None, "count": 0}
