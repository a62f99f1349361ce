"""The broker side of a participant instance: one kombu connection and
what is declared on it, rebuilt from scratch after every failure.

``BrokerLink`` knows kombu and nothing of workitems: it connects (for ever,
with back-off), declares the participant's queue, the dead-letter queue
and a control queue bound to the control exchange, starts and stops the
workitem consumer, publishes JSON, and drains events. The runtime
(``participants.runtime``) holds the protocol and calls it from its main
thread only (kombu connections are not thread-safe).

Each (re)connection bumps ``generation``: a delivery belongs to the
generation it arrived on, and acknowledging it on a later one is
impossible (its delivery tag died with its channel), so the runtime checks
before it acks.

On RabbitMQ with publisher confirms, the producer's channel runs in
confirm mode with our own handlers: ``publish`` waits for its confirm (as
before), and ``publish(..., then=f)`` returns at once and calls ``f`` from
the main loop once the broker has confirmed that publish *and every one
before it* on the channel (a reply's ``f`` acknowledges its workitem, so
the step's events and logs, published first, are safe too). A refused
publish (nack) is sent again and the callbacks waiting behind it wait for
the copy. A lost connection forgets the callbacks: their deliveries die
with it, and the broker gives them again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import kombu
from kombu import Consumer, Exchange, Producer, Queue
from kombu.exceptions import OperationalError

from engine.broker import (
    is_redis,
    kombu_connection,
    redis_transport,
    redis_transport_options,
    tls_failure,
    tls_options,
)
from engine.config import Config
from engine.wire import dumps

__all__ = ["BrokerLink", "Fatal"]

log = logging.getLogger("boss.participant")

#: AMQP heartbeat (seconds): a dead peer is noticed within two of them
HEARTBEAT = 10
#: seconds an unused control queue lives on (``x-expires``)
CONTROL_EXPIRES = 300
#: seconds ``publish`` waits for the broker's confirm before it gives the
#: connection up (the runtime reconnects and publishes again)
CONFIRM_TIMEOUT = 30.0


class Fatal(RuntimeError):
    """An error retrying cannot fix (the broker refuses our declarations)."""


class BrokerLink:
    """The connection, its channels, consumers and producer."""

    def __init__(
        self,
        url: str,
        boss: Config,
        queue: str,
        instance: str,
        *,
        on_workitem: Callable[[Any], None],
        on_control: Callable[[Any], None],
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url
        self.display_url = kombu.Connection(url).as_uri()
        self.boss = boss
        self.queue = queue
        self.instance = instance
        self.on_workitem = on_workitem
        self.on_control = on_control
        self.max_backoff = max_backoff
        self.generation = 0
        self.consuming = False
        self.control_queue = ""
        self.conn: kombu.Connection | None = None
        self._consumer: Consumer | None = None
        self._control: Consumer | None = None
        self._producer: Producer | None = None
        #: confirm mode (RabbitMQ with ``confirm_publish``): the publishes
        #: not confirmed yet by delivery tag, the last tag, the callbacks
        #: waiting for a tag (and every one before it), and those whose
        #: publishes are confirmed, to run from the main loop
        self._confirms = False
        self._unconfirmed: dict[int, tuple[bytes, dict[str, Any]]] = {}
        self._seq = 0
        self._waiting: list[tuple[int, Callable[[], None]]] = []
        self._ready: list[Callable[[], None]] = []
        self._refused: list[int] = []

    # -- connecting -------------------------------------------------------------
    def recoverable(self, exc: BaseException) -> bool:
        """Whether reconnecting may cure ``exc`` (connection and channel
        errors, e.g. RabbitMQ closing a channel whose delivery timed out)."""
        errors: tuple[type[BaseException], ...] = (OSError, OperationalError)
        if self.conn is not None:
            errors += tuple(self.conn.connection_errors) + tuple(self.conn.channel_errors)
        return isinstance(exc, errors)

    def connect(self, give_up: Callable[[], bool], wakeup: threading.Event) -> bool:
        """Connect and declare, retrying for ever with back-off (each attempt
        logged); False when ``give_up()`` says to stop trying. ``wakeup``
        cuts a back-off short. Raises ``Fatal`` when the broker refuses a
        declaration (a queue exists with other arguments, no permission)."""
        attempt = 0
        while not give_up():
            conn = kombu_connection(
                self.url,
                heartbeat=HEARTBEAT,
                connect_timeout=5,
                transport_options={
                    "confirm_publish": self.boss.confirm_publish,
                    **redis_transport_options(self.boss),
                },
                transport=redis_transport() if is_redis(self.url) else None,
                **tls_options(self.boss, self.url),
            )
            try:
                conn.ensure_connection(max_retries=0)
                self.conn = conn
                self._setup(conn)
            except Exception as exc:
                if not isinstance(exc, (*conn.connection_errors, OSError, OperationalError)):
                    self.drop(exc)
                    if isinstance(exc, tuple(conn.channel_errors)):
                        raise Fatal(
                            f"the broker refused the set-up of queue {self.queue!r}: {exc}"
                        ) from exc
                    raise
                self.drop(exc)
                attempt += 1
                delay = min(self.max_backoff, 0.25 * 2 ** (attempt - 1))
                tls = None if is_redis(self.url) else tls_failure(exc)  # what to check
                log.warning(
                    "cannot reach the broker at %s (attempt %d: %s); retrying in %.1fs",
                    self.display_url,
                    attempt,
                    f"{tls[0]}; {tls[1]}" if tls else exc,
                    delay,
                )
                wakeup.wait(delay)
                wakeup.clear()
                continue
            if self.generation > 1:
                log.info("reconnected to %s", self.display_url)
            else:
                log.info("connected to %s as %s", self.display_url, self.instance)
            return True
        return False

    def _setup(self, conn: kombu.Connection) -> None:
        """Declare what this instance uses and listen for cancel items. Run
        on every connection: declarations are idempotent."""
        self.generation += 1
        self.consuming = False
        work = conn.channel()
        control = conn.channel()  # its own channel: prefetch 1 must not hold back cancels
        amqp = conn.transport.driver_type == "amqp"
        self._producer = Producer(conn.channel(), on_return=self._on_return if amqp else None)
        self._forget_confirms()
        if amqp and self.boss.confirm_publish:
            self._confirm_mode(self._producer.channel)
        self.declare(self.boss.deadletter_queue)
        self._consumer = Consumer(
            work,
            [Queue(self.queue, durable=True)],
            on_message=self.on_workitem,
            prefetch_count=self.boss.participant_prefetch,
        )
        exchange = Exchange(self.boss.control_exchange, "topic", durable=True)
        # AMQP: a fresh exclusive queue per connection (the broker may keep
        # the old one until it notices the old connection is gone)
        suffix = f".{self.generation}" if amqp else ""
        self.control_queue = (
            f"{self.boss.control_exchange}.{self.queue}.{self.instance.replace(':', '.')}{suffix}"
        )
        # ``expires``: on kombu's Redis transport (no exclusive queues) the
        # control queue of an instance that died goes away by itself
        queue = Queue(
            self.control_queue,
            exchange,
            routing_key=self.queue,
            durable=False,
            exclusive=True,
            auto_delete=True,
            expires=CONTROL_EXPIRES,
        )
        self._control = Consumer(control, [queue], on_message=self.on_control, no_ack=True)
        self._control.consume()

    def declare(self, queue: str) -> None:
        """A durable queue on the default exchange, as BOSS declares its own.
        ``Fatal`` when the broker refuses (it exists with other arguments)."""
        assert self._producer is not None and self.conn is not None
        try:
            Queue(queue, durable=True)(self._producer.channel).declare()
        except tuple(self.conn.channel_errors) as exc:
            if isinstance(exc, tuple(self.conn.connection_errors)):
                raise
            raise Fatal(f"the broker refused to declare queue {queue!r}: {exc}") from exc

    def _on_return(self, exc: BaseException, exchange: str, routing_key: str, message: Any) -> None:
        # RabbitMQ drops a message published to a queue that does not exist
        # unless it is ``mandatory``; then it comes back here: say so loudly
        log.error("the broker returned a message for %r: %s (no such queue?)", routing_key, exc)

    # -- publisher confirms ----------------------------------------------------------
    def _confirm_mode(self, channel: Any) -> None:
        """Confirm mode with our handlers; publishes do not wait by
        themselves (py-amqp's ``_basic_publish``)."""
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel._confirm_selected = True
        channel.confirm_select()
        channel.basic_publish = channel._basic_publish
        self._confirms = True

    def _forget_confirms(self) -> None:
        self._confirms = False
        self._unconfirmed = {}
        self._seq = 0
        self._waiting = []
        self._ready = []
        self._refused = []

    def _on_ack(self, tag: int, multiple: bool) -> None:
        pending = self._unconfirmed
        if multiple:
            for t in [t for t in pending if t <= tag]:
                del pending[t]
        else:
            pending.pop(tag, None)
        if self._waiting:
            first = min(pending, default=self._seq + 1)
            ready = [cb for seq, cb in self._waiting if seq < first]
            if ready:
                self._waiting = [(seq, cb) for seq, cb in self._waiting if seq >= first]
                self._ready.extend(ready)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        # runs inside a frame's dispatch: note it, publish again from
        # ``_settle`` (outside py-amqp's reader)
        refused = sorted(t for t in self._unconfirmed if (t <= tag if multiple else t == tag))
        self._refused.extend(refused)

    def _settle(self) -> None:
        """Publish again what the broker refused (callbacks behind it wait
        for the copy), then run the callbacks whose publishes are
        confirmed. Main thread, outside the reader."""
        if self._refused:
            refused, self._refused = self._refused, []
            log.warning("the broker refused %d publish(es): publishing again", len(refused))
            first = refused[0]
            for tag in refused:
                entry = self._unconfirmed.pop(tag, None)
                if entry is not None:
                    self._send(*entry)
            self._waiting = [
                (max(seq, self._seq) if seq >= first else seq, cb) for seq, cb in self._waiting
            ]
        while self._ready:
            ready, self._ready = self._ready, []
            for cb in ready:
                cb()

    def _send(self, body: bytes, options: dict[str, Any]) -> int:
        """Publish; in confirm mode the delivery tag it will be confirmed by."""
        assert self._producer is not None
        self._producer.publish(body, retry=False, **options)
        if not self._confirms:
            return 0
        self._seq += 1
        self._unconfirmed[self._seq] = (body, options)
        return self._seq

    def _confirmed(self, seq: int) -> None:
        """Wait for ``seq``'s confirm (and every one before it)."""
        assert self.conn is not None
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while True:
            self._settle()
            if not any(t <= seq for t in self._unconfirmed):
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise OperationalError(f"no publisher confirm in {CONFIRM_TIMEOUT}s")
            with contextlib.suppress(TimeoutError):
                self.conn.drain_events(timeout=min(left, 1.0))

    def _published(self, seq: int, then: Callable[[], None] | None) -> None:
        if then is None:
            if seq:
                self._confirmed(seq)
        elif seq:
            self._waiting.append((seq, then))
        else:
            self._ready.append(then)  # nothing to wait for: from the loop

    def after_confirms(self, then: Callable[[], None]) -> None:
        """Call ``then()`` from a later ``drain`` once every publish so far
        is confirmed (at once, from the loop, when none waits)."""
        waiting = self._confirms and bool(self._unconfirmed)
        self._published(self._seq if waiting else 0, then)

    def wait_confirms(self) -> None:
        """Wait until every publish so far is confirmed, and run the
        callbacks waiting for them (before a graceful close)."""
        if self._confirms and self._seq:
            self._confirmed(self._seq)
        self._settle()

    @property
    def unconfirmed(self) -> int:
        """How many publishes wait for the broker's confirm."""
        return len(self._unconfirmed)

    def drop(self, exc: BaseException | None = None) -> None:
        """Forget the connection (after an error, or at exit)."""
        conn, self.conn = self.conn, None
        self._forget_confirms()
        self.consuming = False
        self._consumer = self._control = self._producer = None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if exc is not None and isinstance(exc, tuple(conn.connection_errors)):
                conn.collect()
            else:
                conn.release()

    def close(self) -> None:
        """Stop both consumers (the control queue auto-deletes) and close."""
        with contextlib.suppress(Exception):
            self.stop_consuming()
            if self._control is not None:
                self._control.cancel()
        self.drop()

    # -- using it -------------------------------------------------------------------
    def consume(self) -> None:
        if not self.consuming and self._consumer is not None:
            self._consumer.consume()
            self.consuming = True

    def stop_consuming(self) -> None:
        """``basic.cancel``: no further delivery comes to this instance."""
        if self.consuming and self._consumer is not None:
            self._consumer.cancel()
        self.consuming = False

    def publish(
        self,
        routing_key: str,
        obj: dict[str, Any] | bytes,
        *,
        then: Callable[[], None] | None = None,
    ) -> None:
        """JSON, persistent, on the default exchange. Without ``then`` it
        returns once RabbitMQ confirmed it (when ``confirm_publish`` is on,
        so an ack after it is safe); with ``then`` it returns at once, and
        ``then()`` runs from a later ``drain`` once this publish and every
        one before it are confirmed (at once where there are no confirms)."""
        body = obj if isinstance(obj, bytes) else dumps(obj)
        seq = self._send(
            body,
            {
                "exchange": "",
                "routing_key": routing_key,
                "content_type": "application/json",
                "content_encoding": "utf-8",
                "delivery_mode": 2,
                "mandatory": True,
            },
        )
        self._published(seq, then)

    def publish_events(self, events: list[dict[str, Any]], *, wait: bool = True) -> None:
        """Eiffel events on the traceability bus (``engine.trace.bus``):
        one message, a JSON array when there are several. The trace queue
        and its binding are declared with it, so nothing is dropped before
        an aggregator first ran. ``wait=False``: not waiting for its
        confirm (a later ``publish(..., then=f)`` covers it)."""
        from engine.trace import TraceTopology, routing_key

        assert self._producer is not None
        if not events:
            return
        events = [_with_domain(e, self.boss.eiffel_domain) for e in events]
        topo = TraceTopology(self.boss)
        if len(events) == 1:
            body, key = (
                dumps(events[0]),
                routing_key(
                    str(events[0].get("meta", {}).get("type", "_")), self.boss.eiffel_domain
                ),
            )
        else:
            body, key = dumps(events), routing_key("batch", self.boss.eiffel_domain)
        seq = self._send(
            body,
            {
                "exchange": topo.exchange,
                "routing_key": key,
                "declare": [topo.queue],
                "content_type": "application/json",
                "content_encoding": "utf-8",
                "delivery_mode": 2,
            },
        )
        if wait and seq:
            self._confirmed(seq)

    def drain(self, timeout: float) -> None:
        """Deliver what arrived within ``timeout`` seconds; keep heartbeats."""
        assert self.conn is not None
        if not self._ready and not self._refused:
            with contextlib.suppress(TimeoutError):
                self.conn.drain_events(timeout=timeout)
        self.conn.heartbeat_check()
        self._settle()


def _with_domain(event: dict[str, Any], domain: str) -> dict[str, Any]:
    """``event`` with this site's ``meta.source.domainId`` when it names
    none (the engine's own events carry it; a handler's are built without
    it), so that every event of this site says where it came from, also
    to federated peers. An event naming a domain keeps it."""
    meta = event.get("meta")
    if not domain or not isinstance(meta, dict):
        return event
    source = meta.get("source")
    if isinstance(source, dict) and source.get("domainId"):
        return event
    source = {**source, "domainId": domain} if isinstance(source, dict) else {"domainId": domain}
    return {**event, "meta": {**meta, "source": source}}
