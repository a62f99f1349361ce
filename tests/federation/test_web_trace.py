"""The web UI and the trace HTTP API across two sites (``conftest.two_sites``:
ODL on the embedded broker, OPNFV on RabbitMQ, the bridge between them):
ODL's web app draws OPNFV's baseline and verdict marked with OPNFV's site and
OPNFV's unshared test activity as a placeholder; ``/api/trace/down`` lists it
in ``not_shared``; its page and its JSON say whose event it is."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine.store import RedisStore
from engine.trace import eiffel
from tests.conftest import delete_keys
from tests.federation.conftest import Site
from tests.federation.test_two_sites import EXAMPLES, example, odl_change_and_artifact
from tests.waiting import wait_for
from tests.webui.conftest import PASSWORDS, USERS, RecordingPublisher, csrf
from webui.app import create_app
from webui.settings import WebConfig

pytestmark = pytest.mark.skipif(
    not EXAMPLES.is_dir(), reason=f"no Eiffel conformance examples at {EXAMPLES}"
)


def web_app(site: Site, redis_url: str, prefix: str) -> tuple[Flask, RedisStore]:
    """``site``'s web UI on its own config and graph."""
    store = RedisStore(redis_url, prefix=prefix)
    app = create_app(
        site.config,
        web=WebConfig(secret_key="test-secret"),
        users=USERS,
        store=store,
        publisher=RecordingPublisher(),
        graph=site.graph,
        testing=True,
    )
    return app, store


def login(app: Flask, user: str = "alice") -> FlaskClient:
    client = app.test_client()
    r = client.post(
        "/login",
        data={"username": user, "password": PASSWORDS[user], "csrf_token": csrf(client)},
    )
    assert r.status_code == 302, r.data
    return client


@pytest.fixture
def traced(sites: tuple[Site, Site], redis_url: str) -> Iterator[dict[str, Any]]:
    """ODL's change and artifact, OPNFV's baseline and verdict of it (and its
    test activity, not shared), all arrived at ODL; ODL's web client."""
    odl, opnfv = sites
    scc, art = odl_change_and_artifact()
    aid = art["meta"]["id"]
    odl.bus.publish([scc, art])
    wait_for(lambda: opnfv.graph.exists(aid), 20, "ODL's artifact in OPNFV's graph")
    act = eiffel.activity_triggered("opnfv-daily", source={"name": "opnfv", "domainId": "opnfv"})
    comp = example("CompositionDefined", domain="opnfv", links=[("ELEMENT", aid)], name="opnfv-7")
    clm = example(
        "ConfidenceLevelModified",
        domain="opnfv",
        links=[("SUBJECT", comp["meta"]["id"]), ("CAUSE", act["meta"]["id"])],
        name="community-b-tested",
    )
    opnfv.bus.publish([act, comp, clm])
    cid, lid = comp["meta"]["id"], clm["meta"]["id"]
    wait_for(lambda: odl.graph.exists(lid) and odl.graph.exists(cid), 20, "OPNFV's verdict at ODL")
    prefix = f"boss-test:{uuid.uuid4().hex}:"
    app, store = web_app(odl, redis_url, prefix)
    try:
        yield {
            "app": app,
            "client": login(app),
            "scc": scc["meta"]["id"],
            "art": aid,
            "comp": cid,
            "clm": lid,
            "act": act["meta"]["id"],
        }
    finally:
        delete_keys(store.client, prefix)
        store.close()


def test_the_trace_graph_marks_each_site_and_draws_the_unshared_as_placeholders(traced):
    c, ids = traced["client"], traced
    r = c.get(f"/api/trace-graph/{ids['art']}?levels=4")
    assert r.status_code == 200, r.data
    nodes = {n["data"]["id"]: n["data"] for n in r.json["elements"]["nodes"]}
    edges = {
        (e["data"]["source"], e["data"]["target"], e["data"]["linkType"])
        for e in r.json["elements"]["edges"]
    }

    # ODL's own events: this site, drawn as before
    for eid in (ids["art"], ids["scc"]):
        assert nodes[eid]["site"] == "odl"
        assert nodes[eid]["siteLabel"] == "this site" and not nodes[eid]["remote"]
    # OPNFV's baseline and verdict: marked with OPNFV's site, in the label too
    for eid in (ids["comp"], ids["clm"]):
        assert nodes[eid]["site"] == "opnfv" and nodes[eid]["remote"]
        assert nodes[eid]["label"].endswith("[opnfv]")
    # OPNFV's test activity was never shared: a placeholder, and the edge to it
    ph = nodes[ids["act"]]
    assert ph["placeholder"] and ph["site"] == "opnfv" and ph["remote"]
    assert ph["label"] == "not shared: opnfv"
    assert (ids["clm"], ids["act"], "CAUSE") in edges

    # the placeholder's own graph: it, with what links to it
    r = c.get(f"/api/trace-graph/{ids['act']}")
    assert r.status_code == 200, r.data
    nodes = {n["data"]["id"]: n["data"] for n in r.json["elements"]["nodes"]}
    assert nodes[ids["act"]]["placeholder"] and nodes[ids["act"]]["center"]
    assert nodes[ids["clm"]]["site"] == "opnfv"
    assert r.json["not_shared"]["domain"] == "opnfv"
    assert c.get(f"/api/trace-graph/{uuid.uuid4()}").status_code == 404


