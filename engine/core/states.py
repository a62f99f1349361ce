"""Run and step states, and their groupings.

One small, dependency-free module that everything imports (the habit of
``celery/states.py``): the interpreter, the stores, the CLI, the web UI.
"""

from __future__ import annotations

# -- run states (section 6 of the process language) -------------------------
RUNNING = "running"
PAUSED = "paused"
ERROR = "error"
FINISHED = "finished"
CANCELLED = "cancelled"
KILLED = "killed"

RUN_STATES: tuple[str, ...] = (RUNNING, PAUSED, ERROR, FINISHED, CANCELLED, KILLED)
#: a run in one of these states still holds expressions and may change
LIVE_RUN_STATES: frozenset[str] = frozenset({RUNNING, PAUSED, ERROR})
#: a run in one of these states is over; nothing will change it again
ENDED_RUN_STATES: frozenset[str] = frozenset({FINISHED, CANCELLED, KILLED})

# -- step (expression instance) states -------------------------------------
#: applied, working on its children or on its own
ACTIVE = "active"
#: handed to a participant (or waiting on a timer, listen or mutex)
WAITING = "waiting"
#: being cancelled: waits for its children to reply to the cancel
CANCELLING = "cancelling"
#: stopped by an uncaught error; waits for replay, cancel or kill
FAILED = "failed"
#: done (kept only in the trace, never in the live tree)
DONE = "done"

STEP_STATES: tuple[str, ...] = (ACTIVE, WAITING, CANCELLING, FAILED, DONE)

# -- step outcomes (what a finished step reports to the traceability graph) --
SUCCESSFUL = "SUCCESSFUL"
UNSUCCESSFUL = "UNSUCCESSFUL"
FAILED_OUTCOME = "FAILED"
ABORTED = "ABORTED"
TIMED_OUT = "TIMED_OUT"
SKIPPED = "SKIPPED"

OUTCOMES: tuple[str, ...] = (SUCCESSFUL, UNSUCCESSFUL, FAILED_OUTCOME, ABORTED, TIMED_OUT, SKIPPED)
