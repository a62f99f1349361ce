"""The run state's format: its version, the migrations between versions, and
the accessors everything outside the core reads a run state through.

A run state is one JSON document per run, written by
``engine.core.interpreter`` (its module docstring lists the keys; live
expressions are small dicts with short keys). Only the core knows that
layout: the engine adapter, the CLI, the web UI and SkyNET read a state
through the functions here (``status``, ``fields``, ``errors``,
``expressions``, ``positions``, ``tree``...) and the read-only
``Expression`` view, so the layout can change behind them.

**Versions.** A state carries its format version under ``VERSION_KEY``
(``"sv"``, *state version*: ``v`` already means an expression's variables,
and the Redis hash of a run has a ``v`` field for its compare-and-set
counter). A state without the key is version 1, the format written before
versions existed. ``interpreter.launch`` writes ``STATE_VERSION``; whoever
loads a state from a store passes it through ``upgrade`` first, which runs
the ``MIGRATIONS`` in order (one function per step, ``{1: upgrade_1_to_2}``,
each taking and returning the state dict, the way SpiffWorkflow keeps its
serializer migrations). On a current state ``upgrade`` is one dict lookup.
A state newer than this code is refused (``StateVersionError``): an older
engine must not rewrite a run in a format it does not know.

Version history:

1. (no key) the format up to the introduction of versions.
2. the state names its version (``"sv": 2``); nothing else changes, so a run
   that waits in a store in version 1 goes on where it was.

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from engine.core import states

if TYPE_CHECKING:
    from collections.abc import Mapping

    from engine.core.definition import Definition

#: the run state format this code writes
STATE_VERSION = 2

#: the key of a run state that holds its format version (absent: version 1)
VERSION_KEY = "sv"

#: the version of a state that has no ``VERSION_KEY``
UNVERSIONED = 1


class StateVersionError(ValueError):
    """A run state this code cannot read: from a newer BOSS, or with a
    version that is not a known format version."""


# ---------------------------------------------------------------------------
# versions and migrations


def version(state: Mapping[str, Any]) -> int:
    """The format version of ``state`` (1 when it names none)."""
    return state.get(VERSION_KEY, UNVERSIONED)


def upgrade_1_to_2(state: dict[str, Any]) -> dict[str, Any]:
    """Version 1 → 2: the state names its version. The rest of the format is
    the same, so a run that waits in a store goes on as it was."""
    state[VERSION_KEY] = 2
    return state


#: ``{from version: function}``: each takes a state of that version and
#: returns it in the next one
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: upgrade_1_to_2,
}


def upgrade(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` in the current format (``STATE_VERSION``), migrated in place
    when it is older; call it on every state loaded from a store. Raises
    ``StateVersionError`` for a state newer than this code, or one whose
    version is not a positive integer."""
    v = state.get(VERSION_KEY, UNVERSIONED)
    if v == STATE_VERSION:
        return state
    if type(v) is not int or v < UNVERSIONED:
        raise StateVersionError(
            f"run {state.get('wfid')}: state version {v!r} is not a format version"
            f" (this engine reads versions {UNVERSIONED} to {STATE_VERSION})"
        )
    if v > STATE_VERSION:
        raise StateVersionError(
            f"run {state.get('wfid')} is in state format version {v}, newer than this"
            f" engine knows (up to {STATE_VERSION}): it was written by a newer BOSS;"
            f" upgrade this engine before it handles the run"
        )
    while v < STATE_VERSION:
        state = MIGRATIONS[v](state)
        new = state.get(VERSION_KEY, UNVERSIONED)
        if new != v + 1:  # a migration that forgot to stamp its version
            raise AssertionError(f"migration from version {v} left version {new!r}")
        v = new
    return state


def stamp(state: dict[str, Any]) -> dict[str, Any]:
    """Mark a new state as written in the current format."""
    state[VERSION_KEY] = STATE_VERSION
    return state


# ---------------------------------------------------------------------------
# expressions


