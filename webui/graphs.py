"""Data for the pictures: a definition as a flow graph (with a run's
positions and finished steps marked), a run's timeline of steps from its
traceability events, and a trace neighbourhood as graph elements.

The output is plain JSON in Cytoscape.js's element format (``{"data":
{...}}`` per node and edge), drawn by ``static/boss.js`` with the dagre
layout.
"""

from __future__ import annotations

from typing import Any

from engine.core.definition import Definition, Node

__all__ = ["definition_graph", "timeline", "trace_elements"]

#: expressions whose children run one after the other
_SERIAL = {"sequence", "cursor", "loop", "iterator", "reserve"}
#: expressions whose children run side by side
_PARALLEL = {"concurrence", "concurrent_iterator"}


def _label(node: Node) -> str:
    if node.kind == "participant":
        return str(node.opts.get("ref"))
    if node.kind == "subprocess":
        return f"subprocess {node.opts.get('ref')}"
    if node.kind == "iterator" or node.kind == "concurrent_iterator":
        return f"{node.kind} {node.opts.get('to', 'i')} in {node.opts.get('on')}"
    if node.kind == "echo":
        return f"echo {str(node.opts.get('text', ''))[:30]}"
    if node.kind == "set":
        return "set " + ", ".join(map(str, (node.opts.get("values") or {}).keys()))[:40]
    if node.kind == "if":
        return "if"
    return node.kind


def definition_graph(d: Definition, marks: dict[str, str] | None = None) -> dict[str, Any]:
    """The definition's body as nodes and edges (``elements``). ``marks``
    maps expids to a state (waiting, failed, done) for the classes."""
    marks = marks or {}
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []

    def add(node_id: str, label: str, kind: str) -> str:
        nodes.append(
            {"data": {"id": node_id, "label": label, "kind": kind, "state": marks.get(node_id, "")}}
        )
        return node_id

    def link(a: str, b: str, label: str = "") -> None:
        edges.append({"data": {"id": f"{a}->{b}", "source": a, "target": b, "label": label}})

    def build(node: Node) -> tuple[list[str], list[str]]:
        """Draw ``node``; its entry and exit node ids."""
        kind = node.kind
        if kind in _SERIAL or kind in _PARALLEL or kind == "if":
            if kind == "sequence" and node.children and node.id != "0" and node.id not in marks:
                head = None  # a plain sequence needs no box of its own
            else:
                head = add(node.id, _label(node), kind)
            if not node.children:
                node_id = head or add(node.id, _label(node), kind)
                return [node_id], [node_id]
            if kind in _SERIAL:
                entry: list[str] = []
                exits: list[str] = [head] if head else []
                for child in node.children:
                    c_in, c_out = build(child)
                    for a in exits:
                        for b in c_in:
                            link(a, b)
                    if not entry:
                        entry = [head] if head else c_in
                    exits = c_out
                return entry, exits
            # parallel branches, or the two arms of an if
            assert head is not None
            exits = []
            for i, child in enumerate(node.children):
                c_in, c_out = build(child)
                for b in c_in:
                    link(head, b, ("then" if i == 0 else "else") if kind == "if" else "")
                exits.extend(c_out)
            if kind == "if" and len(node.children) == 1:
                exits.append(head)
            return [head], exits
        node_id = add(node.id, _label(node), kind)
        return [node_id], [node_id]

    start = add("start", d.name or "start", "start")
    entry, exits = build(d.body)
    for b in entry:
        link(start, b)
    end = add("end", "end", "end")
    for a in exits:
        link(a, end)
    for name, body in d.subprocesses.items():
        sub = add(f"sub:{name}", f"subprocess {name}", "start")
        s_in, _ = build(body)
        for b in s_in:
            link(sub, b)
    return {"elements": {"nodes": nodes, "edges": edges}}


def _custom(event: dict[str, Any], key: str) -> str | None:
    for item in (event.get("data") or {}).get("customData") or ():
        if item.get("key") == key:
            return str(item.get("value"))
    return None