def test_the_http_api_crosses_the_boundary(traced):
    c, ids = traced["client"], traced
    down = c.get(f"/api/trace/down/{ids['clm']}").json
    assert [e["meta"]["id"] for e in down["artifacts"]] == [ids["art"]]
    assert down["not_shared"] == [
        {"id": ids["act"], "domain": "opnfv", "via": "CAUSE", "from": ids["clm"]}
    ]
    assert down["sites"][ids["art"]] == "odl" and down["sites"][ids["scc"]] == "odl"
    up = c.get(f"/api/trace/up/{ids['art']}").json
    assert up["sites"][ids["clm"]] == "opnfv"
    hits = c.get(f"/api/trace/events/{ids['art']}/downstream").json["hits"]
    assert {h["event"]["meta"]["id"]: h["site"] for h in hits}[ids["clm"]] == "opnfv"

    # the event not shared: a 404 that says whose it is
    r = c.get(f"/api/trace/events/{ids['act']}")
    assert r.status_code == 404
    assert "an event of site opnfv that was not shared with this site" in r.json["error"]
    assert r.json["not_shared"]["domain"] == "opnfv"
    assert r.json["not_shared"]["linked_from"][0]["source"] == ids["clm"]
    r = c.get(f"/api/trace/down/{ids['act']}")
    assert r.status_code == 404 and r.json["rule"] == "not_shared"
    # an id nothing links to stays a plain 404
    r = c.get(f"/api/trace/events/{uuid.uuid4()}")
    assert r.status_code == 404 and "no event" in r.json["error"] and "not_shared" not in r.json


def test_the_pages_name_the_site_and_the_unshared_event(traced):
    c, ids = traced["client"], traced
    html = c.get(f"/trace/events/{ids['clm']}").get_data(as_text=True)
    assert 'id="event-site"' in html and "site: opnfv" in html
    html = c.get(f"/trace/events/{ids['art']}").get_data(as_text=True)
    assert "site: this site (odl)" in html and 'id="trace-sites"' in html

    r = c.get(f"/trace/events/{ids['act']}")
    assert r.status_code == 404
    html = r.get_data(as_text=True)
    assert "An event of site opnfv that was not shared with this site" in html
    assert f'href="/trace/events/{ids["clm"]}"' in html and "CAUSE" in html
    assert 'id="tracegraph"' in html and "<script>" not in html

    # searching for its id leads to that page
    r = c.get(f"/trace?q={ids['act']}")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/trace/events/{ids['act']}")


def test_the_browser_draws_the_sites_and_the_placeholder(traced):
    """The graph as drawn (Cytoscape in Chromium, the strict CSP): OPNFV's
    verdict with the double border, the unshared activity dashed, the
    sites' legend; a click on the placeholder opens its page."""
    from tests.webui.test_browser import Stack, _unavailable, chromium_path
    from webui.serve import make_boss_server

    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    ids = traced
    server = make_boss_server("127.0.0.1", 0, traced["app"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        stack = Stack(None, f"http://127.0.0.1:{server.server_port}", browser, traced["app"])  # type: ignore[arg-type]
        page = stack.page("alice")
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"{stack.url}/trace/events/{ids['art']}")
        page.wait_for_selector('#tracegraph[data-ready="1"]')
        style = page.evaluate(
            """([remote, ph]) => { var cy = window.BOSS.traceCy;
              return [cy.getElementById(remote).style("border-style"),
                      cy.getElementById(ph).style("border-style"),
                      cy.getElementById(ph).data("label")]; }""",
            [ids["clm"], ids["act"]],
        )
        assert style == ["double", "dashed", "not shared: opnfv"]
        legend = page.inner_text("#trace-sites")
        assert "this site" in legend and "opnfv" in legend and "not shared: opnfv" in legend
        assert page.inner_text("#event-site") == "site: this site (odl)"
        stack.shot(page, "trace-event-federated")
        page.evaluate("id => window.BOSS.traceCy.getElementById(id).emit('tap')", ids["act"])
        page.wait_for_url(f"**/trace/events/{ids['act']}")
        assert "not shared with this site" in page.inner_text("#not-shared")
        page.wait_for_selector('#tracegraph[data-ready="1"]')
        assert not [e for e in errors if "Content Security Policy" in e]
        browser.close()
    finally:
        pw.stop()
        server.shutdown()
