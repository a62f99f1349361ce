"""The dead-letters page (``/deadletters``, ``webui.deadletters``) on both
brokers: a real malformed message put on the engine's queue is taken by a
real ``EngineService`` (as a worker thread does) and dead-lettered; the
page and ``/api/deadletters`` show it with its reason, queue and run; an
admin re-injects it (it is back on the engine's queue) or drops it, and
both are audited; users and anonymous visitors read but cannot act. The
traceability dead-letter queue is shown and acted on the same way. And the
participants page counts the instances serving a queue on both brokers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import wire
from engine.broker import Publisher, Topology, connect, participant_queue
from engine.service import EngineService
from tests.conftest import delete_keys
from tests.waiting import wait_for
from tests.webui.conftest import WebEnv, csrf, make_env

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


@pytest.fixture
def env(redis_url: str, broker_url: str, tmp_path: Path) -> Iterator[WebEnv]:
    prefix = f"boss-test:{uuid.uuid4().hex}:"
    env = make_env(tmp_path, redis_url, broker_url, prefix)
    svc = env.app.extensions["boss"]
    # queues of its own: the broker is shared by the session's tests
    svc.config = env.config = env.config.replace(
        deadletter_queue=f"{prefix}deadletter",
        trace_deadletter_queue=f"{prefix}trace.deadletter",
        control_exchange=f"{prefix}control",
    )
    yield env
    with connect(env.config) as conn, conn.channel() as channel:
        for name in (
            env.config.deadletter_queue,
            env.config.trace_deadletter_queue,
            env.config.engine_queue,
        ):
            queue = participant_queue(name)(channel)
            queue.declare()
            queue.purge()
    delete_keys(env.store.client, prefix)
    env.store.close()


def _take(config: Any, queue: str, timeout: float = 10.0) -> bytes:
    """The body of the next message on ``queue`` (acknowledged), waiting
    for it."""
    with connect(config) as conn:
        channel = conn.channel()
        q = participant_queue(queue)(channel)
        q.declare()
        message = wait_for(lambda: q.get(no_ack=False), timeout, f"a message on {queue}")
        message.ack()
        body = message.body
        return body.encode() if isinstance(body, str) else body


def _dead_letter_from_engine(env: WebEnv, body: bytes) -> None:
    """Put ``body`` on the engine's queue and let a real engine service
    take it (it dead-letters what is malformed)."""
    publisher = Publisher(env.config)
    try:
        publisher.publish(body, queue=env.config.engine_queue)
        taken = _take(env.config, env.config.engine_queue)
        service = EngineService(env.config, env.store, publisher, engine_id="test-worker")
        outcome = service.handle(taken, queue=env.config.engine_queue)
        assert "dead" in outcome or "malformed" in outcome.lower(), outcome
    finally:
        publisher.close()


def _letters(client: Any, source: str = "engine") -> list[dict[str, Any]]:
    data = client.get("/api/deadletters").json
    return next(s for s in data["sources"] if s["name"] == source)["letters"]


def test_a_malformed_message_is_listed_reinjected_and_audited(env: WebEnv) -> None:
    wfid = env.launch_as("alice")
    bad = wire.dumps({"type": "reply", "wfid": wfid, "workitem": "not a workitem"})
    _dead_letter_from_engine(env, bad)
    root = env.client("root")
    letters = wait_for(lambda: _letters(root), 10, "the dead letter listed")
    assert len(letters) == 1
    letter = letters[0]
    assert letter["queue"] == env.config.engine_queue
    assert letter["reason"] and letter["at"]
    assert letter["wfid"] == wfid  # the body names a run that exists: linked
    page = root.get("/deadletters")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert letter["id"] in html and f'href="/runs/{wfid}"' in html
    assert f'id="drop-{letter["id"]}"' in html and "data-confirm=" in html
    # listing took nothing away
    assert len(_letters(root)) == 1

    r = root.post(f"/deadletters/engine/{letter['id']}/reinject", data={"csrf_token": csrf(root)})
    assert r.status_code == 302
    assert _letters(root) == []
    back = _take(env.config, env.config.engine_queue)
    assert back == bad
    entry = env.app.extensions["boss"].audit.entries(0, 5)[0]
    assert entry["action"] == "deadletter reinject" and entry["ok"] is True
    assert entry["target"] == f"engine:{letter['id']}" and entry["user"] == "root"
    assert env.config.engine_queue in entry["detail"]


def test_drop_and_the_trace_queue_through_the_api(env: WebEnv) -> None:
    from engine.trace import TraceTopology

    trace_cfg = TraceTopology(env.config).deadletter_config
    letters = Publisher(trace_cfg)
    try:
        record = wire.deadletter(
            b'{"meta": {"id": "x"}}', "links: unknown target", "trace-q", by="aggregator test"
        )
        letters.deadletter(record)
    finally:
        letters.close()
    _dead_letter_from_engine(env, b"this is not JSON at all")
    root = env.client("root")
    trace = wait_for(lambda: _letters(root, "trace"), 10, "the trace dead letter")
    assert trace[0]["id"] == record["id"] and trace[0]["wfid"] is None
    assert trace[0]["reason"] == "links: unknown target"
    engine = _letters(root)
    assert len(engine) == 1 and engine[0]["wfid"] is None
    assert "this is not JSON" in engine[0]["preview"]

    h = {"X-CSRF-Token": csrf(root)}
    r = root.post(f"/api/deadletters/trace/{record['id']}/drop", headers=h)
    assert r.status_code == 200 and "dropped" in r.json["message"]
    assert _letters(root, "trace") == []
    assert len(_letters(root)) == 1  # the other queue is untouched
    r = root.post(f"/api/deadletters/trace/{record['id']}/drop", headers=h)
    assert r.status_code == 404 and "no dead letter" in r.json["error"]
    r = root.post(f"/api/deadletters/nowhere/{record['id']}/drop", headers=h)
    assert r.status_code == 404
    audit = env.app.extensions["boss"].audit.entries(0, 5)
    # the refusals (audited by the app's handler), then the drop
    assert [(e["action"], e["ok"]) for e in audit[:3]] == [
        ("api.deadletter_action", False),
        ("api.deadletter_action", False),
        ("deadletter drop", True),
    ]
    assert "no dead letter" in audit[1]["detail"]


def test_only_admins_act(env: WebEnv) -> None:
    _dead_letter_from_engine(env, b"\xff\xfe binary junk")
    alice = env.client("alice")
    letters = wait_for(lambda: _letters(alice), 10, "the dead letter")
    assert letters[0]["encoding"] == "base64"
    html = alice.get("/deadletters").get_data(as_text=True)
    assert "Only admins" in html and f'id="drop-{letters[0]["id"]}"' not in html
    r = alice.post(f"/deadletters/engine/{letters[0]['id']}/drop", data={"csrf_token": csrf(alice)})
    assert r.status_code == 403
    anonymous = env.app.test_client()
    assert anonymous.get("/deadletters").status_code == 200
    r = anonymous.post(
        f"/deadletters/engine/{letters[0]['id']}/drop", data={"csrf_token": csrf(anonymous)}
    )
    assert r.status_code == 401
    assert len(_letters(alice)) == 1
    assert b"Dead letters" in alice.get("/errors").data  # the nav link


def test_participants_page_counts_serving_instances(env: WebEnv) -> None:
    """Two instances of a participant bind their control queues (as
    ``participants.link`` does); the page counts them on either broker."""
    from kombu import Consumer, Exchange, Queue

    queue = f"{env.config.key_prefix}alpha"
    env.engine.register("gamma", queue=queue)
    exchange = Exchange(env.config.control_exchange, "topic", durable=True)
    with connect(env.config) as conn:
        consumers = []
        for n in range(2):
            work, control = conn.channel(), conn.channel()
            c = Consumer(work, [Queue(queue, durable=True)], prefetch_count=1)
            c.consume()
            cq = Queue(
                f"{env.config.control_exchange}.{queue}.host.{n}.x",
                exchange,
                routing_key=queue,
                durable=False,
                exclusive=True,
                auto_delete=True,
            )
            cc = Consumer(control, [cq], no_ack=True)
            cc.consume()
            consumers.append((c, cc))
        served = wait_for(
            lambda: (
                env.client().get("/api/participants?skynet=0").json["instances"][queue]["count"]
                == 2
            ),
            10,
            "two serving instances",
        )
        assert served
        html = env.client().get("/participants").get_data(as_text=True)
        assert f'data-queue="{queue}"' in html
        for c, cc in consumers:
            c.cancel()
            cc.cancel()
    assert Topology(env.config).engine_queue.name == env.config.engine_queue
