"""Bad input published straight onto the engine's queue with a plain kombu
producer, on RabbitMQ and on the embedded broker: each body is dead-lettered
or ignored, with its reason, and the log says what really happened; a body
that cannot be read is dead-lettered at once (never retried); no consumer
thread crashes; a live run waiting on a step is left exactly as it was, and
then completes normally on the same worker.

The engine is a real in-process worker; the test is the live run's
participant (it takes the workitems from the participant queues itself).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import kombu
import pytest

from engine import wire
from engine.broker import Publisher, connect, list_deadletters, participant_queue
from engine.config import Config
from engine.core import messages
from engine.engine import Engine
from engine.service import EngineService, Incoming
from engine.store.memory import MemoryStore
from engine.worker import EngineWorker
from tests.conftest import delete_keys
from tests.integration.test_engine_service import Recorder
from tests.waiting import wait_for

TWO = "name: live\nsteps:\n  - bad_alpha\n  - bad_beta\n"
#: seconds any one outcome may take on a loaded machine
DEADLINE = 60.0


@dataclass
class Live:
    """A worker, and a run of ``TWO`` waiting on its first step."""

    config: Config
    worker: EngineWorker
    engine: Engine
    suffix: str
    wfid: str
    workitem: dict[str, Any]

    def publish(self, body: bytes) -> None:
        """A plain kombu publish onto the engine's queue."""
        with connect(self.config) as conn:
            kombu.Producer(conn).publish(
                body,
                exchange="",
                routing_key=self.config.engine_queue,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
            )

    def letters(self) -> list[dict[str, Any]]:
        with connect(self.config) as conn:
            return list_deadletters(self.config, conn)

    def take(self, step: str) -> dict[str, Any]:
        with connect(self.config) as conn, conn.channel() as channel:
            q = participant_queue(f"q.{step}.{self.suffix}")(channel)
            q.declare()
            message = wait_for(
                lambda: q.get(no_ack=True, accept=["application/json"]),
                DEADLINE,
                f"a workitem for {step}",
            )
            return wire.decode(message.body)

    def reply(self, workitem: dict[str, Any]) -> None:
        self.publish(wire.dumps(workitem))


@pytest.fixture
def live(broker_url: str, embedded_url: str, key_prefix: str) -> Iterator[Live]:
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
        events=False,
        trace_threads=0,
        heartbeat=0.5,
    )
    worker = EngineWorker(config, threads=1).start()
    engine = Engine(worker.store())
    engine.register("bad_alpha", f"q.bad_alpha.{suffix}")
    engine.register("bad_beta", f"q.bad_beta.{suffix}")
    wfid = f"bad-{suffix}"
    publisher = Publisher(config)
    try:
        publisher.send(messages.launch_item(definition=TWO, wfid=wfid))
    finally:
        publisher.close()
    s = Live(config, worker, engine, suffix, wfid, {})
    try:
        s.workitem = s.take("bad_alpha")
        yield s
    finally:
        worker.stop(timeout=10)
        with connect(config) as conn, conn.channel() as channel:
            queues = [config.engine_queue, config.deadletter_queue]
            queues += [f"q.{step}.{suffix}" for step in ("bad_alpha", "bad_beta")]
            for name in queues:
                with contextlib.suppress(Exception):
                    kombu.Queue(name, durable=True)(channel).delete()
        delete_keys(worker.store().client, key_prefix)


