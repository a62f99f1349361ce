"""What the payload lacks, looked up through the forge's API (issue 14):
a comment's change (its head commit, branch, fork), a pull or merge
request's files (``files:`` rules), the author's repository permission
(``trusted:``).

The forges' APIs are faked at the HTTP boundary (``tests/reporters/fakes.py``:
a werkzeug server answering with the real APIs' shapes, recording every
request); the deliveries are the recorded ones of ``shared/payloads`` read
in place (``payloads_dir``), changed in memory where the corpus lacks a case.
End to end: the webhook server (``create_app``, the machine's Redis for the
delivery claims) to the launch item, and the reporter's call for that run."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.config import Config
from engine.launchers.base import RawEvent
from engine.launchers.forge_api import ForgeAPI, ForgeError, Lookups
from engine.launchers.gerrit import GerritStream
from engine.launchers.github import GitHubSource, sign
from engine.launchers.gitlab import GitLabSource
from engine.launchers.http import create_app
from engine.launchers.launcher import Launcher
from engine.launchers.rules import Rules
from engine.launchers.settings import LauncherSettings
from engine.reporters import ReporterSettings, make_jobs
from engine.reporters.forges import send
from tests.conftest import delete_keys
from tests.launchers.conftest import FakePublisher, write_process
from tests.reporters.fakes import FakeForge

SECRET = "gh-hook-secret"
HOOK_TOKEN = "gl-hook-token"
HEAD = "1f0e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
GL_HEAD = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d"
REPO = "Codertocat/Hello-World"
GL_PROJECT = "gitlab-org/gitlab-test"

RULES = {
    "trusted": {"associations": ["OWNER", "MEMBER"], "same_repository": False},
    "rules": [
        {
            "name": "recheck",
            "match": {"source": ["github", "gitlab"], "comment": "~^recheck\\b"},
            "process": "ci/recheck",
        },
        {
            "name": "src",
            "match": {"event": ["pull_request", "merge_request"], "files": ["src/*"]},
            "process": "ci/build",
        },
        {
            "name": "gated",
            "match": {"event": ["pull_request", "merge_request"], "trusted": True},
            "process": "ci/trusted",
        },
    ],
}


# -- the corpus, changed in memory ---------------------------------------------------------


def load(payloads: Path, name: str) -> dict[str, Any]:
    return json.loads((payloads / name).read_text())


def pr_comment(payloads: Path, text: str = "recheck") -> dict[str, Any]:
    """octokit's issue comment made a comment on pull request #1 of Hello-World."""
    body = load(payloads, "github/issue_comment__created.payload.json")
    number = body["issue"]["number"]
    body["issue"]["pull_request"] = {"url": f"https://api.github.com/repos/{REPO}/pulls/{number}"}
    body["comment"]["body"] = text
    return body


def fork_pr(payloads: Path, user: str = "outsider") -> dict[str, Any]:
    """octokit's opened pull request, from a fork by an outside contributor."""
    body = load(payloads, "github/pull_request__opened.payload.json")
    pr = body["pull_request"]
    pr["head"]["repo"] = copy.deepcopy(pr["head"]["repo"]) | {
        "full_name": f"{user}/Hello-World",
        "clone_url": f"https://github.com/{user}/Hello-World.git",
    }
    pr["user"] = dict(pr["user"], login=user)
    pr["author_association"] = "CONTRIBUTOR"
    return body


def mr_note(payloads: Path, text: str = "recheck", *, head: bool = False) -> dict[str, Any]:
    """go-gitlab's note on a merge request; without ``head`` its
    ``merge_request`` has no ``last_commit`` (the API has to say)."""
    body = load(payloads, "gitlab/gogitlab__note_merge_request.json")
    body["object_attributes"]["note"] = text
    if not head:
        del body["merge_request"]["last_commit"]
    return body


