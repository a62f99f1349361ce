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
but wait on a timer, a listen or a held workitem; it never sleeps through a
timer. Timers use the harness's virtual clock: ``h.advance(seconds)`` moves
it and fires what falls due. Pass ``store=`` (e.g. a ``RedisStore``) to run
the same test against Redis.

Waiting on a condition: ``h.wait_until(cond, timeout)`` returns ``cond()``'s
first true value, or raises ``TimeoutError`` after ``timeout`` seconds of the
harness's clock; ``run.wait_for(lambda r: ..., timeout)`` is the same for one
run (and returns the run). ``cond`` is called with the harness locked, so it
sees the runs, ``h.trace`` and ``h.pending`` between two steps, never in the
middle of one. On the virtual clock it moves the clock from timer to timer
(never further than ``timeout``) until ``cond()`` holds::

    run = h.launch(src)                    # steps: [wait: 1h, alpha]
    h.wait_until(lambda: "alpha" in h.trace, timeout=7200)

The wall clock: ``ProcessHarness(clock=time.time)`` (any clock that is not a
``VirtualClock``) runs the engine on its own, in a background *pump* thread
(``h.thread``), as the real runtime would: timers fire when they fall due,
participants are called, forgotten branches and replied workitems go on,
while the test only polls ``run.status`` or calls ``h.wait_until``::

    with ProcessHarness(clock=time.time) as h:
        h.register("alpha", lambda wi: h.trace.append("alpha"))
        run = h.launch(src)                # steps: [wait: 0.3s, alpha]
        assert run.wait().status == "running"   # at once: only a timer is left
        h.wait_until(lambda: run.status == "finished", timeout=10)

