"""No way in for strangers, seen from headless Chromium (issue 15, items 1-5):
the redirect after log in stays on the site, a replayed session cookie is
worthless after log out and after a password change, the wrong password
past the limit gets 429, an anonymous POST flood leaves the audit log alone
(and is counted in ``/metrics``), ``/metrics`` is refused without access,
every page loads under the strict CSP without a single violation, the API
says ``no-store`` and ``Server`` names no version.

The same system and browser as ``test_browser.py`` (its ``stack`` fixture);
apps with other ``[web]`` settings are served beside it on the same store.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.webui.conftest import PASSWORDS, USERS
from tests.webui.test_browser import Stack, _launch
from tests.webui.test_browser import stack as stack  # the module's system and browser

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]


@contextmanager
def served(stack: Stack, **settings: Any) -> Iterator[str]:
    """Another app on the stack's system, with these ``[web]`` settings."""
    from webui.app import create_app
    from webui.serve import make_boss_server
    from webui.settings import WebConfig

    web = WebConfig(secret_key="browser", **settings)
    app = create_app(stack.system.config, web=web, users=USERS)
    server = make_boss_server("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        app.extensions["boss"].close()


def _log_in(page: Any, url: str, user: str, password: str | None = None) -> Any:
    """Fill and send the log-in form; the answer to the POST."""
    page.fill("#username", user)
    page.fill("#password", password or PASSWORDS[user])
    with page.expect_response(
        lambda r: r.url.startswith(url + "/login") and r.request.method == "POST"
    ) as info:
        page.click("#login-button")
    page.wait_for_load_state()
    return info.value


def _users(stack: Stack) -> Any:
    return stack.app.extensions["boss"].users


def test_the_redirect_after_log_in_stays_on_the_site(stack: Stack) -> None:
    page = stack.page()
    left: list[str] = []
    page.route(
        "**://evil.example/**", lambda route: (left.append(route.request.url), route.abort())
    )
    for target in ("/%09/evil.example/phish", "/%5Cevil.example/phish", "//evil.example/phish"):
        page.goto(f"{stack.url}/login?next={target}")
        _log_in(page, stack.url, "alice")
        assert page.url == stack.url + "/runs", (target, page.url)
        assert left == [], target
        page.click("text=log out")
    page.goto(f"{stack.url}/login?next=/errors")
    _log_in(page, stack.url, "alice")
    assert page.url == stack.url + "/errors"


def _session_cookie(page: Any) -> dict[str, Any]:
    return next(c for c in page.context.cookies() if c["name"] == "boss_session")


def _replayed(stack: Stack, cookie: dict[str, Any]) -> Any:
    """A new browser context that has only the copied cookie."""
    context = stack.browser.new_context()
    context.add_cookies([cookie])
    return context


def _who(context: Any, url: str) -> dict[str, Any]:
    return context.request.get(url + "/api/me").json()


def test_a_replayed_cookie_is_refused_after_log_out(stack: Stack) -> None:
    from playwright.sync_api import expect

    page = stack.page("alice")
    wfid = _launch(stack, page, "hello")
    stolen = _session_cookie(page)
    thief = _replayed(stack, stolen)
    me = _who(thief, stack.url)
    assert me["user"] == "alice"  # before log out the copy works (that is what a cookie is)
    page.click("text=log out")
    expect(page.locator("#whoami")).to_have_text("anonymous (read-only)")
    assert _who(thief, stack.url)["user"] == "anonymous"
    r = thief.request.post(
        f"{stack.url}/api/runs/{wfid}/cancel",
        data="{}",
        headers={"X-CSRF-Token": me["csrf_token"], "Content-Type": "application/json"},
    )
    assert r.status == 401 and "anonymous" in r.json()["error"]
    thief_page = thief.new_page()
    thief_page.goto(f"{stack.url}/runs/{wfid}")
    expect(thief_page.locator("#whoami")).to_have_text("anonymous (read-only)")
    thief.close()


def test_a_replayed_cookie_is_refused_after_a_password_change(stack: Stack) -> None:
    users = _users(stack)
    users.add("carol", "carol-secret", "user")
    page = stack.page()
    page.goto(stack.url + "/login")
    _log_in(page, stack.url, "carol", "carol-secret")
    thief = _replayed(stack, _session_cookie(page))
    assert _who(thief, stack.url)["user"] == "carol"
    users.passwd("carol", "carol-new-secret")  # `boss web user passwd carol`
    assert _who(thief, stack.url)["user"] == "anonymous"
    page.reload()  # her own browser's session ended too: log in again
    assert page.locator("#whoami").inner_text() == "anonymous (read-only)"
    thief.close()
    users.remove("carol")


def test_the_wrong_password_past_the_limit_gets_429(stack: Stack) -> None:
    # the limits are small here (the test is quick); test_security.py checks
    # the default numbers (the 11th for a user, the 41st from an address)
    with served(stack, login_limit_user="3 per minute", login_limit_address="6 per minute") as url:
        page = stack.page()
        page.goto(url + "/login")
        for _ in range(3):
            r = _log_in(page, url, "bob", "not-bobs-password")
            assert r.status == 401
            assert "unknown user or wrong password" in page.content()
        r = _log_in(page, url, "bob", "not-bobs-password")
        assert r.status == 429
        assert 0 < int(r.headers["retry-after"]) <= 60
        assert "too many failed log-ins" in page.locator("#refusal").inner_text()
        page.goto(url + "/login")
        assert _log_in(page, url, "bob").status == 429  # locked out, even with the password
        page.goto(url + "/login")
        assert _log_in(page, url, "alice").status == 302  # another user is not


def _metric(text: str, status: int) -> float:
    found = re.search(rf'boss_web_anonymous_refusals_total\{{status="{status}"\}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def test_an_anonymous_flood_does_not_grow_the_audit_log(stack: Stack) -> None:
    audit = stack.app.extensions["boss"].audit
    page = stack.page()
    page.goto(stack.url + "/runs")
    before_400 = _metric(page.request.get(stack.url + "/metrics").text(), 400)
    before_401 = _metric(page.request.get(stack.url + "/metrics").text(), 401)
    before = audit.count()
    statuses = page.evaluate(
        """async () => {
            const out = [];
            for (let i = 0; i < 200; i++) {  // no token: what a script from anywhere sends
                const r = await fetch("/api/runs/x/cancel", {method: "POST", body: "{}"});
                out.push(r.status);
            }
            const token = document.querySelector('meta[name="csrf-token"]').content;
            for (let i = 0; i < 50; i++) {  // the session's token, but nobody logged in
                const r = await fetch("/api/launch", {method: "POST", body: "{}",
                  headers: {"X-CSRF-Token": token, "Content-Type": "application/json"}});
                out.push(r.status);
            }
            return out;
        }"""
    )
    assert statuses.count(400) == 200 and statuses.count(401) == 50
    assert audit.count() == before
    text = page.request.get(stack.url + "/metrics").text()
    assert _metric(text, 400) == before_400 + 200
    assert _metric(text, 401) == before_401 + 50


def test_metrics_are_refused_without_access(stack: Stack) -> None:
    with served(stack, anonymous=False, metrics_token="scrape-token") as url:
        page = stack.page()
        r = page.goto(url + "/metrics")
        assert r.status == 401 and "anonymous access is turned off" in page.content()
        r = page.request.get(url + "/metrics", headers={"Authorization": "Bearer scrape-token"})
        assert r.status == 200 and "boss_up" in r.text()
        page.goto(url + "/login")
        _log_in(page, url, "alice")
        r = page.goto(url + "/metrics")
        assert r.status == 200 and "boss_runs" in page.content()


CSP_WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + e.sourceFile + ":" +
                    e.lineNumber);
});
"""


def test_every_page_loads_under_the_csp_without_a_violation(stack: Stack) -> None:
    from playwright.sync_api import expect

    from engine.trace.activity import activity_id
    from tests.waiting import wait_for
    from webui.app import CSP

    page = stack.page("root")
    problems: list[str] = []

    def console(m: Any) -> None:
        # every error but the 404 of the refusal page below; CSP reports are errors
        csp = "Content Security Policy" in m.text
        if csp or (m.type == "error" and "status of 404" not in m.text):
            problems.append(f"{page.url}: {m.text}")

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(f"{page.url}: {e}"))
    page.context.add_init_script(CSP_WATCH)
    finished = _launch(stack, page, "hello")
    expect(page.locator("#run-status")).to_have_text("finished", timeout=60_000)
    failed = _launch(stack, page, "build", '{"project": "csp"}')
    expect(page.locator("#run-status")).to_have_text("error", timeout=60_000)
    root_event = activity_id(finished, None, "triggered")
    wait_for(
        lambda: stack.system.store.client.exists(
            f"{stack.system.config.key_prefix}g:e:{root_event}"
        ),
        15,
        "the run's events in the graph",
    )
    pages = {
        "/runs": "#runs-body",
        f"/runs/{finished}": '#defgraph[data-ready="1"]',
        f"/runs/{failed}": '#defgraph[data-ready="1"]',
        "/errors": "#bulk-replay",
        "/launch": "#process-select",
        "/launch?process=hello": "#yaml",
        "/participants": "h1",
        "/trace": "#dora tbody tr",
        f"/trace/events/{root_event}": '#tracegraph[data-ready="1"]',
        "/health": "h1",
        "/audit": "#audit",
        "/trace/events/no-such-event": "#refusal",
    }
    for path, ready in pages.items():
        r = page.goto(stack.url + path)
        assert r.headers["content-security-policy"] == CSP, path
        expect(page.locator(ready).first).to_be_attached()
        inline = page.evaluate(
            """() => [...document.scripts].filter(
                       s => !s.src && s.type !== "application/json").length
                   + [...document.querySelectorAll("*")].filter(e =>
                       [...e.attributes].some(a => a.name.startsWith("on"))).length"""
        )
        assert inline == 0, path
        assert page.evaluate("window.__csp") == [], (path, page.evaluate("window.__csp"))
    # the live list and the JS-only parts ran (boss.js started them without inline script)
    page.goto(stack.url + "/runs")
    expect(page.locator(f'tr[data-wfid="{finished}"]')).to_be_visible()
    page.goto(stack.url + "/launch")
    page.select_option("#process-select", "hello")  # data-autosubmit
    page.wait_for_selector("#yaml")
    anonymous = stack.page()
    anonymous.context.add_init_script(CSP_WATCH)
    anonymous.goto(stack.url + "/login")
    assert anonymous.evaluate("window.__csp") == []
    assert problems == [], problems
    # and the watch does see a violation: an inline script is refused
    ran = page.evaluate(
        """() => { const s = document.createElement("script"); s.textContent = "window.__ran = 1";
                   document.body.appendChild(s); return window.__ran || 0; }"""
    )
    assert ran == 0
    page.wait_for_function("window.__csp.length > 0")
    assert any("script-src" in v for v in page.evaluate("window.__csp"))


def test_api_answers_are_not_stored_and_server_has_no_version(stack: Stack) -> None:
    page = stack.page("alice")
    for path in ("/api/me", "/api/runs", "/api/errors", "/metrics"):
        r = page.goto(stack.url + path)
        assert r.headers["cache-control"] == "no-store", path
        assert r.headers["server"] == "BOSS", (path, r.headers["server"])
    r = page.goto(stack.url + "/runs")
    assert r.headers["server"] == "BOSS"
    assert not re.search(r"\d|werkzeug|python", r.headers["server"], re.I)
