"""The lifecycle of a run and of a step, as explicit state machines.

Each machine is defined once, at import, with the ``transitions`` package and
shared by every run: the hot path looks transitions up in a table built from
the machine instead of building a machine per step. Every legal transition
fires exactly one traceability ``Record`` (ActivityTriggered, -Started,
-Finished, -Canceled in Eiffel's vocabulary).

::

    new --trigger--> triggered --start--> started --finish--> finished
                         |                    \\--cancel--> finished (ABORTED)
                         |--finish--> finished
                         \\--cancel--> canceled
"""

from __future__ import annotations

from transitions import Machine

STATES = ["new", "triggered", "started", "finished", "canceled"]

_TRANSITIONS = [
    {"trigger": "trigger", "source": "new", "dest": "triggered"},
    {"trigger": "start", "source": "triggered", "dest": "started"},
    {"trigger": "finish", "source": ["triggered", "started"], "dest": "finished"},
    {"trigger": "cancel", "source": "triggered", "dest": "canceled"},
    # a step that already started and is then cancelled ends as finished/ABORTED
    {"trigger": "cancel", "source": "started", "dest": "finished"},
]

#: the one machine (no model: it is only a definition)
MACHINE = Machine(
    model=None, states=STATES, transitions=_TRANSITIONS, initial="new", auto_transitions=False
)


def _table(machine: Machine) -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    for trigger, event in machine.events.items():
        for source, transitions in event.transitions.items():
            table[(trigger, source)] = transitions[0].dest
    return table


#: (trigger, source state) -> destination state
TABLE: dict[tuple[str, str], str] = _table(MACHINE)

#: the traceability event a transition records, by destination and trigger
EVENT_OF = {"trigger": "triggered", "start": "started", "finish": "finished", "cancel": "canceled"}


class IllegalTransition(ValueError):
    pass


def advance(current: str, trigger: str) -> str:
    """The state after ``trigger`` from ``current``; IllegalTransition if the
    machine has no such transition."""
    try:
        return TABLE[(trigger, current)]
    except KeyError:
        raise IllegalTransition(f"no '{trigger}' from '{current}'") from None


def can(current: str, trigger: str) -> bool:
    return (trigger, current) in TABLE
