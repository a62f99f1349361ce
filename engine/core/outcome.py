"""What a run came to: one definition of a passed, failed or cancelled run.

The run's status says whether it ended (``states``); whether it *passed*
is the fields' word. A process states it explicitly with the field
``__outcome__`` (``success``, ``failure`` or ``error``: ``set:
{__outcome__: failure}``), which wins; without it, BOSS's two conventions:

* ``__result__`` (what a participant sets as ``wi.result``): ``false`` (or
  the text ``"false"``) is a failure, as for a step (the interpreter's
  ``UNSUCCESSFUL``);
* ``status`` (``BOSS_handle_SR``'s ``f:status``): ``FAILED``/``FAILURE``
  is a failure, ``ERROR`` an error (case does not matter); ``SUCCESS`` or
  anything else says nothing.

=================================  ==========
run                                outcome
=================================  ==========
running, paused                    pending
error (stopped, waits for replay)  error
finished, ``status: ERROR``        error
finished, a failure marker         failure
finished                           success
cancelled, killed                  cancelled
=================================  ==========

The reporters (``engine/reporters``) tell the forges this; anything else
that needs "did the run fail" should use it too. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.core import states

__all__ = [
    "CANCELLED",
    "ERROR",
    "FAILURE",
    "OUTCOMES",
    "PENDING",
    "SUCCESS",
    "failure_marker",
    "run_outcome",
]

PENDING = "pending"
SUCCESS = "success"
FAILURE = "failure"
ERROR = "error"
CANCELLED = "cancelled"

OUTCOMES: tuple[str, ...] = (PENDING, SUCCESS, FAILURE, ERROR, CANCELLED)

_FAILED_STATUS = frozenset({"FAILED", "FAILURE", "FAIL"})
_ERROR_STATUS = frozenset({"ERROR"})


def failure_marker(fields: Mapping[str, Any] | None) -> str | None:
    """``failure`` or ``error`` when the fields say the work failed, else None
    (an explicit ``__outcome__: success`` says it did not)."""
    if not fields:
        return None
    stated = fields.get("__outcome__")
    if isinstance(stated, str) and stated.strip().lower() in (SUCCESS, FAILURE, ERROR):
        stated = stated.strip().lower()
        return None if stated == SUCCESS else stated
    r = fields.get("__result__", True)
    status = fields.get("status")
    if isinstance(status, str):
        if status.strip().upper() in _ERROR_STATUS:
            return ERROR
        if status.strip().upper() in _FAILED_STATUS:
            return FAILURE
    if r is False or (isinstance(r, str) and r.strip().lower() == "false"):
        return FAILURE
    return None


def run_outcome(status: str, fields: Mapping[str, Any] | None = None) -> str:
    """The outcome (one of ``OUTCOMES``) of a run in ``status`` with ``fields``."""
    if status in (states.CANCELLED, states.KILLED):
        return CANCELLED
    if status == states.ERROR:
        return ERROR
    if status == states.FINISHED:
        return failure_marker(fields) or SUCCESS
    return PENDING
