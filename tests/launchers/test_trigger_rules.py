"""Zuul-grade triggers in the rules file, on what the delivery carries
(issue 14): ``event``/``action``, ``ref``, ``files``, ``labels`` and
``added_labels``, ``comment``, ``approvals`` and ``review``, ``draft``,
``authors`` and ``trusted``; the facts the forges extract for them into
``ev.trigger``; and the rules files that are refused.

Every case runs on the recorded deliveries of ``shared/payloads`` (read in
place through ``payloads_dir``); where the corpus lacks a case, a recorded
body is changed in memory (never written back)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.config import Config
from engine.launchers.base import TRIGGER_KEYS, NormalisedEvent, RawEvent, Trigger
from engine.launchers.gerrit import GerritSource
from engine.launchers.github import GitHubSource
from engine.launchers.gitlab import GitLabSource
from engine.launchers.launcher import Launcher
from engine.launchers.rules import RuleError, Rules, Trust, extract
from engine.launchers.settings import LauncherSettings
from tests.launchers.conftest import FakePublisher, write_process

ROOT = Path(__file__).resolve().parents[2]

# -- the corpus, as delivered ---------------------------------------------------------------


def load(payloads: Path, name: str) -> dict[str, Any]:
    return json.loads((payloads / name).read_text())


def github(payloads: Path, name: str, body: dict[str, Any] | None = None) -> NormalisedEvent:
    """The event of a GitHub corpus file (the file name's prefix is the event)."""
    data = (payloads / "github" / name).read_bytes() if body is None else json.dumps(body).encode()
    kind = name.split("__", 1)[0]
    [event] = GitHubSource().normalise(
        RawEvent(data, {"X-GitHub-Event": kind, "X-GitHub-Delivery": f"d-{name}"})
    )
    return event


def gitlab(payloads: Path, name: str, body: dict[str, Any] | None = None) -> NormalisedEvent:
    data = (payloads / "gitlab" / name).read_bytes() if body is None else json.dumps(body).encode()
    [event] = GitLabSource().normalise(RawEvent(data))
    return event


def gerrit_line(payloads: Path, name: str, index: int = 0) -> dict[str, Any]:
    """The ``index``-th JSON line of a Gerrit corpus file."""
    lines = [
        line
        for line in (payloads / "gerrit" / name).read_text().splitlines()
        if line.strip().startswith("{")
    ]
    return json.loads(lines[index])


def gerrit(body: dict[str, Any]) -> NormalisedEvent:
    [event] = GerritSource().normalise(RawEvent(json.dumps(body).encode()))
    return event


def rule(match: dict[str, Any], trusted: dict[str, Any] | None = None, **more: Any):
    """One rule of a rules file (with a ``trusted:`` section when given)."""
    item = {"match": match, "process": "ci/build", **more}
    data: Any = {"rules": [item], "trusted": trusted} if trusted is not None else [item]
    return Rules.from_data(data).rules[0]


def matches(match: dict[str, Any], event: NormalisedEvent, **kw: Any) -> bool:
    return rule(match, **kw).matches(event, None)


def pr_comment(payloads: Path, text: str, **comment: Any) -> NormalisedEvent:
    """octokit's issue comment made a comment on a pull request saying ``text``."""
    body = load(payloads, "github/issue_comment__created.payload.json")
    number = body["issue"]["number"]
    body["issue"]["pull_request"] = {
        "url": f"https://api.github.com/repos/Codertocat/Hello-World/pulls/{number}"
    }
    body["comment"].update(body=text, **comment)
    return github(payloads, "issue_comment__created.payload.json", body)


def fork_pr(payloads: Path, association: str = "CONTRIBUTOR", labels: tuple[str, ...] = ()):
    """octokit's opened pull request, from a fork by an outside contributor."""
    body = load(payloads, "github/pull_request__opened.payload.json")
    pr = body["pull_request"]
    pr["head"]["repo"] = copy.deepcopy(pr["head"]["repo"]) | {
        "full_name": "outsider/Hello-World",
        "clone_url": "https://github.com/outsider/Hello-World.git",
    }
    pr["user"] = dict(pr["user"], login="outsider")
    pr["author_association"] = association
    pr["labels"] = [{"name": name} for name in labels]
    return github(payloads, "pull_request__opened.payload.json", body)


# -- 1. one set of facts, every forge ------------------------------------------------------


def test_every_forge_event_carries_the_trigger_facts(payloads_dir):
    """Every event of the GitHub, GitLab and Gerrit corpus has ``ev.trigger``
    with every key, and the existing keys of ``ev`` are still there."""
    sources = {"github": GitHubSource(), "gitlab": GitLabSource(), "gerrit": GerritSource()}
    seen = 0
    for forge, source in sources.items():
        for path in sorted((payloads_dir / forge).iterdir()):
            if forge == "github":
                raws = [RawEvent(path.read_bytes(), {"X-GitHub-Event": path.name.split("__")[0]})]
            elif forge == "gitlab":
                raws = [RawEvent(path.read_bytes())]
            else:
                raws = [RawEvent(x) for x in path.read_bytes().splitlines() if x.strip()]
            for raw in raws:
                for event in source.normalise(raw):
                    seen += 1
                    trigger = event.ev()["trigger"]
                    assert set(trigger) == {*TRIGGER_KEYS, "unknown"}, path.name
                    assert trigger["event"], path.name
                    assert trigger["unknown"] == ([] if trigger["files"] is not None else ["files"])
                    assert event.ev()["project"] == event.project
    assert seen == 96


def test_the_trigger_facts_of_each_forge(payloads_dir):
    labeled = github(payloads_dir, "pull_request__labeled.payload.json").trigger
    assert labeled == Trigger(
        event="pull_request",
        action="labeled",
        ref="refs/pull/2/head",
        labels=("bug",),
        added_labels=("bug",),
        draft=False,
        association="OWNER",
        from_repository=True,
    )
    mr = gitlab(payloads_dir, "gogitlab__merge_request.json").trigger
    assert (mr.event, mr.action, mr.ref, mr.labels, mr.added_labels, mr.draft) == (
        "merge_request",
        "open",
        "refs/merge-requests/1/head",
        ("API",),
        ("Platform",),
        False,
    )
    comment = gerrit(gerrit_line(payloads_dir, "recheck_comment.jsonl")).trigger
    assert (comment.event, comment.action, comment.comment, comment.approvals) == (
        "comment-added",
        None,
        "recheck",  # without Gerrit's "Patch Set 1:" header
        {"Code-Review": 0},
    )
    assert comment.ref == "refs/changes/33/3033/1" and comment.from_repository is False
    # the payload's own keys are untouched
    event = gerrit(gerrit_line(payloads_dir, "recheck_comment.jsonl"))
    assert event.ev()["comment"] == "Patch Set 1:\n\nrecheck"


# -- 2. event and action -------------------------------------------------------------------

PR_ACTIONS = {
    "source": "github",
    "event": "pull_request",
    "action": ["opened", "synchronize", "reopened", "labeled"],
}


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("pull_request__opened.payload.json", True),
        ("pull_request__synchronize.payload.json", True),
        ("pull_request__reopened.payload.json", True),
        ("pull_request__labeled.payload.json", True),
        ("pull_request__closed.payload.json", False),
        ("pull_request__assigned.payload.json", False),
        ("pull_request_review__submitted.payload.json", False),  # another event
    ],
)
def test_github_event_and_action(payloads_dir, name, want):
    assert matches(PR_ACTIONS, github(payloads_dir, name)) is want


