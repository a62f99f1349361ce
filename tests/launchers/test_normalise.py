"""Normalisation of recorded-shape deliveries of every source, the Eiffel
event each gets (valid against the schemas and link rules), and malformed
deliveries."""

from __future__ import annotations

import json

import pytest

from engine.config import Config
from engine.launchers.base import (
    MalformedEvent,
    NormalisedEvent,
    RawEvent,
    Source,
    eiffel_id_for,
    sanitise_wfid,
)
from engine.launchers.eiffel import EiffelSource, label_for
from engine.launchers.gerrit import GerritSource
from engine.launchers.github import GitHubSource, sign, verify_signature
from engine.launchers.gitlab import GitLabSource, verify_token
from engine.launchers.obs import ObsSource
from engine.launchers.traceability import source_event
from engine.trace import eiffel
from engine.trace.aggregator import validator_for
from tests.launchers.conftest import gerrit_lines, recorded

VALIDATOR = validator_for(Config())


def one(source: Source, raw: RawEvent) -> NormalisedEvent:
    events = source.normalise(raw)
    assert len(events) == 1
    VALIDATOR.validate(source_event(events[0]))  # raises InvalidEvent
    return events[0]


def test_every_source_is_a_source():
    for s in (ObsSource(), GitHubSource(), GitLabSource(), GerritSource(), EiffelSource()):
        assert isinstance(s, Source)


# -- OBS --------------------------------------------------------------------------------


def test_obs_build_success():
    ev = one(ObsSource(), recorded("obs_build_success.json"))
    assert (ev.source, ev.label, ev.project, ev.targets) == (
        "obs",
        "OBS_BUILD_SUCCESS",
        "Mer:Tools:Testing",
        (),
    )
    assert ev.payload["package"] == "boss-demo" and ev.payload["arch"] == "x86_64"
    assert ev.payload["namespace"] == "opensuse.obs"
    assert ev.projects == ["Mer:Tools:Testing"]
    e = source_event(ev)
    assert e["meta"]["type"] == eiffel.ARTIFACT_CREATED
    assert (
        e["data"]["identity"]
        == "pkg:rpm/Mer%3ATools%3ATesting/boss-demo@1.0.3-1?arch=x86_64&repository=latest_x86_64"
    )


def test_obs_request_create_has_one_target_per_project():
    ev = one(ObsSource(), recorded("obs_request_create.json"))
    assert ev.label == "OBS_SRCSRV_REQUEST_CREATE"
    assert ev.targets == ("Mer:Tools", "Mer:Tools:Testing")
    assert ev.change == "4711" and ev.author == "jane"
    fields = ev.ev("Mer:Tools:Testing")
    # what BOSS_handle_SR reads
    assert fields["id"] == "4711" and fields["type"] == "submit" and fields["who"] == "jane"
    assert fields["target_project"] == "Mer:Tools:Testing"
    assert len(fields["actions"]) == 3
    assert source_event(ev)["meta"]["type"] == eiffel.SOURCE_CHANGE_CREATED


@pytest.mark.parametrize(
    ("fixture", "label", "etype"),
    [
        ("obs_build_fail.json", "OBS_BUILD_FAIL", eiffel.ANNOUNCEMENT_PUBLISHED),
        ("obs_package_commit.json", "OBS_SRCSRV_COMMIT", eiffel.SOURCE_CHANGE_SUBMITTED),
        ("obs_repo_published.json", "OBS_REPO_PUBLISHED", eiffel.ARTIFACT_CREATED),
        (
            "obs_request_state_change.json",
            "OBS_SRCSRV_REQUEST_STATECHANGE",
            eiffel.ANNOUNCEMENT_PUBLISHED,
        ),
    ],
)
def test_obs_labels_keep_boss_vocabulary(fixture, label, etype):
    ev = one(ObsSource(), recorded(fixture))
    assert ev.label == label
    assert source_event(ev)["meta"]["type"] == etype


def test_obs_unknown_event_gets_a_generic_label():
    raw = RawEvent(b'{"project": "A"}', routing_key="opensuse.obs.project.frobnicate")
    assert ObsSource().normalise(raw)[0].label == "OBS_PROJECT_FROBNICATE"


