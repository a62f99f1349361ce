"""Traceability questions over the graph (``engine.trace.graph``).

* ``trace_up(graph, change)``: which artifacts, compositions (baselines),
  confidence levels and deployments contain this source change? Walks
  *downstream* in link terms (the events that link, transitively, to the
  change: the submission that merged it, the builds it caused, the baselines
  that list those artifacts, the confidence levels given to them).
* ``trace_down(graph, artifact_or_baseline)``: which source changes, issues,
  compositions, components (artifacts) and environments went into it? Walks
  *upstream* (what it links to, transitively).

Which links mean "contains" (the defaults, ``TRACE_UP_LINKS`` and
``TRACE_DOWN_LINKS``):

* followed both ways: CHANGE (submission -> change), ELEMENT (composition ->
  its elements), COMPOSITION (artifact -> what it was built from), CAUSE and
  CONTEXT (a build run caused by a submission; an artifact made in that
  run), ARTIFACT (publication -> artifact), SUBJECT (confidence level ->
  what it judges), SUB_CONFIDENCE_LEVEL, REUSED_ARTIFACT;
* trace up also follows BASE (a change made on top of a submission): a
  change is contained in everything built on a later state of its branch,
  which is what "which releases contain my change" asks;
* trace down also follows RESOLVED_ISSUE, PARTIALLY_RESOLVED_ISSUE and
  ENVIRONMENT, but not BASE unless ``history=True``: what went *into* an
  artifact is what it lists and the changes that made those, not the whole
  history of every branch under it;
* neither follows PREVIOUS_VERSION: a new version of a composition does not
  contain the old one, an earlier patchset of a change is not part of the
  final one.

``find_by_data`` looks events up by the indexed data fields (a commit sha,
an artifact's purl, a composition's or confidence level's name).

Across sites (``docs/federation.md``) each event carries its site in
``meta.source.domainId`` (``site_of``). An event linked to but never
received (a peer's event that was not shared with this site) is a
placeholder in the graph: ``not_shared`` lists those a trace down reaches,
each with the domain it belongs to (the link's ``domainId``, else the
linking event's), and ``unshared_event`` says what is known of one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.trace.graph import Graph, event_type

__all__ = [
    "TRACE_DOWN_LINKS",
    "TRACE_UP_LINKS",
    "find_by_data",
    "find_source_change",
    "not_shared",
    "site_of",
    "trace_down",
    "trace_up",
    "unreceived",
    "unshared_event",
]

# The links followed both ways (see the module docstring), CHANGE aside: it
# leads both tuples, so that each keeps the order it has always had.
_BOTH_WAYS = (
    "ELEMENT",
    "COMPOSITION",
    "CAUSE",
    "CONTEXT",
    "ARTIFACT",
    "SUBJECT",
    "SUB_CONFIDENCE_LEVEL",
    "REUSED_ARTIFACT",
)
TRACE_UP_LINKS = ("CHANGE", "BASE", *_BOTH_WAYS)
TRACE_DOWN_LINKS = (
    "CHANGE",
    *_BOTH_WAYS,
    "RESOLVED_ISSUE",
    "PARTIALLY_RESOLVED_ISSUE",
    "ENVIRONMENT",
)

_UP_CATEGORIES = {
    "EiffelSourceChangeCreatedEvent": "source_changes",
    "EiffelSourceChangeSubmittedEvent": "source_changes",
    "EiffelCompositionDefinedEvent": "compositions",
    "EiffelArtifactCreatedEvent": "artifacts",
    "EiffelArtifactPublishedEvent": "publications",
    "EiffelArtifactDeployedEvent": "deployments",
    "EiffelConfidenceLevelModifiedEvent": "confidence_levels",
}
_DOWN_CATEGORIES = {
    "EiffelSourceChangeCreatedEvent": "source_changes",
    "EiffelSourceChangeSubmittedEvent": "source_changes",
    "EiffelIssueDefinedEvent": "issues",
    "EiffelCompositionDefinedEvent": "compositions",
    "EiffelArtifactCreatedEvent": "artifacts",
    "EiffelEnvironmentDefinedEvent": "environments",
}


def _grouped(hits: Iterable[Any], categories: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in dict.fromkeys(categories.values())}
    for hit in hits:
        out[categories[hit.event["meta"]["type"]]].append(hit.event)
    for events in out.values():
        events.sort(key=lambda e: (e["meta"]["time"], e["meta"]["id"]))
    return out


def trace_up(
    graph: Graph,
    source_change_id: str,
    *,
    link_types: Iterable[str] = TRACE_UP_LINKS,
    depth: int = 10,
    limit: int = 100,
) -> dict[str, list[dict[str, Any]]]:
    """What contains the change (or any event): ``{"source_changes",
    "compositions", "artifacts", "publications", "deployments",
    "confidence_levels"}``, each a list of events by time. ``limit`` counts
    the events returned, over all the lists."""
    hits = graph.downstream(
        source_change_id, tuple(link_types), depth, limit, event_types=tuple(_UP_CATEGORIES)
    )
    return _grouped(hits, _UP_CATEGORIES)


def trace_down(
    graph: Graph,
    artifact_or_baseline_id: str,
    *,
    history: bool = False,
    link_types: Iterable[str] | None = None,
    depth: int = 10,
    limit: int = 100,
    placeholders: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """What went into an artifact, composition, confidence level or
    deployment: ``{"source_changes", "issues", "compositions", "artifacts",
    "environments"}``, each a list of events by time. ``history`` also
    follows BASE (the branch history under every change). ``placeholders``
    adds ``"not_shared"``: the events on the way that this graph never
    received (``not_shared``)."""
    if link_types is None:
        link_types = TRACE_DOWN_LINKS + (("BASE",) if history else ())
    hits = graph.upstream(
        artifact_or_baseline_id,
        tuple(link_types),
        depth,
        limit,
        event_types=tuple(_DOWN_CATEGORIES),
    )
    result = _grouped(hits, _DOWN_CATEGORIES)
    if placeholders:
        result["not_shared"] = not_shared(
            graph, artifact_or_baseline_id, link_types=link_types, depth=depth
        )
    return result


def site_of(event: dict[str, Any] | None) -> str | None:
    """The site (Eiffel ``meta.source.domainId``) an event came from."""
    source = ((event or {}).get("meta") or {}).get("source")
    domain = source.get("domainId") if isinstance(source, dict) else None
    return domain if isinstance(domain, str) else None


def not_shared(
    graph: Graph,
    event_id: str,
    *,
    link_types: Iterable[str] = TRACE_DOWN_LINKS,
    depth: int = 10,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """The link targets a walk up from ``event_id`` (over ``link_types``)
    reaches that this graph never received (placeholders): ``{"id",
    "domain", "via", "from"}`` each, ``domain`` the link's ``domainId``,
    else the linking event's site (None when neither is known)."""
    wanted = set(link_types)
    start = graph.get(event_id)
    reached = ([start] if start is not None else []) + [
        h.event for h in graph.upstream(event_id, tuple(wanted), depth, limit)
    ]
    return unreceived(graph, reached, wanted, also_held={event_id})


