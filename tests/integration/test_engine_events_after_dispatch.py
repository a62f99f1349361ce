"""The engine's consumer builds a message's Eiffel events only when it
publishes them, after the message's dispatches went out: a reply's records
(its step finished, the next one triggered and started) come before the
next step's dispatch in the core's effects, and building their events there
would delay that dispatch (``EngineService._events``). A recording
publisher stands in for the broker."""

from __future__ import annotations

from typing import Any

import pytest

from engine import service as service_module
from engine import wire
from engine.config import Config
from engine.core import effects as fx
from engine.service import EngineService
from engine.store import RedisStore
from tests.integration.test_engine_service import Recorder
from tests.integration.test_engine_service import store as store

TWO = "name: two\nsteps:\n  - alpha\n  - beta\n"


class Bus:
    """Stands in for ``EventBus``: what was published, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def publish(self, events: list[dict[str, Any]]) -> None:
        self.batches.append(events)


def test_a_replys_events_are_built_after_the_next_dispatch_and_published_as_before(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config.load(None, environ={"HOME": "/nonexistent"}, heartbeat=0.5, events=True)
    rec = Recorder()
    svc = EngineService(config, store, rec, engine_id="we.c0")
    bus = Bus()
    svc.bus = bus  # type: ignore[assignment]
    for name in ("alpha", "beta"):
        svc.engine.register(name, f"q.{name}")
    built_at: list[int] = []  # how many dispatches were out when each event was built
    real = service_module.record_event

    def record_event(rec_: fx.Record, **kwargs: Any) -> dict[str, Any]:
        built_at.append(len(rec.dispatched))
        return real(rec_, **kwargs)

    monkeypatch.setattr(service_module, "record_event", record_event)
    svc.handle(wire.dumps({"definition": TWO, "wfid": "e1"}))
    assert len(rec.dispatched) == 1 and built_at and set(built_at) == {1}
    built_at.clear()
    svc.handle(wire.dumps(rec.dispatched[-1].workitem))  # alpha's reply: beta dispatched
    assert [d.participant for d in rec.dispatched] == ["alpha", "beta"]
    assert built_at and set(built_at) == {2}  # none before beta's dispatch
    # what is published is the events of the records, in their order
    kinds = [(e["meta"]["type"], e["data"].get("name")) for e in bus.batches[-1]]
    assert kinds[0][0] == "EiffelActivityFinishedEvent"
    assert ("EiffelActivityTriggeredEvent", "beta") in kinds
    assert kinds.index(("EiffelActivityTriggeredEvent", "beta")) > 0