def test_obs_legacy_item():
    ev = one(ObsSource(), recorded("obs_legacy_request_create.json"))
    assert (ev.label, ev.targets, ev.change) == (
        "OBS_SRCSRV_REQUEST_CREATE",
        ("Mer:Tools",),
        "4712",
    )
    assert ev.payload["namespace"] == "OBS" and ev.payload["format"] == 1
    legacy_build = {
        "fields": {
            "obsEvent": {
                "label": "BUILD_SUCCESS",
                "namespace": "OBS",
                "project": "Mer:Core",
                "package": "bash",
                "repository": "standard",
                "arch": "i586",
            }
        }
    }
    ev = ObsSource().normalise(RawEvent(json.dumps(legacy_build).encode(), routing_key="x"))[0]
    assert (ev.label, ev.project) == ("OBS_BUILD_SUCCESS", "Mer:Core")


def test_obs_delivery_is_the_message_id_else_a_digest():
    raw = recorded("obs_build_success.json")
    a = ObsSource().normalise(raw)[0].delivery
    assert a == ObsSource().normalise(raw)[0].delivery
    other = RawEvent(raw.body, routing_key="opensuse.obs.package.build_fail")
    assert ObsSource().normalise(other)[0].delivery != a
    with_id = RawEvent(raw.body, {"message_id": "m-1"}, raw.routing_key)
    assert ObsSource().normalise(with_id)[0].delivery == "m-1"


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        (b"{not json", "opensuse.obs.package.build_success", "not JSON"),
        (b"[1, 2]", "opensuse.obs.package.build_success", "not a JSON object"),
        (b'{"package": "x"}', "opensuse.obs.package.build_success", "no 'project'"),
        (b'{"project": "x"}', "build_success", "routing key"),
        (
            b'{"number": 1, "actions": [{"type": "delete"}]}',
            "opensuse.obs.request.create",
            "no action names a targetproject",
        ),
        (b'{"actions": []}', "opensuse.obs.request.create", "without 'number'"),
        (b'{"fields": {"obsEvent": {"namespace": "OBS"}}}', "x", "no 'label'"),
    ],
)
def test_obs_malformed(body, key, reason):
    with pytest.raises(MalformedEvent, match=reason):
        ObsSource().normalise(RawEvent(body, routing_key=key))


# -- GitHub -----------------------------------------------------------------------------


def test_github_push():
    ev = one(GitHubSource(), recorded("github_push.json"))
    assert (ev.label, ev.project, ev.branch) == ("GITHUB_PUSH", "sailfishos/boss-demo", "main")
    assert ev.delivery == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert ev.commit == "6dcb09b5b57875f334f61aebed695e2e4193db5e"
    assert ev.repository == "https://github.com/sailfishos/boss-demo.git"
    e = source_event(ev)
    assert e["meta"]["type"] == eiffel.SOURCE_CHANGE_SUBMITTED
    assert e["data"]["gitIdentifier"]["branch"] == "main"
    assert e["meta"]["id"] == eiffel_id_for("github", ev.delivery, "GITHUB_PUSH")


def test_github_tag_push():
    raw = recorded("github_push.json")
    body = json.loads(raw.body) | {"ref": "refs/tags/v1.0"}
    ev = one(GitHubSource(), RawEvent(json.dumps(body).encode(), raw.headers))
    assert (ev.label, ev.branch, ev.payload["tag"]) == ("GITHUB_TAG_PUSH", None, "v1.0")


def test_github_pull_request():
    ev = one(GitHubSource(), recorded("github_pull_request.json"))
    assert (ev.label, ev.project, ev.branch, ev.change) == (
        "GITHUB_PULL_REQUEST",
        "sailfishos/boss-demo",
        "main",
        "42",
    )
    assert ev.commit == ev.patchset == "c0ffee0000000000000000000000000000c0ffee"
    # a fork's pull request: the repository it targets, and where the commits
    # come from in `fork` (it was the fork's URL beside the base's name and branch)
    assert ev.repository == "https://github.com/sailfishos/boss-demo.git"
    assert ev.fork == {
        "project": "contributor/boss-demo",
        "repository": "https://github.com/contributor/boss-demo.git",
        "branch": "spec",
    }
    assert ev.payload["action"] == "opened"
    e = source_event(ev)
    assert e["meta"]["type"] == eiffel.SOURCE_CHANGE_CREATED
    assert e["data"]["change"] == {
        "id": "42",
        "tracker": "GitHub",
        "details": "https://github.com/sailfishos/boss-demo/pull/42",
    }