def github_raw(kind: str, body: dict[str, Any], delivery: str | None = None) -> RawEvent:
    return RawEvent(
        json.dumps(body).encode(),
        {"X-GitHub-Event": kind, "X-GitHub-Delivery": delivery or str(uuid.uuid4())},
    )


def gitlab_raw(body: dict[str, Any]) -> RawEvent:
    return RawEvent(json.dumps(body).encode(), {"X-Gitlab-Event-UUID": str(uuid.uuid4())})


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Path:
    d = tmp_path / "store"
    for name in ("recheck", "build", "trusted"):
        write_process(d, "ci", f"{name}.yaml", name=f"ci-{name}")
    return d


def settings_for(
    github: FakeForge | None, gitlab: FakeForge | None, **more: Any
) -> LauncherSettings:
    values: dict[str, Any] = {
        "github_secret": SECRET,
        "gitlab_token": HOOK_TOKEN,
        "api_timeout": 2.0,
        "api_attempts": 2,
        "api_retry_delay": 0.01,
    }
    if github is not None:
        values.update(github_api_url=github.url, github_api_token=github.token)
    if gitlab is not None:
        values.update(gitlab_api_url=gitlab.url, gitlab_api_token=gitlab.token)
    return LauncherSettings(**(values | more))


def make_launcher(
    store: Path,
    github: FakeForge | None,
    gitlab: FakeForge | None,
    rules: dict[str, Any] | None = None,
    **more: Any,
) -> tuple[Launcher, FakePublisher]:
    fake = FakePublisher()
    launcher = Launcher(
        Config(process_dir=str(store)),
        settings_for(github, gitlab, **more),
        rules=Rules.from_data(copy.deepcopy(rules or RULES)),
        publisher=fake,
        bus=fake,
    )
    return launcher, fake


@pytest.fixture
def rclient(machine_redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(machine_redis_url)
    yield client
    delete_keys(client, key_prefix)
    client.close()


@pytest.fixture
def webhook(store: Path, github: FakeForge, gitlab: FakeForge, rclient, key_prefix: str):
    """The webhook app (its test client), its launcher's fake broker, the claims' Redis."""
    fake = FakePublisher()
    config = Config(process_dir=str(store), key_prefix=key_prefix)
    settings = settings_for(github, gitlab)
    launcher = Launcher(
        config, settings, rules=Rules.from_data(copy.deepcopy(RULES)), publisher=fake, bus=fake
    )
    app = create_app(config, settings, launcher=launcher, redis_client=rclient)
    return app.test_client(), fake, app.extensions["boss_launchers"]


def post_github(client: Any, kind: str, body: dict[str, Any], delivery: str) -> Any:
    data = json.dumps(body).encode()
    return client.post(
        "/hooks/github",
        data=data,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": kind,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(SECRET, data),
        },
    )


def post_gitlab(client: Any, body: dict[str, Any], delivery: str) -> Any:
    return client.post(
        "/hooks/gitlab",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "X-Gitlab-Event": "Note Hook",
            "X-Gitlab-Token": HOOK_TOKEN,
            "X-Gitlab-Event-UUID": delivery,
        },
    )


def launched(fake: FakePublisher) -> dict[str, dict[str, Any]]:
    """The launch items sent: ``{process's file stem: fields}``."""
    return {Path(m["filename"]).stem: m["fields"] for m in fake.sent}


# -- 1. a recheck comment launches on the change's head ------------------------------------------


