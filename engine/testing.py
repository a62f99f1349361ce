"""Test a process without a broker, a Redis or a participant pool.

``ProcessHarness`` runs the real engine (``engine.engine.Engine`` over the
sans-IO interpreter) in-process, with Python callables as participants and
a virtual clock::

    from engine.testing import ProcessHarness

    with ProcessHarness() as h:
        h.register("alpha", lambda wi: h.trace.append("alpha"))
        h.register("build_.*", builder)            # a regex registration
        run = h.launch("processes/hello.yaml", fields={"who": "world"})
        run.wait(timeout=10)                       # until it ends or stalls
        assert run.status == "finished"
        assert h.trace == ["hello world", "alpha"]

A registered callable receives a ``participants.workitem.Workitem``; it may
change ``fields``, set ``result`` or ``command``, or raise (the exception
becomes an error of the run, with its traceback). Register with
``reply=False`` to keep workitems in ``h.pending`` and answer them later with
``h.reply(wi)``: that is how tests hold a step open (timeouts, cancel while
waiting, late and duplicate replies).

``run.wait()`` returns when the run has ended or when nothing is left to do
but wait on a timer, a listen or a held workitem. Timers use the harness's
virtual clock: ``h.advance(seconds)`` moves it and fires what falls due.
Pass ``store=`` (e.g. a ``RedisStore``) to run the same test against Redis.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.core import effects as fx
from engine.core import messages, states
from engine.core.registrations import looks_like_regex
from engine.engine import Engine, Position
from engine.store.base import RunStore
from engine.store.memory import MemoryStore
from participants.workitem import Workitem

Handler = Callable[[Workitem], Any]


def _key(fei: dict[str, Any]) -> str:
    """``h.pending``'s key for a workitem: ``<wfid>/<subid>``."""
    return f"{fei.get('wfid')}/{fei.get('subid')}"


