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

python-ruote-amqp's workitem API (what BOSS's participants are written
against; ``RuoteAMQP`` re-exports this class) works too: ``wi.fields`` and
``wi.params`` are dicts that also read and write as attributes, nested dicts
included (``wi.fields.ev.actions``; a missing key reads as None; assigning
creates the key; ``.as_dict()``), ``wi.fei`` is a :class:`FlowExpressionId`
(a dict with ``wfid``, ``expid``, ``subid``, ``engine_id``, ``sub_wfid``
attributes), ``Workitem(json_text)``, ``to_h()``, ``dump()``, ``dup()``,
``sid``, ``lf``, ``timed_out``, ``is_cancel``, and settable ``error`` and
``forget`` (``wi.forget = True``: the runtime sends no reply).
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Iterator, MutableMapping
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


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _plain(value: Any) -> Any:
    """A value to store: an attribute proxy is stored as the dict it proxies."""
    return value._d if isinstance(value, AttrProxy) else value


def _proxied(value: Any) -> Any:
    return AttrProxy(value) if isinstance(value, dict) and not isinstance(value, Fields) else value


class AttrProxy(MutableMapping[str, Any]):
    """A nested dict of the fields seen with attributes, as
    python-ruote-amqp's ``DictAttrProxy``: ``p.val`` is ``d["val"]`` (None
    when missing; a nested dict is proxied too), ``p.val = x`` sets it, and
    ``p.as_dict()`` is the dict itself. Changes go to the dict."""

    __slots__ = ("_d",)

    def __init__(self, d: dict[str, Any]) -> None:
        object.__setattr__(self, "_d", d)

    def __getattr__(self, name: str) -> Any:
        if name in self._d:
            return _proxied(self._d[name])
        if _is_dunder(name):
            raise AttributeError(name)
        return None

    def __setattr__(self, name: str, value: Any) -> None:
        self._d[name] = _plain(value)

    def __delattr__(self, name: str) -> None:
        self._d.pop(name, None)

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._d[key] = _plain(value)

    def __delitem__(self, key: str) -> None:
        del self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def __eq__(self, other: object) -> bool:
        return self._d == (other._d if isinstance(other, AttrProxy) else other)

    __hash__ = None  # type: ignore[assignment]

    def as_dict(self) -> dict[str, Any]:
        return self._d

    def __repr__(self) -> str:
        return repr(self._d)


