"""A real IRC server for the tests (the ``irc`` package's ``irc.server``,
in a thread, on a free port) and a second real IRC client that watches a
channel."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import irc.client
import irc.server

from tests.waiting import wait_for


@contextmanager
def irc_server() -> Iterator[tuple[str, int]]:
    server = irc.server.IRCServer(("127.0.0.1", 0), irc.server.IRCClient)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server.server_address[0], server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class Watcher:
    """A second IRC client in the channel: records every PRIVMSG it sees."""

    def __init__(self, host: str, port: int, channel: str, nick: str = "watcher") -> None:
        self.lines: list[tuple[str, str, str]] = []  # (nick, channel, text)
        self.joined = threading.Event()
        self.reactor = irc.client.Reactor()
        self.reactor.add_global_handler("welcome", lambda c, e: c.join(channel))
        self.reactor.add_global_handler("join", self._on_join)
        self.reactor.add_global_handler("pubmsg", self._on_pubmsg)
        self.conn = self.reactor.server().connect(host, port, nick)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        wait_for(self.joined.is_set, 10, f"the watcher to join {channel}")

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.reactor.process_once(0.05)

    def _on_join(self, conn: Any, event: Any) -> None:
        if irc.client.NickMask(event.source).nick == conn.get_nickname():
            self.joined.set()

    def _on_pubmsg(self, conn: Any, event: Any) -> None:
        self.lines.append(
            (irc.client.NickMask(event.source).nick, event.target, event.arguments[0])
        )

    def texts(self) -> list[str]:
        return [text for _, _, text in self.lines]

    def close(self) -> None:
        # the loop first: a socket closed under its select() is EBADF there
        self._stop.set()
        self._thread.join(2)
        self.conn.disconnect("bye")


@contextmanager
def irc_server_on(port: int) -> Iterator[tuple[str, int]]:
    """``irc_server`` on a given port (a server that comes up late)."""
    irc.server.IRCServer.allow_reuse_address = True
    server = irc.server.IRCServer(("127.0.0.1", port), irc.server.IRCClient)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield "127.0.0.1", port
    finally:
        server.shutdown()
        server.server_close()