class Expression:
    """A read-only view of one live expression instance of a run."""

    __slots__ = ("_e", "eid")

    def __init__(self, eid: str, expr: Mapping[str, Any]) -> None:
        #: the instance id (``<node id>-<counter>``, a workitem's ``fei.subid``)
        self.eid = eid
        self._e = expr

    @property
    def node_id(self) -> str:
        """The node in the definition (``0_1``, ``sub/0_2``, ``0_1@on_error``)."""
        return self._e["n"]

    @property
    def state(self) -> str:
        """``engine.core.states``: active, waiting, cancelling, failed."""
        return self._e["s"]

    @property
    def parent(self) -> str | None:
        """The parent's eid (None for the root and detached branches)."""
        return self._e.get("p")

    @property
    def children(self) -> tuple[str, ...]:
        """The eids of its live children (containers)."""
        return tuple(self._e.get("k") or ())

    @property
    def participant(self) -> str | None:
        """The participant it was dispatched to (participant steps)."""
        return self._e.get("pn")

    @property
    def queue(self) -> str | None:
        """The queue its workitem was dispatched to (participant steps)."""
        return self._e.get("q")

    @property
    def since(self) -> float | None:
        """When it started waiting (participant steps), epoch seconds."""
        return self._e.get("at")

    @property
    def workitem_fields(self) -> Mapping[str, Any]:
        """The workitem fields it was applied with (read-only)."""
        return MappingProxyType(self._e.get("w") or {})

    @property
    def is_position(self) -> bool:
        """Whether the run is *at* this step: it waits, or it failed."""
        return self._e["s"] in _POSITION_STATES

    def describe(self, definition: Definition) -> tuple[str, str]:
        """``(kind, name)`` of its node in ``definition``: the participant's
        name for a participant step; ``("?", node id)`` for a node the
        definition does not have."""
        try:
            node = definition.node(self._e["n"])
        except KeyError:
            return "?", self._e["n"]
        return node.kind, self._e.get("pn") or node.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and (self.eid, self._e) == (other.eid, other._e)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Expression({self.eid!r}, node={self.node_id!r}, state={self.state!r})"


_POSITION_STATES = frozenset({states.WAITING, states.FAILED})


def expressions(state: Mapping[str, Any]) -> Iterator[Expression]:
    """Every live expression of the run."""
    for eid, e in state["exprs"].items():
        yield Expression(eid, e)


def expression(state: Mapping[str, Any], eid: str) -> Expression | None:
    """The live expression ``eid``, or None."""
    e = state["exprs"].get(eid)
    return None if e is None else Expression(eid, e)


def has_step(state: Mapping[str, Any], step: str) -> bool:
    """Whether ``step`` (an eid, or a node id) names a live expression."""
    exprs = state.get("exprs") or {}
    return step in exprs or any(e.get("n") == step for e in exprs.values())


def positions(state: Mapping[str, Any]) -> list[Expression]:
    """Where the run is: its expressions that wait or failed, in tree order
    of creation."""
    return [Expression(eid, e) for eid, e in state["exprs"].items() if e["s"] in _POSITION_STATES]


def root(state: Mapping[str, Any]) -> Expression | None:
    """The root expression (None when the run has ended)."""
    eid = state.get("root")
    return None if eid is None else expression(state, eid)


def detached(state: Mapping[str, Any]) -> list[Expression]:
    """The live roots of detached branches (``forget``)."""
    exprs = state["exprs"]
    return [Expression(eid, exprs[eid]) for eid in state.get("detached") or () if eid in exprs]


def tree(state: Mapping[str, Any], definition: Definition) -> dict[str, Any] | None:
    """The live expression tree: nested ``{eid, expid, kind, name, state,
    children}`` from the root, plus ``detached`` (None when the run has
    ended)."""
    exprs = state["exprs"]

    def build(x: Expression) -> dict[str, Any]:
        kind, name = x.describe(definition)
        return {
            "eid": x.eid,
            "expid": x.node_id,
            "kind": kind,
            "name": name,
            "state": x.state,
            "children": [build(Expression(k, exprs[k])) for k in x.children if k in exprs],
        }

    top = root(state)
    if top is None:
        return None
    out = build(top)
    out["detached"] = [build(x) for x in detached(state)]
    return out


# ---------------------------------------------------------------------------
# the run
#
# ``wfid``, ``name``, ``status``, ``launched_at`` and ``errors`` are stable
# across versions: the stores index them (``engine.store``) and read them
# from the state as saved.


def status(state: Mapping[str, Any]) -> str:
    """The run's status (``engine.core.states``)."""
    return state["status"]


def definition_digest(state: Mapping[str, Any]) -> str:
    """The digest of the definition the run follows."""
    return state["def"]


def errors(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The run's errors, oldest first (``id``, ``eid``, ``expid``, ``class``,
    ``message``, ``at``, ``fields``...). The state's own list: do not change
    it."""
    return state["errors"]


def fields(state: Mapping[str, Any]) -> dict[str, Any]:
    """The run's fields: the final ones of an ended run; for a live run,
    those of its most recent waiting (or failed) step, else the launch
    fields. The state's own dict: do not change it."""
    if state["status"] in states.ENDED_RUN_STATES:
        return state["fields"]
    best = None
    best_at = 0
    for e in state["exprs"].values():
        if e["s"] in _POSITION_STATES and (best is None or e.get("at", 0) >= best_at):
            best, best_at = e, e.get("at", 0)
    return best["w"] if best is not None else state["fields"]


def stored_fields(state: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the state keeps at run level: the launch fields while the
    run is live, the final ones once it ended (what the run index indexes;
    ``fields`` gives a live run's current ones)."""
    return state.get("fields") or {}
