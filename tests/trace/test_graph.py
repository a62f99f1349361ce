"""The graph store (engine.trace.graph) on a real server: ingest, idempotence,
placeholders, reverse links, time and lookup indexes, chains and walks."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from engine.trace.graph import Graph, Hit, IngestResult, event_type

pytestmark = pytest.mark.redis


def ev(
    eid: str, etype: str, time: int, links: list[tuple[str, str]] = (), **data: Any
) -> dict[str, Any]:
    return {
        "meta": {
            "id": eid,
            "type": event_type(etype),
            "version": "4.0.0",
            "time": time,
            "source": {"domainId": "test"},
        },
        "data": data,
        "links": [{"type": t, "target": target} for t, target in links],
    }


@pytest.fixture
def graph(redis_client: redis.Redis, key_prefix: str) -> Graph:
    return Graph(redis_client, key_prefix, batch_size=3)


def ids(hits: list[Hit]) -> list[tuple[str, int, str]]:
    return [(h.event["meta"]["id"], h.depth, h.via) for h in hits]


# -- storing --------------------------------------------------------------
def test_events_come_back_as_given(graph: Graph) -> None:
    events = [
        ev("a", "SourceChangeSubmitted", 1000, gitIdentifier={"commitId": "abc"}),
        ev("b", "CompositionDefined", 2000, [("ELEMENT", "a")], name="distro", version="1"),
        {
            **ev("c", "ArtifactCreated", 3000, [("COMPOSITION", "b")], identity="pkg:rpm/x@1"),
            "extra": {"kept": True},
        },
    ]
    events[2]["links"].append({"type": "CAUSE", "target": "b", "domainId": "other.example"})
    assert graph.ingest(events) == IngestResult(stored=3)
    for event in events:
        assert graph.get(event["meta"]["id"]) == event
    assert graph.get("nope") is None
    assert graph.get_many(["c", "nope", "a"]) == [events[2], None, events[0]]
    assert graph.exists("a") and not graph.exists("nope")
    assert graph.count() == 3 and graph.count("ArtifactCreated") == 1


def test_the_same_event_twice_is_stored_once(
    graph: Graph, redis_client: redis.Redis, key_prefix: str
) -> None:
    a = ev("a", "SourceChangeSubmitted", 1000)
    b = ev("b", "CompositionDefined", 2000, [("ELEMENT", "a")])
    assert graph.ingest([a, b, a, b, a]) == IngestResult(stored=2, duplicates=3)
    assert graph.ingest([b, a]) == IngestResult(duplicates=2)
    assert graph.ingest_one(a) == IngestResult(duplicates=1)
    assert graph.count() == 2
    assert graph.links_in("a") == [("ELEMENT", "b")]  # not one per copy
    assert redis_client.zcard(f"{key_prefix}t:EiffelSourceChangeSubmittedEvent") == 1


def test_ingest_one_and_batches_of_any_size(redis_client: redis.Redis, key_prefix: str) -> None:
    events = [
        ev(f"e{i}", "ActivityStarted", i, [("ACTIVITY_EXECUTION", f"e{i - 1}")] if i else [])
        for i in range(12)
    ]
    for size in (1, 5, 500):
        prefix = f"{key_prefix}{size}:"
        graph = Graph(redis_client, prefix, batch_size=size)
        assert graph.ingest(iter(events)) == IngestResult(stored=12)
        assert graph.upstream("e11", depth=100)[-1].event == events[0]
    graph = Graph(redis_client, f"{key_prefix}one:")
    for event in events:
        assert graph.ingest_one(event).stored == 1
    assert graph.downstream("e0", depth=3, limit=10)[-1] == Hit(events[3], 3, "ACTIVITY_EXECUTION")


def test_malformed_events_are_refused(graph: Graph) -> None:
    with pytest.raises(ValueError):
        graph.ingest([{"meta": {"type": "EiffelArtifactCreatedEvent", "time": 1}}])
    with pytest.raises(ValueError):
        graph.ingest([ev("a,b", "ArtifactCreated", 1)])
    with pytest.raises(ValueError):
        graph.ingest([ev("a", "ArtifactCreated", 1, [("CAUSE", "x\ny")])])
    assert graph.count() == 0


def test_a_lost_script_is_loaded_again(redis_client: redis.Redis, key_prefix: str) -> None:
    graph = Graph(redis_client, key_prefix, batch_size=2)
    # a script body the server has never seen, as after a restart
    graph._ingest_src += f"\n-- {key_prefix}\n"
    graph._ingest = redis_client.register_script(graph._ingest_src)
    graph._loaded = True
    events = [ev(f"e{i}", "ActivityStarted", i) for i in range(5)]
    assert graph.ingest(events) == IngestResult(stored=5)
    assert graph.count() == 5


# -- placeholders ---------------------------------------------------------
def test_targets_that_come_later_are_placeholders_until_they_arrive(graph: Graph) -> None:
    a = ev("a", "SourceChangeSubmitted", 1000)
    b = ev("b", "CompositionDefined", 2000, [("ELEMENT", "a")])
    c = ev("c", "ArtifactCreated", 3000, [("COMPOSITION", "b"), ("CAUSE", "b")])
    d = ev(
        "d",
        "ConfidenceLevelModified",
        4000,
        [("SUBJECT", "c"), ("CAUSE", "a")],
        name="ok",
        value="SUCCESS",
    )

    assert graph.ingest_one(d) == IngestResult(stored=1, waiting=1, placeholders=2)
    assert graph.waiting() == 1 and graph.waiting_ids() == {"d": 2}
    assert graph.placeholders() == ["a", "c"]
    assert not graph.exists("c") and graph.get("c") is None
    assert graph.links_in("c") == [("SUBJECT", "d")]  # kept on the placeholder

    assert graph.ingest_one(c) == IngestResult(stored=1, waiting=1, placeholders=1)
    assert graph.waiting_ids() == {"d": 1, "c": 1}
    assert graph.placeholders() == ["a", "b"]
    assert graph.links_in("b") == [("COMPOSITION", "c"), ("CAUSE", "c")]

    assert graph.ingest_one(b) == IngestResult(stored=1, waiting=1, placeholders=0, resolved=1)
    assert graph.waiting_ids() == {"d": 1, "b": 1}

    assert graph.ingest_one(a) == IngestResult(stored=1, resolved=2)
    assert graph.waiting() == 0 and graph.placeholders() == []
    assert graph.stats() == {"events": 4, "waiting": 0, "placeholders": 0}
    assert graph.links_in("a") == [("CAUSE", "d"), ("ELEMENT", "b")]
    assert [h.event["meta"]["id"] for h in graph.upstream("d")] == ["c", "a", "b"]
    assert graph.get("c") == c


def test_placeholders_made_and_resolved_in_one_batch(graph: Graph) -> None:
    events = [
        ev("c", "ArtifactCreated", 3, [("COMPOSITION", "b")]),
        ev("b", "CompositionDefined", 2, [("ELEMENT", "a")]),
        ev("a", "SourceChangeSubmitted", 1),
    ]
    graph.batch_size = 10
    assert graph.ingest(events) == IngestResult(stored=3, waiting=2, placeholders=2, resolved=2)
    assert graph.stats() == {"events": 3, "waiting": 0, "placeholders": 0}


def test_a_target_that_never_comes_stays_waiting(graph: Graph) -> None:
    graph.ingest([ev("x", "ArtifactCreated", 1, [("COMPOSITION", "gone"), ("CAUSE", "gone")])])
    assert graph.waiting_ids() == {"x": 1}
    assert graph.placeholders() == ["gone"]
    assert graph.upstream("x") == []
    # a walk may start from a placeholder
    assert ids(graph.downstream("gone")) == [("x", 1, "COMPOSITION")]
    assert graph.links_in("gone") == [("COMPOSITION", "x"), ("CAUSE", "x")]


# -- links and indexes ----------------------------------------------------
def test_links_by_type(graph: Graph) -> None:
    graph.ingest(
        [
            ev("s", "SourceChangeSubmitted", 1),
            ev("t", "ActivityTriggered", 2, [("CAUSE", "s")]),
            ev("a", "ArtifactCreated", 3, [("CONTEXT", "t"), ("CAUSE", "s")]),
        ]
    )
    assert graph.links_out("a") == [("CONTEXT", "t"), ("CAUSE", "s")]
    assert graph.links_out("a", "CAUSE") == [("CAUSE", "s")]
    assert graph.links_out("a", ["CONTEXT", "ELEMENT"]) == [("CONTEXT", "t")]
    assert graph.links_in("s") == [("CAUSE", "t"), ("CAUSE", "a")]
    assert graph.links_in("t", ["CONTEXT"]) == [("CONTEXT", "a")]
    assert graph.links_in("nope") == [] and graph.links_out("nope") == []


def test_time_index_per_type(graph: Graph) -> None:
    graph.ingest(
        [ev(f"a{i}", "ActivityStarted", 1000 * i) for i in range(10)]
        + [ev("x", "ActivityFinished", 5000)]
    )
    got = [e["meta"]["id"] for e in graph.by_type("ActivityStarted", 2000, 5000)]
    assert got == ["a2", "a3", "a4", "a5"]
    assert graph.ids_by_type("EiffelActivityStartedEvent", since_ms=7000) == ["a7", "a8", "a9"]
    assert graph.ids_by_type("ActivityStarted", until_ms=1000) == ["a0", "a1"]
    assert graph.ids_by_type("ActivityStarted", limit=2, newest_first=True) == ["a9", "a8"]
    assert graph.ids_by_type("ActivityStarted", 3000, 6000, 2, newest_first=True) == ["a6", "a5"]
    assert graph.ids_by_type("ActivityCanceled") == []


def test_lookup_index(graph: Graph) -> None:
    graph.ingest(
        [
            ev("c1", "SourceChangeCreated", 1, gitIdentifier={"commitId": "f00d"}),
            ev(
                "c2",
                "SourceChangeSubmitted",
                2,
                [("CHANGE", "c1")],
                gitIdentifier={"commitId": "f00d"},
            ),
            ev("a1", "ArtifactCreated", 3, identity="pkg:rpm/mer/x@1.0"),
            ev("l1", "ConfidenceLevelModified", 4, name="tested", value="SUCCESS"),
            ev("l2", "ConfidenceLevelModified", 5, name="tested", value="FAILURE"),
        ]
    )
    assert [
        e["meta"]["id"] for e in graph.find("SourceChangeCreated", "gitIdentifier.commitId", "f00d")
    ] == ["c1"]
    assert [
        e["meta"]["id"] for e in graph.find("ArtifactCreated", "identity", "pkg:rpm/mer/x@1.0")
    ] == ["a1"]
    assert [e["meta"]["id"] for e in graph.find("ConfidenceLevelModified", "name", "tested")] == [
        "l1",
        "l2",
    ]
    assert [
        e["meta"]["id"] for e in graph.find("ConfidenceLevelModified", "name", "tested", since_ms=5)
    ] == ["l2"]
    assert graph.find("ArtifactCreated", "identity", "pkg:rpm/none") == []
    with pytest.raises(KeyError):
        graph.find("ArtifactCreated", "buildCommand", "make")


# -- chains ---------------------------------------------------------------
def _run(prefix: str, t0: int) -> list[dict[str, Any]]:
    run = f"{prefix}-run"
    return [
        ev(run, "ActivityTriggered", t0, [("CAUSE", "outside")], name="build"),
        ev(f"{prefix}-started", "ActivityStarted", t0 + 1, [("ACTIVITY_EXECUTION", run)]),
        ev(f"{prefix}-step", "ActivityTriggered", t0 + 2, [("CONTEXT", run)], name="s"),
        ev(
            f"{prefix}-step-fin",
            "ActivityFinished",
            t0 + 3,
            [("ACTIVITY_EXECUTION", f"{prefix}-step")],
        ),
        ev(f"{prefix}-case", "TestCaseTriggered", t0 + 4, [("CONTEXT", f"{prefix}-step")]),
        ev(
            f"{prefix}-case-fin",
            "TestCaseFinished",
            t0 + 5,
            [("TEST_CASE_EXECUTION", f"{prefix}-case")],
        ),
        ev(f"{prefix}-fin", "ActivityFinished", t0 + 6, [("ACTIVITY_EXECUTION", run)]),
    ]


@pytest.mark.parametrize("order", ["forward", "reverse", "shuffled"])
def test_chain_lists_a_runs_events(graph: Graph, order: str) -> None:
    one, two = _run("r1", 100), _run("r2", 200)
    events = one + two
    if order == "reverse":
        events = events[::-1]
    elif order == "shuffled":
        events = [events[i] for i in (5, 12, 0, 9, 3, 13, 1, 7, 11, 4, 2, 8, 10, 6)]
    graph.ingest(events)
    for member in one:
        assert graph.chain_root(member["meta"]["id"]) == "r1-run"
        assert graph.chain(member["meta"]["id"]) == one
    assert graph.chain("r2-case-fin") == two
    assert graph.chain_root("outside") == "outside"
    assert graph.chain("outside") == []  # a placeholder has no events


def test_a_chain_starts_at_its_root_when_events_share_a_millisecond(graph: Graph) -> None:
    # the engine often records a run's triggered and started events, and a
    # step's, in the same millisecond: the ids alone must not decide the order
    events = [
        ev("zz-run", "ActivityTriggered", 500, name="build"),
        ev("aa-started", "ActivityStarted", 500, [("ACTIVITY_EXECUTION", "zz-run")]),
        ev("yy-step-fin", "ActivityFinished", 500, [("ACTIVITY_EXECUTION", "bb-step")]),
        ev("bb-step", "ActivityTriggered", 500, [("CONTEXT", "zz-run")], name="s"),
        ev("cc-step-started", "ActivityStarted", 500, [("ACTIVITY_EXECUTION", "bb-step")]),
    ]
    graph.ingest(events)
    assert [e["meta"]["id"] for e in graph.chain("yy-step-fin")] == [
        "zz-run",
        "bb-step",
        "aa-started",
        "cc-step-started",
        "yy-step-fin",
    ]


def test_an_event_outside_any_run_is_its_own_chain(graph: Graph) -> None:
    graph.ingest(
        [ev("s", "SourceChangeSubmitted", 1), ev("a", "ArtifactCreated", 2, [("CAUSE", "s")])]
    )
    assert [e["meta"]["id"] for e in graph.chain("a")] == ["a"]
    assert graph.chain_root("a") == "a"


# -- walks ----------------------------------------------------------------
@pytest.fixture
def diamond(graph: Graph) -> Graph:
    """s0 <- s1 <- s2 <- s3 (PREVIOUS_VERSION); c1 -ELEMENT-> s1, s2;
    a1 -COMPOSITION-> c1; l1 -SUBJECT-> a1, -CAUSE-> s3."""
    graph.ingest(
        [
            ev("s0", "SourceChangeSubmitted", 0),
            ev("s1", "SourceChangeSubmitted", 1, [("PREVIOUS_VERSION", "s0")]),
            ev("s2", "SourceChangeSubmitted", 2, [("PREVIOUS_VERSION", "s1")]),
            ev("s3", "SourceChangeSubmitted", 3, [("PREVIOUS_VERSION", "s2")]),
            ev("c1", "CompositionDefined", 4, [("ELEMENT", "s1"), ("ELEMENT", "s2")]),
            ev("a1", "ArtifactCreated", 5, [("COMPOSITION", "c1")]),
            ev("l1", "ConfidenceLevelModified", 6, [("SUBJECT", "a1"), ("CAUSE", "s3")]),
        ]
    )
    return graph


def test_upstream_breadth_first_each_event_once(diamond: Graph) -> None:
    assert ids(diamond.upstream("l1")) == [
        ("a1", 1, "SUBJECT"),
        ("s3", 1, "CAUSE"),
        ("c1", 2, "COMPOSITION"),
        ("s2", 2, "PREVIOUS_VERSION"),
        ("s1", 3, "ELEMENT"),
        ("s0", 4, "PREVIOUS_VERSION"),
    ]


def test_downstream_follows_reverse_links(diamond: Graph) -> None:
    assert ids(diamond.downstream("s0")) == [
        ("s1", 1, "PREVIOUS_VERSION"),
        ("s2", 2, "PREVIOUS_VERSION"),
        ("c1", 2, "ELEMENT"),
        ("s3", 3, "PREVIOUS_VERSION"),
        ("a1", 3, "COMPOSITION"),
        ("l1", 4, "CAUSE"),
    ]


def test_walks_with_link_types_depth_and_limit(diamond: Graph) -> None:
    assert ids(diamond.upstream("l1", ["SUBJECT", "COMPOSITION", "ELEMENT"])) == [
        ("a1", 1, "SUBJECT"),
        ("c1", 2, "COMPOSITION"),
        ("s1", 3, "ELEMENT"),
        ("s2", 3, "ELEMENT"),
    ]
    assert ids(diamond.upstream("l1", "CAUSE")) == [("s3", 1, "CAUSE")]
    assert ids(diamond.upstream("l1", [])) == []
    assert ids(diamond.upstream("l1", depth=1)) == [("a1", 1, "SUBJECT"), ("s3", 1, "CAUSE")]
    assert ids(diamond.upstream("l1", depth=0)) == []
    assert ids(diamond.upstream("l1", limit=3)) == [
        ("a1", 1, "SUBJECT"),
        ("s3", 1, "CAUSE"),
        ("c1", 2, "COMPOSITION"),
    ]
    assert ids(diamond.downstream("s0", "PREVIOUS_VERSION", depth=2)) == [
        ("s1", 1, "PREVIOUS_VERSION"),
        ("s2", 2, "PREVIOUS_VERSION"),
    ]
    assert diamond.upstream("unknown") == [] and diamond.downstream("unknown") == []


def test_walks_with_event_types(diamond: Graph) -> None:
    # the walk passes through the other events; only these count as hits
    assert ids(diamond.downstream("s0", event_types=["ConfidenceLevelModified"])) == [
        ("l1", 4, "CAUSE")
    ]
    assert ids(diamond.downstream("s0", event_types="EiffelArtifactCreatedEvent", limit=1)) == [
        ("a1", 3, "COMPOSITION")
    ]
    assert ids(diamond.upstream("l1", event_types=["SourceChangeSubmitted"], limit=2)) == [
        ("s3", 1, "CAUSE"),
        ("s2", 2, "PREVIOUS_VERSION"),
    ]
    # max_visits bounds the work, whatever is found
    assert ids(diamond.downstream("s0", max_visits=2)) == [
        ("s1", 1, "PREVIOUS_VERSION"),
        ("s2", 2, "PREVIOUS_VERSION"),
    ]
