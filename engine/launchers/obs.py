"""The OBS source: the build service's AMQP message bus, and BOSS's legacy
OBS plugin launch items.

OBS publishes every event on a topic exchange (``pubsub`` by default) with
the routing key ``<namespace>.<kind>.<event>`` (``opensuse.obs.package.
build_success``, ``opensuse.obs.request.create``, ...) and a JSON body of
the event's fields. BOSS binds its own durable queue (``obs_queue``) to it
(``<obs_namespace>.#``) and consumes it; events come in whatever the
launcher was doing (nothing is lost while it is down: the queue keeps them).

Labels keep BOSS's vocabulary (what its OBS plugin called the events), so
a process store written for BOSS works as it was: ``package.build_success``
is ``OBS_BUILD_SUCCESS``, ``request.create`` ``OBS_SRCSRV_REQUEST_CREATE``,
``repo.published`` ``OBS_REPO_PUBLISHED`` (:data:`LABELS`; an event not in
the table gets ``OBS_<KIND>_<EVENT>``).

A *legacy* item (what BOSS's OBS plugin sent: a JSON object with
``fields.obsEvent`` = ``{"label": "SRCSRV_REQUEST_CREATE", "namespace":
"OBS", "format": 1, ...}``) may come with any routing key, or be
published straight to ``obs_queue``; its label is ``<namespace>_<label>``.

**Identity.** OBS publishes without a message id, and some bodies
(``package.update``, ``project.update``, ``repo.publish_state``, ...)
carry no time: two real events can have the same routing key and body.
A message's delivery id is, first match wins (:meth:`ObsSource.identity_basis`):

1. ``message_id``: the AMQP property, when the publisher sets one;
2. ``body``: a digest of the routing key and body, when the body carries
   the event's own time or id (:data:`OWN_IDENTITY`: ``rev``, ``srcmd5``,
   ``bcnt``, ``starttime``, ``endtime``, ``readytime``, ``buildid``,
   ``when``, ...): the same body is the same event;
3. ``timestamp``: the AMQP property (whole seconds) with the body: the
   publisher's own word on when;
4. ``receipt``: the moment the consumer received it (host, pid, nanoseconds,
   a counter: never the same twice), so two real events are never merged.
   A *redelivery* of the same message (RabbitMQ sets ``redelivered`` when a
   consumer died before its ack) must keep the first delivery's id: the
   consumer notes each receipt in flight in Redis
   (``<key_prefix>launchers:obs:inflight:<digest of key and body>``, a set,
   removed after the ack) and a redelivered message takes one back.

Without a consumer (``boss launcher test``), a body of kind 4 gets a digest
of the routing key and body.

**Ignored.** ``<namespace>.metrics`` (OBS's InfluxDB line protocol, which
the default binding ``<namespace>.#`` picks up) is not an event: it is
acknowledged, counted (``ObsConsumer.ignored``, logged), never
dead-lettered.

Request events name their target projects (``actions[].targetproject``):
the launcher launches once per target. ``fields.ev`` of a run holds the
event's fields, plus (for requests, as BOSS's processes expect) ``id``
(the request number, as text), ``type`` (the first action's), ``who``,
``actions`` and ``target_project``.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
import traceback
from collections import Counter
from typing import Any

import kombu
from kombu import Exchange, Queue
from kombu.mixins import ConsumerMixin

from engine.config import Config
from engine.launchers.base import (
    MalformedEvent,
    NormalisedEvent,
    RawEvent,
    delivery_digest,
    json_body,
)
from engine.launchers.launcher import Launcher
from engine.launchers.settings import LauncherSettings

__all__ = ["LABELS", "OWN_IDENTITY", "RECEIVED", "ObsConsumer", "ObsSource"]

log = logging.getLogger("boss.launchers.obs")

#: ``<kind>.<event>`` of the OBS message bus -> BOSS's label
LABELS: dict[str, str] = {
    "package.build_success": "OBS_BUILD_SUCCESS",
    "package.build_fail": "OBS_BUILD_FAIL",
    "package.build_unchanged": "OBS_BUILD_UNCHANGED",
    "package.commit": "OBS_SRCSRV_COMMIT",
    "package.create": "OBS_SRCSRV_CREATE_PACKAGE",
    "package.update": "OBS_SRCSRV_UPDATE_PACKAGE",
    "package.delete": "OBS_SRCSRV_DELETE_PACKAGE",
    "package.undelete": "OBS_SRCSRV_UNDELETE_PACKAGE",
    "package.branch": "OBS_SRCSRV_BRANCH_COMMAND",
    "package.version_change": "OBS_SRCSRV_VERSION_CHANGE",
    "package.upload": "OBS_SRCSRV_UPLOAD",
    "package.service_success": "OBS_SRCSRV_SERVICE_SUCCESS",
    "package.service_fail": "OBS_SRCSRV_SERVICE_FAIL",
    "project.create": "OBS_SRCSRV_CREATE_PROJECT",
    "project.update": "OBS_SRCSRV_UPDATE_PROJECT",
    "project.delete": "OBS_SRCSRV_DELETE_PROJECT",
    "project.undelete": "OBS_SRCSRV_UNDELETE_PROJECT",
    "request.create": "OBS_SRCSRV_REQUEST_CREATE",
    "request.change": "OBS_SRCSRV_REQUEST_CHANGE",
    "request.state_change": "OBS_SRCSRV_REQUEST_STATECHANGE",
    "request.delete": "OBS_SRCSRV_REQUEST_DELETE",
    "request.review_wanted": "OBS_SRCSRV_REQUEST_REVIEWER_ADDED",
    "request.review_changed": "OBS_SRCSRV_REQUEST_REVIEWCHANGED",
    "request.reviews_done": "OBS_SRCSRV_REQUEST_REVIEWS_DONE",
    "request.comment": "OBS_SRCSRV_REQUEST_COMMENT",
    "repo.published": "OBS_REPO_PUBLISHED",
    "repo.publish_state": "OBS_REPO_PUBLISH_STATE",
    "repo.build_started": "OBS_REPO_BUILD_STARTED",
    "repo.build_finished": "OBS_REPO_BUILD_FINISHED",
}


#: body keys that carry an OBS event's own time or id (see "Identity")
OWN_IDENTITY = (
    "rev",
    "srcmd5",
    "bcnt",
    "starttime",
    "endtime",
    "readytime",
    "buildid",
    "when",
    "time",
    "comment_id",
)
#: the header the consumer adds: this message's moment of receipt
RECEIVED = "x-boss-received"
#: routing keys' last segment -> why such messages are ignored
IGNORED = {"metrics": "metrics channel (InfluxDB line protocol, not an event)"}


def _label_for(kind_event: str) -> str:
    return LABELS.get(kind_event) or "OBS_" + kind_event.replace(".", "_").upper()


def _request_fields(p: dict[str, Any], number: Any) -> dict[str, Any]:
    actions = p.get("actions")
    if actions is None and p.get("targetproject"):  # a flat, one-action request (old BOSS)
        actions = [
            {
                k: p[k]
                for k in (
                    "type",
                    "sourceproject",
                    "sourcepackage",
                    "sourcerevision",
                    "targetproject",
                    "targetpackage",
                )
                if k in p
            }
        ]
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        raise MalformedEvent(f"request {number}: 'actions' is not a list of objects")
    targets = list(
        dict.fromkeys(str(a["targetproject"]) for a in actions if a.get("targetproject"))
    )
    if not targets:
        raise MalformedEvent(f"request {number}: no action names a targetproject")
    who = p.get("who") or p.get("author") or p.get("sender")
    ev = {
        **p,
        "id": str(number),
        "actions": actions,
        "type": p.get("type") or (actions[0].get("type") if actions else None),
    }
    if who is not None:
        ev["who"] = who
    return {"ev": ev, "targets": tuple(targets), "who": who}


class ObsSource:
    """Normalises OBS bus messages and legacy items (see the module docstring)."""

    name = "obs"

    def __init__(self, queue: str = "boss.launchers.obs") -> None:
        self.queue = queue

    def ignored(self, raw: RawEvent) -> str | None:
        """Why ``raw`` is not an event at all (None: it is one): the
        ``<namespace>.metrics`` channel."""
        key = raw.routing_key or ""
        return IGNORED.get(key.rsplit(".", 1)[-1]) if "." in key else None

    def identity_basis(self, raw: RawEvent) -> str:
        """What identifies ``raw`` (the module docstring's "Identity"):
        ``message_id``, ``body``, ``timestamp`` or ``receipt``."""
        if raw.header("message_id"):
            return "message_id"
        try:
            body = json_body(raw)
        except MalformedEvent:
            body = {}
        fields = body.get("fields")
        if isinstance(fields, dict) and "obsEvent" in fields:
            return "body"  # a legacy item: its id and time are in it
        if any(body.get(k) not in (None, "") for k in OWN_IDENTITY):
            return "body"
        if raw.header("timestamp"):
            return "timestamp"
        return "receipt"

    def _delivery(self, raw: RawEvent, key: str) -> str:
        basis = self.identity_basis(raw)
        if basis == "message_id":
            return str(raw.header("message_id"))
        if basis == "timestamp":
            return delivery_digest(key, raw.body, "timestamp", raw.header("timestamp"))
        received = raw.header(RECEIVED)
        if basis == "receipt" and received:
            return delivery_digest(key, raw.body, "received", received)
        return delivery_digest(key, raw.body)

    def normalise(self, raw: RawEvent) -> list[NormalisedEvent]:
        if self.ignored(raw):
            return []
        body = json_body(raw)
        fields = body.get("fields")
        if isinstance(fields, dict) and "obsEvent" in fields:
            return [self._legacy(fields["obsEvent"], raw)]
        key = raw.routing_key or ""
        if raw.header("x-routing-key") and (not key or key == self.queue):
            # a dead letter put back on our queue: the bus's own routing key
            key = raw.header("x-routing-key") or ""
        parts = key.split(".")
        if len(parts) < 3 or not all(parts[-2:]):
            raise MalformedEvent(
                f"routing key {key!r} is not <namespace>.<kind>.<event>, "
                "and the body has no fields.obsEvent"
            )
        kind_event = ".".join(parts[-2:])
        namespace = ".".join(parts[:-2])
        return [
            self._event(
                _label_for(kind_event),
                parts[-2],
                body,
                self._delivery(raw, key),
                {"namespace": namespace, "routing_key": key},
            )
        ]

    def _event(
        self, label: str, kind: str, p: dict[str, Any], delivery: str, extra: dict[str, Any]
    ) -> NormalisedEvent:
        if kind == "request":
            number = p.get("number", p.get("id"))
            if number in (None, ""):
                raise MalformedEvent(f"{label}: a request event without 'number'")
            req = _request_fields(p, number)
            return NormalisedEvent(
                "obs",
                label,
                delivery,
                targets=req["targets"],
                change=str(number),
                author=req["who"],
                payload={**req["ev"], **extra, "label": label},
            )
        project = p.get("project")
        if not isinstance(project, str) or not project:
            raise MalformedEvent(f"{label}: no 'project'")
        rev = p.get("rev") if kind == "package" else None
        return NormalisedEvent(
            "obs",
            label,
            delivery,
            project=project,
            repository=None,
            commit=str(rev) if rev is not None else None,
            author=p.get("sender") or p.get("user") or p.get("who"),
            payload={**p, **extra, "label": label},
        )

    def _legacy(self, obs_event: Any, raw: RawEvent) -> NormalisedEvent:
        if not isinstance(obs_event, dict):
            raise MalformedEvent("fields.obsEvent is not an object")
        label = obs_event.get("label")
        if not isinstance(label, str) or not label:
            raise MalformedEvent("fields.obsEvent has no 'label'")
        namespace = str(obs_event.get("namespace") or "OBS")
        full = label if label.startswith(namespace + "_") else f"{namespace}_{label}"
        kind = "request" if "REQUEST" in label else "package"
        p = {k: v for k, v in obs_event.items() if k not in ("label", "namespace")}
        delivery = raw.header("message_id") or delivery_digest("legacy", raw.body)
        return self._event(
            full, kind, p, delivery, {"namespace": namespace, "format": obs_event.get("format")}
        )


class _Ledger:
    """The receipts in flight (see "Identity"): a Redis set per digest of
    routing key and body, holding the receipt of each such message not yet
    acknowledged. Redis trouble is logged, never fatal: then a redelivered
    message of an untimed event may launch a second time."""

    #: seconds a set lives after its last receipt (a crashed consumer's
    #: entries go away with it)
    TTL = 24 * 3600

    def __init__(self, config: Config, client: Any) -> None:
        self.prefix = f"{config.key_prefix}launchers:obs:inflight:"
        self._config = config
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from engine.store.connection import client_for

            self._client = client_for(self._config.resolved_redis_url())[0]
        return self._client

    def take(self, content: str) -> str | None:
        try:
            got = self.client.spop(self.prefix + content)
        except Exception as exc:
            log.warning("obs launcher: in-flight ledger unavailable: %s", exc)
            return None
        return got.decode() if isinstance(got, bytes) else got

    def put(self, content: str, token: str) -> None:
        try:
            with self.client.pipeline() as pipe:
                pipe.sadd(self.prefix + content, token)
                pipe.expire(self.prefix + content, self.TTL)
                pipe.execute()
        except Exception as exc:
            log.warning("obs launcher: in-flight ledger unavailable: %s", exc)

    def drop(self, content: str, token: str) -> None:
        try:
            self.client.srem(self.prefix + content, token)
        except Exception as exc:
            log.warning("obs launcher: in-flight ledger unavailable: %s", exc)

    def count(self) -> int:
        return sum(self.client.scard(key) for key in self.client.scan_iter(match=self.prefix + "*"))


class ObsConsumer(ConsumerMixin):
    """Consumes BOSS's durable queue on the OBS topic exchange and hands each
    message to the launcher (acknowledged once launched or dead-lettered;
    ``<namespace>.metrics`` acknowledged and counted in ``ignored``)."""

    def __init__(
        self,
        config: Config,
        settings: LauncherSettings,
        launcher: Launcher,
        *,
        connection: kombu.Connection | None = None,
        redis_client: Any = None,
    ) -> None:
        from engine.broker import connect

        self.config = config
        self.settings = settings
        self.launcher = launcher
        self.source = ObsSource(settings.obs_queue)
        if connection is None:
            # another broker than BOSS's: BOSS's TLS keys (broker_ca, its client
            # certificate) are not for it; amqps:// there is checked against the
            # system's CAs
            other = settings.obs_url and settings.obs_url != config.broker_url
            tls_free = config.replace(broker_ca="", broker_cert="", broker_key="")
            connection = connect(tls_free if other else config, url=settings.obs_url or None)
        self.connection = connection
        self.handled = 0
        #: messages acknowledged without handling, by kind (``metrics``)
        self.ignored: Counter[str] = Counter()
        self._ledger = _Ledger(config, redis_client)
        self._seq = itertools.count()
        self._host = f"{socket.gethostname()}:{os.getpid()}"
        self._count_lock = threading.Lock()

    @property
    def queue(self) -> Queue:
        exchange = Exchange(self.settings.obs_exchange, type="topic", durable=True)
        from kombu import binding

        return Queue(
            self.settings.obs_queue,
            durable=True,
            auto_delete=False,
            bindings=[binding(exchange, routing_key=k) for k in self.settings.bindings()],
        )

    def get_consumers(self, consumer: type[kombu.Consumer], channel: Any) -> list[kombu.Consumer]:
        return [consumer(queues=[self.queue], on_message=self._on_message, prefetch_count=16)]

    def on_consume_ready(
        self, connection: Any, channel: Any, consumers: Any, **kwargs: Any
    ) -> None:
        log.info(
            "obs launcher: consuming %s (exchange %s, bindings %s)",
            self.settings.obs_queue,
            self.settings.obs_exchange,
            ", ".join(self.settings.bindings()),
        )

    def inflight(self) -> int:
        """How many receipts are in flight (acknowledged ones are dropped)."""
        return self._ledger.count()

    def _receipt(self) -> str:
        return f"{self._host}:{time.time_ns()}:{next(self._seq)}"

    def _on_message(self, message: kombu.Message) -> None:
        key = message.delivery_info.get("routing_key")
        headers = {k: str(v) for k, v in (message.headers or {}).items()}
        headers.pop(RECEIVED, None)  # only ours counts
        props = message.properties or {}
        if props.get("message_id"):
            headers["message_id"] = str(props["message_id"])
        if props.get("timestamp") is not None:
            headers["timestamp"] = str(props["timestamp"])
        redelivered = bool(message.delivery_info.get("redelivered"))
        if redelivered:
            headers["redelivered"] = "true"
        body = (
            message.body if isinstance(message.body, bytes) else str(message.body).encode("utf-8")
        )
        raw = RawEvent(body, headers, key)
        why = self.source.ignored(raw)
        if why is not None:
            kind = (key or "").rsplit(".", 1)[-1]
            with self._count_lock:
                self.ignored[kind] += 1
                n = self.ignored[kind]
            if n == 1 or n % 1000 == 0:
                log.info("obs launcher: ignored %d %s message(s): %s", n, kind, why)
            else:
                log.debug("obs launcher: ignored %s: %s", key, why)
            message.ack()
            return
        entry = None
        if self.source.identity_basis(raw) == "receipt":
            content = delivery_digest(key, body)
            token = (self._ledger.take(content) if redelivered else None) or self._receipt()
            self._ledger.put(content, token)
            raw = RawEvent(body, {**headers, RECEIVED: token}, key)
            entry = (content, token)
        try:
            self.launcher.handle(self.source, raw)
        except Exception as exc:  # a bug: set the message aside rather than loop on it
            self.launcher.deadletter(
                self.source, raw, "handling failed: " + "".join(traceback.format_exception(exc))
            )
        message.ack()
        if entry is not None:
            self._ledger.drop(*entry)
        self.handled += 1
