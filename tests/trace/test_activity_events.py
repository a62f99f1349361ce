"""The engine's transitions as Eiffel activity events
(``engine.trace.activity``), through the in-process harness, which
validates every event it sees against its schema and the link rules."""

from __future__ import annotations

from typing import Any

import pytest

from engine.testing import ProcessHarness
from engine.trace.activity import activity_id, step_activity_id
from engine.trace.validate import InvalidEvent, validate

THREE = """
name: three
steps:
  - alpha
  - beta
  - gamma
"""


def by_type(events: list[dict[str, Any]], short: str) -> list[dict[str, Any]]:
    return [e for e in events if e["meta"]["type"] == f"Eiffel{short}Event"]


def links(event: dict[str, Any], ltype: str) -> list[str]:
    return [x["target"] for x in event["links"] if x["type"] == ltype]


def name_of(event: dict[str, Any]) -> str:
    return event["data"]["name"]


@pytest.fixture
def h() -> ProcessHarness:
    h = ProcessHarness()
    for name in ("alpha", "beta", "gamma"):
        h.register(name, lambda wi: None)
    return h


def test_a_run_and_its_steps_are_linked_context_precursor_and_execution(h):
    run = h.launch(THREE).wait()
    assert run.status == "finished"
    ev = h.events
    triggered = by_type(ev, "ActivityTriggered")
    assert [name_of(e) for e in triggered] == ["three", "alpha", "beta", "gamma"]
    run_act = triggered[0]
    assert run_act["data"]["categories"] == ["boss.run"]
    assert run_act["meta"]["id"] == activity_id(run.wfid, None, "triggered")
    for step in triggered[1:]:
        assert links(step, "CONTEXT") == [run_act["meta"]["id"]]
    # each step follows the one whose end led to it
    assert links(triggered[1], "PRECURSOR") == []
    assert links(triggered[2], "PRECURSOR") == [triggered[1]["meta"]["id"]]
    assert links(triggered[3], "PRECURSOR") == [triggered[2]["meta"]["id"]]
    finished = by_type(ev, "ActivityFinished")
    assert len(finished) == 4
    assert {links(f, "ACTIVITY_EXECUTION")[0] for f in finished} == {
        t["meta"]["id"] for t in triggered
    }
    assert all(f["data"]["outcome"]["conclusion"] == "SUCCESSFUL" for f in finished)
    # the run's end comes last, its start right after its trigger
    assert ev[-1]["meta"]["type"] == "EiffelActivityFinishedEvent"
    assert links(ev[-1], "ACTIVITY_EXECUTION") == [run_act["meta"]["id"]]
    assert ev[1]["meta"]["type"] == "EiffelActivityStartedEvent"
    # times are integer milliseconds, ids lowercase
    assert all(isinstance(e["meta"]["time"], int) for e in ev)
    assert all(e["meta"]["id"] == e["meta"]["id"].lower() for e in ev)


def test_ids_are_derived_so_a_participant_can_name_its_step_activity(h):
    run = h.launch(THREE).wait()
    step_acts = {name_of(e): e["meta"]["id"] for e in by_type(h.events, "ActivityTriggered")}
    for wi in h.dispatched:
        assert step_activity_id(wi.fei) == step_acts[wi.participant_name]
    assert len(set(step_acts.values())) == 4
    # and the same transition again has the same id (a redone effect is stored once)
    assert (
        activity_id(run.wfid, None, "finished")
        == by_type(h.events, "ActivityFinished")[-1]["meta"]["id"]
    )


def test_a_replayed_step_links_its_first_attempt_as_original_trigger(h):
    def flaky(wi):
        if not wi.fields.get("fixed"):
            raise RuntimeError("broken build")

    h.register("beta", flaky)
    run = h.launch(THREE).wait()
    assert run.status == "error"
    failed = by_type(h.events, "ActivityFinished")[-1]
    assert failed["data"]["outcome"]["conclusion"] == "FAILED"
    run.replay({"fixed": True})
    assert run.wait().status == "finished"
    betas = [e for e in by_type(h.events, "ActivityTriggered") if name_of(e) == "beta"]
    assert len(betas) == 2
    first, second = betas
    assert links(second, "ORIGINAL_TRIGGER") == [first["meta"]["id"]]
    assert links(first, "ORIGINAL_TRIGGER") == []


def test_cancel_before_start_is_canceled_after_start_is_finished_aborted():
    h = ProcessHarness()
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    run = h.launch("name: two\nsteps:\n  - concurrence: [alpha, beta]\n")
    h.pump()
    alpha = h.pending_for("alpha")[0]
    h.engine.deliver(
        {"type": "started", "wfid": run.wfid, "eid": alpha.fei["subid"], "instance": "host:1"}
    )
    h.pump()
    run.cancel()
    run.wait()
    assert run.status == "cancelled"
    by_step = {name_of(e): e["meta"]["id"] for e in by_type(h.events, "ActivityTriggered")}
    canceled = by_type(h.events, "ActivityCanceled")
    assert [links(c, "ACTIVITY_EXECUTION") for c in canceled] == [[by_step["beta"]]]
    started = by_type(h.events, "ActivityStarted")
    assert {"key": "instance", "value": "host:1"} in started[-1]["data"]["customData"]
    aborted = [
        f
        for f in by_type(h.events, "ActivityFinished")
        if f["data"]["outcome"]["conclusion"] == "ABORTED"
    ]
    executions = {links(f, "ACTIVITY_EXECUTION")[0] for f in aborted}
    assert by_step["alpha"] in executions  # the started step
    assert by_step["two"] in executions  # and the run


def test_a_launch_cause_becomes_the_runs_cause_link():
    h = ProcessHarness()
    h.register("alpha", lambda wi: None)
    cause = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
    wfid = h.engine.launch("name: one\nsteps:\n  - alpha\n", cause=[cause])
    h.pump()
    act = by_type(h.events, "ActivityTriggered")[0]
    assert act["meta"]["id"] == activity_id(wfid, None, "triggered")
    assert links(act, "CAUSE") == [cause]
    assert act["data"]["triggers"] == [{"type": "EIFFEL_EVENT"}]


def test_the_harness_rejects_an_event_that_breaks_a_link_rule(h):
    run = h.launch(THREE).wait()
    step = by_type(h.events, "ActivityTriggered")[1]
    finished = by_type(h.events, "ActivityFinished")[0]
    types = {e["meta"]["id"]: e["meta"]["type"] for e in h.events}
    bad = {**step, "links": [{"type": "CONTEXT", "target": finished["meta"]["id"]}]}
    with pytest.raises(InvalidEvent) as exc:
        validate(bad, target_type=types.get)
    assert exc.value.rule == "link-target-type"
    assert run.status == "finished"
