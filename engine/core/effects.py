"""What the interpreter asks its adapters to do.

The sans-IO core (``engine.core.interpreter``) never touches Redis, a broker or a
clock: it returns a list of these effects and the adapter (``engine.engine``)
carries them out *after* the new run state is stored. Every effect is plain
data (``to_dict``/``from_dict`` round-trip through JSON) so it can sit in a
run's outbox and be carried out again after a crash; each is idempotent on
its ids (a workitem's ``fei.subid``, a timer id, a listener id, a mutex
holder).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class Dispatch:
    """Hand ``workitem`` to the participant's queue."""

    participant: str
    queue: str
    workitem: dict[str, Any]
    forget: bool = False


@dataclass(slots=True)
class ReplyApplied:
    """A participant's reply was applied to the run (``listen upon: reply``
    wakes on this, never on a reply that was held, stale or an error)."""

    workitem: dict[str, Any]


@dataclass(slots=True)
class CancelWorkitem:
    """Tell the participant to drop the workitem with this ``fei``."""

    participant: str
    queue: str
    fei: dict[str, Any]
    flavour: str = "cancel"


@dataclass(slots=True)
class ScheduleTimer:
    timer_id: str
    due: float
    message: dict[str, Any]


@dataclass(slots=True)
class CancelTimer:
    timer_id: str


@dataclass(slots=True)
class AddListener:
    listener_id: str
    spec: dict[str, Any]


@dataclass(slots=True)
class RemoveListener:
    listener_id: str


@dataclass(slots=True)
class AcquireMutex:
    name: str
    holder: str


@dataclass(slots=True)
class ReleaseMutex:
    name: str
    holder: str


@dataclass(slots=True)
class Echo:
    """An ``echo`` line for the run's trace."""

    text: str


@dataclass(slots=True)
class Record:
    """One lifecycle transition of the run or of a step, for the
    traceability graph (exactly one per transition)."""

    entity: str  # "run" or "step"
    wfid: str
    eid: str | None
    name: str
    event: str  # "triggered", "started", "finished", "canceled"
    at: float
    outcome: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Log:
    """Something an operator may want to know (an ignored reply, ...)."""

    level: str
    message: str


@dataclass(slots=True)
class Continue:
    """The run has more instantaneous work: deliver a ``continue`` message
    (the core yields after a bounded number of operations so that a loop of
    instantaneous steps cannot monopolise a worker)."""

    wfid: str


@dataclass(slots=True)
class RunEnded:
    wfid: str
    status: str


Effect = (
    Dispatch
    | ReplyApplied
    | CancelWorkitem
    | ScheduleTimer
    | CancelTimer
    | AddListener
    | RemoveListener
    | AcquireMutex
    | ReleaseMutex
    | Echo
    | Record
    | Log
    | Continue
    | RunEnded
)

EFFECT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Dispatch,
        ReplyApplied,
        CancelWorkitem,
        ScheduleTimer,
        CancelTimer,
        AddListener,
        RemoveListener,
        AcquireMutex,
        ReleaseMutex,
        Echo,
        Record,
        Log,
        Continue,
        RunEnded,
    )
}


_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(cls.__dataclass_fields__) for cls in EFFECT_TYPES.values()
}


def to_list(effect: Effect) -> list[Any]:
    """A compact JSON form: ``[type name, field values...]`` (fast: no
    recursion into the values, unlike ``dataclasses.asdict``)."""
    return [type(effect).__name__, *[getattr(effect, f) for f in _FIELDS[type(effect)]]]


def from_list(data: list[Any]) -> Effect:
    return EFFECT_TYPES[data[0]](*data[1:])


def to_dict(effect: Effect) -> dict[str, Any]:
    d = asdict(effect)
    d["effect"] = type(effect).__name__
    return d


def from_dict(data: dict[str, Any]) -> Effect:
    data = dict(data)
    cls = EFFECT_TYPES[data.pop("effect")]
    return cls(**data)
