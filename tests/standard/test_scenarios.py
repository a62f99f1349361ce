"""The standard processes end to end: an engine worker and the standard
participants as real processes on the embedded broker, a real IRC server,
a local git repository; then the real ``boss trace`` CLI answers.

* change_to_rc (processes/pipelines): commits -> SourceChange events ->
  build -> artifact -> tests -> release candidate; the IRC channel gets the
  news; ``boss trace up`` shows the chain and ``boss trace lead-time`` its
  lead time. notify_irc with its server down fails its run with a clear
  error.
* OpenCI (processes/openci): community A's artifact triggers community B's
  baseline and tests, whose confidence level triggers A's promotion.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from engine.trace.aggregator import graph_prefix
from engine.trace.graph import Graph
from engine.trace.metrics import lead_time
from tests.e2e.conftest import System
from tests.standard.conftest import HANDLERS, standard_participant
from tests.standard.gitrepo import make_repo
from tests.standard.ircserver import Watcher, irc_server
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
CHANNEL = "#boss_ci"
GIT = "git_(clone|commits|source_change)"
EIFFEL = (
    "artifact_created|artifact_published|composition_defined|baseline_defined|"
    "confidence_level_modified"
)


def _common(system: System, tmp: Path) -> None:
    standard_participant(
        system,
        "git",
        "participants.standard.git_source",
        "Git",
        regexp=GIT,
        sections={"git": {"workdir": tmp / "clones"}},
    )
    standard_participant(
        system,
        "eiffel_publish",
        "participants.standard.eiffel_publish",
        "EiffelPublish",
        regexp=EIFFEL,
    )
    standard_participant(system, "build", str(HANDLERS), "Build")
    standard_participant(system, "test", str(HANDLERS), "Test")


def _fields(system: System, wfid: str) -> dict[str, Any]:
    loaded = system.store.load_run(wfid)
    assert loaded is not None, wfid
    return loaded[0]["fields"]


def _trace(system: System, *args: str) -> Any:
    return json.loads(system.boss("trace", *args, "--json").stdout)


def test_change_to_release_candidate_pipeline_and_its_lead_time(
    standard_system: System, tmp_path: Path
):
    system = standard_system
    bare, shas = make_repo(tmp_path, 3)
    with irc_server() as (host, port):
        watcher = Watcher(host, port, CHANNEL)
        try:
            system.worker()
            _common(system, tmp_path)
            irc = {"nick": "bossbot", "rate": 20, "retries": 2, "retry_delay": 0.1, "timeout": 5}
            standard_participant(
                system,
                "notify_irc",
                "participants.standard.notify_irc",
                "NotifyIrc",
                sections={"notify_irc": {**irc, "server": f"{host}:{port}"}},
            )
            standard_participant(
                system,
                "notify_irc_down",
                "participants.standard.notify_irc",
                "NotifyIrc",
                sections={"notify_irc": {**irc, "server": "127.0.0.1:9"}},
            )
            wfid = system.launch(
                (PROCESSES / "pipelines" / "change_to_rc.yaml").read_text(),
                {"repo": str(bare), "from": shas[0], "project": "app", "irc_channel": CHANNEL},
            )
            down = system.launch(
                f"name: irc_down\nsteps:\n  - notify_irc_down: {{channel: '{CHANNEL}', msg: hi}}\n"
            )
            system.wait_status(wfid, timeout=90)
            # the release candidate was announced on IRC, seen by another client
            wait_for(
                lambda: any("release candidate app-rc" in t for t in watcher.texts()),
                10,
                "the announcement in the channel",
            )
            assert watcher.lines[-1][0] == "bossbot"
            assert shas[-1] in watcher.texts()[-1]
            # the server that is down: retried, then a clear error of the run
            system.wait_status(down, "error", timeout=30)
            errors = system.store.load_run(down)[0]["errors"]
            assert "cannot reach IRC server 127.0.0.1:9 after 2 attempts" in json.dumps(errors)
        finally:
            watcher.close()

    fields = _fields(system, wfid)
    assert [c["sha"] for c in fields["commits"]] == shas[1:]
    assert fields["status"] == "SUCCESS"
    assert [(c["name"], c["value"]) for c in fields["confidence_levels"]] == [
        ("tested", "SUCCESS"),
        ("releaseCandidate", "SUCCESS"),
    ]
    # the graph: wait until the aggregator stored the release candidate level
    graph = Graph(system.store.client, prefix=graph_prefix(system.config))
    wait_for(lambda: graph.exists(fields["confidence_level"]), 20, "the RC level in the graph")

    # trace up from the first commit of the push (the real CLI, by sha)
    up = _trace(system, "up", shas[1])
    assert [e["data"]["identity"] for e in up["artifacts"]] == [f"pkg:generic/app@{shas[-1]}"]
    assert sorted(e["data"]["name"] for e in up["compositions"]) == ["app-rc", "app-sources"]
    assert sorted((e["data"]["name"], e["data"]["value"]) for e in up["confidence_levels"]) == [
        ("releaseCandidate", "SUCCESS"),
        ("tested", "SUCCESS"),
    ]
    text = system.boss("trace", "up", shas[1]).stdout
    assert "artifacts (1):" in text and "confidence_levels (2):" in text
    # trace down from the RC baseline: back to the pushed commits
    down_groups = _trace(system, "down", "app-rc")
    assert sorted(
        e["data"]["gitIdentifier"]["commitId"]
        for e in down_groups["source_changes"]
        if e["meta"]["type"] == "EiffelSourceChangeSubmittedEvent"
    ) == sorted(shas[1:])

    # lead time from the change to the release candidate, as the graph says
    change = fields["commits"][0]["submitted"]
    answer = _trace(system, "lead-time", shas[1], "--level", "releaseCandidate")
    expected = lead_time(graph, change, "releaseCandidate")
    assert expected is not None and expected > 0
    assert answer == {
        "change": shas[1],
        "level": "releaseCandidate",
        "value": "SUCCESS",
        "seconds": expected,
    }
    plain = system.boss("trace", "lead-time", change, "--level", "releaseCandidate").stdout
    assert plain.startswith(f"{expected:.1f}s") and "to releaseCandidate=SUCCESS" in plain


def test_openci_artifact_becomes_a_baseline_elsewhere_and_is_promoted(
    standard_system: System, tmp_path: Path
):
    system = standard_system
    bare, shas = make_repo(tmp_path, 2)
    store = system.tmp / "processes" / "openci"
    shutil.copytree(PROCESSES / "openci", store)
    system.worker()
    _common(system, tmp_path)
    standard_participant(
        system,
        "promoted_notice",
        "participants.standard.notices",
        "Notice",
        regexp="promoted_notice_.*",
    )
    # the triggers, as processes/openci/README.md gives them
    system.boss(
        "triggers",
        "add",
        "openci-b-baseline",
        "--process",
        "openci/community_b_baseline",
        "--type",
        "ArtifactCreated",
        "--data",
        "identity=~^pkg:generic/",
        "--data",
        "customData.value=community-a",
    )
    system.boss(
        "triggers",
        "add",
        "openci-a-promote",
        "--process",
        "openci/community_a_promote",
        "--type",
        "ConfidenceLevelModified",
        "--data",
        "name=community-b-tested",
        "--data",
        "value=SUCCESS",
    )

    a_build = system.launch(
        (store / "community_a_build.yaml").read_text(),
        {"repo": str(bare), "project": "libfoo", "version": "2.0"},
    )
    system.wait_status(a_build, timeout=60)
    artifact = _fields(system, a_build)["artifact"]
    # B's run, launched by the trigger on A's ArtifactCreated
    b_run = f"openci-b-baseline-{artifact}"
    wait_for(lambda: system.status(b_run), 30, "community B's run to start")
    system.wait_status(b_run, timeout=60)
    b_fields = _fields(system, b_run)
    assert b_fields["upstream_artifact"] == artifact
    b_level = b_fields["confidence_level"]
    # A's promotion, launched by the trigger on B's confidence level
    a_promote = f"openci-a-promote-{b_level}"
    wait_for(lambda: system.status(a_promote), 30, "community A's promotion to start")
    system.wait_status(a_promote, timeout=60)
    promoted = _fields(system, a_promote)["confidence_level"]
    graph = Graph(system.store.client, prefix=graph_prefix(system.config))
    wait_for(lambda: graph.exists(promoted), 20, "the promotion in the graph")

    # the whole chain, up from A's first commit
    up = _trace(system, "up", shas[0])
    assert [e["meta"]["id"] for e in up["artifacts"]] == [artifact]
    identity = up["artifacts"][0]["data"]["identity"]
    assert identity == f"pkg:generic/libfoo@2.0?vcs_revision={shas[-1]}"
    assert sorted(e["data"]["name"] for e in up["compositions"]) == [
        "community-a/libfoo-sources",
        "community-b/integration",
    ]
    assert sorted((e["data"]["name"], e["data"]["value"]) for e in up["confidence_levels"]) == [
        ("community-b-tested", "SUCCESS"),
        ("promoted", "SUCCESS"),
    ]
    assert len(up["publications"]) == 1
    # downstream of A's artifact: B's baseline and level, A's promotion
    downstream = system.boss("trace", "downstream", artifact, "--json").stdout
    for expected in (
        "community-b/integration",
        "community-b-tested",
        "promoted",
        "EiffelArtifactPublishedEvent",
    ):
        assert expected in downstream
    promotion = graph.get(promoted)
    assert {"type": "CAUSE", "target": b_level} in promotion["links"]
    assert {"type": "SUBJECT", "target": artifact} in promotion["links"]
    # B's run was caused by A's artifact
    from engine.trace.activity import activity_id

    assert ("CAUSE", artifact) in graph.links_out(activity_id(b_run, None, "triggered"))
    # and down from B's baseline: back to A's source changes
    down = _trace(system, "down", "community-b/integration")
    commits = {e["data"]["gitIdentifier"]["commitId"] for e in down["source_changes"]}
    assert commits == set(shas)
