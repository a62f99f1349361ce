"""Triggers: subscriptions that launch a process when a matching Eiffel
event arrives.

A trigger names a process (from the process store) and a filter:

* ``type``: an event type or a list of them (``EiffelArtifactCreatedEvent``;
  the ``Eiffel``/``Event`` affixes may be left out: ``ArtifactCreated``);
* ``data``: dotted paths into ``data`` and the value each must have; a
  value written ``~regex`` must match that regular expression instead
  (``{"identity": "~^pkg:rpm/mer/.*"}``); a path into a list matches when
  any element does (``customData.key``);
* ``links``: link types and the target each must have (``"*"``: any).

When an event matches, the aggregator that stored it publishes a launch
item for the process with the event in ``fields.event`` (plus the
trigger's own ``fields``) and the event's id as the run's CAUSE. The run's
wfid is derived from the trigger and the event, so an event delivered
twice launches once (the engine ignores the same launch again).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from engine.core import messages

__all__ = [
    "Trigger",
    "TriggerError",
    "TriggerStore",
    "launch_item",
    "matches",
    "normalise_type",
    "values_at",
]

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class TriggerError(ValueError):
    pass


def normalise_type(name: str) -> str:
    """``ArtifactCreated`` -> ``EiffelArtifactCreatedEvent``."""
    if not name.startswith("Eiffel"):
        name = "Eiffel" + name
    if not name.endswith("Event"):
        name += "Event"
    return name


@dataclass
class Trigger:
    id: str
    process: str
    type: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise TriggerError(
                f"trigger id {self.id!r}: letters, digits, '.', '_', '-' (at most 64)"
            )
        if not isinstance(self.process, str) or not self.process:
            raise TriggerError(f"trigger {self.id}: no process to launch")
        if isinstance(self.type, str):
            self.type = [self.type]
        self.type = [normalise_type(t) for t in self.type]
        for path, want in self.data.items():
            if isinstance(want, str) and want.startswith("~"):
                try:
                    re.compile(want[1:])
                except re.error as exc:
                    raise TriggerError(
                        f"trigger {self.id}: data.{path}: bad regular expression: {exc}"
                    ) from None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trigger:
        known = {"id", "process", "type", "data", "links", "fields", "enabled"}
        unknown = set(d) - known
        if unknown:
            raise TriggerError(f"trigger: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise TriggerError(f"trigger: {exc}") from None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def values_at(obj: Any, path: list[str]) -> list[Any]:
    """Every value at the dotted ``path`` (split) in ``obj``; lists fan out
    (also used by the launchers' rules)."""
    if not path:
        return obj if isinstance(obj, list) else [obj]
    if isinstance(obj, list):
        return [v for item in obj for v in values_at(item, path)]
    if isinstance(obj, dict) and path[0] in obj:
        return values_at(obj[path[0]], path[1:])
    return []


def _value_matches(want: Any, got: list[Any]) -> bool:
    if isinstance(want, str) and want.startswith("~"):
        rx = re.compile(want[1:])
        return any(isinstance(v, str) and rx.search(v) for v in got)
    return any(v == want for v in got)


def matches(trigger: Trigger, event: dict[str, Any]) -> bool:
    """Whether ``event`` passes ``trigger``'s filter."""
    if not trigger.enabled:
        return False
    meta = event.get("meta") or {}
    if trigger.type and meta.get("type") not in trigger.type:
        return False
    data = event.get("data") or {}
    for path, want in trigger.data.items():
        if not _value_matches(want, values_at(data, path.split("."))):
            return False
    links = event.get("links") or []
    for ltype, target in trigger.links.items():
        if not any(
            link.get("type") == ltype and (target == "*" or link.get("target") == target)
            for link in links
        ):
            return False
    return True


def launch_item(trigger: Trigger, event: dict[str, Any]) -> dict[str, Any]:
    """The launch item for ``trigger``'s process, caused by ``event``."""
    event_id = event["meta"]["id"]
    return messages.launch_item(
        process=trigger.process,
        fields={**trigger.fields, "event": event},
        wfid=f"{trigger.id}-{event_id}",
        cause=[event_id],
    )


class TriggerStore:
    """Triggers in Redis (one hash), cached for a second by readers."""

    def __init__(self, client: redis.Redis, prefix: str = "boss:") -> None:
        self.client = client
        self.key = f"{prefix}trace:triggers"
        self._cache: list[Trigger] | None = None
        self._version: bytes | None = None

    def put(self, trigger: Trigger) -> None:
        with self.client.pipeline() as p:
            p.hset(self.key, trigger.id, json.dumps(trigger.as_dict(), sort_keys=True))
            p.incr(self.key + ":v")
            p.execute()

    def remove(self, trigger_id: str) -> bool:
        with self.client.pipeline() as p:
            p.hdel(self.key, trigger_id)
            p.incr(self.key + ":v")
            removed, _ = p.execute()
        return bool(removed)

    def get(self, trigger_id: str) -> Trigger | None:
        raw = self.client.hget(self.key, trigger_id)
        return Trigger.from_dict(json.loads(raw)) if raw else None

    def all(self) -> list[Trigger]:
        """Every trigger, by id (re-read only when one was added or removed)."""
        version = self.client.get(self.key + ":v")
        if self._cache is not None and version == self._version:
            return self._cache
        raw = self.client.hgetall(self.key)
        self._cache = [Trigger.from_dict(json.loads(v)) for _, v in sorted(raw.items())]
        self._version = version
        return self._cache

    def matching(self, event: dict[str, Any]) -> list[Trigger]:
        return [t for t in self.all() if matches(t, event)]
