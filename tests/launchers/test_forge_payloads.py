"""GitHub, GitLab and Gerrit against real deliveries (``shared/payloads``,
read in place through the ``payloads_dir`` fixture, never copied).

First the rules each forge's users expect, one test each (ref deletions
and Gerrit's internal refs launch nothing unless a rule opts in; one
identity model for a change, a fork's too; a merged change is a
SourceChangeSubmitted linked to its SourceChangeCreated; a comment on a
pull request names the change but not its commit), then the corpus: every
file of ``payloads/github``, ``payloads/gitlab`` and ``payloads/gerrit`` has
a row in :data:`CORPUS` stating the decision (launch with which label, a
delete or internal ref that only an opted-in rule launches, or ignore and
why) and the identity extracted; a file without a row fails."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bossapp.cli import main
from engine.config import Config
from engine.launchers.base import NormalisedEvent, RawEvent, change_eiffel_id
from engine.launchers.gerrit import GerritSource
from engine.launchers.github import GitHubSource
from engine.launchers.gitlab import GitLabSource
from engine.launchers.launcher import Launcher
from engine.launchers.rules import RuleError, Rules
from engine.launchers.settings import LauncherSettings
from engine.launchers.traceability import source_event
from engine.trace import eiffel
from engine.trace.aggregator import validator_for
from tests.launchers.conftest import FakePublisher, gerrit_lines, write_process

VALIDATOR = validator_for(Config())
ZERO = "0" * 40

# -- reading the corpus ------------------------------------------------------------------


def github_raw(path: Path, body: dict[str, Any] | None = None) -> RawEvent:
    """A GitHub corpus file as delivered: the event is the file name's prefix."""
    kind = path.name.split("__", 1)[0]
    data = path.read_bytes() if body is None else json.dumps(body).encode()
    return RawEvent(data, {"X-GitHub-Event": kind, "X-GitHub-Delivery": f"d-{path.name}"})


def gitlab_raw(path: Path, body: dict[str, Any] | None = None) -> RawEvent:
    """A GitLab corpus file: no header, the body's object_kind / event_name say what."""
    return RawEvent(path.read_bytes() if body is None else json.dumps(body).encode())


def gerrit_raws(path: Path) -> list[RawEvent]:
    """A Gerrit corpus file: one raw event per non-empty line."""
    return [RawEvent(line) for line in path.read_bytes().splitlines() if line.strip()]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def launcher_for(store: Path, rules: str | None = None) -> tuple[Launcher, FakePublisher]:
    fake = FakePublisher()
    loaded = Rules.from_data(yaml.safe_load(rules)) if rules else None
    launcher = Launcher(
        Config(process_dir=str(store)), LauncherSettings(), rules=loaded, publisher=fake, bus=fake
    )
    return launcher, fake


def validated(event: NormalisedEvent) -> dict[str, Any]:
    e = source_event(event)
    VALIDATOR.validate(e)
    return e


# -- 1. ref deletions: nothing launches unless a rule opts in ----------------------------

CATCH_ALL = """
- match: {source: [github, gitlab, gerrit]}
  process: ci/any
"""
OPT_IN = """
- match: {source: [github, gitlab, gerrit], deletes: true}
  process: ci/cleanup
  fields: {ref: "${payload.ref}", branch: "${branch}"}
"""


@pytest.fixture
def ci_store(store_dir: Path) -> Path:
    for name in ("any", "cleanup", "meta"):
        write_process(store_dir, "ci", f"{name}.yaml", name=name)
    return store_dir


def test_github_tag_delete_launches_nothing_by_default(payloads_dir, ci_store):
    """octokit's canonical push is a tag delete (after = 0000...): no
    GITHUB_TAG_PUSH process and no catch-all rule runs for it, and its
    Eiffel event is no SourceChangeSubmitted of commit 0000..."""
    write_process(ci_store, "Codertocat/Hello-World", "GITHUB_TAG_PUSH.build.yaml")
    write_process(ci_store, "Codertocat/Hello-World", "GITHUB_PUSH.build.yaml")
    launcher, _ = launcher_for(ci_store, CATCH_ALL)
    [event] = GitHubSource().normalise(github_raw(payloads_dir / "github/push__payload.json"))
    assert launcher.plan(event) == []
    assert event.commit is None and event.label == "GITHUB_REF_DELETED"
    assert validated(event)["meta"]["type"] == eiffel.ANNOUNCEMENT_PUBLISHED
    # the `delete` event GitHub sends beside that push is not a second deletion
    raw = github_raw(payloads_dir / "github/delete__payload.json")
    assert GitHubSource().normalise(raw) == []


def test_a_rule_opts_in_to_deletes(payloads_dir, ci_store):
    launcher, _ = launcher_for(ci_store, CATCH_ALL + OPT_IN)
    [event] = GitHubSource().normalise(github_raw(payloads_dir / "github/push__payload.json"))
    [plan] = launcher.plan(event)
    assert plan.process == "ci/cleanup"
    assert plan.fields["ref"] == "refs/tags/simple-tag" and plan.fields["branch"] is None
    assert plan.fields["ev"]["tag"] == "simple-tag" and plan.fields["ev"]["commit"] is None
    assert plan.fields["ev"]["deleted"] is True


