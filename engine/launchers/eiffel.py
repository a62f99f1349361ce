"""Eiffel events as a source: an adapter over the trace triggers.

Eiffel events on the traceability bus already launch processes: a trigger
(``engine/trace/triggers.py``, ``boss triggers add``) subscribes a process
to events matching a filter, and the aggregator that stores a matching
event publishes the launch (wfid ``<trigger>-<event id>``, the event as
CAUSE). That path is not duplicated here.

This adapter makes an Eiffel event a :class:`NormalisedEvent` too
(``source`` ``eiffel``, label ``EIFFEL_<TYPE>`` such as
``EIFFEL_ARTIFACT_CREATED``, delivery the event's id, ``eiffel_id`` the
event's id so no new event is published and the run's CAUSE is the event
itself), so the launcher's process store and rules file can map Eiffel
events as they map the others (``boss launcher test EVENT.json --source
eiffel`` shows what would launch), and :func:`trigger_launches` gives the
launch items the triggers would make for an event.
"""

from __future__ import annotations

import re
from typing import Any

from engine.launchers.base import MalformedEvent, NormalisedEvent, RawEvent, json_body
from engine.trace.triggers import TriggerStore, launch_item

__all__ = ["EiffelSource", "label_for", "trigger_launches"]


def label_for(event_type: str) -> str:
    """``EiffelArtifactCreatedEvent`` -> ``EIFFEL_ARTIFACT_CREATED``."""
    core = event_type.removeprefix("Eiffel").removesuffix("Event")
    return "EIFFEL_" + re.sub(r"(?<!^)(?=[A-Z])", "_", core).upper()


def _custom(data: dict[str, Any], key: str) -> Any:
    for item in data.get("customData") or []:
        if isinstance(item, dict) and item.get("key") == key:
            return item.get("value")
    return None


class EiffelSource:
    """Normalises Eiffel events (see the module docstring)."""

    name = "eiffel"

    def __init__(self, queue: str = "boss.trace") -> None:
        self.queue = queue

    def normalise(self, raw: RawEvent) -> list[NormalisedEvent]:
        body = json_body(raw, allow_list=True)
        events = body if isinstance(body, list) else [body]
        out = []
        for ev in events:
            meta = ev.get("meta") if isinstance(ev, dict) else None
            if not isinstance(meta, dict) or not meta.get("id") or not meta.get("type"):
                raise MalformedEvent("not an Eiffel event (no meta.id or meta.type)")
            data = ev.get("data") if isinstance(ev.get("data"), dict) else {}
            git = data.get("gitIdentifier") if isinstance(data.get("gitIdentifier"), dict) else {}
            out.append(
                NormalisedEvent(
                    "eiffel",
                    label_for(meta["type"]),
                    meta["id"],
                    project=git.get("repoName") or _custom(data, "project"),
                    branch=git.get("branch"),
                    repository=git.get("repoUri"),
                    commit=git.get("commitId"),
                    payload=ev,
                    eiffel_id=meta["id"],
                )
            )
        return out


def trigger_launches(triggers: TriggerStore, event: dict[str, Any]) -> list[dict[str, Any]]:
    """The launch items the trace triggers make for ``event``."""
    return [launch_item(t, event) for t in triggers.matching(event)]
