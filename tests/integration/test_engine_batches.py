"""``EngineService.handle_batch`` and ``Engine.deliver_many``: bodies taken
together from the engine's queue are applied as one batch, with the same
results and the same crash safety as one at a time (a recording publisher
stands in for the broker here; the workers' batches over RabbitMQ and the
embedded broker run in tests/e2e and tests/integration/test_no_double_execution.py,
and ``Publisher.confirming`` on RabbitMQ in tests/integration/test_confirms.py)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from engine import wire
from engine.core import runstate
from engine.service import Incoming
from engine.store import RedisStore
from tests.integration import test_engine_service as one_at_a_time
from tests.integration.test_engine_service import DiesAfterStoring, Recorder, service

#: the same Redis store fixture as one-at-a-time handling's tests
store = one_at_a_time.store

PAR = """\
name: par
steps:
  - concurrence:
      branches:
        - alpha
        - beta
  - gamma
"""


def launch(svc: Any, rec: Recorder, wfids: list[str]) -> list[bytes]:
    """Launch a ``PAR`` run per wfid; the replies to every first dispatch."""
    for p in ("alpha", "beta", "gamma"):
        svc.engine.register(p, f"q.{p}")
    for wfid in wfids:
        assert svc.handle(wire.dumps({"definition": PAR, "wfid": wfid})) == f"launched {wfid}"
    return [wire.dumps(d.workitem) for d in rec.dispatched]


def test_a_batch_applies_every_message_of_every_run_as_one_at_a_time_would(
    store: RedisStore,
) -> None:
    """Two runs, both branches of each replied in one batch (two messages
    for one run: applied in order to one state, stored once) plus a launch,
    a malformed body and a message for an unknown run: every run moves on
    exactly as one-at-a-time handling moves it."""
    rec = Recorder()
    svc = service(store, rec, "wb.c0")
    replies = launch(svc, rec, ["b1", "b2"])
    assert len(replies) == 4
    rec.dispatched.clear()
    bodies = [
        *replies,
        wire.dumps({"definition": PAR, "wfid": "b3"}),
        b'{"type": "reply", "wfid":',
        wire.dumps({"type": "continue", "wfid": "nope", "id": "c1"}),
    ]
    versions = {w: store.load_run(w)[1] for w in ("b1", "b2")}
    out = svc.handle_batch([Incoming(b) for b in bodies])

    assert out[:4] == ["reply applied"] * 4, out
    assert out[4] == "launched b3"
    assert isinstance(out[5], str) and out[5].startswith("dead-lettered"), out[5]
    assert "unknown run nope ignored" in out[6]
    # each run's two replies went into one save: one version step, not two
    assert {w: store.load_run(w)[1] for w in ("b1", "b2")} == {
        w: v + 1 for w, v in versions.items()
    }
    # both branches done: gamma dispatched once per run, and b3's branches
    got = sorted((d.workitem["fei"]["wfid"], d.participant) for d in rec.dispatched)
    assert got == [("b1", "gamma"), ("b2", "gamma"), ("b3", "alpha"), ("b3", "beta")]
    # each applied message has its own outbox entry (a redelivery of any
    # one of them is recognised)
    outbox = store.load_run("b1")[0]["outbox"]
    assert len([e for e in outbox if e[1] == "wb.c0"]) == 2
    assert len(rec.letters) == 1


def test_a_redelivered_message_in_a_batch_is_a_duplicate_as_alone(store: RedisStore) -> None:
    rec = Recorder()
    svc = service(store, rec, "wd.c0")
    replies = launch(svc, rec, ["d1", "d2"])
    rec.dispatched.clear()
    assert svc.handle(replies[0]) == "reply applied"  # d1's alpha, alone
    out = svc.handle_batch([Incoming(replies[0]), Incoming(replies[2])])
    assert "duplicate" in out[0] and "ignored" in out[0], out
    assert out[1] == "reply applied"
    assert [d.participant for d in rec.dispatched] == []  # neither run is past its concurrence


def test_a_batch_whose_engine_dies_after_storing_is_carried_out_by_the_next(
    store: RedisStore,
) -> None:
    """Worker A stores a batch's effects and dies before publishing them;
    the broker gives the whole batch to B once A is gone: B sends what A
    owed, for every run of the batch, and applies nothing twice."""
    rec = Recorder()
    b = service(store, rec, "workerB.c0")
    replies = launch(b, rec, ["k1", "k2"])
    rec.dispatched.clear()
    store.engine_heartbeat("workerB", 30, {})
    a = service(store, DiesAfterStoring(), "workerA.c0")
    store.engine_heartbeat("workerA", 30, {})
    with pytest.raises(SystemExit):
        a.handle_batch([Incoming(r) for r in replies])
    versions = {w: store.load_run(w)[1] for w in ("k1", "k2")}

    store.engine_gone("workerA")
    out = b.handle_batch([Incoming(r) for r in replies])
    assert all("which is gone: its effects were sent again" in o for o in out[::2]), out
    got = sorted((d.workitem["fei"]["wfid"], d.participant) for d in rec.dispatched)
    assert got == [("k1", "gamma"), ("k2", "gamma")]
    # the runs' states were not applied again: only the owner of each
    # message's outbox entry changed (one save per message taken over)
    for w in ("k1", "k2"):
        state, version = store.load_run(w)
        assert version == versions[w] + 2
        assert [p.participant for p in runstate.positions(runstate.upgrade(state))] == ["gamma"]


def test_a_run_that_changed_under_the_batch_is_applied_one_at_a_time(
    store: RedisStore,
) -> None:
    """Another engine stores one run between the batch's load and its save:
    that run's compare-and-set fails and its message is applied again alone
    (on the newer state); the other run of the batch is stored as batched."""
    rec = Recorder()
    svc = service(store, rec, "wc.c0")
    replies = launch(svc, rec, ["c1", "c2"])
    rec.dispatched.clear()
    real_load = store.load_runs

    def load_then_race(wfids: list[str]) -> Any:
        loaded = real_load(wfids)
        state, version = store.load_run("c1")
        store.save_run(state, version)  # another engine's write
        return loaded

    store.load_runs = load_then_race  # type: ignore[method-assign]
    conflicts = svc.engine.conflicts
    out = svc.handle_batch([Incoming(replies[0]), Incoming(replies[2])])
    store.load_runs = real_load  # type: ignore[method-assign]
    assert out == ["reply applied", "reply applied"], out
    assert svc.engine.conflicts == conflicts + 1
    for w in ("c1", "c2"):
        state = runstate.upgrade(store.load_run(w)[0])
        assert sorted(p.participant for p in runstate.positions(state)) == ["beta"]


def test_a_message_whose_core_raises_is_handled_alone_and_spares_the_rest(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message the core cannot apply falls out of the batch; it fails
    alone (so it is retried, then dead-lettered, by itself) while the
    batch's other runs are stored and carried out."""
    from engine.core import interpreter

    rec = Recorder()
    svc = service(store, rec, "wp.c0")
    replies = launch(svc, rec, ["p1", "p2"])
    rec.dispatched.clear()
    real = interpreter.handle

    def handle(d: Any, state: dict[str, Any], msg: dict[str, Any], **kw: Any) -> Any:
        if state["wfid"] == "p1":
            raise RuntimeError("a bug in the core")
        return real(d, state, msg, **kw)

    monkeypatch.setattr(interpreter, "handle", handle)
    before = store.load_run("p1")[1]
    out = svc.handle_batch([Incoming(replies[0]), Incoming(replies[2])])
    assert isinstance(out[0], RuntimeError)
    assert out[1] == "reply applied"
    assert store.load_run("p1")[1] == before  # nothing of p1's stored