class Fields(dict):  # type: ignore[type-arg]
    """``wi.fields`` and ``wi.params``: a dict (what the workitem holds and
    sends) whose keys also read and write as attributes, as
    python-ruote-amqp's: ``wi.fields.project`` (None when missing; a nested
    dict comes as an :class:`AttrProxy`), ``wi.fields.project = "x"``,
    ``getattr(wi.fields, "x", default)`` (None when missing, as there),
    ``wi.fields.as_dict()``. Dict methods keep their names (a field called
    ``items`` is ``wi.fields["items"]``)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name in self:
            return _proxied(self[name])
        if _is_dunder(name):
            raise AttributeError(name)
        return None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = _plain(value)

    def __delattr__(self, name: str) -> None:
        self.pop(name, None)

    def as_dict(self) -> dict[str, Any]:
        return self


def _fields_of(container: dict[str, Any], key: str) -> Fields | None:
    """``container[key]`` as :class:`Fields`, converted in place once
    (None when it is missing or not a dict)."""
    value = container.get(key)
    if isinstance(value, Fields):
        return value
    if not isinstance(value, dict):
        return None
    value = Fields(value)
    container[key] = value
    return value


class FlowExpressionId(dict):  # type: ignore[type-arg]
    """The ``fei``: which step of which run (a dict, as on the wire, with
    python-ruote-amqp's attributes). ``sub_wfid`` is ruote 2.1's name for
    ``subid``; a missing part reads as None."""

    __slots__ = ()

    CHILD_SEP = "_"

    @property
    def wfid(self) -> str | None:
        return self.get("wfid")

    @property
    def expid(self) -> str | None:
        return self.get("expid")

    @property
    def subid(self) -> str | None:
        return self.get("subid")

    @property
    def sub_wfid(self) -> str | None:
        return self.get("sub_wfid", self.get("subid"))

    @property
    def engine_id(self) -> str | None:
        return self.get("engine_id")

    def to_storage_id(self) -> str:
        """``expid!subid!wfid``, ruote's storage id of the expression."""
        return f"{self.expid}!{self.subid or self.sub_wfid or ''}!{self.wfid}"

    @property
    def child_id(self) -> int | None:
        """The last number of the expid (``0_5_7`` -> 7)."""
        try:
            return int(str(self.expid).split(self.CHILD_SEP)[-1])
        except ValueError:
            return None

    def direct_child(self, other: dict[str, Any]) -> bool:
        """Whether ``other`` is a direct child of this expression."""
        for key in ("sub_wfid", "wfid", "engine_id"):
            if self.get(key) != other.get(key):
                return False
        parent = str(other.get("expid", "")).rsplit(self.CHILD_SEP, 1)[0]
        return parent == self.expid


class Workitem:
    """A participant's view of one workitem (the decoded dict, or its JSON
    text as python-ruote-amqp's ``Workitem(msg)`` takes it)."""

    __slots__ = ("_cancelled", "_data", "_events")

    def __init__(self, data: dict[str, Any] | str | bytes) -> None:
        if isinstance(data, (str, bytes, bytearray)):
            data = json.loads(data)
            if not isinstance(data, dict):
                raise ValueError("a workitem is a JSON object")
        data.setdefault("fields", {})
        fields = _fields_of(data, "fields")
        if fields is not None:
            _fields_of(fields, "params")
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_cancelled", False)
        object.__setattr__(self, "_events", [])

    @classmethod
    def copy_of(cls, data: dict[str, Any]) -> Workitem:
        return cls(copy.deepcopy(data))

    # -- the envelope -------------------------------------------------------
    @property
    def fields(self) -> Fields:
        fields = _fields_of(self._data, "fields")
        # a handler that put something else there gets it back (the reply
        # then fails as malformed, as before)
        return self._data["fields"] if fields is None else fields

    @fields.setter
    def fields(self, value: dict[str, Any]) -> None:
        params = self._data["fields"].get("params")
        value = Fields(_plain(value))
        if params is not None:
            value.setdefault("params", params)
        self._data["fields"] = value

    @property
    def params(self) -> Fields:
        """The step's params (``fields.params``); an empty, detached dict
        when the step has none."""
        fields = self._data.get("fields")
        params = _fields_of(fields, "params") if isinstance(fields, dict) else None
        return params if params else Fields()

    @property
    def fei(self) -> FlowExpressionId:
        """A copy of the ``fei`` (the runtime replies with the one received)."""
        return FlowExpressionId(self._data.get("fei") or {})

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
        """No reply is expected: set by the engine for a ``forget`` step, or
        by the handler (``wi.forget = True``, as python-ruote-amqp's
        participants do) so that the runtime sends none."""
        return bool(self._data.get("forget"))

    @forget.setter
    def forget(self, value: bool) -> None:
        if value:
            self._data["forget"] = True
        else:
            self._data.pop("forget", None)

    @property
    def is_cancel(self) -> bool:
        """python-ruote-amqp's name: a cancel item, or a step cancelled while
        the handler runs it."""
        return self._cancelled or bool(self._data.get("cancel"))

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

    @error.setter
    def error(self, value: dict[str, Any] | str | None) -> None:
        """Fail the step without raising (python-ruote-amqp's ``wi.error``):
        the reply carries it as its ``error``. None clears it."""
        if value is None:
            self._data.pop("error", None)
        else:
            self._data["error"] = value

    @property
    def timed_out(self) -> Any:
        return self._data["fields"].get("__timed_out__")

    @property
    def dispatched_at(self) -> str | None:
        return self._data.get("dispatched_at")

    @property
    def sid(self) -> str:
        """ruote's storage id of the step (``expid!subid!wfid``)."""
        return self.fei.to_storage_id()

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
        cur[parts[-1]] = _plain(value)

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
        """The workitem itself, as plain dicts (the engine keeps it with
        ``marshal``, which takes no dict subclass): ``fields`` and ``params``
        are turned back into ``dict`` in place; ``wi.fields`` wraps them
        again when next read (take it again after this call)."""
        data = self._data
        fields = data.get("fields")
        if isinstance(fields, Fields):
            fields = data["fields"] = dict(fields)
        if isinstance(fields, dict) and isinstance(fields.get("params"), Fields):
            fields["params"] = dict(fields["params"])
        return data

    # -- python-ruote-amqp's names ------------------------------------------------
    def to_h(self) -> dict[str, Any]:
        """The whole workitem (as ``to_dict``)."""
        return self.to_dict()

    as_dict = to_h

    def dump(self) -> str:
        """The workitem as indented JSON text, keys sorted."""
        return json.dumps(self._data, sort_keys=True, indent=4)

    def dup(self) -> Workitem:
        """A deep copy."""
        return type(self)(json.loads(json.dumps(self._data)))

    lf = lookup

    def __repr__(self) -> str:
        return f"Workitem({self.participant_name!r}, fei={self.fei!r})"


def _derived_id(activity: str, n: int) -> str:
    digest = hashlib.sha256(f"{activity}\0event\0{n}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))