One lock serialises the engine: the pump thread takes it for each step (a
message, a participant call, the due timers), and the test thread for every
query (``run.status``...), operation (``run.cancel()``, ``h.reply(wi)``...)
and ``wait``; so they may be called from the test while the pump runs, and an
operation still carries out its consequences before it returns. Participants
run on the pump thread with the lock held: one that blocks (waiting on the
test) blocks the harness; hold its step with ``reply=False`` instead. An
exception the pump thread meets (an invalid Eiffel event, a run that never
stops working for ``busy_timeout`` seconds, a ``reply=False`` handler that
raises) stops the thread and is raised in the test by its next query,
operation, wait or ``close()``. ``close()`` (or leaving the ``with`` block)
stops and joins the thread; ``background=False`` keeps a real clock manual
(nothing progresses but in ``wait``, ``pump`` and the operations).
"""

from __future__ import annotations

import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from engine.core import effects as fx
from engine.core import messages, states
from engine.core.registrations import looks_like_regex
from engine.engine import Engine, Position, RunInfo
from engine.store.base import RunStore
from engine.store.memory import MemoryStore
from participants.workitem import Workitem

Handler = Callable[[Workitem], Any]
T = TypeVar("T")

#: the longest the pump thread sleeps without being woken (it wakes when a
#: timer falls due, or when work is queued from another thread)
IDLE_POLL = 0.1


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
    def info(self) -> RunInfo:
        with self.h._locked():
            return self.h.engine.run(self.wfid)

    @property
    def status(self) -> str:
        with self.h._locked():
            return self.h.engine.status(self.wfid)

    @property
    def fields(self) -> dict[str, Any]:
        with self.h._locked():
            return self.h.engine.fields(self.wfid)

    @property
    def errors(self) -> list[dict[str, Any]]:
        with self.h._locked():
            return self.h.engine.errors(self.wfid)

    @property
    def positions(self) -> list[Position]:
        with self.h._locked():
            return self.h.engine.positions(self.wfid)

    @property
    def tree(self) -> dict[str, Any] | None:
        with self.h._locked():
            return self.h.engine.tree(self.wfid)

    @property
    def state(self) -> dict[str, Any]:
        with self.h._locked():
            return self.h.engine.state(self.wfid)

    @property
    def ended(self) -> bool:
        return self.status in states.ENDED_RUN_STATES

    # -- waiting ----------------------------------------------------------------
    def wait(self, timeout: float = 10) -> HarnessRun:
        """Run until this run ends or stalls (see the module docstring)."""
        self.h.pump(timeout=timeout, until=lambda: self.ended)
        return self

    def wait_for(self, predicate: Callable[[HarnessRun], Any], timeout: float = 10) -> HarnessRun:
        """Wait until ``predicate(run)`` is true (``ProcessHarness.wait_until``)."""
        self.h.wait_until(lambda: predicate(self), timeout, what=f"{self!r}: {predicate}")
        return self

    # -- operations -------------------------------------------------------------
    def cancel(self, expid: str | None = None) -> None:
        with self.h._locked():
            self.h.engine.cancel(self.wfid, expid)
            self.h.pump()

    def kill(self) -> None:
        with self.h._locked():
            self.h.engine.kill(self.wfid)
            self.h.pump()

    def pause(self) -> None:
        with self.h._locked():
            self.h.engine.pause(self.wfid)
            self.h.pump()

    def resume(self) -> None:
        with self.h._locked():
            self.h.engine.resume(self.wfid)
            self.h.pump()

    def replay(self, fields: dict[str, Any] | None = None, error_id: str | None = None) -> None:
        with self.h._locked():
            self.h.engine.replay(self.wfid, error_id, fields)
            self.h.pump()

    def re_apply(self, expid: str, fields: dict[str, Any] | None = None) -> None:
        with self.h._locked():
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
        background: bool | None = None,
        busy_timeout: float = 10,
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
        # one lock for the engine, the queue and the lists above (the pump
        # thread and the test's thread both use them); ``_progress`` is
        # notified after each step, for ``wait_until``
        self._lock = threading.RLock()
        self._progress = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        #: seconds the pump thread may stay busy without a pause before it
        #: gives up (a run that never waits), as ``pump``'s ``timeout``
        self.busy_timeout = busy_timeout
        self.engine = Engine(
            self.store,
            dispatcher=self,
            send=self._send,
            clock=self.clock,
            on_echo=lambda wfid, text: self.trace.append(text),
            on_record=self._record,
            registrations_ttl=0.0,
        )
        if background is None:
            background = not isinstance(self.clock, VirtualClock)
        #: the pump thread that runs the engine on its own under a real clock
        #: (None on the virtual clock or with ``background=False``)
        self.thread: threading.Thread | None = None
        if background:
            self.thread = threading.Thread(
                target=_pump_forever,
                args=(weakref.ref(self), self._stop, self._wake),
                name=f"ProcessHarness-pump-{id(self):x}",
                daemon=True,
            )
            self.thread.start()

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

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        # a failure of the pump thread is raised unless the block already fails
        self.close(raise_failure=exc_type is None)

    def close(self, *, raise_failure: bool = True, timeout: float = 10) -> None:
        """Stop and join the pump thread (if any) and drop queued work; then
        raise what stopped the pump thread, if it has not been raised yet."""
        self._stop.set()
        self._wake.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(
                    f"the harness's pump thread did not stop within {timeout}s "
                    "(a participant that blocks?)"
                )
        with self._lock:
            self._queue.clear()
            failure, self._failure = self._failure, None
        if failure is not None and raise_failure:
            raise failure

    # -- locking and the pump thread ---------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the pump thread runs the engine on its own."""
        return self.thread is not None and self.thread.is_alive() and not self._stop.is_set()

    @contextmanager
    def _locked(self, timeout: float = -1) -> Iterator[None]:
        """Hold the harness's lock (raising what stopped the pump thread)."""
        if not self._lock.acquire(timeout=timeout):
            raise TimeoutError(f"the harness stayed busy for {timeout}s")
        try:
            self._raise_failure()
            yield
        finally:
            self._lock.release()

    def _raise_failure(self) -> None:
        failure = self._failure
        if failure is not None:
            self._failure = None
            raise failure

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            self._failure = exc
            self._progress.notify_all()

    def _background_step(self) -> float | None:
        """One step of the pump thread: None when it did some work, else
        how long it may sleep (until the next timer, at most ``IDLE_POLL``)."""
        with self._lock:
            if self._stop.is_set():
                return IDLE_POLL
            if self._step():
                self._progress.notify_all()
                return None
            due = self.store.next_timer_due()
            if due is None:
                return IDLE_POLL
            return min(max(due - self.clock(), 0.001), IDLE_POLL)

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
        with self._locked():
            self._handlers[queue] = (handler, reply)
            self.engine.register(pattern, queue, regex=regex)

    def unregister(self, pattern: str) -> None:
        with self._locked():
            self.engine.unregister(pattern)

    # Dispatcher protocol
    def dispatch(self, effect: fx.Dispatch) -> None:
        self._queue.append(("call", effect))
        self._wake.set()

    def cancel(self, effect: fx.CancelWorkitem) -> None:
        self.cancelled.append(effect)
        self.pending.pop(_key(effect.fei), None)

    def _send(self, msg: dict[str, Any]) -> None:
        self._queue.append(("msg", msg))
        self._wake.set()

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
        reply); ``error`` makes it an error reply. With ``pump=False`` the
        reply is only queued (the pump thread, ``wait`` or ``pump`` apply it)."""
        data = wi.to_dict() if isinstance(wi, Workitem) else wi
        with self._locked():
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
        with self._locked():
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
        with self._locked():
            wfid = self.engine.launch(source, fields, variables)
        self._wake.set()  # the pump thread: work queued, maybe a new timer
        return HarnessRun(self, wfid)

    def run(self, wfid: str) -> HarnessRun:
        return HarnessRun(self, wfid)

    # -- time and work ---------------------------------------------------------------
    def _step(self) -> bool:
        """Carry out the next queued item, else fire the due timers; False
        when there was nothing to do (call with the lock held)."""
        q = self._queue
        if not q:
            return self.engine.fire_due_timers(self.clock()) > 0
        kind, item = q.popleft()
        if kind == "msg":
            self.engine.deliver(item)
        else:
            self._call(item)
        return True

    def pump(self, timeout: float = 10, until: Callable[[], bool] | None = None) -> None:
        """Carry out queued work (messages, participant calls, due timers)
        until none is left, ``until()`` is true, or ``timeout`` seconds of
        real time pass (TimeoutError: a run that never stops working)."""
        deadline = time.monotonic() + timeout
        q = self._queue
        with self._locked(timeout):
            try:
                while True:
                    if until is not None and not q and until():
                        return
                    if not q:
                        if not self._step():  # fires the due timers
                            return
                        continue
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"the harness still had work after {timeout}s "
                            "(a loop that never waits?)"
                        )
                    self._step()
            finally:
                self._progress.notify_all()
                if threading.current_thread() is not self.thread:
                    self._wake.set()  # the pump thread: timers may have changed

    def wait_until(
        self, cond: Callable[[], T], timeout: float = 10, *, what: str | None = None
    ) -> T:
        """Wait until ``cond()`` is true and return its value; TimeoutError
        after ``timeout`` seconds of the harness's clock.

        ``cond`` is called with the harness locked, between steps. Under a
        real clock the pump thread (or, without one, this call) carries out
        the work meanwhile; on the virtual clock this call pumps, and moves
        the clock to the next timer whenever ``cond()`` is false and nothing
        else is left to do, never further than ``timeout`` seconds."""
        what = what or repr(cond)
        if isinstance(self.clock, VirtualClock):
            return self._wait_virtual(cond, timeout, what)
        if threading.current_thread() is self.thread:
            raise RuntimeError("wait_until() from a participant would wait for itself")
        deadline = time.monotonic() + timeout
        with self._locked(timeout):
            while True:
                if not self.running:
                    self.pump()  # no pump thread: this call does the work
                value = cond()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"still not true after {timeout}s: {what}")
                # releases the lock while it waits; woken by each step
                self._progress.wait(min(left, IDLE_POLL))
                self._raise_failure()

    def _wait_virtual(self, cond: Callable[[], T], timeout: float, what: str) -> T:
        clock = self.clock
        limit = clock.now + timeout
        while True:
            self.pump()
            with self._locked():
                value = cond()
            if value:
                return value
            due = self.next_timer()
            if due is None or clock.now + due > limit:
                nothing = "no timer is left" if due is None else "the next timer is later"
                raise TimeoutError(
                    f"still not true after {timeout}s of the virtual clock ({nothing}): {what}"
                )
            clock.advance(due)

    def advance(self, seconds: float) -> None:
        """Move the virtual clock and carry out whatever falls due."""
        if not isinstance(self.clock, VirtualClock):
            raise TypeError("advance() needs the harness's virtual clock")
        with self._locked():
            self.clock.advance(seconds)
            self.pump()

    def next_timer(self) -> float | None:
        """Seconds until the next timer is due (None without timers)."""
        with self._locked():
            due = self.store.next_timer_due()
            return None if due is None else max(due - self.clock(), 0.0)


def _pump_forever(
    harness: weakref.ref[ProcessHarness], stop: threading.Event, wake: threading.Event
) -> None:
    """The pump thread: steps the harness's engine until ``stop`` is set
    (or the harness is gone); sleeps when idle, until woken or a timer is
    due. What it raises is kept for the test (``ProcessHarness._fail``)."""
    busy_since: float | None = None
    while not stop.is_set():
        wake.clear()
        h = harness()
        if h is None:
            return
        try:
            sleep = h._background_step()
            if sleep is None:
                now = time.monotonic()
                busy_since = busy_since or now
                if now - busy_since > h.busy_timeout:
                    raise TimeoutError(
                        f"the harness still had work after {h.busy_timeout}s "
                        "(a loop that never waits?)"
                    )
            else:
                busy_since = None
        except BaseException as exc:  # kept for the test's thread
            h._fail(exc)
            return
        del h  # no strong reference while asleep
        if sleep is not None:
            wake.wait(sleep)
