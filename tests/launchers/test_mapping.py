"""The process store (layout, .conf merging, per-target launches,
enable_project), the rules file, the settings, and the launcher's launch
items (wfids, cause, fields) on a fake broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import Config, ConfigError
from engine.launchers.base import NormalisedEvent, RawEvent
from engine.launchers.gerrit import GerritSource, GerritStream
from engine.launchers.github import GitHubSource
from engine.launchers.launcher import Launcher, LaunchError
from engine.launchers.obs import ObsSource
from engine.launchers.rules import RuleError, Rules, extract
from engine.launchers.settings import LauncherSettings
from engine.process_store import (
    ProcessStore,
    StoreError,
    enable_project,
    project_dir,
)
from engine.wire import validate
from tests.launchers.conftest import FIXTURES, FakePublisher, recorded, write_process

ROOT = Path(__file__).resolve().parents[2]
STANDARD = ROOT / "processes" / "StandardWorkflow"


def launcher_for(
    store: Path, fake: FakePublisher, rules: Rules | None = None, **settings: object
) -> Launcher:
    config = Config(process_dir=str(store))
    return Launcher(config, LauncherSettings(**settings), rules=rules, publisher=fake, bus=fake)


# -- the store --------------------------------------------------------------------------


def test_project_names_map_to_paths(tmp_path):
    assert project_dir(tmp_path, "Mer:Tools:Testing") == tmp_path / "Mer" / "Tools" / "Testing"
    assert project_dir(tmp_path, "org/repo") == tmp_path / "org" / "repo"
    assert project_dir(tmp_path, "home:jane:branches:Mer") == tmp_path / "home/jane/branches/Mer"
    for bad in ("..", "Mer:..:x", "a//b", "", "a:"):
        with pytest.raises(StoreError):
            project_dir(tmp_path, bad)


def test_lookup_by_label_and_conf(store_dir):
    write_process(
        store_dir,
        "Mer/Tools",
        "OBS_BUILD_SUCCESS.notify.yaml",
        conf="irc_channel: '#mer'\nretries: 3\n",
    )
    write_process(store_dir, "Mer/Tools", "OBS_BUILD_SUCCESS.test.yaml")
    write_process(store_dir, "Mer/Tools", "OBS_BUILD_FAIL.notify.yaml")
    write_process(store_dir, "Mer", "OBS_BUILD_SUCCESS.parent.yaml")
    found = ProcessStore(store_dir).lookup("OBS_BUILD_SUCCESS", "Mer:Tools")
    assert [(e.name, e.conf) for e in found] == [
        ("notify", {"irc_channel": "#mer", "retries": 3}),
        ("test", {}),
    ]
    assert ProcessStore(store_dir).lookup("OBS_BUILD", "Mer:Tools") == []
    assert ProcessStore(store_dir).lookup("OBS_BUILD_SUCCESS", "Other") == []
    assert ProcessStore(store_dir).projects() == ["Mer", "Mer:Tools"]


def test_bad_conf_is_refused(store_dir, fake):
    write_process(store_dir, "Mer/Tools", "OBS_BUILD_SUCCESS.x.yaml", conf="- a list\n")
    launcher = launcher_for(store_dir, fake)
    out = launcher.handle(
        ObsSource(),
        RawEvent(b'{"project": "Mer:Tools"}', routing_key=("opensuse.obs.package.build_success")),
    )
    assert out.wfids == [] and "not a YAML mapping" in out.reason
    assert fake.letters[0]["reason"].startswith("obs launcher: ")


def test_enable_project_links_the_standard_processes(store_dir):
    made = enable_project(store_dir, "Mer:Tools", STANDARD)
    where = store_dir / "Mer" / "Tools"
    assert {
        "OBS_SRCSRV_REQUEST_CREATE.BOSS_handle_SR.conf",
        "OBS_SRCSRV_REQUEST_CREATE.BOSS_handle_SR.yaml",
    } <= {p.name for p in made}
    assert all(p.is_symlink() for p in made)
    assert (where / "OBS_SRCSRV_REQUEST_CREATE.BOSS_handle_SR.yaml").resolve() == (
        STANDARD / "BOSS_handle_SR.yaml"
    ).resolve()
    assert enable_project(store_dir, "Mer:Tools", STANDARD) == []  # again: nothing to do
    [entry] = ProcessStore(store_dir).lookup("OBS_SRCSRV_REQUEST_CREATE", "Mer:Tools")
    assert entry.conf["prechecks"][0] == "check_multiple_destinations"


def test_enable_project_labels_from_name_comment_or_option(tmp_path, store_dir):
    std = tmp_path / "std"
    std.mkdir()
    (std / "GITHUB_PUSH.build.yaml").write_text("name: build\nsteps: [report]\n")
    (std / "notify.yaml").write_text(
        "# launch-on: OBS_BUILD_FAIL, OBS_BUILD_SUCCESS\nname: notify\nsteps: [report]\n"
    )
    (std / "unknown.yaml").write_text("name: unknown\nsteps: [report]\n")
    made = sorted(p.name for p in enable_project(store_dir, "a/b", std))
    assert made == [
        "GITHUB_PUSH.build.yaml",
        "OBS_BUILD_FAIL.notify.yaml",
        "OBS_BUILD_SUCCESS.notify.yaml",
    ]
    # a project's own file of the same name is never replaced
    own = write_process(store_dir, "c", "X.unknown.yaml")
    own_text = own.read_text()
    made = enable_project(store_dir, "c", std, labels=["X", "Y"])
    assert own.read_text() == own_text and not own.is_symlink()
    assert "Y.unknown.yaml" in [p.name for p in made]


# -- the launcher with the store --------------------------------------------------------


def test_request_launches_once_per_target_with_conf_and_cause(store_dir, fake):
    enable_project(store_dir, "Mer:Tools", STANDARD)
    enable_project(store_dir, "Mer:Tools:Testing", STANDARD)
    launcher = launcher_for(store_dir, fake)
    out = launcher.handle(ObsSource(), recorded("obs_request_create.json"))
    [ev] = out.events
    assert out.wfids == [
        f"obs-{ev.delivery}-BOSS_handle_SR-Mer:Tools",
        f"obs-{ev.delivery}-BOSS_handle_SR-Mer:Tools:Testing",
    ]
    # the Eiffel event first, then the launches naming it as their cause
    [event] = fake.events
    assert event["meta"]["type"] == "EiffelSourceChangeCreatedEvent"
    assert len(fake.sent) == 2
    for item, target in zip(fake.sent, ("Mer:Tools", "Mer:Tools:Testing"), strict=True):
        validate("launch", item)
        assert item["cause"] == [event["meta"]["id"]]
        assert item["definition"].startswith("# BOSS_handle_SR")
        assert item["fields"]["ev"]["target_project"] == target
        assert item["fields"]["ev"]["id"] == "4711"
        assert item["fields"]["pname"] == "BOSS"  # from the .conf
        # the project it was launched for, as BOSS's robogrator gave it
        # (BOSS_handle_SR locks ${project} and asks it for reviews)
        assert item["fields"]["project"] == target
    # the same delivery again: the same items (the engine ignores them)
    first = list(fake.sent)
    launcher.handle(ObsSource(), recorded("obs_request_create.json"))
    assert fake.sent[2:] == first
    assert fake.events[1]["meta"]["id"] == event["meta"]["id"]


def test_no_process_no_event(store_dir, fake):
    out = launcher_for(store_dir, fake).handle(GitHubSource(), recorded("github_push.json"))
    assert out.wfids == [] and fake.sent == [] and fake.events == []


def test_events_off_means_no_cause(store_dir, fake):
    write_process(store_dir, "sailfishos/boss-demo", "GITHUB_PUSH.ci.yaml")
    launcher = launcher_for(store_dir, fake, events=False)
    out = launcher.handle(GitHubSource(), recorded("github_push.json"))
    assert out.wfids and fake.events == [] and "cause" not in fake.sent[0]


def test_malformed_is_deadlettered_with_reason(store_dir, fake):
    raw = RawEvent(b"{oops", {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d9"})
    out = launcher_for(store_dir, fake).handle(GitHubSource(), raw)
    [letter] = fake.letters
    assert out.deadletter == letter["id"]
    assert letter["reason"].startswith("github launcher: not JSON")
    assert letter["body"] == "{oops" and letter["queue"] == "boss.launchers.github"
    assert letter["headers"]["X-GitHub-Delivery"] == "d9"
    obs = RawEvent(b'{"x": 1}', routing_key="opensuse.obs.package.build_success")
    launcher_for(store_dir, fake).handle(ObsSource(), obs)
    assert fake.letters[1]["headers"]["x-routing-key"] == "opensuse.obs.package.build_success"


def test_gerrit_stream_from_a_file(store_dir, fake):
    write_process(store_dir, "mer/boss-demo", "GERRIT_PATCHSET_CREATED.verify.yaml")
    write_process(store_dir, "mer/boss-demo", "GERRIT_CHANGE_MERGED.build.yaml")
    launcher = launcher_for(store_dir, fake)
    stream = GerritStream(launcher, GerritSource(), file=str(FIXTURES / "gerrit_stream.jsonl"))
    stream.run()
    assert stream.handled == 4
    assert [i["wfid"].split("-")[-1] for i in fake.sent] == ["verify", "build"]
    # ev.change is the change number as text, for every source and Gerrit
    # version (it was the payload's change object here, and a string elsewhere);
    # the payload's own object is in ev.raw
    ev = fake.sent[0]["fields"]["ev"]
    assert ev["change"] == "1234" and ev["patchset"] == "2"
    assert ev["raw"]["change"]["number"] == 1234


def test_gerrit_command_restarts_with_backoff(tmp_path, store_dir, fake):
    line = (FIXTURES / "gerrit_stream.jsonl").read_text().splitlines()[0]
    script = tmp_path / "stream.sh"
    # a line that starts like JSON but is not: dead-lettered (a line that is
    # not JSON at all, an SSH banner or warning, is ignored)
    script.write_text(f"#!/bin/sh\necho '{line}'\necho '{{not json'\nexit 3\n")
    script.chmod(0o755)
    launcher = launcher_for(store_dir, fake)
    stream = GerritStream(launcher, GerritSource(), command=str(script), max_backoff=0.05)
    import threading

    from tests.waiting import wait_for

    t = threading.Thread(target=stream.run, daemon=True)
    t.start()
    wait_for(lambda: stream.starts >= 3, 10, "the stream command to be restarted")
    stream.stop()
    t.join(5)
    assert not t.is_alive()
    assert all("not JSON" in x["reason"] for x in fake.letters) and len(fake.letters) >= 3


# -- rules ------------------------------------------------------------------------------

RULES = """
- match: {source: github, label: GITHUB_PUSH, project: "sailfishos/*", branch: main}
  process: ci/build
  fields:
    commit: "${payload.after}"
    files: "${payload.commits.0.modified}"
    where: "${project}@${branch}"
    missing: "${payload.nope}"
