"""No way in for strangers (issue 15, items 1-5): the redirect after log in
stays on the site, logging out and a password change end the session on
the server, failed log-ins are throttled (the default numbers), anonymous
refusals are counted rather than audited, ``/metrics`` follows the access
rules, anonymous read is off unless bound to loopback, the answers carry a
strict CSP, ``no-store`` on JSON and no versions in ``Server``.

The same, seen from a real browser, is ``test_browser_security.py``."""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import delete_keys
from tests.webui.conftest import PASSWORDS, WebEnv, csrf, make_env
from webui.app import CSP
from webui.blueprints.auth import safe_next
from webui.settings import WebConfig

pytestmark = pytest.mark.redis


@pytest.fixture
def make_web(tmp_path: Path, redis_url: str, embedded_broker_url: str, key_prefix: str) -> Iterator:
    """``make_web(**web_settings)``: a ``WebEnv`` with those ``[web]`` settings."""
    made: list[WebEnv] = []

    def make(**settings: object) -> WebEnv:
        web = WebConfig(**{"secret_key": "s", **settings})  # type: ignore[arg-type]
        env = make_env(tmp_path, redis_url, embedded_broker_url, key_prefix, web)
        made.append(env)
        return env

    yield make
    for env in made:
        delete_keys(env.store.client, key_prefix)
        env.store.close()


def login(web: WebEnv, user: str, next_: str | None = None, password: str | None = None):
    c = web.app.test_client()
    data = {"username": user, "password": password or PASSWORDS[user], "csrf_token": csrf(c)}
    if next_ is not None:
        data["next"] = next_
    return c, c.post("/login", data=data)


# -- 1. the redirect after log in ----------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/\t/evil.example/phish",
        "/\n/evil.example",
        "\t//evil.example",
        " //evil.example",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
        "https://evil.example/",
        "http:evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/\x00/evil.example",
        "",
        None,
    ],
)
def test_safe_next_refuses_what_a_browser_reads_as_another_site(target: str | None) -> None:
    assert safe_next(target) == "/"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/runs?status=error", "/runs?status=error"),
        ("/runs/abc", "/runs/abc"),
        ("/trace?q=x%2Fy", "/trace?q=x%2Fy"),
        ("/runs\t?x=1", "/runs?x=1"),  # the browser drops the tab: so do we
    ],
)
def test_safe_next_keeps_paths_on_this_site(target: str, expected: str) -> None:
    assert safe_next(target) == expected


def test_login_redirect_stays_on_the_site(web: WebEnv) -> None:
    # the reported case: werkzeug drops the tab from Location, the browser follows
    c = web.app.test_client()
    page = c.get("/login?next=/%09/evil.example/phish")
    assert b'value="/\t/evil.example/phish"' in page.data
    for target in ("/\t/evil.example/phish", "/\\evil.example", "//evil.example"):
        _, r = login(web, "alice", target)
        assert r.status_code == 302 and r.headers["Location"] == "/", target
    _, r = login(web, "alice", "/runs?status=error")
    assert r.headers["Location"] == "/runs?status=error"


# -- 2. server-side sessions ------------------------------------------------------------


def _replay(web: WebEnv, cookie: str):
    """A fresh client that sends only ``cookie`` (a copied session cookie)."""
    c = web.app.test_client()
    c.set_cookie("boss_session", cookie)
    return c


def _cookie(client) -> str:
    return client.get_cookie("boss_session").value


def test_logout_ends_the_session_for_a_copied_cookie(web: WebEnv) -> None:
    alice, _ = login(web, "alice")
    token = csrf(alice)
    stolen = _cookie(alice)
    wfid = web.launch_as("alice")
    assert _replay(web, stolen).get("/api/me").json["user"] == "alice"
    alice.post("/logout", data={"csrf_token": token})
    thief = _replay(web, stolen)
    assert thief.get("/api/me").json["user"] == "anonymous"
    r = thief.post(f"/api/runs/{wfid}/cancel", json={}, headers={"X-CSRF-Token": token})
    assert r.status_code == 401
    assert web.publisher.sent == []


def test_password_change_and_removal_end_every_session(web: WebEnv) -> None:
    svc = web.app.extensions["boss"]
    first, _ = login(web, "alice")
    second, _ = login(web, "alice")
    cookies = [_cookie(first), _cookie(second)]
    assert len(svc.sessions.sessions("alice")) == 2
    svc.users.passwd("alice", "a-new-password")  # what `boss web user passwd` does
    for cookie in cookies:
        assert _replay(web, cookie).get("/api/me").json["user"] == "anonymous"
    assert svc.sessions.sessions("alice") == []
    bob, _ = login(web, "bob")
    stolen = _cookie(bob)
    svc.users.remove("bob")
    assert _replay(web, stolen).get("/api/me").json["user"] == "anonymous"