def test_opt_ins_are_booleans():
    with pytest.raises(RuleError, match=r"match\.deletes is not true or false"):
        Rules.from_data([{"match": {"deletes": "yes"}, "process": "ci/any"}])
    rule = Rules.from_data([{"match": {"internal_refs": True}, "process": "ci/any"}]).rules[0]
    assert rule.opt_ins == {"internal_refs"}


def test_gitlab_branch_delete_launches_nothing_by_default(payloads_dir, ci_store):
    body = load(payloads_dir / "gitlab/gogitlab__push.json")
    body.update(after=ZERO, checkout_sha=None, commits=[], total_commits_count=0)
    write_process(ci_store, body["project"]["path_with_namespace"], "GITLAB_PUSH.build.yaml")
    launcher, _ = launcher_for(ci_store, CATCH_ALL)
    [event] = GitLabSource().normalise(gitlab_raw(Path("-"), body))
    assert (event.label, event.branch, event.commit) == ("GITLAB_REF_DELETED", "master", None)
    assert launcher.plan(event) == []
    launcher, _ = launcher_for(ci_store, OPT_IN)
    assert [p.process for p in launcher.plan(event)] == ["ci/cleanup"]


def gerrit_ref_updated(ref: str, new: str, project: str = "mer/boss-demo") -> RawEvent:
    line = {
        "submitter": {"name": "Bob", "username": "bob"},
        "refUpdate": {"oldRev": "b4a6f7ac" * 5, "newRev": new, "refName": ref, "project": project},
        "type": "ref-updated",
        "eventCreatedOn": 1763805761,
    }
    return RawEvent(json.dumps(line).encode())


def test_gerrit_ref_delete_launches_nothing_by_default(ci_store):
    write_process(ci_store, "mer/boss-demo", "GERRIT_REF_UPDATED.build.yaml")
    launcher, _ = launcher_for(ci_store, CATCH_ALL)
    [event] = GerritSource().normalise(gerrit_ref_updated("refs/heads/stable", ZERO))
    assert (event.label, event.branch, event.commit) == ("GERRIT_REF_DELETED", "stable", None)
    assert launcher.plan(event) == []
    assert validated(event)["meta"]["type"] == eiffel.ANNOUNCEMENT_PUBLISHED


# -- 2. Gerrit's internal refs are not merged code ---------------------------------------


@pytest.mark.parametrize(
    "ref", ["refs/changes/34/1234/meta", "refs/changes/34/1234/2", "refs/meta/config"]
)
def test_gerrit_internal_refs_launch_nothing_by_default(ci_store, ref):
    write_process(ci_store, "mer/boss-demo", "GERRIT_REF_UPDATED.build.yaml")
    launcher, _ = launcher_for(ci_store, CATCH_ALL)
    [event] = GerritSource().normalise(gerrit_ref_updated(ref, "e5f6a7b8" * 5))
    assert event.label == "GERRIT_INTERNAL_REF_UPDATED" and event.branch is None
    assert launcher.plan(event) == []
    assert validated(event)["meta"]["type"] == eiffel.ANNOUNCEMENT_PUBLISHED
    # a rule may ask for them
    launcher, _ = launcher_for(
        ci_store, "- match: {source: gerrit, internal_refs: true}\n  process: ci/meta\n"
    )
    [plan] = launcher.plan(event)
    assert plan.fields["ev"]["ref"] == ref


def test_gerrit_branch_and_tag_updates_still_launch(ci_store):
    write_process(ci_store, "mer/boss-demo", "GERRIT_REF_UPDATED.build.yaml")
    launcher, _ = launcher_for(ci_store)
    [branch] = GerritSource().normalise(gerrit_ref_updated("refs/heads/master", "e5f6a7b8" * 5))
    assert (branch.label, branch.branch, branch.commit) == (
        "GERRIT_REF_UPDATED",
        "master",
        "e5f6a7b8" * 5,
    )
    assert len(launcher.plan(branch)) == 1
    assert validated(branch)["meta"]["type"] == eiffel.SOURCE_CHANGE_SUBMITTED
    [tag] = GerritSource().normalise(gerrit_ref_updated("refs/tags/v1.0", "e5f6a7b8" * 5))
    assert (tag.label, tag.branch, tag.ev()["tag"]) == ("GERRIT_REF_UPDATED", None, "v1.0")


# -- 3. one identity model -----------------------------------------------------------------


def test_a_fork_pull_request_targets_the_base_repository(payloads_dir):
    body = load(payloads_dir / "github/pull_request__opened.payload.json")
    head = body["pull_request"]["head"]
    head["repo"] = copy.deepcopy(head["repo"]) | {
        "full_name": "contributor/Hello-World",
        "clone_url": "https://github.com/contributor/Hello-World.git",
    }
    head["label"] = "contributor:changes"
    raw = github_raw(payloads_dir / "github/pull_request__opened.payload.json", body)
    [event] = GitHubSource().normalise(raw)
    ev = event.ev()
    assert (ev["project"], ev["repository"], ev["branch"]) == (
        "Codertocat/Hello-World",
        "https://github.com/Codertocat/Hello-World.git",
        "master",
    )
    assert ev["fork"] == {
        "project": "contributor/Hello-World",
        "repository": "https://github.com/contributor/Hello-World.git",
        "branch": "changes",
    }
    assert ev["commit"] == ev["patchset"] == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert ev["change"] == "2"
    # the raw payload is still there
    assert event.payload["repository"]["full_name"] == "Codertocat/Hello-World"
    assert ev["raw"]["repository"]["full_name"] == "Codertocat/Hello-World"


