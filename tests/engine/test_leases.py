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
    h.engine.deliver(
        {
            "type": "started",
            "wfid": wi.wfid,
            "eid": wi.fei["subid"],
            "lease": lease,
            "instance": "host:1:a",
            "workitem": wi.to_dict(),
        }
    )


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


# -- the dispatch lease (on for kombu's Redis transport, which can lose a
#    delivery to a consumer killed while reading it) -------------------------


def launched_with_dispatch_lease(h: ProcessHarness, seconds: float = 5.0):
    """A run of ONE_STEP whose first step waits, under a dispatch lease."""
    h.engine.dispatch_lease = seconds
    h.register("build", reply=False)
    h.register("after")
    run = h.launch(ONE_STEP)
    h.pump()
    return run


def builds(h: ProcessHarness) -> list:
    return [d for d in h.dispatched if d.participant_name == "build"]


def test_a_dispatch_without_reply_or_started_is_sent_again(h: ProcessHarness) -> None:
    run = launched_with_dispatch_lease(h)
    assert len(lease_timers(h, run.wfid)) == 1
    h.advance(4)
    assert len(builds(h)) == 1
    h.advance(2)  # lost on the way (or its reply was): the same workitem again
    assert len(builds(h)) == 2 and builds(h)[1].fei == builds(h)[0].fei
    assert len(lease_timers(h, run.wfid)) == 1  # and it is watched again
    h.advance(6)
    assert len(builds(h)) == 3
    h.reply(h.pending_for("build")[0])
    assert run.wait().status == "finished"
    assert lease_timers(h, run.wfid) == []
    assert len(builds(h)) == 3


def test_a_started_step_is_watched_by_its_heartbeat_lease_instead(h: ProcessHarness) -> None:
    run = launched_with_dispatch_lease(h)
    (wi,) = h.pending_for("build")
    started(h, wi, lease=30)
    h.advance(20)  # past the dispatch lease: the heartbeat lease rules now
    assert len(builds(h)) == 1
    h.reply(wi)
    assert run.wait().status == "finished"


def test_started_without_a_lease_ends_the_dispatch_lease(h: ProcessHarness) -> None:
    run = launched_with_dispatch_lease(h)
    (wi,) = h.pending_for("build")
    h.engine.deliver({"type": "started", "wfid": wi.wfid, "eid": wi.fei["subid"]})
    h.pump()
    assert lease_timers(h, run.wfid) == []
    h.advance(60)
    assert len(builds(h)) == 1


def test_no_dispatch_lease_by_default() -> None:
    """Off by default on both brokers: RabbitMQ loses no delivery, and the
    embedded broker's transport gives a killed consumer's messages back
    (tests/integration/test_killed_consumer.py); an older Redis sets it."""
    from engine.config import Config

    amqp = Config.load(None, environ={}, broker_url="amqp://guest:guest@h:5672/")
    redis_ = Config.load(None, environ={}, broker_url="redis://h:6379/0", lease_after=2, lease=60)
    assert amqp.resolved_dispatch_lease() == 0.0
    assert redis_.resolved_dispatch_lease() == 0.0
    assert Config.load(None, environ={}).resolved_dispatch_lease() == 0.0  # embedded
    assert (
        Config.load(
            None, environ={}, broker_url="amqp://h/", dispatch_lease=7
        ).resolved_dispatch_lease()
        == 0.0
    )
    assert (
        Config.load(
            None, environ={}, broker_url="redis://h/0", dispatch_lease=7
        ).resolved_dispatch_lease()
        == 7.0
    )
