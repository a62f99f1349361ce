"""What an engine worker does with one message from the engine's queue.

Transport-free: ``EngineService.handle(body)`` gets the raw bytes and either
returns (the caller acknowledges the message) or raises (the caller does
not, so the broker gives the message again). By then everything the message
caused is stored:

* a reply, an operation or a notice is applied with ``Engine.deliver``;
* a launch item starts a run (``Engine.launch``), idempotent on its
  ``wfid``;
* a heartbeat (``alive``) pushes a lease timer forward;
* a registration is stored;
* a malformed body goes to the dead-letter queue, and a malformed reply that
  still names its step fails that step, so the run shows it;
* a redelivered message that another live engine applied is checked again
  later (a ``redeliver`` timer), when that engine's heartbeat would have run
  out if it had died.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine import telemetry, tokens, wire
from engine.config import Config
from engine.core import messages, runstate
from engine.core.loader import LoadError
from engine.core.registrations import InvalidPattern
from engine.engine import Engine, Undecided
from engine.process_store import resolve_process
from engine.store.base import RunExists, RunStore
from engine.trace import EventBus, record_event

log = logging.getLogger("boss.worker")

__all__ = ["HANDLERS", "LOOK_AGAIN", "EngineService", "Incoming", "parse", "permanent"]

#: seconds between the two looks that must both find a workitem nowhere on
#: the broker before a lease timer dispatches it again (``_lease_check``)
LOOK_AGAIN = 3.0
#: the key a lease timer's payload carries once a look found it nowhere
MISSING_SINCE = "missing_since"


@dataclass(frozen=True, slots=True)
class Incoming:
    """A body taken from one of the engine's queues (``handle_batch``)."""

    body: bytes | str
    queue: str | None = None
    content_type: str | None = None
    headers: dict[str, Any] | None = None


