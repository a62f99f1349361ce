"""notify_irc: post lines to an IRC channel.

A real IRC client (the ``irc`` package's reactor): the participant process
keeps **one connection** to its server, opened on the first workitem and
kept between workitems (a background thread answers the server's PINGs),
joins each channel the first time a step posts to it, and reconnects when
the server drops it. Lines go out through a **token bucket** (``rate``
lines per second with bursts of ``burst``) so a long ``msg`` never gets the
bot kicked for flooding; a line longer than ``max_line`` bytes is split.

When the server cannot be reached, the participant retries ``retries``
times with a back-off (``retry_delay``, doubled each time up to
``max_delay``) and then raises ``IrcUnavailable`` ("cannot reach IRC
server HOST:PORT after N attempts: ..."): the step fails and the run shows
that error (``boss replay`` posts it once the server is back).

Params
------

| param | meaning |
|---|---|
| ``channel`` (or ``irc_channel``) | the channel (``#boss``); default ``[notify_irc] channel`` |
| ``msg`` | a string (split on newlines) or a list of lines; default the ``msg`` field |
| ``prefix`` | put before every line (``"[BOSS] "``) |

Fields: reads ``msg`` when there is no ``params.msg``; writes
``irc_posted: {channel, lines}``. An empty message posts nothing.

Configuration (``[notify_irc]``)
--------------------------------

| key | default | meaning |
|---|---|---|
| ``server`` | ``127.0.0.1:6667`` | ``host:port`` |
| ``nick`` | ``boss`` | the nickname (``_`` is appended while it is in use) |
| ``realname`` | ``BOSS CI`` | |
| ``password`` | none | the server password (PASS) |
| ``ssl`` | false | TLS to the server |
| ``channel`` | none | the channel when a step names none |
| ``retries`` | 5 | connection attempts before the step fails |
| ``retry_delay`` | 1 | seconds before the second attempt (doubled each time) |
| ``max_delay`` | 30 | the longest wait between attempts |
| ``timeout`` | 10 | seconds to connect, be welcomed, or join |
| ``rate`` | 1 | lines per second, on average |
| ``burst`` | 4 | lines sent at once before the rate applies |
| ``max_line`` | 400 | bytes of text in one PRIVMSG; longer lines are split |

Example INI::

    [participant]
    name = notify_irc
    code = participants.standard.notify_irc
    class = NotifyIrc

    [notify_irc]
    server = irc.example.org:6667
    nick = boss-bot
    channel = #mer-boss
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import irc.client

from participants.handler import LifecycleControl, Participant
from participants.standard.config import Section, as_lines
from participants.workitem import Workitem

__all__ = [
    "IrcClient",
    "IrcUnavailable",
    "NotifyIrc",
    "ParticipantHandler",
    "TokenBucket",
    "split_line",
]

log = logging.getLogger("notify_irc")


class IrcUnavailable(RuntimeError):
    """The IRC server could not be reached, or did not let us in."""


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up. ``take()``
    blocks until a token is there. ``clock``/``sleep`` are injectable for
    tests."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
                self._at = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                self._sleep((1 - self._tokens) / self.rate)


def split_line(line: str, max_bytes: int) -> list[str]:
    """``line`` in pieces of at most ``max_bytes`` UTF-8 bytes, cut at a
    space when there is one in the second half of the piece, never inside a
    character."""
    line = line.replace("\r", " ").replace("\n", " ")
    out = []
    while len(line.encode()) > max_bytes:
        cut = len(line.encode()[:max_bytes].decode(errors="ignore"))
        space = line.rfind(" ", 0, cut)
        if space > cut // 2:
            cut = space
        out.append(line[:cut].rstrip())
        line = line[cut:].lstrip()
    if line:
        out.append(line)
    return out


class IrcClient:
    """One connection to one IRC server, shared by the steps of a
    participant process. Thread-safe: ``post`` may be called from any
    thread; a daemon thread runs the reactor."""

    def __init__(
        self,
        host: str,
        port: int,
        nick: str,
        *,
        realname: str = "BOSS CI",
        password: str | None = None,
        use_ssl: bool = False,
        retries: int = 5,
        retry_delay: float = 1.0,
        max_delay: float = 30.0,
        timeout: float = 10.0,
        rate: float = 1.0,
        burst: int = 4,
        max_line: int = 400,
    ) -> None:
        self.host, self.port, self.nick = host, port, nick
        self.realname, self.password, self.use_ssl = realname, password, use_ssl
        self.retries, self.retry_delay, self.max_delay = max(1, retries), retry_delay, max_delay
        self.timeout, self.max_line = timeout, max_line
        self.bucket = TokenBucket(rate, burst)
        self.reactor = irc.client.Reactor()
        for event, handler in (
            ("welcome", self._on_welcome),
            ("join", self._on_join),
            ("disconnect", self._on_disconnect),
            ("nicknameinuse", self._on_nick_in_use),
            ("erroneusnickname", self._on_nick_in_use),
        ):
            self.reactor.add_global_handler(event, handler)
        self.connection: irc.client.ServerConnection | None = None
        self.attempts = 0  # connection attempts made, in all (for logs and tests)
        self._cond = threading.Condition()
        self._welcomed = False
        self._joined: set[str] = set()
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="irc-reactor", daemon=True)
        self._thread.start()

    # -- the reactor thread and its handlers ---------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reactor.process_once(0.2)
            except Exception:  # a bad line from the server must not kill the thread
                log.exception("IRC reactor")
                time.sleep(0.2)

    def _on_welcome(self, conn: Any, event: Any) -> None:
        with self._cond:
            self._welcomed = True
            self._cond.notify_all()

    def _on_join(self, conn: Any, event: Any) -> None:
        if irc.client.NickMask(event.source).nick == conn.get_nickname():
            with self._cond:
                self._joined.add(_lower(event.target))
                self._cond.notify_all()

    def _on_disconnect(self, conn: Any, event: Any) -> None:
        log.warning("disconnected from IRC server %s:%s", self.host, self.port)
        with self._cond:
            self._welcomed = False
            self._joined.clear()
            self._cond.notify_all()

    def _on_nick_in_use(self, conn: Any, event: Any) -> None:
        conn.nick(conn.get_nickname() + "_")

    # -- connecting ------------------------------------------------------------------
    def _factory(self, address: tuple[str, int]) -> socket.socket:
        sock = socket.create_connection(address, timeout=self.timeout)
        if self.use_ssl:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=address[0])
        sock.settimeout(None)
        return sock

    def _wait(self, predicate: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + self.timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise IrcUnavailable(
                        f"IRC server {self.host}:{self.port}: no {what} within {self.timeout:g}s"
                    )
                self._cond.wait(min(left, 0.5))

    def connected(self) -> bool:
        conn = self.connection
        return bool(conn is not None and conn.is_connected() and self._welcomed)

    def ensure_connected(self) -> None:
        """Connect (again) unless connected, retrying with back-off; raise
        ``IrcUnavailable`` after ``retries`` failed attempts."""
        if self.connected():
            return
        delay = self.retry_delay
        last: BaseException | None = None
        for attempt in range(1, self.retries + 1):
            self.attempts += 1
            try:
                self._connect_once()
                log.info(
                    "connected to IRC server %s:%s as %s",
                    self.host,
                    self.port,
                    self.connection.get_nickname() if self.connection else self.nick,
                )
                return
            except (irc.client.ServerConnectionError, IrcUnavailable, OSError) as exc:
                last = exc
                log.warning(
                    "IRC server %s:%s, attempt %d of %d: %s",
                    self.host,
                    self.port,
                    attempt,
                    self.retries,
                    exc,
                )
                if self.connection is not None:
                    with contextlib.suppress(Exception):
                        self.connection.disconnect("retrying")
            if attempt < self.retries:
                time.sleep(delay)
                delay = min(delay * 2, self.max_delay)
        raise IrcUnavailable(
            f"cannot reach IRC server {self.host}:{self.port} after {self.retries} attempts: {last}"
        )

    def _connect_once(self) -> None:
        with self._cond:
            self._welcomed = False
            self._joined.clear()
        if self.connection is None:
            self.connection = self.reactor.server()
        self.connection.connect(
            self.host,
            self.port,
            self.nick,
            password=self.password,
            ircname=self.realname,
            connect_factory=self._factory,
        )
        self._wait(lambda: self._welcomed, "welcome")

    def join(self, channel: str) -> None:
        if _lower(channel) in self._joined:
            return
        assert self.connection is not None
        self.connection.join(channel)
        self._wait(
            lambda: _lower(channel) in self._joined or not self._welcomed, f"join of {channel}"
        )
        if _lower(channel) not in self._joined:
            raise IrcUnavailable(
                f"IRC server {self.host}:{self.port} dropped us while joining {channel}"
            )

    # -- posting -------------------------------------------------------------------
    def post(self, channel: str, lines: list[str]) -> int:
        """Send ``lines`` to ``channel`` (joining it first); returns the
        number of PRIVMSGs sent. A connection lost midway is reopened and
        the rest is sent (a line may then come twice, never be lost)."""
        pieces = [p for line in lines for p in split_line(line, self.max_line)]
        sent = 0
        with self._send_lock:
            while sent < len(pieces):
                self.ensure_connected()
                self.join(channel)
                assert self.connection is not None
                self.bucket.take()
                try:
                    self.connection.privmsg(channel, pieces[sent])
                except irc.client.ServerNotConnectedError:
                    continue
                if not self.connection.is_connected():  # send_raw hit a dead socket
                    continue
                sent += 1
        return sent

    def close(self) -> None:
        self._stop.set()
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.disconnect("bye")
        self._thread.join(2)


def _lower(channel: str) -> str:
    return channel.lower()


class NotifyIrc(Participant):
    """The ``notify_irc`` participant (see the module's docstring)."""

    client: IrcClient | None = None
    default_channel: str = ""

    def handle_lifecycle_control(self, ctrl: LifecycleControl) -> None:
        super().handle_lifecycle_control(ctrl)
        if ctrl.message == "start":
            cfg = Section(ctrl.config, "notify_irc")
            host, _, port = cfg.get("server", "127.0.0.1:6667").rpartition(":")
            if not host:
                host, port = port, "6667"
            self.default_channel = cfg.get("channel")
            self.client = IrcClient(
                host,
                int(port),
                cfg.get("nick", "boss"),
                realname=cfg.get("realname", "BOSS CI"),
                password=cfg.get("password") or None,
                use_ssl=cfg.bool("ssl", False),
                retries=cfg.int("retries", 5),
                retry_delay=cfg.float("retry_delay", 1.0),
                max_delay=cfg.float("max_delay", 30.0),
                timeout=cfg.float("timeout", 10.0),
                rate=cfg.float("rate", 1.0),
                burst=cfg.int("burst", 4),
                max_line=cfg.int("max_line", 400),
            )
        elif ctrl.message in ("stop", "die") and self.client is not None:
            self.client.close()

    def handle_wi(self, wi: Workitem) -> None:
        if self.client is None:
            raise RuntimeError("notify_irc was not started (no lifecycle start)")
        params = wi.params
        channel = str(
            params.get("channel") or params.get("irc_channel") or self.default_channel or ""
        )
        if not channel:
            raise ValueError(
                "notify_irc: no channel (params.channel, params.irc_channel or "
                "[notify_irc] channel)"
            )
        lines = as_lines(params["msg"] if "msg" in params else wi.fields.get("msg"))
        prefix = str(params.get("prefix") or "")
        lines = [prefix + line for line in lines]
        sent = self.client.post(channel, lines) if lines else 0
        wi.fields["irc_posted"] = {"channel": channel, "lines": sent}


ParticipantHandler = NotifyIrc
