"""The CI-systems dashboard's API and pages (issue 17, item 4;
``webui/blueprints/ci.py``): answers checked against the OpenAPI document
``docs/ci-dashboard-openapi.yaml`` (jsonschema), against the radar's own
functions (``window``: the same objects as ``boss ci systems --json``) and
against figures computed by hand here, on the recorded Gerrit streams
(``shared/payloads/gerrit``, read in place) and lines varied from them
(``tests.radar.test_radar.Gen``), in the web env's Redis prefix."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis
import yaml

from engine.radar import RadarFeed, RadarSettings, RadarStore, window
from engine.radar.stats import DAY, daily, time_day
from tests.radar.test_radar import Gen, lines
from tests.webui.conftest import WebEnv, make_env
from webui.settings import WebConfig

pytestmark = pytest.mark.redis

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "ci-dashboard-openapi.yaml"
FOREVER = 1e11  # retention: the recorded deliveries are years old
H = 3600.0
RECORDED = ("with_banner.jsonl", "gogerrit_events.jsonl", "recheck_comment.jsonl")
#: the generated systems: (name, on which of a day's 6 patch sets, response s, verdict(day, i))
SYSTEMS: list[tuple[str, Any, float, Any]] = [
    ("Zuul", lambda i: True, 600, lambda d, i: -1 if i == 5 else 1),
    ("Vendor X CI", lambda i: i % 2 == 0, 1800, lambda d, i: -1 if d == 1 else 1),
    ("Broken CI", lambda i: True, 300, lambda d, i: -1),
    ("Slow Jenkins", lambda i: True, 6 * H, lambda d, i: 1),
]
DAYS, PER_DAY = 3, 6


def feed_dashboard(client: redis.Redis, prefix: str, payloads_dir: Path, day0: float) -> RadarFeed:
    """The radar of ``prefix`` fed the recorded Gerrit streams as they are and
    ``DAYS`` days from ``day0`` (a UTC midnight) of ``PER_DAY`` patch sets
    each, varied from the recorded lines, voted on by ``SYSTEMS``; on change
    ``recheck_change()`` Vendor X CI fails, a human asks for a recheck, and
    it passes."""
    feed = RadarFeed(RadarStore(client, prefix, FOREVER), RadarSettings(gate="Zuul"))
    for name in RECORDED:
        with (payloads_dir / "gerrit" / name).open("rb") as fh:
            assert feed.import_gerrit(fh, name).errors == []
    gen = Gen(payloads_dir)
    events = []
    for d in range(DAYS):
        for i in range(PER_DAY):
            change, at = change_of(d, i), day0 + d * DAY + (i + 1) * H
            events.append(gen.patchset(change, at))
            for name, votes, response, verdict in SYSTEMS:
                if votes(i):
                    events.append(gen.vote(name, change, at + response, verdict(d, i), "Build"))
    # the recheck: change (1, 0) failed by Vendor X CI (day 1), rechecked, passed
    change, at = recheck_change(), day0 + DAY + H
    events.append(gen.recheck(change, at + 2000))
    events.append(gen.vote("Vendor X CI", change, at + 2500, 1, "Build succeeded"))
    result = feed.import_gerrit(lines(events))
    assert result.errors == []
    return feed


def change_of(d: int, i: int) -> int:
    return 5000 + d * 10 + i


def recheck_change() -> int:
    return change_of(1, 0)


def openapi() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text())


def check(doc: dict[str, Any], path: str, status: int, body: Any) -> None:
    """``body`` matches the document's schema of ``path``'s ``status`` answer."""
    answer = doc["paths"][path]["get"]["responses"][str(status)]
    if "$ref" in answer:
        answer = doc["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    schema = dict(answer["content"]["application/json"]["schema"])
    schema["components"] = doc["components"]
    jsonschema.Draft202012Validator(schema).validate(body)


@pytest.fixture
def day0() -> float:
    return math.floor(1_753_736_174.0 / DAY) * DAY + DAY  # after the recorded patch set


@pytest.fixture
def fed(web: WebEnv, payloads_dir: Path, day0: float) -> RadarFeed:
    return feed_dashboard(web.store.client, web.config.key_prefix, payloads_dir, day0)


def _window(day0: float) -> dict[str, Any]:
    return {"since": "3d", "until": str(day0 + DAYS * DAY)}


def test_systems_are_the_radars_figures(web: WebEnv, fed: RadarFeed, day0: float) -> None:
    doc = openapi()
    r = web.client().get("/api/ci/systems", query_string=_window(day0))
    assert r.status_code == 200, r.json
    check(doc, "/api/ci/systems", 200, r.json)
    until = day0 + DAYS * DAY
    assert r.json["since"] == day0 and r.json["until"] == until
    # the very objects window() gives (what ``boss ci systems --json`` prints);
    # the app reads [radar] from the web env's configuration: no gate named,
    # so the stored gate flag of the classifier's time decides
    expected = window(fed.store, RadarSettings(), since=day0, until=until)
    assert r.json["systems"] == expected
    by = {f["name"]: f for f in r.json["systems"]}
    assert r.json["systems"][0]["name"] == "Zuul" and by["Zuul"]["gate"]
    assert set(by) == {name for name, *_ in SYSTEMS}
    assert by["Vendor X CI"]["coverage"] == 0.5
    assert by["Broken CI"]["success_rate"] == 0.0 and by["Broken CI"]["healthy"] is False
    assert any("in a row" in reason for reason in by["Broken CI"]["reasons"])
    assert by["Slow Jenkins"]["response_p50_s"] == 6 * H
    # with a project that none reports on: none
    r = web.client().get("/api/ci/systems", query_string={**_window(day0), "project": "nope"})
    assert r.json["systems"] == []


def test_system_days_are_exact(web: WebEnv, fed: RadarFeed, day0: float) -> None:
    doc = openapi()
    r = web.client().get("/api/ci/systems/vendor x ci", query_string=_window(day0))
    assert r.status_code == 200, r.json
    check(doc, "/api/ci/systems/{name}", 200, r.json)
    body = r.json
    assert body["name"] == "Vendor X CI" and body["meta"]["classified"] is True
    assert body["figures"]["name"] == "Vendor X CI"
    assert [d["day"] for d in body["days"]] == [time_day(day0 + k * DAY) for k in range(DAYS)]
    assert [d["since"] for d in body["days"]] == [day0 + k * DAY for k in range(DAYS)]
    # by hand: 3 of 6 patch sets a day; day 1 all failed, but change (1, 0)
    # passed after its recheck; its first verdict 1800 s after each upload
    assert [d["coverage"] for d in body["days"]] == [0.5, 0.5, 0.5]
    assert [d["success_rate"] for d in body["days"]] == [1.0, 1 / 3, 1.0]
    assert [d["response_p50_s"] for d in body["days"]] == [1800.0] * 3
    assert [d["patch_sets"] for d in body["days"]] == [PER_DAY] * 3
    # and each day is what window() says over that day alone
    for n, d in enumerate(body["days"]):
        last = n == len(body["days"]) - 1
        over = window(
            fed.store, RadarSettings(), since=d["since"], until=d["until"] - (0 if last else 1e-3)
        )
        f = next(f for f in over if f["name"] == "Vendor X CI")
        for key in ("patch_sets", "reported", "reports", "coverage", "success_rate"):
            assert d[key] == f[key], (d["day"], key)
        assert d["response_p50_s"] == f["response_p50_s"]
    # its newest reports, newest first
    reports = body["reports"]
    assert reports[0]["at"] >= reports[-1]["at"] and len(reports) == 3 * DAYS + 1
    # all the days of every system at once: the same buckets
    every = daily(fed.store, RadarSettings(), since=day0, until=day0 + DAYS * DAY)
    assert every["Vendor X CI"] == body["days"]
    assert [d["success_rate"] for d in every["Broken CI"]] == [0.0] * 3


def test_patch_sets_side_by_side(web: WebEnv, fed: RadarFeed, day0: float) -> None:
    doc = openapi()
    c = web.client()
    r = c.get("/api/ci/patchsets", query_string={**_window(day0), "limit": 5})
    assert r.status_code == 200, r.json
    check(doc, "/api/ci/patchsets", 200, r.json)
    body = r.json
    assert body["total"] == DAYS * PER_DAY and len(body["patch_sets"]) == 5
    assert body["systems"][0] == "Zuul"
    newest = body["patch_sets"][0]
    assert newest["change"] == str(change_of(DAYS - 1, PER_DAY - 1))
    # (2, 5): the gate failed it, Broken CI too, Slow Jenkins passed, Vendor X did not vote
    assert newest["verdicts"] == {"Broken CI": "fail", "Slow Jenkins": "pass", "Zuul": "fail"}
    assert newest["responses"]["Slow Jenkins"] == 6 * H
    # a system's patch sets: the recheck turned Vendor X's fail into a pass
    r = c.get(
        "/api/ci/patchsets", query_string={**_window(day0), "system": "Vendor X CI", "limit": 500}
    )
    check(doc, "/api/ci/patchsets", 200, r.json)
    assert r.json["total"] == DAYS * PER_DAY // 2
    rows = {ps["change"]: ps for ps in r.json["patch_sets"]}
    rechecked = rows[str(recheck_change())]
    assert rechecked["rechecks"] == 1 and rechecked["verdicts"]["Vendor X CI"] == "pass"
    assert rows[str(change_of(1, 2))]["verdicts"]["Vendor X CI"] == "fail"
    assert r.json["systems"][:2] == ["Zuul", "Vendor X CI"]


def test_errors_follow_the_document(web: WebEnv, fed: RadarFeed, day0: float) -> None:
    doc = openapi()
    c = web.client()
    r = c.get("/api/ci/systems", query_string={"since": "a fortnight"})
    assert r.status_code == 400
    check(doc, "/api/ci/systems", 400, r.json)
    r = c.get("/api/ci/systems/Nobody CI")
    assert r.status_code == 404 and "Nobody CI" in r.json["error"]
    check(doc, "/api/ci/systems/{name}", 404, r.json)
    r = c.get("/api/ci/patchsets", query_string={"until": "yesterday-ish"})
    assert r.status_code == 400
    check(doc, "/api/ci/patchsets", 400, r.json)


def test_anonymous_off_needs_a_log_in(
    redis_url: str, embedded_broker_url: str, tmp_path: Path, payloads_dir: Path, day0: float
) -> None:
    from tests.conftest import delete_keys

    prefix = f"boss-test:ci-{day0:.0f}-{tmp_path.name}:"
    env = make_env(
        tmp_path,
        redis_url,
        embedded_broker_url,
        prefix,
        WebConfig(secret_key="test-secret", anonymous=False),
    )
    try:
        feed_dashboard(env.store.client, prefix, payloads_dir, day0)
        for path in ("/api/ci/systems", "/api/ci/systems/Zuul", "/api/ci/patchsets"):
            r = env.client().get(path)
            assert r.status_code == 401, path
            check(openapi(), path.replace("Zuul", "{name}"), 401, r.json)
        assert env.client().get("/ci").status_code == 302  # to the log-in page
        alice = env.client("alice")
        assert alice.get("/api/ci/systems", query_string=_window(day0)).status_code == 200
        assert alice.get("/ci/Zuul", query_string=_window(day0)).status_code == 200
    finally:
        delete_keys(env.store.client, prefix)
        env.store.close()


def test_pages_under_the_csp(web: WebEnv, fed: RadarFeed, day0: float) -> None:
    c = web.client()
    page = c.get("/ci", query_string=_window(day0)).get_data(as_text=True)
    for name, *_ in SYSTEMS:
        assert f'data-system="{name}"' in page
    assert "unhealthy" in page and "failed the last" in page
    assert page.count('<svg class="spark"') == len(SYSTEMS) and "<polyline" in page
    assert 'aria-current="page">CI systems</a>' in page
    one = c.get("/ci/Vendor X CI", query_string=_window(day0))
    assert one.status_code == 200
    text = one.get_data(as_text=True)
    for canvas in ("ci-coverage", "ci-success", "ci-response"):
        assert f'id="{canvas}"' in text
    assert '"fn": "ciSystemCharts"' in text and str(recheck_change()) in text
    for html in (page, text):
        assert " style=" not in html and " onclick=" not in html
        scripts = re.findall(r"<script([^>]*)>", html)
        assert all("src=" in s or 'type="application/json"' in s for s in scripts), scripts
    assert c.get("/ci/Nobody").status_code == 404
