"""The OBS participants against a fake OBS API (tests/standard/fake_obs.py)
at the HTTP boundary: OBS-shaped XML, Basic auth, retries on 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from participants.standard import obs_checks
from participants.standard.obs_client import ObsClient, ObsError
from participants.standard.obs_request import ChangeRequestState, GetRequest
from tests.standard.conftest import started, workitem
from tests.standard.fake_obs import PASSWORD, USER, FakeObs, fake_obs

SPEC = "Name: bash\nVersion: 5.2\nRelease: 1\nSummary: shell\n"
ACTION = {
    "type": "submit",
    "sourceproject": "home:alice",
    "sourcepackage": "bash",
    "sourcerevision": "3",
    "targetproject": "Mer:Tools",
    "targetpackage": "bash",
}


@pytest.fixture
def obs() -> Iterator[FakeObs]:
    with fake_obs() as server:
        server.add_request("42", [ACTION], who="alice", description="update bash")
        server.add_package("home:alice", "bash", {"bash.spec": SPEC, "bash.changes": "* x"})
        server.add_package("Mer:Tools", "bash", {"bash.spec": SPEC.replace("5.2", "5.1")})
        server.metas["home:alice"] = {
            "repositories": [
                {"name": "mer_tools", "paths": [("Mer:Tools", "standard")], "arches": ["x86_64"]}
            ]
        }
        server.metas["Mer:Tools"] = {
            "persons": [("alice", "maintainer"), ("bob", "bugowner")],
            "repositories": [],
        }
        server.results["home:alice"] = [
            {"repository": "mer_tools", "arch": "x86_64", "packages": {"bash": "succeeded"}},
            {"repository": "other", "arch": "x86_64", "packages": {"bash": "failed"}},
        ]
        yield server


def _start(cls: type, obs: FakeObs, **extra: Any) -> Any:
    return started(
        cls(),
        {
            "obs": {
                "apiurl": obs.url,
                "user": USER,
                "password": PASSWORD,
                "retry_delay": 0.01,
                **extra,
            }
        },
    )


def test_get_request_reads_the_request_xml(obs):
    wi = workitem({"ev": {"id": "42"}})
    _start(GetRequest, obs).handle_wi(wi)
    assert wi.fields["req"] == {
        "id": "42",
        "creator": "alice",
        "who": "alice",
        "state": "new",
        "description": "update bash",
        "actions": [ACTION],
    }
    assert wi.fields["ev"]["actions"] == [ACTION]  # filled in for the checks


def test_change_request_state_posts_changestate_with_the_comment(obs):
    wi = workitem(
        {"ev": {"id": "42"}, "msg": []},
        {"action": "accept", "comment": ["all checks passed", "thanks"]},
    )
    _start(ChangeRequestState, obs).handle_wi(wi)
    assert obs.changes == [
        {"id": "42", "newstate": "accepted", "comment": "all checks passed\nthanks"}
    ]
    assert (
        "POST /request/42?cmd=changestate&newstate=accepted&comment=all+checks+passed%0A"
        "thanks" in obs.calls
    )
    assert wi.fields["req"]["state"] == "accepted" and wi.msg == ["request 42 accepted"]
    # OBS refuses a second decision: the step fails with OBS's own summary
    with pytest.raises(ObsError, match=r"HTTP 403: change state from accepted: not allowed"):
        _start(ChangeRequestState, obs).handle_wi(
            workitem({"ev": {"id": "42"}}, {"action": "reject"})
        )
    with pytest.raises(ValueError, match="action 'approve' is not one of"):
        _start(ChangeRequestState, obs).handle_wi(
            workitem({"ev": {"id": "42"}}, {"action": "approve"})
        )


def test_basic_auth_is_required_and_bad_credentials_fail_clearly(obs):
    with pytest.raises(ObsError, match="HTTP 401: Authentication required"):
        ObsClient(obs.url, USER, "wrong").request("42")
    assert ObsClient(obs.url, USER, PASSWORD).request("42")["id"] == "42"


def test_5xx_is_retried_then_succeeds_or_fails_clearly(obs):
    obs.fail_next = 2
    assert ObsClient(obs.url, USER, PASSWORD, retries=3, retry_delay=0.01).request("42")
    obs.fail_next = 5
    with pytest.raises(ObsError, match="HTTP 503: the backend is down for maintenance"):
        ObsClient(obs.url, USER, PASSWORD, retries=2, retry_delay=0.01).request("42")
    dead = ObsClient("http://127.0.0.1:9", USER, PASSWORD, retries=1, retry_delay=0.01)
    with pytest.raises(ObsError, match=r"cannot reach http://127.0.0.1:9.*after 2 attempts"):
        dead.request("42")


def _check(name: str, obs: FakeObs, fields: dict[str, Any]) -> Any:
    wi = workitem({"msg": [], **fields}, name=name)
    _start(obs_checks.Checks, obs).handle_wi(wi)  # the pool serving every check
    return wi


@pytest.mark.parametrize("name", sorted(obs_checks.CHECKS))
def test_every_check_passes_a_good_request(obs, name):
    wi = _check(name, obs, {"ev": {"id": "42", "who": "alice", "actions": [ACTION]}})
    assert (wi.result, wi.msg, wi.fields["checks"][name]) == (True, [], "ok")


def test_checks_fail_with_their_reasons(obs):
    ev = {"id": "42", "who": "bob", "actions": [ACTION]}
    assert _check("check_submitter_maintainer", obs, {"ev": ev}).msg == [
        "check_submitter_maintainer: bob is not a maintainer of Mer:Tools"
    ]
    # another open request for the same package
    obs.add_request("43", [ACTION], who="carol")
    wi = _check("check_already_testing", obs, {"ev": ev})
    assert wi.result is False and wi.msg == [
        "check_already_testing: Mer:Tools/bash is already being tested in request 43"
    ]
    # the package failed in the repository that builds against the target
    obs.results["home:alice"][0]["packages"]["bash"] = "failed"
    assert _check("check_package_built_at_source", obs, {"ev": ev}).msg == [
        "check_package_built_at_source: home:alice/bash is failed in mer_tools/x86_64"
    ]
    obs.metas["home:alice"]["repositories"][0]["paths"] = [("Mer:Core", "standard")]
    assert _check("check_has_valid_repo", obs, {"ev": ev}).msg == [
        "check_has_valid_repo: home:alice has no repository building against Mer:Tools"
    ]
    obs.add_package("home:alice", "bash", {"bash.spec": "Summary: no name\n"})
    assert _check("check_spec", obs, {"ev": ev}).msg == [
        "check_spec: home:alice/bash: bash.spec has no Name and no Version tag"
    ]
    obs.add_package("home:alice", "bash", {"README": "x"})
    assert _check("check_spec", obs, {"ev": ev}).msg == [
        "check_spec: home:alice/bash has no .spec file"
    ]
    obs.add_package("home:alice", "bash", obs.sources[("Mer:Tools", "bash")])
    assert _check("check_no_changes", obs, {"ev": ev}).msg == [
        "check_no_changes: home:alice/bash is identical to Mer:Tools/bash"
    ]
    two = {**ev, "actions": [ACTION, {**ACTION, "targetproject": "Mer:Core"}]}
    assert _check("check_multiple_destinations", obs, {"ev": two}).msg == [
        "check_multiple_destinations: the request goes to 2 projects: Mer:Core, Mer:Tools"
    ]


def test_a_check_with_no_actions_or_unknown_name_is_an_error(obs):
    with pytest.raises(ValueError, match="no submit actions"):
        _check("check_spec", obs, {"ev": {"id": "42"}})
    with pytest.raises(ValueError, match="no check named 'check_nothing'"):
        _check("check_nothing", obs, {"ev": {"id": "42", "actions": [ACTION]}})


def test_check_no_changes_passes_a_new_package(obs):
    action = {**ACTION, "targetpackage": "zsh", "sourcepackage": "bash"}
    wi = _check("check_no_changes", obs, {"ev": {"id": "42", "actions": [action]}})
    assert wi.result is True
