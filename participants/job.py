"""One workitem in hand: the handler running in its own thread.

The runtime's main thread owns the broker connection (kombu connections are
not thread-safe, and heartbeats must keep flowing while a build runs for
hours), so the handler runs in a worker thread and the main thread only
looks at ``done`` (and takes the lines of its step log,
``participants.steplog``, captured from that thread). The reply is built
here, after the handler returned, and is always a valid workitem naming
the step it answers: a handler that breaks the workitem or stores
something that is not JSON gets an error reply instead of a reply the
engine would have to dead-letter.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from engine import jsontext
from engine.core import messages
from engine.wire import Malformed, dumps, iso_now, validate
from participants import steplog
from participants.handler import LifecycleControl
from participants.steplog import StepLog
from participants.workitem import Workitem

__all__ = ["HANDLER_THREADS", "HandlerThreads", "Job", "error_of"]

log = logging.getLogger("boss.participant")


class HandlerThreads:
    """The threads handlers run on, kept for the next job: handing a job to
    a waiting thread costs about a third of starting a thread (0.045
    against 0.12 ms here: ``docs/benchmarks.md``, fourth slice), on every
    step. A thread whose handler still runs (a cancelled step that has not
    returned yet) is busy: the next job gets another thread, started for
    it. A thread left without a job for ``idle`` seconds ends; at most
    ``keep`` wait at once. (Handlers see no difference, unless they keep
    ``threading.local`` state: it now lives on from one step to a later
    one.)"""

    def __init__(self, idle: float = 60.0, keep: int = 2) -> None:
        self.idle = idle
        self.keep = keep
        self._lock = threading.Lock()
        #: the job slots of the threads waiting for a job, last in first out
        self._waiting: list[
            queue.SimpleQueue[tuple[Callable[[], None], str, Callable[[], None]]]
        ] = []
        #: threads started (for tests)
        self.started = 0

    def run(self, target: Callable[[], None], name: str, then: Callable[[], None]) -> None:
        """Call ``target()`` on a handler thread named ``name``, then
        ``then()`` (once the thread is free for the next job). ``Job._run``
        catches what the handler raises; should ``target`` itself raise, it
        is logged and its thread ends after ``then()``."""
        with self._lock:
            slot = self._waiting.pop() if self._waiting else None
        if slot is not None:
            slot.put((target, name, then))
            return
        slot = queue.SimpleQueue()
        slot.put((target, name, then))
        self.started += 1
        threading.Thread(target=self._serve, args=(slot,), name=name, daemon=True).start()

    def _serve(
        self, slot: queue.SimpleQueue[tuple[Callable[[], None], str, Callable[[], None]]]
    ) -> None:
        me = threading.current_thread()
        target, name, then = slot.get()
        while True:
            me.name = name
            ok = False
            try:
                target()
                ok = True
            except BaseException:
                log.exception("a handler thread's job raised: the thread ends")
            finally:
                with self._lock:
                    # free before ``then``: the job after this one (started
                    # the moment ``then`` says this one is done) finds it;
                    # a target that raised ends its thread
                    keep = ok and len(self._waiting) < self.keep
                    if keep:
                        self._waiting.append(slot)
                then()
            if not keep:
                return
            try:
                target, name, then = slot.get(timeout=self.idle)
            except queue.Empty:
                with self._lock:
                    if slot in self._waiting:
                        self._waiting.remove(slot)
                        return
                # handed a job just now (taken off ``_waiting`` before the put)
                target, name, then = slot.get()


#: the handler threads of this process
HANDLER_THREADS = HandlerThreads()


def error_of(exc: BaseException) -> dict[str, Any]:
    """The ``error`` object of a reply for a handler that raised."""
    return {
        "message": str(exc),
        "class": type(exc).__name__,
        "traceback": "".join(traceback.format_exception(exc)),
    }


class Job:
    """A workitem being handled, and what the runtime knows about it."""

    def __init__(
        self,
        handler: Any,
        data: dict[str, Any],
        *,
        instance: str,
        reply_to: str,
        message: Any = None,
        generation: int = 0,
        trace: bool = False,
        dump: bool = False,
        steplog: StepLog | None = None,
    ) -> None:
        self.handler = handler
        #: the lines the handler logs and prints (``participants.steplog``)
        self.steplog = steplog
        # the workitem as received is kept as its JSON text (the handler
        # changes ``wi`` in place): cheaper than a deep copy on every step,
        # and only ``started`` and an error reply need it back
        self._received = dumps(data)
        self._participant_name: str = data["participant_name"]
        self._forget = bool(data.get("forget"))
        self.wi = Workitem(data)
        self.fei: dict[str, Any] = dict(data["fei"])
        self.wfid: str = self.fei["wfid"]
        self.subid: str = self.fei["subid"]
        self.instance = instance
        self.reply_to = reply_to
        #: the kombu message while this job holds the delivery (unacked)
        self.message = message
        #: the connection generation the delivery belongs to (an ack on a
        #: later connection would be for a delivery tag that no longer exists)
        self.generation = generation
        self.trace = trace
        self.dump = dump
        self.t0 = time.monotonic()
        self.started_at = iso_now()
        self.leased = False
        self.next_alive = 0.0
        self.cancelled = False
        self.replied = False
        self.error: dict[str, Any] | None = None
        self.done = threading.Event()

    def start(self) -> None:
        """Run ``handle_wi`` on a handler thread (``HANDLER_THREADS``: the
        one the last job ended on when it is free, else a new one)."""
        HANDLER_THREADS.run(self._run, f"handler-{self.subid}", self.done.set)

    @property
    def original(self) -> dict[str, Any]:
        """The workitem as received (a fresh copy)."""
        return jsontext.loads(self._received)

    @property
    def forget(self) -> bool:
        """Whether to reply: ``forget`` as received, or as the handler left
        it (``wi.forget = True``: it holds the workitem and replies later
        with ``send_to_engine``)."""
        return self._forget or bool(getattr(self.wi, "forget", False))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def _run(self) -> None:
        if self.steplog is not None:
            steplog.attach(self.steplog)
        try:
            self.handler.handle_wi(self.wi)
        except BaseException as exc:  # SystemExit from a handler is its failure too
            self.error = error_of(exc)
            if not self.cancelled:
                log.warning(
                    "handler failed on %s %s: %s: %s",
                    self.wfid,
                    self.subid,
                    type(exc).__name__,
                    exc,
                )
        finally:
            # every line is in the step log before ``done`` (set by the
            # thread once this returns): the main thread sends the last
            # batch before the reply
            if self.steplog is not None:
                steplog.detach()
                self.steplog.close()

    def cancel(self) -> None:
        """Mark the step cancelled and call ``handle_cancel`` in a thread of
        its own, so a slow one cannot stall the connection's heartbeats."""
        self.cancelled = True
        self.wi.cancelled = True
        handle_cancel = getattr(self.handler, "handle_cancel", None)
        if handle_cancel is not None:
            name, arg = "handle_cancel", self.wi
        else:
            # a SkyNET handler: its Exo called handle_wi_control(WorkItemCtrl("cancel"))
            handle_cancel = getattr(self.handler, "handle_wi_control", None)
            if handle_cancel is None:
                return
            name, arg = "handle_wi_control", LifecycleControl("cancel")

        def call() -> None:
            try:
                handle_cancel(arg)
            except Exception:
                log.exception("%s failed on %s %s", name, self.wfid, self.subid)

        threading.Thread(target=call, name=f"cancel-{self.subid}", daemon=True).start()

    def reply_and_body(self) -> tuple[dict[str, Any], bytes]:
        """The reply and its JSON body, encoded once: the workitem as the
        handler left it, with ``error``, ``started_at`` and ``instance``;
        ``fei`` and ``participant_name`` are always the ones received;
        ``log_job`` when the job sent step-log batches (before this reply)."""
        log_job = self.steplog.job if self.steplog is not None and self.steplog.seq else None
        reply = messages.workitem_reply(
            self.wi.to_dict(),
            fei=self.fei,
            participant_name=self._participant_name,
            error=self.error,
            started_at=self.started_at,
            instance=self.instance,
            log_job=log_job,
        )
        try:
            body = dumps(reply)
            if not isinstance(reply.get("fields"), dict):
                raise Malformed("fields is not a JSON object")
            validate("workitem", reply)
        except (Malformed, TypeError, ValueError) as exc:
            log.error("handler left an invalid workitem for %s %s: %s", self.wfid, self.subid, exc)
            reply = messages.workitem_reply(
                self.original,
                fei=self.fei,
                participant_name=self._participant_name,
                error={
                    "message": f"the participant left a workitem that is not valid JSON for "
                    f"the engine: {exc}",
                    "class": "MalformedReply",
                    "traceback": None,
                },
                started_at=self.started_at,
                instance=self.instance,
                log_job=log_job,
            )
            body = dumps(reply)
        return reply, body
