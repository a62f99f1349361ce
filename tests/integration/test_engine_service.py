"""``engine.service.EngineService``: one engine-queue body at a time, as a
worker's consumer thread hands them over (no broker here: a recording
publisher stands in for ``engine.broker.Publisher``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from engine import wire
from engine.config import Config
from engine.core import effects as fx
from engine.service import EngineService
from engine.store import RedisStore
from tests.conftest import delete_keys


class Recorder:
    """What the service would have published."""

    def __init__(self) -> None:
        self.dispatched: list[fx.Dispatch] = []
        self.sent: list[dict[str, Any]] = []
        self.letters: list[dict[str, Any]] = []

    def dispatch(self, effect: fx.Dispatch) -> None:
        self.dispatched.append(effect)

    def cancel(self, effect: fx.CancelWorkitem) -> None:
        pass

    def send(self, msg: dict[str, Any]) -> None:
        self.sent.append(msg)

    def deadletter(self, record: dict[str, Any]) -> None:
        self.letters.append(record)


class DiesAfterStoring(Recorder):
    def dispatch(self, effect: fx.Dispatch) -> None:
        raise SystemExit("killed between storing and dispatching")


@pytest.fixture
def store(redis_url: str, key_prefix: str) -> Iterator[RedisStore]:
    s = RedisStore(redis_url, prefix=key_prefix)
    yield s
    delete_keys(s.client, key_prefix)
    s.close()


def service(store: RedisStore, publisher: Recorder, engine_id: str) -> EngineService:
    config = Config.load(None, environ={"HOME": "/nonexistent"}, heartbeat=0.5, events=False)
    return EngineService(config, store, publisher, engine_id=engine_id)


TWO = "name: two\nsteps:\n  - alpha\n  - beta\n"


def test_a_redelivery_from_a_live_engine_is_deferred_then_settled(store: RedisStore) -> None:
    """Worker A stores a reply and dies before dispatching. Its message comes
    to worker B while A's heartbeat still runs: B defers it to a timer; when
    the timer fires and A's heartbeat has run out, B sends what A owed."""
    rec = Recorder()
    b = service(store, rec, "workerB.c0")
    b.engine.register("alpha", "q.alpha")
    b.engine.register("beta", "q.beta")
    store.engine_heartbeat("workerB", 30, {})
    b.handle(wire.dumps({"definition": TWO, "wfid": "w1"}))
    (alpha,) = rec.dispatched
    reply = wire.dumps(alpha.workitem)

    a = service(store, DiesAfterStoring(), "workerA.c0")
    store.engine_heartbeat("workerA", 30, {})  # alive, as far as anyone knows
    with pytest.raises(SystemExit):
        a.handle(reply)

    outcome = b.handle(reply)  # the broker gives A's unacked message to B
    assert outcome.startswith("redelivery deferred"), outcome
    (timer,) = [t for t in store.timers() if t[0].startswith("redeliver:")]
    assert timer[2]["message"]["workitem"]["fei"] == alpha.workitem["fei"]
    assert [d.participant for d in rec.dispatched] == ["alpha"]  # nothing sent yet

    store.engine_gone("workerA")  # A's heartbeat runs out
    outcome = b.handle_timer(timer[2])
    assert "which is gone: its effects were sent again" in outcome
    assert [d.participant for d in rec.dispatched] == ["alpha", "beta"]


def test_a_duplicate_from_a_live_engine_is_ignored_after_the_recheck(store: RedisStore) -> None:
    rec = Recorder()
    b = service(store, rec, "workerB.c0")
    b.engine.register("alpha", "q.alpha")
    b.engine.register("beta", "q.beta")
    b.handle(wire.dumps({"definition": TWO, "wfid": "w2"}))
    reply = wire.dumps(rec.dispatched[0].workitem)
    a = service(store, Recorder(), "workerA.c1")
    store.engine_heartbeat("workerA", 30, {})
    a.handle(reply)  # A applied it and carried it out
    assert b.handle(reply).startswith("redelivery deferred")
    (timer,) = [t for t in store.timers() if t[0].startswith("redeliver:")]
    outcome = b.handle_timer(timer[2])  # A is still alive: it was a duplicate
    assert "duplicate" in outcome and "ignored" in outcome
    assert [d.participant for d in rec.dispatched] == ["alpha"]


def test_launches_are_idempotent_on_their_wfid(store: RedisStore) -> None:
    rec = Recorder()
    s = service(store, rec, "w.c0")
    s.engine.register("alpha", "q.alpha")
    item = wire.dumps({"definition": TWO, "wfid": "w3", "fields": {"x": 1}})
    assert s.handle(item) == "launched w3"
    assert s.handle(item) == "launched w3"  # the same launch again: no second run
    assert len(rec.dispatched) == 1 and rec.letters == []
    other = wire.dumps({"definition": "name: other\nsteps:\n  - alpha\n", "wfid": "w3"})
    outcome = s.handle(other)
    assert outcome.startswith("dead-lettered") and "already has wfid w3" in outcome
    assert json.loads(rec.letters[0]["body"])["definition"].startswith("name: other")


def test_heartbeats_push_a_lease_and_registrations_are_stored(store: RedisStore) -> None:
    s = service(store, Recorder(), "w.c0")
    assert (
        s.handle(
            wire.dumps({"type": "register", "pattern": "build_.*", "queue": "q.b", "regex": True})
        )
        == "registered build_.* -> q.b"
    )
    assert [(r.pattern, r.queue, r.regex) for r in store.participants()] == [
        ("build_.*", "q.b", True)
    ]
    store.schedule_timer("w9:e1:lease", 1.0, {"type": "timer"})
    out = s.handle(wire.dumps({"type": "alive", "wfid": "w9", "eid": "e1", "lease": 60}))
    assert out == "lease of w9/e1 renewed"
    assert store.timers()[0][1] > 1000
    out = s.handle(wire.dumps({"type": "alive", "wfid": "w9", "eid": "nope", "lease": 60}))
    assert "ignored: no lease" in out
    assert (
        s.handle(wire.dumps({"type": "unregister", "pattern": "build_.*"}))
        == "unregistered build_.*"
    )
