"""The external services of the real BOSS participants, faked at their
protocol boundary, each in a thread of the test process:

* ``SmtpSink``: a real SMTP server (aiosmtpd) keeping every mail it is given
  (notify talks ``smtplib`` to ``[notify] smtp_server``).
* ``NotifyBot``: the supybot *Notify* plugin notify_irc talks to: a TCP
  port (``[notify_irc] ircbot_host``/``ircbot_port``) taking lines
  ``<#channel> <text>\\n``, each said in that channel on a real IRC server
  (tests/standard/ircserver.py) by a real IRC client, as the bot did.
* ``FakeBugzilla``: an XML-RPC server (``xmlrpc.server``) answering the
  calls of modules/boss/bz/xmlrpc.py (``User.login``, ``Bug.get``,
  ``Bug.comments``, ``Bug.update``, ``Bug.add_comment``) over a dict of bugs.
"""

from __future__ import annotations

import email
import email.policy
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import irc.client
from aiosmtpd.controller import Controller

from tests.waiting import wait_for

# -- SMTP ---------------------------------------------------------------------------


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: email.message.EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        part = self.message.get_body(("plain",)) or self.message
        return part.get_content()


class SmtpSink:
    """An aiosmtpd handler keeping the mails."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[Mail]:
        with self.lock:
            return [m for m in self.mails if address in m.recipients]


@contextmanager
def smtp_server() -> Iterator[tuple[SmtpSink, str]]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, f"127.0.0.1:{port}"
    finally:
        controller.stop()


# -- the supybot Notify plugin ------------------------------------------------------


class NotifyBot:
    """The Notify plugin's side: a TCP server reading ``#channel text`` lines
    and an IRC client (nick ``ircbot``) saying each in its channel."""

    def __init__(self, irc_host: str, irc_port: int, nick: str = "ircbot") -> None:
        self.received: list[str] = []  # the raw lines notify_irc sent
        self.reactor = irc.client.Reactor()
        self.welcomed = threading.Event()
        self.joined: set[str] = set()
        self.reactor.add_global_handler("welcome", lambda c, e: self.welcomed.set())
        self.reactor.add_global_handler("join", self._on_join)
        self.conn = self.reactor.server().connect(irc_host, irc_port, nick)
        self._stop = threading.Event()
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._irc_thread = threading.Thread(target=self._irc_loop, daemon=True)
        self._irc_thread.start()
        wait_for(self.welcomed.is_set, 10, "the Notify bot to be welcomed on IRC")
        bot = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for raw in self.rfile:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if line.strip():
                        with bot._lock:
                            bot.received.append(line)
                            bot._pending.append(line)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._tcp_thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._tcp_thread.start()

    def _on_join(self, conn: Any, event: Any) -> None:
        if irc.client.NickMask(event.source).nick == conn.get_nickname():
            self.joined.add(event.target.lower())

    def _irc_loop(self) -> None:
        # every IRC call happens on this thread (the irc package is not thread safe)
        while not self._stop.is_set():
            self.reactor.process_once(0.05)
            with self._lock:
                pending, self._pending = self._pending, []
            for line in pending:
                channel, _, text = line.partition(" ")
                if channel.lower() not in self.joined:
                    self.conn.join(channel)
                    self.joined.add(channel.lower())
                for part in text.splitlines() or [""]:
                    if part.strip():
                        self.conn.privmsg(channel, part)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._stop.set()
        self._irc_thread.join(2)
        self.conn.disconnect("bye")


# -- Bugzilla over XML-RPC ----------------------------------------------------------


@dataclass
class FakeBugzilla:
    bugs: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    user: str = "boss"
    password: str = "bz-s3cret"

    def add_bug(self, bug_id: int, status: str = "NEW", resolution: str = "") -> None:
        self.bugs[bug_id] = {
            "id": bug_id,
            "status": status,
            "resolution": resolution,
            "summary": f"bug {bug_id}",
            "update_token": f"token-{bug_id}",
        }

    def _login(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("User.login", params))
        if (params.get("login"), params.get("password")) != (self.user, self.password):
            raise _fault(300, "The username or password you entered is not valid.")
        return {"id": 1, "token": "1-login"}

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("Bug.get", params))
        bugs = []
        for raw in params.get("ids", []):
            bug = self.bugs.get(int(raw))
            if bug is None:
                raise _fault(101, f"Bug #{raw} does not exist.")
            bugs.append(bug)
        return {"bugs": bugs, "faults": []}

    def _comments(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("Bug.comments", params))
        return {"bugs": {str(i): {"comments": []} for i in params.get("ids", [])}}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("Bug.update", params))
        self.updates.append(params)
        for raw in params.get("ids", []):
            bug = self.bugs.get(int(raw))
            if bug is None:
                raise _fault(101, f"Bug #{raw} does not exist.")
            for key in ("status", "resolution"):
                if key in params:
                    bug[key] = params[key]
        return {"bugs": [{"id": int(i), "changes": {}} for i in params.get("ids", [])]}

    def _add_comment(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("Bug.add_comment", params))
        self.updates.append({"ids": [params.get("id")], "comment": params.get("comment")})
        return {"id": len(self.updates)}


def _fault(code: int, text: str) -> Exception:
    import xmlrpc.client

    return xmlrpc.client.Fault(code, text)


@contextmanager
def fake_bugzilla() -> Iterator[FakeBugzilla]:
    bz = FakeBugzilla()

    class Handler(SimpleXMLRPCRequestHandler):
        rpc_paths = ("/xmlrpc.cgi",)

        def log_message(self, *args: Any) -> None:
            pass

    server = SimpleXMLRPCServer(
        ("127.0.0.1", 0), requestHandler=Handler, allow_none=True, logRequests=False
    )
    for name, fn in (
        ("User.login", bz._login),
        ("Bug.get", bz._get),
        ("Bug.comments", bz._comments),
        ("Bug.update", bz._update),
        ("Bug.add_comment", bz._add_comment),
    ):
        server.register_function(fn, name)
    bz.url = f"http://127.0.0.1:{server.server_address[1]}/xmlrpc.cgi"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield bz
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
