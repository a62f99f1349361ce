"""Data for the pictures: a definition as a flow graph (with a run's
positions and finished steps marked), a run's timeline of steps from its
traceability events, and a trace neighbourhood as graph elements.

The output is plain JSON in Cytoscape.js's element format (``{"data":
{...}}`` per node and edge), drawn by ``static/boss.js`` with the dagre
layout.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.core.definition import Definition, Node

__all__ = [
    "add_run_state",
    "base_id",
    "definition_graph",
    "gantt",
    "graph_marks",
    "timeline",
    "trace_elements",
]

#: expressions whose children run one after the other
_SERIAL = {"sequence", "cursor", "loop", "iterator", "reserve"}
#: expressions whose children run side by side
_PARALLEL = {"concurrence", "concurrent_iterator"}
#: what joins a subprocess call's node id to the ids of the nodes inside it
SEP = ">"
#: a subprocess is drawn inside its callers this deep at most
MAX_DEPTH = 8
#: the order in which a compound node takes its children's states
_RANK = {"failed": 3, "waiting": 2, "done": 1}


def _short_text(value: Any, limit: int) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _label(node: Node, subprocess: bool = False) -> str:
    kind = node.kind
    if kind == "participant" and not subprocess:
        text = str(node.opts.get("ref"))
    elif kind in ("subprocess", "participant"):
        text = str(node.opts.get("ref"))
        args = node.opts.get("vars") or node.opts.get("params") or {}
        first = next(iter(args.values()), None) if isinstance(args, dict) else None
        if isinstance(first, str | int | float) and len(args) == 1:
            text += f": {_short_text(first, 40)}"
    elif kind in ("iterator", "concurrent_iterator"):
        text = f"{kind} {node.opts.get('to', 'i')} in {_short_text(node.opts.get('on'), 30)}"
    elif kind == "echo":
        text = f"echo {_short_text(node.opts.get('text', ''), 40)}"
    elif kind in ("set", "inc", "push"):
        text = kind + " " + ", ".join(map(str, (node.opts.get("values") or {}).keys()))
    elif kind == "if":
        test = node.opts.get("test")
        text = f"if {_short_text(getattr(test, 'source', test), 48)}" if test else "if"
    elif kind == "listen":
        text = f"listen {node.opts.get('to')}"
    elif kind == "wait":
        text = f"wait {node.opts.get('for') or node.opts.get('until') or ''}".strip()
    elif kind == "error":
        text = f"error {_short_text(node.opts.get('message', ''), 40)}"
    else:
        text = kind
    cond = node.attrs.get("if")
    if cond is not None:
        text += f"\n(if {_short_text(getattr(cond, 'source', cond), 36)})"
    if node.attrs.get("flank"):
        text += "\n(flank)"
    return _short_text(text, 120) if "\n" not in text else text


def base_id(graph_id: str) -> str:
    """The definition node id a graph node id stands for (the last part of
    a path through subprocess calls)."""
    return graph_id.rsplit(SEP, 1)[-1]


def definition_graph(d: Definition, marks: dict[str, str] | None = None) -> dict[str, Any]:
    """The definition's body as nodes and edges (``elements``), each
    subprocess drawn inside every step that calls it (a compound node:
    its nodes have the call as ``parent``, and ids ``<call id>>``
    ``<node id>``, so two calls of one subprocess are told apart).

    ``marks`` maps graph node ids (or definition node ids, for nodes drawn
    once) to a state (waiting, failed, done); a call takes the most
    pressing state of the nodes inside it (failed, then waiting) and says
    so (``inner``). Node data: ``id``, ``label``, ``kind``, ``state``,
    ``node`` (the definition node id), ``parent`` (inside a call),
    ``sub`` (the subprocess a call runs), ``depth``."""
    marks = marks or {}
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    by_id: dict[str, dict[str, Any]] = {}

    def add(
        node_id: str,
        label: str,
        kind: str,
        parent: str | None,
        node: str | None = None,
        depth: int = 0,
    ) -> str:
        data: dict[str, Any] = {
            "id": node_id,
            "label": label,
            "kind": kind,
            "state": marks.get(node_id, ""),
            "node": node or node_id,
            "depth": depth,
        }
        if parent:
            data["parent"] = parent
        nodes.append({"data": data})
        by_id[node_id] = data
        return node_id

    def link(a: str, b: str, label: str = "") -> None:
        edges.append({"data": {"id": f"{a}->{b}", "source": a, "target": b, "label": label}})

    def callee(node: Node) -> str | None:
        ref = node.opts.get("ref")
        if (
            node.kind in ("subprocess", "participant")
            and not node.dynamic
            and ref in d.subprocesses
        ):
            return str(ref)
        return None

    def build(
        node: Node,
        prefix: str,
        parent: str | None,
        stack: tuple[str, ...],
        block: tuple[Node, str] | None = None,
    ) -> tuple[list[str], list[str]]:
        """Draw ``node``; its entry and exit node ids."""
        kind = node.kind
        gid = prefix + node.id
        depth = len(stack)
        if kind in _SERIAL or kind in _PARALLEL or kind == "if":
            if kind == "sequence" and node.children and node.id != "0" and gid not in marks:
                head = None  # a plain sequence needs no box of its own
            else:
                head = add(gid, _label(node), kind, parent, node.id, depth)
            if not node.children:
                node_id = head or add(gid, _label(node), kind, parent, node.id, depth)
                return [node_id], [node_id]
            if kind in _SERIAL:
                entry: list[str] = []
                exits: list[str] = [head] if head else []
                for child in node.children:
                    c_in, c_out = build(child, prefix, parent, stack, block)
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
                c_in, c_out = build(child, prefix, parent, stack, block)
                for b in c_in:
                    link(head, b, ("then" if i == 0 else "else") if kind == "if" else "")
                exits.extend(c_out)
            if kind == "if" and len(node.children) == 1:
                exits.append(head)
            return [head], exits
        if kind == "apply" and block is not None and block[0].children:
            # the block given to the subprocess call runs here
            head = add(gid, "apply (the block)", kind, parent, node.id, depth)
            exits = [head]
            for child in block[0].children:
                c_in, c_out = build(child, block[1], parent, stack[:-1])
                for a in exits:
                    for b in c_in:
                        link(a, b)
                exits = c_out
            return [head], exits
        name = callee(node)
        node_id = add(gid, _label(node, name is not None), kind, parent, node.id, depth)
        if name is not None:
            data = by_id[node_id]
            data["sub"] = name
            if name in stack or depth >= MAX_DEPTH:
                data["label"] += "\n(recursive)" if name in stack else "\n(too deep to draw)"
            else:
                data["compound"] = True
                build(d.subprocesses[name], gid + SEP, gid, (*stack, name), (node, gid + SEP))
        return [node_id], [node_id]

    start = add("start", d.name or "start", "start", None)
    entry, exits = build(d.body, "", None, ())
    for b in entry:
        link(start, b)
    end = add("end", "end", "end", None)
    for a in exits:
        link(a, end)
    called = {data.get("sub") for data in by_id.values()}
    for name, body in d.subprocesses.items():
        if name in called:
            continue
        # called only by a handler (on_error: ...) or a ${...} name: drawn alone
        sub = add(f"sub:{name}", f"{name}\n(subprocess, no direct call)", "subprocess", None)
        by_id[sub].update(sub=name, compound=True)
        build(body, sub + SEP, sub, (name,))
    # definition node ids marked (positions in handlers, steps of a run
    # with no call path) mark every node drawn for them
    plain = {base_id(k): v for k, v in marks.items() if k not in by_id}
    if plain:
        for data in by_id.values():
            if not data["state"]:
                data["state"] = plain.get(data["node"], "")
    # a call shows the most pressing state inside it
    for data in sorted(by_id.values(), key=lambda x: -x["depth"]):
        parent = data.get("parent")
        inner = data["state"] if data["state"] in ("failed", "waiting") else data.get("inner")
        if parent and inner:
            p = by_id[parent]
            if _RANK.get(inner, 0) > _RANK.get(p.get("inner", ""), 0):
                p["inner"] = inner
    for data in by_id.values():
        if data.get("inner") and _RANK[data["inner"]] > _RANK.get(data["state"], 0):
            data["state"] = data["inner"]
    return {
        "elements": {"nodes": nodes, "edges": edges},
        "counts": {"nodes": len(nodes), "edges": len(edges)},
    }


def graph_marks(
    d: Definition,
    finished: list[dict[str, Any]],
    positions: list[tuple[str, str, list[str]]],
) -> dict[str, str]:
    """Marks for ``definition_graph``: ``finished`` steps of the timeline
    (``path`` and ``outcome``), then ``positions`` as ``(node id, state,
    node ids of the subprocess calls around it, outermost first)``."""
    marks: dict[str, str] = {}
    for step in finished:
        failed = step.get("outcome") in ("FAILED", "UNSUCCESSFUL", "TIMED_OUT")
        marks[step.get("path") or step["expid"]] = "failed" if failed else "done"
    for node_id, state, calls in positions:
        base = node_id.partition("#")[0].partition("@")[0]
        marks[SEP.join([*calls, base])] = state
    return marks


def _custom(event: dict[str, Any], key: str) -> str | None:
    for item in (event.get("data") or {}).get("customData") or ():
        if item.get("key") == key:
            return str(item.get("value"))
    return None


def _links(event: dict[str, Any], kind: str) -> list[str]:
    return [x["target"] for x in event.get("links") or () if x["type"] == kind]


def timeline(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's steps from its Activity events: ``{"run": {...}, "steps":
    [{eid, expid, name, participant, triggered, started, finished, outcome,
    queued_s, duration_s, state, attempt, sub, path, critical}],
    "critical_path": [eid...]}`` (times in epoch seconds), by trigger time.

    ``attempt`` counts the runs of one definition node (a retry, a loop
    turn, a second call of a subprocess) from 1; ``sub`` is the subprocess
    a call runs; ``path`` the step's node id behind the node ids of the
    subprocess calls it ran in (``definition_graph`` ids); the critical
    path is the chain of steps that ended last, each started by the end of
    the one before (its PRECURSOR links, else the step that ended last
    before it was triggered)."""
    by_trigger: dict[str, dict[str, Any]] = {}
    later: list[dict[str, Any]] = []
    for ev in events:
        meta = ev["meta"]
        if meta["type"] == "EiffelActivityTriggeredEvent":
            eid = _custom(ev, "step")
            by_trigger[meta["id"]] = {
                "id": meta["id"],
                "eid": eid,
                "expid": eid.rsplit("-", 1)[0] if eid else None,
                "name": ev["data"].get("name"),
                "participant": _custom(ev, "participant"),
                "sub": _custom(ev, "subprocess"),
                "triggered": meta["time"] / 1000,
                "started": None,
                "finished": None,
                "outcome": None,
                "run": eid is None,
                "precursors": _links(ev, "PRECURSOR"),
                "original": next(iter(_links(ev, "ORIGINAL_TRIGGER")), None),
            }
        else:
            later.append(ev)
    for ev in later:
        target = next(iter(_links(ev, "ACTIVITY_EXECUTION")), None)
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
    steps = sorted(
        (s for s in by_trigger.values() if not s["run"]), key=lambda s: (s["triggered"], s["eid"])
    )
    seen: dict[str, int] = {}
    for s in [*steps, *([run] if run else [])]:
        begin = s["started"] or s["triggered"]
        s["queued_s"] = (s["started"] - s["triggered"]) if s["started"] else None
        s["duration_s"] = (s["finished"] - begin) if s["finished"] else None
        s["state"] = "finished" if s["finished"] else "running" if s["started"] else "queued"
        s["critical"] = False
        if s["expid"]:
            seen[s["expid"]] = s["attempt"] = seen.get(s["expid"], 0) + 1
    _call_paths(steps)
    path = _critical_path(steps, by_trigger)
    for s in path:
        s["critical"] = True
    return {
        "run": run,
        "steps": steps,
        "events": len(events),
        "critical_path": [s["eid"] for s in path],
        # the graph holds the run's end: nothing more will arrive for it
        "settled": bool(run and run["finished"]),
    }


