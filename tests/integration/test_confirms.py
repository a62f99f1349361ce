"""``Publisher.confirming`` on RabbitMQ: the publishes of a block are sent
without waiting for each confirm and confirmed together at its end; a
connection lost before the confirms came publishes them again (at least
once, never lost)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import amqp
import kombu
import pytest

from engine import wire
from engine.broker import (
    Publisher,
    connect,
    participant_queue,
    queue_info,
    redis_transport,
)
from engine.config import Config


@pytest.fixture
def publisher(rabbitmq_url: str) -> Iterator[Publisher]:
    config = Config.load(None, environ={"HOME": "/nonexistent"}, broker_url=rabbitmq_url)
    pub = Publisher(config, connect(config))
    yield pub
    pub.close()


def drain(url: str, queue: str) -> list[int]:
    """Every body on ``queue`` (its ``i``), taking them off."""
    got = []
    with kombu.Connection(url) as conn, conn.channel() as channel:
        q = participant_queue(queue)(channel)
        while (m := q.get(no_ack=True, accept=["application/json"])) is not None:
            got.append(wire.decode(m.body)["i"])
        q.delete()
    return got


def test_a_blocks_publishes_are_confirmed_together_at_its_end(
    publisher: Publisher, rabbitmq_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = f"confirms.{uuid.uuid4().hex[:8]}"
    assert publisher.async_confirms
    waits = []
    real = amqp.Channel.basic_publish_confirm

    def one_by_one(self: amqp.Channel, *args: object, **kwargs: object) -> object:
        waits.append(1)  # a publish that waits for its own confirm
        return real(self, *args, **kwargs)

    monkeypatch.setattr(amqp.Channel, "basic_publish_confirm", one_by_one)
    publisher.publish({"i": -1}, queue=queue)  # connected, in confirm mode
    with publisher.confirming():
        for i in range(200):
            publisher.publish({"i": i}, queue=queue)
        # the last cannot have been confirmed yet: nobody waited for it
        assert publisher._seq in publisher._unconfirmed
    assert publisher.unconfirmed == 0
    # the channel is back to a confirm per publish, and its count goes on
    publisher.publish({"i": 200}, queue=queue)
    assert len(waits) == 2  # the one before the block and the one after
    with kombu.Connection(rabbitmq_url) as conn:
        assert queue_info(conn, queue).messages == 202
    assert sorted(drain(rabbitmq_url, queue)) == list(range(-1, 201))


def test_publishes_whose_connection_is_lost_before_their_confirms_are_published_again(
    publisher: Publisher, rabbitmq_url: str
) -> None:
    queue = f"confirms.{uuid.uuid4().hex[:8]}"
    publisher.publish({"i": -1}, queue=queue)  # connected, queue declared
    with publisher.confirming():
        for i in range(50):
            publisher.publish({"i": i}, queue=queue)
        # the connection goes before a single confirm was read
        publisher.connection.connection.sock.shutdown(socket.SHUT_RDWR)
    got = drain(rabbitmq_url, queue)
    assert set(got) == set(range(-1, 50))  # every one arrived, some maybe twice
    assert publisher.unconfirmed == 0
    publisher.publish({"i": 99}, queue=queue)  # and the publisher goes on
    assert drain(rabbitmq_url, queue) == [99]


@pytest.fixture
def redis_publisher(embedded_broker_url: str) -> Iterator[Publisher]:
    config = Config.load(None, environ={"HOME": "/nonexistent"}, broker_url=embedded_broker_url)
    pub = Publisher(config, connect(config))
    yield pub
    pub.close()


def test_on_the_redis_transport_a_blocks_publishes_go_in_one_pipeline(
    redis_publisher: Publisher, embedded_broker_url: str
) -> None:
    queue = f"batched.{uuid.uuid4().hex[:8]}"
    with redis_publisher.confirming():
        for i in range(50):
            redis_publisher.publish({"i": i}, queue=queue)
        with kombu.Connection(embedded_broker_url, transport=redis_transport()) as conn:
            assert queue_info(conn, queue).messages == 0  # not sent yet
    assert sorted(drain_redis(embedded_broker_url, queue)) == list(range(50))


def test_on_the_redis_transport_a_failed_pipeline_is_published_again(
    redis_publisher: Publisher, embedded_broker_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kombu.transport import redis as kombu_redis

    real = kombu_redis.PublishBatch.flush
    failed = []

    def flush(self: kombu_redis.PublishBatch) -> None:
        if not failed:
            failed.append(1)
            self.pipeline.reset()  # what was buffered is gone with the connection
            raise kombu_redis.BatchPublishError("the server went away")
        real(self)

    monkeypatch.setattr(kombu_redis.PublishBatch, "flush", flush)
    queue = f"batched.{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError, match="the block's own"), redis_publisher.confirming():
        for i in range(20):
            redis_publisher.publish({"i": i}, queue=queue)
        raise RuntimeError("the block's own error")
    assert failed
    # published again one by one, and the block's own error still raised
    assert sorted(drain_redis(embedded_broker_url, queue)) == list(range(20))


def drain_redis(url: str, queue: str) -> list[int]:
    got = []
    with kombu.Connection(url, transport=redis_transport()) as conn, conn.channel() as channel:
        q = participant_queue(queue)(channel)
        while (m := q.get(no_ack=True, accept=["application/json"])) is not None:
            got.append(wire.decode(m.body)["i"])
    return got
