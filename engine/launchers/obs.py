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

Request events name their target projects (``actions[].targetproject``):
the launcher launches once per target. ``fields.ev`` of a run holds the
event's fields, plus (for requests, as BOSS's processes expect) ``id``
(the request number, as text), ``type`` (the first action's), ``who``,
``actions`` and ``target_project``.
"""

from __future__ import annotations

import logging
import traceback
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

__all__ = ["LABELS", "ObsConsumer", "ObsSource"]

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

    def normalise(self, raw: RawEvent) -> list[NormalisedEvent]:
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
        delivery = raw.header("message_id") or delivery_digest(key, raw.body)
        return [
            self._event(
                _label_for(kind_event),
                parts[-2],
                body,
                delivery,
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


class ObsConsumer(ConsumerMixin):
    """Consumes BOSS's durable queue on the OBS topic exchange and hands each
    message to the launcher (acknowledged once launched or dead-lettered)."""

    def __init__(
        self,
        config: Config,
        settings: LauncherSettings,
        launcher: Launcher,
        *,
        connection: kombu.Connection | None = None,
    ) -> None:
        from engine.broker import connect

        self.config = config
        self.settings = settings
        self.launcher = launcher
        self.source = ObsSource(settings.obs_queue)
        self.connection = (
            connection if connection is not None else connect(config, url=settings.obs_url or None)
        )
        self.handled = 0

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

    def _on_message(self, message: kombu.Message) -> None:
        headers = {k: str(v) for k, v in (message.headers or {}).items()}
        mid = message.properties.get("message_id")
        if mid:
            headers["message_id"] = str(mid)
        body = (
            message.body if isinstance(message.body, bytes) else str(message.body).encode("utf-8")
        )
        raw = RawEvent(body, headers, message.delivery_info.get("routing_key"))
        try:
            self.launcher.handle(self.source, raw)
        except Exception as exc:  # a bug: set the message aside rather than loop on it
            self.launcher.deadletter(
                self.source, raw, "handling failed: " + "".join(traceback.format_exception(exc))
            )
        message.ack()
        self.handled += 1
