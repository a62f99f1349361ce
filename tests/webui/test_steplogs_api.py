"""The step-log endpoints (``webui.blueprints.logs``) on a real store: JSON
lines after an id, the server-sent event stream (ids, end), the step detail,
and the run page's access rule."""

from __future__ import annotations

import json
from pathlib import Path

from engine.store.steplogs import StepLogs
from participants.steplog import StepLog
from tests.webui.conftest import WebEnv, make_env
from webui.settings import WebConfig


def _say(env: WebEnv, wfid: str, expid: str, *texts: str, final: bool = True) -> None:
    s = StepLog(wfid=wfid, expid=expid, participant="alpha", job=f"i.{expid}")
    for t in texts:
        s.add("INFO", t)
    s.take(final=final)
    StepLogs(env.store.client, env.config.key_prefix).write(s.outbox)


def test_lines_after_an_id_and_per_step(web: WebEnv) -> None:
    wfid = web.engine.launch("name: x\nsteps:\n  - alpha\n  - beta\n", {})
    _say(web, wfid, "0_0", "one", "two <script>")
    c = web.client()
    d = c.get(f"/api/runs/{wfid}/logs").json
    assert [x["text"] for x in d["lines"]] == ["one", "two <script>"]
    assert d["live"] is True and d["last_id"] == d["lines"][-1]["id"]
    after = c.get(f"/api/runs/{wfid}/logs?after={d['lines'][0]['id']}").json
    assert [x["text"] for x in after["lines"]] == ["two <script>"]
    assert c.get(f"/api/runs/{wfid}/logs?step=0_1").json["lines"] == []
    assert c.get(f"/api/runs/{wfid}/logs?after=nope").status_code == 400
    assert c.get("/api/runs/no-such-run/logs").status_code == 404
    steps = c.get(f"/api/runs/{wfid}/logs/steps").json["steps"]
    assert {s["expid"]: s["lines"] for s in steps}["0_0"] == 2
    detail = c.get(f"/api/runs/{wfid}/logs/steps/0_0").json
    assert detail["log"]["lines"] == 2 and detail["output"] is None
    assert detail["positions"] and detail["positions"][0]["participant"] == "alpha"


def test_the_stream_sends_ids_and_ends_with_the_run(web: WebEnv) -> None:
    wfid = web.engine.launch("name: x\nsteps:\n  - alpha\n", {})
    _say(web, wfid, "0_0", "first")
    web.engine.kill(wfid)  # the run ends: the stream sends what is kept, then "end"
    r = web.client().get(f"/api/runs/{wfid}/logs/stream")
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    body = r.get_data(as_text=True)
    events = [e for e in body.split("\n\n") if e.startswith("id:")]
    assert len(events) == 1
    head, kind, data = events[0].split("\n")
    assert kind == "event: line" and json.loads(data.removeprefix("data: "))["text"] == "first"
    assert body.rstrip().endswith("event: end\ndata: {}")
    # an EventSource that reconnects names the last id it saw: nothing again
    again = web.client().get(
        f"/api/runs/{wfid}/logs/stream", headers={"Last-Event-ID": head.removeprefix("id: ")}
    )
    assert "event: line" not in again.get_data(as_text=True)


def test_anonymous_reads_follow_the_pages_rule(web: WebEnv, tmp_path: Path, redis_url: str) -> None:
    wfid = web.engine.launch("name: x\nsteps:\n  - alpha\n", {})
    (tmp_path / "closed").mkdir()
    closed = make_env(
        tmp_path / "closed",
        redis_url,
        "redis://",
        web.config.key_prefix,
        WebConfig(secret_key="t", anonymous=False),
    )
    try:
        assert closed.client().get(f"/api/runs/{wfid}/logs").status_code == 401
        assert closed.client().get(f"/api/runs/{wfid}/logs/stream").status_code == 401
        assert closed.client("bob").get(f"/api/runs/{wfid}/logs").status_code == 200
    finally:
        closed.store.close()
