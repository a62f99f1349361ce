"""The webhook endpoints' refusals (no broker needed: nothing is launched)
and the CLI's dry run and ``enable-project``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from bossapp.cli import main
from engine.config import Config
from engine.launchers.github import sign
from engine.launchers.http import create_app
from engine.launchers.launcher import Launcher
from engine.launchers.settings import LauncherSettings
from tests.launchers.conftest import FIXTURES, FakePublisher

ROOT = Path(__file__).resolve().parents[2]


class FakeRedis:
    """Redis's SET as the server does it: ``nx`` sets only a missing key and
    says whether it did (with ``get``: returns the value it found), a plain
    SET overwrites (the endpoint claims a
    delivery with SET NX, then stores its result over the claim). The fake
    used to ignore ``nx`` and return nothing, which only fitted the old
    check-then-set race. The claim's release (a script) just deletes."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def set(
        self, key: str, value: str, ex: int | None = None, nx: bool = False, get: bool = False
    ) -> bytes | bool | None:
        old = self.data.get(key)
        if not (nx and old is not None):
            self.data[key] = value.encode()
        if get:
            return old
        return None if nx and old is not None else True

    def eval(self, script: str, numkeys: int, key: str, token: str) -> int:
        if self.data.get(key) == token.encode():
            del self.data[key]
            return 1
        return 0


def app_for(tmp_path: Path, fake: FakePublisher, **settings: str):
    config = Config(process_dir=str(tmp_path))
    s = LauncherSettings(**settings)
    launcher = Launcher(config, s, publisher=fake, bus=fake)
    return create_app(config, s, launcher=launcher, redis_client=FakeRedis()).test_client()


def test_endpoints_without_a_secret_refuse_everything(tmp_path, fake):
    client = app_for(tmp_path, fake)
    assert (
        client.post(
            "/hooks/github", data=b"{}", headers={"X-Hub-Signature-256": sign("", b"{}")}
        ).status_code
        == 503
    )
    assert (
        client.post("/hooks/gitlab", data=b"{}", headers={"X-Gitlab-Token": ""}).status_code == 503
    )
    assert client.get("/hooks/health").get_json() == {"status": "ok"}


def test_bad_signature_and_token_are_refused_and_logged(tmp_path, fake, caplog):
    client = app_for(tmp_path, fake, github_secret="a", gitlab_token="b")
    with caplog.at_level(logging.WARNING, logger="boss.launchers.http"):
        r = client.post(
            "/hooks/github",
            data=b"{}",
            headers={
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": "d-1",
                "X-Hub-Signature-256": sign("not-a", b"{}"),
            },
        )
        assert r.status_code == 401
        assert (
            client.post("/hooks/gitlab", data=b"{}", headers={"X-Gitlab-Token": "c"}).status_code
            == 401
        )
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        "github webhook: refused delivery d-1" in m and "bad signature" in m for m in messages
    )
    assert any("gitlab webhook" in m and "bad token" in m for m in messages)
    assert fake.sent == fake.letters == fake.events == []


def test_ping_and_repeat_with_the_fake_store(tmp_path, fake):
    client = app_for(tmp_path, fake, github_secret="a")
    headers = {
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": "p-1",
        "X-Hub-Signature-256": sign("a", b'{"zen": "z"}'),
    }
    r = client.post("/hooks/github", data=b'{"zen": "z"}', headers=headers)
    assert r.status_code == 202 and r.get_json()["wfids"] == []
    again = client.post("/hooks/github", data=b'{"zen": "z"}', headers=headers)
    assert again.status_code == 200 and again.get_json()["status"] == "already launched"


def _run(*args: str, ini: Path) -> object:
    return CliRunner().invoke(main, ["-c", str(ini), *args], catch_exceptions=False)


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    path = tmp_path / "boss.ini"
    path.write_text(
        f"[boss]\nprocess_dir = {tmp_path / 'store'}\n[launchers]\n"
        f"standard_dir = {ROOT / 'processes' / 'StandardWorkflow'}\n"
    )
    return path


def test_enable_project_and_dry_run(ini, tmp_path):
    r = _run("enable-project", "Mer:Tools", ini=ini)
    assert r.exit_code == 0, r.output
    assert "OBS_SRCSRV_REQUEST_CREATE.BOSS_handle_SR.yaml" in r.output
    assert "already enabled" in _run("enable-project", "Mer:Tools", ini=ini).output
    r = _run(
        "launcher", "test", str(FIXTURES / "obs_request_create.json"), "--source", "obs", ini=ini
    )
    assert r.exit_code == 0, r.output
    assert "launch BOSS_handle_SR as obs-" in r.output and "-BOSS_handle_SR-Mer:Tools " in r.output
    assert "EiffelSourceChangeCreatedEvent" in r.output
    r = _run(
        "launcher",
        "test",
        str(FIXTURES / "obs_request_create.json"),
        "--source",
        "obs",
        "--json",
        ini=ini,
    )
    [result] = json.loads(r.output)
    assert result["launches"][0]["fields"]["ev"]["target_project"] == "Mer:Tools"


def test_dry_run_with_headers_rules_and_malformed(ini, tmp_path):
    (tmp_path / "store" / "ci").mkdir(parents=True)
    (tmp_path / "store" / "ci" / "build.yaml").write_text("name: build\nsteps: [report]\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "- match: {label: GITHUB_PUSH}\n  process: ci/build\n  fields: {sha: '${commit}'}\n"
    )
    body = tmp_path / "push.json"
    body.write_text(json.dumps(json.loads((FIXTURES / "github_push.json").read_text())["body"]))
    r = _run(
        "launcher",
        "test",
        str(body),
        "--source",
        "github",
        "-H",
        "X-GitHub-Event=push",
        "-H",
        "X-GitHub-Delivery=abc",
        "--rules",
        str(rules),
        ini=ini,
    )
    assert r.exit_code == 0, r.output
    assert "as github-abc-" in r.output and '"sha": "6dcb09b5' in r.output
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = CliRunner().invoke(
        main, ["-c", str(ini), "launcher", "test", str(bad), "--source", "gitlab"]
    )
    assert r.exit_code == 1 and "would be dead-lettered" in r.output
    r = CliRunner().invoke(
        main,
        [
            "-c",
            str(ini),
            "launcher",
            "test",
            str(FIXTURES / "gerrit_stream.jsonl"),
            "--source",
            "gerrit",
        ],
    )
    assert "GERRIT_PATCHSET_CREATED" in r.output and "nothing to launch" in r.output
