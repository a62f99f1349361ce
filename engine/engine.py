"""The engine: the sans-IO interpreter driven against a store.

``Engine`` is the one adapter every front end uses (the harness, the CLI,
the Celery workers of the distributed runtime). For each message it loads
the run, applies the message with ``engine.core.interpreter``, stores the new
state with a compare-and-set (retrying on a lost race, so concurrent
messages for one run are serialised without a lock), and only then carries
out the effects.

Crash safety: the effects of a message are stored with the state, in the
run's *outbox* (entries ``[message id, engine id, time, effects]`` of the
last few minutes), in the same atomic write. When a message in the outbox
comes again, it is a duplicate (ignored) unless the engine that stored it is
gone (``engine_alive``, answered from worker heartbeats), in which case its
effects are carried out again: they are all idempotent on their ids, so
nothing happens twice that had happened. A launch is kept the same way
(``launch:<wfid>``).

Where messages go is pluggable: ``send`` is called with every message the
engine produces for a run (a mutex grant, a listen wake-up, a continue) and
``dispatcher`` receives participant dispatches and cancels. The harness
passes in-process callables; the runtime passes broker publishers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engine import jsontext
from engine.core import effects as fx
from engine.core import interpreter, messages, runstate, states
from engine.core.definition import Definition
from engine.core.listeners import woken
from engine.core.loader import load_definition
from engine.core.outcome import run_outcome
from engine.core.registrations import (
    Registration,
    Registrations,
    check_pattern,
    looks_like_regex,
)
from engine.store.base import ConflictError, RunExists, RunStore, RunSummary, Written

log = logging.getLogger("boss.engine")


class Dispatcher(Protocol):
    """Where participant workitems go."""

    def dispatch(self, effect: fx.Dispatch) -> None: ...

    def cancel(self, effect: fx.CancelWorkitem) -> None: ...


class EngineError(Exception):
    """An operation could not be carried out (unknown run, no such error...)."""


class UnknownRun(EngineError):
    pass


class Undecided(EngineError):
    """A redelivered message was applied by another engine that still looks
    alive: ask again after its heartbeat would have run out."""

    def __init__(self, owner: str) -> None:
        super().__init__(f"applied by engine {owner}, which still looks alive")
        self.owner = owner


@dataclass(slots=True)
class Position:
    """Where a live run currently is: a step that waits or failed."""

    eid: str
    expid: str
    name: str
    kind: str
    state: str
    since: float | None = None
    participant: str | None = None


@dataclass(slots=True)
class RunInfo:
    """A snapshot of one run, for queries."""

    wfid: str
    name: str
    revision: str | None
    status: str
    fields: dict[str, Any]
    launched_at: float
    updated_at: float
    ended_at: float | None
    errors: list[dict[str, Any]]
    positions: list[Position] = field(default_factory=list)
    definition: str = ""

    def as_dict(self, *, definition: bool = False) -> dict[str, Any]:
        """The JSON form ``boss show --json`` and the web UI's API give
        (the definition's source only when asked: it can be long)."""
        out = asdict(self)
        if not definition:
            del out["definition"]
        # what the run came to, not only whether it ended (engine.core.outcome)
        out["outcome"] = self.outcome
        return out

    @property
    def outcome(self) -> str:
        """``pending``, ``success``, ``failure``, ``error`` or ``cancelled``:
        a finished run whose fields say it failed is a ``failure``."""
        return run_outcome(self.status, self.fields)


def _noop(*_: Any) -> None:
    return None


class Engine:
    """Launch, operate and query runs over a ``RunStore``."""

    def __init__(
        self,
        store: RunStore,
        *,
        dispatcher: Dispatcher | None = None,
        send: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.time,
        on_echo: Callable[[str, str], None] | None = None,
        on_record: Callable[[fx.Record], None] | None = None,
        on_end: Callable[[str, str], None] | None = None,
        registrations_ttl: float = 1.0,
        max_conflict_retries: int = 1000,
        engine_alive: Callable[[str], bool] | None = None,
        engine_id: str | None = None,
        dispatch_lease: float = 0.0,
    ) -> None:
        #: this engine's identity, stamped on the outbox of what it stores;
        #: one Engine is used by one thread at a time (each thread of a
        #: worker has its own: ``<worker id>.<thread>``)
        self.id = engine_id or uuid.uuid4().hex[:16]
        #: whether another engine is still alive (the distributed runtime
        #: answers from worker heartbeats; in-process, every engine is)
        self.engine_alive = engine_alive or (lambda engine_id: True)
        self.store = store
        #: see ``Interpreter.dispatch_lease`` (the runtime turns it on for
        #: kombu's Redis transport)
        self.dispatch_lease = dispatch_lease
        self.dispatcher = dispatcher
        self.send = send or self.deliver
        self.clock = clock
        self.on_echo = on_echo or (lambda wfid, text: log.info("echo %s: %s", wfid, text))
        self.on_record = on_record or _noop
        self.on_end = on_end or _noop
        self.registrations_ttl = registrations_ttl
        self.max_conflict_retries = max_conflict_retries
        self._defs: OrderedDict[str, Definition] = OrderedDict()
        self._defs_lock = threading.Lock()
        self._regs: Registrations | None = None
        self._regs_at = 0.0
        self._listeners_cache: tuple[int, list[tuple[str, dict[str, Any]]]] | None = None
        #: how many compare-and-set races were lost and retried (a metric)
        self.conflicts = 0
        #: the runs this engine saved last, as it saved them (its JSON, with
        #: the version and the write's token), newest last: the next message
        #: of one is applied without reading the run first; the save is
        #: refused when another write came in between, and then the run is
        #: read (``written_misses`` counts those). Where the store can
        #: (``RunStore.written_saves``)
        self._written: OrderedDict[str, Written] = OrderedDict()
        self._written_chars = 0
        self._written_saves = bool(getattr(store, "written_saves", False))
        self.written_misses = 0
        #: ``"<wfid> <message id>"`` of the messages whose handling raised
        #: after their save (``_unsettle``)
        self._unsettled: OrderedDict[str, None] = OrderedDict()
        if sys.getrecursionlimit() < interpreter.RECURSION_LIMIT:
            # the process that runs the core needs it (cancelling a deep tree
            # recurses once per level); the core itself sets nothing
            sys.setrecursionlimit(interpreter.RECURSION_LIMIT)

    # -- definitions ------------------------------------------------------------

    def load(self, source: str | Path | dict[str, Any], filename: str | None = None) -> Definition:
        """Load (and validate) a definition and store it by content hash."""
        d = load_definition(source, filename)
        self.store.put_definition(d.digest, d.source, d.filename)
        self._cache_definition(d)
        return d

    def _cache_definition(self, d: Definition) -> None:
        with self._defs_lock:
            self._defs[d.digest] = d
            self._defs.move_to_end(d.digest)
            while len(self._defs) > 256:
                self._defs.popitem(last=False)

    def definition(self, digest: str) -> Definition:
        d = self._defs.get(digest)
        if d is not None:
            return d
        stored = self.store.get_definition(digest)
        if stored is None:
            raise EngineError(f"definition {digest} is not in the store")
        source, filename = stored
        d = load_definition(source, filename)
        self._cache_definition(d)
        return d

    # -- registrations ------------------------------------------------------------

    def registrations(self) -> Registrations:
        now = time.monotonic()
        if self._regs is None or now - self._regs_at > self.registrations_ttl:
            self._regs = Registrations(self.store.participants())
            self._regs_at = now
        return self._regs

    def register(
        self,
        pattern: str,
        queue: str | None = None,
        *,
        regex: bool | None = None,
        position: int | None = None,
        **options: Any,
    ) -> Registration:
        """Register a participant name (or regular expression) and its queue;
        ``InvalidPattern`` (a ``ValueError``) for a regular expression that
        does not compile (it would match nothing)."""
        if regex is None:
            regex = looks_like_regex(pattern)
        check_pattern(pattern, regex)
        reg = Registration(pattern, queue or pattern, regex, options)
        self.store.register_participant(reg, position)
        self._regs = None
        return reg

    def unregister(self, pattern: str) -> bool:
        self._regs = None
        return self.store.unregister_participant(pattern)

    # -- launching ------------------------------------------------------------------

    def launch(
        self,
        source: str | Path | dict[str, Any] | Definition,
        fields: dict[str, Any] | None = None,
        variables: dict[str, Any] | None = None,
        *,
        wfid: str | None = None,
        filename: str | None = None,
        recheck: bool = False,
        cause: list[str] | None = None,
    ) -> str:
        """Start a run; returns its wfid. ``cause`` lists the ids of the
        traceability events that caused it (its activity links them as
        CAUSE). Launching a ``wfid`` that exists
        raises ``RunExists``, except for a launch this or a dead engine
        stored (a redelivered launch: see ``deliver`` for ``recheck`` and
        ``Undecided``)."""
        # where the store can, the definition is stored with the run, in
        # the one round trip that creates it (``RunStore.create_run_written``)
        with_run = self._written_saves
        if isinstance(source, Definition):
            d = source
            if not with_run:
                self.store.put_definition(d.digest, d.source, d.filename)
            self._cache_definition(d)
        elif with_run:
            d = load_definition(source, filename)
            self._cache_definition(d)
        else:
            d = self.load(source, filename)
        wfid = wfid or new_wfid()

        def attempt() -> interpreter.Result:
            return interpreter.launch(
                d,
                wfid,
                now=self.clock(),
                fields=fields,
                variables=variables,
                registrations=self.registrations(),
                cause=cause,
                dispatch_lease=self.dispatch_lease,
            )

        res = attempt()
        if self.registrations_ttl > 0 and _unknown_participant(res.state, set()):
            self._regs = None  # cached for a second: look again, once
            res = attempt()
        mid = f"launch:{wfid}"
        # what this launch was, to tell the same launch again from another
        # launch that reuses the wfid
        what = [d.digest, fields, variables, *([cause] if cause else [])]
        fingerprint = hashlib.sha256(
            json.dumps(what, sort_keys=True, default=str).encode()
        ).hexdigest()[:16]
        res.state["lfp"] = fingerprint
        self._outbox(res.state, mid, res.effects)
        written: Written | None = None
        try:
            if with_run:
                written = self.store.create_run_written(res.state, (d.digest, d.source, d.filename))
            else:
                self.store.create_run(res.state)
        except RunExists:
            loaded = self.store.load_run(wfid)
            if loaded is None or loaded[0].get("lfp") != fingerprint:
                raise  # another launch has this wfid
            # the same launch again: a redelivery (carry out what a dead
            # engine owed, if its entry is still there) or a client's retry
            if loaded[0].get("outbox"):
                state = runstate.upgrade(loaded[0])
                launch = messages.as_launch_message({"wfid": wfid})
                self._redelivered(state, loaded[1], mid, launch, recheck)
            log.info("launch of %s again: already launched", wfid)
            return wfid
        if written is None:
            self._carry_out(wfid, res.effects)
            return wfid
        # the listeners' version came with the create: no read of them (the
        # run is not kept: its first reply reads it, as before)
        self._carry_out(wfid, res.effects, self._listeners(written.listeners_version))
        return wfid

    # -- messages ---------------------------------------------------------------------

    def deliver(self, msg: dict[str, Any], *, recheck: bool = False) -> str | None:
        """Apply one message to its run (``msg["wfid"]``), store the result,
        then carry out the effects. Returns a reason when it was ignored.

        A message already applied (its id is in the run's outbox) is a
        duplicate, unless the engine that applied it is gone, in which case
        its effects are carried out again. When that engine still looks
        alive but is not this one, ``Undecided`` is raised: the caller
        should deliver the message again, with ``recheck=True``, once a
        dead engine's heartbeat would have run out (a live one has carried
        out its effects by then, and the message is a duplicate)."""
        wfid = msg.get("wfid")
        if not isinstance(wfid, str):
            raise EngineError(f"message without a wfid: {msg!r}")
        mid = message_id(msg)
        fresh_registrations = False
        for _ in range(self.max_conflict_retries):
            # the run as this engine's last save left it, when it saved it
            # last: no read (the save is refused unless the run is still
            # that write, ``RunStore.save_run_written``)
            written = self._forget_written(wfid)
            listeners_version: int | None
            if written is not None:
                state, version = jsontext.loads(written.data), written.version
                last_write: str | None = written.token
                listeners_version = None
            else:
                loaded = self.store.load_run_and_listeners_version(wfid)
                if loaded is None:
                    reason = f"{msg.get('type')} for unknown run {wfid} ignored"
                    log.info(reason)
                    return reason
                state, version, listeners_version = loaded
                last_write = None
            state = runstate.upgrade(state)
            if mid is not None and state.get("outbox"):
                if last_write is not None and any(x[0] == mid for x in state["outbox"]):
                    continue  # a redelivery: decided on the run as read, not as kept
                try:
                    reason = self._redelivered(state, version, mid, msg, recheck)
                except ConflictError:
                    self.conflicts += 1
                    continue
                if reason is not None:
                    return reason
            d = self.definition(runstate.definition_digest(state))
            known = {e["id"] for e in runstate.errors(state)}
            res = interpreter.handle(
                d,
                state,
                msg,
                now=self.clock(),
                registrations=self.registrations(),
                dispatch_lease=self.dispatch_lease,
            )
            if (
                not fresh_registrations
                and self.registrations_ttl > 0
                and _unknown_participant(res.state, known)
            ):
                # registrations are cached for a second: one registered
                # since may be what this step needs; look again, once
                self._regs = None
                fresh_registrations = True
                continue
            if res.ignored is not None and last_write is not None:
                continue  # decided on the run as kept, and nothing saved to check it: read it
            saved: Written | None = None
            try:
                if res.ignored is None:
                    self._outbox(res.state, mid, res.effects)
                    try:
                        if self._written_saves:
                            saved = self.store.save_run_written(res.state, version, last_write)
                            listeners_version = saved.listeners_version
                        else:
                            self.store.save_run(res.state, version)
                    except ConflictError:
                        if last_write is not None:
                            self.written_misses += 1  # moved on since: read it
                        else:
                            self.conflicts += 1
                        continue
                assert listeners_version is not None
                self._carry_out(wfid, res.effects, self._listeners(listeners_version))
            except Exception:
                self._unsettle(wfid, [mid])
                raise
            if saved is not None:
                self._remember(wfid, saved)
            return res.ignored
        raise EngineError(f"gave up on {wfid} after {self.max_conflict_retries} lost races")

    def _forget_written(self, wfid: str) -> Written | None:
        """Take the run kept as saved out of ``_written`` (None: not kept)."""
        written = self._written.pop(wfid, None)
        if written is not None:
            self._written_chars -= len(written.data)
        return written

    def _remember(self, wfid: str, written: Written) -> None:
        """Keep the run as this engine's save left it (``deliver``): at most
        ``WRITTEN_RUNS`` runs and ``WRITTEN_CHARS`` characters of state,
        the oldest dropped first."""
        kept = self._written
        old = kept.pop(wfid, None)
        if old is not None:
            self._written_chars -= len(old.data)
        if len(written.data) > WRITTEN_CHARS // 4:
            return  # a big run is read each time rather than crowd out the rest
        kept[wfid] = written
        self._written_chars += len(written.data)
        while len(kept) > WRITTEN_RUNS or self._written_chars > WRITTEN_CHARS:
            _, dropped = kept.popitem(last=False)
            self._written_chars -= len(dropped.data)

    def _outbox(self, state: dict[str, Any], mid: str | None, effects: list[fx.Effect]) -> None:
        """Keep this message's effects in the run's outbox (with the
        entries of other recent messages: one engine may store a message
        and die while another applies the run's next one)."""
        self._outbox_many(state, [(mid, effects)])

    def _outbox_many(
        self, state: dict[str, Any], applied: list[tuple[str | None, list[fx.Effect]]]
    ) -> None:
        """``_outbox`` for the messages of one batch applied to one run,
        stored together: an entry for each (in the order applied)."""
        if not self.store.durable:
            state.pop("outbox", None)
            return
        now = self.clock()
        # this engine's own older entries are done with: it carries out a
        # message's (or a batch's) effects before it takes its next (one
        # engine, one thread); other engines' entries stay until they age out
        kept = [
            x for x in state.get("outbox") or () if x[1] != self.id and now - x[2] < OUTBOX_MAX_AGE
        ]
        for mid, effects in applied:
            durable = [fx.to_list(e) for e in effects if type(e) in _DURABLE]
            if mid is not None and durable:
                kept.append([mid, self.id, now, durable])
        state["outbox"] = kept[-OUTBOX_MAX_ENTRIES:] or None

    def deliver_many(self, msgs: list[dict[str, Any]]) -> tuple[dict[int, str | None], list[int]]:
        """Apply a batch of messages (for one run or several) the way
        ``deliver`` applies one, in fewer round trips: every run loaded in
        one pipelined read (but the runs this engine saved last, taken as
        it saved them, as ``deliver`` takes them), each run's messages
        applied in order to its state with the core, every changed run
        stored with its own compare-and-set in one pipelined write (each
        message's effects in the outbox, as ``deliver`` keeps them; a kept
        run's save refused when anything wrote it since), then the effects
        carried out in order, and the runs kept as saved.

        Returns ``(done, rest)``: ``done`` maps the index of each message
        applied (or ignored) to what ``deliver`` would have returned;
        ``rest`` lists the indexes the caller must ``deliver`` one by one,
        nothing of theirs done: the messages of a run whose save lost a
        race, that already has one of them in its outbox (a redelivery), that
        met a participant not registered yet, or whose core raised, and of a
        kept run whose save was refused or that had only messages to ignore
        (decided on the run as kept, with no save to check it)."""
        done: dict[int, str | None] = {}
        rest: list[int] = []
        by_run: dict[str, list[int]] = {}
        for i, msg in enumerate(msgs):
            wfid = msg.get("wfid")
            if isinstance(wfid, str):
                by_run.setdefault(wfid, []).append(i)
            else:
                rest.append(i)  # deliver raises its error
        if not by_run:
            return done, rest
        # the runs this engine saved last are applied as it saved them (no
        # read; their saves are refused when anything wrote them since, as
        # in ``deliver``); the others are read, all in one round trip
        kept: dict[str, Written] = {}
        for wfid in by_run:
            written = self._forget_written(wfid)
            if written is not None and self._written_saves:
                kept[wfid] = written
        unkept = [w for w in by_run if w not in kept]
        listeners_version: int | None = None
        loaded: dict[str, tuple[dict[str, Any], int] | None] = {}
        if unkept:
            loaded, listeners_version = self.store.load_runs(unkept)
        for wfid, written in kept.items():
            loaded[wfid] = (jsontext.loads(written.data), written.version)
        now = self.clock()
        registrations = self.registrations()
        staged: list[tuple[str, list[int], list[interpreter.Result]]] = []
        saves: list[tuple[dict[str, Any], int, str | None]] = []
        for wfid, idxs in by_run.items():
            got = loaded.get(wfid)
            if got is None:
                for i in idxs:
                    reason = f"{msgs[i].get('type')} for unknown run {wfid} ignored"
                    log.info(reason)
                    done[i] = reason
                continue
            state = runstate.upgrade(got[0])
            mids = [message_id(msgs[i]) for i in idxs]
            outbox = {x[0] for x in state.get("outbox") or ()}
            if outbox and any(m in outbox for m in mids if m is not None):
                rest.extend(idxs)
                continue
            try:
                d = self.definition(runstate.definition_digest(state))
                known = {e["id"] for e in runstate.errors(state)}
                results = []
                for i in idxs:
                    res = interpreter.handle(
                        d,
                        state,
                        msgs[i],
                        now=now,
                        registrations=registrations,
                        dispatch_lease=self.dispatch_lease,
                    )
                    results.append(res)
                    state = res.state
            except Exception:
                log.warning("run %s: batch apply failed; one by one", wfid, exc_info=True)
                rest.extend(idxs)
                continue
            if self.registrations_ttl > 0 and _unknown_participant(state, known):
                rest.extend(idxs)  # deliver looks at fresh registrations
                continue
            applied = [
                (m, r.effects) for m, r in zip(mids, results, strict=True) if r.ignored is None
            ]
            last_write = kept[wfid].token if wfid in kept else None
            if not applied and last_write is not None:
                rest.extend(idxs)  # decided on the run as kept, nothing saved to check it
                continue
            if applied:
                self._outbox_many(state, applied)
                saves.append((state, got[1], last_write))
            staged.append((wfid, idxs, results))
        lost: set[str] = set()  # runs whose save lost a race: nothing of theirs stored
        try:
            if self._written_saves:
                saved = self.store.save_runs_written(saves) if saves else []
                for w in saved:
                    if w is not None:
                        listeners_version = w.listeners_version
                versions: Any = iter(saved)
            else:
                versions = iter(self.store.save_runs([s[:2] for s in saves]) if saves else ())
            listeners: _Listeners = None
            fetched = False
            with self.store.deferred_timers():  # every run's timer writes at once
                for wfid, idxs, results in staged:
                    written = None
                    if any(r.ignored is None for r in results):
                        written = next(versions)
                        if not written:
                            if wfid in kept:
                                self.written_misses += 1  # moved on since: read it
                            else:
                                self.conflicts += 1
                            lost.add(wfid)
                            rest.extend(idxs)
                            continue
                    for i, res in zip(idxs, results, strict=True):
                        if not fetched:
                            assert listeners_version is not None
                            listeners, fetched = self._listeners(listeners_version), True
                        listeners = _carry_out_with(self, wfid, res.effects, listeners)
                        if res.ignored is not None:
                            log.info(res.ignored)
                        done[i] = res.ignored
                    if isinstance(written, Written):
                        self._remember(wfid, written)
        except Exception:
            # what was stored may not all have been carried out
            for wfid, idxs, _ in staged:
                if wfid not in lost:
                    self._unsettle(wfid, [message_id(msgs[i]) for i in idxs])
            raise
        return done, rest

    def _unsettle(self, wfid: str, mids: list[str | None]) -> None:
        """Remember messages whose save or effects raised here: their
        outbox entries are this engine's, stored or perhaps stored (a save
        whose reply was lost, or that replication did not acknowledge), but
        their effects may not have been carried out. When one comes again
        to this engine, its effects are carried out again (``_redelivered``)
        instead of it being taken for a duplicate."""
        for mid in mids:
            if mid is not None:
                key = f"{wfid} {mid}"
                self._unsettled[key] = None
                self._unsettled.move_to_end(key)
        while len(self._unsettled) > 1000:
            self._unsettled.popitem(last=False)

    def _redelivered(
        self, state: dict[str, Any], version: int, mid: str, msg: dict[str, Any], recheck: bool
    ) -> str | None:
        """None when ``mid`` is not in the outbox; else a reason, after
        taking over the effects of a dead engine (see ``deliver``)."""
        entry = next((x for x in state["outbox"] if x[0] == mid), None)
        if entry is None:
            return None
        owner = entry[1]
        kind = msg.get("type")
        unsettled = f"{state['wfid']} {mid}"
        if owner == self.id and unsettled in self._unsettled:
            # this engine raised after storing it: carry its effects out now
            self._carry_out(state["wfid"], [fx.from_list(x) for x in entry[3]])
            del self._unsettled[unsettled]
            reason = f"{kind} {mid} came again after its handling failed here: effects sent"
        elif owner == self.id or (owner != self.id and self.engine_alive(owner)):
            if owner != self.id and not recheck:
                raise Undecided(owner)
            reason = f"duplicate {kind} {mid} ignored: already applied"
        else:
            entry[1] = self.id  # take it over first, then carry it out
            self.store.save_run(state, version)
            self._carry_out(state["wfid"], _still_due(state, [fx.from_list(x) for x in entry[3]]))
            reason = (
                f"{kind} {mid} was applied by engine {owner}, which is gone: "
                "its effects were sent again"
            )
        log.info(reason)
        return reason

    def _listeners(self, version: int) -> list[tuple[str, dict[str, Any]]]:
        """The listeners, re-read only when their version changed."""
        cached = self._listeners_cache
        if cached is None or cached[0] != version:
            cached = self._listeners_cache = (version, self.store.listeners())
        return cached[1]

    def _carry_out(
        self,
        wfid: str,
        effects: list[fx.Effect],
        listeners: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        """Carry out effects in order. ``listeners`` is the listener list
        when the caller already fetched it (one fetch per message)."""
        _carry_out_with(self, wfid, effects, listeners)

    # One method per effect type (``_CARRY_OUT``): ``(wfid, effect,
    # listeners) -> listeners``.

    def _do_dispatch(self, wfid: str, e: fx.Dispatch, listeners: _Listeners) -> _Listeners:
        if self.dispatcher is None:
            raise EngineError("no dispatcher configured")
        self.dispatcher.dispatch(e)
        return self._wake(listeners, "apply", wfid, e.workitem)

    def _do_reply_applied(self, wfid: str, e: fx.ReplyApplied, listeners: _Listeners) -> _Listeners:
        return self._wake(listeners, "reply", wfid, e.workitem)

    def _wake(
        self, listeners: _Listeners, upon: str, wfid: str, workitem: dict[str, Any]
    ) -> _Listeners:
        """Wake the listeners ``workitem`` matches (the list fetched once)."""
        if listeners is None:
            listeners = self.store.listeners()
        if listeners:
            self._wake_listeners(listeners, upon, wfid, workitem)
        return listeners

    def _do_add_listener(self, wfid: str, e: fx.AddListener, listeners: _Listeners) -> _Listeners:
        self.store.add_listener(e.listener_id, e.spec)
        return None  # changed: fetch again when next needed

    def _do_remove_listener(
        self, wfid: str, e: fx.RemoveListener, listeners: _Listeners
    ) -> _Listeners:
        self.store.remove_listener(e.listener_id)
        return None  # changed: fetch again when next needed

    def _do_record(self, wfid: str, e: fx.Record, listeners: _Listeners) -> _Listeners:
        self.on_record(e)
        return listeners

    def _do_schedule_timer(
        self, wfid: str, e: fx.ScheduleTimer, listeners: _Listeners
    ) -> _Listeners:
        self.store.schedule_timer(e.timer_id, e.due, e.message)
        return listeners

    def _do_cancel_timer(self, wfid: str, e: fx.CancelTimer, listeners: _Listeners) -> _Listeners:
        self.store.cancel_timer(e.timer_id)
        return listeners

    def _do_cancel_workitem(
        self, wfid: str, e: fx.CancelWorkitem, listeners: _Listeners
    ) -> _Listeners:
        if self.dispatcher is not None:
            self.dispatcher.cancel(e)
            reg = self.registrations().match(e.participant)
            if reg is not None and reg.options.get("ruote"):
                # a python-ruote-amqp client reads only its work queue
                send = getattr(self.dispatcher, "cancel_ruote", None)
                if send is not None:
                    send(e)
        return listeners

    def _do_echo(self, wfid: str, e: fx.Echo, listeners: _Listeners) -> _Listeners:
        self.on_echo(wfid, e.text)
        return listeners

    def _do_acquire_mutex(self, wfid: str, e: fx.AcquireMutex, listeners: _Listeners) -> _Listeners:
        if self.store.acquire_mutex(e.name, e.holder):
            self._grant(e.name, e.holder)
        return listeners

    def _do_release_mutex(self, wfid: str, e: fx.ReleaseMutex, listeners: _Listeners) -> _Listeners:
        nxt = self.store.release_mutex(e.name, e.holder)
        if nxt is not None:
            self._grant(e.name, nxt)
        return listeners

    def _do_continue(self, wfid: str, e: fx.Continue, listeners: _Listeners) -> _Listeners:
        self.send(messages.continue_(e.wfid))
        return listeners

    def _do_log(self, wfid: str, e: fx.Log, listeners: _Listeners) -> _Listeners:
        log.log(
            logging.WARNING if e.level == "warning" else logging.INFO, "%s: %s", wfid, e.message
        )
        return listeners

    def _do_run_ended(self, wfid: str, e: fx.RunEnded, listeners: _Listeners) -> _Listeners:
        self.on_end(e.wfid, e.status)
        return listeners

    def _grant(self, mutex: str, holder: str) -> None:
        wfid, _, eid = holder.partition("/")
        self.send(messages.mutex(wfid, eid, mutex))

    def _wake_listeners(
        self,
        listeners: list[tuple[str, dict[str, Any]]],
        upon: str,
        wfid: str,
        workitem: dict[str, Any],
    ) -> None:
        for lid, spec in woken(listeners, upon, wfid, workitem):
            if self.store.remove_listener(lid):  # claimed: no other engine wakes it
                self.send(messages.listen(spec["wfid"], spec["eid"], workitem))

    def fire_due_timers(self, now: float | None = None, limit: int = 100) -> int:
        """Claim the timers due at ``now`` and deliver their messages."""
        claimed = self.store.claim_due_timers(self.clock() if now is None else now, limit)
        for _, message in claimed:
            self.send(message)
        return len(claimed)

    # -- operations (section 6) ------------------------------------------------------

    def _op(self, msg: messages.Message) -> None:
        """Send an operation's message (``engine.core.messages.operation``)
        to an existing run."""
        wfid = msg["wfid"]
        if self.store.load_run(wfid) is None:
            raise UnknownRun(f"no run {wfid}")
        self.send(msg)

    def cancel(self, wfid: str, expid: str | None = None) -> None:
        """Cancel the run (``on_cancel`` handlers run), or one step of it."""
        self._op(messages.operation("cancel", wfid, eid=expid))

    def kill(self, wfid: str) -> None:
        """End the run at once, without ``on_cancel`` handlers."""
        self._op(messages.operation("kill", wfid))

    def pause(self, wfid: str) -> None:
        self._op(messages.operation("pause", wfid))

    def resume(self, wfid: str) -> None:
        self._op(messages.operation("resume", wfid))

    def replay(
        self, wfid: str, error_id: str | None = None, fields: dict[str, Any] | None = None
    ) -> None:
        """Re-apply the failing step of an error (the first one when no id is
        given), with ``fields`` merged over its workitem."""
        info = self.run(wfid)
        if not info.errors:
            raise EngineError(f"run {wfid} has no error to replay")
        if error_id is not None and not any(
            e["id"] == error_id or e["eid"] == error_id for e in info.errors
        ):
            raise EngineError(f"run {wfid} has no error {error_id}")
        self.send(messages.operation("replay", wfid, error_id=error_id, fields=fields))

    def re_apply(self, wfid: str, expid: str, fields: dict[str, Any] | None = None) -> None:
        """Re-run a step of a live run (by eid or expid)."""
        self._op(messages.operation("reapply", wfid, eid=expid, fields=fields))

    # -- queries ---------------------------------------------------------------------

    def state(self, wfid: str) -> dict[str, Any]:
        """The run's state, in the current format (``engine.core.runstate``:
        read it through that module's accessors)."""
        loaded = self.store.load_run(wfid)
        if loaded is None:
            raise UnknownRun(f"no run {wfid}")
        return runstate.upgrade(loaded[0])

    def run(self, wfid: str) -> RunInfo:
        st = self.state(wfid)
        return RunInfo(
            wfid=st["wfid"],
            name=st["name"],
            revision=st.get("revision"),
            status=runstate.status(st),
            fields=runstate.fields(st),
            launched_at=st["launched_at"],
            updated_at=st["updated_at"],
            ended_at=st.get("ended_at"),
            errors=[{k: v for k, v in e.items() if k != "fields"} for e in runstate.errors(st)],
            positions=self._positions(st),
            definition=runstate.definition_digest(st),
        )

    def status(self, wfid: str) -> str:
        return runstate.status(self.state(wfid))

    def fields(self, wfid: str) -> dict[str, Any]:
        return self.run(wfid).fields

    def errors(self, wfid: str) -> list[dict[str, Any]]:
        return self.run(wfid).errors

    def positions(self, wfid: str) -> list[Position]:
        return self._positions(self.state(wfid))

    def _positions(self, st: dict[str, Any]) -> list[Position]:
        out = []
        d = None
        for x in runstate.positions(st):
            if d is None:
                d = self.definition(runstate.definition_digest(st))
            kind, name = x.describe(d)
            out.append(Position(x.eid, x.node_id, name, kind, x.state, x.since, x.participant))
        return out

    def tree(self, wfid: str) -> dict[str, Any] | None:
        """The live expression tree: nested ``{eid, expid, kind, name,
        state, children}`` from the root (None when the run has ended)."""
        st = self.state(wfid)
        return runstate.tree(st, self.definition(runstate.definition_digest(st)))

    def list_runs(
        self, status: str | None = None, name: str | None = None, offset: int = 0, limit: int = 100
    ) -> list[RunSummary]:
        return self.store.list_runs(status=status, name=name, offset=offset, limit=limit)

    def count_runs(self) -> dict[str, int]:
        return self.store.count_runs()

    def list_errors(self, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in e.items() if k != "fields"}
            for e in self.store.list_errors(offset, limit)
        ]


#: how many runs an engine keeps as it saved them (``Engine._written``)
WRITTEN_RUNS = 256
#: and at most this many characters of their states (a run whose state
#: takes more than a quarter of it is not kept)
WRITTEN_CHARS = 32 << 20


def _still_due(state: dict[str, Any], effects: list[fx.Effect]) -> list[fx.Effect]:
    """The effects of an outbox entry taken over from a gone engine, but
    its dispatches whose step waits for them no more: the step's reply came
    and was applied since (the run went on, or ended), so the workitem was
    out and done; sending it again would have another participant
    instance do the step a second time. A step still waiting gets its
    workitem again (its first may never have reached the broker)."""
    due = []
    for effect in effects:
        if isinstance(effect, fx.Dispatch):
            eid = (effect.workitem.get("fei") or {}).get("subid")
            live = runstate.expression(state, eid) if isinstance(eid, str) else None
            if live is None or live.state not in (states.WAITING, states.CANCELLING):
                log.info(
                    "%s %s: not dispatched again, its step waits for it no more",
                    state.get("wfid"),
                    eid,
                )
                continue
        due.append(effect)
    return due


#: how long, and how many, outbox entries a run keeps: a redelivery comes
#: within the broker's redelivery delay plus a heartbeat's time to run out
OUTBOX_MAX_AGE = 300.0
OUTBOX_MAX_ENTRIES = 64

#: effects kept in a run's outbox (all but echo lines and logs)
_DURABLE = frozenset(set(fx.EFFECT_TYPES.values()) - {fx.Echo, fx.Log})


def _unknown_participant(state: dict[str, Any], known: set[str]) -> bool:
    """Whether ``state`` has a new error for a participant nobody registered."""
    return any(
        e["class"] == "UnknownParticipant" and e["id"] not in known for e in runstate.errors(state)
    )


#: the listener list a message's effects share (None: not fetched yet)
_Listeners = list[tuple[str, dict[str, Any]]] | None

#: how each effect type is carried out (``Engine._carry_out``)
_CARRY_OUT: dict[type, Callable[[Engine, str, Any, _Listeners], _Listeners]] = {
    fx.Dispatch: Engine._do_dispatch,
    fx.ReplyApplied: Engine._do_reply_applied,
    fx.CancelWorkitem: Engine._do_cancel_workitem,
    fx.ScheduleTimer: Engine._do_schedule_timer,
    fx.CancelTimer: Engine._do_cancel_timer,
    fx.AddListener: Engine._do_add_listener,
    fx.RemoveListener: Engine._do_remove_listener,
    fx.AcquireMutex: Engine._do_acquire_mutex,
    fx.ReleaseMutex: Engine._do_release_mutex,
    fx.Echo: Engine._do_echo,
    fx.Record: Engine._do_record,
    fx.Log: Engine._do_log,
    fx.Continue: Engine._do_continue,
    fx.RunEnded: Engine._do_run_ended,
}


def _carry_out_with(
    engine: Engine, wfid: str, effects: list[fx.Effect], listeners: _Listeners
) -> _Listeners:
    """Carry out ``effects`` in order; returns the listener list as the
    last effect left it (each effect returns it, fetched at most once per
    message and dropped when an effect changes the listeners)."""
    table = _CARRY_OUT
    with engine.store.deferred_timers():
        for e in effects:
            listeners = table[type(e)](engine, wfid, e, listeners)
    return listeners


#: the identity of a message, for spotting a redelivery (``deliver``)
message_id = messages.message_id


def new_wfid() -> str:
    """A run id: time-ordered prefix plus randomness (``20261121-abcd1234ef``)."""
    return time.strftime("%Y%m%d-", time.gmtime()) + uuid.uuid4().hex[:12]