def timeline(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's steps from its Activity events: ``{"run": {...}, "steps":
    [{eid, expid, name, participant, triggered, started, finished, outcome,
    queued_s, duration_s, state}]}`` (times in epoch seconds), by trigger time."""
    by_trigger: dict[str, dict[str, Any]] = {}
    later: list[dict[str, Any]] = []
    for ev in events:
        meta = ev["meta"]
        if meta["type"] == "EiffelActivityTriggeredEvent":
            eid = _custom(ev, "step")
            by_trigger[meta["id"]] = {
                "eid": eid,
                "expid": eid.rsplit("-", 1)[0] if eid else None,
                "name": ev["data"].get("name"),
                "participant": _custom(ev, "participant"),
                "triggered": meta["time"] / 1000,
                "started": None,
                "finished": None,
                "outcome": None,
                "run": eid is None,
            }
        else:
            later.append(ev)
    for ev in later:
        target = next(
            (x["target"] for x in ev.get("links", ()) if x["type"] == "ACTIVITY_EXECUTION"), None
        )
        step = by_trigger.get(target or "")
        if step is None:
            continue
        t = ev["meta"]["time"] / 1000
        etype = ev["meta"]["type"]
        if etype == "EiffelActivityStartedEvent":
            step["started"] = t
        elif etype == "EiffelActivityFinishedEvent":
            step["finished"] = t
            step["outcome"] = (ev["data"].get("outcome") or {}).get("conclusion")
        elif etype == "EiffelActivityCanceledEvent":
            step["finished"] = t
            step["outcome"] = "CANCELED"
    run = next((s for s in by_trigger.values() if s["run"]), None)
    steps = sorted((s for s in by_trigger.values() if not s["run"]), key=lambda s: s["triggered"])
    for s in [*steps, *([run] if run else [])]:
        begin = s["started"] or s["triggered"]
        s["queued_s"] = (s["started"] - s["triggered"]) if s["started"] else None
        s["duration_s"] = (s["finished"] - begin) if s["finished"] else None
        s["state"] = "finished" if s["finished"] else "running" if s["started"] else "queued"
    return {
        "run": run,
        "steps": steps,
        "events": len(events),
        # the graph holds the run's end: nothing more will arrive for it
        "settled": bool(run and run["finished"]),
    }


def _short(event: dict[str, Any]) -> str:
    etype = event["meta"]["type"].removeprefix("Eiffel").removesuffix("Event")
    data = event.get("data") or {}
    name = (
        data.get("name")
        or data.get("identity")
        or (data.get("gitIdentifier") or {}).get("commitId", "")[:10]
        or (data.get("outcome") or {}).get("conclusion")
        or ""
    )
    if etype == "ConfidenceLevelModified":
        name = f"{data.get('name')}={data.get('value')}"
    return f"{etype}\n{name}" if name else etype


def trace_elements(center: dict[str, Any], ups: list[Any], downs: list[Any]) -> dict[str, Any]:
    """Nodes and typed edges around ``center`` (``Hit`` lists from
    ``Graph.upstream``/``downstream``)."""
    events: dict[str, dict[str, Any]] = {center["meta"]["id"]: center}
    for hit in [*ups, *downs]:
        events[hit.event["meta"]["id"]] = hit.event
    nodes = []
    edges = []
    seen: set[tuple[str, str, str]] = set()
    for eid, ev in events.items():
        etype = ev["meta"]["type"].removeprefix("Eiffel").removesuffix("Event")
        nodes.append(
            {
                "data": {
                    "id": eid,
                    "label": _short(ev),
                    "type": etype,
                    "center": eid == center["meta"]["id"],
                    "time": ev["meta"]["time"],
                }
            }
        )
        for link in ev.get("links") or ():
            key = (eid, link["target"], link["type"])
            if link["target"] in events and key not in seen:
                seen.add(key)
                edges.append(
                    {
                        "data": {
                            "id": "|".join(key),
                            "source": eid,
                            "target": link["target"],
                            "label": link["type"],
                            "linkType": link["type"],
                        }
                    }
                )
    return {"elements": {"nodes": nodes, "edges": edges}}