def _call_paths(steps: list[dict[str, Any]]) -> None:
    """Each step's ``path``: the subprocess calls it ran in are the calls
    of its subprocess (``sub``) whose span holds its trigger time (the
    latest such call when two overlap)."""
    calls: dict[str, list[dict[str, Any]]] = {}
    for s in steps:
        if s["sub"]:
            calls.setdefault(s["sub"], []).append(s)

    def path_of(s: dict[str, Any], depth: int = 0) -> str:
        if "path" in s:
            return str(s["path"])
        expid = s["expid"]
        name, slash, _ = expid.partition("/")
        path = expid
        if slash and depth < MAX_DEPTH:
            around = [
                c
                for c in calls.get(name, ())
                if c is not s
                and c["triggered"] <= s["triggered"]
                and (c["finished"] is None or c["finished"] >= s["triggered"])
            ]
            if around:
                path = path_of(around[-1], depth + 1) + SEP + expid
        elif depth < MAX_DEPTH:
            # a step of the block given to a call (``apply`` runs it)
            around = [
                c
                for c in steps
                if c["sub"]
                and c is not s
                and expid.startswith(c["expid"] + "_")
                and c["triggered"] <= s["triggered"]
                and (c["finished"] is None or c["finished"] >= s["triggered"])
            ]
            if around:
                path = path_of(around[-1], depth + 1) + SEP + expid
        s["path"] = path
        return path

    for s in steps:
        path_of(s)


