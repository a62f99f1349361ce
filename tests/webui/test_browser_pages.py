"""Every page of the web UI, at a desktop's 1440x900 and a phone's 390x844
(issue 15, "what it must show"): a full-page screenshot in
``tests/webui/artifacts/<page>-<width>.png``, no axe-core violation of
impact serious or critical (``tests/webui/axe.py``: axe from the npm
registry, run inside the page, under the page's own CSP), and at 390 px no
horizontal scrolling.

The same system and browser as ``test_browser.py`` (its ``stack`` fixture);
the runs shown (finished, failed, running) are launched from the UI once
for the module, and a message the engine cannot read makes a dead
letter. axe's full report of each page is written beside the screenshot
(``axe-<page>-<width>.json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.webui import axe
from tests.webui.test_browser import ARTIFACTS, Stack, _launch
from tests.webui.test_browser import stack as stack  # the module's system and browser

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]

#: the running run's process: one step that takes 15 minutes
IDLE = "name: idle\nsteps:\n  - sleeper: {seconds: 900}\n"
#: viewport width -> height
SIZES = {1440: 900, 390: 844}
#: a page may be this much wider than the phone's viewport (sub-pixel rounding)
SLACK = 1


@dataclass(frozen=True)
class Page:
    name: str
    #: the path, from the runs the module made (``Site``)
    path: Callable[[Site], str]
    #: shown once this is in the page (its main data drawn)
    ready: str
    #: visited by the admin; None: anonymous
    user: str | None = "root"


@dataclass
class Site:
    stack: Stack
    #: the admin's cookies (one log in for every page)
    state: dict[str, Any]
    finished: str
    error: str
    running: str
    event: str
    #: the app's URL map, to tell a page that is not there (yet)
    urls: Any


PAGES = [
    Page("runs", lambda s: "/runs", "#runs-body tr[data-wfid]"),
    Page("run-finished", lambda s: f"/runs/{s.finished}", '#defgraph[data-ready="1"]'),
    Page("run-error", lambda s: f"/runs/{s.error}", '#defgraph[data-ready="1"]'),
    Page("run-running", lambda s: f"/runs/{s.running}", '#defgraph[data-ready="1"]'),
    Page("errors", lambda s: "/errors", "main h1"),
    Page("launch", lambda s: "/launch?process=hello", "#yaml"),
    Page("participants", lambda s: "/participants", "#registrations"),
    Page("trace", lambda s: "/trace", "main h1"),
    Page("trace-event", lambda s: f"/trace/events/{s.event}", '#tracegraph[data-ready="1"]'),
    Page("health", lambda s: "/health", "#health-participants"),
    Page("audit", lambda s: "/audit", "#audit"),
    Page("login", lambda s: "/login", "#login-button", user=None),
    Page("deadletters", lambda s: "/deadletters", "main h1"),
]


@pytest.fixture(scope="module")
def site(stack: Stack) -> Iterator[Site]:
    """A finished run, one in error and one running (a 15-minute step), their
    root trace event, and the admin's cookies."""
    from engine.trace.activity import activity_id
    from tests.waiting import wait_for

    # launched from the UI, waited for in the store (the pages' own live
    # updates are the other browser tests' business)
    system = stack.system
    page = stack.page("root")
    finished = _launch(stack, page, "hello", '{"project": "kernel"}')
    system.wait_status(finished, "finished")
    error = _launch(stack, page, "build", '{"project": "glibc"}')
    system.wait_status(error, "error")
    # longer than the module takes, however loaded the machine
    (Path(system.config.process_dir) / "idle.yaml").write_text(IDLE)
    running = _launch(stack, page, "idle", '{"project": "kernel"}')
    wait_for(
        lambda: any(p.name == "sleeper" for p in system.engine.positions(running)),
        30,
        "the slow run at its sleeper step",
    )
    event = activity_id(finished, None, "triggered")
    client = stack.system.store.client
    prefix = stack.system.config.key_prefix
    wait_for(lambda: client.exists(f"{prefix}g:e:{event}"), 15, "the run's events in the graph")
    urls = stack.app.url_map.bind("127.0.0.1")
    if "/api/deadletters" in _rules(stack):
        # a message the engine cannot read: a dead letter for its page to show
        stack.system.publisher.publish(b"not json", queue=stack.system.config.engine_queue)
        api = stack.app.test_client()
        wait_for(lambda: api.get("/api/deadletters").json["total"] > 0, 30, "a dead letter")
    state = page.context.storage_state()
    page.context.close()
    yield Site(stack, state, finished, error, running, event, urls)
    # the sleeper would hold its step through the stack's shutdown (15 s
    # before it is killed): end the run, and its step with it
    system.boss("cancel", running)
    system.wait_status(running, "cancelled")


def _rules(stack: Stack) -> set[str]:
    return {rule.rule for rule in stack.app.url_map.iter_rules()}


def _overflowing(page: Any, width: int) -> list[str]:
    """The outermost elements reaching past the viewport's right edge."""
    found: list[str] = page.evaluate(
        """(width) => {
            const out = [];
            const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                + (e.classList.length ? '.' + [...e.classList].join('.') : '');
            for (const e of document.body.querySelectorAll('*')) {
                const r = e.getBoundingClientRect();
                if (r.width === 0 || r.right <= width + 1) continue;
                const p = e.parentElement;
                const inside = p && p !== document.body;
                if (inside && p.getBoundingClientRect().right > width + 1) continue;
                out.push(`${name(p || e)} > ${name(e)}: right ${Math.round(r.right)} px`);
            }
            return out.slice(0, 15);
        }""",
        width,
    )
    return found


@pytest.mark.parametrize(
    ("spec", "width"),
    [(p, w) for p in PAGES for w in SIZES],
    ids=[f"{p.name}-{w}" for p in PAGES for w in SIZES],
)
def test_page(site: Site, spec: Page, width: int) -> None:
    stack = site.stack
    path = spec.path(site)
    from werkzeug.exceptions import NotFound

    try:
        site.urls.match(path.split("?")[0])
    except NotFound:
        pytest.skip(f"{path} is not a page of this app (yet)")
    context = stack.browser.new_context(
        viewport={"width": width, "height": SIZES[width]},
        storage_state=site.state if spec.user else None,
    )
    try:
        axe.serve_axe(context, stack.url)
        page = context.new_page()
        page.set_default_timeout(30_000)
        answer = page.goto(stack.url + path)
        assert answer is not None and answer.status == 200, (path, answer and answer.status)
        page.wait_for_selector(spec.ready, state="attached")
        page.evaluate("() => document.fonts.ready.then(() => true)")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{spec.name}-{width}.png"), full_page=True)
        problems = []
        if width <= 390:
            scroll = page.evaluate("() => document.scrollingElement.scrollWidth")
            if scroll > width + SLACK:
                wide = "\n    ".join(_overflowing(page, width))
                problems.append(
                    f"scrolls horizontally: scrollWidth {scroll} > {width}; wider:\n    {wide}"
                )
        violations = axe.run_axe(page, stack.url)
        (ARTIFACTS / f"axe-{spec.name}-{width}.json").write_text(
            json.dumps(violations, indent=1) + "\n"
        )
        bad = axe.failing(violations)
        if bad:
            problems.append("axe: serious or critical violations:\n" + axe.describe(bad))
        assert not problems, f"{path} at {width}px:\n" + "\n".join(problems)
    finally:
        context.close()
