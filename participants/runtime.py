"""The participant runtime: ``boss-participant CONFIG.ini``.

It runs one participant instance (a pool is several processes on the same
queue) and speaks the wire protocol of ``docs/wire-protocol.md``:

* consume the participant's durable queue, validate each workitem (a
  malformed one is dead-lettered, never dropped), run the handler's
  ``handle_wi`` in a worker thread, publish the reply to the delivery's
  ``reply_to`` and acknowledge once the broker confirmed it;
* work on one workitem at a time, with the next ones at hand (up to
  ``participant_prefetch`` - 1; 8, the default, takes up to 7): each
  starts the moment the reply before it is published, while that reply's
  confirm is still on its way (a finished workitem counts against the
  prefetch until its reply is confirmed and it is acknowledged). Next
  workitems held for longer than ``participant_hold`` seconds (the one in
  hand is a long one) are given back to the queue, and the consumer waits
  until the instance is idle, so that a long step never keeps a workitem
  from another instance for long;
* after ``lease_after`` seconds take a *lease* (stop consuming, publish
  ``started``, acknowledge, publish ``alive`` every ``lease / 3`` seconds),
  so a step can run for hours without the broker timing the delivery out;
* listen for cancel items on the control exchange;
* send what the handler logs and prints while it works on a workitem, in
  batches, to the engine's step logs (``participants.steplog``), the last
  batch before the reply;
* survive broker restarts: the handler keeps running, the runtime reconnects
  for ever (with back-off) and publishes the reply on the new connection;
  a workitem the broker delivers again after that is answered from a
  bounded memory of recent replies instead of being done twice;
* stop gracefully on SIGTERM/SIGINT (finish and reply first), at once on
  a second signal.

The main thread owns the kombu connection (kombu is not thread-safe; the
kombu plumbing is ``participants.link``): it drains events with a short
timeout, checks heartbeats and looks at the job in hand
(``participants.job``) on every turn. Only ``handle_wi`` and
``handle_cancel`` run in other threads. ``Runtime(...).run()`` is the Python API; ``stop()`` asks it
to stop gracefully from any thread.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import signal
import socket
import sys
import threading
import time
from typing import Any

import click

from engine.core import messages
from engine.wire import Malformed, deadletter, decode, dumps, iso_now, validate
from participants import steplog
from participants.config import ParticipantConfig, ParticipantConfigError, load_config
from participants.handler import LifecycleControl, check_handler, load_handler
from participants.job import Job
from participants.link import BrokerLink, Fatal
from participants.lru import LRU

__all__ = ["Runtime", "main"]

log = logging.getLogger("boss.participant")

#: seconds the main loop waits for broker events before looking at the job
POLL = 0.1
#: seconds the main loop looks at the broker while a handler runs (cancel
#: items, heartbeats): short, the handler's end is what it waits for
PEEK = 0.001
#: how many cancelled subids are remembered
MEMORY = 10_000
#: how many replies are remembered (a redelivery comes within minutes; a
#: reply may be large, so fewer than cancels)
REPLIES = 1_000


def flag(value: Any) -> bool:
    """A workitem's ``debug_trace``/``debug_dump``: true, or the string
    ``'True'`` (``'yes'``, ``'1'``, ``'on'``) as BOSS processes set it."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on")
    return value is True