def test_gitlab_merge_request_action_and_gerrit_event_type(payloads_dir):
    opened = gitlab(payloads_dir, "gogitlab__merge_request.json")
    updated = gitlab(payloads_dir, "gogitlab__service_merge_request.json")
    merged = gitlab(payloads_dir, "gogitlab__group_merge_request.json")
    mr = {"event": "merge_request", "action": ["open", "update", "reopen"]}
    assert [matches(mr, e) for e in (opened, updated, merged)] == [True, True, False]
    # a note is another event
    assert not matches(mr, gitlab(payloads_dir, "gogitlab__note_merge_request.json"))
    created = gerrit(gerrit_line(payloads_dir, "with_banner.jsonl", 0))
    comment = gerrit(gerrit_line(payloads_dir, "recheck_comment.jsonl"))
    assert matches({"source": "gerrit", "event": "patchset-created"}, created)
    assert not matches({"source": "gerrit", "event": "patchset-created"}, comment)
    assert matches({"event": "~^comment-"}, comment)


# -- 3. branch and ref ------------------------------------------------------------------------


def test_ref_matches_tags_and_refs(payloads_dir):
    tag = gitlab(payloads_dir, "gogitlab__tag_push.json")
    branch = gitlab(payloads_dir, "gogitlab__push.json")
    release = {"ref": "~^refs/tags/v\\d"}
    assert matches(release, tag) and not matches(release, branch)
    assert matches({"ref": "refs/heads/*", "branch": "master"}, branch)
    pr = github(payloads_dir, "pull_request__opened.payload.json")
    assert matches({"ref": "refs/pull/*/head"}, pr)
    patchset = gerrit(gerrit_line(payloads_dir, "with_banner.jsonl", 0))
    assert matches({"ref": "refs/changes/*"}, patchset)


