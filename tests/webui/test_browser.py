"""Browser tests: headless Chromium (Debian's ``chromium`` package) driven
by Playwright (``executable_path``: Playwright's own browser download is
never used), against the web UI served by werkzeug in a thread, on a real
system: an engine worker and participant processes on the embedded broker
(the e2e suite's ``System`` harness and handlers).

Chromium is installed by the fixture when it is missing and we are root
(``apt-get install chromium``); otherwise the tests skip saying why, or
fail when ``BOSS_REQUIRE_BROWSER=1``. Screenshots of the main pages go to
``tests/webui/artifacts/``.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import apt_get, delete_keys
from tests.e2e.conftest import System
from tests.webui.conftest import PASSWORDS, USERS

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]

ARTIFACTS = Path(__file__).with_name("artifacts")

PROCESSES = {
    "hello": "name: hello\nsteps:\n  - bump: {tag: first}\n  - bump: {tag: second}\n",
    "build": "name: build\nsteps:\n  - bump\n  - builder\n  - bump: {tag: after}\n",
    "slow": "name: slow\nsteps:\n  - sleeper: {seconds: 120}\n",
}


def _unavailable(reason: str) -> None:
    if os.environ.get("BOSS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"a browser is required (BOSS_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(f"no browser: {reason} (BOSS_REQUIRE_BROWSER=1 fails instead)")


def chromium_path() -> str:
    """Debian's chromium, installed with apt-get when missing (as root)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        _unavailable(
            "chromium is not installed and this is not root with apt-get (apt-get install chromium)"
        )
    run = apt_get("install", "-y", "-q", "chromium")
    if run.returncode != 0:  # the package lists may be missing: update once
        apt_get("update", "-q")
        run = apt_get("install", "-y", "-q", "chromium")
    found = shutil.which("chromium")
    if found is None:
        _unavailable(f"apt-get install chromium failed: {run.stderr[-500:]}")
    return found


