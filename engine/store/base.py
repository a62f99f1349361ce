"""The run store interface.

A store keeps everything the engine needs between messages: definitions (by
content hash), runs (one JSON-compatible state document per run, with a
version for compare-and-set), timers, participant registrations, listeners
and mutexes. Two implementations pass the same test suite
(``tests/integration/test_store_contract.py``): ``MemoryStore`` for the
in-process harness and ``RedisStore`` for everything else.

Concurrency contract: ``save_run`` is a compare-and-set on the version
returned by ``load_run``. Two workers that load the same version and both
save lose nothing: exactly one save wins, the other gets ``ConflictError``
and must reload and re-apply its message. The engine (``engine.engine``)
does that loop.

The run state document is owned by the interpreter; the store reads only
these keys of it, to keep its indexes: ``wfid``, ``name``, ``status``,
``launched_at`` (epoch seconds, float) and ``errors`` (a list of mappings,
each with at least ``id``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from engine.core import runstate
from engine.core.outcome import run_outcome
from engine.core.registrations import Registration

#: the stream of run and step transitions a store keeps (``transition``):
#: how many entries it holds at least (Redis trims with ``XADD MAXLEN ~``)
TRANSITIONS_MAXLEN = 10_000


class StoreError(Exception):
    """A store operation failed."""


class ConflictError(StoreError):
    """``save_run`` lost a compare-and-set race: reload and retry."""


class RunExists(StoreError):
    """``create_run`` for a wfid that is already stored."""


def index_fields(state: dict[str, Any]) -> tuple[str, str, str, float, Any]:
    """``(wfid, status, name, launched_at, errors)``: the keys of a run state
    a store reads to keep its indexes (see the module docstring), read here
    once for every store, each of which then encodes them its own way.
    ``errors`` is None when the run has none; a missing key is a StoreError."""
    try:
        return (
            state["wfid"],
            state["status"],
            state["name"],
            float(state["launched_at"]),
            state.get("errors") or None,
        )
    except KeyError as exc:
        raise StoreError(f"run state has no {exc.args[0]!r} key") from None


def transition(state: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """``(summary, outcome)``: what the transitions stream and the run list
    say of a run as it is saved: ``wfid``, ``name``, ``status``,
    ``outcome`` (``engine.core.outcome``), ``launched_at``, ``ended_at`` and
    ``positions`` (the steps that wait or failed: ``eid``, ``expid``,
    ``participant``, ``state``, ``since``). A save whose summary differs
    from the previous one is a transition: the store appends it to its
    stream (a status change is a ``run`` transition, anything else a
    ``step`` one). Cheap: one pass over the live expressions."""
    status = state["status"]
    outcome = run_outcome(status, state.get("fields") or {})
    positions = [
        {
            "eid": x.eid,
            "expid": x.node_id,
            "participant": x.participant,
            "state": x.state,
            "since": x.since,
        }
        for x in (runstate.positions(state) if "exprs" in state else ())
    ]
    return {
        "wfid": state["wfid"],
        "name": state["name"],
        "status": status,
        "outcome": outcome,
        "launched_at": state.get("launched_at"),
        "ended_at": state.get("ended_at"),
        "positions": positions,
    }, outcome


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One row of a run listing."""

    wfid: str
    name: str
    status: str
    launched_at: float


@dataclass(frozen=True, slots=True)
class Written:
    """A run as a save left it (``RunStore.save_run_written``): the new
    version, the token of that write, the state as stored (its JSON text),
    and the listeners' version read in the same step."""

    version: int
    token: str
    data: str
    listeners_version: int


