"""End to end, per source: real engine worker and a reporting participant
as processes on RabbitMQ (``tests/e2e/conftest.py``'s ``System``); the
launchers as they run in production (``boss launcher obs`` and ``boss
launcher gerrit`` as processes, the webhook app in this process with a
real broker and Redis). Each launch runs the right process with the right
fields, its run's ActivityTriggered links the source's Eiffel event as
CAUSE in the graph, repeated deliveries launch once, bad signatures are
refused, and malformed events are dead-lettered with their reason.

One ``System`` for the module (a worker takes seconds to start); each test
uses its own deliveries."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest

from engine.broker import list_deadletters
from engine.launchers.base import RawEvent, eiffel_id_for
from engine.launchers.gerrit import GerritSource
from engine.launchers.github import sign
from engine.launchers.http import create_app
from engine.launchers.obs import ObsSource
from engine.launchers.settings import LauncherSettings
from engine.trace.activity import activity_id
from engine.trace.aggregator import graph_prefix
from engine.trace.graph import Graph
from tests.e2e.conftest import System
from tests.launchers.conftest import FIXTURES, write_process
from tests.waiting import wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis]

SECRET = "s3cret"
TOKEN = "t0ken"


@pytest.fixture(scope="module")
def system(
    rabbitmq_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    tmp = tmp_path_factory.mktemp("launchers")
    (tmp / "processes").mkdir()
    sys_ = System(tmp, rabbitmq_url, redis_url, f"lau{uuid.uuid4().hex[:10]}")
    store = tmp / "store"
    sys_.settings["launchers"] = LauncherSettings(
        process_store=str(store),
        github_secret=SECRET,
        gitlab_token=TOKEN,
        obs_exchange=f"{sys_.prefix}.obs",
        obs_namespace="opensuse.obs",
        obs_queue=f"{sys_.prefix}.obs-launcher",
    )
    s = sys_.settings["launchers"]
    with sys_.ini.open("a") as fh:
        fh.write(
            f"\n[launchers]\nprocess_store = {store}\nobs_exchange = {s.obs_exchange}\n"
            f"obs_queue = {s.obs_queue}\nobs_namespace = {s.obs_namespace}\n"
        )
    conf = "flavour: standard\nirc_channel: '#mer-boss'\n"
    for project in ("Mer/Tools", "Mer/Tools/Testing"):
        write_process(
            store, project, "OBS_SRCSRV_REQUEST_CREATE.handle_sr.yaml", "handle_sr", conf=conf
        )
    write_process(store, "Mer/Tools/Testing", "OBS_BUILD_SUCCESS.built.yaml", "built")
    write_process(
        store, "sailfishos/boss-demo", "GITHUB_PUSH.build.yaml", "build", conf="builder: obs\n"
    )
    write_process(store, "sailfishos/boss-demo", "GITHUB_PULL_REQUEST.verify.yaml", "verify")
    write_process(store, "mer/boss-demo", "GITLAB_PUSH.build.yaml", "gl-build")
    write_process(store, "mer/boss-demo", "GITLAB_MERGE_REQUEST.verify.yaml", "gl-verify")
    write_process(store, "mer/boss-demo", "GERRIT_PATCHSET_CREATED.verify.yaml", "g-verify")
    write_process(store, "mer/boss-demo", "GERRIT_CHANGE_MERGED.build.yaml", "g-build")
    sys_.worker()
    sys_.participant("report", "Bump")
    yield sys_
    try:
        invalid = sys_.invalid_events()
        assert not invalid, f"invalid Eiffel events were dead-lettered: {invalid}"
    finally:
        sys_.cleanup()
        with kombu.Connection(rabbitmq_url) as conn:
            channel = conn.channel()
            for name in (s.obs_queue,):
                channel.queue_delete(name)
            channel.exchange_delete(s.obs_exchange)


def calls(system: System, wfid: str) -> int:
    return len([e for e in system.events("call") if e["wfid"] == wfid])


def assert_caused_by(system: System, wfid: str, cause: str) -> None:
    """The run's ActivityTriggered links the source's event as CAUSE, both
    in the graph."""
    graph = Graph(system.store.client, prefix=graph_prefix(system.config))
    act = activity_id(wfid, None, "triggered")
    wait_for(
        lambda: graph.exists(act) and graph.exists(cause),
        20,
        f"{wfid}'s activity and its cause in the graph",
    )
    assert ("CAUSE", cause) in graph.links_out(act)


def deadletters(system: System) -> list[dict[str, Any]]:
    with system.publisher.connection.clone() as conn:
        return list_deadletters(system.config, conn)


def wait_deadletter(system: System, text: str) -> dict[str, Any]:
    return wait_for(
        lambda: next((x for x in deadletters(system) if text in x["reason"]), None),
        20,
        f"a dead letter saying {text!r}",
    )


# -- OBS ----------------------------------------------------------------------------------


def test_obs_events_on_a_rabbitmq_topic_exchange(system: System):
    s: LauncherSettings = system.settings["launchers"]
    proc = system._spawn("obs-launcher", [*_boss(system), "launcher", "obs", "--loglevel", "INFO"])
    system.wait_consumers(s.obs_queue, 1)
    exchange = kombu.Exchange(s.obs_exchange, type="topic", durable=True)

    def publish(fixture: str | None, body: bytes | None = None, key: str = "") -> RawEvent:
        if fixture:
            data = json.loads((FIXTURES / fixture).read_text())
            body, key = json.dumps(data["body"]).encode(), data["routing_key"]
        with kombu.Connection(system.broker_url) as conn:
            conn.Producer().publish(
                body,
                exchange=exchange,
                routing_key=key,
                declare=[exchange],
                content_type="application/json",
                content_encoding="utf-8",
            )
        return RawEvent(body, routing_key=key)

    # a request to two target projects: one run per target, with the .conf
    raw = publish("obs_request_create.json")
    [ev] = ObsSource().normalise(raw)
    wfids = [f"obs-{ev.delivery}-handle_sr-{t}" for t in ("Mer:Tools", "Mer:Tools:Testing")]
    for wfid, target in zip(wfids, ("Mer:Tools", "Mer:Tools:Testing"), strict=True):
        system.wait_status(wfid)
        fields = system.engine.fields(wfid)
        assert fields["ev"]["target_project"] == target
        assert fields["ev"]["id"] == "4711" and fields["ev"]["who"] == "jane"
        assert fields["ev"]["label"] == "OBS_SRCSRV_REQUEST_CREATE"
        assert fields["flavour"] == "standard" and fields["n"] == 1
        assert_caused_by(system, wfid, eiffel_id_for("obs", ev.delivery, ev.label))

    # the same message again, then a build result: the request is not launched again
    publish("obs_request_create.json")
    raw = publish("obs_build_success.json")
    [built] = ObsSource().normalise(raw)
    built_wfid = f"obs-{built.delivery}-built"
    system.wait_status(built_wfid)
    assert system.engine.fields(built_wfid)["ev"]["package"] == "boss-demo"
    assert_caused_by(system, built_wfid, eiffel_id_for("obs", built.delivery, built.label))
    wait_for(
        lambda: proc.log.read_text().count(f"as {wfids[0]}\n") == 2,
        20,
        "the repeated request to be handled",
    )
    assert [calls(system, w) for w in wfids] == [1, 1]

    # a malformed message is dead-lettered with its reason (and the launcher goes on)
    publish(None, b'{"number": 9, "actions": []}', "opensuse.obs.request.create")
    letter = wait_deadletter(system, "request 9: no action names a targetproject")
    assert letter["queue"] == s.obs_queue
    assert letter["headers"]["x-routing-key"] == "opensuse.obs.request.create"
    assert proc.alive()


def _boss(system: System) -> list[str]:
    import sys

    return [sys.executable, "-m", "bossapp.cli", "-c", str(system.ini)]


# -- webhooks -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(system: System) -> Iterator[Any]:
    app = create_app(system.config, system.settings["launchers"], redis_client=system.store.client)
    yield app.test_client()
    app.extensions["boss_launchers"].launcher.close()


def _github(name: str, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    data = json.loads((FIXTURES / name).read_text())
    data["headers"]["X-GitHub-Delivery"] = str(uuid.uuid4())  # fresh for this run
    body = json.dumps(data["body"]).encode()
    return body, {**data["headers"], "X-Hub-Signature-256": sign(secret, body)}


def test_signed_github_webhook(system: System, client: Any, caplog: pytest.LogCaptureFixture):
    body, headers = _github("github_push.json")
    delivery = headers["X-GitHub-Delivery"]
    r = client.post("/hooks/github", data=body, headers=headers)
    assert r.status_code == 202, r.get_json()
    wfid = f"github-{delivery}-build"
    assert r.get_json()["wfids"] == [wfid]
    system.wait_status(wfid)
    fields = system.engine.fields(wfid)
    assert fields["builder"] == "obs"
    assert fields["ev"]["branch"] == "main" and fields["ev"]["project"] == "sailfishos/boss-demo"
    assert fields["ev"]["after"] == "6dcb09b5b57875f334f61aebed695e2e4193db5e"
    assert_caused_by(system, wfid, eiffel_id_for("github", delivery, "GITHUB_PUSH"))

    # the same delivery again: 200, already launched, nothing published
    again = client.post("/hooks/github", data=body, headers=headers)
    assert again.status_code == 200
    assert again.get_json() == {"status": "already launched", "delivery": delivery, "wfids": [wfid]}
    assert calls(system, wfid) == 1

    # a bad signature: 401, logged, nothing launched
    body2, headers2 = _github("github_pull_request.json", secret="wrong")
    with caplog.at_level(logging.WARNING, logger="boss.launchers.http"):
        bad = client.post("/hooks/github", data=body2, headers=headers2)
    assert bad.status_code == 401
    assert any(
        "bad signature" in r.getMessage() and headers2["X-GitHub-Delivery"] in r.getMessage()
        for r in caplog.records
    )
    unsigned = client.post(
        "/hooks/github",
        data=body2,
        headers={k: v for k, v in headers2.items() if k != "X-Hub-Signature-256"},
    )
    assert unsigned.status_code == 401
    assert system.status(f"github-{headers2['X-GitHub-Delivery']}-verify") is None

    # the pull request, signed: launched
    body3, headers3 = _github("github_pull_request.json")
    r = client.post("/hooks/github", data=body3, headers=headers3)
    assert r.status_code == 202
    pr_wfid = f"github-{headers3['X-GitHub-Delivery']}-verify"
    system.wait_status(pr_wfid)
    assert system.engine.fields(pr_wfid)["ev"]["change"] == "42"

    # signed but malformed: dead-lettered with the reason, 400
    junk = b'{"ref": "refs/heads/main"'
    r = client.post(
        "/hooks/github",
        data=junk,
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(SECRET, junk),
            "Content-Type": "application/json",
        },
    )
    assert r.status_code == 400
    letter = wait_deadletter(system, "github launcher: not JSON")
    assert letter["id"] == r.get_json()["deadletter"]
    assert letter["body"] == junk.decode()


def test_gitlab_webhook(system: System, client: Any, caplog: pytest.LogCaptureFixture):
    wfids = []
    for name in ("gitlab_push.json", "gitlab_merge_request.json"):
        data = json.loads((FIXTURES / name).read_text())
        key = str(uuid.uuid4())
        headers = {**data["headers"], "X-Gitlab-Token": TOKEN, "Idempotency-Key": key}
        body = json.dumps(data["body"]).encode()
        r = client.post("/hooks/gitlab", data=body, headers=headers)
        assert r.status_code == 202, r.get_json()
        [wfid] = r.get_json()["wfids"]
        assert wfid.startswith(f"gitlab-{key}-")
        wfids.append((wfid, key, data))
        # a retry of the same delivery
        assert client.post("/hooks/gitlab", data=body, headers=headers).status_code == 200
    for wfid, _, _ in wfids:
        system.wait_status(wfid)
        assert calls(system, wfid) == 1
    push_wfid, push_key, _ = wfids[0]
    assert system.engine.fields(push_wfid)["ev"]["user_username"] == "jsmith"
    assert system.engine.fields(wfids[1][0])["ev"]["object_attributes"]["iid"] == 1
    assert_caused_by(system, push_wfid, eiffel_id_for("gitlab", push_key, "GITLAB_PUSH"))
    with caplog.at_level(logging.WARNING, logger="boss.launchers.http"):
        bad = client.post(
            "/hooks/gitlab",
            data=b"{}",
            headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"},
        )
    assert bad.status_code == 401
    assert any("bad token" in r.getMessage() for r in caplog.records)


# -- Gerrit -------------------------------------------------------------------------------


def test_gerrit_stream_lines_from_a_file(system: System, tmp_path: Path):
    lines = (FIXTURES / "gerrit_stream.jsonl").read_text().splitlines()
    # a fresh change number so this run's deliveries are its own
    number = int(uuid.uuid4().int % 10**8)
    lines = [line.replace("1234", str(number)) for line in lines]
    stream = tmp_path / "stream.jsonl"
    stream.write_text("\n".join([*lines, '{"type": "patchset-created", "change": {}}']) + "\n")
    out = system.boss("launcher", "gerrit", "--file", str(stream))
    assert "5 event(s) handled" in out.stderr, out.stderr
    source = GerritSource()
    created, _, merged, _ = (source.normalise(RawEvent(x.encode()))[0] for x in lines)
    verify = f"gerrit-{created.delivery}-verify"
    build = f"gerrit-{merged.delivery}-build"
    assert f"as {verify}" in out.stderr and f"as {build}" in out.stderr, out.stderr
    for wfid in (verify, build):
        system.wait_status(wfid)
    assert system.engine.fields(verify)["ev"]["patchSet"]["number"] == 2
    assert system.engine.fields(build)["ev"]["newRev"] == merged.commit
    assert_caused_by(system, build, eiffel_id_for("gerrit", merged.delivery, merged.label))
    wait_deadletter(system, "gerrit launcher: patchset-created: no change.project")
    # the same lines again: nothing new runs
    system.boss("launcher", "gerrit", "--file", str(stream))
    assert calls(system, verify) == 1 and calls(system, build) == 1