# -- 4. changed files ------------------------------------------------------------------------

SRC_OR_SPEC = {"files": ["src/*", "~\\.spec$"]}


def test_files_from_a_github_push(payloads_dir):
    push = github(payloads_dir, "push__with-new-branch.payload.json")
    assert push.trigger.files == ("README.md",)
    assert push.ev()["trigger"]["unknown"] == []
    assert matches({"files": "*.md"}, push)
    assert not matches(SRC_OR_SPEC, push)
    body = load(payloads_dir, "github/push__with-new-branch.payload.json")
    body["commits"][0]["modified"] = ["rpm/hello.spec"]
    push = github(payloads_dir, "push__with-new-branch.payload.json", body)
    assert push.trigger.files == ("README.md", "rpm/hello.spec")
    assert matches(SRC_OR_SPEC, push) and matches(SRC_OR_SPEC | {"files_required": True}, push)


def test_files_from_a_gitlab_push_only_when_all_commits_are_listed(payloads_dir):
    """go-gitlab's push lists 2 of its 4 commits: the files are unknown; with
    every commit listed they are the union of the commits' paths."""
    push = gitlab(payloads_dir, "gogitlab__push.json")
    assert push.trigger.files is None and push.ev()["trigger"]["unknown"] == ["files"]
    body = load(payloads_dir, "gitlab/gogitlab__push.json")
    body["total_commits_count"] = len(body["commits"])
    push = gitlab(payloads_dir, "gogitlab__push.json", body)
    assert push.trigger.files == ("CHANGELOG", "app/controller/application.rb")
    assert matches({"files": "app/*"}, push)
    assert not matches({"files": "~^doc/"}, push)


def test_files_of_a_gerrit_patch_set_when_the_event_carries_them(payloads_dir):
    line = gerrit_line(payloads_dir, "with_banner.jsonl", 0)
    assert gerrit(line).trigger.files is None  # stream-events does not list them
    line["patchSet"]["files"] = [
        {"file": "/COMMIT_MSG", "type": "ADDED"},
        {"file": "src/main.rs", "type": "MODIFIED", "insertions": 3, "deletions": -1},
    ]
    event = gerrit(line)
    assert event.trigger.files == ("src/main.rs",)
    assert matches(SRC_OR_SPEC, event)
    assert not matches({"files": "/COMMIT_MSG"}, event)


def test_files_unknown_match_unless_required(payloads_dir):
    """A pull request's payload names no files (the API lookup is for a
    later slice): a ``files`` rule matches it (files unknown, said in
    ``ev.trigger.unknown``) unless the rule says ``files_required: true``."""
    pr = github(payloads_dir, "pull_request__opened.payload.json")
    assert pr.trigger.files is None
    assert pr.ev()["trigger"]["files"] is None and pr.ev()["trigger"]["unknown"] == ["files"]
    assert matches(SRC_OR_SPEC, pr)
    strict = rule(SRC_OR_SPEC | {"files_required": True})
    assert not strict.matches(pr, None)
    assert strict.why_not(pr, None) == "files: unknown (files_required)"
    mr = gitlab(payloads_dir, "gogitlab__merge_request.json")
    assert matches(SRC_OR_SPEC, mr) and not strict.matches(mr, None)