def instance_id() -> str:
    """``host:pid:random``: who did a step, in replies and lease notices."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Runtime:
    """One participant instance.

    ``config`` is the INI file's path or a ``ParticipantConfig``; ``handler``
    an already built handler object (else the one named by ``code`` and
    ``class`` is loaded). Raises ``ParticipantConfigError`` for a bad file
    or handler, before anything connects.
    """

    def __init__(
        self,
        config: str | os.PathLike[str] | ParticipantConfig,
        handler: Any = None,
        *,
        max_backoff: float = 5.0,
    ) -> None:
        if not isinstance(config, ParticipantConfig):
            config = load_config(config, need_code=handler is None)
        self.config = config
        where = f"{config.path or '<config>'}: [participant]"
        if handler is None:
            if not config.code:
                raise ParticipantConfigError(f"{where} code is missing")
            handler = load_handler(config.code, config.class_name, where)
        else:
            check_handler(handler, where)
        self.handler = handler
        self._attach(handler)
        self.instance = instance_id()
        self.max_backoff = max_backoff
        #: "wfid/subid" -> the reply's body (None: done without a reply, ``forget``)
        self.replied: LRU[str, bytes | None] = LRU(REPLIES)
        self.cancels: LRU[str, bool] = LRU(MEMORY)
        self.job: Job | None = None
        #: the next deliveries, taken while ``job`` is in hand (up to
        #: ``participant_prefetch`` - 1), oldest first, each with the
        #: connection generation it came on
        self.held: list[tuple[int, Any]] = []
        #: deliveries not handled yet, with their connection generation
        self._arrivals: list[tuple[int, Any]] = []
        #: "wfid/subid" -> the reply_to of its delivery (for ``send_to_engine``)
        self.reply_tos: LRU[str, str] = LRU(REPLIES)
        #: (key, reply_to, body) from ``send_to_engine``, published by the main thread
        self._outbox: queue.SimpleQueue[tuple[str, str, bytes]] = queue.SimpleQueue()
        #: set once the instance consumes its queue (for in-process callers)
        self.ready = threading.Event()
        self.link: BrokerLink | None = None
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._stopping = False
        self._registered = False
        #: jobs started (names each job's step log: ``<instance>.<n>``)
        self._jobs = 0
        #: the connection generation the step-log queue was declared on
        self._logs_declared = -1

    # -- the public surface -------------------------------------------------
    def stop(self) -> None:
        """Stop gracefully: take no new workitem, finish and reply the one in
        hand, call lifecycle "stop", and let ``run()`` return 0. Any thread."""
        self._stop.set()
        self._wakeup.set()

    def run(self) -> int:
        """Serve until stopped; the exit status (0 stopped, 1 gave up)."""
        if not self._lifecycle("start", config=self.config.parser, fatal=True):
            return 1
        if self.config.unknown_keys:
            log.warning(
                "%s: [participant] keys not used by this runtime: %s",
                self.config.path,
                ", ".join(self.config.unknown_keys),
            )
        boss = self.config.boss
        try:
            url = boss.resolved_broker_url()
            # (on kombu's Redis transport a held delivery is kept alive while
            # this process lives: engine.redis_transport; nothing to check)
            for warning in boss.broker_warnings():
                log.warning("%s", warning)
            self.link = link = BrokerLink(
                url,
                boss,
                self.config.queue,
                self.instance,
                on_workitem=self._arrived,
                on_control=self._on_control,
                max_backoff=self.max_backoff,
            )
            # asked to stop with nothing in hand: no need to reach the broker
            while link.connect(
                lambda: self._stop.is_set() and self.job is None and self._outbox.empty(),
                self._wakeup,
            ):
                try:
                    if self._serve(link):
                        break
                except Exception as exc:
                    if isinstance(exc, Fatal) or not link.recoverable(exc):
                        raise
                    log.warning(
                        "lost the broker connection (%s: %s); reconnecting", type(exc).__name__, exc
                    )
                    link.drop(exc)
        except Exception as exc:
            log.error(
                "giving up: %s: %s", type(exc).__name__, exc, exc_info=not isinstance(exc, Fatal)
            )
            if self.link is not None:
                self.link.drop(exc)
            self._lifecycle("die", reason=f"{type(exc).__name__}: {exc}")
            return 1
        self._lifecycle("stop")
        log.info("stopped")
        return 0

    def send_to_engine(self, wi: Any) -> None:
        """Reply a workitem the handler held (``forget``) earlier, as
        SkyNET's ``send_to_engine``: from any thread, over this runtime's
        connection, to the queue its delivery named (else the engine queue).
        ``wi`` is a workitem object (``to_dict()``/``to_h()``) or its dict;
        one the engine could not read raises ``ValueError`` here."""
        if isinstance(wi, dict):
            data = wi
        else:
            to_dict = getattr(wi, "to_dict", None) or getattr(wi, "to_h", None)
            if to_dict is None:
                raise TypeError(f"send_to_engine: not a workitem: {type(wi).__name__}")
            data = to_dict()
        data = {k: v for k, v in data.items() if k != "forget"}
        fei = data.get("fei")
        if not isinstance(fei, dict) or "wfid" not in fei or "subid" not in fei:
            raise ValueError("send_to_engine: the workitem has no fei with wfid and subid")
        reply = messages.workitem_reply(
            data,
            fei=fei,
            participant_name=str(data.get("participant_name") or self.config.name),
            started_at=started if isinstance(started := data.get("started_at"), str) else iso_now(),
            instance=self.instance,
        )
        try:
            body = dumps(reply)
            validate("workitem", reply)
        except (Malformed, TypeError, ValueError) as exc:
            raise ValueError(f"send_to_engine: not a valid workitem: {exc}") from None
        key = f"{fei['wfid']}/{fei['subid']}"
        reply_to = self.reply_tos.get(key) or self.config.boss.engine_queue
        self._outbox.put((key, reply_to, body))
        log.info("%s %s sent to the engine by the handler", fei["wfid"], fei["subid"])

    def _flush_outbox(self, link: BrokerLink) -> None:
        """Publish what ``send_to_engine`` queued (main thread). A message is
        taken off only once published: a lost connection keeps it."""
        while True:
            try:
                key, reply_to, body = self._outbox.get_nowait()
            except queue.Empty:
                return
            try:
                link.publish(reply_to, body)
            except Exception:
                self._outbox.put((key, reply_to, body))  # again after reconnecting
                raise
            self.replied.put(key, body)

    def _attach(self, handler: Any) -> None:
        """What SkyNET's Exo gave every handler: ``self.log`` (a logger named
        for the participant) and ``self.send_to_engine(wi)``."""
        logger = logging.getLogger(f"boss.participant.{self.config.name}")
        if self.config.log_level:
            try:
                logger.setLevel(self.config.log_level)
            except (ValueError, TypeError):
                log.warning("[skynet] log_level = %r: not a log level", self.config.log_level)
        if not isinstance(getattr(handler, "log", None), logging.Logger):
            handler.log = logger
        handler.send_to_engine = self.send_to_engine

    # -- lifecycle ----------------------------------------------------------
    def _lifecycle(
        self, message: str, *, config: Any = None, reason: str | None = None, fatal: bool = False
    ) -> bool:
        method = getattr(self.handler, "handle_lifecycle_control", None)
        if method is None:
            return True
        try:
            method(LifecycleControl(message, config=config, reason=reason))
        except Exception:
            log.exception("handle_lifecycle_control(%r) failed", message)
            return not fatal
        return True

    # -- the loop -----------------------------------------------------------
    def _serve(self, link: BrokerLink) -> bool:
        """Look after the job and drain events until stopped (True) or the
        connection fails (raises)."""
        if self.config.register and not self._registered:
            link.declare(self.config.boss.engine_queue)
            link.publish(
                self.config.boss.engine_queue,
                messages.register(
                    self.config.pattern,
                    self.config.queue,
                    regex=self.config.regexp is not None,
                ),
            )
            self._registered = True
            log.info("registered %r for queue %s", self.config.pattern, self.config.queue)
        while True:
            self._flush_outbox(link)
            if self._stop.is_set() and not self._stopping:
                self._stopping = True
                log.info("stopping%s", f": finishing {self.job.subid} first" if self.job else "")
            if self.job is not None:
                self._tick(link, self.job)
            self._look_at_held(link)
            if self._stopping and self.job is None and not self.held:
                link.wait_confirms()  # the last acknowledgements go first
                link.close()
                return True
            self._update_consuming(link)
            job = self.job
            if job is not None and not job.done.is_set():
                # wake the moment the handler returns (a reply must not wait
                # for a poll); while it runs, look at the broker (cancel
                # items, heartbeats, the confirm of the reply before it)
                # between waits, never after it returned
                if link.unconfirmed:
                    if not job.done.wait(PEEK / 2):
                        link.drain(PEEK)
                elif not job.done.wait(POLL):
                    link.drain(PEEK)
            else:
                link.drain(POLL)
            self._take_arrived(link)

    def _arrived(self, message: Any) -> None:
        """A delivery, from inside the connection's reader: noted, and
        handled by the loop (``_take_arrived``). Handling it here would
        publish and wait for confirms from inside a frame's dispatch, and
        publishes made that way reach the queue in the reverse order."""
        assert self.link is not None
        self._arrivals.append((self.link.generation, message))

    def _take_arrived(self, link: BrokerLink) -> None:
        while self._arrivals:
            generation, message = self._arrivals.pop(0)
            if generation == link.generation:  # else: died with its connection
                self._on_workitem(message)

    def _look_at_held(self, link: BrokerLink) -> None:
        """Start the held deliveries in turn when idle; give them all back
        when the job in hand turns out long (or leased, cancelled,
        stopping)."""
        if not self.held:
            return
        # the ones of a lost connection died with it: the broker gives them again
        self.held = [(g, m) for g, m in self.held if g == link.generation]
        while self.held and self.job is None and not self._stopping:
            _generation, message = self.held.pop(0)
            self._on_workitem(message)
        job = self.job
        if self.held and (
            job is None
            or self._stopping
            or job.leased
            or job.cancelled
            or job.elapsed >= self.config.boss.participant_hold
        ):
            held, self.held = self.held, []
            for _generation, message in held:
                self._give_back(link, message)

    def _give_back(self, link: BrokerLink, message: Any) -> None:
        """Back to the queue for another instance: the consumer stops first
        (else the broker would hand it straight back), until idle."""
        link.stop_consuming()
        message.reject(requeue=True)
        job = self.job
        if job is not None and not self._stopping:
            log.info(
                "gave the next workitem back to the queue: %s %s is %s",
                job.wfid,
                job.subid,
                "leased" if job.leased else "cancelled" if job.cancelled else "a long step",
            )

    def _update_consuming(self, link: BrokerLink) -> None:
        """Consume when idle. While a delivery is in hand (not leased) the
        consumer stays: the prefetch bounds what else comes, and RabbitMQ
        would requeue nothing on a cancel anyway."""
        job = self.job
        if self._stopping:
            link.stop_consuming()
        elif job is None:
            if not link.consuming:
                link.consume()
                if not self.ready.is_set() or log.isEnabledFor(logging.DEBUG):
                    log.info(
                        "consuming %s (cancel items on %s)", self.config.queue, link.control_queue
                    )
                self.ready.set()
        elif job.leased or job.cancelled or job.generation != link.generation:
            link.stop_consuming()

    # -- receiving ----------------------------------------------------------
    def _deadletter(self, message: Any, reason: str, queue: str) -> None:
        assert self.link is not None
        log.warning("dead-lettering a message from %s: %s", queue, reason)
        record = deadletter(
            message.body,
            reason,
            queue,
            by=f"participant {self.config.name} {self.instance}",
            content_type=message.content_type,
            headers=message.headers,
        )
        self.link.publish(self.config.boss.deadletter_queue, record)

    def _on_workitem(self, message: Any) -> None:
        link = self.link
        assert link is not None
        if self._stopping:  # came with the last ack, before the consumer stopped
            message.reject(requeue=True)
            return
        job = self.job
        if job is not None:
            # the next one (prefetch 2): started when this job ends, or
            # given back if it turns out long (``_look_at_held``)
            if len(self.held) < self.config.boss.participant_prefetch - 1 and not (
                job.leased or job.cancelled
            ):
                self.held.append((link.generation, message))
            else:
                self._give_back(link, message)
            return
        try:
            data = decode(message.body)
            if _is_ruote_cancel(data):
                # ruote's cancel item on the work queue (a registration with
                # ``ruote``): the same as our cancel on the control exchange
                self._cancel(messages.cancel_item(data["fei"], "", data.get("flavour") or "cancel"))
                message.ack()
                return
            validate("workitem", data)
        except Malformed as exc:
            self._deadletter(message, exc.reason, self.config.queue)
            message.ack()
            return
        fei, fields = data["fei"], data["fields"]
        subid = fei["subid"]
        params = fields.get("params") if isinstance(fields.get("params"), dict) else {}
        trace = self.config.debug_trace or flag(fields.get("debug_trace"))
        dump = (
            self.config.debug_dump
            or flag(fields.get("debug_dump"))
            or flag(params.get("debug_dump"))
        )
        if trace:
            log.info(
                "received %s %s (%s) for %s",
                fei["wfid"],
                subid,
                fei.get("expid"),
                data["participant_name"],
            )
        if dump:
            log.info("received workitem %s", json.dumps(data, sort_keys=True))
        reply_to = message.properties.get("reply_to") or self.config.boss.engine_queue
        key = f"{fei['wfid']}/{subid}"  # subids repeat across runs: key on both
        self.reply_tos.put(key, reply_to)
        if key in self.cancels:
            log.info("dropping %s %s: cancelled before it was taken", fei["wfid"], subid)
            message.ack()
            return
        if key in self.replied:
            body = self.replied.get(key)
            if body is not None:
                link.publish(reply_to, body)  # confirmed before the ack below
            log.info(
                "%s %s delivered again: %s, not run again",
                fei["wfid"],
                subid,
                "answered with the reply sent before" if body is not None else "it was done before",
            )
            message.ack()
            return
        job = Job(
            self.handler,
            data,
            instance=self.instance,
            reply_to=reply_to,
            message=message,
            generation=link.generation,
            trace=trace,
            dump=dump,
            steplog=self._steplog(data),
        )
        self.job = job
        job.start()

    def _steplog(self, data: dict[str, Any]) -> steplog.StepLog | None:
        """The step log of a new job (None when ``step_logs`` is off)."""
        boss = self.config.boss
        if not boss.step_logs:
            return None
        steplog.install()
        self._jobs += 1
        return steplog.StepLog(
            wfid=data["fei"]["wfid"],
            expid=str(data["fei"].get("expid") or data["fei"]["subid"]),
            participant=str(data["participant_name"]),
            job=f"{self.instance}.{self._jobs}",
            max_lines=boss.step_log_lines,
            max_bytes=boss.step_log_bytes,
        )

    def _send_logs(self, link: BrokerLink, job: Job, *, final: bool = False) -> None:
        """Publish the job's step-log batches: when one is due, and (``final``)
        the last one. A batch leaves the outbox only once published."""
        log_ = job.steplog
        if log_ is None:
            return
        if final or log_.due():
            log_.take(final=final)
        if not log_.outbox:
            return
        queue_ = self.config.boss.step_log_queue
        if self._logs_declared != link.generation:
            link.declare(queue_)
            self._logs_declared = link.generation
        while log_.outbox:
            # the last batch goes before the reply, whose acknowledgement
            # waits for every confirm before it: no wait of its own
            link.publish(queue_, log_.outbox[0], then=_nothing if final else None)
            log_.outbox.pop(0)

    def _on_control(self, message: Any) -> None:
        try:
            item = decode(message.body)
            validate("cancel", item)
        except Malformed as exc:
            assert self.link is not None
            self._deadletter(message, exc.reason, self.link.control_queue)
            return
        self._cancel(item)

    def _cancel(self, item: dict[str, Any]) -> None:
        """A cancel item (validated): cancel the job in hand, or remember it."""
        subid = item["fei"]["subid"]
        key = f"{item['fei']['wfid']}/{subid}"
        job = self.job
        self.cancels.put(key, True)
        if job is not None and job.subid == subid and job.wfid == item["fei"]["wfid"]:
            if not job.cancelled:
                log.info("%s %s cancelled while in hand: no reply", job.wfid, subid)
                job.cancel()
        elif key not in self.replied:
            log.info("cancel for %s %s remembered (not in hand)", item["fei"]["wfid"], subid)

    # -- the job in hand ----------------------------------------------------
    def _tick(self, link: BrokerLink, job: Job) -> None:
        if not job.done.is_set():
            self._send_logs(link, job)
        if job.done.is_set():
            self._finish(link, job)
        elif job.cancelled:
            self._release(link, job)
        elif not job.leased and job.elapsed >= self.config.boss.lease_after:
            self._take_lease(link, job)
        elif job.leased and time.monotonic() >= job.next_alive:
            link.publish(job.reply_to, self._lease_notice("alive", job))
            job.next_alive = time.monotonic() + self.config.boss.lease / 3

    def _lease_notice(self, kind: str, job: Job) -> dict[str, Any]:
        """``started`` (with the workitem as received, to dispatch again if
        the lease runs out) or ``alive``, for the job in hand."""
        lease = self.config.boss.lease
        if kind == "started":
            return messages.started(
                job.wfid, job.subid, lease=lease, instance=self.instance, workitem=job.original
            )
        return messages.alive(job.wfid, job.subid, lease=lease, instance=self.instance)

    def _release(self, link: BrokerLink, job: Job, *, stop: bool = True) -> None:
        """Acknowledge the delivery in hand. While the job goes on (a lease,
        a cancelled handler still running) stop the consumer first, so that
        no other delivery takes its place."""
        if job.message is None:
            return
        if job.generation == link.generation:
            if stop:
                link.stop_consuming()
            job.message.ack()
        # else: that delivery died with its connection; the broker gives it
        # again and the replied memory answers it
        job.message = None

    def _ack_when_confirmed(self, link: BrokerLink, job: Job) -> None:
        """Acknowledge the finished job's delivery once the broker confirmed
        everything published for it (its logs, events and reply); the loop
        goes on meanwhile. A connection lost first forgets it: the broker
        gives the delivery again and the replied memory answers it."""
        message, generation = job.message, job.generation
        job.message = None
        if message is None or generation != link.generation:
            return

        def ack() -> None:
            if generation == link.generation:
                message.ack()

        link.after_confirms(ack)

    def _take_lease(self, link: BrokerLink, job: Job) -> None:
        link.stop_consuming()
        link.publish(job.reply_to, self._lease_notice("started", job))
        self._release(link, job)
        job.leased = True
        job.next_alive = time.monotonic() + self.config.boss.lease / 3
        log.info(
            "took a lease on %s %s after %.1fs (lease %gs)",
            job.wfid,
            job.subid,
            job.elapsed,
            self.config.boss.lease,
        )

    def _finish(self, link: BrokerLink, job: Job) -> None:
        # the step's last lines go before its events and its reply, on the
        # same channel: never lost, never after the step has ended
        self._send_logs(link, job, final=True)
        if job.wi.events:
            # what the step produced, before its reply (the step's activity
            # ends after them); published again if this is retried after a
            # lost connection: their ids make the copy harmless
            link.publish_events(job.wi.events, wait=False)
        if job.cancelled:
            self._ack_when_confirmed(link, job)
            log.info("%s %s ended after its cancel: no reply", job.wfid, job.subid)
            self.job = None
            return
        key = f"{job.wfid}/{job.subid}"
        if not job.replied and self.replied.get(key) is not None:
            job.replied = True  # the handler sent it itself (send_to_engine)
        if not job.replied:
            if job.forget:
                self.replied.put(f"{job.wfid}/{job.subid}", None)
                if job.trace:
                    log.info("done %s %s (forget: no reply)", job.wfid, job.subid)
            else:
                reply, body = job.reply_and_body()
                link.publish(job.reply_to, body, then=_nothing)
                self.replied.put(f"{job.wfid}/{job.subid}", body)
                if job.trace:
                    err = reply.get("error")
                    log.info(
                        "replied %s %s to %s%s",
                        job.wfid,
                        job.subid,
                        job.reply_to,
                        f" with error {err['class']}: {err['message']}"
                        if isinstance(err, dict)
                        else "",
                    )
                if job.dump:
                    log.info("reply %s", json.dumps(reply, sort_keys=True))
            job.replied = True
        self._ack_when_confirmed(link, job)
        self.job = None
        self._look_at_held(link)  # the next one starts now, not after a poll


def _nothing() -> None:
    """A confirm callback that only orders (see ``BrokerLink.publish``)."""


# -- the command --------------------------------------------------------------

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"


def configure_logging(level: str = "INFO", fmt: str | None = None) -> None:
    """Timestamped lines on stderr, or JSON objects (``fmt``: the ``[boss]``
    ``log_format``; ``$BOSS_LOG_FORMAT`` wins, ``engine.logformat``); the
    libraries' chatter only at DEBUG."""
    from engine.logformat import configure_logging as configure

    configure(level, fmt, stream=sys.stderr, text=LOG_FORMAT)
    if level.upper() != "DEBUG":
        for name in ("kombu", "amqp"):
            logging.getLogger(name).setLevel(logging.WARNING)


