"""The aggregator: Eiffel events from the bus into the graph.

Any number of aggregators (threads of engine workers, ``boss aggregator``
processes on any host) consume the durable trace queue as competing
consumers; they keep no state of their own. Each takes what has arrived,
up to ``batch_size`` messages (``engine.consuming``: a lone message at
once; ``linger`` seconds of waiting for more when set), then:

1. parses each body (one event, or a JSON array of them);
2. validates every event (``engine.trace.validate``: schema, id and time
   formats, the protocol's link rules; a link target's type is looked up in
   the batch, then in the graph; a target not yet stored is not an error:
   the graph keeps a placeholder until it comes);
3. writes the valid ones to the graph in one batch (idempotent on the
   event id: an event delivered twice is stored once);
4. moves each invalid event (or unreadable body) to the trace dead-letter
   queue, whole, with the reason naming the broken rule; an event of a
   message marked imported (``x-boss-links: warn``, ``engine.trace.bus``)
   that breaks only link rules is stored, and the broken rules are recorded
   beside it in the graph (``Graph.warnings``);
5. launches the processes of the triggers the stored events match
   (``engine.trace.triggers``);
6. and only then acknowledges the messages. If the graph cannot be written
   (Redis is down), the messages go back to the queue and it tries again.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kombu
from kombu import Consumer

from engine import telemetry, wire
from engine.broker import Publisher, connect
from engine.config import Config
from engine.consuming import BatchConsumer
from engine.trace.bus import TraceTopology, link_policy
from engine.trace.triggers import TriggerStore, launch_item, matches
from engine.trace.validate import InvalidEvent, Validator

__all__ = [
    "AggregatorStats",
    "EventAggregator",
    "StepLogWriter",
    "graph_prefix",
    "ingest_bodies",
    "stored_types",
    "validator_for",
]

log = logging.getLogger("boss.trace")


def graph_prefix(config: Config) -> str:
    """The key prefix of the traceability graph (beside the run store's)."""
    return f"{config.key_prefix}g:"


def validator_for(config: Config) -> Validator:
    """A validator with the configured extra protocol definitions."""
    dirs = [d for d in config.eiffel_definitions.split(":") if d]
    return Validator(dirs)


@dataclass
class AggregatorStats:
    messages: int = 0
    events: int = 0
    stored: int = 0
    duplicates: int = 0
    invalid: int = 0
    warned: int = 0
    launched: int = 0
    batches: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


def _parse(body: bytes | str) -> list[Any]:
    data = json.loads(body)
    return data if isinstance(data, list) else [data]


def stored_types(graph: Any, ids: list[str]) -> dict[str, str]:
    """The types of the stored events among ``ids`` (one round trip)."""
    types = getattr(graph, "types", None)
    if types is not None:
        return types(ids)
    return {i: ev["meta"]["type"] for i, ev in zip(ids, graph.get_many(ids), strict=True) if ev}


#: how many stored events' types an aggregator remembers (``ingest_bodies``)
KNOWN_TYPES = 10_000


def ingest_bodies(
    bodies: list[bytes | str],
    *,
    graph: Any,
    validator: Validator,
    deadletter: Callable[[bytes | str, str], None],
    triggers: TriggerStore | None = None,
    launch: Callable[[dict[str, Any]], None] | None = None,
    stats: AggregatorStats | None = None,
    policies: list[str] | None = None,
    known: OrderedDict[str, str] | None = None,
) -> AggregatorStats:
    """One batch: parse, validate, store, dead-letter, trigger (see the
    module docstring). ``policies`` gives each body's link policy
    (``strict``, the default, or ``warn``). ``known``: the types of events
    known to be stored (an event's type never changes), kept up to date
    here with the batch's (at most ``KNOWN_TYPES``): a link to one needs
    no read of the graph. Raises only when the graph cannot be written."""
    stats = stats if stats is not None else AggregatorStats()
    candidates: list[Any] = []
    candidate_policies: list[str] = []
    for n, body in enumerate(bodies):
        stats.messages += 1
        try:
            parsed = _parse(body)
        except (ValueError, UnicodeDecodeError) as exc:
            stats.invalid += 1
            deadletter(body, f"json: the body is not JSON: {exc}")
            continue
        candidates.extend(parsed)
        candidate_policies += [policies[n] if policies else "strict"] * len(parsed)
    stats.events += len(candidates)
    in_batch = {}
    for ev in candidates:
        meta = ev.get("meta") if isinstance(ev, dict) else None
        if isinstance(meta, dict) and isinstance(meta.get("id"), str):
            in_batch[meta["id"]] = meta.get("type")
    targets = {
        link.get("target")
        for ev in candidates
        if isinstance(ev, dict)
        for link in (ev.get("links") or ())
        if isinstance(link, dict)
    }
    remembered = known if known is not None else {}
    unknown = [
        t for t in targets if isinstance(t, str) and t not in in_batch and t not in remembered
    ]
    known_types = stored_types(graph, unknown) if unknown else {}

    def target_type(target: str) -> str | None:
        return in_batch.get(target) or known_types.get(target) or remembered.get(target)

    valid: list[dict[str, Any]] = []
    warned: dict[str, list[dict[str, Any]]] = {}
    for ev, policy in zip(candidates, candidate_policies, strict=True):
        try:
            warnings = validator.validate(ev, target_type=target_type, links=policy)
        except InvalidEvent as exc:
            stats.invalid += 1
            deadletter(wire.dumps(ev), f"{exc.rule}: {exc}")
            continue
        valid.append(ev)
        if warnings:
            warned[ev["meta"]["id"]] = [
                {"rule": w.rule, "message": w.message, "path": w.path} for w in warnings
            ]
    if valid:
        result = graph.ingest(valid)
        stats.stored += result.stored
        stats.duplicates += result.duplicates
        if known is not None:
            known.update(known_types)
            known.update((ev["meta"]["id"], ev["meta"]["type"]) for ev in valid)
            while len(known) > KNOWN_TYPES:
                known.popitem(last=False)
    if warned:
        log.warning(
            "trace: %d imported event(s) stored with broken link rules (boss trace warnings)",
            len(warned),
        )
        graph.add_warnings(warned)
        stats.warned += len(warned)
    stats.batches += 1
    if triggers is not None and launch is not None and valid:
        current = triggers.all()  # once a batch (a read of their version), not once an event
        for ev in valid:
            for trigger in current:
                if matches(trigger, ev):
                    launch(launch_item(trigger, ev))
                    stats.launched += 1
    return stats


class _Batching(BatchConsumer):
    """A consumer that takes its messages in batches (``engine.consuming``:
    what has arrived, at most ``batch_size``, after waiting ``linger``
    seconds for more; 0: not at all) and hands them to ``flush`` (the
    subclass's) as ``_pending``. A lone message is handled at once: an
    event waits for no company, and the engine's publish of it is
    confirmed by its acknowledgement rather than by the broker's disk."""

    batch_size: int
    _pending: list[kombu.Message]

    @property
    def batch(self) -> int:  # type: ignore[override]
        return self.batch_size

    def flush(self) -> None:
        raise NotImplementedError

    def run_forever(self) -> None:
        """Consume until ``should_stop`` is set (looked at every 0.25 s)."""
        self.run(safety_interval=0.25)

    def on_batch(self, taken: list[kombu.Message]) -> None:
        self._pending = taken
        self.flush()

    def _on_message(self, message: kombu.Message) -> None:
        self.keep(message)


class EventAggregator(_Batching):
    """One aggregator: a kombu consumer of the trace queue."""

    def __init__(
        self,
        config: Config,
        graph: Any,
        *,
        connection: kombu.Connection | None = None,
        validator: Validator | None = None,
        triggers: TriggerStore | None = None,
        batch_size: int = 500,
        linger: float = 0.0,
    ) -> None:
        self.config = config
        self.graph = graph
        self.connection = connection if connection is not None else connect(config)
        self.topology = TraceTopology(config)
        self.validator = validator if validator is not None else validator_for(config)
        self.triggers = triggers
        self.batch_size = batch_size
        self.linger = linger
        self.stats = AggregatorStats()
        self._pending: list[kombu.Message] = []
        #: the types of the events stored lately (``ingest_bodies``)
        self._known: OrderedDict[str, str] = OrderedDict()
        self._publisher: Publisher | None = None
        self._letters: Publisher | None = None

    # -- kombu ---------------------------------------------------------------------
    def get_consumers(self, consumer: type[Consumer], channel: Any) -> list[Consumer]:
        return [
            consumer(
                queues=[self.topology.queue],
                on_message=self._on_message,
                prefetch_count=self.batch_size * 2,
            )
        ]

    # -- a batch -------------------------------------------------------------------
    def _deadletter(self, body: bytes | str, reason: str) -> None:
        if self._letters is None:
            self._letters = Publisher(self.topology.deadletter_config)
        log.warning("trace: dead-lettered an event: %s", reason.splitlines()[0])
        self._letters.deadletter(
            wire.deadletter(
                body,
                reason,
                self.config.trace_queue,
                by=f"aggregator on {self.connection.hostname}",
                content_type="application/json",
            )
        )

    def _launch(self, item: dict[str, Any]) -> None:
        if self._publisher is None:
            self._publisher = Publisher(self.config)
        log.info("trace: trigger launches %s for event %s", item["process"], item["cause"][0])
        self._publisher.send(item)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        st = self.stats
        before = (st.messages, st.stored, st.duplicates, st.invalid, st.warned, st.launched)
        t0 = time.perf_counter()
        try:
            ingest_bodies(
                [m.body for m in pending],
                policies=[link_policy(m.headers) for m in pending],
                graph=self.graph,
                validator=self.validator,
                deadletter=self._deadletter,
                triggers=self.triggers,
                launch=self._launch,
                stats=self.stats,
                known=self._known,
            )
        except Exception as exc:
            self.stats.retries += 1
            telemetry.trace_retries.inc()
            self.stats.errors = [*self.stats.errors[-9:], repr(exc)]
            log.exception(
                "trace: could not store a batch of %d messages; they go back to the queue",
                len(pending),
            )
            for m in pending:
                m.requeue()
            time.sleep(min(5.0, 0.2 * self.stats.retries))
            return
        for m in pending:
            m.ack()
        telemetry.trace_flush_seconds.observe(time.perf_counter() - t0)
        telemetry.trace_batch.observe(len(pending))
        messages, stored, duplicates, invalid, warned, launched = (
            now - then
            for now, then in zip(
                (st.messages, st.stored, st.duplicates, st.invalid, st.warned, st.launched),
                before,
                strict=True,
            )
        )
        telemetry.trace_messages.inc(messages)
        telemetry.count_events(stored, duplicates, invalid, warned)
        if invalid:
            telemetry.trace_deadletters.inc(invalid)
        if launched:
            telemetry.trace_launched.inc(launched)

    def close(self) -> None:
        for p in (self._publisher, self._letters):
            if p is not None:
                p.close()
        self.connection.release()


class StepLogWriter(_Batching):
    """Step logs from the broker into the store: a kombu consumer of
    ``config.step_log_queue`` (participants publish a job's lines there in
    numbered batches, ``participants.steplog``). As the aggregator, it
    takes what has arrived (at most ``batch_size`` messages), writes it in
    one round trip (``engine.store.steplogs``: in batch order, once,
    bounded per step, with a TTL) and only then
    acknowledges; when Redis cannot be written the messages go back.

    It runs in the aggregator process (``run_aggregators``), not in the
    engine worker: that process already batches writes to Redis away from
    the engine threads' GIL, is restarted by the worker and is what ``boss
    aggregator`` runs on other hosts. A thread and a queue of its own, so a
    flood of log lines never delays the traceability events."""

    def __init__(
        self,
        config: Config,
        client: Any,
        *,
        connection: kombu.Connection | None = None,
        batch_size: int = 200,
        linger: float = 0.0,
    ) -> None:
        from kombu import Queue

        from engine.store.steplogs import StepLogs

        self.config = config
        self.logs = StepLogs(
            client,
            config.key_prefix,
            ttl=config.step_log_ttl,
            max_lines=config.step_log_lines,
            max_bytes=config.step_log_bytes,
        )
        self.connection = connection if connection is not None else connect(config)
        self.queue = Queue(config.step_log_queue, durable=True)
        self.batch_size = batch_size
        self.linger = linger
        self.written = 0
        self.refused = 0
        self.retries = 0
        self._pending: list[kombu.Message] = []

    def get_consumers(self, consumer: type[Consumer], channel: Any) -> list[Consumer]:
        return [
            consumer(
                queues=[self.queue],
                on_message=self._on_message,
                prefetch_count=self.batch_size * 2,
                accept=["application/json", "text/plain"],
            )
        ]

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        t0 = time.perf_counter()
        try:
            written, refused = self.logs.write([m.body for m in pending])
        except Exception:
            self.retries += 1
            telemetry.steplog_retries.inc()
            log.exception("step logs: could not write %d batches; they go back", len(pending))
            for m in pending:
                m.requeue()
            time.sleep(min(5.0, 0.2 * self.retries))
            return
        self.retries = 0
        self.written += written
        for _body, why in refused:
            # lines, not events: a batch no participant of ours sent is dropped, said once
            self.refused += 1
            log.warning("step logs: dropped a message that is not a batch of lines: %s", why)
        for m in pending:
            m.ack()
        telemetry.steplog_flush_seconds.observe(time.perf_counter() - t0)
        telemetry.steplog_batches.inc(len(pending) - len(refused))
        if written:
            telemetry.steplog_lines.inc(written)
        if refused:
            telemetry.steplog_refused.inc(len(refused))

    def close(self) -> None:
        self.connection.release()


def run_aggregators(
    config: Config, client: Any, *, threads: int = 1, batch: int = 500, steplogs: int | None = None
) -> list[AggregatorStats]:
    """Run ``threads`` aggregators (each with its own broker connection) in
    this process until SIGTERM or SIGINT; their stats when they stopped.
    ``boss aggregator`` and the engine worker's aggregator child process
    (``python -m engine.trace``) run this. ``steplogs``: step-log writers
    beside them (``StepLogWriter``; default one when ``config.step_logs``)."""
    import signal
    import threading

    from engine.logformat import use_format
    from engine.trace.graph import Graph

    use_format(config.log_format)  # ``boss aggregator`` too: JSON lines on request
    if steplogs is None:
        steplogs = 1 if config.step_logs else 0
    writers = [
        StepLogWriter(config, client, connection=connect(config, heartbeat=30))
        for _ in range(steplogs)
    ]
    aggregators: list[Any] = [
        EventAggregator(
            config,
            Graph(client, prefix=graph_prefix(config)),
            connection=connect(config, heartbeat=30),
            triggers=TriggerStore(client, config.key_prefix),
            batch_size=batch,
        )
        for _ in range(threads)
    ]
    stats = [a.stats for a in aggregators]
    aggregators += writers

    def stop(*_: Any) -> None:
        for a in aggregators:
            a.should_stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runners = [
        threading.Thread(target=a.run_forever, name=f"aggregator-{i}", daemon=True)
        for i, a in enumerate(aggregators)
    ]
    for t in runners:
        t.start()
    for t in runners:
        while t.is_alive():
            t.join(0.5)
    for a in aggregators:
        a.close()
    return stats