def test_a_fork_merge_request_targets_the_base_project(payloads_dir):
    body = load(payloads_dir / "gitlab/gogitlab__merge_request.json")
    attrs = body["object_attributes"]
    attrs["source_project_id"] = 999
    attrs["source"] = dict(attrs["source"]) | {
        "path_with_namespace": "contributor/awesome_project",
        "git_http_url": "https://gitlab.example.com/contributor/awesome_project.git",
    }
    [event] = GitLabSource().normalise(gitlab_raw(Path("-"), body))
    ev = event.ev()
    assert ev["project"] == "awesome_space/awesome_project"
    assert ev["repository"] == attrs["target"]["git_http_url"]
    assert ev["branch"] == attrs["target_branch"]
    assert ev["fork"] == {
        "project": "contributor/awesome_project",
        "repository": "https://gitlab.example.com/contributor/awesome_project.git",
        "branch": attrs["source_branch"],
    }
    assert ev["commit"] == ev["patchset"] == attrs["last_commit"]["id"]
    assert ev["change"] == str(attrs["iid"])


def test_gitlab_and_gerrit_identity_keys_have_one_type(payloads_dir):
    """``ev.project``, ``ev.change``, ``ev.author`` are strings whatever the
    payload's version makes of them (an object in some, a string in others);
    the payload's own objects stay in ``ev.raw`` and ``event.payload``."""
    events = [
        *GitLabSource().normalise(gitlab_raw(payloads_dir / "gitlab/gogitlab__push.json")),
        *GitLabSource().normalise(gitlab_raw(payloads_dir / "gitlab/gogitlab__merge_request.json")),
    ]
    for raw in gerrit_raws(payloads_dir / "gerrit/with_banner.jsonl"):
        events.extend(GerritSource().normalise(raw))
    for raw in gerrit_raws(payloads_dir / "gerrit/recheck_comment.jsonl"):
        events.extend(GerritSource().normalise(raw))
    assert len(events) == 6
    for event in events:
        ev = event.ev()
        for key in ("project", "repository", "branch", "commit", "change", "patchset", "author"):
            assert ev[key] is None or isinstance(ev[key], str), (event.label, key, ev[key])
        assert ev["fork"] is None
    merged = events[3]  # its payload's project is {"name": "snix"}
    assert merged.payload["project"] == {"name": "snix"}
    assert merged.ev()["project"] == "snix" and merged.ev()["raw"]["project"] == {"name": "snix"}
    comment = events[5]
    assert (comment.ev()["change"], comment.ev()["patchset"], comment.ev()["author"]) == (
        "3033",
        "1",
        "some.author",
    )


# -- 4. a merged change: SourceChangeSubmitted linked to its SourceChangeCreated ----------


def test_a_merged_pull_request_is_submitted_with_a_change_link(payloads_dir):
    opened_raw = github_raw(payloads_dir / "github/pull_request__opened.payload.json")
    [opened] = GitHubSource().normalise(opened_raw)
    body = load(payloads_dir / "github/pull_request__closed.payload.json")
    body["pull_request"].update(merged=True, merge_commit_sha="d" * 40)
    raw = github_raw(payloads_dir / "github/pull_request__closed.payload.json", body)
    [merged] = GitHubSource().normalise(raw)
    created, submitted = validated(opened), validated(merged)
    assert created["meta"]["type"] == eiffel.SOURCE_CHANGE_CREATED
    assert submitted["meta"]["type"] == eiffel.SOURCE_CHANGE_SUBMITTED
    assert submitted["links"] == [{"type": "CHANGE", "target": created["meta"]["id"]}]
    assert created["meta"]["id"] == change_eiffel_id(
        "github", "Codertocat/Hello-World", "2", opened.patchset
    )
    assert submitted["data"]["gitIdentifier"]["commitId"] == "d" * 40
    assert merged.merged and merged.ev()["patchset"] == opened.ev()["patchset"]


def test_a_merged_merge_request_is_submitted_with_a_change_link(payloads_dir):
    [merged] = GitLabSource().normalise(
        gitlab_raw(payloads_dir / "gitlab/gogitlab__group_merge_request.json")
    )
    assert merged.merged and merged.label == "GITLAB_MERGE_REQUEST"
    e = validated(merged)
    assert e["meta"]["type"] == eiffel.SOURCE_CHANGE_SUBMITTED
    assert e["links"] == [
        {
            "type": "CHANGE",
            "target": change_eiffel_id("gitlab", merged.project, merged.change, merged.patchset),
        }
    ]