def test_github_ping_and_other_events():
    assert GitHubSource().normalise(RawEvent(b'{"zen": "x"}', {"X-GitHub-Event": "ping"})) == []
    ev = GitHubSource().normalise(
        RawEvent(
            b'{"action": "published", "repository": {"full_name": "a/b"}}',
            {"X-GitHub-Event": "release", "X-GitHub-Delivery": "d1"},
        )
    )[0]
    assert (ev.label, ev.project, ev.delivery) == ("GITHUB_RELEASE", "a/b", "d1")


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        ({}, b"{}", "no X-GitHub-Event"),
        ({"X-GitHub-Event": "push"}, b"{", "not JSON"),
        ({"X-GitHub-Event": "push"}, b'{"ref": "refs/heads/x", "after": "1"}', "repository"),
        (
            {"X-GitHub-Event": "pull_request"},
            b'{"repository": {"full_name": "a/b"}}',
            "pull_request",
        ),
    ],
)
def test_github_malformed(headers, body, reason):
    with pytest.raises(MalformedEvent, match=reason):
        GitHubSource().normalise(RawEvent(body, headers))


def test_github_signature():
    body = b'{"a": 1}'
    good = sign("s3cret", body)
    assert good.startswith("sha256=") and len(good) == 71
    assert verify_signature("s3cret", body, good)
    assert not verify_signature("s3cret", body + b" ", good)
    assert not verify_signature("other", body, good)
    assert not verify_signature("s3cret", body, None)
    assert not verify_signature("", body, sign("", body))  # no secret: nothing passes


# -- GitLab -----------------------------------------------------------------------------


def test_gitlab_push():
    ev = one(GitLabSource(), recorded("gitlab_push.json"))
    assert (ev.label, ev.project, ev.branch, ev.author) == (
        "GITLAB_PUSH",
        "mer/boss-demo",
        "master",
        "jsmith",
    )
    assert ev.delivery == "f5e5f430-f57b-4e6e-9fac-d9128cd7232f"  # Idempotency-Key first
    assert ev.commit == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    assert source_event(ev)["meta"]["type"] == eiffel.SOURCE_CHANGE_SUBMITTED


def test_gitlab_merge_request():
    ev = one(GitLabSource(), recorded("gitlab_merge_request.json"))
    assert (ev.label, ev.project, ev.branch, ev.change) == (
        "GITLAB_MERGE_REQUEST",
        "mer/boss-demo",
        "master",
        "1",
    )
    assert ev.delivery == "8c1e7f44-7d0b-4a1e-9c55-3f3e3a0d9b77"
    # a fork's merge request (source project 14, target 15): the target's URL,
    # the source in `fork` (it was the source's URL beside the target's name)
    assert ev.repository == "https://gitlab.example.com/mer/boss-demo.git"
    assert ev.fork == {
        "project": "awesome/boss-demo",
        "repository": "https://gitlab.example.com/awesome/boss-demo.git",
        "branch": "ms-viewport",
    }
    assert ev.payload["object_attributes"]["action"] == "open"
    assert source_event(ev)["meta"]["type"] == eiffel.SOURCE_CHANGE_CREATED


def test_gitlab_other_hooks_and_malformed():
    ev = GitLabSource().normalise(
        RawEvent(b'{"object_kind": "wiki_page"}', {"X-Gitlab-Event": "Wiki Page Hook"})
    )[0]
    assert ev.label == "GITLAB_WIKI_PAGE"
    # a note on no merge request launches nothing (as zuul: comments on merge
    # requests only); this case was the generic GITLAB_NOTE example
    raw = RawEvent(b'{"object_kind": "note"}', {"X-Gitlab-Event": "Note Hook"})
    assert GitLabSource().normalise(raw) == []
    with pytest.raises(MalformedEvent, match="path_with_namespace"):
        GitLabSource().normalise(
            RawEvent(b'{"ref": "refs/heads/a"}', {"X-Gitlab-Event": "Push Hook"})
        )
    with pytest.raises(MalformedEvent, match="no X-Gitlab-Event"):
        GitLabSource().normalise(RawEvent(b"{}"))
    assert verify_token("t", "t") and not verify_token("t", "u")
    assert not verify_token("t", None) and not verify_token("", "")