# -- 5. labels -------------------------------------------------------------------------------


def test_labels_of_a_pull_request_and_a_merge_request(payloads_dir):
    labeled = github(payloads_dir, "pull_request__labeled.payload.json")
    assert matches({"labels": ["ci-run", "bug"]}, labeled)
    assert not matches({"labels": "ci-run"}, labeled)
    assert matches({"action": "labeled", "added_labels": "bug"}, labeled)
    # the labeled action's own label: ci-run added beside an existing bug
    body = load(payloads_dir, "github/pull_request__labeled.payload.json")
    body["label"] = {"name": "ci-run"}
    body["pull_request"]["labels"].append({"name": "ci-run"})
    ci = github(payloads_dir, "pull_request__labeled.payload.json", body)
    assert ci.trigger.added_labels == ("ci-run",) and ci.trigger.labels == ("bug", "ci-run")
    assert matches({"added_labels": "ci-run"}, ci)
    assert not matches({"added_labels": "bug"}, ci)
    # GitLab: the merge request's labels, and those an update added
    mr = gitlab(payloads_dir, "gogitlab__merge_request.json")
    assert matches({"labels": "API"}, mr) and matches({"added_labels": "Platform"}, mr)
    assert not matches({"labels": "Platform"}, mr)
    note = gitlab(payloads_dir, "gogitlab__note_merge_request.json")
    assert matches({"labels": "Element"}, note)
    # an event without labels (a push) does not match a labels rule
    push = github(payloads_dir, "push__with-new-branch.payload.json")
    assert push.trigger.labels is None and not matches({"labels": "*"}, push)


# -- 6. comments ------------------------------------------------------------------------------

RECHECK = {"comment": "~^recheck\\b"}


def test_a_recheck_comment_on_every_forge(payloads_dir):
    # Gerrit: the recorded recheck (its "Patch Set 1:" header is not the text)
    for name in ("recheck_comment.jsonl", "line_recheck_comment_1.json"):
        event = gerrit(gerrit_line(payloads_dir, name))
        assert matches(RECHECK | {"source": "gerrit", "event": "comment-added"}, event)
    other = gerrit(gerrit_line(payloads_dir, "gogerrit_events.jsonl", 1))
    assert other.trigger.comment == "Some comment"  # without "(2 comments)" too
    assert other.payload["comment"] == "Patch Set 1:\n\n(2 comments)\n\nSome comment"
    assert not matches(RECHECK, other)
    # GitHub: a comment on a pull request
    event = pr_comment(payloads_dir, "recheck please")
    assert matches(RECHECK | {"event": "issue_comment", "action": "created"}, event)
    assert not matches(RECHECK, pr_comment(payloads_dir, "please recheck"))
    assert not matches(RECHECK, pr_comment(payloads_dir, "rechecking"))
    # GitLab: a note on a merge request
    note = gitlab(payloads_dir, "gogitlab__note_merge_request.json")
    assert not matches(RECHECK, note)
    body = load(payloads_dir, "gitlab/gogitlab__note_merge_request.json")
    body["object_attributes"]["note"] = "recheck"
    assert matches(RECHECK, gitlab(payloads_dir, "gogitlab__note_merge_request.json", body))
    # a glob matches the whole text; an event without a comment never matches
    assert matches({"comment": "recheck*"}, event)
    assert not matches({"comment": "*"}, github(payloads_dir, "push__1.payload.json"))


# -- 7. approvals and reviews -----------------------------------------------------------------


