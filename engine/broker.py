"""The broker adapter: kombu connections, the queues and exchanges of the
wire protocol (``docs/wire-protocol.md``), publishing, and the dead-letter
queue.

One ``Publisher`` per thread (a kombu connection is not thread-safe). It
implements the engine's ``Dispatcher`` protocol (workitems to participant
queues, cancel items to the control exchange) and ``send`` (messages to the
engine's queue), and retries through broker restarts: a publish either
reaches the broker or keeps trying, it is never silently dropped.

The same code runs on RabbitMQ (``amqp://``, with publisher confirms) and on
kombu's Redis transport (``redis://``, ``redis+socket://``: the embedded
Valkey), chosen by the URL.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import kombu
from kombu import Exchange, Queue

from engine import wire
from engine.config import Config
from engine.core import effects as fx
from engine.core import messages

log = logging.getLogger("boss.broker")

__all__ = [
    "Publisher",
    "QueueInfo",
    "Topology",
    "connect",
    "drop_deadletter",
    "list_deadletters",
    "queue_info",
    "reinject_deadletter",
]

#: retry forever, backing off to one attempt every 2 s (logged)
RETRY_FOREVER = {
    "max_retries": None,
    "interval_start": 0.1,
    "interval_step": 0.5,
    "interval_max": 2.0,
}


def is_redis(url: str) -> bool:
    return url.split("://", 1)[0].split("+", 1)[0] in ("redis", "rediss", "bossredis", "socket")


def connect(
    config: Config,
    *,
    url: str | None = None,
    heartbeat: float | None = None,
    confirm: bool | None = None,
) -> kombu.Connection:
    """A kombu connection to the configured broker (not yet connected)."""
    url = url or config.resolved_broker_url()
    options: dict[str, Any] = {}
    transport = None
    if is_redis(url):
        options.update(redis_transport_options(config))
        heartbeat = None
        transport = redis_transport()
    else:
        options["confirm_publish"] = config.confirm_publish if confirm is None else confirm
    return kombu_connection(
        url, heartbeat=heartbeat, transport_options=options, connect_timeout=5, transport=transport
    )


def kombu_connection(url: str, *, transport: type | None = None, **kwargs: Any) -> kombu.Connection:
    """``kombu.Connection(url)``, with our Redis ``transport`` used even for
    a ``redis+socket://`` URL (kombu takes the name before ``+`` as the
    transport and would ignore the class given): the URL's scheme becomes
    the transport's registered short name, as kombu's own transports are."""
    if transport is not None:
        from engine.redis_transport import SCHEME

        scheme, _, rest = url.partition("://")
        if scheme == "redis":
            url = f"{SCHEME}://{rest}"
        elif scheme.startswith("redis+"):
            url = f"{SCHEME}+{scheme.split('+', 1)[1]}://{rest}"
        # anything else (rediss://: TLS) stays on kombu's own transport
    return kombu.Connection(url, **kwargs)


def redis_transport_options(config: Config) -> dict[str, Any]:
    """kombu Redis transport options every BOSS process shares: when to give
    an unacknowledged delivery to another consumer, and how long the lock
    around that scan may outlive a process killed while holding it (kombu's
    default, 300 s, would hold every redelivery back for five minutes)."""
    return {
        "visibility_timeout": config.visibility_timeout,
        "unacked_mutex_expire": max(5, int(config.visibility_timeout)),
    }


def redis_transport() -> type:
    """kombu's Redis transport with one client per channel
    (``engine.redis_transport``)."""
    from engine.redis_transport import Transport

    return Transport


@dataclass(frozen=True)
class Topology:
    """The queues and exchanges BOSS declares (durable, redeclared on every
    reconnect, so a broker that lost them gets them back)."""

    config: Config

    @property
    def engine_queue(self) -> Queue:
        return participant_queue(self.config.engine_queue)

    @property
    def legacy_reply_queue(self) -> Queue | None:
        """``legacy_reply_queue`` (python-ruote-amqp participants reply
        there), or None when it is not set."""
        name = self.config.legacy_reply_queue
        return participant_queue(name) if name else None

    @property
    def deadletter_queue(self) -> Queue:
        return participant_queue(self.config.deadletter_queue)

    @property
    def control_exchange(self) -> Exchange:
        return Exchange(self.config.control_exchange, type="topic", durable=True)


def participant_queue(name: str) -> Queue:
    """A durable queue on the default exchange (routing key = its name)."""
    return Queue(name, exchange=Exchange(""), routing_key=name, durable=True, auto_delete=False)


class Publisher:
    """Publishes JSON bodies on its own connection (see the module docstring)."""

    def __init__(self, config: Config, connection: kombu.Connection | None = None) -> None:
        self.config = config
        self.topology = Topology(config)
        self.connection = connection if connection is not None else connect(config)
        self._producer: kombu.Producer | None = None
        self._declared: set[str] = set()
        #: what a retry can cure: a lost connection or channel
        self._retryable = (
            *self.connection.recoverable_connection_errors,
            *self.connection.recoverable_channel_errors,
            OSError,
        )

    def close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):  # closing a broken channel
                self._producer.release()
            self._producer = None
        self.connection.release()

    def _on_error(self, exc: BaseException, interval: float) -> None:
        log.warning("broker unreachable (%s); retrying in %.1fs", exc, interval)
        self._declared.clear()  # a restarted broker may have lost what we declared

    @property
    def producer(self) -> kombu.Producer:
        if self._producer is None:
            self.connection.ensure_connection(errback=self._on_error, **RETRY_FOREVER)
            self._producer = kombu.Producer(self.connection)
        return self._producer

    def publish(
        self,
        body: dict[str, Any] | bytes,
        *,
        queue: str | None = None,
        exchange: Exchange | None = None,
        routing_key: str | None = None,
        reply_to: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Publish ``body`` to ``queue`` (declared once per connection) or to
        ``exchange`` with ``routing_key``; persistent, retried forever."""
        declare: list[Any] = []
        if queue is not None:
            routing_key = queue
            if queue not in self._declared:
                declare.append(participant_queue(queue))
        elif exchange is not None and exchange.name not in self._declared:
            declare.append(exchange)
        data = body if isinstance(body, bytes) else wire.dumps(body)
        options = {
            "exchange": exchange if exchange is not None else "",
            "routing_key": routing_key,
            "declare": declare,
            "content_type": wire.CONTENT_TYPE,
            "content_encoding": "utf-8",
            "delivery_mode": 2,
            "reply_to": reply_to,
            "headers": headers,
        }
        producer = self.producer
        try:
            # the common case without kombu's retry wrapper (a tenth of a
            # publish's cost); a failure takes the retrying path below
            producer.publish(data, retry=False, **options)
        except self._retryable as exc:
            self._on_error(exc, 0.0)
            self.producer.publish(
                data,
                retry=True,
                retry_policy={**RETRY_FOREVER, "errback": self._on_error},
                **options,
            )
        if queue is not None:
            self._declared.add(queue)
        elif exchange is not None:
            self._declared.add(exchange.name)

    # -- where a workitem is ------------------------------------------------------

    @property
    def can_locate(self) -> bool:
        """Whether ``locate`` can tell (kombu's Redis transport: the broker's
        bookkeeping is readable; RabbitMQ's is not, and needs no reading: it
        requeues a delivery exactly when its consumer's connection is lost)."""
        return self.connection.transport.driver_type == "redis"

    def locate(self, queue: str | None, wfid: str, subid: str) -> str | None:
        """Where the workitem of step ``subid`` of run ``wfid`` is: ``"held"``
        by a consumer (or its reply by an engine worker), ``"queued"`` on
        ``queue``, ``"replied"`` (its reply waits on the engine's queue), or
        None (nowhere: done, or lost). Only when ``can_locate``."""
        from engine.redis_transport import locate

        replies = [self.config.engine_queue]
        if self.config.legacy_reply_queue:
            replies.append(self.config.legacy_reply_queue)
        channel = self.producer.channel
        return locate(channel, wfid, subid, queues=[queue] if queue else [], reply_queues=replies)

    # -- the engine's Dispatcher protocol and send ------------------------------

    def dispatch(self, effect: fx.Dispatch) -> None:
        self.publish(effect.workitem, queue=effect.queue, reply_to=self.config.engine_queue)

    def cancel(self, effect: fx.CancelWorkitem) -> None:
        self.publish(
            messages.cancel_item(effect.fei, effect.participant, effect.flavour),
            exchange=self.topology.control_exchange,
            routing_key=effect.queue,
        )

    def cancel_ruote(self, effect: fx.CancelWorkitem) -> None:
        """ruote's cancel item on the participant's own queue, for a
        participant registered with ``ruote`` (python-ruote-amqp)."""
        self.publish(messages.ruote_cancel_item(effect.fei, effect.flavour), queue=effect.queue)

    def send(self, msg: dict[str, Any]) -> None:
        """A message to the engine's queue (any worker takes it)."""
        self.publish(msg, queue=self.config.engine_queue)

    def deadletter(self, record: dict[str, Any]) -> None:
        self.publish(record, queue=self.config.deadletter_queue)


