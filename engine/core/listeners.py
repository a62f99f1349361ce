"""Which waiting ``listen`` expressions a workitem wakes.

A listener is the spec a ``listen`` step stored (``to``: a participant name
or regex, ``upon``: ``apply`` or ``reply``, ``where``: a condition on the
workitem's fields, ``only_wfid``: the listening run's own workitems only).
The adapter keeps the specs in the store and claims a matching one before it
sends the ``listen`` message, so that only one engine wakes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from engine.core.conditions import parse_condition
from engine.core.registrations import compiled
from engine.core.substitution import DictScope

__all__ = ["matches", "woken"]


def matches(spec: dict[str, Any], upon: str, wfid: str, workitem: dict[str, Any]) -> bool:
    """Whether ``workitem`` (applied or replied, by ``upon``, in run
    ``wfid``) wakes the listener ``spec``."""
    name = workitem.get("participant_name")
    if not name or spec.get("upon", "apply") != upon:
        return False
    if spec.get("only_wfid") and spec.get("wfid") != wfid:
        return False
    to = spec.get("to", "")
    if to != name:
        rx = compiled(to)
        if rx is None or not rx.fullmatch(name):
            return False
    where = spec.get("where")
    if where:
        scope = DictScope(workitem.get("fields") or {}, {}, {"wfid": wfid})
        if not parse_condition(where).evaluate(scope):
            return False
    return True


def woken(
    listeners: Iterable[tuple[str, dict[str, Any]]], upon: str, wfid: str, workitem: dict[str, Any]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The ``(listener id, spec)`` pairs that ``workitem`` wakes, in order."""
    for lid, spec in listeners:
        if matches(spec, upon, wfid, workitem):
            yield lid, spec