def test_gerrit_approvals(payloads_dir):
    line = gerrit_line(payloads_dir, "recheck_comment.jsonl")
    zero = gerrit(line)
    assert not matches({"approvals": {"Code-Review": 2}}, zero)
    assert matches({"approvals": {"Code-Review": 0}}, zero)
    line["approvals"] = [
        {"type": "Code-Review", "description": "Code-Review", "value": "2", "oldValue": "0"},
        {"type": "Verified", "description": "Verified", "value": "1"},
    ]
    voted = gerrit(line)
    assert voted.trigger.approvals == {"Code-Review": 2, "Verified": 1}
    assert voted.ev()["trigger"]["approvals"] == {"Code-Review": 2, "Verified": 1}
    both = {"approvals": {"Code-Review": 2, "Verified": ">=1"}}
    assert matches(both, voted)
    assert not matches({"approvals": {"Code-Review": 2, "Verified": ">1"}}, voted)
    assert not matches({"approvals": {"Workflow": 1}}, voted)  # not voted: no match
    # a list: any of them
    assert matches({"approvals": [{"Workflow": 1}, {"code-review": "+2"}]}, voted)
    assert matches({"approvals": {"Verified": "<=1", "Code-Review": "==2"}}, voted)
    # an event without votes
    patchset = gerrit(gerrit_line(payloads_dir, "with_banner.jsonl", 0))
    assert not matches({"approvals": {"Code-Review": ">=-2"}}, patchset)


def test_github_review_approved(payloads_dir):
    commented = github(payloads_dir, "pull_request_review__submitted.payload.json")
    approved_rule = {"event": "pull_request_review", "action": "submitted", "review": "approved"}
    assert commented.trigger.review == "commented"
    assert not matches(approved_rule, commented)
    body = load(payloads_dir, "github/pull_request_review__submitted.payload.json")
    body["review"]["state"] = "APPROVED"  # older deliveries: upper case
    body["review"]["body"] = "LGTM"
    approved = github(payloads_dir, "pull_request_review__submitted.payload.json", body)
    assert approved.trigger.review == "approved" and approved.trigger.comment == "LGTM"
    assert matches(approved_rule, approved)
    # GitLab: an approval is an action of the merge request hook
    body = load(payloads_dir, "gitlab/gogitlab__merge_request.json")
    body["object_attributes"]["action"] = "approved"
    mr = gitlab(payloads_dir, "gogitlab__merge_request.json", body)
    assert matches({"review": "approved"}, mr) and matches({"action": "approved"}, mr)


# -- 8. drafts and work in progress -------------------------------------------------------------


def test_drafts(payloads_dir):
    draft = github(payloads_dir, "pull_request__converted_to_draft.payload.json")
    ready = github(payloads_dir, "pull_request__ready_for_review.payload.json")
    assert (draft.trigger.draft, ready.trigger.draft) == (True, False)
    # the default is any: a rule without draft launches what it launched before
    assert matches({"source": "github"}, draft)
    assert [matches({"draft": False}, e) for e in (draft, ready)] == [False, True]
    assert [matches({"draft": True}, e) for e in (draft, ready)] == [True, False]
    assert [matches({"draft": "any"}, e) for e in (draft, ready)] == [True, True]
    # an event that is no change (a push) is not a draft
    assert matches({"draft": False}, github(payloads_dir, "push__with-new-branch.payload.json"))
    # GitLab's draft (older: work_in_progress), Gerrit's WIP
    body = load(payloads_dir, "gitlab/gogitlab__merge_request.json")
    body["object_attributes"]["draft"] = True
    assert not matches({"draft": False}, gitlab(payloads_dir, "gogitlab__merge_request.json", body))
    del body["object_attributes"]["draft"]
    body["object_attributes"]["work_in_progress"] = True
    assert gitlab(payloads_dir, "gogitlab__merge_request.json", body).trigger.draft is True
    line = gerrit_line(payloads_dir, "with_banner.jsonl", 0)
    assert matches({"draft": False}, gerrit(line))
    line["change"]["wip"] = True
    assert gerrit(line).trigger.draft is True and not matches({"draft": False}, gerrit(line))


# -- 9. who may trigger ---------------------------------------------------------------------------

TRUSTED = {"users": ["alice", "release-*"], "labels": ["ok-to-test"]}