def test_a_github_recheck_comment_runs_on_the_pull_requests_head(payloads_dir, webhook, github):
    """End to end: the comment's delivery names pull request #1 only; the
    launcher asks the API for it and the run's ``ev`` has its head commit,
    base branch and fork; the reporter then reports on that commit."""
    client, fake, _ = webhook
    body = pr_comment(payloads_dir)
    number = body["issue"]["number"]
    github.add_pull(REPO, number, head_sha=HEAD, head_ref="fix", head_project="outsider/fork")
    r = post_github(client, "issue_comment", body, str(uuid.uuid4()))
    assert r.status_code == 202, r.json
    fields = launched(fake)["recheck"]
    ev = fields["ev"]
    assert (ev["commit"], ev["patchset"], ev["branch"], ev["change"]) == (
        HEAD,
        HEAD,
        "main",
        str(number),
    )
    assert ev["fork"] == {
        "project": "outsider/fork",
        "repository": "https://github.com/outsider/fork.git",
        "branch": "fix",
    }
    assert "unknown" not in ev
    assert [c.path for c in github.calls] == [f"/repos/{REPO}/pulls/{number}"]
    assert github.calls[0].headers["authorization"] == f"Bearer {github.token}"
    # the reporter reports on the head commit (it skipped a run without one)
    reporter = ReporterSettings(github_url=github.url, github_token=github.token)
    jobs = make_jobs(
        reporter,
        wfid=fake.sent[0]["wfid"],
        name="ci-recheck",
        fields=fields,
        transition="start",
        outcome="pending",
    )
    assert [j["action"] for j in jobs] == ["status"]
    send(jobs[0], reporter)
    [status] = github.ok("/statuses/")
    assert status.path == f"/repos/{REPO}/statuses/{HEAD}"
    assert status.body["state"] == "pending"


def test_a_gitlab_recheck_note_runs_on_the_merge_requests_head(payloads_dir, webhook, gitlab):
    client, fake, _ = webhook
    body = mr_note(payloads_dir)
    iid = body["merge_request"]["iid"]
    gitlab.add_merge_request(GL_PROJECT, iid, sha=GL_HEAD, target_branch="master")
    r = post_gitlab(client, body, str(uuid.uuid4()))
    assert r.status_code == 202, r.json
    ev = launched(fake)["recheck"]["ev"]
    assert (ev["commit"], ev["patchset"], ev["branch"], ev["fork"]) == (
        GL_HEAD,
        GL_HEAD,
        "master",
        None,
    )
    assert "unknown" not in ev
    [call] = gitlab.calls
    assert call.raw_path == f"/api/v4/projects/gitlab-org%2Fgitlab-test/merge_requests/{iid}"
    assert call.headers["private-token"] == gitlab.token
    # the reporter reports on it
    reporter = ReporterSettings(gitlab_url=gitlab.url, gitlab_token=gitlab.token)
    [job] = make_jobs(
        reporter, wfid="w", name="recheck", fields={"ev": ev}, transition="start", outcome="pending"
    )
    send(job, reporter)
    assert [c.path for c in gitlab.ok("/statuses/")] == [
        f"/api/v4/projects/{GL_PROJECT}/statuses/{GL_HEAD}"
    ]


def test_a_gitlab_note_with_its_head_asks_nothing(payloads_dir, store, github, gitlab):
    """go-gitlab's recorded note carries the merge request's ``last_commit``:
    no lookup; a fork's merge request without it: the source project's path
    comes from the note's ``source``."""
    launcher, fake = make_launcher(store, github, gitlab)
    body = mr_note(payloads_dir, head=True)
    launcher.handle(GitLabSource(), gitlab_raw(body))
    assert launched(fake)["recheck"]["ev"]["commit"] == "562e173be03b8ff2efb05345d12df18815438a4b"
    assert gitlab.calls == []
    # a fork: source_project_id differs; GET /projects/:id gives its path when
    # the note has no source object
    body = mr_note(payloads_dir)
    del body["merge_request"]["source"]
    iid = body["merge_request"]["iid"]
    gitlab.add_merge_request(GL_PROJECT, iid, sha=GL_HEAD, source_project_id=77)
    gitlab.add_project(77, "someone/gitlab-test")
    fake.sent.clear()
    launcher.handle(GitLabSource(), gitlab_raw(body))
    assert launched(fake)["recheck"]["ev"]["fork"] == {
        "project": "someone/gitlab-test",
        "repository": "https://gitlab.example.com/someone/gitlab-test.git",
        "branch": "feature",
    }


