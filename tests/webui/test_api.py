"""The JSON API, the pages' contents, ``/metrics``, the health figures and
``boss stats``: behaviour only (times are measured in bench/bench_webui.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.core import states
from engine.engine import Engine
from engine.trace.activity import record_event
from engine.trace.aggregator import graph_prefix
from engine.trace.graph import Graph
from tests.webui.conftest import HELLO, WebEnv, csrf

pytestmark = pytest.mark.redis


def test_run_list_pagination_counts_and_filters(web: WebEnv) -> None:
    wfids = [
        web.launch_as("alice", fields={"project": "kernel" if i % 3 else "glibc", "n": i})
        for i in range(25)
    ]
    broken = web.launch_as("bob", "name: broken\nsteps:\n  - error: boom\n", {"project": "glibc"})
    c = web.client()
    page = c.get("/api/runs?limit=10").json
    assert page["total"] == 26 and len(page["runs"]) == 10
    assert page["counts"][states.RUNNING] == 25 and page["counts"][states.ERROR] == 1
    assert page["runs"][0]["wfid"] == broken  # newest first
    seen = []
    for offset in range(0, 30, 10):
        seen += [r["wfid"] for r in c.get(f"/api/runs?limit=10&offset={offset}").json["runs"]]
    assert sorted(seen) == sorted([*wfids, broken]) and len(set(seen)) == 26
    kernel = c.get("/api/runs?project=kernel&limit=100").json
    assert kernel["total"] == 16 and {r["name"] for r in kernel["runs"]} == {"hello"}
    assert kernel["counts"][states.RUNNING] == 16
    glibc_err = c.get("/api/runs?project=glibc&status=error").json
    assert [r["wfid"] for r in glibc_err["runs"]] == [broken]
    assert glibc_err["counts"] == {**glibc_err["counts"], "running": 9, "error": 1}
    by_field = c.get("/api/runs?field=n=7").json
    assert [r["wfid"] for r in by_field["runs"]] == [wfids[7]]
    assert c.get("/api/runs?name=broken").json["total"] == 1
    assert c.get("/api/runs?name=hello&project=glibc").json["total"] == 9
    mine = web.client("bob").get("/api/runs?mine=1").json
    assert [r["wfid"] for r in mine["runs"]] == [broken]
    # a field that is not indexed (nested): a bounded scan, and it says so
    deep = web.launch_as("alice", fields={"src": {"repo": "linux"}})
    scan = c.get("/api/runs?field=src.repo=linux").json
    assert [r["wfid"] for r in scan["runs"]] == [deep] and scan["notes"]
    assert c.get("/api/runs?status=bogus").status_code == 400
    html = c.get("/runs?project=kernel").data
    assert b"kernel" in html and wfids[1].encode() in html and broken.encode() not in html


def test_run_detail_graph_and_errors(web: WebEnv) -> None:
    wfid = web.launch_as("alice", fields={"project": "kernel", "deep": {"a": [1, 2]}})
    c = web.client()
    d = c.get(f"/api/runs/{wfid}").json
    assert d["status"] == "running" and d["owner"] == "alice"
    assert [p["name"] for p in d["positions"]] == ["alpha"]
    g = c.get(f"/api/runs/{wfid}/graph").json
    nodes = {n["data"]["id"]: n["data"] for n in g["elements"]["nodes"]}
    assert nodes["0_0"]["label"] == "alpha" and nodes["0_0"]["state"] == "waiting"
    assert {e["data"]["source"] + ">" + e["data"]["target"] for e in g["elements"]["edges"]} >= {
        "0_0>0_1",
        "0_1>end",
    }
    page = c.get(f"/runs/{wfid}").data
    assert b"defgraph" in page and b"deep" in page
    broken = web.launch_as("alice", "name: broken\nsteps:\n  - error: the host is down\n")
    d = c.get(f"/api/runs/{broken}").json
    assert d["errors"][0]["message"] == "the host is down"
    page = c.get(f"/runs/{broken}").data
    assert b"the host is down" in page and b"Replay" in page
    assert c.get("/api/runs/nope").status_code == 404


def test_a_finished_run_whose_fields_say_failed_is_shown_failed(web: WebEnv) -> None:
    """Issue 15: a pipeline whose on_error handler set status=FAILURE reached
    its end; the run page and its JSON say it failed, not a green finished."""
    c = web.client()
    failed = web.launch_as("alice", "name: red\nsteps:\n  - set: {status: FAILURE}\n")
    passed = web.launch_as("alice", "name: green\nsteps:\n  - set: {status: SUCCESS}\n")
    d = c.get(f"/api/runs/{failed}").json
    assert (d["status"], d["outcome"]) == ("finished", "failure")
    assert c.get(f"/api/runs/{passed}").json["outcome"] == "success"
    assert b'id="run-outcome"' in c.get(f"/runs/{failed}").data
    assert b'id="run-outcome"' not in c.get(f"/runs/{passed}").data


def test_actions_send_the_cli_messages(web: WebEnv) -> None:
    broken = web.launch_as("alice", "name: broken\nsteps:\n  - error: boom\n")
    alice = web.client("alice")
    h = {"X-CSRF-Token": csrf(alice)}
    r = alice.post(f"/api/runs/{broken}/replay", json={"fields": {"fixed": True}}, headers=h)
    assert r.status_code == 202
    assert web.publisher.sent[-1] == {
        "type": "replay",
        "wfid": broken,
        "error_id": None,
        "fields": {"fixed": True},
    }
    r = alice.post(f"/api/runs/{broken}/replay", json={"fields": "[1]"}, headers=h)
    assert r.status_code == 400 and "JSON object" in r.json["error"]
    r = alice.post(f"/api/runs/{broken}/resume", json={}, headers=h)
    assert r.status_code == 409 and "not paused" in r.json["error"]
    live = web.launch_as("alice")
    r = alice.post(f"/api/runs/{live}/replay", json={}, headers=h)
    assert r.status_code == 409 and "no error to replay" in r.json["error"]
    r = alice.post(f"/api/runs/{live}/reapply", json={"step": "0_0"}, headers=h)
    assert r.status_code == 202
    assert web.publisher.sent[-1] == {
        "type": "re_apply",
        "wfid": live,
        "eid": "0_0",
        "fields": None,
    }
    r = alice.post(f"/api/runs/{live}/frobnicate", json={}, headers=h)
    assert r.status_code == 400 and "unknown action" in r.json["error"]


def test_errors_grouped_and_bulk_replay(web: WebEnv) -> None:
    a = [web.launch_as("alice", "name: b\nsteps:\n  - error: disk full\n") for _ in range(3)]
    b = web.launch_as("bob", "name: b\nsteps:\n  - error: disk full\n")
    web.launch_as("alice", "name: c\nsteps:\n  - error: other\n")
    c = web.client("alice")
    groups = c.get("/api/errors").json["groups"]
    assert groups[0]["count"] == 4 and "disk full" in groups[0]["message"]
    items = [{"wfid": e["wfid"], "error_id": e["error_id"]} for e in groups[0]["errors"]]
    r = c.post(
        "/api/errors/replay",
        json={"items": items, "fields": {"x": 1}},
        headers={"X-CSRF-Token": csrf(c)},
    )
    results = {x["wfid"]: x for x in r.json["results"]}
    assert all(results[w]["ok"] for w in a)
    assert not results[b]["ok"] and "belongs to bob" in results[b]["message"]
    assert len([m for m in web.publisher.sent if m["type"] == "replay"]) == 3
    assert b"disk full" in c.get("/errors").data


def test_launch_validate_and_processes(web: WebEnv) -> None:
    c = web.client("alice")
    h = {"X-CSRF-Token": csrf(c)}
    assert set(c.get("/api/processes").json["processes"]) == {"hello", "broken", "invalid"}
    assert c.get("/api/processes/hello").json["source"] == HELLO
    assert c.get("/api/processes/../../etc/passwd").status_code == 404
    ok = c.post("/api/validate", json={"process": "hello", "fields": "{}"}, headers=h).json
    assert ok["ok"] and ok["name"] == "hello"
    bad = c.post("/api/validate", json={"process": "invalid", "fields": "{"}, headers=h).json
    assert not bad["ok"] and any("sequnce" in p for p in bad["problems"])
    assert any("not valid JSON" in p for p in bad["problems"])
    r = c.post("/api/launch", json={"process": "hello", "fields": {"project": "x"}}, headers=h)
    assert r.status_code == 202
    wfid = r.json["wfid"]
    msg = web.publisher.sent[-1]
    assert msg["wfid"] == wfid and msg["fields"] == {"project": "x"} and msg["definition"] == HELLO
    assert web.app.extensions["boss"].index.owner(wfid) == "alice"
    r = c.post("/api/launch", json={"process": "invalid"}, headers=h)
    assert r.status_code == 400 and "has problems" in r.json["error"]
    page = c.get("/launch?process=hello").data
    assert b"alpha" in page and b"fields-editor" in page
    # the form: validate says so, launch redirects to the run
    token = csrf(c)
    r = c.post(
        "/launch", data={"csrf_token": token, "process": "hello", "fields": "{}", "do": "validate"}
    )
    assert r.status_code == 200 and b"is valid" in r.data
    r = c.post(
        "/launch", data={"csrf_token": token, "process": "hello", "fields": "{}", "do": "launch"}
    )
    assert r.status_code == 302 and "/runs/" in r.headers["Location"]


def _run_with_trace(web: WebEnv) -> tuple[Graph, list[str]]:
    """Runs made in-process whose activity events go into the graph: alpha
    succeeds twice, beta fails once."""
    events: list[dict[str, Any]] = []
    dispatched: list[Any] = []

    class Capture:
        def dispatch(self, effect: Any) -> None:
            dispatched.append(effect)

        def cancel(self, effect: Any) -> None:
            pass

    eng = Engine(
        web.store, dispatcher=Capture(), on_record=lambda r: events.append(record_event(r))
    )
    wfids = []
    for fail in (False, True):
        wfid = eng.launch(HELLO, {"project": "kernel"})
        wfids.append(wfid)
        for _ in range(2):
            wi = dispatched.pop()
            eid = wi.workitem["fei"]["subid"]
            eng.deliver({"type": "started", "wfid": wfid, "eid": eid})
            reply = dict(wi.workitem)
            if fail and wi.workitem["participant_name"] == "beta":
                reply["error"] = {"message": "tests failed", "class": "TestFailure"}
            eng.deliver({"type": "reply", "wfid": wfid, "workitem": reply})
    graph = Graph(web.store.client, prefix=graph_prefix(web.config))
    graph.ingest(events)
    return graph, wfids


def test_health_timeline_and_trace(web: WebEnv) -> None:
    graph, (ok, _failed) = _run_with_trace(web)
    c = web.client()
    h = c.get("/api/health?since=1d").json
    alpha, beta = h["participants"]["alpha"], h["participants"]["beta"]
    assert (alpha["runs"], alpha["ok"], alpha["success_rate"]) == (2, 2, 1.0)
    assert (beta["runs"], beta["failed"], beta["streak"]) == (2, 1, 1)
    assert beta["duration"]["p50"] is not None and beta["queue_wait"]["p50"] is not None
    assert h["processes"]["hello"]["runs"] == 1  # the failed one has not finished
    assert b"alpha" in c.get("/health").data
    tl = c.get(f"/api/runs/{ok}/timeline").json
    assert [s["participant"] for s in tl["steps"]] == ["alpha", "beta"]
    assert all(s["state"] == "finished" and s["duration_s"] is not None for s in tl["steps"])
    g = c.get(f"/api/runs/{ok}/graph").json
    states_ = {n["data"]["id"]: n["data"]["state"] for n in g["elements"]["nodes"]}
    assert states_["0_0"] == "done" and states_["0_1"] == "done" and states_["end"] == "done"
    run_event = graph.chain(
        __import__("engine.trace.activity", fromlist=["x"]).activity_id(ok, None, "triggered")
    )[0]["meta"]["id"]
    tg = c.get(f"/api/trace-graph/{run_event}").json
    assert len(tg["elements"]["nodes"]) > 3
    assert {e["data"]["linkType"] for e in tg["elements"]["edges"]} >= {"CONTEXT"}
    found = c.get(f"/api/search?q={run_event}").json["events"]
    assert [e["meta"]["id"] for e in found] == [run_event]
    assert c.get(f"/trace?q={run_event}").status_code == 302
    assert c.get(f"/trace/events/{run_event}").status_code == 200
    assert c.get("/api/trace/stats").status_code == 200
    assert c.get("/api/leadtime-series?level=x&since=1d").json["count"] == 0
    # counted once, however often it is asked
    web.app.extensions["boss"].health.update(force=True)
    assert c.get("/api/health?since=1d").json["participants"]["alpha"]["runs"] == 2


def test_metrics(web: WebEnv) -> None:
    _run_with_trace(web)
    text = web.client().get("/metrics").data.decode()
    assert 'boss_runs{status="running"}' in text
    assert 'boss_runs{status="error"} 1.0' in text
    assert "boss_steps_finished_total 4.0" in text
    assert 'boss_queue_messages{queue="' in text
    assert 'boss_up{part="store"} 1.0' in text


def test_boss_stats_and_users_cli(web: WebEnv, tmp_path) -> None:
    from click.testing import CliRunner

    from bossapp.cli import main

    _run_with_trace(web)
    ini = tmp_path / "boss.ini"
    ini.write_text(
        f"[boss]\nredis_url = {web.config.redis_url}\n"
        f"broker_url = {web.config.broker_url}\n"
        f"key_prefix = {web.config.key_prefix}\n"
    )
    runner = CliRunner()
    r = runner.invoke(main, ["-c", str(ini), "stats", "--json", "--since", "1d"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["participants"]["beta"]["failed"] == 1
    r = runner.invoke(main, ["-c", str(ini), "stats"])
    assert r.exit_code == 0 and "alpha" in r.output and "100.0%" in r.output
    r = runner.invoke(
        main,
        ["-c", str(ini), "web", "user", "add", "erin", "--role", "admin"],
        env={"BOSS_WEB_PASSWORD": "erin-secret"},
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["-c", str(ini), "web", "user", "list", "--json"])
    assert {"name": "erin", "role": "admin"}.items() <= next(
        u for u in json.loads(r.output) if u["name"] == "erin"
    ).items()
    r = runner.invoke(main, ["-c", str(ini), "web", "user", "remove", "erin"])
    assert r.exit_code == 0
    r = runner.invoke(main, ["-c", str(ini), "web", "user", "remove", "erin"])
    assert r.exit_code == 1
