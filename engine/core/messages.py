"""The engine's message vocabulary: one constructor per message it accepts or emits.

Every message is a plain JSON object (``dict``). The wire format is fixed:
participants written for BOSS and for ruote-amqp depend on it, so the
constructors here build exactly the dicts the engine, the CLI, the web UI,
the launchers and the participant SDK used to write by hand (the JSON
Schemas in ``engine/schemas/`` and ``docs/wire-protocol.md`` describe them).
Building them in one place means a field is named, required or left out
the same way by every sender, and ``tests/unit/test_messages.py`` checks
each constructor against the schemas.

The module is pure (it is part of the sans-IO core): it only builds and
reads dicts. Plain functions rather than dataclasses, because the
interpreter builds timer messages on its hot path and a dict is what is
stored and sent anyway.

What arrives on the engine's queue:

* a launch item (no ``type``: told by ``definition``/``process``), which the
  engine handles as ``{"type": "launch", **item}`` (``as_launch_message``);
* a participant's reply (the workitem itself, or ``reply(workitem)``);
* operations (``cancel``, ``kill``, ``pause``, ``resume``, ``replay``,
  ``re_apply``), participant notices (``started``, ``alive``, ``register``,
  ``unregister``), and the engine's own messages to itself (``continue``,
  ``listen``, ``mutex``, ``timer``).

What the engine sends participants besides workitems: ``cancel_item`` (on
the control exchange). ``redeliver`` is a timer payload the engine service
keeps in the store, never sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "CONSTRUCTORS",
    "ENGINE_TYPES",
    "MESSAGE_TYPES",
    "OPERATIONS",
    "OPERATION_TYPES",
    "TIMER_KINDS",
    "Message",
    "alive",
    "as_launch_item",
    "as_launch_message",
    "cancel",
    "cancel_item",
    "continue_",
    "kill",
    "launch_item",
    "lease_timer",
    "listen",
    "message_id",
    "mutex",
    "operation",
    "pause",
    "re_apply",
    "redeliver",
    "register",
    "replay",
    "reply",
    "resume",
    "started",
    "timer",
    "unregister",
    "workitem_reply",
]

#: a message as it travels: a JSON object
Message = dict[str, Any]

#: the kinds of a step's timer message (``timer``'s ``timer`` key)
TIMER_KINDS = frozenset({"timeout", "lease", "wait", "retry"})


# -- launch ------------------------------------------------------------------------------


def launch_item(
    *,
    definition: str | None = None,
    process: str | None = None,
    filename: str | None = None,
    fields: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
    wfid: str | None = None,
    cause: list[str] | None = None,
    id: str | None = None,
) -> Message:
    """A launch item (client -> engine; ``launch.json``): the definition's
    YAML text or the name of a process in the process store, exactly one.
    Keys left as None are left out (the schema has no nulls)."""
    if (definition is None) == (process is None):
        raise ValueError("a launch item has a definition or a process (exactly one)")
    item: Message = {"definition": definition} if definition is not None else {"process": process}
    for key, value in (
        ("filename", filename),
        ("fields", fields),
        ("variables", variables),
        ("wfid", wfid),
        ("cause", cause),
        ("id", id),
    ):
        if value is not None:
            item[key] = value
    return item


def as_launch_message(item: Mapping[str, Any]) -> Message:
    """The engine's own form of a launch item: ``{"type": "launch", **item}``
    (how the service hands it around and keeps it in a deferred redelivery)."""
    return {"type": "launch", **{k: v for k, v in item.items() if k != "type"}}


# -- replies and participant notices -----------------------------------------------------


def reply(
    workitem: dict[str, Any],
    wfid: str | None = None,
    *,
    id: str | None = None,
) -> Message:
    """A participant's reply as an engine message: the workitem (as the
    participant changed it) for the run of its ``fei.wfid``. On the wire a
    participant may also send the bare workitem (``engine.wire`` turns it
    into this)."""
    if wfid is None:
        wfid = (workitem.get("fei") or {}).get("wfid")
    msg: Message = {"type": "reply", "wfid": wfid, "workitem": workitem}
    if id is not None:
        msg["id"] = id
    return msg


def workitem_reply(
    workitem: Mapping[str, Any],
    *,
    fei: dict[str, Any],
    participant_name: str,
    started_at: str | None,
    instance: str | None,
    error: dict[str, Any] | None = None,
    log_job: str | None = None,
) -> Message:
    """A participant's reply as it goes on the wire (``workitem.json``): the
    workitem as the handler left it, with the ``fei`` and
    ``participant_name`` it was received with, ``error`` when the handler
    failed, and when and by whom it was done. ``log_job``: the step-log job
    whose batches went to the broker before this reply (none when it logged
    nothing), for readers to wait for (``engine.store.steplogs``)."""
    out: Message = dict(workitem)
    out.pop("log_job", None)  # an earlier step's, never this one's
    out["fei"] = dict(fei)
    out["participant_name"] = participant_name
    if error is not None:
        out["error"] = error
    out["started_at"] = started_at
    out["instance"] = instance
    if log_job is not None:
        out["log_job"] = log_job
    return out


def started(
    wfid: str, eid: str, *, lease: float, instance: str | None, workitem: dict[str, Any]
) -> Message:
    """A participant instance has taken a long step on a lease (``eid`` is
    the workitem's ``subid``); ``workitem`` is the one it was given, to
    dispatch again if the lease runs out."""
    return {
        "type": "started",
        "wfid": wfid,
        "eid": eid,
        "lease": lease,
        "instance": instance,
        "workitem": workitem,
    }


def alive(wfid: str, eid: str, *, lease: float, instance: str | None) -> Message:
    """Heartbeat for a leased step: push its lease timer ``lease`` seconds on."""
    return {"type": "alive", "wfid": wfid, "eid": eid, "lease": lease, "instance": instance}


def register(
    pattern: str,
    queue: str | None = None,
    *,
    regex: bool | None = None,
    position: int | None = None,
) -> Message:
    """A participant registration (a participant at start-up): workitems of
    participants matching ``pattern`` go to ``queue``."""
    msg: Message = {"type": "register", "pattern": pattern}
    if queue is not None:
        msg["queue"] = queue
    if regex is not None:
        msg["regex"] = regex
    if position is not None:
        msg["position"] = position
    return msg


def unregister(pattern: str) -> Message:
    """Drop the registration of ``pattern``."""
    return {"type": "unregister", "pattern": pattern}


# -- operations --------------------------------------------------------------------------


def cancel(wfid: str, eid: str | None = None, *, flavour: str | None = None) -> Message:
    """Cancel the run (its ``on_cancel`` handlers run), or one step of it
    (``eid``: an eid or expid); ``flavour="kill"`` cancels that step as a kill."""
    msg: Message = {"type": "cancel", "wfid": wfid}
    if eid:
        msg["eid"] = eid
    if flavour is not None:
        msg["flavour"] = flavour
    return msg


def kill(wfid: str) -> Message:
    """End the run at once, without ``on_cancel`` handlers."""
    return {"type": "kill", "wfid": wfid}


def pause(wfid: str) -> Message:
    """Hold the run's messages until it is resumed."""
    return {"type": "pause", "wfid": wfid}


def resume(wfid: str) -> Message:
    """Release a paused run's messages, in the order they came."""
    return {"type": "resume", "wfid": wfid}


def replay(wfid: str, error_id: str | None = None, fields: dict[str, Any] | None = None) -> Message:
    """Dispatch a failed step again (the first error when ``error_id`` is
    None), with ``fields`` merged over its workitem. Both keys are always
    there, null when not given."""
    return {"type": "replay", "wfid": wfid, "error_id": error_id, "fields": fields}


def re_apply(wfid: str, eid: str, fields: dict[str, Any] | None = None) -> Message:
    """Run a live step again (``eid``: an eid or expid), ``fields`` merged
    over its workitem (always there, null when not given)."""
    return {"type": "re_apply", "wfid": wfid, "eid": eid, "fields": fields}


# -- the engine's messages to itself -----------------------------------------------------------


def continue_(wfid: str) -> Message:
    """Go on with the work the interpreter saved when it yielded (a message
    may run only so many instantaneous operations)."""
    return {"type": "continue", "wfid": wfid}


def listen(wfid: str, eid: str, workitem: dict[str, Any]) -> Message:
    """Wake the ``listen`` step ``eid`` with the workitem it heard."""
    return {"type": "listen", "wfid": wfid, "eid": eid, "workitem": workitem}


def mutex(wfid: str, eid: str, name: str) -> Message:
    """The ``reserve`` step ``eid`` now holds mutex ``name``."""
    return {"type": "mutex", "wfid": wfid, "eid": eid, "mutex": name}


def timer(wfid: str, eid: str, kind: str) -> Message:
    """A step's timer fired: ``kind`` is ``timeout``, ``wait`` or ``retry``
    (a lease timer is ``lease_timer``)."""
    return {"type": "timer", "wfid": wfid, "eid": eid, "timer": kind}


def lease_timer(
    wfid: str,
    eid: str,
    *,
    lease: float,
    instance: str | None,
    workitem: dict[str, Any],
) -> Message:
    """A step's lease ran out (no heartbeat for ``lease`` seconds): dispatch
    ``workitem`` again."""
    return {
        "type": "timer",
        "wfid": wfid,
        "eid": eid,
        "timer": "lease",
        "lease": lease,
        "instance": instance,
        "workitem": workitem,
    }


def redeliver(message: Message) -> Message:
    """The timer payload of a deferred redelivery (``engine.service``): look
    at ``message`` again once its owner's heartbeat would have run out.
    Kept in the store only, never sent."""
    return {"type": "redeliver", "wfid": message.get("wfid"), "message": message}


# -- engine -> participant ---------------------------------------------------------------


def cancel_item(fei: dict[str, Any], participant_name: str, flavour: str = "cancel") -> Message:
    """Drop the workitem with this ``fei`` (``cancel.json``; published on the
    control exchange with the participant's queue as routing key)."""
    return {
        "type": "cancel",
        "flavour": flavour,
        "fei": fei,
        "participant_name": participant_name,
    }


def ruote_cancel_item(fei: dict[str, Any], flavour: str = "cancel") -> Message:
    """ruote-amqp's cancel item, ``{"cancel": true, "fei", "flavour"}``,
    published on a python-ruote-amqp participant's own work queue (it reads
    no control exchange): its ``Participant`` calls ``cancel(workitem)``
    (SkyNET: ``handle_wi_control``) for it and sends no reply."""
    return {"cancel": True, "fei": fei, "flavour": flavour}


# -- tables ------------------------------------------------------------------------------

#: every type of message on the engine's queue -> its constructor (``launch``
#: is the engine's name for a launch item)
CONSTRUCTORS: Mapping[str, Callable[..., Message]] = MappingProxyType(
    {
        "launch": launch_item,
        "reply": reply,
        "cancel": cancel,
        "kill": kill,
        "pause": pause,
        "resume": resume,
        "replay": replay,
        "re_apply": re_apply,
        "started": started,
        "alive": alive,
        "continue": continue_,
        "listen": listen,
        "mutex": mutex,
        "timer": timer,
        "register": register,
        "unregister": unregister,
    }
)

#: every message type the engine accepts
MESSAGE_TYPES = frozenset(CONSTRUCTORS)

#: the types that carry a ``type`` key on the wire (all but launch items)
ENGINE_TYPES = MESSAGE_TYPES - {"launch"}

#: what an operator may do to a run (``boss <name>``, the web UI's actions,
#: ``Engine.<method>``) -> the message type it sends
OPERATION_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "cancel": "cancel",
        "kill": "kill",
        "pause": "pause",
        "resume": "resume",
        "replay": "replay",
        "reapply": "re_apply",
    }
)