def test_a_comment_nothing_launches_for_asks_nothing(payloads_dir, store, github):
    """A comment no store file or rule may launch for (not a recheck) costs no call."""
    launcher, _fake = make_launcher(store, github, None)
    outcome = launcher.handle(
        GitHubSource(), github_raw("issue_comment", pr_comment(payloads_dir, "LGTM"))
    )
    assert outcome.wfids == [] and github.calls == []
    assert outcome.events[0].unknown == ("branch", "commit", "patchset", "fork")


def test_a_deleted_fork_leaves_fork_unknown(payloads_dir, store, github):
    launcher, fake = make_launcher(store, github, None)
    body = pr_comment(payloads_dir)
    github.add_pull(REPO, body["issue"]["number"], head_sha=HEAD, head_project="")
    launcher.handle(GitHubSource(), github_raw("issue_comment", body))
    ev = launched(fake)["recheck"]["ev"]
    assert ev["commit"] == HEAD and ev["fork"] is None and ev["unknown"] == ["fork"]


# -- 2. files of a pull or merge request ----------------------------------------------------------


def test_a_files_rule_matches_by_the_apis_file_list(payloads_dir, store, github):
    launcher, fake = make_launcher(store, github, None)
    body = load(payloads_dir, "github/pull_request__opened.payload.json")
    number = body["number"]
    # 250 files: three pages of 100 (Link: rel="next"); the last one is in src/
    github.add_pull_files(REPO, number, [f"docs/{i}.md" for i in range(249)] + ["src/main.c"])
    launcher.handle(GitHubSource(), github_raw("pull_request", body))
    got = launched(fake)
    assert "build" in got
    trigger = got["build"]["ev"]["trigger"]
    assert len(trigger["files"]) == 250 and trigger["unknown"] == []
    pages = github.requests(f"/pulls/{number}/files")
    assert len(pages) == 3 and "page=3" in pages[-1].raw_path
    # docs only: the files rule does not match
    github.add_pull_files(REPO, number, ["README.md", "docs/x.md"])
    fake.sent.clear()
    launcher.handle(GitHubSource(), github_raw("pull_request", body))
    assert "build" not in launched(fake)
    why = launcher.rules.rules[1].why_not(
        GitHubSource().normalise(github_raw("pull_request", body))[0], None, launcher.lookups()
    )
    assert why == "files: ['README.md', 'docs/x.md'] does not match ['src/*']"


def test_no_files_rule_no_files_call(payloads_dir, store, github):
    """No rule asks about files (or the one that does fails first on its
    other keys): the files are never asked for."""
    rules = {"rules": [{"match": {"event": "pull_request"}, "process": "ci/build"}]}
    launcher, fake = make_launcher(store, github, None, rules)
    body = load(payloads_dir, "github/pull_request__opened.payload.json")
    launcher.handle(GitHubSource(), github_raw("pull_request", body))
    assert launched(fake)["build"]["ev"]["trigger"]["unknown"] == ["files"]
    rules = {"rules": [{"match": {"source": "gitlab", "files": "src/*"}, "process": "ci/build"}]}
    launcher, fake = make_launcher(store, github, None, rules)
    launcher.handle(GitHubSource(), github_raw("pull_request", body))
    assert fake.sent == [] and github.calls == []


def test_gitlab_merge_request_files(payloads_dir, store, gitlab):
    launcher, fake = make_launcher(store, None, gitlab)
    body = load(payloads_dir, "gitlab/gogitlab__merge_request.json")
    project = body["object_attributes"]["target"]["path_with_namespace"]
    iid = body["object_attributes"]["iid"]
    gitlab.add_mr_files(project, iid, [f"doc/{i}.md" for i in range(120)] + ["src/a.rs"])
    launcher.handle(GitLabSource(), gitlab_raw(body))
    assert launched(fake)["build"]["ev"]["trigger"]["files"][-1] == "src/a.rs"
    assert len(gitlab.requests("/diffs")) == 2  # X-Next-Page


