"""The workitem a participant receives (ruote-amqp's JSON, with helpers).

The wire format (see ``docs/wire-protocol.md``)::

    {"fei": {"wfid": ..., "expid": ..., "subid": ..., "engine_id": ...},
     "fields": {..., "params": {...}},
     "participant_name": ..., "wf_name": ..., "wf_revision": ...,
     "dispatched_at": "2026-11-21T10:00:00.000Z"}

A participant reads and changes ``fields``, may set ``result`` (stored as
``fields.__result__``), ``command`` (a cursor command for the engine) or
raise. Attribute access reads fields first, then params
(``wi.project``); ``lookup``/``set_field`` take dotted paths.

``cancelled`` becomes true when the engine cancels the step while a handler
runs it (the participant runtime sets it on a cancel item); a long handler
may poll it to stop early. It is not part of the wire format.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from typing import Any

_MISSING = object()
_OWN = frozenset({"_data", "_cancelled", "_events"})


def lookup_path(data: Any, path: str, default: Any = None) -> Any:
    """The value at the dotted ``path`` in ``data``, or ``default``.

    A part names a mapping key, or a list index (negative counts from the
    end). The one reading of a dotted path, shared by :meth:`Workitem.lookup`
    and the placeholders of notification templates, so that a path means the
    same in a participant's code and in a template."""
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif (
            isinstance(cur, list)
            and part.lstrip("-").isdigit()
            and -len(cur) <= int(part) < len(cur)
        ):
            cur = cur[int(part)]
        else:
            return default
    return cur


class Workitem:
    """A participant's view of one workitem."""

    __slots__ = ("_cancelled", "_data", "_events")

    def __init__(self, data: dict[str, Any]) -> None:
        data.setdefault("fields", {})
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_cancelled", False)
        object.__setattr__(self, "_events", [])

    @classmethod
    def copy_of(cls, data: dict[str, Any]) -> Workitem:
        return cls(copy.deepcopy(data))

    # -- the envelope -------------------------------------------------------
    @property
    def fields(self) -> dict[str, Any]:
        return self._data["fields"]

    @fields.setter
    def fields(self, value: dict[str, Any]) -> None:
        params = self._data["fields"].get("params")
        value = dict(value)
        if params is not None:
            value.setdefault("params", params)
        self._data["fields"] = value

    @property
    def params(self) -> dict[str, Any]:
        return self._data["fields"].get("params") or {}

    @property
    def fei(self) -> dict[str, Any]:
        return self._data.get("fei") or {}

    @property
    def wfid(self) -> str | None:
        return self.fei.get("wfid")

    @property
    def participant_name(self) -> str | None:
        return self._data.get("participant_name")

    @property
    def wf_name(self) -> str | None:
        return self._data.get("wf_name")

    @property
    def wf_revision(self) -> str | None:
        return self._data.get("wf_revision")

    @property
    def forget(self) -> bool:
        return bool(self._data.get("forget"))

    @property
    def cancelled(self) -> bool:
        """True once the engine has cancelled this step (no reply is sent)."""
        return self._cancelled

    @cancelled.setter
    def cancelled(self, value: bool) -> None:
        object.__setattr__(self, "_cancelled", bool(value))

    # -- traceability ---------------------------------------------------------
    @property
    def activity_id(self) -> str | None:
        """The id of this step's EiffelActivityTriggeredEvent (what the
        events a participant produces link to as CONTEXT)."""
        fei = self.fei
        if not fei.get("wfid") or not fei.get("subid"):
            return None
        from engine.trace import step_activity_id

        return step_activity_id(fei)

    def emit(
        self,
        event: str | dict[str, Any],
        data: dict[str, Any] | None = None,
        links: Any = (),
        *,
        context: bool = True,
        **meta: Any,
    ) -> dict[str, Any]:
        """Record an Eiffel event this step produced; the runtime publishes
        it on the traceability bus just before the reply.

        ``event`` is a complete event (from ``engine.trace.eiffel``'s
        helpers) or a type (``"ArtifactCreated"``) with ``data`` and
        ``links`` (``[("CAUSE", id), ...]``); ``meta`` goes to
        ``engine.trace.eiffel.new_event``. It is linked to this step's
        activity with CONTEXT unless ``context`` is false or it has a
        CONTEXT link. An event built here gets an id derived from the step
        and its position, so a step done again after a crash does not
        record a second copy. Returns the event (its ``meta.id`` can be
        linked by the next one)."""
        from engine.trace import eiffel

        act = self.activity_id
        if isinstance(event, str):
            if "event_id" not in meta and act is not None:
                meta["event_id"] = _derived_id(act, len(self._events))
            event = eiffel.new_event(event, data or {}, links, **meta)
        if (
            context
            and act is not None
            and not any(link.get("type") == "CONTEXT" for link in event.get("links") or ())
        ):
            event.setdefault("links", []).append({"type": "CONTEXT", "target": act})
        self._events.append(event)
        return event

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events recorded with ``emit`` (not part of the wire format)."""
        return self._events

    # -- conventions ----------------------------------------------------------
    @property
    def result(self) -> Any:
        return self.fields.get("__result__")

    @result.setter
    def result(self, value: Any) -> None:
        self.fields["__result__"] = value

    @property
    def command(self) -> str | None:
        return self._data.get("command")

    @command.setter
    def command(self, value: str | None) -> None:
        if value is None:
            self._data.pop("command", None)
        else:
            self._data["command"] = str(value)

    @property
    def msg(self) -> list[str]:
        """Human-readable lines that notifications reuse (``fields.msg``)."""
        msg = self.fields.get("msg")
        if not isinstance(msg, list):
            msg = [] if msg is None else [str(msg)]
            self.fields["msg"] = msg
        return msg

    @property
    def error(self) -> dict[str, Any] | None:
        return self._data.get("error")

    # -- dotted paths ---------------------------------------------------------
    def lookup(self, path: str, default: Any = None) -> Any:
        """The field at the dotted ``path`` (see :func:`lookup_path`)."""
        return lookup_path(self.fields, path, default)

    def set_field(self, path: str, value: Any) -> None:
        parts = path.split(".")
        cur = self.fields
        for part in parts[:-1]:
            nxt = cur.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                cur[part] = nxt
            cur = nxt
        cur[parts[-1]] = value

    # -- attribute access to fields, then params --------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        fields = self._data["fields"]
        if name in fields:
            return fields[name]
        params = fields.get("params") or {}
        if name in params:
            return params[name]
        raise AttributeError(f"workitem has no field or param {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN or isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
        else:
            self._data["fields"][name] = value

    def to_dict(self) -> dict[str, Any]:
        return self._data

    def __repr__(self) -> str:
        return f"Workitem({self.participant_name!r}, fei={self.fei!r})"


def _derived_id(activity: str, n: int) -> str:
    digest = hashlib.sha256(f"{activity}\0event\0{n}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))