def test_a_merged_gerrit_change_links_its_patch_set():
    created, _, merged, _ = (GerritSource().normalise(raw)[0] for raw in gerrit_lines())
    scc, scs = validated(created), validated(merged)
    assert scs["meta"]["type"] == eiffel.SOURCE_CHANGE_SUBMITTED
    assert scs["links"] == [{"type": "CHANGE", "target": scc["meta"]["id"]}]
    assert merged.commit == "e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4"  # what landed
    assert (merged.patchset, created.patchset) == ("2", "2")


# -- 5. a comment on a pull request ------------------------------------------------------


def test_a_pull_request_comment_names_the_change_not_its_commit(payloads_dir):
    path = payloads_dir / "github/issue_comment__created.payload.json"
    body = load(path)
    number = body["issue"]["number"]
    body["issue"]["pull_request"] = {
        "url": f"https://api.github.com/repos/Codertocat/Hello-World/pulls/{number}"
    }
    body["comment"]["body"] = "recheck"
    [event] = GitHubSource().normalise(github_raw(path, body))
    ev = event.ev()
    assert (event.label, ev["change"], ev["commit"]) == ("GITHUB_ISSUE_COMMENT", str(number), None)
    assert ev["unknown"] == ["branch", "commit", "patchset", "fork"]
    assert ev["project"] == "Codertocat/Hello-World"
    # a comment on an issue (not a pull request) launches nothing
    assert GitHubSource().normalise(github_raw(path)) == []


# -- 6. the corpus: one row per file, the decision and the identity ----------------------

EC26 = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
HELLO = {
    "project": "Codertocat/Hello-World",
    "repository": "https://github.com/Codertocat/Hello-World.git",
}
HELLO_PR2 = HELLO | {"branch": "master", "commit": EC26, "change": "2", "patchset": EC26}
PING = "a ping"
DELETE_EVENT = "the push with deleted: true"
ON_ISSUE = "a comment on an issue, not on a pull request"
BANNER = "a banner or warning line"

IDENTITY = ("project", "repository", "branch", "commit", "change", "patchset", "fork")


def launch(label: str, *, unknown: tuple[str, ...] = (), **identity: Any) -> dict[str, Any]:
    """Launches ``label`` (a store file or any matching rule); ``identity``:
    the keys that are not null (the others are)."""
    return {"decision": "launch", "label": label, "identity": identity, "unknown": unknown}


def merged(label: str, **identity: Any) -> dict[str, Any]:
    """Launches ``label``: a merged change (a SourceChangeSubmitted with a CHANGE link)."""
    return launch(label, **identity) | {"decision": "merged"}


def opt_in(label: str, kind: str, **identity: Any) -> dict[str, Any]:
    """Launched only by a rule with ``<kind>: true`` (or a store file of ``label``)."""
    return launch(label, **identity) | {"decision": "opt-in", "opt_in": kind}


def ignore(why: str) -> dict[str, Any]:
    """Nothing launches; ``why``: a part of the reason ``explain`` gives."""
    return {"decision": "ignore", "why": why}