# -- queue depth ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueInfo:
    name: str
    messages: int | None  # None: the queue does not exist
    consumers: int | None


def queue_info(connection: kombu.Connection, name: str) -> QueueInfo:
    """How many messages wait on a queue and how many consumers it has.
    The Redis transport keeps a queue as a list that exists only while it
    holds messages, and does not count consumers: there, ``messages`` is
    the list's length and ``consumers`` None."""
    if connection.transport.driver_type == "redis":
        with connection.channel() as channel:
            return QueueInfo(name, int(channel._size(name)), None)
    try:
        with connection.channel() as channel:
            ok = participant_queue(name)(channel).queue_declare(passive=True)
    except connection.channel_errors as exc:
        if "NOT_FOUND" in str(exc) or "404" in str(exc):
            return QueueInfo(name, None, None)
        raise
    return QueueInfo(name, ok.message_count, ok.consumer_count)


# -- the dead-letter queue -----------------------------------------------------------


@contextmanager
def _browse(config: Config, connection: kombu.Connection) -> Iterator[list[tuple[Any, Any]]]:
    """Every message on the dead-letter queue, taken without acknowledging:
    when the block ends, the channel closes and the broker puts back every
    one the block did not ``ack``."""
    channel = connection.channel()
    try:
        queue = Topology(config).deadletter_queue(channel)
        queue.declare()
        taken = []
        while True:
            message = queue.get(no_ack=False, accept=["application/json"])
            if message is None:
                break
            try:
                record = wire.decode(message.body)
            except wire.Malformed as exc:
                record = {
                    "id": f"raw-{len(taken)}",
                    "reason": f"unreadable dead letter: {exc}",
                    "queue": config.deadletter_queue,
                    "body": repr(message.body)[:200],
                    "at": "",
                }
            taken.append((message, record))
        yield taken
    finally:
        with contextlib.suppress(OSError):  # the broker went away: nothing was acked
            channel.close()


