"""Access control: anonymous visitors look but never act, a user acts only
on their own runs, admins on every run, a form without the session's CSRF
token is refused, and every refusal says why (and is in the audit log)."""

from __future__ import annotations

import pytest

from tests.webui.conftest import USERS, WebEnv, csrf, make_env
from webui.settings import WebConfig

pytestmark = pytest.mark.redis

ACTIONS = ["cancel", "kill", "pause", "resume", "replay", "reapply"]


def test_anonymous_can_look_but_not_act(web: WebEnv) -> None:
    wfid = web.launch_as("alice")
    anon = web.client()
    for page in (
        "/runs",
        f"/runs/{wfid}",
        "/errors",
        "/launch",
        "/participants",
        "/trace",
        "/health",
        "/api/runs",
        f"/api/runs/{wfid}",
        "/metrics",
    ):
        assert anon.get(page).status_code == 200, page
    token = csrf(anon)
    for action in ACTIONS:
        r = anon.post(f"/runs/{wfid}/{action}", data={"csrf_token": token})
        assert r.status_code == 401
        assert b"anonymous visitors cannot act on runs; log in first" in r.data
        r = anon.post(f"/api/runs/{wfid}/{action}", json={}, headers={"X-CSRF-Token": token})
        assert r.status_code == 401
        assert "anonymous" in r.json["error"]
    r = anon.post("/launch", data={"csrf_token": token, "process": "hello", "do": "launch"})
    assert r.status_code == 401 and b"cannot launch processes" in r.data
    assert web.publisher.sent == []


def test_anonymous_access_can_be_turned_off(
    tmp_path, redis_url, embedded_broker_url, key_prefix
) -> None:
    env = make_env(
        tmp_path,
        redis_url,
        embedded_broker_url,
        key_prefix,
        WebConfig(secret_key="s", anonymous=False),
    )
    try:
        anon = env.app.test_client()
        r = anon.get("/runs")
        assert r.status_code == 302 and "/login" in r.headers["Location"]
        r = anon.get("/api/runs")
        assert r.status_code == 401 and "anonymous access is turned off" in r.json["error"]
        assert anon.get("/login").status_code == 200
        assert env.client("alice").get("/runs").status_code == 200
    finally:
        from tests.conftest import delete_keys

        delete_keys(env.store.client, key_prefix)
        env.store.close()


def test_user_cannot_act_on_another_users_run(web: WebEnv) -> None:
    alices = web.launch_as("alice")
    bob = web.client("bob")
    token = csrf(bob)
    for action in ("cancel", "kill", "pause"):
        r = bob.post(f"/runs/{alices}/{action}", data={"csrf_token": token})
        assert r.status_code == 403
        assert f"bob cannot {action} run {alices}: it belongs to alice".encode() in r.data
    r = bob.post(f"/api/runs/{alices}/cancel", json={}, headers={"X-CSRF-Token": token})
    assert r.status_code == 403 and "belongs to alice" in r.json["error"]
    assert web.publisher.sent == []
    # a run launched elsewhere (CLI, launcher) has no owner: admins only
    cli_run = web.engine.launch("name: x\nsteps:\n  - alpha\n", {})
    r = bob.post(f"/api/runs/{cli_run}/cancel", json={}, headers={"X-CSRF-Token": token})
    assert r.status_code == 403 and "not launched from the web UI" in r.json["error"]


def test_owner_and_admin_can_act(web: WebEnv) -> None:
    wfid = web.launch_as("alice")
    alice = web.client("alice")
    r = alice.post(f"/runs/{wfid}/pause", data={"csrf_token": csrf(alice)})
    assert r.status_code == 302
    assert web.publisher.sent[-1] == {"type": "pause", "wfid": wfid}
    root = web.client("root")
    r = root.post(f"/api/runs/{wfid}/cancel", json={}, headers={"X-CSRF-Token": csrf(root)})
    assert r.status_code == 202, r.json
    assert web.publisher.sent[-1] == {"type": "cancel", "wfid": wfid}


