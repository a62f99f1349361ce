"""The engine work of one worker process: threads that the Celery worker owns
(``engine.celery_app`` starts and stops them from a bootstep), or that
anything else can run (``EngineWorker.run``).

* **consumers** (``engine_threads``, default 1): each with its own broker
  connection, consuming the engine's queue (prefetch ``engine_batch``, 128 by default), and also
  ``legacy_reply_queue`` when it is set (python-ruote-amqp participants
  reply to ``ruote_workitems``), and handing each raw body to an
  ``EngineService``. A message is acknowledged only after
  ``handle`` returned and what it published is confirmed, that is after
  its effect is stored and its own effects (dispatches, ..., its events:
  held up to ``events_linger`` for the next messages') were published;
  the next message is handled meanwhile. An exception leaves it
  unacknowledged: the broker gives it again. A message that keeps failing
  for a reason other than a lost connection is dead-lettered with its
  traceback after ``POISON_ATTEMPTS`` tries; one that no retry can change
  (``engine.service.permanent``: a body nested too deeply to read, data
  nested too deeply to handle) at once.
* **timers**: leases due timers from the store (``lease_due_timers``), so one
  firing per timer however many workers run, applies each, then
  acknowledges it; a worker that dies mid-way leaves the timer to come due
  again.
* **heartbeat**: ``engine_heartbeat`` every ``heartbeat`` seconds (alive for
  three of them). Other workers read it to decide whether a redelivered
  message's effects were carried out (``engine.engine``); ``boss workers``
  and ``boss doctor`` read it (version, threads, whether its aggregator
  child is running).
* **metrics**: with ``metrics_port``, ``/metrics`` for Prometheus on that
  port (``engine.telemetry``), and the aggregator child's on the next one.
* **aggregator**: with ``trace_threads`` > 0, a child process (``boss
  aggregator``) that writes the traceability events into the graph and,
  with ``step_logs``, the participants' step logs into the store
  (``engine.trace.aggregator.StepLogWriter``), restarted if it dies and
  stopped with the worker. A process, not threads:
  in the worker's own interpreter its validation and encoding took the GIL
  from the engine threads (p50 step latency at one run in flight 7 -> 12 ms
  on the embedded broker; ``docs/benchmarks.md``).

Workers share nothing but the broker and the store, so any number run on any
hosts.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any

import kombu
import redis
from kombu.utils.url import maybe_sanitize_url

from engine import __version__, telemetry
from engine.broker import Publisher, Topology, connect, is_redis
from engine.config import Config
from engine.consuming import BatchConsumer
from engine.core import effects as fx
from engine.logformat import use_format
from engine.service import EngineService, Incoming, permanent
from engine.store import RunStore, open_store

log = logging.getLogger("boss.worker")

__all__ = ["EngineWorker"]

#: tries before a message that keeps raising is dead-lettered
POISON_ATTEMPTS = 5
#: content types taken from the engine's queues (the body is always read as
#: JSON by ``engine.wire``): python-ruote-amqp's ``Participant`` publishes
#: its replies as ``text/plain``
ACCEPT = ["application/json", "text/plain"]
#: seconds a fired timer stays leased to the worker that fired it
TIMER_LEASE = 30.0
#: longest sleep of the timer thread between looks at the store
TIMER_POLL = 0.25
#: how much lower the aggregator child's CPU priority is than its worker's
#: (``nice``; docs/benchmarks.md)
AGGREGATOR_NICE = 10


def _buffered(sock: Any) -> bool:
    """Whether a TLS socket holds decrypted bytes not read yet (a
    ``select`` would not see them)."""
    pending = getattr(sock, "pending", None)
    return bool(pending is not None and pending())


def _transient(exc: BaseException) -> bool:
    """A lost connection (broker or store): try the message again later."""
    return isinstance(
        exc,
        redis.ConnectionError | redis.TimeoutError | OSError | kombu.exceptions.OperationalError,
    )


class EngineWorker:
    """The threads of one engine worker (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        *,
        threads: int | None = None,
        store: RunStore | None = None,
        engine_id: str | None = None,
        on_event: Any = None,
    ) -> None:
        self.config = config
        self.id = engine_id or uuid.uuid4().hex[:16]
        self.threads = threads or config.engine_threads
        self._store = store
        self.on_event = on_event
        self.stopping = threading.Event()
        self._consumers: list[_EngineConsumer] = []
        self._aggregator: subprocess.Popen | None = None
        self._threads: list[threading.Thread] = []
        self.started_at = time.time()
        self.broker_url = config.resolved_broker_url()
        self.redis_url = config.resolved_redis_url()

    def store(self) -> RunStore:
        """A store for one thread (a Redis client pool is thread-safe: shared)."""
        if self._store is None:
            self._store = open_store(self.redis_url, prefix=self.config.key_prefix)
        return self._store

    def service(self, publisher: Publisher, role: str) -> EngineService:
        """The engine of one thread (``role``: what the thread does), with an
        engine id of its own under this worker's heartbeat."""
        return EngineService(
            self.config,
            self.store(),
            publisher,
            engine_id=f"{self.id}.{role}",
            on_event=self.on_event,
        )

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> EngineWorker:
        use_format(self.config.log_format)
        if self.config.metrics_port:
            telemetry.serve(telemetry.WORKER, self.config.metrics_port, self.config.metrics_address)
        for warning in self.config.broker_warnings():
            log.warning("%s", warning)
        store = self.store()
        self._beat(store)
        for k in range(self.threads):
            consumer = _EngineConsumer(self, k)
            self._consumers.append(consumer)
            self._spawn(consumer.run, f"boss-engine-consumer-{k}")
        self._spawn(self._timers, "boss-engine-timers")
        if self.config.trace_threads > 0:
            self._spawn(self._aggregate, "boss-trace-aggregator")
        self._spawn(self._heartbeats, "boss-engine-heartbeat")
        log.info(
            "engine worker %s: %d consumer thread(s) on %s, store %s",
            self.id,
            self.threads,
            ", ".join(filter(None, (self.config.engine_queue, self.config.legacy_reply_queue))),
            maybe_sanitize_url(self.redis_url),
        )
        return self

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=self._guard, args=(target, name), name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _guard(self, target: Any, name: str) -> None:
        while not self.stopping.is_set():
            try:
                target()
                return
            except Exception:
                log.exception("%s failed; restarting it in 1s", name)
                self.stopping.wait(1.0)

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the message in hand, then stop every thread."""
        self.stopping.set()
        for consumer in self._consumers:
            consumer.should_stop = True
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        try:
            self.store().engine_gone(self.id)
        except Exception:
            log.warning("could not say goodbye to the store", exc_info=True)
        log.info("engine worker %s stopped", self.id)

    def run(self) -> None:
        """Run until ``stop()`` (from another thread or a signal handler)."""
        self.start()
        self.stopping.wait()
        self.stop()

    # -- heartbeats ---------------------------------------------------------------------

    def _beat(self, store: RunStore) -> None:
        store.engine_heartbeat(
            self.id,
            3 * self.config.heartbeat,
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started_at": self.started_at,
                "threads": self.threads,
                "queue": self.config.engine_queue,
                "handled": sum(c.handled for c in self._consumers),
                "version": __version__,
                "trace_threads": self.config.trace_threads,
                "aggregator": self._aggregator is not None and self._aggregator.poll() is None,
                "metrics_port": self.config.metrics_port,
            },
        )

    def _heartbeats(self) -> None:
        store = self.store()
        while not self.stopping.wait(self.config.heartbeat):
            try:
                self._beat(store)
            except Exception:
                log.warning("heartbeat failed", exc_info=True)

    # -- timers --------------------------------------------------------------------------

    def _timers(self) -> None:
        store = self.store()
        publisher = _Publisher(self.config, connect(self.config, url=self.broker_url))
        service = self.service(publisher, "timers")
        try:
            while not self.stopping.is_set():
                try:
                    leased = store.lease_due_timers(time.time(), TIMER_LEASE, limit=100)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    log.warning("timers: store unreachable (%s)", exc)
                    self.stopping.wait(1.0)
                    continue
                for timer_id, due, payload in leased:
                    try:
                        outcome = service.handle_timer(payload)
                        store.ack_timer(timer_id, due)
                        telemetry.timers_fired.inc()
                        log.debug("timer %s: %s", timer_id, outcome)
                    except Exception:
                        log.exception(
                            "timer %s failed; it comes due again in %ss", timer_id, TIMER_LEASE
                        )
                if len(leased) == 100:
                    continue
                nxt = store.next_timer_due()
                wait = TIMER_POLL if nxt is None else min(TIMER_POLL, max(0.0, nxt - time.time()))
                self.stopping.wait(wait)
        finally:
            publisher.close()

    # -- traceability ---------------------------------------------------------------------

    def aggregator_env(self) -> dict[str, str]:
        """The environment of the aggregator process: this worker's whole
        configuration as ``BOSS_*`` variables (it may come from overrides)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("BOSS_") or k == "BOSS_STATE_DIR"
        }
        for f in dataclasses.fields(Config):
            if f.name == "source":
                continue
            value = getattr(self.config, f.name)
            env["BOSS_" + f.name.upper()] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
        env["BOSS_BROKER_URL"] = self.broker_url
        env["BOSS_REDIS_URL"] = self.redis_url
        return env

    def _aggregate(self) -> None:
        """Keep one aggregator process running (restarted after 1 s if it
        exits) until the worker stops; then stop it gracefully."""
        argv = [
            sys.executable,
            "-m",
            "engine.trace",
            "--threads",
            str(self.config.trace_threads),
            "--steplogs",
            "1" if self.config.step_logs else "0",
            "--loglevel",
            "WARNING",
        ]
        if self.config.metrics_port:
            argv += ["--metrics-port", str(self.config.metrics_port + 1)]
        env = self.aggregator_env()
        while not self.stopping.is_set():
            proc = self._aggregator = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, preexec_fn=_aggregator_child
            )
            log.info(
                "trace aggregator started (pid %d, %d thread(s)%s)",
                proc.pid,
                self.config.trace_threads,
                ", step logs" if self.config.step_logs else "",
            )
            while proc.poll() is None and not self.stopping.wait(0.5):
                pass
            if proc.poll() is None:  # the worker is stopping
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                return
            log.warning("trace aggregator exited with %s; restarting it in 1s", proc.returncode)
            telemetry.aggregator_restarts.inc()
            self.stopping.wait(1.0)