class RunStore(ABC):
    """What the engine needs from a store (see the module docstring)."""

    #: whether the store outlives the engine that writes to it (a server);
    #: the engine keeps a crash-recovery outbox only in durable stores
    durable: bool = True
    #: whether the store has ``save_run_written`` (the engine then applies
    #: the next message of a run it saved last without reading the run)
    written_saves: bool = False

    # -- definitions ------------------------------------------------------
    @abstractmethod
    def put_definition(self, digest: str, source: str, filename: str | None = None) -> None:
        """Store a definition's source text under its digest (idempotent)."""

    @abstractmethod
    def get_definition(self, digest: str) -> tuple[str, str | None] | None:
        """``(source, filename)`` for a digest, or None."""

    # -- runs -------------------------------------------------------------
    @abstractmethod
    def create_run(self, state: dict[str, Any]) -> int:
        """Store a new run at version 1; RunExists if the wfid is taken."""

    @abstractmethod
    def load_run(self, wfid: str) -> tuple[dict[str, Any], int] | None:
        """``(state, version)``; the caller owns the returned state."""

    @abstractmethod
    def save_run(self, state: dict[str, Any], version: int) -> int:
        """Compare-and-set: store ``state`` if the stored version is still
        ``version``; return the new version, or raise ConflictError.
        Keeps the status, name and error indexes in the same atomic step."""

    def create_run_written(
        self, state: dict[str, Any], definition: tuple[str, str, str | None] | None = None
    ) -> Written:
        """``create_run`` (``RunExists`` alike), and with it the run's
        definition ``(digest, source, filename)`` when given, unless stored
        (``put_definition``); returns the run as written, as
        ``save_run_written`` does. Only where ``written_saves``."""
        raise NotImplementedError

    def save_run_written(
        self, state: dict[str, Any], version: int, last_write: str | None = None
    ) -> Written:
        """``save_run``, also refused (``ConflictError``) unless the run's
        last write is the one whose token is ``last_write`` (when given):
        a run saved over that very write is the run that write left,
        whatever happened to the wfid in between. Only where
        ``written_saves``."""
        raise NotImplementedError

    @abstractmethod
    def delete_run(self, wfid: str) -> None:
        """Forget a run and its index entries (no error if absent)."""

    def list_runs(
        self,
        status: str | None = None,
        name: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> list[RunSummary]:
        """Runs, newest launch first, filtered by status and/or name;
        served from indexes (never a scan of all runs).

        The paging arguments are normalised here, once for every store: a
        ``limit`` of zero or less is an empty page, a negative ``offset``
        counts as 0. The store's :meth:`_list_runs` serves the page."""
        if limit <= 0:
            return []
        return self._list_runs(status, name, max(0, offset), limit)

    @abstractmethod
    def _list_runs(
        self, status: str | None, name: str | None, offset: int, limit: int
    ) -> list[RunSummary]:
        """:meth:`list_runs` with ``offset >= 0`` and ``limit > 0``."""

    @abstractmethod
    def count_runs(self) -> dict[str, int]:
        """How many runs per status (every status of ``engine.core.states``)."""

    def list_errors(self, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Unresolved errors across runs, newest run first; each error
        mapping gets a ``wfid`` key added. Paged as :meth:`list_runs` is (the
        same normalisation); the store's :meth:`_list_errors` serves it."""
        if limit <= 0:
            return []
        return self._list_errors(max(0, offset), limit)

    @abstractmethod
    def _list_errors(self, offset: int, limit: int) -> list[dict[str, Any]]:
        """:meth:`list_errors` with ``offset >= 0`` and ``limit > 0``."""

    # -- timers -----------------------------------------------------------
    @abstractmethod
    def schedule_timer(self, timer_id: str, due: float, payload: dict[str, Any]) -> None:
        """Add or replace a timer (idempotent on timer_id)."""

    @abstractmethod
    def cancel_timer(self, timer_id: str) -> None:
        """Remove a timer (no error if absent)."""

    @abstractmethod
    def claim_due_timers(self, now: float, limit: int = 100) -> list[tuple[str, dict[str, Any]]]:
        """Atomically remove and return timers due at ``now`` or earlier,
        earliest first. However many callers race, each timer is returned
        to exactly one of them."""

    @abstractmethod
    def lease_due_timers(
        self, now: float, lease: float, limit: int = 100
    ) -> list[tuple[str, float, dict[str, Any]]]:
        """Like ``claim_due_timers``, but a claimed timer is not removed: it
        is moved to ``now + lease`` and returned as ``(id, leased due,
        payload)``. The caller removes it with ``ack_timer`` once its message
        is handled; if the caller dies first, the timer comes due again when
        the lease runs out. Atomic: each lease goes to exactly one caller."""

    @abstractmethod
    def ack_timer(self, timer_id: str, leased_due: float) -> bool:
        """Remove a leased timer, unless it was rescheduled since (its due
        time is no longer ``leased_due``); True if removed."""

    @abstractmethod
    def reschedule_timer(self, timer_id: str, due: float) -> bool:
        """Move an existing timer to ``due``; False (and nothing stored) when
        there is no such timer."""

    @abstractmethod
    def next_timer_due(self) -> float | None:
        """The earliest due time, or None when no timer is scheduled."""

    @abstractmethod
    def timers(self, wfid: str | None = None) -> list[tuple[str, float, dict[str, Any]]]:
        """``(timer_id, due, payload)`` for every timer (of one run when
        ``wfid`` is given: payloads carry a ``wfid`` key)."""

    # -- participant registrations ---------------------------------------
    @abstractmethod
    def register_participant(self, registration: Registration, position: int | None = None) -> None:
        """Add a registration at the end (or at ``position``); a registration
        with the same pattern is replaced in place."""

    @abstractmethod
    def unregister_participant(self, pattern: str) -> bool:
        """Remove a registration; True if there was one."""

    @abstractmethod
    def participants(self) -> list[Registration]:
        """Registrations in order (the first match wins)."""

    # -- listeners (``listen`` expressions waiting across runs) -----------
    @abstractmethod
    def add_listener(self, listener_id: str, spec: dict[str, Any]) -> None: ...

    @abstractmethod
    def remove_listener(self, listener_id: str) -> bool:
        """Remove a listener; True if this call removed it (use this to
        claim a listener: only one caller gets True)."""

    @abstractmethod
    def listeners(self) -> list[tuple[str, dict[str, Any]]]: ...

    @abstractmethod
    def listeners_version(self) -> int:
        """A counter that changes whenever a listener is added or removed
        (so an engine can cache ``listeners()``)."""

    def load_run_and_listeners_version(self, wfid: str) -> tuple[dict[str, Any], int, int] | None:
        """``load_run`` plus ``listeners_version`` (one round trip where the
        store can pipeline them)."""
        loaded = self.load_run(wfid)
        if loaded is None:
            return None
        return loaded[0], loaded[1], self.listeners_version()

    def deferred_timers(self) -> AbstractContextManager[None]:
        """A block in which this thread's ``schedule_timer`` and
        ``cancel_timer`` calls are sent together when it ends (also when it
        raises), in one atomic round trip where the store can; the engine
        carries out a message's (or a batch's) effects in one. Here: sent
        at once."""
        return nullcontext()

    def load_runs(
        self, wfids: list[str]
    ) -> tuple[dict[str, tuple[dict[str, Any], int] | None], int]:
        """``load_run`` of each of ``wfids`` (None for an unknown one) and
        ``listeners_version``: one round trip where the store can pipeline
        them (the engine's batches, ``Engine.deliver_many``)."""
        return {w: self.load_run(w) for w in wfids}, self.listeners_version()

    def save_runs(self, saves: list[tuple[dict[str, Any], int]]) -> list[int]:
        """``save_run`` of each ``(state, version)``, each its own
        compare-and-set: the new version, or 0 where that run's was lost
        (a conflict, or the run is gone). One round trip where the store
        can pipeline them."""
        out = []
        for state, version in saves:
            try:
                out.append(self.save_run(state, version))
            except ConflictError:
                out.append(0)
        return out

    def save_runs_written(
        self, saves: list[tuple[dict[str, Any], int, str | None]]
    ) -> list[Written | None]:
        """``save_run_written`` of each ``(state, version, last_write)``,
        each its own compare-and-set: the run as written, or None where that
        run's save was refused. One round trip where the store can pipeline
        them. Only where ``written_saves``."""
        out: list[Written | None] = []
        for state, version, last_write in saves:
            try:
                out.append(self.save_run_written(state, version, last_write))
            except ConflictError:
                out.append(None)
        return out

    # -- mutexes (``reserve``) --------------------------------------------
    @abstractmethod
    def acquire_mutex(self, name: str, holder: str) -> bool:
        """Take the mutex for ``holder`` (True), or queue ``holder`` behind
        the current holder (False). Idempotent: the holder asking again gets
        True; a queued holder asking again is not queued twice."""

    @abstractmethod
    def release_mutex(self, name: str, holder: str) -> str | None:
        """Release (when ``holder`` holds it) or leave the queue (when it
        waits). When released, the next waiter becomes the holder and is
        returned, so the caller can tell it."""

    @abstractmethod
    def mutex(self, name: str) -> tuple[str | None, list[str]]:
        """``(holder, waiters)`` of a mutex."""

    # -- engine workers ---------------------------------------------------
    @abstractmethod
    def engine_heartbeat(self, engine_id: str, ttl: float, info: dict[str, Any]) -> None:
        """Say that engine ``engine_id`` is alive for the next ``ttl`` seconds."""

    @abstractmethod
    def engine_alive(self, engine_id: str) -> bool:
        """Whether ``engine_id``'s last heartbeat has not yet run out."""

    @abstractmethod
    def engine_gone(self, engine_id: str) -> None:
        """An engine says goodbye (a clean stop): it is not alive any more."""

    @abstractmethod
    def engines(self) -> list[dict[str, Any]]:
        """The live engines' heartbeat info (each with ``id``)."""

    # -- lifecycle --------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
