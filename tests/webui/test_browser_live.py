"""Browser tests of issue 15's live pages: one server-sent-events stream
drives the run list and the run page without a reload; a failing pipeline
shows failed in the list; the runs page fits a 390 px phone; a run in
error is not offered Resume. Reuses ``test_browser``'s stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.webui.test_browser import Stack, _launch
from tests.webui.test_browser import stack as stack  # the module's system and browser

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]

RED = (
    "name: redfail\nsubprocesses:\n  mark_failed:\n    - set: {status: FAILURE}\n"
    "steps:\n  - participant: builder\n    on_error: mark_failed\n"
)


def _process(stack: Stack, name: str, text: str) -> None:
    Path(stack.system.config.process_dir, f"{name}.yaml").write_text(text)


def _mark(page: Any) -> None:
    """A marker that a reload would wipe."""
    page.evaluate("window.__noReload = 42")


def _not_reloaded(page: Any) -> bool:
    return page.evaluate("window.__noReload") == 42


def test_transitions_reach_the_run_list_and_page_without_reload(stack: Stack) -> None:
    from playwright.sync_api import expect

    page = stack.page("alice")
    runs = stack.page("alice")
    runs.goto(f"{stack.url}/runs")
    _mark(runs)
    wfid = _launch(stack, page, "hello", '{"project": "live"}')
    # the run page opened while it ran; it follows the run to its end
    _mark(page)
    expect(page.locator("#run-status")).to_have_text("finished", timeout=60_000)
    expect(page.locator("#positions")).to_contain_text("the run has ended")
    assert _not_reloaded(page)
    # the list got the new run and its end, in place
    row = runs.locator(f'tr[data-wfid="{wfid}"]')
    expect(row.locator(".c-status")).to_contain_text("finished", timeout=30_000)
    expect(row.locator("time[data-rel]")).to_have_attribute("title", _utc())
    assert _not_reloaded(runs)


def _utc() -> Any:
    import re

    return re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")


def test_a_failing_pipeline_shows_failed_in_the_list(stack: Stack) -> None:
    from playwright.sync_api import expect

    _process(stack, "redfail", RED)
    runs = stack.page("alice")
    runs.goto(f"{stack.url}/runs")
    _mark(runs)
    page = stack.page("alice")
    wfid = _launch(stack, page, "redfail", '{"project": "red"}')
    expect(page.locator("#run-outcome")).to_have_text("failed", timeout=60_000)
    row = runs.locator(f'tr[data-wfid="{wfid}"]')
    expect(row.locator(".outcome")).to_have_text("failed", timeout=30_000)
    assert _not_reloaded(runs)
    runs.goto(f"{stack.url}/runs?outcome=failed")
    expect(runs.locator(f'tr[data-wfid="{wfid}"] .outcome')).to_have_text("failed")
    stack.shot(runs, "runs-failed")
    # the run's ActivityFinished says so, and the health page counts it failed
    from engine.trace import activity_id
    from tests.waiting import wait_for

    finished = activity_id(wfid, None, "finished")
    graph = stack.system.store.client
    wait_for(
        lambda: graph.exists(f"{stack.system.config.key_prefix}g:e:{finished}"),
        15,
        "the run's ActivityFinished in the graph",
    )
    runs.goto(f"{stack.url}/trace/events/{finished}")
    expect(runs.locator("h1")).to_contain_text("ActivityFinished")
    expect(runs.locator("pre.code")).to_contain_text('"conclusion": "UNSUCCESSFUL"')
    runs.goto(f"{stack.url}/health")
    row = runs.locator("#health-processes tr", has_text="redfail")
    expect(row.locator("td").nth(3)).to_have_text("1", timeout=15_000)  # failed
    expect(row.locator("td").nth(2)).to_have_text("0.0%")  # success rate


def test_a_run_in_error_is_not_offered_resume(stack: Stack) -> None:
    from playwright.sync_api import expect

    page = stack.page("alice")
    _launch(stack, page, "build", '{"project": "glibc"}')
    expect(page.locator("#run-status")).to_have_text("error", timeout=60_000)
    expect(page.locator("#action-cancel")).to_be_visible()
    expect(page.locator("#action-resume")).to_have_count(0)
    expect(page.locator("#action-pause")).to_have_count(0)


def test_the_runs_page_fits_a_phone(stack: Stack) -> None:
    context = stack.browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"{stack.url}/runs")
    page.wait_for_selector("#runs-table")
    width = page.evaluate("document.scrollingElement.scrollWidth")
    stack.shot(page, "runs-live-390")
    assert width <= 390, f"the runs page is {width} px wide at 390"
    context.close()