#: operation name -> its constructor (all take the wfid first)
OPERATIONS: Mapping[str, Callable[..., Message]] = MappingProxyType(
    {name: CONSTRUCTORS[kind] for name, kind in OPERATION_TYPES.items()}
)


def operation(name: str, wfid: str, /, **options: Any) -> Message:
    """The message of operation ``name`` (a key of ``OPERATIONS``: cancel,
    kill, pause, resume, replay, reapply) on run ``wfid``; ``options`` are
    the constructor's (``eid``, ``error_id``, ``fields``)."""
    try:
        build = OPERATIONS[name]
    except KeyError:
        raise ValueError(f"unknown operation {name!r}: one of {', '.join(OPERATIONS)}") from None
    return build(wfid, **options)


# -- reading -----------------------------------------------------------------------------


def _reply_id(msg: Mapping[str, Any]) -> str | None:
    subid = ((msg.get("workitem") or {}).get("fei") or {}).get("subid")
    return f"reply:{subid}" if subid else None


def _timer_id(msg: Mapping[str, Any]) -> str | None:
    return f"timer:{msg.get('eid')}:{msg.get('timer')}"


#: how a message without an ``id`` is identified, by type
_DERIVED_ID: Mapping[str, Callable[[Mapping[str, Any]], str | None]] = MappingProxyType(
    {"reply": _reply_id, "timer": _timer_id}
)


def message_id(msg: Mapping[str, Any]) -> str | None:
    """The identity of a message, for spotting a redelivery: its ``id``,
    else one derived from what it answers (a reply from the step's unique
    ``subid``, a timer from its step and kind); None for the others."""
    mid = msg.get("id")
    if mid is not None:
        return str(mid)
    derive = _DERIVED_ID.get(msg.get("type") or "")
    return derive(msg) if derive is not None else None


def as_launch_item(msg: Mapping[str, Any]) -> Message:
    """The launch item of a launch message (``as_launch_message`` undone)."""
    return {k: v for k, v in msg.items() if k != "type"}
