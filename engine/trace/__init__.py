"""Traceability: Eiffel events from runs and participants, the event bus,
the aggregators and the trace graph (``docs/traceability.md``).

This is the package's surface: the rest of the code imports from here
(``from engine.trace import Graph, graph_prefix, activity_id, eiffel``),
never from the submodules, which stay private to the package (the tests
may use them). Names are loaded on first use (PEP 562), so ``import
engine.trace`` is cheap and loads neither kombu nor redis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.trace import cdevents, cloudevents, eiffel, metrics, signing
    from engine.trace.activity import activity_id, record_event, step_activity_id
    from engine.trace.aggregator import graph_prefix, run_aggregators, validator_for
    from engine.trace.bus import EventBus, TraceTopology, routing_key
    from engine.trace.eiffel import new_event
    from engine.trace.formats import EventFileError, read_file, write_json, write_jsonl
    from engine.trace.graph import Graph, Hit
    from engine.trace.http import trace_blueprint
    from engine.trace.metrics import lead_time, percentile
    from engine.trace.queries import (
        find_source_change,
        not_shared,
        site_of,
        trace_down,
        trace_up,
        unreceived,
        unshared_event,
    )
    from engine.trace.synthetic import PipelineGenerator
    from engine.trace.triggers import Trigger, TriggerError, TriggerStore
    from engine.trace.triggers import matches as trigger_matches
    from engine.trace.validate import InvalidEvent
    from engine.trace.validate import validate as validate_event

#: the submodules that are part of the surface, as modules
_MODULES = frozenset({"cdevents", "cloudevents", "eiffel", "metrics", "signing"})

#: name -> (submodule, attribute)
_NAMES = {
    "activity_id": ("activity", "activity_id"),
    "record_event": ("activity", "record_event"),
    "step_activity_id": ("activity", "step_activity_id"),
    "graph_prefix": ("aggregator", "graph_prefix"),
    "run_aggregators": ("aggregator", "run_aggregators"),
    "validator_for": ("aggregator", "validator_for"),
    "EventBus": ("bus", "EventBus"),
    "TraceTopology": ("bus", "TraceTopology"),
    "routing_key": ("bus", "routing_key"),
    "new_event": ("eiffel", "new_event"),
    "EventFileError": ("formats", "EventFileError"),
    "read_file": ("formats", "read_file"),
    "write_json": ("formats", "write_json"),
    "write_jsonl": ("formats", "write_jsonl"),
    "Graph": ("graph", "Graph"),
    "Hit": ("graph", "Hit"),
    "trace_blueprint": ("http", "trace_blueprint"),
    "lead_time": ("metrics", "lead_time"),
    "percentile": ("metrics", "percentile"),
    "find_source_change": ("queries", "find_source_change"),
    "not_shared": ("queries", "not_shared"),
    "site_of": ("queries", "site_of"),
    "unreceived": ("queries", "unreceived"),
    "trace_down": ("queries", "trace_down"),
    "trace_up": ("queries", "trace_up"),
    "unshared_event": ("queries", "unshared_event"),
    "PipelineGenerator": ("synthetic", "PipelineGenerator"),
    "Trigger": ("triggers", "Trigger"),
    "TriggerError": ("triggers", "TriggerError"),
    "TriggerStore": ("triggers", "TriggerStore"),
    "trigger_matches": ("triggers", "matches"),
    "InvalidEvent": ("validate", "InvalidEvent"),
    "validate_event": ("validate", "validate"),
}

__all__ = [
    "EventBus",
    "EventFileError",
    "Graph",
    "Hit",
    "InvalidEvent",
    "PipelineGenerator",
    "TraceTopology",
    "Trigger",
    "TriggerError",
    "TriggerStore",
    "activity_id",
    "cdevents",
    "cloudevents",
    "eiffel",
    "find_source_change",
    "graph_prefix",
    "lead_time",
    "metrics",
    "new_event",
    "not_shared",
    "percentile",
    "read_file",
    "record_event",
    "routing_key",
    "run_aggregators",
    "signing",
    "site_of",
    "step_activity_id",
    "trace_blueprint",
    "trace_down",
    "trace_up",
    "trigger_matches",
    "unreceived",
    "unshared_event",
    "validate_event",
    "validator_for",
    "write_json",
    "write_jsonl",
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value: Any = importlib.import_module(f"{__name__}.{name}")
    elif name in _NAMES:
        module, attr = _NAMES[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