class VirtualClock:
    """A clock that only moves when told to."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class HarnessRun:
    """A run launched by the harness."""

    def __init__(self, harness: ProcessHarness, wfid: str) -> None:
        self.h = harness
        self.wfid = wfid

    # -- state -------------------------------------------------------------
    @property
    def info(self):
        return self.h.engine.run(self.wfid)

    @property
    def status(self) -> str:
        return self.h.engine.status(self.wfid)

    @property
    def fields(self) -> dict[str, Any]:
        return self.h.engine.fields(self.wfid)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.h.engine.errors(self.wfid)

    @property
    def positions(self) -> list[Position]:
        return self.h.engine.positions(self.wfid)

    @property
    def tree(self) -> dict[str, Any] | None:
        return self.h.engine.tree(self.wfid)

    @property
    def state(self) -> dict[str, Any]:
        return self.h.engine.state(self.wfid)

    @property
    def ended(self) -> bool:
        return self.status in states.ENDED_RUN_STATES

    # -- waiting ----------------------------------------------------------------
    def wait(self, timeout: float = 10) -> HarnessRun:
        """Run until this run ends or stalls (see the module docstring)."""
        self.h.pump(timeout=timeout, until=lambda: self.ended)
        return self

    # -- operations -------------------------------------------------------------
    def cancel(self, expid: str | None = None) -> None:
        self.h.engine.cancel(self.wfid, expid)
        self.h.pump()

    def kill(self) -> None:
        self.h.engine.kill(self.wfid)
        self.h.pump()

    def pause(self) -> None:
        self.h.engine.pause(self.wfid)
        self.h.pump()

    def resume(self) -> None:
        self.h.engine.resume(self.wfid)
        self.h.pump()

    def replay(self, fields: dict[str, Any] | None = None, error_id: str | None = None) -> None:
        self.h.engine.replay(self.wfid, error_id, fields)
        self.h.pump()

    def re_apply(self, expid: str, fields: dict[str, Any] | None = None) -> None:
        self.h.engine.re_apply(self.wfid, expid, fields)
        self.h.pump()

    def __repr__(self) -> str:
        return f"HarnessRun({self.wfid!r})"


class ProcessHarness:
    """The real engine in-process, with callables as participants."""

    def __init__(
        self,
        store: RunStore | None = None,
        *,
        start: float | None = None,
        clock: Callable[[], float] | None = None,
        validate_events: bool = True,
    ) -> None:
        #: the virtual clock (or the real one when ``clock=time.time`` is given)
        self.clock: Any = clock if clock is not None else VirtualClock(start)
        self.store = store if store is not None else MemoryStore()
        #: echo lines and whatever participants append, in order
        self.trace: list[Any] = []
        #: traceability records (``engine.core.effects.Record``) in order
        self.records: list[fx.Record] = []
        #: the Eiffel event of each record (``engine.trace.activity``), each
        #: validated against its schema and the protocol's link rules as it
        #: is emitted (``validate_events``): an invalid one fails the call
        self.events: list[dict[str, Any]] = []
        self._event_types: dict[str, str] = {}
        self._validate_events = validate_events
        #: workitems held by participants registered with ``reply=False``,
        #: by ``<wfid>/<subid>``
        self.pending: dict[str, Workitem] = {}
        #: every workitem dispatched, in order (copies)
        self.dispatched: list[Workitem] = []
        #: cancel notices sent to participants
        self.cancelled: list[fx.CancelWorkitem] = []
        self._queue: deque[tuple[str, Any]] = deque()
        self._handlers: dict[str, tuple[Handler | None, bool]] = {}
        self.engine = Engine(
            self.store,
            dispatcher=self,
            send=self._send,
            clock=self.clock,
            on_echo=lambda wfid, text: self.trace.append(text),
            on_record=self._record,
            registrations_ttl=0.0,
        )

    def _record(self, record: fx.Record) -> None:
        self.records.append(record)
        if not self._validate_events:
            return
        from engine.trace import InvalidEvent, record_event
        from engine.trace import validate_event as validate

        event = record_event(record)
        self._event_types[event["meta"]["id"]] = event["meta"]["type"]
        try:
            validate(event, target_type=self._event_types.get)
        except InvalidEvent as exc:
            raise AssertionError(
                f"the engine emitted an invalid Eiffel event for {record}: "
                f"{exc.rule}: {exc}\n{event}"
            ) from None
        self.events.append(event)

    def __enter__(self) -> ProcessHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._queue.clear()

    # -- participants --------------------------------------------------------------
    def register(
        self,
        pattern: str,
        handler: Handler | None = None,
        *,
        reply: bool = True,
        regex: bool | None = None,
    ) -> None:
        """Register a participant name, or a regex (detected from its
        characters unless ``regex`` says), served by ``handler``."""
        if regex is None:
            regex = looks_like_regex(pattern)
        queue = f"harness.{pattern}"
        self._handlers[queue] = (handler, reply)
        self.engine.register(pattern, queue, regex=regex)

    def unregister(self, pattern: str) -> None:
        self.engine.unregister(pattern)

    # Dispatcher protocol
    def dispatch(self, effect: fx.Dispatch) -> None:
        self._queue.append(("call", effect))

    def cancel(self, effect: fx.CancelWorkitem) -> None:
        self.cancelled.append(effect)
        self.pending.pop(_key(effect.fei), None)

    def _send(self, msg: dict[str, Any]) -> None:
        self._queue.append(("msg", msg))

    def _call(self, effect: fx.Dispatch) -> None:
        wi = Workitem.copy_of(effect.workitem)
        self.dispatched.append(Workitem.copy_of(effect.workitem))
        handler, reply = self._handlers.get(effect.queue, (None, False))
        if not reply:
            if handler is not None:
                handler(wi)
            if not effect.forget:
                self.pending[_key(wi.fei)] = wi
            return
        try:
            if handler is not None:
                handler(wi)
        except Exception as exc:  # the participant raised: an error of the run
            if effect.forget:
                return
            data = wi.to_dict()
            data["error"] = {
                "message": str(exc) or type(exc).__name__,
                "class": type(exc).__name__,
                "traceback": traceback.format_exc(),
            }
            self._send(messages.reply(data, wi.wfid))
            return
        if not effect.forget:
            self._send(messages.reply(wi.to_dict(), wi.wfid))

    def reply(
        self,
        wi: Workitem | dict[str, Any],
        *,
        error: str | BaseException | None = None,
        pump: bool = True,
    ) -> None:
        """Reply for a held workitem (also usable to send a late or duplicate
        reply); ``error`` makes it an error reply."""
        data = wi.to_dict() if isinstance(wi, Workitem) else wi
        self.pending.pop(_key(data.get("fei") or {}), None)
        if error is not None:
            data = dict(data)
            data["error"] = {
                "message": str(error),
                "class": type(error).__name__
                if isinstance(error, BaseException)
                else "ParticipantError",
            }
        self._send(messages.reply(data))
        if pump:
            self.pump()

    def pending_for(self, participant: str) -> list[Workitem]:
        return [wi for wi in self.pending.values() if wi.participant_name == participant]

    # -- runs ----------------------------------------------------------------------
    def launch(
        self,
        source: str | Path | dict[str, Any],
        fields: dict[str, Any] | None = None,
        variables: dict[str, Any] | None = None,
    ) -> HarnessRun:
        """Launch a definition given as a path, YAML text or a dict."""
        if isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml")):
            source = Path(source)
        wfid = self.engine.launch(source, fields, variables)
        return HarnessRun(self, wfid)

    def run(self, wfid: str) -> HarnessRun:
        return HarnessRun(self, wfid)

    # -- time and work ---------------------------------------------------------------
    def pump(self, timeout: float = 10, until: Callable[[], bool] | None = None) -> None:
        """Carry out queued work (messages, participant calls, due timers)
        until none is left, ``until()`` is true, or ``timeout`` seconds of
        real time pass (TimeoutError: a run that never stops working)."""
        deadline = time.monotonic() + timeout
        q = self._queue
        while True:
            if until is not None and not q and until():
                return
            if not q:
                if self.engine.fire_due_timers(self.clock()) == 0:
                    return
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the harness still had work after {timeout}s (a loop that never waits?)"
                )
            kind, item = q.popleft()
            if kind == "msg":
                self.engine.deliver(item)
            else:
                self._call(item)

    def advance(self, seconds: float) -> None:
        """Move the virtual clock and carry out whatever falls due."""
        if not isinstance(self.clock, VirtualClock):
            raise TypeError("advance() needs the harness's virtual clock")
        self.clock.advance(seconds)
        self.pump()

    def next_timer(self) -> float | None:
        """Seconds until the next timer is due (None without timers)."""
        due = self.store.next_timer_due()
        return None if due is None else max(due - self.clock(), 0.0)