def install_signal_handlers(runtime: Runtime) -> None:
    """First SIGTERM/SIGINT: stop gracefully. Second: exit at once (the
    broker or the engine's lease gives the workitem in hand to another)."""
    received: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        received.append(signum)
        if len(received) > 1:
            log.warning("second signal (%s): exiting at once", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(128 + signum)
        log.info(
            "%s: stopping after the workitem in hand (again to exit at once)",
            signal.Signals(signum).name,
        )
        runtime.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _is_ruote_cancel(data: Any) -> bool:
    """ruote's ``{"cancel": true, "fei": {...wfid, subid}, "flavour"}``."""
    fei = data.get("cancel") is True and data.get("fei") if isinstance(data, dict) else None
    return (
        isinstance(fei, dict)
        and isinstance(fei.get("wfid"), str)
        and isinstance(fei.get("subid"), str)
        and "fields" not in data
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config", metavar="CONFIG.ini")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Least severe level logged to stderr.",
)
def main(config: str, log_level: str) -> None:
    """Run one instance of the participant CONFIG.ini describes."""
    configure_logging(log_level)
    # hand the GIL over within 0.5 ms (not 5): the main thread and the
    # handler thread pass each step back and forth
    sys.setswitchinterval(0.0005)
    try:
        runtime = Runtime(config)
    except ParticipantConfigError as exc:
        click.echo(f"boss-participant: {exc}", err=True)
        sys.exit(2)
    if runtime.config.boss.log_format != "text":
        configure_logging(log_level, runtime.config.boss.log_format)
    install_signal_handlers(runtime)
    sys.exit(runtime.run())


if __name__ == "__main__":
    main()
