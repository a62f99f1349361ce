"""Browser tests of the pictures (static/graphs.js, the Gantt chart):
BOSS_handle_SR's definition graph opens readable (labels at least
MIN_PX on screen) and its subprocess calls open and close on click; a
finished run's Gantt chart has bars ordered in time and follows the run's
``boss:transition`` events; the trace graph of ~30 events has no
overlapping labels. Reuses test_browser.py's system, server and browser;
screenshots go to tests/webui/artifacts/."""

from __future__ import annotations

import time
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from engine.trace.activity import activity_id
from tests.waiting import wait_for
from tests.webui.test_browser import Stack, _launch, stack

__all__ = ["stack"]  # the fixture, shared with test_browser.py

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]

SR = Path(__file__).parents[2] / "processes" / "StandardWorkflow" / "BOSS_handle_SR.yaml"
MIN_PX = 11.5
#: the smallest label on screen of a Cytoscape graph: font size x zoom
SMALLEST = "(cy => Math.min(...cy.nodes().map(n => parseFloat(n.style('font-size')) * cy.zoom())))"
MANY = "name: many\nsteps:\n" + "".join(f"  - bump: {{tag: s{i}}}\n" for i in range(14))


def _events_in_graph(stack: Stack, wfid: str) -> None:
    root = activity_id(wfid, None, "finished")
    prefix = stack.system.config.key_prefix
    wait_for(
        lambda: stack.system.store.client.exists(f"{prefix}g:e:{root}"), 20, "the run's end event"
    )


def test_handle_sr_definition_graph_is_readable(stack: Stack) -> None:
    from playwright.sync_api import expect

    wfid = stack.system.launch(SR.read_text(), {"ev": {"id": 42}})
    wait_for(lambda: stack.system.status(wfid) is not None, 30, "the run stored")
    time.sleep(1.0)
    page = stack.page("root")
    page.goto(f"{stack.url}/runs/{wfid}")
    expect(page.locator('#defgraph[data-ready="1"]')).to_have_count(1, timeout=30_000)
    info = page.evaluate(
        """() => { const g = window.BOSS.defGraph, cy = g.cy;
          const sizes = cy.nodes().map(n => parseFloat(n.style('font-size')) * cy.zoom());
          return {zoom: cy.zoom(), min: Math.min(...sizes), shown: cy.nodes().length,
                  all: Object.keys(g.nodes).length, ms: +g.el.dataset.drawMs,
                  labels: cy.nodes().filter(n => !n.data('label')).length}; }"""
    )
    print("BOSS_handle_SR definition graph:", info)
    assert info["min"] >= MIN_PX, info
    assert info["labels"] == 0 and info["all"] > 300 and info["shown"] < info["all"]
    stack.shot(page, "graph-handle-sr")
    # open a subprocess call by clicking it, then close it again
    call = "0_12"  # with_OBS_ticket, holding the trial build
    pos = page.evaluate(
        f"""() => {{ const cy = window.BOSS.defGraph.cy, n = cy.getElementById('{call}');
          cy.center(n); const p = n.renderedPosition(), r = cy.container().getBoundingClientRect();
          return {{x: r.left + p.x, y: r.top + p.y, parent: n.isParent()}}; }}"""
    )
    assert pos["parent"] is False
    page.mouse.click(pos["x"], pos["y"])
    page.wait_for_function(
        f"() => window.BOSS.defGraph.cy.getElementById('{call}').isParent()", timeout=10_000
    )
    opened = page.evaluate(
        f"""() => {{ const cy = window.BOSS.defGraph.cy, n = cy.getElementById('{call}');
          return {{children: n.children().length, zoom: cy.zoom(), min: {SMALLEST}(cy)}}; }}"""
    )
    assert opened["children"] >= 10 and opened["min"] >= MIN_PX, opened
    page.evaluate(
        f"() => window.BOSS.defGraph.cy.center(window.BOSS.defGraph.cy.getElementById('{call}'))"
    )
    stack.shot(page, "graph-handle-sr-open")
    pos = page.evaluate(
        f"""() => {{ const cy = window.BOSS.defGraph.cy, n = cy.getElementById('{call}');
          const bb = n.renderedBoundingBox({{includeLabels: true}});
          const r = cy.container().getBoundingClientRect();
          return {{x: r.left + (bb.x1 + bb.x2) / 2, y: r.top + Math.max(bb.y1 + 8, 4)}}; }}"""
    )
    page.mouse.click(pos["x"], pos["y"])
    page.wait_for_function(
        f"() => !window.BOSS.defGraph.cy.getElementById('{call}').isParent()", timeout=10_000
    )
    # the fit button never shrinks the labels below the minimum
    page.click("#defgraph-fit")
    z = page.evaluate("() => window.BOSS.defGraph.cy.zoom()")
    assert z * 13 >= MIN_PX