# -- Gerrit -----------------------------------------------------------------------------


def test_gerrit_stream_lines():
    source = GerritSource(url="https://review.example.org/")
    events = [one(source, raw) for raw in gerrit_lines()]
    assert [e.label for e in events] == [
        "GERRIT_PATCHSET_CREATED",
        "GERRIT_COMMENT_ADDED",
        "GERRIT_CHANGE_MERGED",
        "GERRIT_REF_UPDATED",
    ]
    created, _, merged, updated = events
    assert (created.project, created.branch, created.change, created.author) == (
        "mer/boss-demo",
        "master",
        "1234",
        "jane",
    )
    assert created.commit == "b4a6f7ac5a4d7cf1d9a1e8b6f0c3d2e1a0b9c8d7"
    assert created.repository == "https://review.example.org/mer/boss-demo"
    assert merged.commit == "e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4"
    assert merged.author == "bob"
    assert (updated.project, updated.branch) == ("mer/boss-demo", "master")
    assert [source_event(e)["meta"]["type"] for e in events] == [
        eiffel.SOURCE_CHANGE_CREATED,
        eiffel.ANNOUNCEMENT_PUBLISHED,
        eiffel.SOURCE_CHANGE_SUBMITTED,
        eiffel.SOURCE_CHANGE_SUBMITTED,
    ]
    # no id in Gerrit's events: a digest of the event; the same line, the same delivery
    assert len({e.delivery for e in events}) == 4
    assert source.normalise(gerrit_lines()[0])[0].delivery == created.delivery


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "not JSON"),  # a line that is not `{...}` at all is ignored
        (b'{"change": {}}', "no 'type'"),
        (b'{"type": "patchset-created", "change": {"project": "p"}}', "patchset-created"),
        (b'{"type": "ref-updated", "refUpdate": {}}', "ref-updated"),
    ],
)
def test_gerrit_malformed(line, reason):
    with pytest.raises(MalformedEvent, match=reason):
        GerritSource().normalise(RawEvent(line))


# -- Eiffel (the adapter) ----------------------------------------------------------------


def test_eiffel_adapter_keeps_the_event_as_cause():
    art = eiffel.artifact_created("pkg:generic/x@1")
    ev = EiffelSource().normalise(RawEvent(json.dumps(art).encode()))[0]
    assert (ev.source, ev.label, ev.eiffel_id) == (
        "eiffel",
        "EIFFEL_ARTIFACT_CREATED",
        art["meta"]["id"],
    )
    assert label_for("EiffelSourceChangeSubmittedEvent") == "EIFFEL_SOURCE_CHANGE_SUBMITTED"
    with pytest.raises(MalformedEvent):
        EiffelSource().normalise(RawEvent(b'{"data": {}}'))


# -- ids ------------------------------------------------------------------------------


def test_wfids_are_sanitised_and_bounded():
    assert (
        sanitise_wfid("obs", "abc", "BOSS_handle_SR", "Mer:Tools")
        == "obs-abc-BOSS_handle_SR-Mer:Tools"
    )
    assert sanitise_wfid("github", "x y/z", "ci/build") == "github-x-y-z-ci-build"
    long = sanitise_wfid("gerrit", "d" * 100, "p" * 100)
    assert len(long) == 128
    assert long != sanitise_wfid("gerrit", "d" * 100, "p" * 99 + "q")
    assert sanitise_wfid("_", "-x") == "x"


def test_eiffel_ids_are_deterministic_uuid4():
    a = eiffel_id_for("github", "d1", "GITHUB_PUSH")
    assert a == eiffel_id_for("github", "d1", "GITHUB_PUSH")
    assert a != eiffel_id_for("github", "d2", "GITHUB_PUSH")
    assert a[14] == "4" and a[19] in "89ab"


def test_obs_dead_letter_put_back_keeps_the_bus_routing_key():
    """`boss deadletters reinject` publishes the body to our own queue with
    its headers: the bus's routing key comes from x-routing-key."""
    first = recorded("obs_build_success.json")
    again = RawEvent(first.body, {"x-routing-key": first.routing_key or ""}, "boss.launchers.obs")
    assert one(ObsSource(), again).label == one(ObsSource(), first).label == "OBS_BUILD_SUCCESS"