def _aggregator_child() -> None:
    """In the aggregator child, before exec: SIGTERM when the worker dies,
    even by ``kill -9`` (Linux ``PR_SET_PDEATHSIG``; elsewhere the child
    outlives it), and a lower CPU priority (``AGGREGATOR_NICE``): under full
    load the engine's messages go first and the trace queue waits (it is
    durable; the aggregator catches up when the load drops)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    with contextlib.suppress(OSError):
        os.nice(AGGREGATOR_NICE)


class _Publisher(Publisher):
    """The worker's publisher: counts dispatches and cancels (``engine.telemetry``)."""

    def dispatch(self, effect: fx.Dispatch) -> None:
        super().dispatch(effect)
        telemetry.dispatches.inc()

    def cancel(self, effect: fx.CancelWorkitem) -> None:
        super().cancel(effect)
        telemetry.cancels.inc()

    def cancel_ruote(self, effect: fx.CancelWorkitem) -> None:
        super().cancel_ruote(effect)
        telemetry.cancels.inc()


class _EngineConsumer(BatchConsumer):
    """One consumer thread of the engine's queue, taking what the broker
    has delivered in batches (``engine.consuming``)."""

    def __init__(self, worker: EngineWorker, index: int) -> None:
        self.worker = worker
        self.index = index
        self.connection = connect(worker.config, url=worker.broker_url, heartbeat=30)
        self.publisher = _Publisher(worker.config, connect(worker.config, url=worker.broker_url))
        self.service = worker.service(self.publisher, f"c{index}")
        self.topology = Topology(worker.config)
        self.attempts: OrderedDict[str, int] = OrderedDict()
        self.handled = 0
        self.batch = worker.config.engine_batch
        self.amqp = not is_redis(worker.broker_url)
        self.connect_max_retries = None
        #: handled messages whose events are held (``events_linger``), and
        #: since when; acknowledged once the events are published and confirmed
        self.linger_events = worker.config.events_linger if worker.config.events else 0.0
        self.service.hold_events = self.linger_events > 0
        self.hold_at_most = max(1, self.batch // 2)
        self.held: list[Any] = []
        self._held_since = 0.0

    def get_consumers(self, Consumer: Any, channel: Any) -> list[Any]:
        prefetch = max(16, self.batch)
        consumers = [
            Consumer(
                queues=[self.topology.engine_queue],
                on_message=self.on_message,
                prefetch_count=prefetch,
                accept=ACCEPT,
            )
        ]
        legacy = self.topology.legacy_reply_queue
        if legacy is not None and legacy.name != self.worker.config.engine_queue:
            if not self.amqp:
                # its own channel: a Redis channel of one queue takes with
                # ``BLMOVE`` (nothing lost to a kill), of two with ``BRPOP``
                Consumer = functools.partial(kombu.Consumer, channel.connection.client.channel())
            consumers.append(
                Consumer(
                    queues=[legacy],
                    on_message=lambda message: self.on_message(message, queue=legacy.name),
                    prefetch_count=prefetch,
                    accept=ACCEPT,
                )
            )
        return consumers

    def on_batch(self, taken: list[tuple[Any, str | None]]) -> None:
        """Handle the messages taken together; acknowledge the handled
        once the broker confirmed what they published (``_owe``: meanwhile
        the next messages are handled), give back the ones to try again."""
        telemetry.batch_messages.observe(len(taken))
        failure: Exception | None = None
        with self.publisher.deferring() as mark:
            if len(taken) == 1:
                done = self.handle_one(*taken[0])
            else:
                done = self._handle_many(taken)
            if done and not self.held:
                self._held_since = time.monotonic()
            self.held += done
            flush = self._events_due()
            if flush:
                failure = self._publish_events()
        if flush:
            self._settle_held(mark(), failure)

    # -- the events of several messages in one publish ----------------------------------

    def _events_due(self) -> bool:
        """Whether to publish the events held now (else they wait for the
        next messages', ``events_linger``, and so do the messages)."""
        if not self.service.pending_events or self.linger_events <= 0:
            return True
        if len(self.held) >= self.hold_at_most:
            return True
        return not self.held or time.monotonic() - self._held_since >= self.linger_events

    def _flush_held(self) -> None:
        """Publish the events held, and owe the held messages' acks."""
        with self.publisher.deferring() as mark:
            failure = self._publish_events()
        self._settle_held(mark(), failure)

    def _publish_events(self) -> Exception | None:
        """Publish the events held (what raised, if anything: a publish that
        lost its connection is retried inside, so only what no retry cures)."""
        try:
            self.service.flush_events()
        except Exception as exc:
            return exc
        return None

    def _settle_held(self, mark: tuple[int, int], failure: Exception | None) -> None:
        """The held messages' acks owed to ``mark``; when their events could
        not be published, they are handled as a message whose handling
        raised (given back, or dead-lettered after repeated failures)."""
        held, self.held = self.held, []
        if failure is None:
            self._owe(mark, held)
            return
        queue0 = self.worker.config.engine_queue
        dead = []
        with self.publisher.deferring() as after:
            for message in held:
                queue = (getattr(message, "delivery_info", None) or {}).get("routing_key")
                if self.failed(message, queue or queue0, failure, wait=False) is not None:
                    dead.append(message)
        self._owe(after(), dead)

    def _handle_many(self, taken: list[tuple[Any, str | None]]) -> list[Any]:
        """The messages of a batch to acknowledge (the rest given back)."""
        queue0 = self.worker.config.engine_queue
        engine = self.service.engine
        conflicts = engine.conflicts
        t0 = time.perf_counter()
        outcomes = self.service.handle_batch(
            [Incoming(m.body, q or queue0, m.content_type, m.headers) for m, q in taken]
        )
        done = []
        waited = False
        for (message, queue), outcome in zip(taken, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                exc = outcome
                outcome = self.failed(message, queue or queue0, exc, wait=not waited)
                waited = waited or _transient(exc)
                if outcome is None:
                    continue
            done.append(message)
            self.handled += 1
            log.debug("%s", outcome)
        elapsed = time.perf_counter() - t0
        for _ in done:
            telemetry.handle_seconds.observe(elapsed / len(taken))
        if engine.conflicts != conflicts:
            telemetry.conflicts.inc(engine.conflicts - conflicts)
        return done

    # -- acknowledging once confirmed ------------------------------------------------

    def _owe(self, mark: tuple[int, int], done: list[Any]) -> None:
        """Acknowledge ``done`` once the publishes up to ``mark`` are
        confirmed (at once when they are: always on kombu's Redis
        transport), in the order the messages came."""
        if done:
            self.unacked.append((mark, done))
        self._settle()

    def _settle(self) -> None:
        """Acknowledge the messages whose publishes are confirmed (marks
        grow: a confirmed one confirms every one before it)."""
        ready: list[Any] = []
        unacked = self.unacked
        while unacked and self.publisher.confirmed(unacked[0][0]):
            ready += unacked.popleft()[1]
        if ready:
            self.ack(ready)

    @property
    def unacked(self) -> collections.deque[tuple[tuple[int, int], list[Any]]]:
        """Handled messages waiting for the confirms of their publishes,
        with their marks (``Publisher.deferring``), oldest first."""
        try:
            return self._unacked
        except AttributeError:
            self._unacked: collections.deque[tuple[tuple[int, int], list[Any]]] = (
                collections.deque()
            )
            return self._unacked

    def consume(self, *args: Any, **kwargs: Any) -> Any:
        # acknowledgements owed on a lost connection are void: the broker
        # gives those messages again (and the engine knows them: outbox);
        # events held stay, published with the next messages'
        self.unacked.clear()
        self.held = []
        return super().consume(*args, **kwargs)

    def wait(self, conn: Any, timeout: float) -> None:
        """Wait for a delivery, and, while messages wait for their
        confirms, for the confirms too (the publisher's own connection):
        whichever comes first is taken; no longer than the events held may
        wait (``events_linger``)."""
        if self.held:
            left = self._held_since + self.linger_events - time.monotonic()
            if left <= 0:
                self._flush_held()
            else:
                timeout = min(timeout, left)
        elif self.service.pending_events:  # of a message given back
            self._flush_held()
        if not self.unacked:
            conn.drain_events(timeout=timeout)
            return
        publisher = self.publisher
        fd = publisher.fileno()
        sock = conn.connection.sock
        if fd is None or sock is None:
            publisher.read_confirms()
            self._settle()
            raise TimeoutError()
        if _buffered(sock):
            ready: list[Any] = [sock]
        else:
            ready, _, _ = select.select([sock, fd], [], [], timeout)
        if fd in ready or not ready:
            # (and when nothing came: a confirm long overdue is seen to)
            publisher.read_confirms()
            self._settle()
        if sock in ready:
            before = len(self.pending)
            conn.drain_events(timeout=0)
            if len(self.pending) > before:
                return
        raise TimeoutError()

    def on_stop(self) -> None:
        """Acknowledge what is owed before the consumers go."""
        if self.held or self.service.pending_events:
            with contextlib.suppress(Exception):
                self._flush_held()
        if self.unacked:
            with contextlib.suppress(Exception):
                self.publisher.wait_confirmed(self.unacked[-1][0])
                self._settle()

    def ack(self, messages: list[Any]) -> None:
        """Acknowledge ``messages``: on RabbitMQ with one multiple-ack of
        the last (every other delivery of the channel up to it is in
        ``messages`` or was given back already); on kombu's Redis transport
        with one pipelined round trip (``engine.redis_transport.QoS.ack_many``)."""
        if not messages:
            return
        if self.amqp:
            last = max(messages, key=lambda m: m.delivery_tag)
            last.ack(multiple=True)
            return
        qos = getattr(messages[0].channel, "qos", None)
        if len(messages) > 1 and hasattr(qos, "ack_many"):
            # engine.redis_transport: one round trip for the batch
            qos.ack_many([m.delivery_tag for m in messages])
            for message in messages:
                message._state = "ACK"  # as Message.ack() marks it
            return
        for message in messages:
            message.ack()

    def on_message(self, message: Any, queue: str | None = None) -> None:
        """Keep a delivery for the batch in hand (``consume``); ``queue``:
        the queue it came from, named by its dead letter (the engine's queue
        by default)."""
        self.keep((message, queue))

    def on_connection_error(self, exc: BaseException, interval: float) -> None:
        log.warning("engine queue: broker unreachable (%s); retrying in %.1fs", exc, interval)

    def run(self, _tokens: int = 1, **kwargs: Any) -> None:
        try:
            super().run(_tokens, **kwargs)
        finally:
            self.publisher.close()

    def handle_one(self, message: Any, queue: str | None = None) -> list[Any]:
        """Hand one body to the service; the message to acknowledge (none
        when it was given back)."""
        queue = queue or self.worker.config.engine_queue
        engine = self.service.engine
        conflicts = engine.conflicts
        t0 = time.perf_counter()
        try:
            outcome: str | None = self.service.handle(
                message.body,
                queue=queue,
                content_type=message.content_type,
                headers=message.headers,
            )
        except Exception as exc:
            outcome = self.failed(message, queue, exc)
            if outcome is None:
                return []
        telemetry.handle_seconds.observe(time.perf_counter() - t0)
        if engine.conflicts != conflicts:
            telemetry.conflicts.inc(engine.conflicts - conflicts)
        self.handled += 1
        log.debug("%s", outcome)
        return [message]

    def failed(self, message: Any, queue: str, exc: BaseException, wait: bool = True) -> str | None:
        """A message whose handling raised: given back to the broker
        (None), after a second's pause when the store or the broker was
        unreachable (``wait``), or, after ``POISON_ATTEMPTS`` failures that
        were not a lost connection, dead-lettered (what that did:
        acknowledge it); at once when no retry can change the failure
        (``permanent``)."""
        body = message.body
        if _transient(exc):
            telemetry.error_transient.inc()
            log.warning("message not handled (%s): it will come again", exc)
            if wait:
                self.worker.stopping.wait(1.0)
            message.requeue()
            return None
        if permanent(exc):
            telemetry.error_poisoned.inc()
            log.error("message cannot be handled, not retried: %s: %.500s", type(exc).__name__, exc)
            return self.service.poisoned(body, exc, queue, retried=False)
        key = hashlib.sha1(body if isinstance(body, bytes) else body.encode()).hexdigest()
        n = self.attempts.get(key, 0) + 1
        self.attempts[key] = n
        while len(self.attempts) > 1000:
            self.attempts.popitem(last=False)
        if n < POISON_ATTEMPTS:
            telemetry.error_failed.inc()
            log.error(
                "message failed (attempt %d of %d)",
                n,
                POISON_ATTEMPTS,
                exc_info=(type(exc), exc, exc.__traceback__),
            )
            message.requeue()
            return None
        self.attempts.pop(key, None)
        telemetry.error_poisoned.inc()
        return self.service.poisoned(body, exc, queue)
