"""``events_linger``: an engine consumer holds a message's Eiffel events for
the next messages' and publishes them together, one trace-queue message for
several engine messages, at the latest ``events_linger`` seconds after the
first; the messages are acknowledged only after that (on RabbitMQ and on
the embedded broker, a real in-process worker; the test is the participant)."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator

import kombu
import pytest

from engine import wire
from engine.broker import Publisher, connect, participant_queue, queue_info
from engine.config import Config
from engine.core import messages
from engine.engine import Engine
from engine.trace import TraceTopology
from engine.worker import EngineWorker
from tests.conftest import delete_keys
from tests.waiting import wait_for

THREE = "name: linger\nsteps:\n  - l_alpha\n  - l_beta\n  - l_gamma\n"
LINGER = 1.0
DEADLINE = 60.0


@pytest.fixture
def config(broker_url: str, embedded_url: str, key_prefix: str) -> Iterator[Config]:
    suffix = uuid.uuid4().hex[:8]
    config = Config.load(
        None,
        environ={"HOME": "/nonexistent"},
        broker_url=broker_url,
        redis_url=embedded_url,
        key_prefix=key_prefix,
        engine_queue=f"boss.engine.{suffix}",
        deadletter_queue=f"boss.deadletter.{suffix}",
        control_exchange=f"boss.control.{suffix}",
        event_exchange=f"boss.eiffel.{suffix}",
        trace_queue=f"boss.trace.{suffix}",
        trace_deadletter_queue=f"boss.trace.dead.{suffix}",
        events=True,
        events_linger=LINGER,
        trace_threads=0,
        heartbeat=0.5,
    )
    yield config
    with connect(config) as conn, conn.channel() as channel:
        queues = [config.engine_queue, config.deadletter_queue, config.trace_queue]
        queues += [f"q.{s}.{config.engine_queue}" for s in ("l_alpha", "l_beta", "l_gamma")]
        for name in queues:
            with contextlib.suppress(Exception):
                kombu.Queue(name, durable=True)(channel).delete()


def trace_messages(config: Config) -> list[object]:
    """The trace queue's messages (taken off), each a list of events."""
    got = []
    with connect(config) as conn, conn.channel() as channel:
        q = TraceTopology(config).queue(channel)
        q.declare()
        while (m := q.get(no_ack=True, accept=["application/json"])) is not None:
            body = json.loads(m.body)
            got.append(body if isinstance(body, list) else [body])
    return got


def register_steps(engine: Engine, config: Config) -> None:
    for step in ("l_alpha", "l_beta", "l_gamma"):
        engine.register(step, f"q.{step}.{config.engine_queue}")


def take(config: Config, step: str) -> dict[str, object]:
    """The next workitem on ``step``'s queue."""
    with connect(config) as conn, conn.channel() as channel:
        q = participant_queue(f"q.{step}.{config.engine_queue}")(channel)
        q.declare()
        message = wait_for(
            lambda: q.get(no_ack=True, accept=["application/json"]),
            DEADLINE,
            f"a workitem for {step}",
        )
        return wire.decode(message.body)


def test_the_events_of_several_messages_go_in_one_publish_after_the_linger(
    config: Config,
) -> None:
    worker = EngineWorker(config, threads=1).start()
    try:
        register_steps(Engine(worker.store()), config)
        publisher = Publisher(config)
        try:
            t0 = time.monotonic()
            publisher.send(messages.launch_item(definition=THREE, wfid="linger-1"))
            alpha = take(config, "l_alpha")
            publisher.send(alpha)  # the reply, within the linger
            take(config, "l_beta")
            held = time.monotonic() - t0 < LINGER / 2
            if held:  # (a slow machine may have passed the linger already)
                assert trace_messages(config) == []  # nothing published yet
            batches = wait_for(lambda: trace_messages(config), DEADLINE, "the held events")
        finally:
            publisher.close()
        events = [e for batch in batches for e in batch]  # type: ignore[attr-defined]
        names = [e["data"].get("name") for e in events if "name" in e.get("data", {})]
        assert "l_alpha" in names and "l_beta" in names  # both messages' events...
        if held:
            assert len(batches) == 1  # ...in one publish
        with connect(config) as conn:
            assert queue_info(conn, config.engine_queue).messages == 0
    finally:
        worker.stop(timeout=10)
        delete_keys(worker.store().client, config.key_prefix)


def test_events_that_cannot_be_published_give_their_messages_back(
    config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure no retry cures (not a lost connection: that one is
    published again inside) leaves the consumer thread running: the held
    messages are given back, as a message whose handling raised, and the
    run goes on."""
    from engine.trace.bus import EventBus

    real = EventBus.publish
    failed: list[int] = []

    def publish_once_failing(self: EventBus, events: object) -> None:
        if not failed:
            failed.append(1)
            raise RuntimeError("events cannot be published")
        real(self, events)  # type: ignore[arg-type]

    monkeypatch.setattr(EventBus, "publish", publish_once_failing)
    worker = EngineWorker(config, threads=1).start()
    try:
        engine = Engine(worker.store())
        register_steps(engine, config)
        publisher = Publisher(config)

        def run(wfid: str) -> None:
            publisher.send(messages.launch_item(definition=THREE, wfid=wfid))
            for step in ("l_alpha", "l_beta", "l_gamma"):
                publisher.send(take(config, step))
            wait_for(lambda: engine.status(wfid) == "finished", DEADLINE, f"{wfid} to finish")

        try:
            run("linger-2")
            # the events held go after the linger: that publish fails
            wait_for(lambda: failed, DEADLINE, "the failed publish of the events")
            wait_for(
                lambda: "message failed (attempt 1 of 5)" in caplog.text,
                DEADLINE,
                "the held messages given back",
            )
            run("linger-3")  # the same consumer thread goes on
        finally:
            publisher.close()
        assert "failed; restarting" not in caplog.text
        with connect(config) as conn:
            wait_for(
                lambda: queue_info(conn, config.engine_queue).messages == 0,
                DEADLINE,
                "the engine's queue to drain",
            )
    finally:
        worker.stop(timeout=10)
        delete_keys(worker.store().client, config.key_prefix)