def _critical_path(
    steps: list[dict[str, Any]], by_trigger: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    ended = [s for s in steps if s["finished"] is not None]
    live = [s for s in steps if s["finished"] is None]
    if not steps:
        return []
    # the step the run waits on now, or the one that ended last
    cur = max(live, key=lambda s: s["triggered"]) if live else max(ended, key=_end)
    chain = [cur]
    seen = {id(cur)}
    while True:
        before = [
            by_trigger[p]
            for p in cur["precursors"]
            if p in by_trigger and by_trigger[p]["finished"] is not None
        ]
        if not before:
            before = [
                s
                for s in ended
                if s["finished"] <= cur["triggered"] + 0.0005 and not _holds(s, cur)
            ]
        before = [s for s in before if id(s) not in seen]
        if not before:
            break
        cur = max(before, key=_end)
        seen.add(id(cur))
        chain.append(cur)
    return chain[::-1]


def _end(s: dict[str, Any]) -> tuple[float, float]:
    return (s["finished"], s["triggered"])


def _holds(outer: dict[str, Any], inner: dict[str, Any]) -> bool:
    """Whether ``outer`` is a subprocess call around ``inner``."""
    return bool(outer["sub"]) and str(inner.get("path", "")).startswith(
        str(outer.get("path")) + SEP
    )


def add_run_state(
    tl: dict[str, Any],
    *,
    launched_at: float | None,
    status: str | None,
    positions: list[dict[str, Any]],
    errors: list[dict[str, Any]],
) -> dict[str, Any]:
    """What the run's state knows, into a timeline from its events (which
    may be late or missing: traceability off, the aggregator behind):
    ``positions`` ({eid, expid, name, state, since}) missing from the steps
    become steps (``source: "state"``), and ``errors`` ({expid, eid, at,
    class, message}) are kept and mark their steps failed."""
    tl["launched_at"] = launched_at
    tl["status"] = status
    tl["errors"] = [
        {k: e.get(k) for k in ("id", "eid", "expid", "at", "class", "message", "participant")}
        for e in errors
    ]
    known = {s["eid"]: s for s in tl["steps"] if s["eid"]}
    for p in positions:
        s = known.get(p["eid"])
        if s is None:
            s = {
                "id": None,
                "eid": p["eid"],
                "expid": p["expid"],
                "path": p.get("path") or p["expid"],
                "name": p.get("name"),
                "participant": p.get("name"),
                "sub": None,
                "triggered": p.get("since") or launched_at,
                "started": None,
                "finished": None,
                "outcome": None,
                "queued_s": None,
                "duration_s": None,
                "state": "queued",
                "critical": False,
                "attempt": 1,
                "precursors": [],
                "original": None,
                "source": "state",
            }
            if s["triggered"] is None:
                continue
            tl["steps"].append(s)
            known[p["eid"]] = s
        if p.get("state") == "failed":
            s["state"] = "failed"
    for e in tl["errors"]:
        s = known.get(e.get("eid") or "")
        if s is not None and s["finished"] is None:
            s["state"] = "failed"
            s["error"] = e.get("message")
            s["failed_at"] = _epoch(e.get("at"))
    tl["steps"].sort(key=lambda s: (s["triggered"], s["eid"] or ""))
    return tl


def _epoch(at: Any) -> float | None:
    """An error's ``at`` (epoch seconds, or ISO 8601 text) as epoch seconds."""
    if isinstance(at, int | float):
        return float(at)
    if isinstance(at, str):
        try:
            return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


_TICKS = [
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
]


def _fmt(seconds: float) -> str:
    if 0 < seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60 and abs(seconds - round(seconds)) > 1e-6:
        return f"{seconds:.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s % 60 else f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def gantt(tl: dict[str, Any], now: float, width: int = 1000) -> dict[str, Any]:
    """The timeline as a Gantt chart's geometry (SVG user units): one row
    per definition node (``path``), each run of it a bar: ``queued``
    (triggered to started) and ``running`` (started to finished; an
    unfinished span runs to ``now``; with no started event, one ``span``
    from triggered to finished), the critical path marked, ticks on the
    run's own time axis (seconds from its start)."""
    label_w, pad, row_h, top = 260, 12, 22, 26
    steps = tl["steps"]
    run = tl.get("run") or {}
    t0_candidates = [s["triggered"] for s in steps] + [
        x for x in (run.get("triggered"), tl.get("launched_at")) if x
    ]
    if not t0_candidates:
        return {"rows": [], "ticks": [], "width": width, "height": 0}
    t0 = min(t0_candidates)
    ends = [t for s in steps for t in (s["triggered"], s["started"], s["finished"]) if t]
    live = any(s["finished"] is None for s in steps) or (run and not run.get("finished"))
    t1 = max([*ends, run.get("finished") or t0, now if live else t0])
    span = max(t1 - t0, 0.01)
    x0, x1 = label_w, width - pad
    scale = (x1 - x0) / span

    def x(t: float) -> float:
        return round(x0 + (t - t0) * scale, 2)

    rows: dict[str, dict[str, Any]] = {}
    for s in steps:
        key = s.get("path") or s["expid"] or s["eid"]
        row = rows.get(key)
        if row is None:
            who = s["participant"] or s["name"] or ""
            row = rows[key] = {"key": key, "label": f"{who}", "expid": s["expid"], "bars": []}
        row["runs"] = row.get("runs", 0) + 1
        end = s["finished"] if s["finished"] is not None else s.get("failed_at") or now
        is_open = s["finished"] is None and not s.get("failed_at")
        failed = s["state"] == "failed" or s["outcome"] in ("FAILED", "UNSUCCESSFUL", "TIMED_OUT")
        base = {
            "critical": s["critical"],
            "open": is_open,
            "failed": failed,
            "eid": s["eid"],
            "attempt": s.get("attempt", 1),
        }
        title = f"{s['expid']} {who} #{s.get('attempt', 1)}"
        if s["started"] is not None:
            spans = [("queued", s["triggered"], s["started"]), ("running", s["started"], end)]
        elif s.get("source") == "state" or (is_open and not s["sub"]):
            spans = [("queued", s["triggered"], end)]
        else:
            spans = [("span", s["triggered"], end)]
        for kind, a, b in spans:
            w = max(x(b) - x(a), 2.0)
            row["bars"].append(
                {
                    **base,
                    "kind": kind,
                    "x": x(a),
                    "w": round(w, 2),
                    "title": f"{title}: {kind} {_fmt(max(b - a, 0))}"
                    + (" (so far)" if is_open else "")
                    + (f" from +{_fmt(a - t0)}" if a > t0 else ""),
                }
            )
    ordered = list(rows.values())
    for i, row in enumerate(ordered):
        row["y"] = top + i * row_h
        if row["runs"] > 1:
            row["label"] += f" \u00d7{row['runs']}"
    step = next((t for t in _TICKS if span / t <= 8), _TICKS[-1])
    ticks = []
    k = 0
    while k * step <= span * (1 + 1e-9):
        ticks.append({"x": x(t0 + k * step), "label": _fmt(k * step)})
        k += 1
    height = top + len(ordered) * row_h + 8
    return {
        "rows": ordered,
        "ticks": ticks,
        "t0": t0,
        "t1": t1,
        "now_x": x(now) if live and now <= t1 + 1 else None,
        "width": width,
        "height": height,
        "label_w": label_w,
        "row_h": row_h,
        "x1": x1,
        "top": top,
        "span": _fmt(span),
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
    step = _custom(event, "step")
    if step and etype == "ActivityTriggered":
        name = f"{name} {step.rsplit('-', 1)[0]}"
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
