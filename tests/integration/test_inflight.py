"""The embedded broker loses no message to a consumer that stopped reading
while it waited (``engine.redis_transport``: ``BLMOVE`` into the channel's
in-flight list instead of ``BRPOP``).

A consumer process waits for a message; it is frozen (``SIGSTOP``: its
socket unread, its keep-alive thread stopped, as a host cut off the
network); a message is published. kombu's ``BRPOP`` would have popped it
into the frozen consumer's socket, in no queue and no bookkeeping. Here it
waits in the frozen consumer's in-flight list, the sweep of another
consumer puts it back once the frozen one has not kept it alive for
``visibility_timeout``, and the other consumer gets it. The frozen one,
thawed, takes nothing: the message is delivered once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kombu
import pytest
import redis

from engine.broker import Publisher, connect, participant_queue
from engine.config import Config
from tests.waiting import wait_for

CONSUMER = r"""
import sys, time
import kombu
from engine.broker import connect, participant_queue
from engine.config import Config

url, queue = sys.argv[1], sys.argv[2]
config = Config.load(None, environ={"HOME": "/nonexistent"}, broker_url=url, visibility_timeout=1)
def got(message):
    body = message.body if isinstance(message.body, str) else message.body.decode()
    print("GOT", body, flush=True)
    message.ack()
with connect(config) as conn:
    consumer = kombu.Consumer(conn.channel(), queues=[participant_queue(queue)],
                              on_message=got, accept=["application/json"], prefetch_count=1)
    consumer.consume()
    n = 0
    while True:
        n += 1
        print("TICK", n, flush=True)
        try:
            conn.drain_events(timeout=0.2)
        except TimeoutError:
            pass
"""


def _client(url: str) -> redis.Redis:
    return redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"))


def test_a_frozen_waiting_consumer_loses_nothing(embedded_broker_url: str, tmp_path: Path) -> None:
    queue = f"inflight.{uuid.uuid4().hex[:8]}"
    out = tmp_path / "consumer.out"
    with out.open("w") as sink:
        frozen = subprocess.Popen(
            [sys.executable, "-c", CONSUMER, embedded_broker_url, queue],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )
    client = _client(embedded_broker_url)
    try:
        # it waits: its BLMOVE is blocked on the server
        wait_for(
            lambda: "cmd=blmove" in client.execute_command("CLIENT", "LIST").decode(),
            15,
            "the consumer waiting in BLMOVE",
        )
        lists = [k.decode() for k in client.zrange("_boss.inflight", 0, -1)]
        mine = [k for k in lists if f".{queue}." in k]
        assert len(mine) == 1, lists
        os.kill(frozen.pid, signal.SIGSTOP)
        config = Config.load(
            None,
            environ={"HOME": "/nonexistent"},
            broker_url=embedded_broker_url,
            visibility_timeout=1,
        )
        publisher = Publisher(config)
        try:
            publisher.publish({"n": 1}, queue=queue)
        finally:
            publisher.close()
        # the server moved it into the frozen consumer's in-flight list
        wait_for(lambda: client.llen(mine[0]) == 1, 5, "the message in the in-flight list")
        assert client.llen(queue) == 0

        # another consumer: its sweep puts the message back, and it gets it
        got: list[dict] = []
        with connect(config) as conn:
            consumer = kombu.Consumer(
                conn.channel(),
                queues=[participant_queue(queue)],
                on_message=lambda m: (got.append(json.loads(m.body)), m.ack()),
                accept=["application/json"],
                prefetch_count=1,
            )
            consumer.consume()
            deadline = time.monotonic() + 40
            while not got and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    conn.drain_events(timeout=0.5)
            assert got == [{"n": 1}]
            assert client.zscore("_boss.inflight", mine[0]) is None  # forgotten
            consumer.cancel()

        # thawed, the frozen one takes nothing (its list is empty) and waits again
        ticks = out.read_text().count("TICK")
        os.kill(frozen.pid, signal.SIGCONT)
        wait_for(lambda: out.read_text().count("TICK") >= ticks + 2, 15, "the thawed consumer")
        assert "GOT" not in out.read_text()
        assert client.llen(queue) == 0
    finally:
        client.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(frozen.pid, signal.SIGCONT)
            frozen.terminate()
        try:
            frozen.wait(10)
        except subprocess.TimeoutExpired:
            frozen.kill()
            frozen.wait()


@pytest.mark.parametrize("count", [1, 5])
def test_a_closed_channel_gives_back_what_it_had_in_flight(
    embedded_broker_url: str, count: int
) -> None:
    """Messages in a channel's in-flight list and not taken yet (it closes
    between its BLMOVE and the take) go back to their queue at once."""
    from engine import redis_transport

    config = Config.load(None, environ={"HOME": "/nonexistent"}, broker_url=embedded_broker_url)
    queue = f"inflight.{uuid.uuid4().hex[:8]}"
    client = _client(embedded_broker_url)
    try:
        with connect(config) as conn:
            channel = conn.channel()
            consumer = kombu.Consumer(
                channel, queues=[participant_queue(queue)], on_message=lambda m: None
            )
            consumer.consume()
            assert isinstance(channel, redis_transport.Channel)
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.05)  # its BLMOVE is sent, not answered
            inflight = channel._inflight
            assert inflight is not None
            for i in range(count):  # what BLMOVE would have moved, and more
                client.lpush(inflight[0], json.dumps({"i": i}))
            channel.close()
        assert client.llen(queue) == count
        assert client.exists(inflight[0]) == 0
        assert client.zscore("_boss.inflight", inflight[0]) is None
        assert client.hget("_boss.inflight.queues", inflight[0]) is None
    finally:
        client.delete(queue)
        client.close()