class EngineService:
    """Handles engine-queue messages for one thread of a worker."""

    def __init__(
        self,
        config: Config,
        store: RunStore,
        publisher: Any,
        *,
        engine_id: str,
        on_event: Any = None,
    ) -> None:
        self.config = config
        self.store = store
        self.publisher = publisher
        self.engine_id = engine_id
        self.engine = Engine(
            store,
            dispatcher=publisher,
            send=publisher.send,
            # "<worker id>.<thread>": the worker's heartbeat speaks for its threads
            engine_alive=lambda eid: store.engine_alive(eid.split(".", 1)[0]),
            engine_id=engine_id,
            dispatch_lease=config.resolved_dispatch_lease(),
        )
        #: the lifecycle records of the message in hand, published as one
        #: batch of Eiffel events when it has been handled (before it is
        #: acknowledged). Kept as records: each becomes its event when the
        #: batch is published, after the message's dispatches went out
        #: (a reply's records come before the next step's dispatch)
        self._events: list[Any] = []
        self.bus: EventBus | None = None
        if on_event is not None:
            self.engine.on_record = on_event
        elif config.events:
            self.bus = EventBus(config, publisher)
            self.engine.on_record = self._events.append
        #: a block whose publishes are confirmed together at its end
        #: (``engine.broker.Publisher.confirming``): a message's dispatches
        #: and its trace events cost one wait for the broker, not one each
        self.confirming = getattr(publisher, "confirming", contextlib.nullcontext)
        #: where this worker says it is, in dead letters
        self.signature = f"engine {engine_id} on {socket.gethostname()}:{os.getpid()}"
        #: dispatch tokens: a reply is applied only with its workitem's
        #: token (``engine.tokens``; off without a key). A key file that
        #: cannot be read is a ``ConfigError`` here, at start
        self.tokens = tokens.Tokens.from_config(config)
        self.handled = 0
        #: when set, ``handle`` and ``handle_batch`` keep the events of what
        #: they did for the caller to publish (``flush_events``) with the
        #: next messages' (the engine's consumer: ``events_linger``); the
        #: caller then acknowledges a message only once they are confirmed
        self.hold_events = False
        #: the step logs beside the store: a reply that names its step-log
        #: job (``log_job``) is noted there before it is applied, before its
        #: run can end, so that readers wait for that job's last batch even
        #: when the writer has stored none of it yet. None without them
        self.steplogs = _step_logs(config, store)

    # -- the one entry point --------------------------------------------------------

    def handle(
        self,
        body: bytes | str,
        *,
        queue: str | None = None,
        content_type: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        """Apply one body; returns what happened (for logs and tests). The
        Eiffel events of what it did are published before it returns (also
        when it raises: what was carried out is recorded; the ids are
        derived, so carrying it out again records nothing twice), and
        everything it published is confirmed by then."""
        with self.confirming():
            try:
                return self._handle(body, queue=queue, content_type=content_type, headers=headers)
            finally:
                if self._events and not self.hold_events:
                    self._flush_events()

    def handle_batch(self, items: list[Incoming]) -> list[str | BaseException]:
        """Handle several bodies taken together; returns, for each, what
        ``handle`` would have returned or the exception it would have
        raised. The run messages among them (replies, operations,
        notices: ``_on_run_message``) are applied with
        ``Engine.deliver_many``, their publishes (dispatches, the batch's
        trace events) confirmed together (``Publisher.confirming``);
        everything else, and every message the batch hands back, goes
        through ``handle`` one by one. All of it is stored and confirmed
        when this returns, as ``handle`` promises for one."""
        outcomes: list[str | BaseException | None] = [None] * len(items)
        batch: list[int] = []
        msgs: list[dict[str, Any]] = []
        for k, item in enumerate(items):
            try:
                msg = parse(item.body)
            except wire.Malformed:
                continue  # handle dead-letters it
            if self.tokens.enabled and self._refused(msg) is not None:
                continue  # handle dead-letters it, one by one
            if HANDLERS.get(msg["type"]) is EngineService._on_run_message:
                batch.append(k)
                msgs.append(msg)
        if len(msgs) > 1:
            try:
                self._note_step_logs(msgs)
                with self.confirming():
                    try:
                        done, _rest = self.engine.deliver_many(msgs)
                    finally:
                        if self._events and not self.hold_events:
                            self._flush_events()
            except Exception as exc:
                for k in batch:
                    outcomes[k] = exc
            else:
                for i, reason in done.items():
                    self.handled += 1
                    telemetry.count_message(msgs[i]["type"])
                    outcomes[batch[i]] = reason or f"{msgs[i]['type']} applied"
        for k, item in enumerate(items):
            if outcomes[k] is None:
                try:
                    outcomes[k] = self.handle(
                        item.body,
                        queue=item.queue,
                        content_type=item.content_type,
                        headers=item.headers,
                    )
                except Exception as exc:
                    outcomes[k] = exc
        return outcomes  # type: ignore[return-value]

    def _note_step_logs(self, msgs: list[dict[str, Any]]) -> None:
        """Note the step-log jobs the replies among ``msgs`` name
        (``StepLogs.note_sent``); a store error raises, and the messages
        come again."""
        if self.steplogs is None:
            return
        # a reply's workitem and its ``log_job`` (a string) were checked
        # against ``workitem.json`` when it was read
        jobs = [
            (m["wfid"], m["workitem"]["log_job"])
            for m in msgs
            if m["type"] == "reply" and "log_job" in m["workitem"]
        ]
        if jobs:
            self.steplogs.note_sent(jobs)

    def _flush_events(self) -> None:
        domain = self.config.eiffel_domain
        events = [record_event(rec, domain=domain) for rec in self._events]
        self._events.clear()
        if self.bus is not None:
            self.bus.publish(events)

    @property
    def pending_events(self) -> int:
        """Events recorded and not published yet (``hold_events``)."""
        return len(self._events)

    def flush_events(self) -> None:
        """Publish the events held so far (``hold_events``), as one batch."""
        if self._events:
            self._flush_events()

    def _handle(
        self,
        body: bytes | str,
        *,
        queue: str | None,
        content_type: str | None,
        headers: dict[str, Any] | None,
    ) -> str:
        queue = queue or self.config.engine_queue
        try:
            msg = parse(body)
        except wire.Malformed as exc:
            telemetry.count_message("malformed")
            return self._malformed(body, exc, queue, content_type, headers)
        self.handled += 1
        telemetry.count_message(msg["type"])
        # the schema admits only the types of ``engine.core.messages``, and
        # ``HANDLERS`` has one for each (tests/unit/test_messages.py)
        return HANDLERS[msg["type"]](self, msg, body, queue)

    def handle_timer(self, payload: dict[str, Any]) -> str:
        """A fired timer's message (a step's timer, or a deferred redelivery)."""
        try:
            return self._handle_timer(payload)
        finally:
            if self._events:
                self._flush_events()

    def _handle_timer(self, payload: dict[str, Any]) -> str:
        if payload.get("type") == "redeliver":
            return self._redeliver(payload)
        if payload.get("timer") == "lease":
            held = self._lease_check(payload)
            if held is not None:
                return held
            payload = {k: v for k, v in payload.items() if k != MISSING_SINCE}
        try:
            reason = self.engine.deliver(payload)
        except Undecided as exc:
            return self._defer(payload, exc)
        return reason or "timer applied"

    # -- kinds: ``HANDLERS`` maps each message type to one of these -------------------

    def _on_launch(self, msg: dict[str, Any], body: bytes | str, queue: str) -> str:
        return self._launch(messages.as_launch_item(msg), body, queue)

    def _on_alive(self, msg: dict[str, Any], body: bytes | str, queue: str) -> str:
        return self._alive(msg)

    def _on_registration(self, msg: dict[str, Any], body: bytes | str, queue: str) -> str:
        policy = self.config.queue_registrations
        if policy == "false" or (policy == "auto" and self.tokens.enabled):
            return self._deadletter(
                body,
                f"{msg['type']} {msg.get('pattern')!r} from the engine's queue refused "
                f"(queue_registrations = {policy}"
                f"{', dispatch tokens are on' if self.tokens.enabled else ''}): a participant "
                "could route another participant's workitems to itself; register with "
                "'boss register' or 'skynet install --register'",
                queue,
            )
        try:
            return self._registration(msg)
        except InvalidPattern as exc:
            return self._deadletter(body, f"{msg['type']} refused: {exc}", queue)

    def _refused(self, msg: dict[str, Any]) -> str | None:
        """Why a reply (or a ``started`` notice, whose workitem the engine
        dispatches again when its lease runs out) must not reach its run
        while dispatch tokens are on (``engine.tokens``): its token is
        missing or wrong, a notice's workitem is another step's, or it
        names a participant the step does not wait on (a token minted for
        the dispatch of a workitem smuggled in to be dispatched again).
        None for every other message."""
        kind = msg.get("type")
        if kind not in ("reply", "started"):
            return None
        workitem = msg.get("workitem")
        what = "reply" if kind == "reply" else "started notice"
        if not isinstance(workitem, dict):
            return None  # a reply always has one (the schema); a notice without: nothing to check
        fei = workitem.get("fei") or {}
        wfid, eid = msg.get("wfid"), fei.get("subid")
        if kind == "started" and (fei.get("wfid") != wfid or eid != msg.get("eid")):
            return (
                f"started notice for {wfid}/{msg.get('eid')} carrying the workitem of "
                f"{fei.get('wfid')}/{eid}"
            )
        reason = self.tokens.check_reply(workitem, what)
        if reason is not None:
            return reason
        if not isinstance(wfid, str) or not isinstance(eid, str):
            return None
        try:
            state = self.engine.state(wfid)
        except Exception:  # no such run: the engine ignores the reply
            return None
        expr = runstate.expression(state, eid)
        named = workitem.get("participant_name")
        if expr is not None and expr.participant is not None and expr.participant != named:
            return (
                f"{what} names participant {named!r} but step {wfid}/{fei.get('expid')}/{eid} "
                f"was dispatched to {expr.participant!r}"
            )
        return None

    def _on_run_message(self, msg: dict[str, Any], body: bytes | str, queue: str) -> str:
        """A reply, an operation or a notice for one run: ``Engine.deliver``.
        A reply or ``started`` notice the dispatch tokens refuse
        (``_refused``) is dead-lettered and reaches no run."""
        if self.tokens.enabled:
            refused = self._refused(msg)
            if refused is not None:
                return self._deadletter(body, refused, queue)
        self._note_step_logs([msg])
        try:
            reason = self.engine.deliver(msg)
        except Undecided as exc:
            return self._defer(msg, exc)
        # anything else raises: the message is not acknowledged, comes again,
        # and is dead-lettered with its traceback if it keeps failing
        return reason or f"{msg['type']} applied"

    def _launch(
        self, item: dict[str, Any], body: bytes | str, queue: str, recheck: bool = False
    ) -> str:
        try:
            if "definition" in item:
                source: Any = item["definition"]
                filename = item.get("filename") or "<launch item>"
            else:
                path = resolve_process(self.config.process_dir, item["process"])
                source, filename = path.read_text(encoding="utf-8"), str(path)
            wfid = self.engine.launch(
                source,
                item.get("fields"),
                item.get("variables"),
                wfid=item.get("wfid"),
                filename=filename,
                recheck=recheck,
                cause=item.get("cause"),
            )
        except Undecided as exc:
            return self._defer(messages.as_launch_message(item), exc)
        except LoadError as exc:
            return self._deadletter(
                body, f"launch item: the definition has problems:\n{exc}", queue
            )
        except (FileNotFoundError, ValueError) as exc:
            return self._deadletter(body, f"launch item: {exc}", queue)
        except RunExists:
            return self._deadletter(
                body, f"launch item: a different run already has wfid {item.get('wfid')}", queue
            )
        return f"launched {wfid}"

    def _lease_check(self, payload: dict[str, Any]) -> str | None:
        """A lease timer came due (a dispatch lease: neither a reply nor a
        ``started`` notice since the dispatch; or a lease whose heartbeats
        stopped). Before the engine dispatches the workitem again, look for
        it in the broker's bookkeeping (kombu's Redis transport,
        ``engine.redis_transport.locate``): still on its queue, held by a
        live consumer (which keeps it alive there) or its reply waiting for
        the engine, it is not lost, and the timer is set again; found
        nowhere twice, ``LOOK_AGAIN`` seconds apart (a consumer between
        ``BRPOP`` and recording the delivery has it in neither place for a
        moment), it was lost with a killed consumer: None, the timer is
        applied and the workitem dispatched again. On RabbitMQ (nothing to
        read) None at once: only leases with heartbeats have timers there."""
        if not self.publisher_can_locate:
            return None
        wfid, eid = payload.get("wfid"), payload.get("eid")
        if not isinstance(wfid, str) or not isinstance(eid, str):
            return None
        queue = self._step_queue(wfid, eid)
        if queue is None:
            return None  # the step is gone or done: the engine ignores the timer
        where = self.publisher.locate(queue, wfid, eid)
        tid = f"{wfid}:{eid}:lease"
        now = time.time()
        if where is not None:
            again = float(payload.get("lease") or 0) or self.config.lease
            fresh = {k: v for k, v in payload.items() if k != MISSING_SINCE}
            self.store.schedule_timer(tid, now + again, fresh)
            return f"lease of {wfid}/{eid}: the workitem is {where}, not lost (again in {again:g}s)"
        if not isinstance(payload.get(MISSING_SINCE), int | float):
            self.store.schedule_timer(tid, now + LOOK_AGAIN, {**payload, MISSING_SINCE: now})
            return f"lease of {wfid}/{eid}: the workitem is nowhere (again in {LOOK_AGAIN:g}s)"
        log.warning(
            "%s/%s: the workitem is on no queue and held by no consumer (lost with a "
            "consumer killed as it took it, or its lease holder died): dispatched again",
            wfid,
            eid,
        )
        return None

    @property
    def publisher_can_locate(self) -> bool:
        return bool(getattr(self.publisher, "can_locate", False))

    def _step_queue(self, wfid: str, eid: str) -> str | None:
        """The queue a waiting participant step was dispatched to (read from
        the run's state: the expression's ``q``), else None."""
        try:
            state = self.engine.state(wfid)
        except Exception:  # unknown run
            return None
        expr = runstate.expression(state, eid)
        return expr.queue if expr is not None else None

    def _alive(self, msg: dict[str, Any]) -> str:
        lease = float(msg.get("lease") or self.config.lease)
        tid = f"{msg['wfid']}:{msg['eid']}:lease"
        if self.store.reschedule_timer(tid, time.time() + lease):
            return f"lease of {msg['wfid']}/{msg['eid']} renewed"
        return f"heartbeat for {msg['wfid']}/{msg['eid']} ignored: no lease"

    def _registration(self, msg: dict[str, Any]) -> str:
        if msg["type"] == "unregister":
            gone = self.engine.unregister(msg["pattern"])
            return f"unregistered {msg['pattern']}" if gone else "nothing to unregister"
        reg = self.engine.register(
            msg["pattern"], msg.get("queue"), regex=msg.get("regex"), position=msg.get("position")
        )
        return f"registered {reg.pattern} -> {reg.queue}"

    def _defer(self, msg: dict[str, Any], exc: Undecided) -> str:
        """Look at this redelivery again once the owner's heartbeat would
        have run out (see ``Engine.deliver``)."""
        wait = 3 * self.config.heartbeat + 1.0
        telemetry.deferred.inc()
        mid = msg.get("id") or f"{msg.get('type')}:{time.time_ns()}"
        self.store.schedule_timer(
            f"redeliver:{msg.get('wfid')}:{mid}",
            time.time() + wait,
            messages.redeliver(msg),
        )
        return f"redelivery deferred {wait:.0f}s: {exc}"

    def _redeliver(self, payload: dict[str, Any]) -> str:
        msg = payload["message"]
        if msg.get("type") == "launch":
            item = messages.as_launch_item(msg)
            return self._launch(item, wire.dumps(item), self.config.engine_queue, recheck=True)
        return self.engine.deliver(msg, recheck=True) or f"{msg.get('type')} applied"

    # -- bad input ----------------------------------------------------------------------

    def _deadletter(
        self,
        body: bytes | str,
        reason: str,
        queue: str,
        content_type: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        if len(reason) > MAX_REASON:
            reason = f"{reason[: MAX_REASON - 60]}... ({len(reason)} characters in all)"
        record = wire.deadletter(
            body if isinstance(body, bytes | str) else wire.dumps(body),
            reason,
            queue,
            by=self.signature,
            content_type=content_type,
            headers=headers,
        )
        self.publisher.deadletter(record)
        telemetry.deadletters.inc()
        log.error("dead-lettered %s: %s", record["id"], reason)
        return f"dead-lettered {record['id']}: {reason}"

    def _malformed(
        self,
        body: bytes | str,
        exc: wire.Malformed,
        queue: str,
        content_type: str | None,
        headers: dict[str, Any] | None,
    ) -> str:
        refused = self._refused_malformed(body, exc) if exc.fei is not None else None
        reason = exc.reason if refused is None else f"{exc.reason}; {refused}"
        outcome = self._deadletter(body, reason, queue, content_type, headers)
        if exc.fei is not None and refused is None:
            fei = exc.fei
            msg = messages.reply(
                {
                    "fei": fei,
                    "error": {
                        "message": f"malformed reply ({outcome.split(':')[0]}): {exc.reason}",
                        "class": "MalformedMessage",
                    },
                },
                fei["wfid"],
                id=f"malformed:{fei['subid']}",
            )
            # Undecided: a redelivery of this same malformed reply, already failed
            with contextlib.suppress(Undecided):
                self.engine.deliver(msg)
        return outcome

    def _refused_malformed(self, body: bytes | str, exc: wire.Malformed) -> str | None:
        """While dispatch tokens are on, a malformed reply fails the step it
        names only if it carries that step's token (else anyone could fail
        any step): why not, or None."""
        if not self.tokens.enabled:
            return None
        try:
            obj = wire.decode(body)
        except wire.Malformed:
            return "no dispatch token: the step it names is left alone"
        inner = obj.get("workitem")
        wi = inner if obj.get("type") == "reply" and isinstance(inner, dict) else obj
        refused = self.tokens.check_reply({**wi, "fei": exc.fei})
        return None if refused is None else f"{refused}: the step it names is left alone"

    def poisoned(
        self, body: bytes | str, exc: BaseException, queue: str, *, retried: bool = True
    ) -> str:
        """A message whose handling kept raising (``retried``), or raised
        in a way no retry can change (not ``retried``: see ``permanent``):
        set it aside with the traceback rather than loop on it."""
        tb = "".join(traceback.format_exception(exc, limit=-20))
        what = "handling failed repeatedly" if retried else "handling failed (not retried)"
        return self._deadletter(body, f"{what}: {type(exc).__name__}: {exc}\n{tb}", queue)


#: the longest reason a dead letter (and its log line) keeps: a schema's
#: complaint quotes the offending value, which may be megabytes
MAX_REASON = 4000


def _step_logs(config: Config, store: RunStore) -> Any:
    """The step logs beside ``store`` (``StepLogs``), or None: step logs
    off, or a store without Redis."""
    from engine.store.steplogs import StepLogsUnavailable, step_logs_for

    if not config.step_logs:
        return None
    try:
        return step_logs_for(store, ttl=config.step_log_ttl)
    except StepLogsUnavailable:
        return None


def parse(body: bytes | str) -> dict[str, Any]:
    """The engine message in ``body`` (``wire.engine_message``), or
    ``wire.Malformed``, also for a body nested too deeply to read (the JSON
    parser or the schema check ran out of recursion): that is no message,
    and reading it again would fail again."""
    try:
        return wire.engine_message(body)
    except RecursionError:
        raise wire.Malformed(
            "not JSON that can be read: nested too deeply (more levels of arrays or "
            f"objects than the parser's limit of about {sys.getrecursionlimit()})"
        ) from None


def permanent(exc: BaseException) -> bool:
    """Whether handling a message that raised ``exc`` would raise it
    again whatever the retry: a body that cannot be read (malformed, too
    deep, not UTF-8) or data nested too deeply to handle."""
    return isinstance(exc, wire.Malformed | RecursionError | UnicodeDecodeError)


#: what the service does with each message type it accepts (every one of
#: ``engine.core.messages.MESSAGE_TYPES``): a launch item starts a run, a
#: heartbeat pushes a lease timer on, a registration is stored, and the
#: rest is applied to its run by ``Engine.deliver``
HANDLERS: dict[str, Callable[[EngineService, dict[str, Any], bytes | str, str], str]] = {
    kind: EngineService._on_run_message for kind in messages.ENGINE_TYPES
} | {
    "launch": EngineService._on_launch,
    "alive": EngineService._on_alive,
    "register": EngineService._on_registration,
    "unregister": EngineService._on_registration,
}