def _reply(wi: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of workitem ``wi`` with its fei changed."""
    out = copy.deepcopy(wi)
    out["fei"].update(changes)
    return out


@dataclass(frozen=True)
class Case:
    """A bad body, and what must become of it: ``letter`` (a substring of
    its dead letter's reason) or ``ignored`` (a substring of the log line
    that says the engine ignored it)."""

    body: Callable[[Live], bytes]
    letter: str | None = None
    ignored: str | None = None


BIG = 20 * 1024 * 1024

CASES = {
    "malformed-json": Case(lambda s: b'{"type": "cancel", "wfid": ', letter="not JSON: "),
    "a-json-list": Case(lambda s: b'[{"type": "cancel"}]', letter="not a JSON object but list"),
    "reply-wfid-a-number": Case(
        lambda s: wire.dumps({"type": "reply", "wfid": 12345, "workitem": s.workitem}),
        letter="invalid message: at wfid: 12345 is not of type 'string'",
    ),
    "reply-workitem-a-string": Case(
        lambda s: wire.dumps({"type": "reply", "wfid": s.wfid, "workitem": "done"}),
        letter="a reply's workitem is not a JSON object but str",
    ),
    "fei-a-number": Case(
        lambda s: wire.dumps({**s.workitem, "fei": 7}),
        letter="invalid workitem: at fei: 7 is not of type 'object'",
    ),
    "twenty-megabytes": Case(
        lambda s: wire.dumps({**s.workitem, "fei": 7, "fields": {"blob": "x" * BIG}}),
        letter="invalid workitem: at fei: 7 is not of type 'object'",
    ),
    "unknown-type": Case(
        lambda s: wire.dumps({"type": "frobnicate", "wfid": s.wfid}),
        letter="invalid message: at type: 'frobnicate' is not one of",
    ),
    "nested-200000-deep": Case(
        lambda s: b"[" * 200_000 + b"]" * 200_000,
        letter="not JSON that can be read: nested too deeply",
    ),
    "object-nested-200000-deep": Case(
        lambda s: b'{"fei":' * 200_000 + b"1" + b"}" * 200_000,
        letter="not JSON that can be read: nested too deeply",
    ),
    "register-an-invalid-regex": Case(
        lambda s: wire.dumps(messages.register("bad_(x", f"q.any.{s.suffix}", regex=True)),
        letter="register refused: 'bad_(x' is not a valid regular expression: missing ), "
        "unterminated subpattern at position 4",
    ),
    "reply-for-no-such-run": Case(
        lambda s: wire.dumps(_reply(s.workitem, wfid=f"no-such-run-{s.suffix}")),
        ignored="reply for unknown run no-such-run-",
    ),
    "reply-with-a-wrong-subid": Case(
        lambda s: wire.dumps(_reply(s.workitem, subid="no-such-step")),
        ignored="has no step with subid 'no-such-step'",
    ),
}


def _messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in list(caplog.records) if r.name == logger]


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_set_aside_with_its_reason_and_the_live_run_goes_on(
    live: Live, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    before = live.engine.state(live.wfid)
    assert live.engine.status(live.wfid) == "running"
    body = case.body(live)

    live.publish(body)

    if case.letter is not None:

        def letter() -> dict[str, Any] | None:
            mine = [x for x in live.letters() if len(wire.deadletter_body(x)) == len(body)]
            return mine[0] if mine else None

        found = wait_for(letter, DEADLINE, "its dead letter")
        assert case.letter in found["reason"], found["reason"][:500]
        assert wire.deadletter_body(found) == body  # kept exactly
        assert found["queue"] == live.config.engine_queue
        # dead-lettered at once: handled once, never given back to be retried
        assert not any(
            "attempt" in m or "handling failed repeatedly" in m
            for m in _messages(caplog, "boss.worker")
        )
        assert len(found["reason"]) < 5000  # a reason, not a copy of the body
        # its log line names the reason (logged once the letter is
        # published: the letter can be seen first)
        wait_for(
            lambda: any(
                m.startswith(f"dead-lettered {found['id']}: {case.letter}")
                for m in _messages(caplog, "boss.worker")
            ),
            DEADLINE,
            "the dead letter's log line",
        )
    else:
        assert case.ignored is not None
        wait_for(
            lambda: any(case.ignored in m for m in _messages(caplog, "boss.engine")),
            DEADLINE,
            f"a log line saying {case.ignored!r}",
        )
        assert live.letters() == []
    if case is CASES["register-an-invalid-regex"]:
        assert [r.pattern for r in live.engine.registrations()] == ["bad_alpha", "bad_beta"]
    if case is CASES["reply-with-a-wrong-subid"]:
        (line,) = [m for m in _messages(caplog, "boss.engine") if "no-such-step" in m]
        assert live.wfid in line and "no longer waiting" not in line

    # nothing crashed, and the live run is as it was ...
    assert not [
        r for r in caplog.records if r.name == "boss.worker" and "restarting it" in r.getMessage()
    ]
    assert live.engine.state(live.wfid) == before
    # ... and completes normally on the same worker
    live.reply(live.workitem)
    live.reply(live.take("bad_beta"))
    wait_for(
        lambda: live.engine.status(live.wfid) == "finished", DEADLINE, "the live run to finish"
    )
    assert not [m for m in _messages(caplog, "boss.worker") if "attempt" in m]


def test_a_message_whose_handling_runs_out_of_recursion_is_dead_lettered_at_once(
    live: Live, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body that parses but whose handling raises ``RecursionError``
    (data nested too deeply to handle) would raise it on every try: it is
    dead-lettered at the first, not after ``POISON_ATTEMPTS``."""
    caplog.set_level(logging.INFO)
    doomed = f"doomed-{live.suffix}"
    deliver = Engine.deliver

    def deliver_or_recurse(self: Engine, msg: dict[str, Any], *args: Any, **kw: Any) -> Any:
        if msg.get("wfid") == doomed:
            raise RecursionError("maximum recursion depth exceeded")
        return deliver(self, msg, *args, **kw)

    monkeypatch.setattr(Engine, "deliver", deliver_or_recurse)
    body = wire.dumps(messages.cancel(doomed))
    live.publish(body)
    (found,) = wait_for(live.letters, DEADLINE, "its dead letter")
    assert wire.deadletter_body(found) == body
    assert found["reason"].startswith("handling failed (not retried): RecursionError"), found[
        "reason"
    ][:300]
    assert not [m for m in _messages(caplog, "boss.worker") if "attempt" in m]
    live.reply(live.workitem)
    live.reply(live.take("bad_beta"))
    wait_for(
        lambda: live.engine.status(live.wfid) == "finished", DEADLINE, "the live run to finish"
    )


def test_in_a_batch_a_body_too_deep_to_read_is_dead_lettered_and_the_rest_applied() -> None:
    """Several messages taken together (``handle_batch``): the deep body is
    dead-lettered, not raised out of the batch (which would give every
    message of it back to be retried)."""
    config = Config.load(None, environ={"HOME": "/nonexistent"}, events=False)
    letters = Recorder()
    service = EngineService(config, MemoryStore(), letters, engine_id="w1.c0")  # type: ignore[arg-type]
    deep = b"[" * 200_000 + b"]" * 200_000
    good = [wire.dumps(messages.cancel(f"nothing-{k}")) for k in range(2)]
    outcomes = service.handle_batch([Incoming(good[0]), Incoming(deep), Incoming(good[1])])
    assert not any(isinstance(o, BaseException) for o in outcomes), outcomes
    assert str(outcomes[1]).startswith("dead-lettered ")
    (letter,) = letters.letters
    assert letter["reason"].startswith("not JSON that can be read: nested too deeply")
    assert wire.deadletter_body(letter) == deep