def test_forged_form_without_csrf_token_is_refused(web: WebEnv) -> None:
    wfid = web.launch_as("alice")
    alice = web.client("alice")
    r = alice.post(f"/runs/{wfid}/cancel", data={})
    assert r.status_code == 400
    assert b"the request carries no CSRF token (a forged form?)" in r.data
    r = alice.post(f"/runs/{wfid}/cancel", data={"csrf_token": "forged"})
    assert r.status_code == 400 and b"does not match" in r.data
    r = alice.post(f"/api/runs/{wfid}/cancel", json={})
    assert r.status_code == 400 and "CSRF" in r.json["error"]
    # a fresh session (another site's form) has no token at all
    other = web.app.test_client()
    r = other.post("/launch", data={"process": "hello", "do": "launch"})
    assert r.status_code == 400 and b"CSRF" in r.data
    # and the login form needs it too
    r = other.post("/login", data={"username": "alice", "password": USERS["alice"][0]})
    assert r.status_code == 400
    assert web.publisher.sent == []


def test_refusals_are_audited_and_audit_is_admin_only(web: WebEnv) -> None:
    wfid = web.launch_as("alice")
    bob = web.client("bob")
    bob.post(f"/runs/{wfid}/kill", data={"csrf_token": csrf(bob)})
    r = bob.get("/audit")
    assert r.status_code == 403 and b"only admins" in r.data
    assert bob.get("/api/audit").status_code == 403
    root = web.client("root")
    entries = root.get("/api/audit").json["entries"]
    refused = [e for e in entries if not e["ok"]]
    assert refused and refused[0]["user"] == "bob" and "belongs to alice" in refused[0]["detail"]
    assert any(e["action"] == "login" and e["user"] == "root" for e in entries)
    page = root.get("/audit")
    assert page.status_code == 200 and b"belongs to alice" in page.data


def test_wrong_password_and_removed_user(web: WebEnv) -> None:
    c = web.app.test_client()
    r = c.post("/login", data={"username": "alice", "password": "nope", "csrf_token": csrf(c)})
    assert r.status_code == 401 and b"unknown user or wrong password" in r.data
    alice = web.client("alice")
    assert alice.get("/api/me").json["user"] == "alice"
    web.app.extensions["boss"].users.remove("alice")
    assert alice.get("/api/me").json["user"] == "anonymous"


def test_passwords_are_hashed(web: WebEnv) -> None:
    raw = web.store.client.hget(f"{web.config.key_prefix}web:users", "alice").decode()
    assert "alice-secret" not in raw and "scrypt" in raw


def test_trusted_proxy_header(tmp_path, redis_url, embedded_broker_url, key_prefix) -> None:
    env = make_env(
        tmp_path,
        redis_url,
        embedded_broker_url,
        key_prefix,
        WebConfig(
            secret_key="s",
            trusted_header="X-Remote-User",
            trusted_proxies="127.0.0.1",
            proxy_admins="carol",
        ),
    )
    try:
        c = env.app.test_client()
        me = c.get("/api/me", headers={"X-Remote-User": "carol"}).json
        assert (me["user"], me["role"], me["via"]) == ("carol", "admin", "proxy")
        me = c.get("/api/me", headers={"X-Remote-User": "dave"}).json
        assert (me["user"], me["role"]) == ("dave", "user")
        # not from a trusted proxy: the header is ignored
        me = c.get(
            "/api/me", headers={"X-Remote-User": "carol"}, environ_base={"REMOTE_ADDR": "10.1.2.3"}
        ).json
        assert me["user"] == "anonymous"
    finally:
        from tests.conftest import delete_keys

        delete_keys(env.store.client, key_prefix)
        env.store.close()


def test_participant_control_is_for_admins(web: WebEnv) -> None:
    alice = web.client("alice")
    r = alice.post(
        "/api/skynet/start",
        json={"url": "http://x", "name": "p"},
        headers={"X-CSRF-Token": csrf(alice)},
    )
    assert r.status_code == 403 and "only admins" in r.json["error"]
    root = web.client("root")
    r = root.post(
        "/api/skynet/start",
        json={"url": "http://x", "name": "p"},
        headers={"X-CSRF-Token": csrf(root)},
    )
    assert r.status_code == 400 and "not a configured SkyNET host" in r.json["error"]


def test_publishing_trace_events_is_for_admins(web: WebEnv) -> None:
    alice = web.client("alice")
    r = alice.post("/api/trace/events", json=[], headers={"X-CSRF-Token": csrf(alice)})
    assert r.status_code == 403 and "only admins" in r.json["error"]
