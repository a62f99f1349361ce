"""``legacy_reply_queue``: a python-ruote-amqp participant replies to
``ruote_workitems`` (whatever the workitem's ``reply_to`` says), as
``text/plain``; an engine worker with the setting consumes that queue as its
own, so the run moves on. A real engine worker (in-process) on a real broker.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import kombu
import pytest

from engine import wire
from engine.broker import Publisher, connect, list_deadletters, participant_queue
from engine.config import Config
from engine.core import messages
from engine.engine import Engine
from engine.worker import EngineWorker
from tests.conftest import delete_keys
from tests.waiting import wait_for

LEGACY = "ruote_workitems"
TWO = "name: legacy\nsteps:\n  - legacy_build\n  - legacy_test\n"


@pytest.fixture
def worker(broker_url: str, embedded_url: str, key_prefix: str) -> Iterator[EngineWorker]:
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
        legacy_reply_queue=LEGACY,
        events=False,
        trace_threads=0,
        heartbeat=0.5,
    )
    # nothing left over from another test
    with connect(config) as conn, conn.channel() as channel:
        participant_queue(LEGACY)(channel).declare()
        participant_queue(LEGACY)(channel).purge()
    w = EngineWorker(config, threads=1).start()
    yield w
    w.stop(timeout=10)
    delete_keys(w.store().client, key_prefix)


def _take(config: Config, queue: str, timeout: float = 10.0) -> kombu.Message:
    """The next workitem on a participant queue (a legacy participant's get)."""
    with connect(config) as conn, conn.channel() as channel:
        q = participant_queue(queue)(channel)
        q.declare()

        def get() -> Any:
            return q.get(no_ack=True, accept=["application/json"])

        return wait_for(get, timeout, f"a workitem on {queue}")


def _legacy_reply(config: Config, workitem: dict[str, Any]) -> None:
    """What python-ruote-amqp's ``Participant.reply_to_engine`` publishes:
    the workitem, to ``ruote_workitems`` on the default exchange, text/plain."""
    with connect(config) as conn:
        producer = kombu.Producer(conn)
        producer.publish(
            json.dumps(workitem).encode(),
            exchange="",
            routing_key=LEGACY,
            content_type="text/plain",
            content_encoding="utf-8",
            delivery_mode=2,
        )


def test_a_reply_to_ruote_workitems_moves_the_run_on(worker: EngineWorker) -> None:
    config = worker.config
    engine = Engine(worker.store())  # the worker's run store, as boss register uses it
    suffix = config.engine_queue.rsplit(".", 1)[1]
    engine.register("legacy_build", f"q.build.{suffix}")
    engine.register("legacy_test", f"q.test.{suffix}")
    wfid = f"legacy-{suffix}"
    publisher = Publisher(config)
    try:
        publisher.send(messages.launch_item(definition=TWO, wfid=wfid))
    finally:
        publisher.close()

    message = _take(config, f"q.build.{suffix}")
    assert message.properties.get("reply_to") == config.engine_queue
    wi = wire.decode(message.body)
    # python-ruote-amqp: a ruote 2.1 fei, the result in fields, reply elsewhere
    fei = dict(wi["fei"])
    wi["fei"] = {**{k: v for k, v in fei.items() if k != "subid"}, "sub_wfid": fei["subid"]}
    wi["fields"]["built"] = True
    _legacy_reply(config, wi)

    second = wire.decode(_take(config, f"q.test.{suffix}").body)
    assert second["fei"]["wfid"] == wfid and second["fields"]["built"] is True
    _legacy_reply(config, second)
    wait_for(lambda: engine.status(wfid) == "finished", 10, "the run to finish")


def test_a_malformed_legacy_reply_is_dead_lettered_naming_its_queue(
    worker: EngineWorker,
) -> None:
    config = worker.config
    with connect(config) as conn:
        kombu.Producer(conn).publish(
            b"not json", exchange="", routing_key=LEGACY, content_type="text/plain"
        )

    def letters() -> list[dict[str, Any]]:
        with connect(config) as conn:
            return list_deadletters(config, conn)

    (letter,) = wait_for(letters, 10, "a dead letter")
    assert letter["queue"] == LEGACY and letter["body"] == "not json"
    assert letter["reason"].startswith("not JSON")


def test_a_ruote_registration_gets_ruote_cancel_items_on_its_queue(
    worker: EngineWorker,
) -> None:
    """python-ruote-amqp's Participant reads only its work queue: a step
    registered with ``ruote`` (``boss register --ruote``) that is cancelled
    gets ruote's ``{"cancel": true, "fei", "flavour"}`` there (its
    ``cancel(workitem)``, SkyNET's ``handle_wi_control``), and still our
    cancel on the control exchange; one registered without gets nothing on
    its queue."""
    config = worker.config
    engine = Engine(worker.store())
    suffix = config.engine_queue.rsplit(".", 1)[1]
    engine.register("legacy_build", f"q.build.{suffix}", ruote=True)
    engine.register("legacy_test", f"q.test.{suffix}")
    publisher = Publisher(config)
    try:
        for name in ("a", "b"):
            publisher.send(
                messages.launch_item(
                    definition=TWO if name == "a" else "name: b\nsteps:\n  - legacy_test\n",
                    wfid=f"ruote-{name}-{suffix}",
                )
            )
    finally:
        publisher.close()
    wi = wire.decode(_take(config, f"q.build.{suffix}").body)
    other = wire.decode(_take(config, f"q.test.{suffix}").body)
    publisher = Publisher(config)  # through the worker, whose publisher sends them
    try:
        publisher.send(messages.cancel(f"ruote-a-{suffix}"))
        publisher.send(messages.cancel(f"ruote-b-{suffix}"))
    finally:
        publisher.close()
    wait_for(lambda: engine.status(f"ruote-a-{suffix}") == "cancelled", 10, "run a cancelled")
    wait_for(lambda: engine.status(f"ruote-b-{suffix}") == "cancelled", 10, "run b cancelled")

    item = wire.decode(_take(config, f"q.build.{suffix}").body)
    assert item == {"cancel": True, "fei": wi["fei"], "flavour": "cancel"}
    with connect(config) as conn, conn.channel() as channel:
        q = participant_queue(f"q.test.{suffix}")(channel)
        assert q.get(no_ack=True) is None, "no ruote cancel item for a plain registration"
    assert other["fei"]["wfid"] == f"ruote-b-{suffix}"
