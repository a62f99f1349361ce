"""The pictures' data (webui/graphs.py): the definition graph of a real
process (BOSS_handle_SR: subprocess calls as compound nodes, labels, state
markers), the timeline with its queued and running spans, attempts and
critical path (from hand-built events and from a real run's), its Gantt
geometry, and what the run state adds when trace events are missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.core.effects import Record
from engine.core.loader import load_file
from engine.trace.activity import record_event
from tests.webui.conftest import BROKEN, WebEnv
from webui.graphs import SEP, definition_graph, graph_marks
from webui.timeline import add_run_state, gantt, timeline

SR = Path(__file__).parents[2] / "processes" / "StandardWorkflow" / "BOSS_handle_SR.yaml"


@pytest.fixture(scope="module")
def sr_graph() -> dict[str, Any]:
    return definition_graph(load_file(SR))


def _nodes(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["data"]["id"]: n["data"] for n in graph["elements"]["nodes"]}


def test_handle_sr_draws_subprocesses_inside_their_callers(sr_graph: dict[str, Any]) -> None:
    nodes = _nodes(sr_graph)
    assert len(nodes) == len(sr_graph["elements"]["nodes"])  # ids are unique
    assert all(n["label"].strip() for n in nodes.values())
    for e in sr_graph["elements"]["edges"]:
        assert e["data"]["source"] in nodes and e["data"]["target"] in nodes
    for n in nodes.values():
        if "parent" in n:
            assert nodes[n["parent"]].get("compound") and n["id"].startswith(n["parent"] + SEP)
    # with_OBS_ticket is called at 0_12 with a block: both are inside the call
    call = nodes["0_12"]
    assert call["sub"] == "with_OBS_ticket" and call["compound"] and "parent" not in call
    inside = {i for i, n in nodes.items() if n.get("parent") == "0_12"}
    assert "0_12>with_OBS_ticket/0_2" in inside  # obsticket, in the subprocess
    assert "0_12>0_12_0_1" in inside  # do_build_image, in the block apply runs
    # ... and do_build_image is itself a call, drawn inside that
    nested = nodes["0_12>0_12_0_1"]
    assert nested["sub"] == "do_build_image" and nested["compound"]
    assert any(n.get("parent") == "0_12>0_12_0_1" for n in nodes.values())
    # do_log is drawn in each of its callers, not as a separate piece
    assert nodes["0_15"]["sub"] == "do_log" and nodes["0_15"]["label"] == "do_log: Process finished"
    assert "0_15>do_log/0_1" in nodes
    assert not any(i.startswith("sub:do_log") for i in nodes)
    # only subprocesses no step calls by name stand alone
    assert [i for i in nodes if i.startswith("sub:") and SEP not in i] == ["sub:do_prjconf"]
    top = [n for n in nodes.values() if "parent" not in n]
    assert len(top) < 40 and len(nodes) > 300


def test_state_markers_reach_the_calls_around_them() -> None:
    d = load_file(SR)
    marks = graph_marks(
        d,
        [{"expid": "0_7", "path": "0_7", "outcome": "SUCCESSFUL"}],
        [("with_OBS_ticket/0_2", "waiting", ["0_12"])],
    )
    nodes = _nodes(definition_graph(d, marks))
    assert nodes["0_7"]["state"] == "done"
    assert nodes["0_12>with_OBS_ticket/0_2"]["state"] == "waiting"
    assert nodes["0_12"]["state"] == "waiting" and nodes["0_12"]["inner"] == "waiting"
    assert nodes["0_16"]["state"] == ""
    # a step that failed inside a nested call: every call around it says so
    marks = {"0_12>0_12_0_1>do_build_image/0_9": "failed", "0_12>with_OBS_ticket/0_2": "done"}
    nodes = _nodes(definition_graph(d, marks))
    assert nodes["0_12>0_12_0_1"]["state"] == "failed"
    assert nodes["0_12"]["state"] == "failed"
    # a definition node id alone (no call path known) marks each drawing of it
    nodes = _nodes(definition_graph(d, {"do_log/0_1": "done"}))
    assert nodes["0_15>do_log/0_1"]["state"] == "done"
    assert nodes["0_8_1_0>do_log/0_1"]["state"] == "done"


W = "wf-1"
T0 = 1767225590.0  # ten seconds before 2026-01-01T00:00:00Z


def _events(*records: tuple[Any, ...]) -> list[dict[str, Any]]:
    out = []
    for eid, event, at, *rest in records:
        outcome = rest[0] if rest else None
        data = rest[1] if len(rest) > 1 else {}
        name = "run" if eid is None else f"p{eid.split('-')[0]}"
        rec = Record("run" if eid is None else "step", W, eid, name, event, at, outcome, data)
        out.append(record_event(rec))
    return out


def _hand_built() -> list[dict[str, Any]]:
    base = 1_700_000_000.0
    return _events(
        (None, "triggered", base),
        ("0_0-1", "triggered", base + 1, None, {"participant": "checkout"}),
        ("0_0-1", "started", base + 3),
        ("0_0-1", "finished", base + 10, "SUCCESSFUL"),
        ("0_1-2", "triggered", base + 10, None, {"participant": "build", "precursors": ["0_0-1"]}),
        ("0_2-4", "triggered", base + 10, None, {"participant": "lint", "precursors": ["0_0-1"]}),
        ("0_2-4", "finished", base + 11, "SUCCESSFUL"),
        ("0_1-2", "started", base + 12),
        ("0_1-2", "finished", base + 15, "FAILED"),
        ("0_1-3", "triggered", base + 20, None, {"participant": "build", "original": "0_1-2"}),
        ("0_1-3", "started", base + 21),
        ("0_1-3", "finished", base + 30, "SUCCESSFUL"),
        (None, "finished", base + 31, "SUCCESSFUL"),
    )


def test_timeline_spans_attempts_and_critical_path() -> None:
    tl = timeline(_hand_built())
    steps = {s["eid"]: s for s in tl["steps"]}
    a, b1, b2, c = steps["0_0-1"], steps["0_1-2"], steps["0_1-3"], steps["0_2-4"]
    assert (a["queued_s"], a["duration_s"]) == (2, 7)
    assert (b1["attempt"], b2["attempt"], a["attempt"]) == (1, 2, 1)
    assert b1["outcome"] == "FAILED" and b2["outcome"] == "SUCCESSFUL"
    assert c["started"] is None and c["queued_s"] is None and c["duration_s"] == 1
    assert tl["critical_path"] == ["0_0-1", "0_1-2", "0_1-3"]
    assert not c["critical"] and tl["settled"]

    g = gantt(tl, now=1_700_000_100.0)
    rows = {r["key"]: r for r in g["rows"]}
    assert list(rows) == ["0_0", "0_1", "0_2"]
    build = rows["0_1"]["bars"]
    assert [b["kind"] for b in build] == ["queued", "running", "queued", "running"]
    assert [b["attempt"] for b in build] == [1, 1, 2, 2]
    xs = [b["x"] for b in build]
    assert xs == sorted(xs) and all(b["w"] > 0 for b in build)
    assert build[1]["failed"] and not build[3]["failed"]
    assert all(b["critical"] for b in build) and not rows["0_2"]["bars"][0]["critical"]
    assert [b["kind"] for b in rows["0_2"]["bars"]] == ["span"]  # no start recorded
    assert g["now_x"] is None  # it has ended: the axis stops at its end
    assert g["ticks"][0]["label"] == "0s" and len(g["ticks"]) >= 3
    # the axis is the run's own: the first bar starts one second after its start
    run_w = g["x1"] - g["label_w"]
    assert rows["0_0"]["bars"][0]["x"] == pytest.approx(g["label_w"] + run_w / 31, abs=0.1)


def test_a_run_still_going_has_open_spans_to_now() -> None:
    events = _hand_built()[:8]  # 0_1-2 started, not finished; the run goes on
    tl = timeline(events)
    assert not tl["settled"]
    now = 1_700_000_020.0
    g = gantt(tl, now)
    running = next(r for r in g["rows"] if r["key"] == "0_1")["bars"][-1]
    assert running["kind"] == "running" and running["open"]
    assert running["x"] + running["w"] == pytest.approx(g["x1"], abs=0.5)
    assert g["now_x"] == pytest.approx(g["x1"], abs=0.5)
    assert tl["critical_path"][-1] == "0_1-2"


def test_the_run_state_fills_in_what_the_events_lack() -> None:
    tl = add_run_state(
        timeline([]),
        launched_at=T0,
        status="error",
        positions=[
            {"eid": "0_0-1", "expid": "0_0", "name": "build", "state": "failed", "since": T0}
        ],
        errors=[
            {
                "id": "e1",
                "eid": "0_0-1",
                "expid": "0_0",
                "at": "2026-01-01T00:00:00Z",
                "class": "RunError",
                "message": "the build host is down",
            }
        ],
    )
    (step,) = tl["steps"]
    assert step["source"] == "state" and step["state"] == "failed" and step["error"]
    assert tl["errors"][0]["expid"] == "0_0"
    g = gantt(tl, now=1767225700.0)
    (bar,) = g["rows"][0]["bars"]
    assert bar["kind"] == "queued" and bar["failed"] and not bar["open"]
    # the bar ends when the error happened, not now
    assert bar["x"] + bar["w"] < g["x1"] - 100


def test_run_page_shows_errors_without_trace_events(web: WebEnv) -> None:
    wfid = web.launch_as("alice", BROKEN)
    c = web.client("alice")
    page = c.get(f"/runs/{wfid}").data.decode()
    assert "the build host is down" in page
    fragment = c.get(f"/runs/{wfid}/timeline.html")
    assert fragment.status_code == 200
    html = fragment.data.decode()
    assert 'id="timeline-errors"' in html and "the build host is down" in html
    assert "no step events yet</td>" not in html
    assert "style=" not in html
    assert c.get("/runs/nosuchrun/timeline.html").status_code == 404
    tl = c.get(f"/api/runs/{wfid}/timeline").json
    assert tl["errors"][0]["expid"] == "0_0" and tl["errors"][0]["at"]


def test_a_real_run(web: WebEnv) -> None:
    from tests.webui.test_api import _run_with_trace

    graph, (ok, failed) = _run_with_trace(web)
    svc = web.app.extensions["boss"]
    svc.graph = graph
    c = web.client("root")
    tl = c.get(f"/api/runs/{ok}/timeline").json
    assert [s["participant"] for s in tl["steps"]] == ["alpha", "beta"]
    for s in tl["steps"]:
        assert s["started"] is not None and s["queued_s"] >= 0 and s["duration_s"] >= 0
    assert tl["critical_path"] == [s["eid"] for s in tl["steps"]]
    kinds = [b["kind"] for r in tl["gantt"]["rows"] for b in r["bars"]]
    assert kinds == ["queued", "running", "queued", "running"]
    html = c.get(f"/runs/{ok}/timeline.html").data.decode()
    assert html.count('class="bar ') == 4 and "critical" in html
    g = c.get(f"/api/runs/{failed}/graph").json
    states_ = {n["data"]["id"]: n["data"]["state"] for n in g["elements"]["nodes"]}
    assert states_["0_0"] == "done" and states_["0_1"] == "failed"
    page = c.get(f"/runs/{failed}").data.decode()
    assert 'id="gantt"' in page and "tests failed" in page
