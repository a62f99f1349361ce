"""Data for the pictures: a definition as a flow graph (with a run's
positions and finished steps marked) and a trace neighbourhood as graph
elements. A run's timeline and its Gantt chart are in ``webui.timeline``.

The output is plain JSON in Cytoscape.js's element format (``{"data":
{...}}`` per node and edge), drawn by ``static/boss.js`` with the dagre
layout.
"""

from __future__ import annotations

from typing import Any

from engine.core.definition import Definition, Node

__all__ = [
    "SEP",
    "base_id",
    "custom_value",
    "definition_graph",
    "graph_marks",
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


def custom_value(event: dict[str, Any], key: str) -> str | None:
    """The value of an Eiffel event's ``data.customData`` entry ``key``."""
    for item in (event.get("data") or {}).get("customData") or ():
        if item.get("key") == key:
            return str(item.get("value"))
    return None


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
    step = custom_value(event, "step")
    if step and etype == "ActivityTriggered":
        name = f"{name} {step.rsplit('-', 1)[0]}"
    return f"{etype}\n{name}" if name else etype


def trace_elements(
    center: dict[str, Any] | None,
    ups: list[Any],
    downs: list[Any],
    *,
    placeholders: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
    here: str | None = None,
    peers: dict[str, str] | None = None,
    center_id: str | None = None,
) -> dict[str, Any]:
    """Nodes and typed edges around ``center`` (``Hit`` lists from
    ``Graph.upstream``/``downstream``). Each node has its ``site`` (the
    event's ``meta.source.domainId``), ``siteLabel`` ("this site", the
    peer's name in ``peers`` (domain -> name), else the domain) and
    ``remote`` (of another site than ``here``). ``placeholders``
    (``{"id", "domain", "via", "from"}``): events linked to that this site
    never received, drawn as ``placeholder`` nodes with the link to them.
    ``center`` None: the centre is the placeholder ``center_id``."""
    from engine.trace import site_of

    peers = peers or {}
    cid = center["meta"]["id"] if center is not None else center_id

    def site_fields(domain: str | None) -> dict[str, Any]:
        if domain is None:
            label = "unknown"
        elif here is not None and domain == here:
            label = "this site"
        else:
            label = peers.get(domain, domain)
        remote = domain is not None and here is not None and domain != here
        return {"site": domain, "siteLabel": label, "remote": remote}

    events: dict[str, dict[str, Any]] = {}
    if center is not None:
        events[center["meta"]["id"]] = center
    for hit in [*ups, *downs]:
        events[hit.event["meta"]["id"]] = hit.event
    shown = {p["id"]: p for p in placeholders if p["id"] not in events}
    nodes = []
    edges = []
    seen: set[tuple[str, str, str]] = set()
    for eid, ev in events.items():
        etype = ev["meta"]["type"].removeprefix("Eiffel").removesuffix("Event")
        sites = site_fields(site_of(ev))
        label = _short(ev)
        if sites["remote"]:
            label = f"{label}\n[{sites['siteLabel']}]"
        nodes.append(
            {
                "data": {
                    "id": eid,
                    "label": label,
                    "type": etype,
                    "center": eid == cid,
                    "time": ev["meta"]["time"],
                    **sites,
                }
            }
        )
        for link in ev.get("links") or ():
            key = (eid, link["target"], link["type"])
            if (link["target"] in events or link["target"] in shown) and key not in seen:
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
    for pid, p in shown.items():
        sites = site_fields(p.get("domain"))
        nodes.append(
            {
                "data": {
                    "id": pid,
                    "label": (
                        f"not shared: {sites['siteLabel']}"
                        if sites["site"] != here
                        else "not received (yet)"
                    ),
                    "type": "NotShared",
                    "center": pid == cid,
                    "placeholder": True,
                    **sites,
                }
            }
        )
    return {"elements": {"nodes": nodes, "edges": edges}}