def unreceived(
    graph: Graph,
    events: list[dict[str, Any]],
    link_types: Iterable[str] | None = None,
    *,
    also_held: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The targets of ``events``' links (of ``link_types``; None: every
    type) that this graph never received: ``{"id", "domain", "via",
    "from"}`` each, ``domain`` the link's ``domainId``, else the linking
    event's site (None when neither is known)."""
    wanted = None if link_types is None else set(link_types)
    seen = {e["meta"]["id"] for e in events} | set(also_held)
    edges = [
        (ev, link)
        for ev in events
        for link in ev.get("links") or ()
        if link.get("target") not in seen and (wanted is None or link.get("type") in wanted)
    ]
    targets = list(dict.fromkeys(link["target"] for _, link in edges))
    if not targets:
        return []
    missing = {t for t, ev in zip(targets, graph.get_many(targets), strict=True) if ev is None}
    out: dict[str, dict[str, Any]] = {}
    for ev, link in edges:
        target = link["target"]
        if target in missing and target not in out:
            out[target] = {
                "id": target,
                "domain": link.get("domainId") or site_of(ev),
                "via": link["type"],
                "from": ev["meta"]["id"],
            }
    return list(out.values())


def unshared_event(graph: Graph, event_id: str) -> dict[str, Any] | None:
    """What is known of an event this graph links to but never received
    (None when it is stored, or nothing links to it): ``{"id", "domain",
    "linked_from": [{"type", "source", "domain"}]}``."""
    if graph.exists(event_id):
        return None
    links = graph.links_in(event_id)
    if not links:
        return None
    sources = graph.get_many([source for _, source in links])
    linked_from = []
    domains = []
    for (ltype, source), ev in zip(links, sources, strict=True):
        link = next(
            (
                x
                for x in ((ev or {}).get("links") or ())
                if x.get("target") == event_id and x.get("type") == ltype
            ),
            {},
        )
        domain = link.get("domainId") or site_of(ev)
        domains.append(domain)
        linked_from.append({"type": ltype, "source": source, "domain": site_of(ev)})
    known = [d for d in domains if d]
    return {
        "id": event_id,
        "domain": max(set(known), key=known.count) if known else None,
        "linked_from": linked_from,
    }


def find_by_data(
    graph: Graph, etype: str, field: str, value: str | int, limit: int = 1000
) -> list[dict[str, Any]]:
    """Events of type ``etype`` (``"ArtifactCreated"`` or the full name)
    whose ``data.<field>`` equals ``value``, oldest first. Indexed at ingest
    (``engine.trace.graph.INDEX_FIELDS``): SourceChange events by
    ``gitIdentifier.commitId`` (and ``hgIdentifier.commitId``), Artifact by
    ``identity`` (the purl), Composition, ConfidenceLevel and Environment by
    ``name``, Issue by ``id``."""
    return graph.find(event_type(etype), field, value, limit)


def find_source_change(graph: Graph, commit: str) -> list[dict[str, Any]]:
    """The SourceChangeCreated and -Submitted events of a commit sha, by
    time."""
    events = []
    for etype in ("EiffelSourceChangeCreatedEvent", "EiffelSourceChangeSubmittedEvent"):
        for path in ("gitIdentifier.commitId", "hgIdentifier.commitId"):
            if path in graph.index_fields.get(etype, ()):
                events += graph.find(etype, path, commit)
    events.sort(key=lambda e: (e["meta"]["time"], e["meta"]["id"]))
    return events
