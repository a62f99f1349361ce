"""End to end, per forge: a recorded pull request / merge request / patch
set delivery (``shared/payloads``, read in place) goes through the real
launcher (the webhook app; ``Launcher.handle`` for a Gerrit stream line)
into runs of two small processes (one passes, one fails) on a real engine
worker on RabbitMQ (``tests/e2e/conftest.py``'s ``System``); ``boss
reporter serve`` runs as its own process and reports to fake forges at the
HTTP boundary (``fakes.py``). Each run is reported at its start and at its
end; a redelivered transition (the same Eiffel events published again)
reports nothing twice; an API outage (502s) is retried and then succeeds.

One ``System`` for the module (a worker takes seconds to start)."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.launchers.base import RawEvent
from engine.launchers.gerrit import GerritSource
from engine.launchers.github import sign
from engine.launchers.http import create_app
from engine.launchers.launcher import Launcher
from engine.launchers.settings import LauncherSettings
from engine.trace import EventBus, Graph, activity_id
from engine.trace.aggregator import graph_prefix
from tests.e2e.conftest import System
from tests.reporters.fakes import FakeForge
from tests.waiting import wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis]

SECRET = "s3cret"
TOKEN = "t0ken"
WEB = "http://boss.example.org"

PASS = "name: {name}\nsteps:\n  - wait: 1s\n  - set: {{checked: true}}\n"
FAIL = "name: {name}\nsteps:\n  - wait: 1s\n  - set: {{'f:status': FAILED}}\n"


@pytest.fixture(scope="module")
def forges() -> Iterator[dict[str, FakeForge]]:
    made = {k: FakeForge(k) for k in ("github", "gitlab", "gerrit")}
    yield made
    for f in made.values():
        f.close()


@pytest.fixture(scope="module")
def system(
    rabbitmq_url: str,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    forges: dict[str, FakeForge],
) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("reporters")
    (tmp / "processes").mkdir()
    sys_ = System(tmp, rabbitmq_url, redis_url, f"rep{uuid.uuid4().hex[:10]}")
    store = tmp / "store"
    sys_.settings["launchers"] = LauncherSettings(
        process_store=str(store), github_secret=SECRET, gitlab_token=TOKEN
    )
    for project, label in (
        ("Codertocat/Hello-World", "GITHUB_PULL_REQUEST"),
        ("awesome_space/awesome_project", "GITLAB_MERGE_REQUEST"),
        ("snix", "GERRIT_PATCHSET_CREATED"),
    ):
        where = store / project
        where.mkdir(parents=True)
        (where / f"{label}.pass.yaml").write_text(PASS.format(name="pass"))
        (where / f"{label}.fail.yaml").write_text(FAIL.format(name="fail"))
    gh, gl, ge = forges["github"], forges["gitlab"], forges["gerrit"]
    with sys_.ini.open("a") as fh:
        fh.write(
            f"\n[launchers]\nprocess_store = {store}\n"
            f"\n[reporters]\nqueue = {sys_.prefix}.reporter\nweb_url = {WEB}\n"
            f"github_url = {gh.url}\ngithub_token = {gh.token}\ngithub_checks = true\n"
            f"gitlab_url = {gl.url}\ngitlab_token = {gl.token}\n"
            f"gerrit_url = {ge.url}\ngerrit_user = {ge.user}\ngerrit_password = {ge.password}\n"
            "retry_delay = 0.2\nretry_max_delay = 1\n"
        )
    sys_.worker()
    sys_._spawn(
        "reporter",
        [sys.executable, "-m", "bossapp.cli", "-c", str(sys_.ini), "reporter", "serve"],
    )
    sys_.wait_consumers(f"{sys_.prefix}.reporter", 1)
    yield sys_
    try:
        invalid = sys_.invalid_events()
        assert not invalid, f"invalid Eiffel events were dead-lettered: {invalid}"
    finally:
        sys_.cleanup()


@pytest.fixture(scope="module")
def client(system: System) -> Iterator[Any]:
    app = create_app(system.config, system.settings["launchers"], redis_client=system.store.client)
    yield app.test_client()
    app.extensions["boss_launchers"].launcher.close()


def wait_calls(forge: FakeForge, path: str, n: int, system: System) -> list[Any]:
    try:
        return wait_for(
            lambda: len(forge.ok(path)) >= n and forge.ok(path), 30, f"{n} calls to {path}"
        )
    except AssertionError:
        raise AssertionError(
            f"{[(c.method, c.path, c.status) for c in forge.calls]}\n" + system.logs()
        ) from None


def redeliver(system: System, wfids: list[str]) -> None:
    """Publish the runs' own ActivityTriggered and -Finished events again."""
    graph = Graph(system.store.client, prefix=graph_prefix(system.config))
    ids = [activity_id(w, None, e) for w in wfids for e in ("triggered", "finished")]
    events = wait_for(
        lambda: all(graph.get_many(ids)) and graph.get_many(ids), 20, "the runs' events"
    )
    bus = EventBus(system.config)
    try:
        bus.publish(events)
    finally:
        bus.close()


def _reporter_log(system: System) -> str:
    proc = next(p for p in system.procs if p.name == "reporter")
    return proc.log.read_text(errors="replace") if proc.log.exists() else ""


