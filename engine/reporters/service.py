"""``boss reporter``: runs' starts and ends, told to the forge of their change.

Two halves, joined by the job store (``jobs.py``):

* the **consumer** reads the run transitions off the event exchange (its
  own durable queue, bound ``eiffel.#``: the engine workers' Eiffel
  batches). A run's ActivityTriggered (``boss.run``) is its start, its
  ActivityFinished or ActivityCanceled its end. For a run whose launch
  fields carry a forge's identity (``Change.from_fields``) it adds one job
  per report (``forges.plan``), idempotently, then acknowledges the message;
* **senders** (``threads``) take due jobs and make the calls: a transient
  failure is tried again after ``retry_delay`` * 2^n (at most
  ``retry_max_delay``), ``retry_attempts`` times in all; any other failure,
  or the last attempt, is logged and listed (``boss reporter errors``).

Nothing here is on the run's path: a forge that is down delays its
reports, never a run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import kombu
from kombu import Consumer, Exchange, Queue
from kombu.mixins import ConsumerMixin

from engine.broker import connect
from engine.config import Config
from engine.core import outcome as oc
from engine.core import states
from engine.engine import Engine, UnknownRun
from engine.reporters.forges import Change, ReportError, plan, send
from engine.reporters.jobs import Jobs, job_id
from engine.reporters.settings import ReporterSettings
from engine.trace import activity_id

__all__ = ["Reporter", "ReporterService", "describe", "make_jobs", "run_transitions"]

log = logging.getLogger("boss.reporters")

_WORDS = {
    oc.PENDING: "started",
    oc.SUCCESS: "succeeded",
    oc.FAILURE: "failed",
    oc.ERROR: "stopped by an error",
    oc.CANCELLED: "was cancelled",
}


def describe(name: str, outcome: str, options: Mapping[str, Any]) -> str:
    template = str(options.get("description") or "BOSS: {name} {outcome}")
    try:
        return template.format(name=name, outcome=_WORDS.get(outcome, outcome))
    except (KeyError, IndexError, ValueError):
        return template


def make_jobs(
    settings: ReporterSettings,
    *,
    wfid: str,
    name: str,
    fields: Mapping[str, Any],
    transition: str,
    outcome: str,
    description: str | None = None,
) -> list[dict[str, Any]]:
    """The job specs of one transition of a run (none for a run without a
    forge's identity, or whose process turned reporting off)."""
    change = Change.from_fields(fields)
    if change is None:
        return []
    options = settings.options(fields)
    context = str(options.get("context") or "boss/{name}")
    with contextlib.suppress(KeyError, IndexError, ValueError):
        context = context.format(name=name, project=change.project)
    target = f"{settings.web_url.rstrip('/')}/runs/{wfid}" if settings.web_url else ""
    text = description or describe(name, outcome, options)
    message = text + (f"\n\n{target}" if target else f"\n\n(run {wfid})")
    return [
        {
            "id": job_id(wfid, r.transition, r.action),
            "wfid": wfid,
            "name": name,
            "transition": r.transition,
            "action": r.action,
            "change": change.as_dict(),
            "outcome": outcome,
            "options": options,
            "context": context,
            "description": text,
            "message": message,
            "target_url": target,
        }
        for r in plan(change, transition, outcome, options)
    ]


def _custom(event: Mapping[str, Any], key: str) -> str | None:
    for item in (event.get("data") or {}).get("customData") or ():
        if item.get("key") == key:
            return str(item.get("value"))
    return None


def run_transitions(events: Iterable[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(kind, id, event)`` of the run-level transitions among ``events``:
    kind ``start`` (id: the wfid), ``end`` (id: the run's ActivityTriggered
    id; a step's end comes out too: only the job store knows which is a run)."""
    out = []
    for ev in events:
        if not isinstance(ev, dict):
            continue
        etype = (ev.get("meta") or {}).get("type")
        if etype == "EiffelActivityTriggeredEvent":
            if "boss.run" in ((ev.get("data") or {}).get("categories") or ()):
                wfid = _custom(ev, "wfid")
                if wfid:
                    out.append(("start", wfid, ev))
        elif etype in ("EiffelActivityFinishedEvent", "EiffelActivityCanceledEvent"):
            for link in ev.get("links") or ():
                if link.get("type") == "ACTIVITY_EXECUTION":
                    out.append(("end", str(link.get("target")), ev))
    return out


def _end_outcome(run: Any, event: Mapping[str, Any]) -> str:
    """A run's outcome at its end event: its status and fields say; a run
    whose ended state is not readable yet goes by the event's conclusion."""
    found = oc.run_outcome(run.status, run.fields)
    if found != oc.PENDING:
        return found
    conclusion = ((event.get("data") or {}).get("outcome") or {}).get("conclusion")
    if conclusion == "SUCCESSFUL":
        return oc.run_outcome(states.FINISHED, run.fields)
    return oc.CANCELLED


class Reporter:
    """What the consumer and the participant share: transitions to jobs,
    and the senders' step."""

    def __init__(self, config: Config, settings: ReporterSettings, client: Any, store: Any) -> None:
        self.config = config
        self.settings = settings
        self.jobs = Jobs(client, config.key_prefix, remember=settings.remember)
        self.engine = Engine(store)
        self.sent = 0
        self.failed = 0

    # -- transitions -> jobs -------------------------------------------------

    def _run(self, wfid: str, wait: float = 3.0) -> Any:
        """The run (its events may come a moment before its state is readable)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self.engine.run(wfid)
            except UnknownRun:
                if time.monotonic() >= deadline:
                    return None
                time.sleep(0.1)

    def handle_events(self, events: Iterable[Any]) -> int:
        """Jobs for the run transitions among ``events``; how many were added."""
        added = 0
        for kind, ident, event in run_transitions(events):
            if kind == "start":
                wfid = ident
                run = self._run(wfid)
                if run is None:
                    log.warning("reporter: run %s triggered but not in the store", wfid)
                    continue
                if Change.from_fields(run.fields) is None:
                    continue
                self.jobs.note_run(activity_id(wfid, None, "triggered"), wfid)
                added += self.add(run.wfid, run.name, run.fields, "start", oc.PENDING)
            else:
                wfid = self.jobs.run_of(ident)
                if wfid is None:
                    continue  # a step's, or a run no forge launched
                run = self._run(wfid)
                if run is None:
                    continue
                outcome = _end_outcome(run, event)
                added += self.add(run.wfid, run.name, run.fields, "end", outcome)
        return added

    def add(
        self,
        wfid: str,
        name: str,
        fields: Mapping[str, Any],
        transition: str,
        outcome: str,
        description: str | None = None,
    ) -> int:
        n = 0
        for spec in make_jobs(
            self.settings,
            wfid=wfid,
            name=name,
            fields=fields,
            transition=transition,
            outcome=outcome,
            description=description,
        ):
            if self.jobs.add(spec):
                n += 1
                log.info("reporter: %s of %s: %s (%s)", transition, wfid, spec["action"], outcome)
            else:
                log.info("reporter: %s already reported for %s %s", spec["id"], wfid, transition)
        return n

    # -- sending -------------------------------------------------------------

    def _delay(self, attempt: int) -> float:
        s = self.settings
        return min(s.retry_max_delay, s.retry_delay * (2 ** max(0, attempt - 1)))

    def send_one(self) -> bool:
        """Send the first due job; False when none was due."""
        got = self.jobs.claim(self.settings.lease)
        if got is None:
            return False
        jid, spec, attempt = got
        if spec is None:
            return True
        wfid, transition, action = spec["wfid"], spec["transition"], spec["action"]
        prior: dict[str, Any] | None = None
        start = job_id(wfid, "start", action)
        if transition != "end" and self.jobs.exists(job_id(wfid, "end", action)):
            # the run ended before this was told: only its end is
            self.jobs.done(jid, None, state="skipped")
            return True
        if transition != "start":
            first = self.jobs.get(start)
            if first is not None and not self.jobs.supersede(start):
                if self.jobs.state(start) == "sending":
                    self.jobs.later(jid, 0.2, attempt=False)  # the start goes first
                    return True
                result = first.get("result")
                prior = result if isinstance(result, dict) else None
        try:
            result = send(spec, self.settings, prior)
        except ReportError as exc:
            self._failed(jid, spec, attempt, str(exc), exc.transient)
            return True
        except Exception as exc:  # a bug or an odd answer: retried, then listed
            log.exception("reporter: %s", jid)
            self._failed(jid, spec, attempt, f"{type(exc).__name__}: {exc}", True)
            return True
        self.jobs.done(jid, result)
        self.sent += 1
        log.info("reporter: sent %s (attempt %d)", jid, attempt)
        return True

    def _failed(
        self, jid: str, spec: Mapping[str, Any], attempt: int, error: str, transient: bool
    ) -> None:
        if transient and attempt < self.settings.retry_attempts:
            delay = self._delay(attempt)
            log.warning(
                "reporter: %s failed (attempt %d of %d), again in %.1f s: %s",
                jid,
                attempt,
                self.settings.retry_attempts,
                delay,
                error,
            )
            self.jobs.later(jid, delay, error)
            return
        why = f"gave up after {attempt} attempts" if transient else "not retried"
        log.error("reporter: %s failed, %s: %s", jid, why, error)
        self.jobs.fail(jid, spec, f"{error} ({why})", self.settings.errors_max)
        self.failed += 1


class _Consumer(ConsumerMixin):
    def __init__(self, reporter: Reporter, connection: kombu.Connection) -> None:
        self.reporter = reporter
        self.connection = connection
        config = reporter.config
        exchange = Exchange(config.event_exchange, type="topic", durable=True)
        self.queue = Queue(
            reporter.settings.queue,
            exchange=exchange,
            routing_key="eiffel.#",
            durable=True,
            auto_delete=False,
        )

    def get_consumers(self, consumer: type[Consumer], channel: Any) -> list[Consumer]:
        return [consumer(queues=[self.queue], on_message=self._on_message, prefetch_count=50)]

    def _on_message(self, message: kombu.Message) -> None:
        import json

        try:
            body = json.loads(message.body)
        except ValueError:
            message.ack()  # not ours to judge: the aggregator dead-letters it
            return
        events = body if isinstance(body, list) else [body]
        try:
            self.reporter.handle_events(events)
        except Exception:
            log.exception("reporter: could not handle a message; it goes back to the queue")
            time.sleep(1.0)
            message.requeue()
            return
        message.ack()


class ReporterService:
    """The consumer and the senders, as threads of one process."""

    def __init__(
        self,
        config: Config,
        settings: ReporterSettings,
        client: Any,
        store: Any,
        *,
        connection: kombu.Connection | None = None,
        idle: float = 0.2,
    ) -> None:
        self.reporter = Reporter(config, settings, client, store)
        self.connection = connection if connection is not None else connect(config)
        self.consumer = _Consumer(self.reporter, self.connection)
        self.idle = idle
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def declare(self) -> None:
        """The queue and its binding (so events wait for a reporter not yet started)."""
        with self.connection.clone() as conn:
            self.consumer.queue(conn.default_channel).declare()

    def _send_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                busy = self.reporter.send_one()
            except Exception:
                log.exception("reporter: the job store failed")
                busy = False
                self.stopping.wait(1.0)
            if not busy:
                self.stopping.wait(self.idle)

    def start(self) -> None:
        self.declare()
        t = threading.Thread(target=self.consumer.run, name="reporter-consumer", daemon=True)
        self.threads.append(t)
        for i in range(self.reporter.settings.threads):
            self.threads.append(
                threading.Thread(target=self._send_loop, name=f"reporter-{i}", daemon=True)
            )
        for t in self.threads:
            t.start()
        log.info(
            "reporter: consuming %s, %d senders",
            self.reporter.settings.queue,
            len(self.threads) - 1,
        )

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.consumer.should_stop = True
        for t in self.threads:
            t.join(timeout)
        self.connection.release()