#: every file of payloads/github, gitlab, gerrit: per event (a Gerrit file:
#: per line), what the launcher decides and the identity it extracts
CORPUS: dict[str, list[dict[str, Any]]] = {
    "github/check_run__completed.1.payload.json": [
        launch("GITHUB_CHECK_RUN", **HELLO, commit=EC26)
    ],
    "github/check_run__completed.payload.json": [launch("GITHUB_CHECK_RUN", **HELLO, commit=EC26)],
    "github/check_run__completed.with-organization.payload.json": [
        launch("GITHUB_CHECK_RUN", **HELLO, commit=EC26)
    ],
    "github/check_run__created.payload.json": [launch("GITHUB_CHECK_RUN", **HELLO, commit=EC26)],
    "github/check_run__created.with-organization.payload.json": [
        launch("GITHUB_CHECK_RUN", **HELLO, commit=EC26)
    ],
    "github/check_run__requested_action.payload.json": [
        launch(
            "GITHUB_CHECK_RUN",
            project="electron/electron",
            repository="https://github.com/electron/electron.git",
            commit="5bd5f196a46b8222fb7484f05faba41a73cf34bd",
        )
    ],
    "github/check_run__rerequested.payload.json": [
        launch(
            "GITHUB_CHECK_RUN",
            project="github/hello-world",
            repository="http://github.com/github/hello-world.git",
            commit="d6fde92930d4715a2b49857d24b940956b26d2d3",
        )
    ],
    "github/check_run__rerequested.with-organization.payload.json": [
        launch(
            "GITHUB_CHECK_RUN",
            project="github/hello-world",
            repository="http://github.com/github/hello-world.git",
            commit="d6fde92930d4715a2b49857d24b940956b26d2d3",
        )
    ],
    "github/check_suite__completed.1.payload.json": [
        launch("GITHUB_CHECK_SUITE", **HELLO, commit=EC26)
    ],
    "github/check_suite__completed.payload.json": [
        launch("GITHUB_CHECK_SUITE", **HELLO, commit=EC26)
    ],
    "github/check_suite__completed.with-organization.payload.json": [
        launch("GITHUB_CHECK_SUITE", **HELLO, commit=EC26)
    ],
    "github/check_suite__requested.payload.json": [
        launch("GITHUB_CHECK_SUITE", **HELLO, commit="f95f852bd8fca8fcc58a9a2d6c842781e32a215e")
    ],
    "github/check_suite__requested.payload.with-email-with-special-characters.json": [
        launch("GITHUB_CHECK_SUITE", **HELLO, commit="f95f852bd8fca8fcc58a9a2d6c842781e32a215e")
    ],
    "github/check_suite__requested.with-organization.payload.json": [
        launch("GITHUB_CHECK_SUITE", **HELLO, commit="f95f852bd8fca8fcc58a9a2d6c842781e32a215e")
    ],
    "github/check_suite__rerequested.payload.json": [
        launch("GITHUB_CHECK_SUITE", **HELLO, commit=EC26)
    ],
    "github/check_suite__rerequested.with-organization.payload.json": [
        launch("GITHUB_CHECK_SUITE", **HELLO, commit=EC26)
    ],
    "github/create__payload.json": [launch("GITHUB_CREATE", **HELLO)],
    "github/create__with-description.payload.json": [launch("GITHUB_CREATE", **HELLO)],
    "github/create__with-installation.payload.json": [launch("GITHUB_CREATE", **HELLO)],
    "github/create__with-organization.payload.json": [launch("GITHUB_CREATE", **HELLO)],
    "github/delete__payload.json": [ignore(DELETE_EVENT)],
    "github/delete__with-installation.payload.json": [ignore(DELETE_EVENT)],
    "github/delete__with-organization.payload.json": [ignore(DELETE_EVENT)],
    "github/issue_comment__created.1.payload.json": [ignore(ON_ISSUE)],
    "github/issue_comment__created.payload.json": [ignore(ON_ISSUE)],
    "github/issue_comment__created.with-installation.payload.json": [ignore(ON_ISSUE)],
    "github/issue_comment__created.with-organization.payload.json": [ignore(ON_ISSUE)],
    "github/issue_comment__deleted.payload.json": [ignore(ON_ISSUE)],
    "github/issue_comment__deleted.with-organization.payload.json": [ignore(ON_ISSUE)],
    "github/issue_comment__edited.payload.json": [ignore(ON_ISSUE)],
    "github/issue_comment__edited.with-organization.payload.json": [ignore(ON_ISSUE)],
    "github/ping__payload.json": [ignore(PING)],
    "github/ping__with-app_id.payload.json": [ignore(PING)],
    "github/ping__with-organization.payload.json": [ignore(PING)],
    "github/pull_request__assigned.payload.json": [launch("GITHUB_PULL_REQUEST", **HELLO_PR2)],
    "github/pull_request__assigned.with-organization.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__closed.payload.json": [launch("GITHUB_PULL_REQUEST", **HELLO_PR2)],
    "github/pull_request__closed.with-organization.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__converted_to_draft.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__converted_to_draft.with-installation.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__converted_to_draft.with-organization.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__labeled.payload.json": [launch("GITHUB_PULL_REQUEST", **HELLO_PR2)],
    "github/pull_request__labeled.with-organization.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__locked.payload.json": [launch("GITHUB_PULL_REQUEST", **HELLO_PR2)],
    "github/pull_request__locked.with-organization.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__opened.payload.json": [launch("GITHUB_PULL_REQUEST", **HELLO_PR2)],
    "github/pull_request__opened.with-null-body.json": [launch("GITHUB_PULL_REQUEST", **HELLO_PR2)],
    "github/pull_request__opened.with-organization.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__ready_for_review.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__ready_for_review.with-installation.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__ready_for_review.with-organization.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__reopened.payload.json": [launch("GITHUB_PULL_REQUEST", **HELLO_PR2)],
    "github/pull_request__reopened.with-organization.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__review_request_removed.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__review_requested.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__synchronize.payload.json": [launch("GITHUB_PULL_REQUEST", **HELLO_PR2)],
    "github/pull_request__unassigned.payload.json": [launch("GITHUB_PULL_REQUEST", **HELLO_PR2)],
    "github/pull_request__unassigned.with-organization.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__unlabeled.payload.json": [launch("GITHUB_PULL_REQUEST", **HELLO_PR2)],
    "github/pull_request__unlabeled.with-organization.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request__unlocked.payload.json": [launch("GITHUB_PULL_REQUEST", **HELLO_PR2)],
    "github/pull_request__unlocked.with-organization.payload.json": [
        launch("GITHUB_PULL_REQUEST", **HELLO_PR2)
    ],
    "github/pull_request_review__dismissed.payload.json": [
        launch("GITHUB_PULL_REQUEST_REVIEW", **HELLO_PR2)
    ],
    "github/pull_request_review__submitted.payload.json": [
        launch("GITHUB_PULL_REQUEST_REVIEW", **HELLO_PR2)
    ],
    "github/pull_request_review__submitted.with-organization.payload.json": [
        launch("GITHUB_PULL_REQUEST_REVIEW", **HELLO_PR2)
    ],
    "github/push__1.payload.json": [opt_in("GITHUB_REF_DELETED", "deletes", **HELLO)],
    "github/push__payload.json": [opt_in("GITHUB_REF_DELETED", "deletes", **HELLO)],
    "github/push__with-installation.payload.json": [
        opt_in("GITHUB_REF_DELETED", "deletes", **HELLO)
    ],
    "github/push__with-new-branch.payload.json": [
        launch(
            "GITHUB_PUSH",
            **HELLO,
            branch="master",
            commit="6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        )
    ],
    "github/push__with-no-username-committer.payload.json": [
        launch(
            "GITHUB_PUSH",
            **HELLO,
            branch="master",
            commit="6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        )
    ],
    "github/push__with-organization.payload.json": [
        opt_in("GITHUB_REF_DELETED", "deletes", **HELLO)
    ],
    "github/release__created.payload.json": [launch("GITHUB_RELEASE", **HELLO)],
    "github/release__created.with-discussion-url.payload.json": [launch("GITHUB_RELEASE", **HELLO)],
    "github/release__created.with-installation.payload.json": [launch("GITHUB_RELEASE", **HELLO)],
    "github/release__deleted.payload.json": [launch("GITHUB_RELEASE", **HELLO)],
    "github/release__deleted.with-reactions.payload.json": [launch("GITHUB_RELEASE", **HELLO)],
    "github/release__edited.payload.json": [launch("GITHUB_RELEASE", **HELLO)],
    "github/release__edited.with-reactions.payload.json": [launch("GITHUB_RELEASE", **HELLO)],
    "github/release__prereleased.payload.json": [launch("GITHUB_RELEASE", **HELLO)],
    "github/release__prereleased.with-discussion-url.payload.json": [
        launch("GITHUB_RELEASE", **HELLO)
    ],
    "github/release__published.payload.json": [launch("GITHUB_RELEASE", **HELLO)],
    "github/release__published.with-discussion-url.payload.json": [
        launch("GITHUB_RELEASE", **HELLO)
    ],
    "github/release__released.json": [launch("GITHUB_RELEASE", **HELLO)],
    "gitlab/gogitlab__build.json": [
        launch(
            "GITLAB_JOB",
            repository="http://192.168.64.1:3005/gitlab-org/gitlab-test.git",
            branch="gitlab-script-trigger",
            commit="2293ada6b400935a1378653304eaf6221e0fdb8f",
        )
    ],
    "gitlab/gogitlab__deployment.json": [
        launch(
            "GITLAB_DEPLOYMENT",
            project="root/test-deployment-webhooks",
            repository="http://10.126.0.2:3000/root/test-deployment-webhooks.git",
        )
    ],
    "gitlab/gogitlab__feature_flag.json": [
        launch(
            "GITLAB_FEATURE_FLAG",
            project="gitlabhq/gitlab-test",
            repository="http://example.com/gitlabhq/gitlab-test.git",
        )
    ],
    "gitlab/gogitlab__group_merge_request.json": [
        merged(
            "GITLAB_MERGE_REQUEST",
            project="exm-namespace/example-project",
            repository="http://example.com/exm-namespace/example-project.git",
            branch="master",
            commit="ac3ca1559bc39abf963586372eff7f8fdded646e",
            change="1402",
            patchset="61b6a0d35dbaf915760233b637622e383d3cc9ec",
        )
    ],
    "gitlab/gogitlab__issue.json": [
        launch(
            "GITLAB_ISSUE",
            project="gitlabhq/gitlab-test",
            repository="http://example.com/gitlabhq/gitlab-test.git",
        )
    ],
    "gitlab/gogitlab__job.json": [
        launch(
            "GITLAB_JOB",
            repository="https://gitlab.com/jsmithy2/release-tools-fake.git",
            branch="main",
            commit="95d49d1efbd941908580e79d65e4b5ecaf4a8305",
        )
    ],
    "gitlab/gogitlab__member.json": [launch("GITLAB_MEMBER")],
    "gitlab/gogitlab__merge_request.json": [
        launch(
            "GITLAB_MERGE_REQUEST",
            project="awesome_space/awesome_project",
            repository="http://example.com/awesome_space/awesome_project.git",
            branch="master",
            commit="da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            change="1",
            patchset="da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        )
    ],
    "gitlab/gogitlab__note_commit.json": [ignore("a note on a commit")],
    "gitlab/gogitlab__note_issue.json": [ignore("a note on an issue")],
    "gitlab/gogitlab__note_merge_request.json": [
        launch(
            "GITLAB_NOTE",
            project="gitlab-org/gitlab-test",
            repository="http://example.com/gitlab-org/gitlab-test.git",
            branch="markdown",
            commit="562e173be03b8ff2efb05345d12df18815438a4b",
            change="1",
            patchset="562e173be03b8ff2efb05345d12df18815438a4b",
        )
    ],
    "gitlab/gogitlab__note_snippet.json": [ignore("a note on a snippet")],
    "gitlab/gogitlab__pipeline.json": [
        launch(
            "GITLAB_PIPELINE",
            project="gitlab-org/gitlab-test",
            repository="http://192.168.64.1:3005/gitlab-org/gitlab-test.git",
            branch="master",
            commit="bcbb5ec396a2c0f828686f14fac9b80b780504f2",
        )
    ],
    "gitlab/gogitlab__push.json": [
        launch(
            "GITLAB_PUSH",
            project="mike/diaspora",
            repository="http://example.com/mike/diaspora.git",
            branch="master",
            commit="da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        )
    ],
    "gitlab/gogitlab__release.json": [
        launch(
            "GITLAB_RELEASE",
            project="exm-namespace/example-project",
            repository="http://example.com/exm-namespace/example-project.git",
        )
    ],
    "gitlab/gogitlab__resource_access_token_group.json": [launch("GITLAB_RESOURCE_ACCESS_TOKEN")],
    "gitlab/gogitlab__resource_access_token_project.json": [
        launch(
            "GITLAB_RESOURCE_ACCESS_TOKEN",
            project="flightjs/Flight",
            repository="https://example.com/flightjs/Flight.git",
        )
    ],
    "gitlab/gogitlab__service_merge_request.json": [
        launch(
            "GITLAB_MERGE_REQUEST",
            project="test/woodpecker",
            repository="http://10.40.8.5:3200/test/woodpecker.git",
            branch="master",
            commit="0ab96a10266b95b4b533dcfd98738015fbe70889",
            change="2",
            patchset="0ab96a10266b95b4b533dcfd98738015fbe70889",
        )
    ],
    "gitlab/gogitlab__subgroup.json": [launch("GITLAB_SUBGROUP")],
    "gitlab/gogitlab__tag_push.json": [
        launch(
            "GITLAB_TAG_PUSH",
            project="jsmith/example",
            repository="http://example.com/jsmith/example.git",
            commit="82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
        )
    ],
    "gitlab/gogitlab__wiki_page.json": [
        launch(
            "GITLAB_WIKI_PAGE",
            project="root/awesome-project",
            repository="http://example.com/root/awesome-project.git",
        )
    ],
    "gerrit/banner.txt": [ignore(BANNER)],
    "gerrit/gogerrit_events.jsonl": [
        merged(
            "GERRIT_CHANGE_MERGED",
            project="test",
            branch="master",
            change="1",
            patchset="1",
            unknown=["commit"],
        ),
        launch(
            "GERRIT_COMMENT_ADDED",
            project="test",
            branch="master",
            change="1",
            patchset="1",
            unknown=["commit"],
        ),
    ],
    "gerrit/line_gogerrit_events_1.json": [
        merged(
            "GERRIT_CHANGE_MERGED",
            project="test",
            branch="master",
            change="1",
            patchset="1",
            unknown=["commit"],
        )
    ],
    "gerrit/line_gogerrit_events_2.json": [
        launch(
            "GERRIT_COMMENT_ADDED",
            project="test",
            branch="master",
            change="1",
            patchset="1",
            unknown=["commit"],
        )
    ],
    "gerrit/line_recheck_comment_1.json": [
        launch(
            "GERRIT_COMMENT_ADDED",
            project="openstack/nova",
            branch="master",
            commit="9108f306de1364fa9f6f510b189b3de1c2a31365",
            change="3033",
            patchset="1",
        )
    ],
    "gerrit/recheck_comment.jsonl": [
        launch(
            "GERRIT_COMMENT_ADDED",
            project="openstack/nova",
            branch="master",
            commit="9108f306de1364fa9f6f510b189b3de1c2a31365",
            change="3033",
            patchset="1",
        )
    ],
    "gerrit/with_banner.jsonl": [
        ignore(BANNER),
        launch(
            "GERRIT_PATCHSET_CREATED",
            project="snix",
            branch="canon",
            commit="e135bd7a83994d008b587e166186a95e200dd4b7",
            change="30623",
            patchset="1",
        ),
        merged(
            "GERRIT_CHANGE_MERGED",
            project="snix",
            branch="canon",
            commit="be68d899017ff0d79aa7bc9167381dba131342e0",
            change="30605",
            patchset="2",
        ),
        launch(
            "GERRIT_WIP_STATE_CHANGED",
            project="snix",
            branch="canon",
            commit="944b6f97be4cad910f7a831a9a24e5d3da06d77b",
            change="30628",
            patchset="5",
        ),
    ],
}

SOURCES = {"github": GitHubSource, "gitlab": GitLabSource, "gerrit": GerritSource}


def corpus_raws(path: Path) -> list[RawEvent]:
    forge = path.parent.name
    if forge == "github":
        return [github_raw(path)]
    if forge == "gitlab":
        return [gitlab_raw(path)]
    return gerrit_raws(path)


def test_every_corpus_file_has_a_row(payloads_dir):
    files = {
        f"{forge}/{p.name}"
        for forge in SOURCES
        for p in (payloads_dir / forge).iterdir()
        if p.is_file() and not p.name.startswith(".")
    }
    assert sorted(files - set(CORPUS)) == [], "corpus files without a row in CORPUS"
    assert sorted(set(CORPUS) - files) == [], "rows of CORPUS without a corpus file"


def _catch_all_launcher(store: Path) -> Launcher:
    write_process(store, "ci", "any.yaml", name="any")
    return launcher_for(store, CATCH_ALL)[0]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus(payloads_dir, store_dir, name):
    path = payloads_dir / name
    if not path.is_file():
        pytest.skip(f"{name}: not in this corpus")
    source = SOURCES[path.parent.name]()
    launcher = _catch_all_launcher(store_dir)
    raws = corpus_raws(path)
    assert len(raws) == len(CORPUS[name]), "one row entry per event (Gerrit: per line)"
    for raw, want in zip(raws, CORPUS[name], strict=True):
        events, why = source.explain(raw)
        assert events == source.normalise(raw)
        assert source.ignored(raw) == why
        if want["decision"] == "ignore":
            assert events == [] and why is not None and want["why"] in why, why
            continue
        [event] = events
        assert why is None
        assert event.label == want["label"]
        assert event.opt_in == want.get("opt_in")
        assert event.merged is (want["decision"] == "merged")
        assert event.unknown == tuple(want["unknown"])
        ev = event.ev()
        got = {k: ev[k] for k in IDENTITY}
        assert got == {k: want["identity"].get(k) for k in IDENTITY}
        for key in ("project", "repository", "branch", "commit", "change", "patchset", "author"):
            assert ev[key] is None or isinstance(ev[key], str), (key, ev[key])
        assert ev["commit"] is None or (len(ev["commit"]) == 40 and ev["commit"] != ZERO)
        # a catch-all rule launches the event, unless it needs an opt-in
        plans = launcher.plan(event)
        assert len(plans) == (0 if want["decision"] == "opt-in" else 1)
        e = validated(event)
        if want["decision"] == "merged":
            assert e["meta"]["type"] == eiffel.SOURCE_CHANGE_SUBMITTED
            assert [link["type"] for link in e["links"]] == ["CHANGE"]


def test_corpus_size():
    """What the table covers: 111 files, 115 events (Gerrit files hold
    several lines)."""
    entries = [row for rows in CORPUS.values() for row in rows]
    decisions = {
        d: sum(1 for r in entries if r["decision"] == d)
        for d in ("launch", "merged", "opt-in", "ignore")
    }
    assert len(CORPUS) == 111
    assert decisions == {"launch": 88, "merged": 4, "opt-in": 4, "ignore": 19}


# -- boss launcher test, as a user runs it -------------------------------------------------


def _dry_run(tmp_path: Path, path: Path, *args: str) -> Any:
    ini = tmp_path / "boss.ini"
    ini.write_text(f"[boss]\nprocess_dir = {tmp_path / 'store'}\n")
    return CliRunner().invoke(
        main, ["-c", str(ini), "launcher", "test", str(path), *args], catch_exceptions=False
    )


def test_cli_dry_run_on_corpus_files(payloads_dir, tmp_path):
    store = tmp_path / "store"
    write_process(store, "ci", "any.yaml", name="any")
    write_process(store, "ci", "cleanup.yaml", name="cleanup")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        CATCH_ALL + "- match: {label: '*_REF_DELETED', deletes: true}\n  process: ci/cleanup\n"
    )
    gh = payloads_dir / "github"
    # a pull request: launched by the catch-all rule, the identity in ev
    r = _dry_run(
        tmp_path,
        gh / "pull_request__opened.payload.json",
        "--source",
        "github",
        "-H",
        "X-GitHub-Event=pull_request",
        "-H",
        "X-GitHub-Delivery=d1",
        "--rules",
        str(rules),
        "--json",
    )
    assert r.exit_code == 0, r.output
    [result] = json.loads(r.output)
    assert result["eiffel"] == eiffel.SOURCE_CHANGE_CREATED
    [plan] = result["launches"]
    assert plan["process"] == "ci/any"
    assert {k: plan["fields"]["ev"][k] for k in ("change", "patchset", "fork")} == {
        "change": "2",
        "patchset": EC26,
        "fork": None,
    }
    # the canonical push, a tag delete: only the opted-in rule launches
    r = _dry_run(
        tmp_path,
        gh / "push__payload.json",
        "--source",
        "github",
        "-H",
        "X-GitHub-Event=push",
        "--rules",
        str(rules),
        "--json",
    )
    assert r.exit_code == 0, r.output
    [result] = json.loads(r.output)
    assert result["event"]["label"] == "GITHUB_REF_DELETED"
    assert [p["process"] for p in result["launches"]] == ["ci/cleanup"]
    # a ping: no event
    r = _dry_run(
        tmp_path, gh / "ping__payload.json", "--source", "github", "-H", "X-GitHub-Event=ping"
    )
    assert r.exit_code == 0 and "no event (nothing to launch)" in r.output
    # a GitLab merge request without its header: object_kind says what it is
    r = _dry_run(
        tmp_path, payloads_dir / "gitlab/gogitlab__merge_request.json", "--source", "gitlab"
    )
    assert r.exit_code == 0, r.output
    assert "GITLAB_MERGE_REQUEST" in r.output and "nothing to launch" in r.output
    # a Gerrit recording: its first line
    r = _dry_run(tmp_path, payloads_dir / "gerrit/recheck_comment.jsonl", "--source", "gerrit")
    assert r.exit_code == 0 and "GERRIT_COMMENT_ADDED" in r.output
