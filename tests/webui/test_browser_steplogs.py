"""Browser test of the run page's step panel (``static/steplogs.js``): a
step's log lines appear live, while the participant is still working on it,
then the step finishes. Reuses ``test_browser``'s ``stack`` (a real system
on the embedded broker, the served UI, headless Chromium)."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.steplog_handlers import start_talker
from tests.webui.test_browser import Stack, stack  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]


def test_a_steps_lines_appear_while_it_works(stack: Stack) -> None:  # noqa: F811
    from playwright.sync_api import expect

    system = stack.system
    if not any(p.name.startswith("talker") for p in system.procs):
        start_talker(system)
    tag = uuid.uuid4().hex[:6]
    go, release = system.tmp / f"go-{tag}", system.tmp / f"release-{tag}"
    params = f"{{tag: t{tag}, lines: 2, go: '{go}', wait: '{release}'}}"
    wfid = system.launch(f"name: talk\nsteps:\n  - talker: {params}\n")
    page = stack.page("alice")
    page.goto(f"{stack.url}/runs/{wfid}")
    panel = page.locator("#steplogs-lines")
    expect(panel).to_contain_text(f"t{tag} print 1", timeout=30_000)
    expect(panel).to_contain_text(f"boss.participant.talker: t{tag} log 0")
    # the page is open and following: the next line is said now
    go.touch()
    went = panel.locator(".logline", has_text=f"t{tag} went")
    expect(went).to_have_count(1, timeout=15_000)
    lag = float(went.get_attribute("data-lag") or "nan")
    assert system.status(wfid) == "running"  # still at work: the lines came live
    assert not release.exists()
    expect(page.locator("#steplogs-step option", has_text="talker")).not_to_have_count(0)
    stack.shot(page, "steplogs-live")
    release.touch()
    system.wait_status(wfid)
    expect(panel).to_contain_text(f"t{tag} done", timeout=30_000)
    print(f"step log line: from the handler's call to the page in {lag:.3f}s")
    assert lag < 5.0
    # the step's own view: only its lines, and what the run state keeps of it
    page.goto(f"{stack.url}/runs/{wfid}")
    expect(page.locator("#steplogs[data-ended='1']")).to_have_count(1, timeout=30_000)
    step = panel.locator(".logline").first.get_attribute("data-step")
    page.select_option("#steplogs-step", step)
    expect(panel).to_contain_text(f"t{tag} done", timeout=15_000)
    expect(page.locator("#steplogs-output")).to_contain_text("lines kept")
    stack.shot(page, "steplogs-step")


def test_a_failed_steps_traceback_is_in_the_panel(stack: Stack) -> None:  # noqa: F811
    from playwright.sync_api import expect

    page = stack.page("alice")
    wfid = stack.system.launch("name: build\nsteps:\n  - builder\n", {"project": "glibc"})
    stack.system.wait_status(wfid, "error")
    page.goto(f"{stack.url}/runs/{wfid}")
    expect(page.locator("#steplogs[data-ended='1']")).to_have_count(1, timeout=30_000)
    expect(page.locator("#steplogs-lines")).to_contain_text("handler failed")
    step = page.locator("#steplogs-lines .logline").first.get_attribute("data-step")
    page.select_option("#steplogs-step", step)
    expect(page.locator("#steplogs-traceback pre")).to_contain_text("cannot build glibc")
    expect(page.locator("#steplogs-input pre")).to_contain_text('"project": "glibc"')
