"""The broker adapter: kombu connections, the queues and exchanges of the
wire protocol (``docs/wire-protocol.md``), publishing, and the dead-letter
queue.

One ``Publisher`` per thread (a kombu connection is not thread-safe). It
implements the engine's ``Dispatcher`` protocol (workitems to participant
queues, cancel items to the control exchange) and ``send`` (messages to the
engine's queue), and retries through broker restarts: a publish either
reaches the broker or keeps trying, it is never silently dropped.

The same code runs on RabbitMQ (``amqp://``, with publisher confirms;
``amqps://``: TLS, with the ``broker_ca``/``broker_cert``/``broker_key``
keys and client-certificate login: ``tls_options``) and on kombu's Redis
transport (``redis://``, ``redis+socket://``: the embedded Valkey), chosen
by the URL. Every BOSS process connects through ``connect()`` (participants
through ``participants.link``, Celery through ``engine.celery_app``, with
the same ``tls_options``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import kombu
from kombu import Exchange, Queue
from kombu.utils.url import maybe_sanitize_url, parse_url

from engine import wire
from engine.config import Config, ConfigError
from engine.core import effects as fx
from engine.core import messages

log = logging.getLogger("boss.broker")

__all__ = [
    "BrokerTLSError",
    "Publisher",
    "QueueInfo",
    "Topology",
    "check_tls",
    "connect",
    "describe_connect_error",
    "drop_deadletter",
    "list_deadletters",
    "queue_info",
    "reinject_deadletter",
    "tls_failure",
    "tls_options",
]

#: retry forever, backing off to one attempt every 2 s (logged)
RETRY_FOREVER = {
    "max_retries": None,
    "interval_start": 0.1,
    "interval_step": 0.5,
    "interval_max": 2.0,
}


#: seconds ``Publisher.confirming`` waits for the broker's confirms before
#: it publishes the unconfirmed again (a broker that is alive confirms in
#: milliseconds)
CONFIRM_TIMEOUT = 30.0


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
        url,
        heartbeat=heartbeat,
        transport_options=options,
        connect_timeout=5,
        transport=transport,
        **tls_options(config, url),
    )


def tls_options(config: Config, url: str) -> dict[str, Any]:
    """``kombu.Connection`` keyword arguments for TLS to RabbitMQ at ``url``:
    ``ssl`` (py-amqp's options of ``SSLContext.wrap_socket``: the broker's
    certificate is always verified, against ``broker_ca`` or the system's
    CAs, and must name the URL's host unless ``broker_verify_hostname`` is
    false), and ``login_method="EXTERNAL"`` when a client certificate is
    given and the URL has no password (RabbitMQ logs the client in by its
    certificate). For a Valkey/Redis broker over TLS (``rediss://``): the
    ``ssl`` options of redis-py's ``SSLConnection`` from the same keys
    (verified against ``broker_ca`` or the system's CAs, the host name
    checked unless ``broker_verify_hostname`` is false, ``broker_cert``/
    ``broker_key`` presented when the server asks for a client
    certificate). Empty (no TLS) for ``redis://``, and for ``amqp://`` when
    none of ``broker_ca``, ``broker_cert``, ``broker_key`` is set.

    Raises ``ConfigError`` when a named file does not exist (else every
    connection attempt would fail and be retried for ever)."""
    files = {
        "broker_ca": config.broker_ca,
        "broker_cert": config.broker_cert,
        "broker_key": config.broker_key,
    }
    if is_redis(url) and not url.startswith("rediss://"):
        return {}
    if not url.startswith(("amqps://", "rediss://")) and not any(files.values()):
        return {}
    for key, path in files.items():
        if path and not os.path.isfile(path):
            raise ConfigError(f"{key} = {path}: no such file", key)
    if config.broker_key and not config.broker_cert:
        raise ConfigError("broker_key is set but broker_cert is not", "broker_key")
    if is_redis(url):
        redis_ssl: dict[str, Any] = {
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
            "ssl_check_hostname": config.broker_verify_hostname,
        }
        if config.broker_ca:
            redis_ssl["ssl_ca_certs"] = config.broker_ca
        if config.broker_cert:
            redis_ssl["ssl_certfile"] = config.broker_cert
            redis_ssl["ssl_keyfile"] = config.broker_key or None
        return {"ssl": redis_ssl}
    parts = parse_url(url)
    options: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED}
    if config.broker_ca:
        options["ca_certs"] = config.broker_ca
    if config.broker_cert:
        options["certfile"] = config.broker_cert
        options["keyfile"] = config.broker_key or None
    if config.broker_verify_hostname and parts.get("hostname"):
        options["server_hostname"] = parts["hostname"]
    out: dict[str, Any] = {"ssl": options}
    if config.broker_cert and not parts.get("password"):
        out["login_method"] = "EXTERNAL"
    return out


#: TLS alerts by which a broker refuses the client's certificate (or its absence)
CLIENT_CERT_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "UNKNOWN_CA",
    "BAD_CERTIFICATE",
    "CERTIFICATE_UNKNOWN",
)


def tls_failure(exc: BaseException) -> tuple[str, str] | None:
    """What went wrong in a TLS handshake with the broker, and what to
    check, when ``exc`` (or an exception it was raised from) is a TLS
    error; else None."""
    seen: BaseException | None = exc
    while seen is not None and not isinstance(seen, ssl.SSLError):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    if isinstance(seen, ssl.SSLCertVerificationError):
        detail = seen.verify_message or str(seen)
        if "mismatch" in detail.lower():
            return (
                f"TLS: certificate verify failed: {detail}",
                "the broker's certificate does not name the host in broker_url: use a "
                "host name the certificate has, or set broker_verify_hostname = false",
            )
        return (
            f"TLS: certificate verify failed: {detail}",
            "the broker's certificate is not signed by a CA trusted here: check broker_ca "
            "(the CA certificate that signed the broker's; empty: the system's CAs)",
        )
    reason = (seen.reason or str(seen)).upper()
    if any(alert in reason for alert in CLIENT_CERT_ALERTS):
        return (
            f"TLS: the broker refused this client's certificate ({seen.reason or seen})",
            "check broker_cert and broker_key, and that the broker trusts the CA "
            "that signed broker_cert (its ssl_options.cacertfile)",
        )
    if isinstance(seen, ssl.SSLEOFError) or "EOF" in reason:
        # TLS 1.3: a refused client certificate is told after the client's
        # side of the handshake, as a closed connection
        return (
            f"TLS: the broker closed the connection in the handshake ({seen})",
            "it refused this client's certificate (check broker_cert and broker_key, "
            "and that the broker trusts the CA that signed broker_cert) or wants one "
            "(set broker_cert), or broker_url is not its TLS listener",
        )
    return (
        f"TLS handshake failed: {seen}",
        "is broker_url the broker's TLS listener (amqps://, RabbitMQ's port 5671)?",
    )


class BrokerTLSError(ConnectionError):
    """TLS to the broker failed: a wrong CA, a host name the certificate
    does not have, a refused client certificate (the message says which,
    and what to check); retrying does not cure it."""


def check_tls(config: Config, url: str | None = None, *, timeout: float = 10.0) -> None:
    """When TLS to the broker is configured, connect once and raise
    ``BrokerTLSError`` (with ``describe_connect_error``'s message) if the
    handshake fails; any other failure (a broker not up yet) is left to the
    caller's retries. Processes call it at start, so a TLS mistake is said
    once, clearly, instead of being retried for ever."""
    url = url or config.resolved_broker_url()
    if not tls_options(config, url):
        return
    conn = connect(config, url=url)
    conn.connect_timeout = timeout
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as exc:
        if tls_failure(exc) is not None:
            raise BrokerTLSError(describe_connect_error(url, exc)) from exc
    finally:
        conn.release()


def describe_connect_error(url: str, exc: BaseException) -> str:
    """One line for a failed connection to the broker at ``url`` (shown
    without its password): the TLS problem and what to check, or the
    exception."""
    tls = tls_failure(exc)
    cause = f"{tls[0]}; {tls[1]}" if tls else f"{type(exc).__name__}: {exc}"
    return f"cannot connect to the broker at {maybe_sanitize_url(url)}: {cause}"


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
        elif scheme == "rediss":
            # TLS: our transport too (held deliveries kept alive, nothing
            # lost to a cut consumer), over redis-py's SSLConnection; never
            # without TLS because no options were given
            url = f"{SCHEME}://{rest}"
            if not kwargs.get("ssl"):
                kwargs["ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
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


class _BatchFailed(Exception):
    """A Redis publish pipeline failed (``Publisher._redis_batch``)."""


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
        #: on RabbitMQ with confirms, the publishes made inside blocks
        #: (``confirming``, ``deferring``) and not confirmed yet, by the
        #: channel's delivery tag, with when they were sent; kept across
        #: blocks (a ``deferring`` block's end does not wait for them)
        self._unconfirmed: dict[int, tuple[bytes, dict[str, Any], float]] = {}
        #: publishes the broker refused, by their first tag, until the copy
        #: sent again (``_copies``: the copy's tag -> the first tag) is confirmed
        self._refused: dict[int, tuple[bytes, dict[str, Any], float]] = {}
        self._copies: dict[int, int] = {}
        #: refused tags not sent again yet (noted inside a frame's dispatch)
        self._nacked: list[int] = []
        #: how many blocks are open (publishes inside one do not wait)
        self._blocks = 0
        #: bumped whenever everything unconfirmed was published again one
        #: by one (a lost connection, no confirm in time): marks of an
        #: earlier epoch are confirmed
        self._epoch = 0
        #: the last delivery tag of the channel in confirm mode, and which
        #: channel (a new channel counts from 1 again)
        self._seq = 0
        self._seq_channel: Any = None
        #: inside ``confirming()`` on kombu's Redis transport: what the
        #: block published (sent again if its pipeline fails)
        self._batched: list[tuple[bytes, dict[str, Any]]] | None = None

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
        if self._blocks and self.async_confirms:
            self._publish_unconfirmed(data, options)
        elif self._unconfirmed or self._refused:
            # a publish outside a block while a deferred block's confirms
            # are out: waiting for "a" confirm would take one of theirs
            with self.confirming():
                self._publish_unconfirmed(data, options)
        else:
            if self._batched is not None:
                self._batched.append((data, options))
            self._publish(data, options)
        if queue is not None:
            self._declared.add(queue)
        elif exchange is not None:
            self._declared.add(exchange.name)

    def _publish(self, data: bytes, options: dict[str, Any]) -> None:
        """Publish and, with confirms, wait for the broker's; retried forever."""
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
        self._count(self.producer.channel)

    def _count(self, channel: Any) -> None:
        """Keep the channel's delivery-tag count (the broker numbers the
        publishes of a channel in confirm mode from 1)."""
        if channel is not self._seq_channel:
            self._seq_channel, self._seq = channel, 0
        if getattr(channel, "_confirm_selected", False):
            self._seq += 1

    # -- confirms in batches -------------------------------------------------------

    @property
    def async_confirms(self) -> bool:
        """Whether ``confirming()`` batches confirms: RabbitMQ with
        publisher confirms on (kombu's Redis transport has none to wait for:
        its publish returns once the server stored the message)."""
        return self.connection.transport.driver_type == "amqp" and bool(
            self.connection.transport_options.get("confirm_publish")
        )

    @contextmanager
    def confirming(self) -> Iterator[None]:
        """Publishes inside the block are sent without waiting, one by one,
        for their confirms; the block's end waits for all of them at once
        (RabbitMQ acknowledges them together), so N publishes cost one
        round trip, not N. A publish the broker refused (nack), or whose
        connection was lost before its confirm came, is published again
        (at least once, as without the block). When the block raises, the
        confirms are still waited for (what was published stays published).
        On kombu's Redis transport (no confirms: a publish returns once the
        server has the message) the block's publishes go in one pipeline,
        sent at its end (kombu's ``Producer.batch``); one that failed is
        published again. Elsewhere an empty wrapper."""
        if self._blocks or self._batched is not None:
            yield  # nested: the outer block confirms
            return
        marks: list[Callable[[], tuple[int, int]]] = []
        try:
            with self.deferring() as mark:
                marks.append(mark)
                yield
        finally:
            if marks:
                self.wait_confirmed(marks[0]())

    @contextmanager
    def deferring(self) -> Iterator[Callable[[], tuple[int, int]]]:
        """As ``confirming``, but the block's end does not wait for the
        confirms: it yields ``mark``, which (called after the block) names
        the block's publishes; ``confirmed(mark())`` says whether all of
        them (and every one before them) are confirmed, ``read_confirms``
        and ``wait_confirmed`` read the broker's confirms. The engine's
        consumer handles the next message while the broker confirms the
        last one's publishes, and acknowledges a message once its mark is
        confirmed. On kombu's Redis transport the block's publishes go in
        one pipeline at its end, as in ``confirming``, and the mark is
        confirmed at once."""
        done: list[tuple[int, int]] = []

        def mark() -> tuple[int, int]:
            return done[0] if done else (self._epoch, self._seq)

        if self._blocks or self._batched is not None:
            yield mark  # nested: the outer block marks
            return
        if not self.async_confirms:
            if self.connection.transport.driver_type == "redis":
                try:
                    yield from self._redis_batch(mark)
                finally:
                    done.append((self._epoch, 0))
            else:
                yield mark
            return
        self._blocks += 1
        try:
            yield mark
        finally:
            self._blocks -= 1
            channel = self._seq_channel
            if channel is not None and "basic_publish" in vars(channel):
                # back to one confirm per publish outside the block
                channel.basic_publish = channel.basic_publish_confirm
            done.append((self._epoch, self._seq))

    def _redis_batch(self, mark: Any) -> Iterator[Any]:
        """``confirming`` on kombu's Redis transport (see there)."""
        self._batched = []
        block_exc: BaseException | None = None
        try:
            try:
                with self.producer.batch() as batch:
                    try:
                        yield mark
                    except BaseException as exc:
                        block_exc = exc
                        raise
                    finally:
                        # what was published is sent, also when the block
                        # raised (as without the block)
                        try:
                            batch.flush()
                        except Exception as exc:
                            raise _BatchFailed() from exc
            except _BatchFailed as failed:
                cause = failed.__cause__ or failed
                log.warning("a publish batch failed (%s): publishing it again", cause)
                self._on_error(cause, 0.0)
                again, self._batched = self._batched, None
                for data, opts in again:
                    self._publish(data, opts)
                if block_exc is not None:
                    raise block_exc from None
        finally:
            self._batched = None

    def _publish_unconfirmed(self, data: bytes, options: dict[str, Any]) -> int:
        """Publish without waiting for the confirm; the tag it will be
        confirmed by (0: it was published again one by one, confirmed)."""
        try:
            producer = self.producer
            channel = producer.channel
            self._async_channel(channel)
            producer.publish(data, retry=False, **options)
        except self._retryable as exc:
            # the connection is lost: what was published and not confirmed
            # is published again (with confirms), this one too
            self._on_error(exc, 0.0)
            self._publish_again(extra=[(data, options)])
            return 0
        self._count(channel)
        self._unconfirmed[self._seq] = (data, options, time.monotonic())
        return self._seq

    def _async_channel(self, channel: Any) -> None:
        """Put ``channel`` in confirm mode with our handlers, publishing
        without waiting for each confirm (py-amqp's ``_basic_publish``)."""
        if channel is not self._seq_channel:
            if self._unconfirmed or self._refused:
                # a new channel under us: the old one's tags will never be
                # confirmed
                self._publish_again()
            self._seq_channel, self._seq = channel, 0
        if not getattr(channel, "_boss_confirms", False):
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel._boss_confirms = True
        if not channel._confirm_selected:
            channel._confirm_selected = True
            channel.confirm_select()
        channel.basic_publish = channel._basic_publish

    def _on_ack(self, tag: int, multiple: bool) -> None:
        pending = self._unconfirmed
        if not pending:
            return
        tags = [t for t in pending if t <= tag] if multiple else [tag]
        for t in tags:
            if pending.pop(t, None) is not None and self._copies:
                first = self._copies.pop(t, None)
                if first is not None:
                    self._refused.pop(first, None)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        # inside a frame's dispatch: noted here, published again by
        # ``_resend_refused`` (outside py-amqp's reader)
        pending = self._unconfirmed
        for t in [t for t in pending if t <= tag] if multiple else [tag]:
            entry = pending.pop(t, None)
            if entry is not None:
                first = self._copies.pop(t, t)
                self._refused[first] = entry
                self._nacked.append(first)

    def _resend_refused(self) -> None:
        """Publish again what the broker refused; its first tag stays
        unconfirmed until the copy is confirmed."""
        nacked, self._nacked = self._nacked, []
        log.warning("the broker refused %d publish(es): again", len(nacked))
        for first in nacked:
            entry = self._refused.get(first)
            if entry is None:
                continue
            self._blocks += 1
            try:
                tag = self._publish_unconfirmed(entry[0], entry[1])
            finally:
                self._blocks -= 1
                channel = self._seq_channel
                if channel is not None and "basic_publish" in vars(channel):
                    channel.basic_publish = channel.basic_publish_confirm
            if tag:
                self._copies[tag] = first

    def _publish_again(self, extra: list[tuple[bytes, dict[str, Any]]] | None = None) -> None:
        """Publish everything not confirmed yet again, one by one, each
        waiting for its confirm (retried for ever); earlier marks are
        confirmed after it (``_epoch``)."""
        again = [
            (data, opts)
            for _t, (data, opts, _at) in sorted({**self._refused, **self._unconfirmed}.items())
        ]
        again += extra or []
        self._unconfirmed = {}
        self._refused = {}
        self._copies = {}
        self._nacked = []
        self._epoch += 1
        channel = self._seq_channel
        if channel is not None and "basic_publish" in vars(channel):
            channel.basic_publish = channel.basic_publish_confirm
        blocks, self._blocks = self._blocks, 0
        try:
            for data, opts in again:
                self._publish(data, opts)
        finally:
            self._blocks = blocks

    @property
    def unconfirmed(self) -> int:
        """How many publishes wait for the broker's confirm."""
        return len(self._unconfirmed) + len(self._refused)

    def confirmed(self, mark: tuple[int, int]) -> bool:
        """Whether the publishes up to ``mark`` (``deferring``) are all
        confirmed."""
        epoch, tag = mark
        if epoch < self._epoch or not tag:
            return True
        if self._unconfirmed and next(iter(self._unconfirmed)) <= tag:
            return False
        return not any(t <= tag for t in self._refused)

    def _oldest(self) -> float | None:
        for entry in self._unconfirmed.values():
            return entry[2]
        return None

    def read_confirms(self, timeout: float = 0.0) -> None:
        """Read the confirms the broker has sent (waiting up to ``timeout``
        seconds for the first); publish again what it refused, and
        everything unconfirmed when the connection was lost or a confirm
        is ``CONFIRM_TIMEOUT`` late."""
        if not self._unconfirmed and not self._refused:
            return
        if not self.connection.connected:
            log.warning("%d publish(es) not confirmed: publishing them again", self.unconfirmed)
            self._publish_again()
            return
        wait = timeout
        try:
            while self._unconfirmed:
                self.connection.drain_events(timeout=wait)
                wait = 0.0
        except TimeoutError:
            pass
        except self._retryable as exc:
            log.warning(
                "%d publish(es) not confirmed (%s): publishing them again",
                self.unconfirmed,
                exc or type(exc).__name__,
            )
            self._on_error(exc, 0.0)
            self._publish_again()
            return
        if self._nacked:
            self._resend_refused()
        oldest = self._oldest()
        if oldest is not None and time.monotonic() - oldest > CONFIRM_TIMEOUT:
            log.warning(
                "%d publish(es) not confirmed in %gs: publishing them again",
                self.unconfirmed,
                CONFIRM_TIMEOUT,
            )
            self._publish_again()

    def wait_confirmed(self, mark: tuple[int, int]) -> None:
        """Read the broker's confirms until every publish up to ``mark``
        is confirmed (publishing again what needs it, see ``read_confirms``)."""
        while not self.confirmed(mark):
            oldest = self._oldest() or time.monotonic()
            left = oldest + CONFIRM_TIMEOUT - time.monotonic()
            self.read_confirms(timeout=max(0.0, min(left, 1.0)))

    def fileno(self) -> int | None:
        """The socket the broker's confirms come on (None when not connected
        or not RabbitMQ): for a ``select`` next to other connections."""
        conn = self.connection.connection if self.connection.connected else None
        sock = getattr(getattr(conn, "transport", None), "sock", None)
        return sock.fileno() if sock is not None else None

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
        """The workitem to its participant's queue, with its dispatch token
        (``engine.tokens``: minted for the step's fei and the participant
        the step waits on, when ``dispatch_key_file``/``dispatch_key`` is set)."""
        tokens = self.__dict__.get("_tokens")
        if tokens is None:  # once per publisher (the key file is read once per process)
            from engine.tokens import Tokens

            tokens = self._tokens = Tokens.from_config(self.config)
        workitem = tokens.stamp(effect.workitem, effect.participant)
        self.publish(workitem, queue=effect.queue, reply_to=self.config.engine_queue)

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
