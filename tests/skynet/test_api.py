"""The REST API (Flask blueprint) on a real supervisord and broker: JSON
everywhere, token-authenticated writes, clear errors, and the cluster view
over two real API servers."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

from engine.broker import Publisher
from skynet.api import create_app
from tests.skynet.conftest import FIXTURES, HANDLERS, Host

AUTH = {"Authorization": "Bearer t0ken"}


def test_reads_are_open_and_writes_need_the_token(host: Host) -> None:
    client = create_app(host.config).test_client()
    listing = client.get("/participants")
    assert listing.status_code == 200
    assert listing.get_json() == {"host": host.config.host_name, "participants": []}
    body = {"code": str(HANDLERS)}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "t0ken"}):
        r = client.put("/participants/p", json=body, headers=headers)
        assert r.status_code == 401 and r.get_json()["code"] == 401
        assert "Bearer" in r.get_json()["error"]
    assert client.post("/participants/p/scale", json={"instances": 2}).status_code == 401
    assert client.delete("/participants/p").status_code == 401
    # no token configured: writes are refused outright
    open_host = create_app(host.config.replace(token="")).test_client()
    r = open_host.put("/participants/p", json=body, headers=AUTH)
    assert r.status_code == 403 and "no [skynet] token" in r.get_json()["error"]
    assert host.include_files() == []


def test_bad_installs_are_clear_errors_and_write_nothing(host: Host) -> None:
    client = create_app(host.config).test_client()

    def put(name: str, **body: Any) -> tuple[int, str]:
        r = client.put(f"/participants/{name}", json=body, headers=AUTH)
        data = r.get_json()
        assert data["code"] == r.status_code
        return r.status_code, data["error"]

    assert put("p") == (400, "'code' (the handler's .py file on this host) is required")
    status, error = put("p", code=str(FIXTURES / "nope.py"))
    assert status == 400 and error.endswith("nope.py: no such file")
    status, error = put("p", code=str(FIXTURES / "bad_signature.py"))
    assert status == 400 and "handle_wi must take (self, wi); it takes (self)" in error
    status, error = put("p", code=str(HANDLERS), user="no-such-user-here")
    assert (status, error) == (400, "no such user 'no-such-user-here' on this host (run-as user)")
    assert put("p", code=str(HANDLERS), instances="two")[0] == 400
    assert put("bad name", code=str(HANDLERS))[0] == 400
    r = client.put(
        "/participants/p", data="{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert r.status_code == 400 and r.get_json()["code"] == 400
    assert host.include_files() == [] and host.processes() == {}
    # unknown participant
    r = client.get("/participants/ghost")
    assert r.status_code == 404 and r.get_json() == {
        "error": "no participant 'ghost' is installed (see 'skynet list')",
        "code": 404,
    }
    assert (
        client.post("/participants/ghost/running", json={"running": True}, headers=AUTH).status_code
        == 404
    )


def test_install_stop_queue_depth_scale_uninstall(host: Host) -> None:
    client = create_app(host.config).test_client()
    queue = host.queue("api")
    r = client.put(
        "/participants/api",
        headers=AUTH,
        json={
            "code": str(HANDLERS),
            "queue": queue,
            "instances": 2,
            "register": True,
            "sections": {"report": {"path": str(host.report)}},
        },
    )
    assert r.status_code == 201, r.get_json()
    pool = r.get_json()
    assert pool["state"] == "RUNNING" and pool["running"] == 2
    assert [p["name"] for p in pool["processes"]] == ["api@00", "api@01"]
    r = client.put("/participants/api", headers=AUTH, json={"code": str(HANDLERS)})
    assert r.status_code == 409 and "already installed" in r.get_json()["error"]

    pids = host.pids("api")
    r = client.post("/participants/api/running", json={"running": False}, headers=AUTH)
    assert r.status_code == 200 and r.get_json()["state"] == "STOPPED"

    # three workitems wait on the stopped pool's queue
    publisher = Publisher(host.config.boss)
    try:
        for i in range(3):
            publisher.publish({"junk": i}, queue=queue)
    finally:
        publisher.close()
    one = client.get("/participants/api").get_json()
    assert one["queue_depth"]["messages"] == 3
    assert one["registered"] == [{"pattern": "api", "regex": False, "queue": queue}]
    assert one["description"].startswith("Bumps ``n``")
    assert one["host"] == host.config.host_name

    r = client.post("/participants/api/running", json={"running": True}, headers=AUTH)
    assert r.get_json()["state"] == "RUNNING"
    restarted = host.pids("api")
    assert set(restarted.values()).isdisjoint(pids.values())
    r = client.post("/participants/api/scale", json={"instances": 3}, headers=AUTH)
    assert r.status_code == 200
    assert r.get_json()["applied"] == {"added": ["api@02"], "changed": [], "removed": []}
    assert {k: v for k, v in host.pids("api").items() if k != "api@02"} == restarted
    assert (
        client.post("/participants/api/scale", json={"instances": 0}, headers=AUTH).status_code
        == 400
    )

    r = client.delete("/participants/api", headers=AUTH)
    assert r.status_code == 200
    assert r.get_json()["removed"] == ["api@00", "api@01", "api@02"]
    assert client.get("/participants/api").status_code == 404
    assert host.include_files() == [] and host.processes() == {}


@contextmanager
def _serving(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def test_one_view_over_two_hosts(make_host: Callable[..., Host], embedded_broker_url: str) -> None:
    b = make_host(embedded_broker_url, host_name="host-b")
    b.install("beta", apply=False)
    with _serving(create_app(b.config)) as b_url:
        dead = "http://127.0.0.1:9"  # discard: nothing listens
        a = make_host(embedded_broker_url, host_name="host-a", hosts=f"{b_url}, {dead}")
        a.install("alpha")
        with _serving(create_app(a.config)) as a_url:
            view = _get(f"{a_url}/participants?cluster=1")
            assert view == _get(f"{a_url}/cluster/participants") | {
                "participants": view["participants"]
            }
            by_host = {(p["host"], p["name"]): p for p in view["participants"]}
            assert set(by_host) == {("host-a", "alpha"), ("host-b", "beta")}
            assert by_host["host-a", "alpha"]["state"] == "RUNNING"
            assert by_host["host-b", "beta"]["state"] == "UNLOADED"
            hosts = {h["url"]: h for h in view["hosts"]}
            assert hosts[None]["host"] == "host-a" and hosts[None]["local"]
            assert hosts[b_url]["ok"] and hosts[b_url]["host"] == "host-b"
            assert hosts[b_url]["participants"] == 1
            assert not hosts[dead]["ok"] and hosts[dead]["error"].startswith("unreachable")
            listed = _get(f"{a_url}/hosts")["hosts"]
            assert [(h["host"] if h["ok"] else None, h["url"]) for h in listed] == [
                ("host-a", None),
                ("host-b", b_url),
                (None, dead),
            ]
            # without ?cluster, only the host's own pools
            assert [p["name"] for p in _get(f"{a_url}/participants")["participants"]] == ["alpha"]
