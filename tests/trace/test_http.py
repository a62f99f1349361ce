"""The traceability HTTP API (Flask test client) on a real graph in Redis and,
for publishing, the embedded broker."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator

import kombu
import pytest
import redis

from engine import wire
from engine.config import Config
from engine.trace import cloudevents, eiffel
from engine.trace.activity import activity_id
from engine.trace.aggregator import graph_prefix
from engine.trace.bus import TraceTopology
from engine.trace.graph import Graph
from engine.trace.http import create_app
from tests.conftest import delete_keys


@pytest.fixture
def config(embedded_broker_url: str, redis_url: str) -> Iterator[Config]:
    p = f"http{uuid.uuid4().hex[:8]}"
    cfg = Config.load(
        None,
        environ={},
        broker_url=embedded_broker_url,
        redis_url=redis_url,
        key_prefix=f"{p}:",
        event_exchange=f"{p}.eiffel",
        trace_queue=f"{p}.trace",
        trace_deadletter_queue=f"{p}.trace.dead",
    )
    yield cfg
    client = redis.Redis.from_url(redis_url)
    delete_keys(client, cfg.key_prefix)
    client.close()
    with kombu.Connection(embedded_broker_url) as conn, contextlib.suppress(Exception):
        conn.channel().queue_delete(cfg.trace_queue)


@pytest.fixture
def graph(config: Config) -> Iterator[Graph]:
    client = redis.Redis.from_url(config.redis_url)
    yield Graph(client, prefix=graph_prefix(config))
    client.close()


@pytest.fixture
def http(config: Config, graph: Graph):
    return create_app(config, graph=lambda: graph).test_client()


@pytest.fixture
def flow(graph: Graph) -> dict[str, dict]:
    scc = eiffel.source_change_created(commit="a" * 40, repo_uri="https://git.example/x.git")
    scs = eiffel.source_change_submitted(
        scc["meta"]["id"], commit="a" * 40, repo_uri="https://git.example/x.git"
    )
    comp = eiffel.composition_defined("rc-1", [scs["meta"]["id"]])
    art = eiffel.artifact_created("pkg:generic/x@1", composition=comp["meta"]["id"])
    clm = eiffel.confidence_level_modified("released", "SUCCESS", [art["meta"]["id"]])
    events = {"scc": scc, "scs": scs, "comp": comp, "art": art, "clm": clm}
    graph.ingest(list(events.values()))
    return events


def test_get_an_event_and_404_for_an_unknown_one(http, flow):
    r = http.get(f"/api/trace/events/{flow['art']['meta']['id']}")
    assert r.status_code == 200
    assert r.get_json()["data"]["identity"] == "pkg:generic/x@1"
    r = http.get(f"/api/trace/events/{uuid.uuid4()}")
    assert r.status_code == 404 and "no event" in r.get_json()["error"]


def test_upstream_and_downstream_with_link_type_filter_levels_and_limit(http, flow):
    ids = {k: v["meta"]["id"] for k, v in flow.items()}
    r = http.get(f"/api/trace/events/{ids['clm']}/upstream")
    got = {(h["event"]["meta"]["id"], h["depth"], h["via"]) for h in r.get_json()["hits"]}
    assert got == {
        (ids["art"], 1, "SUBJECT"),
        (ids["comp"], 2, "COMPOSITION"),
        (ids["scs"], 3, "ELEMENT"),
        (ids["scc"], 4, "CHANGE"),
    }
    r = http.get(f"/api/trace/events/{ids['clm']}/upstream?levels=2")
    assert {h["event"]["meta"]["id"] for h in r.get_json()["hits"]} == {ids["art"], ids["comp"]}
    r = http.get(f"/api/trace/events/{ids['clm']}/upstream?linkTypes=SUBJECT")
    assert [h["event"]["meta"]["id"] for h in r.get_json()["hits"]] == [ids["art"]]
    r = http.get(f"/api/trace/events/{ids['scc']}/downstream?limit=2")
    assert [h["event"]["meta"]["id"] for h in r.get_json()["hits"]] == [ids["scs"], ids["comp"]]
    r = http.get(f"/api/trace/events/{ids['scc']}/downstream?levels=abc")
    assert r.status_code == 400 and "levels" in r.get_json()["error"]


def test_trace_up_down_find_and_lead_time(http, flow):
    ids = {k: v["meta"]["id"] for k, v in flow.items()}
    up = http.get(f"/api/trace/up/{ids['scs']}").get_json()
    assert [e["meta"]["id"] for e in up["artifacts"]] == [ids["art"]]
    assert [e["meta"]["id"] for e in up["confidence_levels"]] == [ids["clm"]]
    down = http.get(f"/api/trace/down/{ids['art']}").get_json()
    assert {e["meta"]["id"] for e in down["source_changes"]} >= {ids["scs"]}
    found = http.get("/api/trace/find?type=CompositionDefined&field=name&value=rc-1").get_json()
    assert [e["meta"]["id"] for e in found["events"]] == [ids["comp"]]
    lt = http.get(f"/api/trace/leadtime?change={ids['scs']}&level=released").get_json()
    assert lt["seconds"] == (flow["clm"]["meta"]["time"] - flow["scs"]["meta"]["time"]) / 1000
    assert http.get("/api/trace/leadtime").status_code == 400


def test_post_validates_then_publishes_on_the_bus(http, config, flow):
    good = eiffel.confidence_level_modified("tested", "SUCCESS", [flow["art"]["meta"]["id"]])
    r = http.post("/api/trace/events", data=json.dumps(good))
    assert r.status_code == 202 and r.get_json()["ids"] == [good["meta"]["id"]]
    # a CloudEvents envelope is unwrapped
    wrapped = cloudevents.wrap(eiffel.artifact_created("pkg:generic/y@2"))
    assert http.post("/api/trace/events", data=json.dumps(wrapped)).status_code == 202
    # CONTEXT may not point at an artifact: refused, naming the rule, nothing published
    bad = eiffel.artifact_created("pkg:generic/z@3", context=flow["art"]["meta"]["id"])
    r = http.post("/api/trace/events", data=json.dumps([good, bad]))
    assert r.status_code == 400
    assert r.get_json()["rule"] == "link-target-type"
    assert http.post("/api/trace/events", data=b"{oops").get_json()["rule"] == "json"
    with kombu.Connection(config.broker_url) as conn:
        q = TraceTopology(config).queue(conn.channel())
        bodies = []
        while (m := q.get(no_ack=True)) is not None:
            bodies.append(wire.decode(m.body) if m.body.startswith(b"{") else m.body)
    assert [b["meta"]["id"] for b in bodies] == [good["meta"]["id"], wrapped["id"]]


def test_export_a_run_as_eiffel_and_cdevents_in_envelopes(http, graph):
    from engine.core.effects import Record
    from engine.trace.activity import record_event

    wfid = "w-export"
    recs = [
        Record("run", wfid, None, "p", "triggered", 1.0),
        Record("run", wfid, None, "p", "started", 1.0),
        Record("step", wfid, "0_0-1", "build", "triggered", 1.1, None, {}),
        Record("step", wfid, "0_0-1", "build", "finished", 2.0, "SUCCESSFUL", {}),
        Record("run", wfid, None, "p", "finished", 2.1, "SUCCESSFUL"),
    ]
    graph.ingest([record_event(r) for r in recs])
    events = http.get(f"/api/trace/runs/{wfid}/events").get_json()["events"]
    assert events[0]["meta"]["id"] == activity_id(wfid, None, "triggered")
    assert len(events) == 5
    out = http.get(f"/api/trace/export?run={wfid}").get_json()
    assert [e["meta"]["id"] for e in out] == [e["meta"]["id"] for e in events]
    cde = http.get(f"/api/trace/export?run={wfid}&format=cdevents&envelope=cloudevents")
    types = [e["type"] for e in cde.get_json()]
    assert "dev.cdevents.pipelinerun.queued.0.2.0" in types or any(
        t.startswith("dev.cdevents.pipelinerun.queued") for t in types
    )
    assert any(t.startswith("dev.cdevents.pipelinerun.finished") for t in types)
    assert any(t.startswith("dev.cdevents.taskrun.finished") for t in types)
    assert http.get("/api/trace/export").status_code == 400
