"""notify_irc against a real IRC server (``irc.server``) in the test, with a
second real IRC client in the channel that sees what it posts."""

from __future__ import annotations

import socket
import time

import pytest

from participants.standard.notify_irc import IrcUnavailable, NotifyIrc, TokenBucket, split_line
from tests.standard.conftest import started, stopped, workitem
from tests.standard.ircserver import Watcher, irc_server
from tests.waiting import wait_for

CHANNEL = "#boss_ci"


def _notifier(port: int, **extra: object) -> NotifyIrc:
    return started(
        NotifyIrc(),
        {
            "notify_irc": {
                "server": f"127.0.0.1:{port}",
                "nick": "bossbot",
                "rate": 50,
                "burst": 4,
                "retries": 3,
                "retry_delay": 0.05,
                "timeout": 5,
                **extra,
            }
        },
    )


def test_posts_lines_to_the_channel_a_second_client_sees_them():
    with irc_server() as (host, port):
        watcher = Watcher(host, port, CHANNEL)
        bot = _notifier(port)
        try:
            wi = workitem(
                {"msg": ["build of Mer:Tools ok", "3 packages"]},
                {"irc_channel": CHANNEL, "prefix": "[BOSS] "},
            )
            bot.handle_wi(wi)
            wait_for(lambda: len(watcher.lines) >= 2, 10, "two lines in the channel")
            assert watcher.lines == [
                ("bossbot", CHANNEL, "[BOSS] build of Mer:Tools ok"),
                ("bossbot", CHANNEL, "[BOSS] 3 packages"),
            ]
            assert wi.fields["irc_posted"] == {"channel": CHANNEL, "lines": 2}
            # the same connection serves the next step (one connection per process)
            bot.handle_wi(workitem({}, {"channel": CHANNEL, "msg": "second\nstep"}))
            wait_for(lambda: len(watcher.lines) >= 4, 10, "four lines")
            assert watcher.texts()[2:] == ["second", "step"]
            assert bot.client is not None and bot.client.attempts == 1
        finally:
            stopped(bot)
            watcher.close()


def test_long_line_is_split_and_flood_control_paces_the_lines():
    with irc_server() as (host, port):
        watcher = Watcher(host, port, CHANNEL)
        bot = _notifier(port, rate=20, burst=2, max_line=50)
        try:
            long = " ".join(f"word{i}" for i in range(30))  # ~200 bytes: 5 pieces
            t0 = time.monotonic()
            bot.handle_wi(workitem({}, {"channel": CHANNEL, "msg": long}))
            elapsed = time.monotonic() - t0
            pieces = split_line(long, 50)
            wait_for(lambda: len(watcher.lines) >= len(pieces), 10, "every piece")
            assert watcher.texts() == pieces
            assert " ".join(watcher.texts()) == long
            # 2 at once, then 20 a second: the rest took at least (n-2)/20 s
            assert elapsed >= (len(pieces) - 2) / 20 * 0.9
        finally:
            stopped(bot)
            watcher.close()


def test_reconnects_after_the_server_drops_it():
    with irc_server() as (host, port):
        watcher = Watcher(host, port, CHANNEL)
        bot = _notifier(port)
        try:
            bot.handle_wi(workitem({}, {"channel": CHANNEL, "msg": "one"}))
            wait_for(lambda: watcher.texts() == ["one"], 10, "the first line")
            assert bot.client is not None and bot.client.connection is not None
            bot.client.connection.socket.shutdown(socket.SHUT_RDWR)  # the link dies
            wait_for(lambda: not bot.client.connected(), 10, "the client to notice")
            bot.handle_wi(workitem({}, {"channel": CHANNEL, "msg": "two"}))
            wait_for(lambda: watcher.texts() == ["one", "two"], 10, "the line after reconnect")
            assert bot.client.attempts == 2
        finally:
            stopped(bot)
            watcher.close()


def test_server_down_retries_then_fails_the_step_with_a_clear_error(caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bot = _notifier(port, retries=3, retry_delay=0.05)
    try:
        with pytest.raises(
            IrcUnavailable, match=rf"cannot reach IRC server 127.0.0.1:{port} after 3 attempts"
        ):
            bot.handle_wi(workitem({}, {"channel": CHANNEL, "msg": "hello"}))
        assert bot.client is not None and bot.client.attempts == 3
        assert "attempt 2 of 3" in caplog.text
    finally:
        stopped(bot)


def test_a_server_that_comes_up_during_the_retries_gets_the_message():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bot = _notifier(port, retries=30, retry_delay=0.1, max_delay=0.2)
    import threading

    from tests.standard.ircserver import irc_server_on

    result: list[BaseException | None] = []

    def post() -> None:
        try:
            bot.handle_wi(workitem({}, {"channel": CHANNEL, "msg": "late"}))
            result.append(None)
        except BaseException as exc:
            result.append(exc)

    t = threading.Thread(target=post)
    t.start()
    try:
        wait_for(lambda: bot.client is not None and bot.client.attempts >= 2, 10, "a retry")
        with irc_server_on(port):
            t.join(20)
            assert result == [None]
    finally:
        stopped(bot)


def test_missing_channel_is_a_clear_error():
    bot = started(NotifyIrc(), {"notify_irc": {"server": "127.0.0.1:1"}})
    try:
        with pytest.raises(ValueError, match="no channel"):
            bot.handle_wi(workitem({"msg": ["x"]}, {}))
    finally:
        stopped(bot)


def test_token_bucket_and_split_line():
    now = [0.0]
    slept: list[float] = []

    def sleep(d: float) -> None:
        slept.append(round(d, 3))
        now[0] += d

    bucket = TokenBucket(1.0, 4, clock=lambda: now[0], sleep=sleep)
    for _ in range(6):
        bucket.take()
    assert slept == [1.0, 1.0]  # four at once, then one a second
    assert split_line("é" * 10, 5) == ["éé", "éé", "éé", "éé", "éé"]
    assert split_line("aaa bbb ccc", 8) == ["aaa bbb", "ccc"]