def test_authors_allow_list(payloads_dir):
    pr = github(payloads_dir, "pull_request__opened.payload.json")
    assert pr.author == "Codertocat"
    assert matches({"authors": ["Codertocat"]}, pr)
    assert matches({"authors": "Coder*"}, pr)
    assert not matches({"authors": ["alice", "~^bot-"]}, pr)
    comment = gerrit(gerrit_line(payloads_dir, "recheck_comment.jsonl"))
    assert matches({"authors": "some.*"}, comment)


def test_a_fork_pull_request_from_an_outsider_is_gated(payloads_dir):
    outsider = fork_pr(payloads_dir)
    assert outsider.fork is not None and outsider.trigger.from_repository is False
    assert outsider.trigger.association == "CONTRIBUTOR"
    gated = rule({"event": "pull_request", "trusted": True}, trusted=TRUSTED)
    assert not gated.matches(outsider, None)
    assert gated.why_not(outsider, None).startswith("trusted: not trusted")
    # a rule may launch something else for them (a "needs ok-to-test" notice)
    assert rule({"trusted": False}, trusted=TRUSTED).matches(outsider, None)
    # a maintainer labels it ok-to-test: now it runs
    assert gated.matches(fork_pr(payloads_dir, labels=("ok-to-test",)), None)
    assert not gated.matches(fork_pr(payloads_dir, labels=("ok-to-merge",)), None)
    # a trusted user, a member of the repository's organisation
    body = load(payloads_dir, "github/pull_request__opened.payload.json")
    assert gated.trust.why(fork_pr(payloads_dir, association="MEMBER")) == (
        "author association MEMBER"
    )
    assert not rule({"trusted": True}, trusted=TRUSTED | {"associations": []}).matches(
        fork_pr(payloads_dir, association="MEMBER"), None
    )
    event = fork_pr(payloads_dir)
    trust = Trust(users=("outsider",))
    assert trust.why(event) == "author outsider is a trusted user"
    # the same pull request from a branch of the base repository: trusted
    own = github(payloads_dir, "pull_request__opened.payload.json", body)
    assert own.trigger.from_repository is True
    assert rule({"trusted": True}, trusted={"associations": []}).matches(own, None)
    assert not rule(
        {"trusted": True}, trusted={"associations": [], "same_repository": False}
    ).matches(own, None)


def test_trust_on_comments_pushes_and_gerrit(payloads_dir):
    gated = rule(RECHECK | {"trusted": True}, trusted=TRUSTED)
    # a comment: the commenter's association (octokit's is the OWNER)
    assert gated.matches(pr_comment(payloads_dir, "recheck"), None)
    stranger = pr_comment(payloads_dir, "recheck", author_association="NONE")
    assert stranger.trigger.association == "NONE" and not gated.matches(stranger, None)
    # ... unless the pull request carries the label (a comment: the labels)
    body = load(payloads_dir, "github/issue_comment__created.payload.json")
    body["issue"]["pull_request"] = {"url": "https://api.github.com/repos/x/y/pulls/1"}
    body["issue"]["labels"].append({"name": "ok-to-test"})
    body["comment"].update(body="recheck", author_association="NONE")
    labelled = github(payloads_dir, "issue_comment__created.payload.json", body)
    assert labelled.trigger.labels == ("bug", "ok-to-test")
    assert gated.matches(labelled, None)
    # a push: the pusher could write to the repository
    push = github(payloads_dir, "push__with-new-branch.payload.json")
    assert rule({"trusted": True}).matches(push, None)
    # Gerrit: anyone may upload a change or comment; trusted users may
    recheck = gerrit(gerrit_line(payloads_dir, "recheck_comment.jsonl"))
    assert not gated.matches(recheck, None)
    assert rule(RECHECK | {"trusted": True}, trusted={"users": ["some.author"]}).matches(
        recheck, None
    )
    # a Gerrit change's hashtag is its label
    line = gerrit_line(payloads_dir, "recheck_comment.jsonl")
    line["change"]["hashtags"] = ["ok-to-test"]
    assert gated.matches(gerrit(line), None)


# -- 10. fields and the launcher --------------------------------------------------------------