def _bars(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('#gantt rect.bar')].map(r => {
             const b = r.getBoundingClientRect();
             return {x: b.x, w: b.width, kind: r.dataset.kind, eid: r.dataset.eid,
                     critical: r.classList.contains('critical')}; })"""
    )


def test_gantt_of_a_finished_run(stack: Stack) -> None:
    from playwright.sync_api import expect

    page = stack.page("alice")
    wfid = _launch(stack, page, "hello")
    stack.system.wait_status(wfid, timeout=60)
    _events_in_graph(stack, wfid)
    page.goto(f"{stack.url}/runs/{wfid}")
    expect(page.locator("#gantt rect.bar").first).to_be_visible()
    bars = _bars(page)
    assert len(bars) >= 2 and all(b["w"] > 0 for b in bars), bars
    firsts: dict[str, float] = {}
    for b in bars:
        firsts.setdefault(b["eid"], b["x"])
    xs = list(firsts.values())
    assert xs == sorted(xs) and xs[-1] > xs[0], bars
    assert any(b["critical"] for b in bars)
    expect(page.locator("#gantt .tick-label").first).to_be_visible()
    page.locator("#timeline-section").scroll_into_view_if_needed()
    stack.shot(page, "gantt-finished")
    # a transition of the run fetches the timeline again and puts it in place
    refreshed = page.evaluate(
        """(wfid) => new Promise(ok => {
             document.addEventListener('boss:timeline', () => ok(true), {once: true});
             document.dispatchEvent(new CustomEvent('boss:transition', {detail: {wfid: wfid}}));
             setTimeout(() => ok(false), 10000); })""",
        wfid,
    )
    assert refreshed
    assert len(_bars(page)) == len(bars)


def test_trace_graph_labels_do_not_overlap(stack: Stack) -> None:
    from playwright.sync_api import expect

    (Path(stack.system.config.process_dir) / "many.yaml").write_text(MANY)
    page = stack.page("root")
    wfid = _launch(stack, page, "many")
    stack.system.wait_status(wfid, timeout=90)
    _events_in_graph(stack, wfid)
    page.goto(f"{stack.url}/trace/events/{activity_id(wfid, None, 'triggered')}")
    expect(page.locator('#tracegraph[data-ready="1"]')).to_have_count(1, timeout=30_000)
    boxes = page.evaluate(
        """() => window.BOSS.traceCy.nodes().map(n => {
             const b = n.boundingBox({includeLabels: true});
             return {id: n.id(), x1: b.x1, x2: b.x2, y1: b.y1, y2: b.y2}; })"""
    )
    assert len(boxes) >= 25, len(boxes)
    overlaps = [
        (a["id"], b["id"])
        for a, b in combinations(boxes, 2)
        if a["x1"] < b["x2"] and b["x1"] < a["x2"] and a["y1"] < b["y2"] and b["y1"] < a["y2"]
    ]
    assert not overlaps, overlaps
    size = page.evaluate(f"() => {SMALLEST}(window.BOSS.traceCy)")
    assert size >= MIN_PX
    expect(page.locator("#trace-types")).to_contain_text("ActivityTriggered")
    stack.shot(page, "trace-graph-30")
