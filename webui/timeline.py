"""A run's timeline of steps from its traceability events (queued and
running spans, attempts, subprocess call paths, the critical path), what the
run state adds while the events are late or absent, and the Gantt chart of
it (an SVG's geometry, drawn by ``templates/_run_timeline.html``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from webui.graphs import MAX_DEPTH, SEP, custom_value

__all__ = ["add_run_state", "gantt", "timeline"]


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
            eid = custom_value(ev, "step")
            by_trigger[meta["id"]] = {
                "id": meta["id"],
                "eid": eid,
                "expid": eid.rsplit("-", 1)[0] if eid else None,
                "name": ev["data"].get("name"),
                "participant": custom_value(ev, "participant"),
                "sub": custom_value(ev, "subprocess"),
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
