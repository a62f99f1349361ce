"""PRECURSOR links after a concurrence: the step that follows the join is
linked to the step that ended each branch which ended the concurrence, not
only to the last branch to end (``docs/traceability.md``: "PRECURSOR -> the
steps whose end led to it"). Through the in-process harness, which validates
every event against its schema and the link rules; each branch's step is
held and answered in a chosen order, one message each."""

from __future__ import annotations

from typing import Any

import pytest

from engine.testing import HarnessRun, ProcessHarness
from engine.trace.activity import activity_id


def triggered(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in events
        if e["meta"]["type"] == "EiffelActivityTriggeredEvent" and e["data"]["name"] == name
    ]


def step_of(event: dict[str, Any]) -> str:
    (eid,) = [c["value"] for c in event["data"]["customData"] if c["key"] == "step"]
    return eid


def precursors(event: dict[str, Any]) -> list[str]:
    return [x["target"] for x in event["links"] if x["type"] == "PRECURSOR"]


@pytest.fixture
def h() -> ProcessHarness:
    h = ProcessHarness()
    for name in ("b1", "b2", "b3", "b1_first"):
        h.register(name, reply=False)  # held: the test answers each
    h.register("join", lambda wi: None)
    h.register("before", lambda wi: None)
    return h


def answer(h: ProcessHarness, run: HarnessRun, order: list[str]) -> None:
    for name in order:
        (wi,) = h.pending_for(name)
        h.reply(wi)


def step_ids(h: ProcessHarness, run: HarnessRun, *names: str) -> list[str]:
    return [activity_id(run.wfid, step_of(triggered(h.events, n)[0]), "triggered") for n in names]


def test_the_step_after_a_three_branch_concurrence_follows_every_branch(
    h: ProcessHarness,
) -> None:
    run = h.launch("name: c3\nsteps:\n  - before\n  - concurrence: [b1, b2, b3]\n  - join\n")
    h.wait_until(lambda: len(h.pending) == 3)
    answer(h, run, ["b2", "b3", "b1"])
    run.wait()
    assert run.status == "finished"
    (join,) = triggered(h.events, "join")
    # every branch's end, in the order they ended; not the step before
    assert precursors(join) == step_ids(h, run, "b2", "b3", "b1")
    # each branch's step follows the step whose end started the concurrence
    for name in ("b1", "b2", "b3"):
        (branch,) = triggered(h.events, name)
        assert precursors(branch) == step_ids(h, run, "before")


def test_a_branch_of_several_steps_is_followed_through_its_last_step(
    h: ProcessHarness,
) -> None:
    run = h.launch(
        "name: seq\nsteps:\n"
        "  - concurrence:\n"
        "      - sequence: [b1_first, b1]\n"
        "      - b2\n"
        "  - join\n"
    )
    h.wait_until(lambda: len(h.pending) == 2)
    answer(h, run, ["b2", "b1_first", "b1"])
    run.wait()
    (join,) = triggered(h.events, "join")
    assert precursors(join) == step_ids(h, run, "b2", "b1")


def test_branches_cancelled_when_a_count_is_reached_are_no_precursors(
    h: ProcessHarness,
) -> None:
    run = h.launch(
        "name: count\nsteps:\n  - concurrence: {count: 2, branches: [b1, b2, b3]}\n  - join\n"
    )
    h.wait_until(lambda: len(h.pending) == 3)
    answer(h, run, ["b3", "b1"])
    run.wait()
    assert run.status == "finished"
    (join,) = triggered(h.events, "join")
    assert precursors(join) == step_ids(h, run, "b3", "b1")


def test_a_concurrent_iterator_join_follows_every_branch(h: ProcessHarness) -> None:
    run = h.launch(
        "name: iter\nsteps:\n  - concurrent_iterator: {on: [x, y, z], steps: [b1]}\n  - join\n"
    )
    h.wait_until(lambda: len(h.pending) == 3)
    for wi in list(h.pending_for("b1")):
        h.reply(wi)
    run.wait()
    (join,) = triggered(h.events, "join")
    branches = {activity_id(run.wfid, step_of(e), "triggered") for e in triggered(h.events, "b1")}
    assert len(branches) == 3
    assert set(precursors(join)) == branches and len(precursors(join)) == 3
