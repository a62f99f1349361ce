"""Browser tests of the errors, dead-letters and participants pages, on the
real system of ``test_browser`` (its ``stack`` fixture: an engine worker
and participant processes on the embedded broker, the UI in a thread,
headless Chromium): ten errors of one root cause are one group and the
bulk bar stays on screen while scrolling; a dead letter is re-injected and
dropped from the page; stopping a SkyNET pool (a real SkyNET host) asks
first; the pages fit a 390 px wide phone."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.skynet.conftest import Host
from tests.skynet.conftest import make_host as make_host  # a real SkyNET host
from tests.waiting import wait_for
from tests.webui.conftest import USERS
from tests.webui.test_browser import PROCESSES, Stack
from tests.webui.test_browser import stack as stack  # the module's system and browser

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(300)]


def test_ten_errors_of_one_cause_are_one_group_with_a_bulk_bar(stack: Stack) -> None:
    from playwright.sync_api import expect

    system = stack.system
    wfids = [system.launch(PROCESSES["build"], {"project": f"pkg-{n}"}) for n in range(10)]
    for wfid in wfids:
        system.wait_status(wfid, "error")
    page = stack.page("root")
    page.set_viewport_size({"width": 1100, "height": 600})
    page.goto(f"{stack.url}/errors")
    group = page.locator("section.errgroup", has_text="cannot build pkg-<n>")
    expect(group).to_have_count(1)
    expect(group.locator(".count-badge")).to_have_text("10 errors")
    expect(group.locator("tbody tr")).to_have_count(10)
    expect(group.locator(".examples li")).to_have_count(3)
    expect(group).to_contain_text("builder")
    expect(group).to_contain_text("build")  # the process
    # every checkbox has a name
    for box in group.locator("input[type=checkbox]").all():
        assert box.get_attribute("aria-label") or box.get_attribute("id")
    bar = page.locator("#bulk-bar")
    expect(bar).to_be_in_viewport()
    group.locator(".group-toggle").check()
    expect(group.locator("tbody input:checked")).to_have_count(10)
    page.mouse.wheel(0, 800)
    wait_for(lambda: page.evaluate("window.scrollY") > 200, 10, "the page scrolled")
    expect(bar).to_be_in_viewport()
    stack.shot(page, "errors-grouped")
    page.fill("#bulk-fields", '{"fixed": true}')
    page.click("#replay-selected")
    expect(page.locator(".flash.ok")).to_have_count(10)
    for wfid in wfids:
        system.wait_status(wfid, "finished")


def test_a_dead_letter_is_reinjected_and_dropped(stack: Stack) -> None:
    from playwright.sync_api import expect

    from engine.broker import list_deadletters

    system = stack.system
    body = b'{"type": "launch", "definition": 42}'  # malformed: a worker sets it aside

    def letters() -> list[dict[str, Any]]:
        with system.publisher.connection.clone() as conn:
            return [x for x in list_deadletters(system.config, conn) if "42" in x["body"]]

    system.publisher.publish(body, queue=system.config.engine_queue)
    first = wait_for(letters, 30, "the worker to dead-letter the message")[0]
    page = stack.page("root")
    page.goto(f"{stack.url}/deadletters")
    row = page.locator(f'tr[data-letter="{first["id"]}"]')
    expect(row).to_contain_text(system.config.engine_queue)
    stack.shot(page, "deadletters")
    page.click(f"#reinject-{first['id']}")
    expect(page.locator(".flash.ok")).to_contain_text("re-injected")
    # back on the engine's queue: the worker takes it again, and sets it aside again
    again = wait_for(
        lambda: [x for x in letters() if x["id"] != first["id"]], 30, "the letter back"
    )[0]
    assert all(x["id"] != first["id"] for x in letters())
    page.goto(f"{stack.url}/deadletters")
    # drop asks first: dismissed, nothing happens
    page.once("dialog", lambda d: d.dismiss())
    page.click(f"#drop-{again['id']}")
    expect(page.locator(f'tr[data-letter="{again["id"]}"]')).to_have_count(1)
    page.once("dialog", lambda d: d.accept())
    page.click(f"#drop-{again['id']}")
    expect(page.locator(".flash.ok")).to_contain_text("dropped")
    expect(page.locator(f'tr[data-letter="{again["id"]}"]')).to_have_count(0)
    assert letters() == []
    actions = [e["action"] for e in stack.app.extensions["boss"].audit.entries(0, 5)]
    assert actions[:2] == ["deadletter drop", "deadletter reinject"]


def test_stopping_a_pool_asks_first(
    stack: Stack, make_host: Callable[..., Host], embedded_broker_url: str
) -> None:
    from playwright.sync_api import expect

    from skynet.api import create_app as skynet_app
    from tests.skynet.test_api import _serving
    from webui.app import create_app
    from webui.serve import make_boss_server
    from webui.settings import WebConfig

    host = make_host(embedded_broker_url, host_name="build-1")
    host.install("alpha")
    assert host.states("alpha") == {"alpha@00": "RUNNING"}
    with _serving(skynet_app(host.config)) as skynet_url:
        web = WebConfig(
            secret_key=f"browser-{uuid.uuid4().hex}", skynet_urls=skynet_url, skynet_token="t0ken"
        )
        app = create_app(stack.system.config, web=web, users=USERS)
        server = make_boss_server("127.0.0.1", 0, app)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            other = Stack(stack.system, f"http://127.0.0.1:{server.server_port}", stack.browser)
            page = other.page("root")
            page.goto(f"{other.url}/participants")
            stop = page.get_by_role("button", name="stop pool alpha on build-1")
            asked: list[str] = []

            def dismiss(dialog: Any) -> None:
                asked.append(dialog.message)
                dialog.dismiss()

            page.once("dialog", dismiss)
            stop.click()
            wait_for(lambda: asked, 10, "the confirmation")
            assert "Stop the alpha pool" in asked[0]
            assert host.states("alpha") == {"alpha@00": "RUNNING"}
            page.once("dialog", lambda d: d.accept())
            stop.click()
            expect(page.locator(".flash.ok")).to_contain_text("stop sent to alpha")
            wait_for(
                lambda: set(host.states("alpha").values()) == {"STOPPED"}, 30, "the pool stopped"
            )
        finally:
            server.shutdown()
            app.extensions["boss"].close()


@pytest.mark.parametrize(
    "path",
    ["/errors", "/deadletters", "/participants", "/launch?process=hello", "/trace", "/login"],
)
def test_pages_fit_a_phone(stack: Stack, path: str) -> None:
    page = stack.page("root")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(stack.url + path)
    page.wait_for_selector("main h1")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{path} is {width} px wide on a 390 px screen"
