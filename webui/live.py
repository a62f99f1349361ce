"""Live updates: the run store's stream of transitions, fanned out to every
browser as server-sent events (``GET /api/stream``, ``blueprints.live``).

The engine appends one entry to ``<prefix>transitions`` (a Redis stream,
capped with ``XADD MAXLEN ~``) whenever it saves a run whose summary
changed: its status, outcome or positions (``engine.store.base.transition``).
That write is part of the save's own script call, so the stream is exactly
as current as the run store.

A web process holds one ``Hub``: one reader thread doing ``XREAD BLOCK`` on
the stream (one Redis connection, however many browsers watch) that hands
each entry, encoded once as an SSE message, to every connected client's
bounded queue. A client whose queue is full (a slow or stalled browser) is
dropped rather than waited for: its response ends, the browser's
EventSource reconnects with ``Last-Event-ID`` and gets what it missed from
the stream itself (``XRANGE``). The reader stops when the last client
leaves and starts again with the next one.

Each message::

    id: <stream id>
    event: transition
    data: {"id", "kind" ("run": the status changed, "step": a position),
           "at" (epoch seconds), "wfid", "name", "status", "outcome",
           "launched_at", "ended_at", "positions": [{eid, expid,
           participant, state, since}]}

plus a comment line every ``heartbeat`` seconds, and ``event: reset`` when
a resuming client missed more than the stream still holds (refetch all).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

__all__ = ["Hub", "Message", "Subscriber", "parse_id"]

log = logging.getLogger(__name__)

_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def parse_id(text: str | None) -> tuple[int, int] | None:
    """A stream id as a comparable pair; None when it is not one."""
    if not text or not _ID.match(text.strip()):
        return None
    ms, _, seq = text.strip().partition("-")
    return int(ms), int(seq)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class Message:
    """One transition, encoded once for every client."""

    key: tuple[int, int]
    wfid: str
    text: str  # the SSE message, ready to write

    @classmethod
    def from_entry(cls, entry_id: bytes | str, fields: dict[Any, Any]) -> Message:
        sid = _s(entry_id)
        key = parse_id(sid) or (0, 0)
        raw = fields.get(b"data", fields.get("data")) or b"{}"
        kind = _s(fields.get(b"kind", fields.get("kind")) or b"step")
        data = json.loads(raw)
        data = {"id": sid, "kind": kind, "at": key[0] / 1000, **data}
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        text = f"id: {sid}\nevent: transition\ndata: {body}\n\n"
        return cls(key, str(data.get("wfid", "")), text)


@dataclass(eq=False)
class Subscriber:
    """One connected client: its filter and its bounded queue."""

    wfid: str | None
    queue: queue.Queue[Message | None] = field(default_factory=queue.Queue)
    #: set when it fell behind (its queue was full): it must reconnect
    dropped: threading.Event = field(default_factory=threading.Event)

    def wants(self, msg: Message) -> bool:
        return self.wfid is None or self.wfid == msg.wfid


class Hub:
    """One reader of the stream, many subscribers (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        key: str,
        *,
        block_ms: int = 5000,
        queue_size: int = 500,
        heartbeat: float = 15.0,
        backlog: int = 5000,
    ) -> None:
        self.client = client
        self.key = key
        self.block_ms = block_ms
        self.queue_size = queue_size
        self.heartbeat = heartbeat
        self.backlog_limit = backlog
        self._subs: set[Subscriber] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: how many entries the reader handed out, and to how many queues
        self.read = 0
        self.dropped = 0

    # -- subscribers -----------------------------------------------------------------
    def subscribe(self, wfid: str | None = None, queue_size: int | None = None) -> Subscriber:
        """A new client (``wfid``: only that run's transitions); its queue
        holds ``queue_size`` messages (default: the hub's)."""
        sub = Subscriber(wfid, queue.Queue(queue_size or self.queue_size))
        with self._lock:
            self._subs.add(sub)
            if self._thread is None and not self._stop.is_set():
                # where the reader starts: the end of the stream as it is now
                # (what came before is each client's backlog, by Last-Event-ID)
                start = self._last_id()
                self._thread = threading.Thread(
                    target=self._read, args=(start,), name="boss-live-reader", daemon=True
                )
                self._thread.start()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

    @property
    def reading(self) -> bool:
        """Whether the reader thread runs."""
        with self._lock:
            return self._thread is not None

    def close(self) -> None:
        """Stop the reader and end every client's stream."""
        self._stop.set()
        with self._lock:
            subs = list(self._subs)
            self._subs.clear()
            thread = self._thread
        for sub in subs:
            sub.dropped.set()
            with contextlib.suppress(queue.Full):
                sub.queue.put_nowait(None)
        if thread is not None:
            thread.join(0.2)  # a reader blocked in XREAD ends by itself

    # -- the reader ------------------------------------------------------------------
    def last_id(self) -> str:
        """The stream's newest id ("0-0" when it is empty or unreadable)."""
        return self._last_id()

    def _last_id(self) -> str:
        try:
            top = self.client.xrevrange(self.key, "+", "-", count=1)
        except redis.RedisError:
            return "0-0"
        return _s(top[0][0]) if top else "0-0"

    def _read(self, last: str) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    if not self._subs:
                        self._thread = None
                        return
                try:
                    resp = self.client.xread({self.key: last}, count=1000, block=self.block_ms)
                except (redis.RedisError, OSError, AttributeError, ValueError) as exc:
                    # AttributeError/ValueError: the client's connection was
                    # closed under the blocked read (the app shutting down)
                    if self._stop.is_set():
                        return
                    log.warning("live: reading %s: %s", self.key, exc)
                    self._stop.wait(1.0)
                    continue
                for _, entries in resp or ():
                    for entry_id, fields in entries:
                        last = _s(entry_id)
                        try:
                            msg = Message.from_entry(entry_id, fields)
                        except ValueError:
                            continue
                        self._fan_out(msg)
        finally:
            with self._lock:
                if self._thread is threading.current_thread():
                    self._thread = None

    def _fan_out(self, msg: Message) -> None:
        self.read += 1
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            if not sub.wants(msg):
                continue
            try:
                sub.queue.put_nowait(msg)
            except queue.Full:
                # it fell behind: drop it; it reconnects and resumes by id
                sub.dropped.set()
                self.dropped += 1
                self.unsubscribe(sub)

    # -- one client's stream -----------------------------------------------------------
    def backlog(self, after: str, wfid: str | None = None) -> tuple[list[Message], bool]:
        """What came after stream id ``after`` (oldest first, this client's
        run only when ``wfid``), and whether some of it is gone (trimmed
        from the stream, or more than ``backlog`` entries)."""
        out: list[Message] = []
        start = f"({after}"
        seen = 0
        first = True
        while seen < self.backlog_limit:
            rows = self.client.xrange(self.key, start, "+", count=500)
            if first:
                first = False
                gone = self._trimmed(after, rows)
            for entry_id, fields in rows:
                seen += 1
                start = f"({_s(entry_id)}"
                msg = Message.from_entry(entry_id, fields)
                if wfid is None or msg.wfid == wfid:
                    out.append(msg)
            if len(rows) < 500:
                return out, gone
        return out, True

    def _trimmed(self, after: str, rows: list[Any]) -> bool:
        """Whether entries after ``after`` may have been trimmed away."""
        key = parse_id(after)
        if key is None or key == (0, 0):
            return False
        first = self.client.xrange(self.key, "-", "+", count=1)
        return bool(first) and (parse_id(_s(first[0][0])) or (0, 0)) > key

    def stream(self, last_id: str | None = None, wfid: str | None = None) -> Iterator[str]:
        """The SSE text for one client, from after ``last_id`` (its
        ``Last-Event-ID``) when given, else from now on."""
        sub = self.subscribe(wfid)
        try:
            yield "retry: 1000\n\n"
            sent = parse_id(last_id)
            if sent is not None:
                missed, gone = self.backlog(last_id or "0-0", wfid)
                if gone:
                    yield "event: reset\ndata: {}\n\n"
                for msg in missed:
                    yield msg.text
                    sent = msg.key
            while not sub.dropped.is_set():
                try:
                    msg = sub.queue.get(timeout=self.heartbeat)
                except queue.Empty:
                    yield ": keep-alive\n\n"
                    continue
                if msg is None:
                    return
                if sent is not None and msg.key <= sent:
                    continue  # already sent from the backlog
                yield msg.text
                sent = msg.key
        finally:
            self.unsubscribe(sub)