def test_trigger_names_in_fields(payloads_dir):
    push = github(payloads_dir, "push__with-new-branch.payload.json")
    got = extract({"files": "${trigger.files}", "what": "${trigger.event}:${trigger.ref}"}, push)
    assert got == {"files": ["README.md"], "what": "push:refs/heads/master"}
    pr = github(payloads_dir, "pull_request__opened.payload.json")
    assert extract("${trigger.unknown}", pr) == ["files"]
    with pytest.raises(RuleError, match=r"unknown name \$\{trigger\.nope\}"):
        Rules.from_data([{"process": "ci/x", "fields": {"x": "${trigger.nope}"}}])


def launcher_for(store: Path, rules: Rules) -> Launcher:
    fake = FakePublisher()
    return Launcher(
        Config(process_dir=str(store)), LauncherSettings(), rules=rules, publisher=fake, bus=fake
    )


def _docs_examples() -> dict[str, str]:
    """The worked examples of docs/launchers.md's rules section: a YAML block
    after a line naming the forge ("GitHub:", "GitLab:", "Gerrit:")."""
    text = (ROOT / "docs" / "launchers.md").read_text()
    section = text.split("## The rules file", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"\n\*\*(GitHub|GitLab|Gerrit)\*\*:.*?```yaml\n(.*?)```", section, re.S)
    return dict(found)


def test_the_documented_examples(payloads_dir, store_dir):
    """The worked example of each forge in docs/launchers.md loads, and
    launches what the text says on the recorded deliveries."""
    examples = _docs_examples()
    assert sorted(examples) == ["Gerrit", "GitHub", "GitLab"]
    for name in ("build", "recheck", "ok-to-test", "gate", "release"):
        write_process(store_dir, "ci", f"{name}.yaml", name=name)

    def launched(forge: str, event: NormalisedEvent) -> list[str]:
        rules = Rules.from_data(yaml.safe_load(examples[forge]), f"docs: {forge}")
        return sorted(p.process for p in launcher_for(store_dir, rules).plan(event))

    assert launched("GitHub", github(payloads_dir, "pull_request__opened.payload.json")) == [
        "ci/build"
    ]
    assert launched("GitHub", fork_pr(payloads_dir)) == ["ci/ok-to-test"]
    assert launched("GitHub", fork_pr(payloads_dir, labels=("ok-to-test",))) == ["ci/build"]
    body = load(payloads_dir, "github/pull_request__opened.payload.json")
    body["pull_request"]["draft"] = True
    assert launched("GitHub", github(payloads_dir, "pull_request__opened.payload.json", body)) == []
    assert launched("GitHub", pr_comment(payloads_dir, "recheck")) == ["ci/recheck"]
    body = load(payloads_dir, "gitlab/gogitlab__note_merge_request.json")
    body["object_attributes"]["note"] = "recheck"
    note = gitlab(payloads_dir, "gogitlab__note_merge_request.json", body)
    assert launched("GitLab", note) == ["ci/recheck"]
    assert launched("GitLab", gitlab(payloads_dir, "gogitlab__merge_request.json")) == ["ci/build"]
    assert launched("GitLab", gitlab(payloads_dir, "gogitlab__tag_push.json")) == ["ci/release"]
    assert launched("Gerrit", gerrit(gerrit_line(payloads_dir, "recheck_comment.jsonl"))) == [
        "ci/recheck"
    ]
    assert launched("Gerrit", gerrit(gerrit_line(payloads_dir, "with_banner.jsonl", 0))) == [
        "ci/build"
    ]
    line = gerrit_line(payloads_dir, "recheck_comment.jsonl")
    line["comment"] = "Patch Set 1: Code-Review+2 Workflow+1"
    line["approvals"] = [
        {"type": "Code-Review", "value": "2"},
        {"type": "Workflow", "value": "1", "oldValue": "0"},
    ]
    assert launched("Gerrit", gerrit(line)) == ["ci/gate"]


# -- 11. refused rules files: the file, the rule and the key named -------------------------------