- match: {source: github, type: [GITHUB_PULL_REQUEST], payload: {action: "~^(opened|synchronize)$"}}
  process: ci/verify
  fields: {pr: "${change}"}
- match: {source: obs, label: OBS_SRCSRV_REQUEST_CREATE, project: "Mer:Tools"}
  process: ci/review
  fields: {target: "${target}"}
- match: {repository: "~gitlab"}
  process: ci/never
"""


@pytest.fixture
def rules_store(store_dir):
    for name in ("build", "verify", "review", "never"):
        write_process(store_dir, "ci", f"{name}.yaml", name=name)
    return store_dir


def test_rules_map_with_extraction(rules_store, fake):
    rules = Rules.from_data(__import__("yaml").safe_load(RULES))
    launcher = launcher_for(rules_store, fake, rules=rules)
    out = launcher.handle(GitHubSource(), recorded("github_push.json"))
    [item] = fake.sent
    assert out.wfids == ["github-72d3162e-cc78-11e3-81ab-4c9367dc0958-ci-build"]
    f = item["fields"]
    assert f["commit"] == "6dcb09b5b57875f334f61aebed695e2e4193db5e"
    assert f["files"] == ["rpm/boss-demo.spec"]  # a whole reference keeps its type
    assert f["where"] == "sailfishos/boss-demo@main"
    assert f["missing"] is None and f["ev"]["branch"] == "main"
    launcher.handle(GitHubSource(), recorded("github_pull_request.json"))
    assert fake.sent[1]["fields"]["pr"] == "42"
    # a request: one launch per target the rule matches (only Mer:Tools here)
    launcher.handle(ObsSource(), recorded("obs_request_create.json"))
    assert [i["fields"]["target"] for i in fake.sent[2:]] == ["Mer:Tools"]


def test_rules_and_store_together(rules_store, fake):
    write_process(rules_store, "sailfishos/boss-demo", "GITHUB_PUSH.build.yaml")
    rules = Rules.from_data(__import__("yaml").safe_load(RULES))
    launcher = launcher_for(rules_store, fake, rules=rules)
    plans = launcher.plan(GitHubSource().normalise(recorded("github_push.json"))[0])
    assert [(p.process, p.via.split(" ")[0]) for p in plans] == [
        ("build", "store"),
        ("ci/build", "rules"),
    ]


def test_rule_naming_a_missing_process_deadletters(store_dir, fake):
    rules = Rules.from_data([{"match": {"source": "github"}, "process": "nope"}])
    out = launcher_for(store_dir, fake, rules=rules).handle(
        GitHubSource(), recorded("github_push.json")
    )
    assert "no process 'nope'" in out.reason and fake.sent == []
    with pytest.raises(LaunchError):
        launcher_for(store_dir, fake, rules=rules).plan(
            NormalisedEvent("github", "GITHUB_PUSH", "d")
        )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"x": 1}, "not a list"),
        ([{"match": {"colour": "red"}, "process": "p"}], "unknown match keys"),
        ([{"match": {}, "process": ""}], "no process"),
        ([{"match": {"project": "~(("}, "process": "p"}], "bad regular expression"),
        ([{"process": "p", "fields": {"a": "${nope}"}}], "unknown name"),
        ([{"process": "p", "when": 1}], "unknown keys"),
    ],
)
def test_bad_rules_are_refused(data, reason):
    with pytest.raises(RuleError, match=reason):
        Rules.from_data(data)


def test_rules_file_and_extract(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - process: p\n    match: {source: gerrit}\n")
    assert Rules.load(path).rules[0].process == "p"
    ev = NormalisedEvent("obs", "L", "d", payload={"a": {"b": [1, 2]}, "n": 3})
    assert extract({"x": ["${payload.a.b}", "n=${payload.n}"]}, ev) == {"x": [[1, 2], "n=3"]}


# -- settings ---------------------------------------------------------------------------


def test_settings_from_the_ini_and_environment(tmp_path):
    ini = tmp_path / "boss.ini"
    ini.write_text(
        "[boss]\nprocess_dir = /p\n[launchers]\ngithub_secret = a\n"
        "obs_namespace = mer.obs\ndelivery_ttl = 60\nevents = no\n"
    )
    config = Config.load(ini, environ={})
    s = LauncherSettings.load(config, environ={"BOSS_LAUNCHERS_GITHUB_SECRET": "b"})
    assert (s.github_secret, s.obs_namespace, s.delivery_ttl, s.events) == (
        "b",
        "mer.obs",
        60.0,
        False,
    )
    assert s.bindings() == ["mer.obs.#"]
    assert s.store_dir(config) == Path("/p")
    ini.write_text("[boss]\n[launchers]\ncolour = red\n")
    with pytest.raises(ConfigError, match="unknown key 'colour'"):
        LauncherSettings.load(Config.load(ini, environ={}), environ={})
    ini.write_text("[boss]\n")
    with pytest.raises(ConfigError, match="not a boolean"):
        LauncherSettings.load(None, ini, environ={"BOSS_LAUNCHERS_EVENTS": "maybe"})


def test_dry_run(store_dir, fake):
    enable_project(store_dir, "Mer:Tools", STANDARD)
    launcher = launcher_for(store_dir, fake)
    [result] = launcher.dry_run(ObsSource(), recorded("obs_request_create.json"))
    assert result["eiffel"] == "EiffelSourceChangeCreatedEvent"
    assert [x["target"] for x in result["launches"]] == ["Mer:Tools"]
    assert fake.sent == [] and fake.events == []
    json.dumps(result)


def test_enable_project_links_every_standard_process_for_its_label(tmp_path):
    """The shipped standard workflow: each process says which OBS event
    launches it, so `boss enable-project` links all of them."""
    from pathlib import Path

    from engine.process_store import enable_project

    std = Path(__file__).resolve().parents[2] / "processes" / "StandardWorkflow"
    links = enable_project(tmp_path, "Mer:Tools", std)
    names = sorted(p.name for p in links if p.suffix == ".yaml")
    assert names == [
        "OBS_BUILD_SUCCESS.BOSS_build_success.yaml",
        "OBS_SRCSRV_COMMIT.BOSS_commit_failure.yaml",
        "OBS_SRCSRV_REQUEST_CREATE.BOSS_handle_SR.yaml",
        "OBS_SRCSRV_REQUEST_REVIEWCHANGED.BOSS_request_statechange.yaml",
        "OBS_SRCSRV_REQUEST_STATECHANGE.BOSS_req_change_monitor.yaml",
        "OBS_SRCSRV_REQUEST_STATECHANGE.BOSS_request_statechange.yaml",
    ]
    assert all(p.parent == tmp_path / "Mer" / "Tools" for p in links)