class Stack:
    """The system, the served UI and a browser."""

    def __init__(self, system: System, url: str, browser: Any, app: Any = None) -> None:
        self.system = system
        self.url = url
        self.browser = browser
        self.app = app

    def page(self, user: str | None = None) -> Any:
        context = self.browser.new_context(viewport={"width": 1360, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        if user is not None:
            page.goto(self.url + "/login")
            page.fill("#username", user)
            page.fill("#password", PASSWORDS[user])
            page.click("#login-button")
            page.wait_for_url(self.url + "/runs")
        return page

    def shot(self, page: Any, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, embedded_url: str, embedded_broker_url: str
) -> Iterator[Stack]:
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    from webui.app import create_app
    from webui.serve import make_boss_server
    from webui.settings import WebConfig

    tmp = tmp_path_factory.mktemp("webui-browser")
    system = System(tmp, embedded_broker_url, embedded_url, f"web{uuid.uuid4().hex[:10]}")
    (tmp / "processes").mkdir()
    for name, text in PROCESSES.items():
        (tmp / "processes" / f"{name}.yaml").write_text(text)
    server = None
    pw = None
    try:
        system.worker()
        system.participant("bump", "Bump", instances=2)
        system.participant("builder", "Raise")
        system.participant("sleeper", "Sleeper")
        app = create_app(
            system.config, web=WebConfig(secret_key="browser", poll_interval=0.5), users=USERS
        )
        server = make_boss_server("127.0.0.1", 0, app)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        pw = sync_playwright().start()
        browser = pw.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield Stack(system, f"http://127.0.0.1:{server.server_port}", browser, app)
        browser.close()
    finally:
        if pw is not None:
            pw.stop()
        if server is not None:
            server.shutdown()
            app.extensions["boss"].close()
        system.cleanup()
        delete_keys(system.store.client, system.config.key_prefix)


def _launch(stack: Stack, page: Any, process: str, fields: str = "{}") -> str:
    page.goto(f"{stack.url}/launch")
    page.select_option("#process-select", process)
    page.wait_for_selector("#yaml")
    page.fill("#fields-editor", fields)
    page.click("#validate-button")
    page.wait_for_selector("text=is valid")
    page.click("#launch-button")
    page.wait_for_url("**/runs/*")
    return page.locator("#wfid").inner_text()


def test_log_in_launch_and_watch_it_finish(stack: Stack) -> None:
    from playwright.sync_api import expect

    page = stack.page("alice")
    expect(page.locator("#whoami")).to_have_text("alice (user)")
    wfid = _launch(stack, page, "hello", '{"project": "kernel"}')
    expect(page.locator("#run-status")).to_have_text("finished", timeout=60_000)
    expect(page.locator("#defgraph canvas").first).to_be_visible()
    expect(page.locator("#timeline-body tr")).to_have_count(2, timeout=15_000)
    expect(page.locator("#fields")).to_contain_text("trail")
    stack.shot(page, "run-finished")
    assert stack.system.status(wfid) == "finished"
    assert stack.system.engine.fields(wfid)["n"] == 2
    page.goto(f"{stack.url}/runs?project=kernel")
    expect(page.locator(f'tr[data-wfid="{wfid}"]')).to_be_visible()
    stack.shot(page, "runs")
    page.goto(f"{stack.url}/launch?process=hello")
    stack.shot(page, "launch")


def test_fail_and_replay_with_edited_fields(stack: Stack) -> None:
    from playwright.sync_api import expect

    page = stack.page("alice")
    wfid = _launch(stack, page, "build", '{"project": "glibc"}')
    expect(page.locator("#run-status")).to_have_text("error", timeout=60_000)
    expect(page.locator("#errors")).to_contain_text("cannot build glibc")
    expect(page.locator('#defgraph[data-ready="1"]')).to_have_count(1)
    stack.shot(page, "run-error")
    page.goto(f"{stack.url}/errors")
    expect(page.locator("body")).to_contain_text("cannot build glibc")
    stack.shot(page, "errors")
    page.goto(f"{stack.url}/runs/{wfid}")
    editor = page.locator("#replay-fields-0")
    fields = editor.input_value()
    assert '"project": "glibc"' in fields
    editor.fill(fields.replace('"project": "glibc"', '"project": "glibc", "fixed": true'))
    page.click("#action-replay-0")
    expect(page.locator(".flash.ok")).to_contain_text("replay sent")
    expect(page.locator("#run-status")).to_have_text("finished", timeout=60_000)
    final = stack.system.engine.fields(wfid)
    assert final["built"] is True and final["fixed"] is True


def test_cancel_a_run(stack: Stack) -> None:
    from playwright.sync_api import expect

    page = stack.page("alice")
    wfid = _launch(stack, page, "slow")
    expect(page.locator("#positions")).to_contain_text("sleeper", timeout=30_000)
    # bob may not cancel it: the page says why
    bob = stack.page("bob")
    bob.goto(f"{stack.url}/runs/{wfid}")
    bob.once("dialog", lambda d: d.accept())
    bob.click("#action-cancel")
    expect(bob.locator("#refusal")).to_contain_text("it belongs to alice")
    stack.shot(bob, "refused")
    page.once("dialog", lambda d: d.accept())
    page.click("#action-cancel")
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=60_000)
    assert stack.system.status(wfid) == "cancelled"


def test_trace_graph_and_main_pages(stack: Stack) -> None:
    from playwright.sync_api import expect

    from engine.trace.activity import activity_id
    from tests.waiting import wait_for

    page = stack.page("root")
    wfid = _launch(stack, page, "hello")
    expect(page.locator("#run-status")).to_have_text("finished", timeout=60_000)
    root_event = activity_id(wfid, None, "triggered")
    finished = activity_id(wfid, None, "finished")
    graph = stack.system.store.client
    # the page draws the graph as it is when loaded: wait for the run's
    # last event (the aggregator stores events a batch at a time, after
    # the run's status changed)
    wait_for(
        lambda: graph.exists(f"{stack.system.config.key_prefix}g:e:{finished}"),
        15,
        "the run's end in the graph",
    )
    wait_for(
        lambda: graph.exists(f"{stack.system.config.key_prefix}g:e:{root_event}"),
        15,
        "the run's first event in the graph",
    )
    page.goto(f"{stack.url}/trace?q={root_event}")
    page.wait_for_url(f"**/trace/events/{root_event}")
    expect(page.locator('#tracegraph[data-ready="1"]')).to_have_count(1)
    assert int(page.locator("#tracegraph").get_attribute("data-nodes")) >= 4
    expect(page.locator("#trace-legend")).to_contain_text("CONTEXT")
    # and back from the trace to the run: from the run's own event, and from
    # an event of its end (through ACTIVITY_EXECUTION to its triggered event)
    expect(page.locator("#event-run")).to_have_text(wfid)
    page.goto(f"{stack.url}/trace/events/{finished}")
    page.click("#event-run")
    page.wait_for_url(f"**/runs/{wfid}")
    page.goto(f"{stack.url}/trace/events/{root_event}")
    stack.shot(page, "trace-graph")
    for name in ("participants", "health", "audit", "trace"):
        page.goto(f"{stack.url}/{name}")
        expect(page.locator("h1")).to_be_visible()
        stack.shot(page, name)
    page.goto(f"{stack.url}/health")
    expect(page.locator("#health-participants")).to_contain_text("bump", timeout=10_000)
    expect(page.locator("#registrations")).to_have_count(0)
    page.goto(f"{stack.url}/audit")
    expect(page.locator("#audit")).to_contain_text("launch")
