"""Leases: a participant that takes a long step says ``started`` with a lease;
without heartbeats the engine dispatches the workitem again
(docs/wire-protocol.md, *Leases*)."""

from __future__ import annotations

from engine.testing import ProcessHarness

ONE_STEP = """
name: long
steps:
  - participant: build
  - participant: after
"""


def started(h: ProcessHarness, wi, lease: float = 30.0) -> None:
    h.engine.deliver({"type": "started", "wfid": wi.wfid, "eid": wi.fei["subid"],
                      "lease": lease, "instance": "host:1:a", "workitem": wi.to_dict()})


def lease_timers(h: ProcessHarness, wfid: str) -> list[str]:
    return [t for t, _, _ in h.store.timers(wfid) if t.endswith(":lease")]


def test_started_records_the_start_once_and_sets_a_lease(h: ProcessHarness) -> None:
    h.register("build", reply=False)
    h.register("after")
    run = h.launch(ONE_STEP)
    h.pump()
    (wi,) = h.pending_for("build")
    started(h, wi)
    started(h, wi)  # a second notice: the step is already started
    starts = [r for r in h.records if r.entity == "step" and r.event == "started"]
    assert [(r.name, r.data.get("instance")) for r in starts] == [("build", "host:1:a")]
    assert len(lease_timers(h, run.wfid)) == 1
    h.reply(wi)
    assert run.status == "finished"
    assert lease_timers(h, run.wfid) == []  # the reply cancelled the lease


def test_a_lapsed_lease_dispatches_the_workitem_again(h: ProcessHarness) -> None:
    h.register("build", reply=False)
    h.register("after")
    run = h.launch(ONE_STEP)
    h.pump()
    (wi,) = h.pending_for("build")
    started(h, wi, lease=10)
    h.advance(9)
    assert len([d for d in h.dispatched if d.participant_name == "build"]) == 1
    # a heartbeat pushes the lease forward (the adapter reschedules the timer)
    assert h.store.reschedule_timer(f"{run.wfid}:{wi.fei['subid']}:lease", h.clock() + 10)
    h.advance(9)
    assert len([d for d in h.dispatched if d.participant_name == "build"]) == 1
    h.advance(2)  # no heartbeat for 10 s: dispatched again, same fei
    again = [d for d in h.dispatched if d.participant_name == "build"]
    assert len(again) == 2 and again[1].fei == wi.fei
    assert lease_timers(h, run.wfid) == []
    # the new instance replies; the presumed-dead one's late reply is ignored
    (wi2,) = h.pending_for("build")
    h.reply(wi2)
    h.reply(wi)
    assert run.status == "finished"
    assert len([d for d in h.dispatched if d.participant_name == "after"]) == 1


def test_cancel_drops_the_lease(h: ProcessHarness) -> None:
    h.register("build", reply=False)
    run = h.launch(ONE_STEP)
    h.pump()
    (wi,) = h.pending_for("build")
    started(h, wi, lease=5)
    run.cancel()
    h.pump()
    assert run.status == "cancelled"
    assert lease_timers(h, run.wfid) == []
    h.advance(10)
    assert len(h.dispatched) == 1


def test_started_for_a_step_that_is_done_is_ignored(h: ProcessHarness) -> None:
    h.register("build", reply=False)
    h.register("after")
    run = h.launch(ONE_STEP)
    h.pump()
    (wi,) = h.pending_for("build")
    h.reply(wi)
    started(h, wi)  # came late (the engine took the reply first)
    assert run.status == "finished"
    assert lease_timers(h, run.wfid) == []