def test_one_call_per_kind_per_delivery(payloads_dir, store, github):
    """Two files rules and two trusted rules: one files lookup, one permission lookup."""
    rules = {
        "rules": [
            {"match": {"files": "src/*", "trusted": True}, "process": "ci/build"},
            {"match": {"files": "*.c", "trusted": True}, "process": "ci/trusted"},
        ]
    }
    launcher, _fake = make_launcher(store, github, None, rules)
    body = fork_pr(payloads_dir)
    github.add_pull_files(REPO, body["number"], ["src/main.c"])
    github.set_permission(REPO, "outsider", "maintain")
    outcome = launcher.handle(GitHubSource(), github_raw("pull_request", body))
    assert len(outcome.wfids) == 2
    assert len(github.requests("/files")) == 1 and len(github.requests("/permission")) == 1


# -- 3. who may trigger ------------------------------------------------------------------------


def test_a_fork_pull_request_by_a_writer_is_trusted_a_reader_is_not(payloads_dir, store, github):
    launcher, fake = make_launcher(store, github, None)
    github.add_pull_files(REPO, fork_pr(payloads_dir)["number"], ["docs/x.md"])
    github.set_permission(REPO, "writer", "write")
    github.set_permission(REPO, "reader", "read")
    launcher.handle(GitHubSource(), github_raw("pull_request", fork_pr(payloads_dir, "writer")))
    assert "trusted" in launched(fake)
    fake.sent.clear()
    launcher.handle(GitHubSource(), github_raw("pull_request", fork_pr(payloads_dir, "reader")))
    assert "trusted" not in launched(fake)
    assert [c.path for c in github.requests("/permission")] == [
        f"/repos/{REPO}/collaborators/writer/permission",
        f"/repos/{REPO}/collaborators/reader/permission",
    ]
    event = GitHubSource().normalise(github_raw("pull_request", fork_pr(payloads_dir, "writer")))[0]
    assert launcher.rules.trust.why(event, launcher.lookups()) == (
        "repository permission: writer has write permission"
    )
    # cached: another delivery of the writer asks nothing
    launcher.handle(GitHubSource(), github_raw("pull_request", fork_pr(payloads_dir, "writer")))
    assert len(github.requests("/permission")) == 2
    # the configured lists decide first: an OWNER is not looked up
    body = fork_pr(payloads_dir, "owner")
    body["pull_request"]["author_association"] = "OWNER"
    launcher.handle(GitHubSource(), github_raw("pull_request", body))
    assert not github.requests("/owner/permission")


def test_gitlab_developers_are_trusted_reporters_are_not(payloads_dir, store, gitlab):
    rules = {
        "trusted": {"same_repository": False},
        "rules": [{"match": {"event": "merge_request", "trusted": True}, "process": "ci/trusted"}],
    }
    body = load(payloads_dir, "gitlab/gogitlab__merge_request.json")
    project = body["object_attributes"]["target"]["path_with_namespace"]
    uid = body["user"]["id"]
    for level, want in ((30, True), (40, True), (20, False), (None, False)):
        launcher, fake = make_launcher(store, None, gitlab, rules)
        gitlab.members.pop((project, uid), None)
        if level is not None:
            gitlab.add_member(project, uid, level)
        launcher.handle(GitLabSource(), gitlab_raw(body))
        assert ("trusted" in launched(fake)) is want, level
    assert gitlab.requests(f"/members/all/{uid}")[-1].status == 404  # not a member


# -- 4. failures ---------------------------------------------------------------------------------