def assert_nothing_more(forge: FakeForge, system: System, wfids: list[str]) -> None:
    """The runs' events given again: the reporter sees each transition
    again (it says so) and adds no job, so no forge is called again."""
    before = len(forge.calls)
    seen = _reporter_log(system)

    def told(text: str, wfid: str, transition: str) -> int:
        return text.count(f"already reported for {wfid} {transition}")

    redeliver(system, wfids)
    wait_for(
        lambda: all(
            told(_reporter_log(system), w, t) > told(seen, w, t)
            for w in wfids
            for t in ("start", "end")
        ),
        20,
        "the reporter to see the runs' events again",
    )
    later = _reporter_log(system)[len(seen) :].splitlines()
    added = [x for x in later if any(f"reporter: {t} of " in x for t in ("start", "end"))]
    assert added == [], added
    assert len(forge.calls) == before, [(c.method, c.path) for c in forge.calls[before:]]
    out = system.boss("reporter", "show", wfids[0], "--json")
    assert {j["state"] for j in json.loads(out.stdout)} == {"done"}


def test_github_pull_request(
    system: System, client: Any, forges: dict[str, FakeForge], payloads_dir: Path
) -> None:
    gh = forges["github"]
    body = (payloads_dir / "github" / "pull_request__opened.payload.json").read_bytes()
    delivery = str(uuid.uuid4())
    headers = {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(SECRET, body),
        "Content-Type": "application/json",
    }
    gh.fail_next(2, 502)  # the first reports meet an outage
    r = client.post("/hooks/github", data=body, headers=headers)
    assert r.status_code == 202, r.get_json()
    ok, bad = f"github-{delivery}-pass", f"github-{delivery}-fail"
    assert set(r.get_json()["wfids"]) == {ok, bad}
    system.wait_status(ok)
    system.wait_status(bad)
    sha = system.engine.fields(ok)["ev"]["commit"]
    statuses = wait_calls(gh, f"/statuses/{sha}", 4, system)
    by_context: dict[str, list[str]] = {}
    for c in statuses:
        by_context.setdefault(c.body["context"], []).append(c.body["state"])
    assert by_context == {"boss/pass": ["pending", "success"], "boss/fail": ["pending", "failure"]}
    assert {c.body["target_url"] for c in statuses} == {f"{WEB}/runs/{ok}", f"{WEB}/runs/{bad}"}
    assert len([c for c in gh.requests() if c.status == 502]) == 2  # retried, then sent
    checks = wait_calls(gh, "/check-runs", 4, system)
    assert sorted(c.method for c in checks) == ["PATCH", "PATCH", "POST", "POST"]
    [comment] = wait_calls(gh, "/issues/2/comments", 1, system)
    assert "fail" in comment.body["body"] and bad in comment.body["body"]
    again = client.post("/hooks/github", data=body, headers=headers)
    assert again.get_json()["status"] == "already launched"
    assert_nothing_more(gh, system, [ok, bad])


def test_gitlab_merge_request(
    system: System, client: Any, forges: dict[str, FakeForge], payloads_dir: Path
) -> None:
    gl = forges["gitlab"]
    body = (payloads_dir / "gitlab" / "gogitlab__merge_request.json").read_bytes()
    event_uuid = str(uuid.uuid4())
    headers = {
        "X-Gitlab-Event": "Merge Request Hook",
        "X-Gitlab-Token": TOKEN,
        "X-Gitlab-Event-UUID": event_uuid,
        "Content-Type": "application/json",
    }
    r = client.post("/hooks/gitlab", data=body, headers=headers)
    assert r.status_code == 202, r.get_json()
    wfids = r.get_json()["wfids"]
    ok = next(w for w in wfids if w.endswith("-pass"))
    bad = next(w for w in wfids if w.endswith("-fail"))
    system.wait_status(ok)
    system.wait_status(bad)
    statuses = wait_calls(gl, "/statuses/", 4, system)
    assert all(
        c.raw_path.startswith("/api/v4/projects/awesome_space%2Fawesome_project/statuses/")
        for c in statuses
    )
    by_name: dict[str, list[str]] = {}
    for c in statuses:
        by_name.setdefault(c.body["name"], []).append(c.body["state"])
    assert by_name == {"boss/pass": ["running", "success"], "boss/fail": ["running", "failed"]}
    [note] = wait_calls(gl, "/merge_requests/1/notes", 1, system)
    assert bad in note.body["body"]
    assert all(c.headers["private-token"] == gl.token for c in gl.calls)
    assert_nothing_more(gl, system, [ok, bad])


def test_gerrit_patchset_created(
    system: System, forges: dict[str, FakeForge], payloads_dir: Path
) -> None:
    ge = forges["gerrit"]
    lines = (payloads_dir / "gerrit" / "with_banner.jsonl").read_text().splitlines()
    line = next(x for x in lines if '"patchset-created"' in x)
    ge.fail_next(1, 503)  # an outage: retried
    launcher = Launcher(system.config, system.settings["launchers"])
    try:
        out = launcher.handle(GerritSource(), RawEvent(line.encode()))
    finally:
        launcher.close()
    ok = next(w for w in out.wfids if w.endswith("-pass"))
    bad = next(w for w in out.wfids if w.endswith("-fail"))
    system.wait_status(ok)
    system.wait_status(bad)
    reviews = wait_calls(ge, "/review", 4, system)
    ev = system.engine.fields(ok)["ev"]
    assert {c.raw_path for c in reviews} == {
        f"/a/changes/snix~{ev['change']}/revisions/{ev['commit']}/review"
    }
    started = [c for c in reviews if "labels" not in c.body]
    votes = sorted(c.body["labels"]["Verified"] for c in reviews if "labels" in c.body)
    assert len(started) == 2 and votes == [-1, 1]
    assert ge.requests()[0].status == 503
    assert_nothing_more(ge, system, [ok, bad])
    out = system.boss("reporter", "errors", "--json")
    assert json.loads(out.stdout) == []