def list_deadletters(config: Config, connection: kombu.Connection) -> list[dict[str, Any]]:
    """The dead letters, oldest first (none is consumed)."""
    with _browse(config, connection) as taken:
        return [record for _, record in taken]


def reinject_deadletter(
    config: Config, connection: kombu.Connection, letter_id: str, body: bytes | None = None
) -> dict[str, Any]:
    """Publish a dead letter's body (or a corrected ``body``) back to the
    queue it came from and remove it from the dead-letter queue."""
    publisher = Publisher(config, connection.clone())
    try:
        with _browse(config, connection) as taken:
            for message, record in taken:
                if record.get("id") == letter_id:
                    data = body if body is not None else wire.deadletter_body(record)
                    # with its headers: a source may need them (the OBS
                    # launcher keeps the bus's routing key in x-routing-key)
                    publisher.publish(
                        data, queue=record["queue"], headers=record.get("headers") or None
                    )
                    message.ack()
                    return record
    finally:
        publisher.close()
    raise KeyError(letter_id)


def drop_deadletter(config: Config, connection: kombu.Connection, letter_id: str) -> dict[str, Any]:
    """Remove a dead letter for good."""
    with _browse(config, connection) as taken:
        for message, record in taken:
            if record.get("id") == letter_id:
                message.ack()
                return record
    raise KeyError(letter_id)


def queue_depths(boss: Config, queues: list[str]) -> dict[str, dict[str, Any]]:
    """``{queue: {"messages": n, "consumers": n|None}}`` (``None`` where the
    transport cannot tell; ``{"error": ...}`` when the broker is away)."""
    if not queues:
        return {}
    try:
        with connect(boss) as conn:
            out: dict[str, dict[str, Any]] = {}
            for q in dict.fromkeys(queues):
                info = queue_info(conn, q)
                out[q] = {"messages": info.messages, "consumers": info.consumers}
            return out
    except Exception as exc:
        error = {"error": f"broker: {type(exc).__name__}: {exc}"}
        return {q: dict(error) for q in queues}
