"""git participants against a local bare repository made in the test; the
Eiffel publishers and the notices, with every event validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.trace import validate
from participants.standard.eiffel_publish import EiffelPublish
from participants.standard.git_source import Git, GitError
from participants.standard.notices import BuiltNotice, Notice, RequestNotice
from tests.standard.conftest import started, workitem
from tests.standard.gitrepo import make_repo


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return started(Git(), {"git": {"workdir": tmp_path / "clones"}})


def test_clone_commit_range_and_source_change_events(git, tmp_path):
    bare, shas = make_repo(tmp_path)
    wi = workitem({}, {"repo": str(bare), "branch": "main"}, name="git_clone", wfid="run-1")
    git.handle_wi(wi)
    assert wi.fields["git"]["head"] == shas[-1] and wi.fields["git"]["branch"] == "main"
    assert Path(wi.fields["git"]["workdir"], "file.txt").read_text() == "version 2\n"

    wi.to_dict()["participant_name"] = "git_commits"
    wi.fields["params"] = {"from": shas[0], "to": shas[-1]}
    git.handle_wi(wi)
    assert [c["sha"] for c in wi.fields["commits"]] == shas[1:]
    assert [c["subject"] for c in wi.fields["commits"]] == ["change 1", "change 2"]
    assert wi.fields["commits"][0]["parent"] == shas[0]
    assert wi.fields["commits"][0]["author"] == "Alice"

    wi.to_dict()["participant_name"] = "git_source_change"
    wi.fields["params"] = {}
    git.handle_wi(wi)
    types = [e["meta"]["type"] for e in wi.events]
    assert types == ["EiffelSourceChangeCreatedEvent", "EiffelSourceChangeSubmittedEvent"] * 2
    validate.validate_many(wi.events)
    scc, scs = wi.events[0], wi.events[1]
    assert scc["data"]["gitIdentifier"] == {
        "commitId": shas[1],
        "repoUri": str(bare),
        "branch": "main",
        "repoName": "app.git",
    }
    assert {"type": "CHANGE", "target": scc["meta"]["id"]} in scs["links"]
    assert {"type": "PREVIOUS_VERSION", "target": scs["meta"]["id"]} in wi.events[3]["links"]
    assert all({"type": "CONTEXT", "target": wi.activity_id} in e["links"] for e in wi.events)
    assert wi.fields["source_changes"] == [wi.events[1]["meta"]["id"], wi.events[3]["meta"]["id"]]
    assert wi.fields["change"] == wi.events[3]["meta"]["id"]


def test_commits_without_a_clone_step_and_errors(git, tmp_path):
    bare, shas = make_repo(tmp_path, 2)
    wi = workitem({"repo": str(bare)}, {"to": "main"}, name="git_commits")
    git.handle_wi(wi)  # clones on demand; no from: every commit
    assert [c["sha"] for c in wi.fields["commits"]] == shas
    bad = workitem({"repo": str(bare)}, {"from": "nope"}, name="git_commits")
    with pytest.raises(GitError, match=r"git log .*nope"):
        git.handle_wi(bad)
    with pytest.raises(GitError, match="git clone"):
        git.handle_wi(workitem({}, {"repo": str(tmp_path / "missing.git")}, name="git_clone"))
    with pytest.raises(ValueError, match="no git participant 'git_push'"):
        git.handle_wi(workitem({}, {}, name="git_push"))


def test_eiffel_publishers_chain_by_fields():
    pub = started(EiffelPublish(), {"eiffel_publish": {"issuer": "community-b"}})
    wi = workitem(
        {"change": "0" * 8 + "-0000-4000-8000-" + "0" * 12, "status": "SUCCESS"},
        {"name": "src", "elements": ["11111111-1111-4111-8111-111111111111"]},
        name="composition_defined",
    )
    pub.handle_wi(wi)
    comp = wi.fields["composition"]

    def step(participant: str, **params: object) -> None:
        wi.to_dict()["participant_name"] = participant
        wi.fields["params"] = params
        pub.handle_wi(wi)

    step("artifact_created", identity="pkg:generic/app@1.0", file="app-1.0.tar.gz")
    assert wi.events[-1]["links"][0] == {"type": "COMPOSITION", "target": comp}
    step("artifact_published", uri="https://dl.example.org/app-1.0.tar.gz")
    step("baseline_defined", name="rc", version="1.0")
    assert {"type": "ELEMENT", "target": wi.fields["artifact"]} in wi.events[-1]["links"]
    step(
        "confidence_level_modified",
        level="tested",
        subjects=[wi.fields["artifact"], wi.fields["baseline"]],
    )
    wi.fields["status"] = "FAILURE"
    step("confidence_level_modified", name="smoke")
    validate.validate_many(wi.events)
    clm = wi.events[-2]
    assert clm["data"] == {"name": "tested", "value": "SUCCESS", "issuer": {"name": "community-b"}}
    assert [x["type"] for x in clm["links"]] == ["SUBJECT", "SUBJECT", "CONTEXT"]
    assert [(c["name"], c["value"]) for c in wi.fields["confidence_levels"]] == [
        ("tested", "SUCCESS"),
        ("smoke", "FAILURE"),
    ]
    assert wi.result is False  # a FAILURE level
    assert wi.fields["artifact_identity"] == "pkg:generic/app@1.0"
    assert wi.fields["publication"] == wi.events[2]["meta"]["id"]
    with pytest.raises(ValueError, match=r"params.identity is required"):
        step("artifact_created")
    with pytest.raises(ValueError, match="value 'maybe' is not SUCCESS"):
        step("confidence_level_modified", name="x", value="maybe")


def test_notices_shape_what_the_listener_gets():
    wi = workitem(
        {"ev": {"id": "42", "newstate": "Declined", "who": "bob", "comment": "no"}},
        name="request_notice_42",
        wfid="notice-run",
    )
    RequestNotice().handle_wi(wi)
    assert wi.fields["review"] == {"state": "declined", "by": "bob", "comment": "no"}
    assert wi.fields["notice"]["name"] == "request_notice_42"
    assert wi.fields["notice"]["wfid"] == "notice-run"
    given = workitem(
        {"review": {"state": "accepted", "by": "x", "comment": ""}}, name="request_notice_7"
    )
    RequestNotice().handle_wi(given)
    assert given.fields["review"]["state"] == "accepted"
    built = workitem(
        {
            "ev": {
                "project": "Mer:Tools",
                "repository": "standard",
                "arch": "i586",
                "package": "bash",
            }
        },
        name="built_notice_Mer:Tools",
    )
    BuiltNotice().handle_wi(built)
    assert built.fields["built"] == {
        "project": "Mer:Tools",
        "repository": "standard",
        "arch": "i586",
        "package": "bash",
    }
    plain = workitem({}, name="promoted_notice_x")
    Notice().handle_wi(plain)
    assert plain.result is True and plain.fields["notice"]["name"] == "promoted_notice_x"
