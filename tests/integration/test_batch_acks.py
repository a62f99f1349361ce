"""kombu's Redis transport (the embedded broker) in batches: a consumer
whose prefetch allows takes every waiting message in one blocking wait
(``BLMOVE`` into its in-flight list, then the rest in the same script),
and the engine acknowledges a batch in one round trip
(``engine.redis_transport.QoS.ack_many``), every one forgotten: none
comes again."""

from __future__ import annotations

import contextlib
import time
import uuid

import kombu
import pytest

from engine.broker import Publisher, connect, participant_queue
from engine.config import Config


def test_one_pop_takes_the_batch_and_ack_many_forgets_every_delivery(
    embedded_broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import redis_transport

    reads = []
    real = redis_transport.Channel._brpop_read

    def counted(self: redis_transport.Channel, **options: object) -> bool:
        # how many the pop may bring: BLMOVE's take (one queue), or BLMPOP's
        reads.append(self._lmove_sent[2] if self._lmove_sent else self._lmpop_sent)
        return real(self, **options)

    monkeypatch.setattr(redis_transport.Channel, "_brpop_read", counted)
    config = Config.load(None, environ={"HOME": "/nonexistent"}, broker_url=embedded_broker_url)
    queue = f"acks.{uuid.uuid4().hex[:8]}"
    publisher = Publisher(config)
    try:
        for i in range(10):
            publisher.publish({"i": i}, queue=queue)
    finally:
        publisher.close()
    with connect(config) as conn:
        channel = conn.channel()
        got: list[kombu.Message] = []
        consumer = kombu.Consumer(
            channel,
            queues=[participant_queue(queue)],
            on_message=got.append,
            accept=["application/json"],
            prefetch_count=10,
        )
        consumer.consume()
        deadline = time.monotonic() + 10
        while len(got) < 10 and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.5)
        assert len(got) == 10
        assert reads == [10]  # one blocking pop brought all ten
        client = channel.client
        qos = channel.qos
        assert client.hlen(qos.unacked_key) >= 10  # held, in the broker's bookkeeping
        qos.ack_many([m.delivery_tag for m in got])
        held = set(client.hkeys(qos.unacked_key))
        assert not held & {m.delivery_tag.encode() for m in got}
        assert client.zscore(qos.unacked_index_key, got[0].delivery_tag) is None
        assert qos.held_tags() == []
        consumer.cancel()
        channel.close()
    # nothing comes again on a new connection: the queue is empty
    with connect(config) as conn, conn.channel() as channel:
        assert participant_queue(queue)(channel).get(no_ack=True) is None
