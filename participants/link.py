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
"""

from __future__ import annotations

import contextlib
import logging
import threading
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
        self.declare(self.boss.deadletter_queue)
        self._consumer = Consumer(
            work, [Queue(self.queue, durable=True)], on_message=self.on_workitem, prefetch_count=1
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

    def drop(self, exc: BaseException | None = None) -> None:
        """Forget the connection (after an error, or at exit)."""
        conn, self.conn = self.conn, None
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

    def publish(self, routing_key: str, obj: dict[str, Any] | bytes) -> None:
        """JSON, persistent, on the default exchange (confirmed by RabbitMQ
        when ``confirm_publish`` is on, so an ack after it is safe)."""
        assert self._producer is not None
        body = obj if isinstance(obj, bytes) else dumps(obj)
        self._producer.publish(
            body,
            exchange="",
            routing_key=routing_key,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            mandatory=True,
            retry=False,
        )

    def publish_events(self, events: list[dict[str, Any]]) -> None:
        """Eiffel events on the traceability bus (``engine.trace.bus``):
        one message, a JSON array when there are several. The trace queue
        and its binding are declared with it, so nothing is dropped before
        an aggregator first ran."""
        from engine.trace import TraceTopology, routing_key

        assert self._producer is not None
        if not events:
            return
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
        self._producer.publish(
            body,
            exchange=topo.exchange,
            routing_key=key,
            declare=[topo.queue],
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            retry=False,
        )

    def drain(self, timeout: float) -> None:
        """Deliver what arrived within ``timeout`` seconds; keep heartbeats."""
        assert self.conn is not None
        with contextlib.suppress(TimeoutError):
            self.conn.drain_events(timeout=timeout)
        self.conn.heartbeat_check()
