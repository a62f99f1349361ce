"""Delivery metrics from the traceability graph: lead time and the four
DORA metrics.

Lead time
---------

``lead_time(graph, change, level)`` is the time from a source change's
``meta.time`` to the *first* (earliest) ConfidenceLevelModified event named
``level`` with the given value that is downstream of the change: one whose
SUBJECT is an artifact or composition that contains the change, by the
links of ``queries.TRACE_UP_LINKS`` (the change's submission, the build it
caused, the artifact, the baselines listing it, and later changes based on
it). ``lead_times`` does that for every change of a type made in a window
and gives percentiles (linear interpolation between closest ranks, as
``numpy.percentile``'s default) over the changes that reached the level.

DORA conventions
----------------

* **Deployment**: an ``EiffelArtifactDeployedEvent``, or a
  ConfidenceLevelModified named ``deploy_level`` (default
  ``"production"``) with value SUCCESS. Its *subject* is the ARTIFACT
  target of the former, the SUBJECT targets of the latter.
* **Deployment frequency**: deployments in the window per day.
* **Lead time for changes**: for every change (SourceChangeCreated by
  default) in a deployment of the window, the time from the change to its
  *first* deployment; a change whose first deployment is before the window
  is not counted again. The median (and p90) over those changes.
* **Change failure rate**: the share of the window's deployments that
  failed. A deployment failed when, after it, a ConfidenceLevelModified
  named ``deploy_level`` with value FAILURE judges one of its subjects (a
  rollback, a failed health check), or an activity it caused (CAUSE link to
  the deployment) finished with a conclusion other than SUCCESSFUL (a
  failed smoke test).
* **Time to restore service**: for every failed deployment, from the
  failure (the earliest failure event) to the next deployment after it that
  did not fail; failures not restored by ``until_ms`` are counted apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from engine.trace.graph import Graph, event_type
from engine.trace.queries import TRACE_DOWN_LINKS, TRACE_UP_LINKS

__all__ = ["dora", "lead_time", "lead_times", "percentile"]

_CLM = "EiffelConfidenceLevelModifiedEvent"
_DEPLOYED = "EiffelArtifactDeployedEvent"
_WALK_DEPTH = 16
_WALK_LIMIT = 10_000
_DAY_MS = 86_400_000


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``values`` by linear interpolation
    between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _first_downstream(
    graph: Graph,
    start: str,
    event_types: Iterable[str],
    match: Callable[[dict[str, Any]], bool],
    link_types: Iterable[str] = TRACE_UP_LINKS,
) -> dict[str, Any] | None:
    hits = graph.downstream(
        start, tuple(link_types), _WALK_DEPTH, _WALK_LIMIT, event_types=tuple(event_types)
    )
    found = [h.event for h in hits if match(h.event)]
    return min(found, key=lambda e: e["meta"]["time"], default=None)


def _is_level(name: str, value: str) -> Callable[[dict[str, Any]], bool]:
    def match(event: dict[str, Any]) -> bool:
        data = event.get("data") or {}
        return data.get("name") == name and data.get("value") == value

    return match


def lead_time(
    graph: Graph, change_id: str, level_name: str, value: str = "SUCCESS"
) -> float | None:
    """Seconds from the change to the first confidence level ``level_name``
    = ``value`` downstream of it; None when it has none (or the change is not
    stored)."""
    change = graph.get(change_id)
    if change is None:
        return None
    first = _first_downstream(graph, change_id, [_CLM], _is_level(level_name, value))
    if first is None:
        return None
    return (first["meta"]["time"] - change["meta"]["time"]) / 1000.0


def lead_times(
    graph: Graph,
    since_ms: int | None,
    until_ms: int | None,
    level_name: str,
    value: str = "SUCCESS",
    *,
    change_type: str = "SourceChangeCreated",
    limit: int = 100_000,
) -> dict[str, Any]:
    """``lead_time`` for every change of ``change_type`` made in the window:
    ``{"per_change": {id: seconds or None}, "count": changes that reached the
    level, "pending": those that did not, "p50", "p90", "p99"}`` (seconds,
    None when no change reached it)."""
    per_change: dict[str, float | None] = {}
    for change_id in graph.ids_by_type(event_type(change_type), since_ms, until_ms, limit):
        per_change[change_id] = lead_time(graph, change_id, level_name, value)
    done = [t for t in per_change.values() if t is not None]
    return {
        "per_change": per_change,
        "count": len(done),
        "pending": len(per_change) - len(done),
        "p50": percentile(done, 50),
        "p90": percentile(done, 90),
        "p99": percentile(done, 99),
    }


# -- DORA ----------------------------------------------------------------
def _deployments(
    graph: Graph,
    since_ms: int | None,
    until_ms: int | None,
    deploy_level: str | None,
    deploy_types: Iterable[str],
) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    if deploy_level is not None:
        for event in graph.find(
            _CLM, "name", deploy_level, _WALK_LIMIT * 10, since_ms=since_ms, until_ms=until_ms
        ):
            if event["data"].get("value") == "SUCCESS":
                found[event["meta"]["id"]] = event
    for etype in deploy_types:
        for event in graph.by_type(etype, since_ms, until_ms, _WALK_LIMIT * 10):
            found[event["meta"]["id"]] = event
    return sorted(found.values(), key=lambda e: (e["meta"]["time"], e["meta"]["id"]))


def _subjects(event: dict[str, Any]) -> list[str]:
    wanted = "ARTIFACT" if event["meta"]["type"] == _DEPLOYED else "SUBJECT"
    return [link["target"] for link in event.get("links", ()) if link["type"] == wanted]


def _is_deployment(
    deploy_level: str | None, deploy_types: Iterable[str]
) -> Callable[[dict[str, Any]], bool]:
    types = set(deploy_types)

    def match(event: dict[str, Any]) -> bool:
        if event["meta"]["type"] in types:
            return True
        data = event.get("data") or {}
        return (
            event["meta"]["type"] == _CLM
            and deploy_level is not None
            and data.get("name") == deploy_level
            and data.get("value") == "SUCCESS"
        )

    return match


def _failure_time(
    graph: Graph, deployment: dict[str, Any], deploy_level: str | None, failure_value: str
) -> int | None:
    """When the deployment was found to have failed (None: it did not)."""
    at = deployment["meta"]["time"]
    times = []
    if deploy_level is not None:
        for subject in _subjects(deployment):
            for _, source in graph.links_in(subject, "SUBJECT"):
                event = graph.get(source)
                if (
                    event is not None
                    and event["meta"]["type"] == _CLM
                    and event["meta"]["time"] >= at
                    and event["data"].get("name") == deploy_level
                    and event["data"].get("value") == failure_value
                ):
                    times.append(event["meta"]["time"])
    for _, trigger in graph.links_in(deployment["meta"]["id"], "CAUSE"):
        for _, source in graph.links_in(trigger, "ACTIVITY_EXECUTION"):
            event = graph.get(source)
            if (
                event is not None
                and event["meta"]["type"] == "EiffelActivityFinishedEvent"
                and (event["data"].get("outcome") or {}).get("conclusion") != "SUCCESSFUL"
            ):
                times.append(event["meta"]["time"])
    return min(times, default=None)


def dora(
    graph: Graph,
    since_ms: int,
    until_ms: int,
    *,
    deploy_level: str | None = "production",
    deploy_types: Iterable[str] = (_DEPLOYED,),
    failure_value: str = "FAILURE",
    change_type: str = "SourceChangeCreated",
) -> dict[str, Any]:
    """The four DORA metrics over ``[since_ms, until_ms]`` (see the module
    docstring for the conventions)::

        {"window": {"since_ms", "until_ms", "days"},
         "deployments": n, "deployment_frequency_per_day": float,
         "lead_time_for_changes": {"median_s", "p90_s", "count"},
         "failed_deployments": n, "change_failure_rate": float or None,
         "time_to_restore": {"median_s", "count", "unrestored"}}
    """
    deploy_types = tuple(event_type(t) for t in deploy_types)
    days = max(until_ms - since_ms, 1) / _DAY_MS
    deployments = _deployments(graph, since_ms, until_ms, deploy_level, deploy_types)
    is_deployment = _is_deployment(deploy_level, deploy_types)

    # lead time for changes: every change in a deployment, to its first deployment
    change_type = event_type(change_type)
    lead: list[float] = []
    seen: set[str] = set()
    for deployment in deployments:
        hits = graph.upstream(
            deployment["meta"]["id"],
            TRACE_DOWN_LINKS,
            _WALK_DEPTH,
            _WALK_LIMIT,
            event_types=(change_type,),
        )
        for hit in hits:
            change = hit.event
            if change["meta"]["id"] in seen:
                continue
            seen.add(change["meta"]["id"])
            first = _first_downstream(
                graph, change["meta"]["id"], (*deploy_types, _CLM), is_deployment
            )
            if first is not None and since_ms <= first["meta"]["time"] <= until_ms:
                lead.append((first["meta"]["time"] - change["meta"]["time"]) / 1000.0)

    # failures and restores
    failures = [_failure_time(graph, d, deploy_level, failure_value) for d in deployments]
    failed = [(d, t) for d, t in zip(deployments, failures, strict=True) if t is not None]
    good = [d for d, t in zip(deployments, failures, strict=True) if t is None]
    restores: list[float] = []
    unrestored = 0
    for _, failed_at in failed:
        after = [d["meta"]["time"] for d in good if d["meta"]["time"] > failed_at]
        if after:
            restores.append((min(after) - failed_at) / 1000.0)
        else:
            unrestored += 1
    return {
        "window": {"since_ms": since_ms, "until_ms": until_ms, "days": days},
        "deployments": len(deployments),
        "deployment_frequency_per_day": len(deployments) / days,
        "lead_time_for_changes": {
            "median_s": percentile(lead, 50),
            "p90_s": percentile(lead, 90),
            "count": len(lead),
        },
        "failed_deployments": len(failed),
        "change_failure_rate": len(failed) / len(deployments) if deployments else None,
        "time_to_restore": {
            "median_s": percentile(restores, 50),
            "count": len(restores),
            "unrestored": unrestored,
        },
    }