class FailsOnce(Recorder):
    """A dispatch that fails once, as the broker or the store failing right
    after a message's save."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def dispatch(self, effect: Any) -> None:
        if self.fail:
            self.fail = False
            raise redis.ConnectionError("gone for a moment")
        super().dispatch(effect)


@pytest.mark.parametrize("batched", [False, True])
def test_a_message_whose_effects_failed_after_its_save_is_carried_out_when_it_comes_again(
    store: RedisStore, batched: bool
) -> None:
    """The save stood but carrying out its effects raised: the message is
    not acknowledged and comes again to the same engine, whose outbox entry
    it is. It must not be taken for a duplicate (the run would stall): its
    effects are sent then."""
    rec = FailsOnce()
    svc = service(store, rec, "wf.c0")
    replies = launch(svc, rec, ["f1", "f2"])
    rec.dispatched.clear()
    assert svc.handle(replies[0]) == "reply applied"  # f1's alpha: its beta still runs
    rec.fail = True
    if batched:
        assert svc.handle(replies[2]) == "reply applied"  # f2's alpha
        out = svc.handle_batch([Incoming(replies[1]), Incoming(replies[3])])
        assert all(isinstance(o, redis.ConnectionError) for o in out), out
        out = svc.handle_batch([Incoming(replies[1]), Incoming(replies[3])])
    else:
        with pytest.raises(redis.ConnectionError):
            svc.handle(replies[1])
        out = [svc.handle(replies[1])]
    assert all("came again after its handling failed here" in o for o in out), out
    got = sorted((d.workitem["fei"]["wfid"], d.participant) for d in rec.dispatched)
    assert got == ([("f1", "gamma"), ("f2", "gamma")] if batched else [("f1", "gamma")])
    # and a third delivery is a duplicate again
    assert "duplicate" in svc.handle(replies[1])


def test_timer_writes_in_a_deferred_block_are_sent_together_at_its_end(
    store: RedisStore,
) -> None:
    """A reply cancels its step's lease timer and the next dispatch sets
    one: inside ``deferred_timers`` those writes wait and go in one atomic
    round trip when the block ends (also when it raises)."""
    store.schedule_timer("w:e1:lease", 100.0, {"type": "timer", "n": 1})
    with store.deferred_timers():
        store.cancel_timer("w:e1:lease")
        store.schedule_timer("w:e2:lease", 200.0, {"type": "timer", "n": 2})
        with store.deferred_timers():  # nested: the outer block sends
            store.schedule_timer("w:e3:lease", 300.0, {"type": "timer", "n": 3})
        assert [t[0] for t in store.timers()] == ["w:e1:lease"]  # nothing sent yet
    assert [(t[0], t[2]["n"]) for t in store.timers()] == [("w:e2:lease", 2), ("w:e3:lease", 3)]
    with pytest.raises(RuntimeError), store.deferred_timers():
        store.cancel_timer("w:e2:lease")
        raise RuntimeError("the block failed after a write")
    assert [t[0] for t in store.timers()] == ["w:e3:lease"]