def write_rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "- name: pr\n  match: {acton: opened}\n  process: ci/build\n",
            r"rules\.yaml: rule 1 \(pr\): unknown match keys \['acton'\] "
            r"\('acton': did you mean 'action'\?\)",
        ),
        (
            "- match: {labels: ci}\n  process: ci/a\n- match: {lables: ci}\n  process: ci/b\n",
            r"rules\.yaml: rule 2: unknown match keys \['lables'\] \('lables': did you mean "
            r"'labels'\?\)",
        ),
        (
            "- match: {comment: '~^recheck(\\b'}\n  process: ci/build\n",
            r"rules\.yaml: rule 1: match\.comment: bad regular expression",
        ),
        (
            "- match: {files: ['src/*', '~[unclosed']}\n  process: ci/build\n",
            r"rules\.yaml: rule 1: match\.files: bad regular expression '~\[unclosed'",
        ),
        (
            "- match: {approvals: {Code-Review: plus-two}}\n  process: ci/build\n",
            r"rules\.yaml: rule 1: match\.approvals\.Code-Review: 'plus-two' is not a vote",
        ),
        (
            "- match: {approvals: [Code-Review]}\n  process: ci/build\n",
            r"rules\.yaml: rule 1: match\.approvals: not a mapping",
        ),
        (
            "- match: {draft: maybe}\n  process: ci/build\n",
            r"rules\.yaml: rule 1: match\.draft is not true, false or any",
        ),
        (
            "- match: {draft: 1}\n  process: ci/build\n",
            r"rules\.yaml: rule 1: match\.draft is not true, false or any",
        ),
        (
            "- match: {trusted: yes-please}\n  process: ci/build\n",
            r"rules\.yaml: rule 1: match\.trusted is not true or false",
        ),
        (
            "- match: {files_required: true}\n  process: ci/build\n",
            r"rules\.yaml: rule 1: match\.files_required without match\.files",
        ),
        (
            "rules: []\ntrusts: {users: [alice]}\n",
            r"rules\.yaml: unknown keys \['trusts'\] \('trusts': did you mean 'trusted'\?\)",
        ),
        (
            "rules: []\ntrusted: {user: [alice]}\n",
            r"rules\.yaml: trusted: unknown keys \['user'\] \('user': did you mean 'users'\?\)",
        ),
        (
            "rules: []\ntrusted: {labels: ['~(']}\n",
            r"rules\.yaml: trusted\.labels: bad regular expression",
        ),
        (
            "- match: {source: github}\n  process: ci/build\n  feilds: {}\n",
            r"rules\.yaml: rule 1: unknown keys \['feilds'\] \('feilds': did you mean 'fields'\?\)",
        ),
    ],
)
def test_bad_rules_files_are_refused(tmp_path, text, error):
    path = write_rules(tmp_path, text)
    with pytest.raises(RuleError, match=error) as info:
        Rules.load(path)
    assert str(path) in str(info.value)


def test_a_good_rules_file_with_every_key(tmp_path, payloads_dir):
    path = write_rules(
        tmp_path,
        """
trusted:
  users: [alice]
  labels: [ok-to-test]
  associations: [owner, member]
  same_repository: false
rules:
  - name: everything
    match:
      source: github
      event: pull_request
      action: [opened, synchronize]
      ref: "refs/pull/*"
      branch: master
      files: ["src/*", "~\\\\.spec$"]
      files_required: false
      labels: [bug]
      added_labels: "*"
      comment: "*"
      review: "*"
      approvals: {Code-Review: ">=1"}
      draft: any
      authors: ["*"]
      trusted: true
    process: ci/build
""",
    )
    rules = Rules.load(path)
    assert rules.trust == Trust(
        users=("alice",),
        labels=("ok-to-test",),
        associations=("OWNER", "MEMBER"),
        same_repository=False,
    )
    [r] = rules.rules
    assert r.trust is rules.trust and r.where.endswith("rule 1 (everything)")
    # everything but added_labels, comment, review and approvals holds for the opened PR
    pr = github(payloads_dir, "pull_request__opened.payload.json")
    assert r.why_not(pr, None).startswith("added_labels: []")