def test_an_api_outage_answers_503_and_the_retry_launches_once(
    payloads_dir, webhook, github, rclient
):
    client, fake, state = webhook
    body = pr_comment(payloads_dir)
    github.add_pull(REPO, body["issue"]["number"], head_sha=HEAD)
    delivery = str(uuid.uuid4())
    github.fail_next(2, 502)  # both attempts
    r = post_github(client, "issue_comment", body, delivery)
    assert r.status_code == 503 and "retry" in r.json["error"]
    assert fake.sent == [] and fake.letters == []
    assert rclient.get(state.delivery_key("github", delivery)) is None  # the claim is released
    assert [c.status for c in github.calls] == [502, 502]
    r = post_github(client, "issue_comment", body, delivery)
    assert r.status_code == 202 and r.json["status"] == "launched"
    assert len(fake.sent) == 1 and fake.sent[0]["fields"]["ev"]["commit"] == HEAD
    r = post_github(client, "issue_comment", body, delivery)
    assert (r.status_code, r.json["status"]) == (200, "already launched")
    assert len(fake.sent) == 1
    # one 502, then an answer: the retry inside the lookup is enough
    github.fail_next(1, 502)
    r = post_github(client, "issue_comment", body, str(uuid.uuid4()))
    assert r.status_code == 202 and len(fake.sent) == 2


def test_a_lookup_that_cannot_succeed_is_dead_lettered(payloads_dir, webhook, github):
    """A pull request the API does not know (404), a bad token (401): not
    worth a retry: dead-lettered with the reason (400 and the letter's id)."""
    client, fake, _ = webhook
    body = pr_comment(payloads_dir)  # no such pull request on the fake
    r = post_github(client, "issue_comment", body, str(uuid.uuid4()))
    assert r.status_code == 400 and r.json["deadletter"]
    assert "404" in r.json["error"] and "no pull request" in r.json["error"]
    [letter] = fake.letters
    assert "github API" in letter["reason"] and fake.sent == []
    github.token = "another"
    github.add_pull(REPO, body["issue"]["number"], head_sha=HEAD)
    r = post_github(client, "issue_comment", body, str(uuid.uuid4()))
    assert r.status_code == 400 and "401" in r.json["error"]


def test_a_stream_dead_letters_a_failed_lookup_with_the_reason(
    payloads_dir, store, gitlab, tmp_path
):
    """A source read from a stream (``GerritStream.feed``, the OBS consumer)
    cannot answer 503: the delivery is dead-lettered with the reason."""
    launcher, fake = make_launcher(store, None, gitlab)
    body = mr_note(payloads_dir)
    gitlab.add_merge_request(GL_PROJECT, body["merge_request"]["iid"], sha=GL_HEAD)
    gitlab.fail_next(2, 503)
    stream = GerritStream(launcher, GitLabSource(), file=str(tmp_path / "unused"))
    stream.feed([json.dumps(body).encode()])
    [letter] = fake.letters
    assert "handling failed" in letter["reason"] and "503" in letter["reason"]
    assert fake.sent == []
    with pytest.raises(ForgeError) as exc:
        gitlab.fail_next(2, 503)
        launcher.handle(GitLabSource(), gitlab_raw(body))
    assert exc.value.transient


def test_no_token_no_lookup(payloads_dir, store, github, gitlab):
    """Without a token nothing is asked: the identity stays unknown, files
    rules match on unknown files, trust goes by the configured lists."""
    launcher, fake = make_launcher(store, None, None)
    body = pr_comment(payloads_dir)
    github.add_pull(REPO, body["issue"]["number"], head_sha=HEAD)
    launcher.handle(GitHubSource(), github_raw("issue_comment", body))
    ev = launched(fake)["recheck"]["ev"]
    assert ev["commit"] is None and ev["unknown"] == ["branch", "commit", "patchset", "fork"]
    fake.sent.clear()
    launcher.handle(GitHubSource(), github_raw("pull_request", fork_pr(payloads_dir)))
    assert set(launched(fake)) == {"build"}  # files unknown: matches; not trusted
    launcher.handle(GitLabSource(), gitlab_raw(mr_note(payloads_dir)))
    assert github.calls == [] and gitlab.calls == []
    assert not Lookups(ForgeAPI()).enabled(
        GitHubSource().normalise(github_raw("issue_comment", body))[0]
    )