def test_session_lifetime_slides_with_activity(make_web) -> None:
    web = make_web(session_lifetime=2)
    c, _ = login(web, "alice")
    for _ in range(3):  # 3 s of activity: longer than the lifetime
        time.sleep(1)
        assert c.get("/api/me").json["user"] == "alice"
    key = (
        f"{web.config.key_prefix}web:sess:"
        + web.app.extensions["boss"].sessions.sessions("alice")[0]
    )
    assert 0 < web.store.client.ttl(key) <= 2
    time.sleep(2.5)  # idle for longer than the lifetime
    assert c.get("/api/me").json["user"] == "anonymous"
    assert web.app.permanent_session_lifetime.total_seconds() == 2


def test_default_session_lifetime_is_12_hours() -> None:
    assert WebConfig().session_lifetime == 12 * 3600
    assert WebConfig.load(None, environ={"BOSS_WEB_SESSION_LIFETIME": "30m"}).session_lifetime == (
        1800
    )


# -- 3. anonymous floods ---------------------------------------------------------------------


def _metric(text: str, status: int) -> float:
    found = re.search(rf'boss_web_anonymous_refusals_total\{{status="{status}"\}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def test_anonymous_refusals_are_counted_not_audited(web: WebEnv) -> None:
    svc = web.app.extensions["boss"]
    wfid = web.launch_as("alice")
    login(web, "root")  # one audit entry
    before = svc.audit.count()
    anon = web.app.test_client()
    for _ in range(300):  # token-less: no session, no CSRF token
        assert anon.post(f"/api/runs/{wfid}/cancel", json={}).status_code == 400
    token = csrf(anon)
    for _ in range(50):  # with a token, but anonymous
        r = anon.post(f"/runs/{wfid}/kill", data={"csrf_token": token})
        assert r.status_code == 401
    for _ in range(5):  # log-ins as names that do not exist
        anon.post("/login", data={"username": "nobody", "password": "x" * 8, "csrf_token": token})
    assert svc.audit.count() == before
    text = web.client().get("/metrics").data.decode()
    assert _metric(text, 400) == 300
    assert _metric(text, 401) == 55
    # a real user's refusals and failed log-ins are still audited
    bob, _ = login(web, "bob")
    bob.post(f"/runs/{wfid}/kill", data={"csrf_token": csrf(bob)})
    anon.post("/login", data={"username": "alice", "password": "wrong-one", "csrf_token": token})
    entries = svc.audit.entries(0, 3)
    assert entries[0]["action"] == "login" and entries[0]["user"] == "alice"
    assert entries[0]["ok"] is False
    assert entries[1]["user"] == "bob" and "belongs to alice" in entries[1]["detail"]


# -- 4. log-in throttling ---------------------------------------------------------------------


def test_default_login_limits() -> None:
    web = WebConfig()
    assert web.login_limit_user == "10 per 15 minutes"
    assert web.login_limit_address == "40 per 15 minutes"


def _wrong(client, token: str, user: str):
    return client.post(
        "/login", data={"username": user, "password": "wrong-password", "csrf_token": token}
    )


def test_default_limits_the_11th_wrong_password_for_a_user_gets_429(web: WebEnv) -> None:
    c = web.app.test_client()
    token = csrf(c)
    for _ in range(10):
        assert _wrong(c, token, "alice").status_code == 401
    r = _wrong(c, token, "alice")
    assert r.status_code == 429
    assert 0 < int(r.headers["Retry-After"]) <= 15 * 60
    assert b"too many failed log-ins" in r.data
    # even the right password waits: that is what a lock-out is
    ok = c.post(
        "/login", data={"username": "alice", "password": PASSWORDS["alice"], "csrf_token": token}
    )
    assert ok.status_code == 429
    # another user from the same address is not locked out by alice's
    assert login(web, "bob")[1].status_code == 302


def test_default_limits_the_41st_wrong_password_from_an_address_gets_429(web: WebEnv) -> None:
    c = web.app.test_client()
    token = csrf(c)
    for i in range(40):  # 40 user names, each under its own limit
        assert _wrong(c, token, f"user{i // 8}").status_code == 401
    r = _wrong(c, token, "someone-else")
    assert r.status_code == 429 and "Retry-After" in r.headers
    r = c.post(
        "/login",
        data={"username": "x", "password": "y" * 8, "csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert r.status_code == 429 and "too many failed log-ins" in r.json["error"]
    text = web.client().get("/metrics").data.decode()
    assert _metric(text, 429) == 2
    # another address is not locked out
    other = web.app.test_client()
    r = other.post(
        "/login",
        data={"username": "bob", "password": PASSWORDS["bob"], "csrf_token": csrf(other)},
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert r.status_code == 302


def test_successful_logins_are_not_counted(make_web) -> None:
    web = make_web(login_limit_user="2 per minute", login_limit_address="3 per minute")
    for _ in range(6):
        assert login(web, "alice")[1].status_code == 302


# -- 5. /metrics, anonymous read, headers ------------------------------------------------------


def test_metrics_follow_the_access_rules_or_a_token(make_web) -> None:
    web = make_web(anonymous=False, metrics_token="scrape-me")
    anon = web.app.test_client()
    r = anon.get("/metrics")
    assert r.status_code == 401 and b"anonymous access is turned off" in r.data
    assert anon.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = anon.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert r.status_code == 200 and b"boss_up" in r.data
    assert r.headers["Cache-Control"] == "no-store"
    alice, _ = login(web, "alice")
    assert alice.get("/metrics").status_code == 200


def test_anonymous_read_is_off_unless_bound_to_loopback(make_web) -> None:
    assert WebConfig().anonymous_read is True  # 127.0.0.1:8080
    assert WebConfig(bind="[::1]:8080").anonymous_read is True
    assert WebConfig(bind="localhost:8080").anonymous_read is True
    assert WebConfig(bind="0.0.0.0:8080").anonymous_read is False
    assert WebConfig(bind="10.0.0.5:80").anonymous_read is False
    assert WebConfig(bind="0.0.0.0:8080", anonymous=True).anonymous_read is True
    assert WebConfig(anonymous=False).anonymous_read is False
    assert WebConfig.load(None, environ={"BOSS_WEB_ANONYMOUS": "auto"}).anonymous is None
    web = make_web(bind="0.0.0.0:8080")
    r = web.app.test_client().get("/runs")
    assert r.status_code == 302 and "/login" in r.headers["Location"]
    assert web.app.test_client().get("/api/runs").status_code == 401
    assert login(web, "alice")[0].get("/runs").status_code == 200


def test_boss_web_says_whether_anonymous_read_is_on() -> None:
    from webui.cli import anonymous_notice

    assert "is on: bound to the loopback" in anonymous_notice(WebConfig())
    assert "is off: bound to 0.0.0.0:8080" in anonymous_notice(WebConfig(bind="0.0.0.0:8080"))
    assert "is on ([web] anonymous = true)" in anonymous_notice(
        WebConfig(bind="0.0.0.0:8080", anonymous=True)
    )


PAGES = ["/runs", "/errors", "/launch", "/launch?process=hello", "/participants", "/trace"]
PAGES += ["/health", "/audit", "/login"]


def test_pages_have_a_strict_csp_and_no_inline_script(web: WebEnv) -> None:
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
    wfid = web.launch_as("alice")
    root, _ = login(web, "root")
    inline = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I)
    handler = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
    for path in [*PAGES, f"/runs/{wfid}", "/trace/events/none"]:
        r = root.get(path)
        assert r.headers["Content-Security-Policy"] == CSP, path
        html = r.data.decode()
        assert not inline.search(html), (path, inline.search(html))
        assert not handler.search(html), (path, handler.search(html))
        assert "style=" not in html, path


def test_json_answers_are_not_stored(web: WebEnv) -> None:
    wfid = web.launch_as("alice")
    c = web.client()
    for path in ("/api/me", "/api/runs", f"/api/runs/{wfid}", "/api/errors", "/api/nothing"):
        assert c.get(path).headers.get("Cache-Control") == "no-store", path
    r = c.post("/api/launch", json={})  # a refusal is JSON too
    assert r.status_code == 400 and r.headers["Cache-Control"] == "no-store"
    assert "no-store" not in c.get("/runs").headers.get("Cache-Control", "")


def test_server_header_names_no_versions(web: WebEnv) -> None:
    from webui.serve import make_boss_server

    server = make_boss_server("127.0.0.1", 0, web.app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/api/me") as r:
            assert r.headers["Server"] == "BOSS"
            assert r.headers["Cache-Control"] == "no-store"
    finally:
        server.shutdown()


def test_a_taken_port_is_not_fatal(web: WebEnv) -> None:
    from webui.serve import make_boss_server

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    try:
        server = make_boss_server("127.0.0.1", taken, web.app, tries=1)
        assert server.server_port != taken
        server.server_close()
    finally:
        holder.close()
