"""``/metrics`` for Prometheus: a custom collector that reads the figures
at scrape time (nothing is counted in the web process itself, so any number
of web processes give the same answer).

==================================  =======  ====================================
metric                              type     what
==================================  =======  ====================================
``boss_runs{status}``               gauge    runs in the store per status
``boss_runs_with_errors``           gauge    runs with unresolved errors
``boss_steps_finished_total``       counter  participant steps finished (the
                                             health aggregate); ``rate()`` of it
                                             is steps per second
``boss_runs_finished_total``        counter  runs finished (same source)
``boss_activity_events_total{type}``counter  Activity events in the trace graph
``boss_queue_messages{queue}``      gauge    messages waiting in the engine's and
                                             every registered participant's queue
``boss_queue_consumers{queue}``     gauge    consumers on it (where the broker
                                             tells: RabbitMQ)
``boss_engine_workers``             gauge    engine workers with a live heartbeat
``boss_up{part}``                   gauge    1 when that part (store, broker,
                                             graph) answered this scrape
``boss_web_anonymous_refusals_total counter  refused anonymous requests: POSTs
{status}``                                   without a token (400), anonymous
                                             actions and log-ins as unknown
                                             names (401), throttled log-ins
                                             (429); counted in Redis, not
                                             written to the audit log
==================================  =======  ====================================

``/metrics`` follows the pages' access rule (open when anonymous visitors
may look, else a logged-in user), or takes ``[web] metrics_token`` as a
bearer token (``webui.app``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from webui.services import Services

__all__ = ["BossCollector", "metrics_blueprint"]

_ACTIVITY = (
    "EiffelActivityTriggeredEvent",
    "EiffelActivityStartedEvent",
    "EiffelActivityFinishedEvent",
    "EiffelActivityCanceledEvent",
)


class BossCollector:
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        svc = self.svc
        up = GaugeMetricFamily("boss_up", "Whether a part answered this scrape", labels=["part"])
        try:
            runs = GaugeMetricFamily("boss_runs", "Runs per status", labels=["status"])
            for status, n in svc.store.count_runs().items():
                runs.add_metric([status], n)
            yield runs
            errors = svc.client.zcard(f"{svc.config.key_prefix}runs:errors")
            yield GaugeMetricFamily(
                "boss_runs_with_errors", "Runs with unresolved errors", value=errors
            )
            yield GaugeMetricFamily(
                "boss_engine_workers", "Engine workers alive", value=len(svc.store.engines())
            )
            refusals = CounterMetricFamily(
                "boss_web_anonymous_refusals",
                "Refused anonymous requests (not in the audit log)",
                labels=["status"],
            )
            for status, n in sorted(svc.refusals.totals().items()):
                refusals.add_metric([status], n)
            yield refusals
            up.add_metric(["store"], 1)
        except Exception:
            up.add_metric(["store"], 0)
        try:
            svc.health.update()
            totals = svc.health.totals()
            yield CounterMetricFamily(
                "boss_steps_finished", "Participant steps finished", value=totals.get("steps", 0)
            )
            yield CounterMetricFamily(
                "boss_runs_finished", "Runs finished", value=totals.get("runs", 0)
            )
            events = CounterMetricFamily(
                "boss_activity_events", "Activity events stored", labels=["type"]
            )
            for etype in _ACTIVITY:
                events.add_metric([etype], svc.graph.count(etype))
            yield events
            up.add_metric(["graph"], 1)
        except Exception:
            up.add_metric(["graph"], 0)
        try:
            depths = queue_depths(svc)
            messages = GaugeMetricFamily(
                "boss_queue_messages", "Messages waiting", labels=["queue"]
            )
            consumers = GaugeMetricFamily("boss_queue_consumers", "Consumers", labels=["queue"])
            broker_ok = 1
            for queue, info in depths.items():
                if "error" in info:
                    broker_ok = 0
                    continue
                if info.get("messages") is not None:
                    messages.add_metric([queue], info["messages"])
                if info.get("consumers") is not None:
                    consumers.add_metric([queue], info["consumers"])
            yield messages
            yield consumers
            up.add_metric(["broker"], broker_ok)
        except Exception:
            up.add_metric(["broker"], 0)
        yield up


def queue_depths(svc: Services) -> dict[str, dict[str, Any]]:
    """The engine's and every registered participant's queue."""
    from engine.broker import queue_depths as depths

    queues = [svc.config.engine_queue, *dict.fromkeys(r.queue for r in svc.engine.registrations())]
    return depths(svc.config, queues)


def metrics_blueprint(svc: Services) -> Blueprint:
    bp = Blueprint("metrics", __name__)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BossCollector(svc))  # type: ignore[arg-type]

    @bp.get("/metrics")
    def metrics() -> Response:
        return Response(
            generate_latest(registry), mimetype="text/plain; version=0.0.4; charset=utf-8"
        )

    return bp
