"""Prometheus metrics of the engine worker and of the aggregator process
(``[boss] metrics_port``, ``metrics_address``; ``docs/install.md``).

Two registries, one per process kind, each served by
``prometheus_client.start_http_server`` on its own port: an engine worker
serves ``WORKER`` on ``metrics_port``; its aggregator child process (``python
-m engine.trace``, ``engine.worker``) serves ``TRACE`` on ``metrics_port +
1``. Separate ports rather than prometheus_client's multiprocess mode: that
mode needs a shared directory cleaned at every start and a variable set
before the library is imported, and the two processes count different
things anyway. A process that cannot bind its port logs a warning and runs
on without ``/metrics``.

Worker (``WORKER``)::

    boss_engine_messages_total{type}       engine-queue messages handled, per type
                                           (malformed ones: type="malformed")
    boss_engine_handle_seconds             histogram: the handling of one message
    boss_engine_batch_messages             histogram: messages taken and handled
                                           together (``engine_batch``)
    boss_engine_dispatches_total           workitems sent to participants
    boss_engine_cancels_total              cancel items sent
    boss_engine_errors_total{kind}         handling raised: transient (lost
                                           connection, requeued), failed (requeued),
                                           poisoned (dead-lettered at last)
    boss_engine_deadletters_total          messages dead-lettered (malformed, poisoned)
    boss_engine_conflicts_total            lost compare-and-set races on a run, retried
    boss_engine_deferred_total             messages deferred: their run is another
                                           live engine's (``Undecided``)
    boss_engine_timers_fired_total         timers applied
    boss_engine_aggregator_restarts_total  the aggregator child exited and was restarted

Aggregator process (``TRACE``)::

    boss_trace_messages_total              trace-queue messages taken
    boss_trace_events_total{outcome}       stored, duplicate, invalid, warned
    boss_trace_deadletters_total           events and bodies dead-lettered
    boss_trace_launched_total              processes launched by triggers
    boss_trace_batch_messages              histogram: messages per batch
    boss_trace_flush_seconds               histogram: writing one batch
    boss_trace_retries_total               batches put back (the store failed)
    boss_steplog_batches_total             step-log messages written
    boss_steplog_lines_total               step-log lines kept
    boss_steplog_refused_total             step-log messages dropped (not a batch)
    boss_steplog_flush_seconds             histogram: writing one batch
    boss_steplog_retries_total             batches put back (the store failed)

The hot path pays one counter increment (a lock and an addition) per
message and one histogram observation; children with labels are looked up
once, here.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

__all__ = ["TRACE", "WORKER", "serve"]

log = logging.getLogger("boss.metrics")

WORKER = CollectorRegistry(auto_describe=True)
TRACE = CollectorRegistry(auto_describe=True)

#: seconds: a message is handled in milliseconds (a store round trip or a few)
_HANDLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_FLUSH_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

# -- the engine worker ----------------------------------------------------------------------

messages = Counter(
    "boss_engine_messages",
    "Engine-queue messages handled, per message type",
    ["type"],
    registry=WORKER,
)
handle_seconds = Histogram(
    "boss_engine_handle_seconds",
    "Seconds to handle one engine-queue message (stored and its effects published)",
    buckets=_HANDLE_BUCKETS,
    registry=WORKER,
)
batch_messages = Histogram(
    "boss_engine_batch_messages",
    "Messages an engine consumer took and handled together (at most engine_batch)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=WORKER,
)
dispatches = Counter(
    "boss_engine_dispatches", "Workitems dispatched to participants", registry=WORKER
)
cancels = Counter("boss_engine_cancels", "Cancel items sent to participants", registry=WORKER)
errors = Counter(
    "boss_engine_errors",
    "Messages whose handling raised: transient (requeued), failed (requeued), poisoned",
    ["kind"],
    registry=WORKER,
)
deadletters = Counter(
    "boss_engine_deadletters", "Messages moved to the dead-letter queue", registry=WORKER
)
conflicts = Counter(
    "boss_engine_conflicts", "Lost compare-and-set races on a run (retried)", registry=WORKER
)
deferred = Counter(
    "boss_engine_deferred",
    "Messages deferred because their run is held by another live engine",
    registry=WORKER,
)
timers_fired = Counter("boss_engine_timers_fired", "Timers applied", registry=WORKER)
aggregator_restarts = Counter(
    "boss_engine_aggregator_restarts",
    "Times the aggregator child process exited and was restarted",
    registry=WORKER,
)

#: ``messages.labels(type)``, looked up once per type
_by_type: dict[str, Any] = {}


def count_message(kind: str) -> None:
    """One message of type ``kind`` handled."""
    child = _by_type.get(kind)
    if child is None:
        child = _by_type[kind] = messages.labels(kind)
    child.inc()


error_transient = errors.labels("transient")
error_failed = errors.labels("failed")
error_poisoned = errors.labels("poisoned")

# -- the aggregator process -----------------------------------------------------------------

trace_messages = Counter("boss_trace_messages", "Trace-queue messages taken", registry=TRACE)
trace_events = Counter(
    "boss_trace_events",
    "Eiffel events judged: stored, duplicate, invalid (dead-lettered), warned",
    ["outcome"],
    registry=TRACE,
)
trace_deadletters = Counter(
    "boss_trace_deadletters",
    "Events and bodies moved to the trace dead-letter queue",
    registry=TRACE,
)
trace_launched = Counter("boss_trace_launched", "Processes launched by triggers", registry=TRACE)
trace_batch = Histogram(
    "boss_trace_batch_messages",
    "Messages per aggregator batch",
    buckets=_BATCH_BUCKETS,
    registry=TRACE,
)
trace_flush_seconds = Histogram(
    "boss_trace_flush_seconds",
    "Seconds to validate and store one batch",
    buckets=_FLUSH_BUCKETS,
    registry=TRACE,
)
trace_retries = Counter(
    "boss_trace_retries", "Batches put back on the queue (the store failed)", registry=TRACE
)
steplog_batches = Counter(
    "boss_steplog_batches", "Step-log messages written to the store", registry=TRACE
)
steplog_lines = Counter("boss_steplog_lines", "Step-log lines kept", registry=TRACE)
steplog_refused = Counter(
    "boss_steplog_refused", "Step-log messages dropped (not a batch of lines)", registry=TRACE
)
steplog_flush_seconds = Histogram(
    "boss_steplog_flush_seconds",
    "Seconds to write one batch of step logs",
    buckets=_FLUSH_BUCKETS,
    registry=TRACE,
)
steplog_retries = Counter(
    "boss_steplog_retries", "Step-log batches put back (the store failed)", registry=TRACE
)

_outcomes = {k: trace_events.labels(k) for k in ("stored", "duplicate", "invalid", "warned")}


def count_events(stored: int, duplicates: int, invalid: int, warned: int) -> None:
    """What one aggregator batch did with its events."""
    for key, n in (
        ("stored", stored),
        ("duplicate", duplicates),
        ("invalid", invalid),
        ("warned", warned),
    ):
        if n:
            _outcomes[key].inc(n)


# -- serving --------------------------------------------------------------------------------


def serve(registry: CollectorRegistry, port: int, address: str = "127.0.0.1") -> int | None:
    """Serve ``registry`` on ``http://address:port/metrics`` (a daemon
    thread); the port bound (``port`` 0: any free one), or None, with a
    warning logged, when it cannot be bound."""
    try:
        server, _thread = start_http_server(port, addr=address or "0.0.0.0", registry=registry)
    except OSError as exc:
        log.warning("metrics: cannot serve on %s:%d (%s); no /metrics", address, port, exc)
        return None
    bound = int(server.server_port)
    log.info("metrics: serving http://%s:%d/metrics", address, bound)
    return bound
