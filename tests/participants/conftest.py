"""Fixtures of the participant runtime suite.

The test plays the engine: it declares a queue of its own to receive
replies, publishes workitems to the participant's queue with ``reply_to``
set to it, and reads what comes back. Participants run as real OS
processes (``python -m participants.runtime CONFIG.ini``) with the handlers
of ``fixtures/handlers.py``, which report through files (see there).

* ``wait_for(predicate, timeout, what)``: poll a condition until a deadline;
  the only way these tests wait.
* ``peer``: a ``Peer`` on ``broker_url`` (parametrised over RabbitMQ and the
  embedded Valkey), deleting the queues it declared afterwards.
* ``spawn``: start participant processes; each is stopped afterwards (and
  its log printed when the test failed).
* ``setup``: a ``Setup`` (queue names unique per test, an INI writer, a
  workitem factory) for one participant.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import kombu
import pytest
import redis
from kombu import Exchange, Producer, Queue

from tests.waiting import wait_for

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = Path(__file__).parent / "fixtures" / "handlers.py"


def lines(path: Path) -> list[str]:
    """The lines of a report file (none when it does not exist yet)."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


# -- the broker, as the engine sees it --------------------------------------------


class Peer:
    """A tolerant client of the broker: every operation reconnects and
    retries (for up to ``patience`` seconds) so a test can go on talking to
    a broker that is being restarted."""

    def __init__(self, url: str, patience: float = 60.0) -> None:
        self.url = url
        self.patience = patience
        self.declared: set[str] = set()
        self._conn: kombu.Connection | None = None
        self._channel: Any = None

    def _retry(self, op: Callable[[Any], T]) -> T:
        deadline = time.monotonic() + self.patience
        while True:
            try:
                if self._conn is None:
                    self._conn = kombu.Connection(self.url, connect_timeout=2)
                    self._conn.ensure_connection(max_retries=0)
                    self._channel = self._conn.channel()
                return op(self._channel)
            except Exception as exc:
                errors = (OSError, kombu.exceptions.OperationalError)
                if self._conn is not None:
                    errors += tuple(self._conn.connection_errors)
                self.close()
                if not isinstance(exc, errors) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.release()

    def declare(self, name: str) -> str:
        """A durable queue on the default exchange (as BOSS declares them)."""
        self._retry(lambda ch: Queue(name, durable=True)(ch).declare())
        self.declared.add(name)
        return name

    def publish(
        self,
        queue: str,
        body: dict[str, Any] | bytes,
        *,
        reply_to: str | None = None,
        content_type: str = "application/json",
    ) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        props: dict[str, Any] = {"reply_to": reply_to} if reply_to else {}
        self._retry(
            lambda ch: Producer(ch).publish(
                raw,
                exchange="",
                routing_key=queue,
                content_type=content_type,
                content_encoding="utf-8",
                delivery_mode=2,
                retry=False,
                **props,
            )
        )

    def publish_topic(self, exchange: str, routing_key: str, body: dict[str, Any]) -> None:
        ex = Exchange(exchange, "topic", durable=True)
        self._retry(
            lambda ch: Producer(ch).publish(
                json.dumps(body).encode(),
                exchange=ex,
                routing_key=routing_key,
                declare=[ex],
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                retry=False,
            )
        )

    def get(self, queue: str) -> dict[str, Any] | None:
        """One message from ``queue`` (acknowledged), parsed, or None."""

        def op(ch: Any) -> dict[str, Any] | None:
            message = Queue(queue, durable=True)(ch).get(no_ack=False)
            if message is None:
                return None
            body = message.body
            message.ack()
            return json.loads(body if isinstance(body, str) else body.decode())

        return self._retry(op)

    def collect(
        self,
        queue: str,
        count: int = 1,
        timeout: float = 15.0,
        into: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Messages from ``queue`` until ``count`` have come (appended to
        ``into`` when given, so a caller can keep collecting)."""
        got = [] if into is None else into

        def enough() -> bool:
            while (message := self.get(queue)) is not None:
                got.append(message)
            return len(got) >= count

        wait_for(enough, timeout, f"{count} message(s) on {queue} (got {got})")
        return got

    def collect_until(
        self,
        queue: str,
        done: Callable[[list[dict[str, Any]]], bool],
        timeout: float = 15.0,
        what: str = "",
        into: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Messages from ``queue`` until ``done(messages)`` holds."""
        got = [] if into is None else into

        def enough() -> bool:
            while (message := self.get(queue)) is not None:
                got.append(message)
            return done(got)

        wait_for(enough, timeout, f"{what or 'messages'} on {queue} (got {got})")
        return got

    def count(self, queue: str) -> int:
        """Messages ready in ``queue`` (not counting unacknowledged ones)."""

        def op(ch: Any) -> int:
            try:
                return Queue(queue, durable=True)(ch).queue_declare(passive=True).message_count
            except ch.connection.client.channel_errors:
                # kombu's Redis transport: an empty queue is no key at all
                if self.url.startswith("amqp"):
                    raise
                return 0

        return self._retry(op)

    def delete_declared(self) -> None:
        for name in self.declared:
            with contextlib.suppress(Exception):
                self._retry(lambda ch, name=name: Queue(name)(ch).delete())
        self.close()


def unacked(broker_url: str, queue: str) -> int:
    """Deliveries of ``queue`` taken by a consumer and not yet acknowledged
    (RabbitMQ: ``rabbitmqctl list_queues``; kombu's Redis transport: its
    ``unacked`` hash, whose entries name their routing key)."""
    if broker_url.startswith("amqp"):
        vhost = unquote(urlsplit(broker_url).path[1:]) or "/"
        out = subprocess.run(
            [
                "rabbitmqctl",
                "-q",
                "list_queues",
                "-p",
                vhost,
                "name",
                "messages_unacknowledged",
                "--formatter",
                "json",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        rows = {row["name"]: row["messages_unacknowledged"] for row in json.loads(out or "[]")}
        return int(rows.get(queue, 0))
    client = redis.Redis(unix_socket_path=urlsplit(broker_url).path)
    try:
        entries = [json.loads(v) for v in client.hvals("unacked")]
    finally:
        client.close()
    return sum(1 for _message, _exchange, routing_key in entries if routing_key == queue)


@pytest.fixture
def peer(broker_url: str) -> Iterator[Peer]:
    p = Peer(broker_url)
    yield p
    p.delete_declared()


# -- participant processes -----------------------------------------------------------


class ParticipantProcess:
    """A ``python -m participants.runtime CONFIG`` child, its stderr in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOSS_")}
        with log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "participants.runtime",
                    str(config),
                    "--log-level",
                    "DEBUG" if os.environ.get("BOSS_TEST_DEBUG") else "INFO",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=fh,
                cwd=ROOT,
                env=env,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, needle: str, timeout: float = 15.0, count: int = 1) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None and self.text().count(needle) < count:
                raise AssertionError(
                    f"participant exited ({self.proc.returncode}) before "
                    f"logging {needle!r}:\n{self.text()}"
                )
            return self.text().count(needle) >= count

        wait_for(seen, timeout, f"{needle!r} in the participant's log")

    def ready(self, timeout: float = 15.0) -> ParticipantProcess:
        """Wait until it consumes (its control queue is bound by then)."""
        self.wait_log("consuming ", timeout)
        return self

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def spawn(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[Path], ParticipantProcess]]:
    started: list[ParticipantProcess] = []

    def start(config: Path) -> ParticipantProcess:
        proc = ParticipantProcess(config, tmp_path / f"participant-{len(started)}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for proc in started:
            sys.stderr.write(
                f"--- {proc.log.name} (exit {proc.proc.returncode}) ---\n{proc.text()}\n"
            )


# -- one participant's set-up ------------------------------------------------------------


@dataclass
class Setup:
    """Names unique to one test, and writers for INI files and workitems."""

    tmp: Path
    broker_url: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def queue(self) -> str:
        return f"p-{self.tag}"

    @property
    def engine(self) -> str:
        return f"engine-{self.tag}"

    @property
    def deadletters(self) -> str:
        return f"dl-{self.tag}"

    @property
    def control(self) -> str:
        return "boss.control"

    def report(self, name: str) -> Path:
        return self.tmp / "report" / name

    def runs(self) -> list[str]:
        return lines(self.report("runs"))

    def ini(
        self,
        name: str = "p.ini",
        *,
        participant: dict[str, Any] | None = None,
        boss: dict[str, Any] | None = None,
        greeting: str = "hello",
        queue: str | None = None,
    ) -> Path:
        """An INI file for the fixture handler on this test's queues."""
        (self.tmp / "report").mkdir(exist_ok=True)
        part = {
            "name": "tester",
            "queue": queue or self.queue,
            "code": str(HANDLERS),
            "lease_after": 5,
            "lease": 60,
            "debug_trace": "true",
        }
        part.update(participant or {})
        bos = {
            "broker_url": self.broker_url,
            "engine_queue": self.engine,
            "deadletter_queue": self.deadletters,
            "control_exchange": self.control,
            "visibility_timeout": 30,
        }
        bos.update(boss or {})
        text = "[participant]\n" + "".join(f"{k} = {v}\n" for k, v in part.items())
        text += "\n[boss]\n" + "".join(f"{k} = {v}\n" for k, v in bos.items())
        text += f"\n[fixture]\ndir = {self.tmp / 'report'}\ngreeting = {greeting}\n"
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return path

    def workitem(
        self, subid: str | None = None, *, params: dict[str, Any] | None = None, **top: Any
    ) -> dict[str, Any]:
        subid = subid or f"0_1-{uuid.uuid4().hex[:8]}"
        fields = {"project": "Mer:Tools", "ev": {"id": 42}, "params": params or {}}
        fields.update(top.pop("fields", {}))
        return {
            "fei": {"wfid": f"wf-{self.tag}", "expid": "0_1", "subid": subid, "engine_id": "boss"},
            "fields": fields,
            "participant_name": "tester",
            "wf_name": "test",
            "wf_revision": "1",
            "dispatched_at": "2026-11-22T10:00:00.000Z",
            **top,
        }


@pytest.fixture
def setup(tmp_path: Path, broker_url: str, peer: Peer) -> Setup:
    s = Setup(tmp_path, broker_url)
    peer.declare(s.queue)
    peer.declare(s.engine)
    peer.declare(s.deadletters)
    return s
