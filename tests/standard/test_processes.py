"""The standard processes in the ProcessHarness (the real engine in-process)
with the real standard participants where they have a server to talk to
(the fake OBS, Redis for obsticket) and recording stubs for notifications."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.testing import ProcessHarness
from participants.standard.eiffel_publish import EiffelPublish
from participants.standard.notices import BuiltNotice, Notice, RequestNotice
from participants.standard.obs_checks import Checks
from participants.standard.obs_request import ChangeRequestState
from participants.standard.obsticket import ObsTicket
from participants.workitem import Workitem
from tests.conftest import delete_keys
from tests.standard.conftest import started
from tests.standard.fake_obs import PASSWORD, USER, FakeObs, fake_obs
from tests.standard.test_obs import ACTION, SPEC

ROOT = Path(__file__).resolve().parents[2]
SW = ROOT / "processes" / "StandardWorkflow"
EIFFEL = (
    "artifact_created|artifact_published|composition_defined|baseline_defined|"
    "confidence_level_modified"
)


def conf(name: str) -> dict[str, Any]:
    return yaml.safe_load((SW / f"{name}.conf").read_text())


class Recorder:
    """A stub notifier: keeps the workitems it got."""

    def __init__(self) -> None:
        self.calls: list[Workitem] = []

    def __call__(self, wi: Workitem) -> None:
        self.calls.append(Workitem.copy_of(wi.to_dict()))


@pytest.fixture
def obs() -> Iterator[FakeObs]:
    with fake_obs() as server:
        server.add_request("42", [ACTION], who="alice")
        server.add_package("home:alice", "bash", {"bash.spec": SPEC})
        server.metas["home:alice"] = {
            "repositories": [{"name": "mer_tools", "paths": [("Mer:Tools", "standard")]}]
        }
        server.results["home:alice"] = [
            {"repository": "mer_tools", "arch": "x86_64", "packages": {"bash": "succeeded"}}
        ]
        yield server


def _obs_conf(obs: FakeObs) -> dict[str, dict[str, Any]]:
    return {"obs": {"apiurl": obs.url, "user": USER, "password": PASSWORD}}


def test_handle_sr_with_the_real_participants_and_the_statechange_companion(
    obs, redis_url, key_prefix
):
    ticket = started(
        ObsTicket(),
        {"boss": {"redis_url": redis_url, "key_prefix": key_prefix}, "obsticket": {"poll": 0.01}},
    )
    irc, mail = Recorder(), Recorder()
    try:
        with ProcessHarness() as h:
            h.register("obsticket", ticket.handle_wi)
            h.register("check_.*", started(Checks(), _obs_conf(obs)).handle_wi, regex=True)
            h.register(
                "change_request_state", started(ChangeRequestState(), _obs_conf(obs)).handle_wi
            )
            h.register("request_notice_.*", RequestNotice().handle_wi, regex=True)
            h.register("notify_irc", irc)
            h.register("notify", mail)
            h.register("notify_admin", Recorder())
            ev = {"id": "42", "who": "alice", "target_project": "Mer:Tools", "actions": [ACTION]}
            fields = {
                **conf("BOSS_check_SR"),
                "ev": ev,
                "wait_for_review": True,
                "prechecks": [
                    "check_has_valid_repo",
                    "check_spec",
                    "check_package_built_at_source",
                ],
            }
            run = h.launch(SW / "BOSS_check_SR.yaml", fields).wait()
            assert run.status == "running"  # listening for the review
            assert ticket.holder("Mer:Tools")["holder"] == run.wfid
            # the companion, launched for OBS_SRCSRV_REQUEST_STATECHANGE
            notice = h.launch(
                SW / "BOSS_request_statechange.yaml",
                {
                    **conf("BOSS_request_statechange"),
                    "ev": {"id": "42", "newstate": "accepted", "who": "bob", "comment": "lgtm"},
                },
            )
            notice.wait()
            run.wait()
            assert notice.status == "finished" and run.status == "finished"
            assert run.fields["status"] == "SUCCESS"
            assert run.fields["review"] == {"state": "accepted", "by": "bob", "comment": "lgtm"}
            assert obs.changes == [{"id": "42", "newstate": "accepted", "comment": ""}]
            assert ticket.holder("Mer:Tools") is None  # released
            assert [c.params.get("msg") for c in irc.calls] == [
                "request 42 is now accepted (by bob) lgtm",
                ["request 42 accepted"],
            ]
            assert mail.calls[0].params["template"] == "SR_SUCCESS"
    finally:
        assert ticket.client is not None
        delete_keys(ticket.client, key_prefix)


def test_handle_sr_rejects_when_a_real_check_fails(obs, redis_url, key_prefix):
    obs.results["home:alice"][0]["packages"]["bash"] = "failed"
    ticket = started(ObsTicket(), {"boss": {"redis_url": redis_url, "key_prefix": key_prefix}})
    try:
        with ProcessHarness() as h:
            h.register("obsticket", ticket.handle_wi)
            h.register("check_.*", started(Checks(), _obs_conf(obs)).handle_wi, regex=True)
            h.register(
                "change_request_state", started(ChangeRequestState(), _obs_conf(obs)).handle_wi
            )
            for name in ("notify_irc", "notify", "notify_admin"):
                h.register(name, Recorder())
            run = h.launch(
                SW / "BOSS_check_SR.yaml",
                {
                    **conf("BOSS_check_SR"),
                    "prechecks": ["check_spec", "check_package_built_at_source"],
                    "ev": {"id": "42", "target_project": "Mer:Tools", "actions": [ACTION]},
                },
            ).wait()
            assert run.status == "finished" and run.fields["status"] == "FAILURE"
            assert obs.changes == [
                {
                    "id": "42",
                    "newstate": "declined",
                    "comment": "check_package_built_at_source: home:alice/bash is failed "
                    "in mer_tools/x86_64",
                }
            ]
    finally:
        assert ticket.client is not None
        delete_keys(ticket.client, key_prefix)


BUILD_EV = {
    "project": "Mer:Tools:Testing",
    "repository": "standard",
    "arch": "i586",
    "package": "bash",
    "versrel": "5.2-1",
}
WAITER = """
name: waits_for_a_build
steps:
  - listen: {to: "built_notice_${project}", upon: reply}
"""


@pytest.mark.parametrize("passes", [True, False])
def test_build_success_wakes_listeners_and_runs_auto_ci(passes):
    irc = Recorder()
    published: list[dict[str, Any]] = []
    pub = EiffelPublish()

    def publish(wi: Workitem) -> None:
        pub.handle_wi(wi)
        published.extend(wi.events)

    with ProcessHarness() as h:
        h.register("built_notice_.*", BuiltNotice().handle_wi, regex=True)
        h.register(EIFFEL, publish, regex=True)
        h.register("test", lambda wi: setattr(wi, "result", passes))
        h.register("notify_irc", irc)
        waiter = h.launch(WAITER, {"project": "Mer:Tools:Testing"}).wait()
        run = h.launch(
            SW / "BOSS_build_success.yaml", {**conf("BOSS_build_success"), "ev": BUILD_EV}
        ).wait()
        waiter.wait()
        assert run.status == "finished" and waiter.status == "finished"
        assert waiter.fields["built"] == {
            k: BUILD_EV[k] for k in ("project", "repository", "arch", "package")
        }
        assert published[0]["data"]["identity"] == "pkg:rpm/Mer:Tools:Testing/bash@5.2-1?arch=i586"
        assert published[1]["data"]["value"] == ("SUCCESS" if passes else "FAILURE")
        assert irc.calls[0].params["msg"] == (
            f"auto-CI {'SUCCESS' if passes else 'FAILURE'}: Mer:Tools:Testing/bash on standard/i586"
        )
        # a project not in ci_projects: only the notice
        other = h.launch(
            SW / "BOSS_build_success.yaml",
            {**conf("BOSS_build_success"), "ev": {**BUILD_EV, "project": "Mer:Core"}},
        ).wait()
        assert other.status == "finished" and len(published) == 2


def test_commit_failure_notifies_only_a_failing_commit(obs):
    mail, irc = Recorder(), Recorder()
    with ProcessHarness() as h:
        h.register("check_.*", started(Checks(), _obs_conf(obs)).handle_wi, regex=True)
        h.register("notify", mail)
        h.register("notify_irc", irc)
        ev = {"project": "home:alice", "package": "bash", "rev": "3", "user": "alice"}
        good = h.launch(
            SW / "BOSS_commit_failure.yaml", {**conf("BOSS_commit_failure"), "ev": ev}
        ).wait()
        assert good.status == "finished" and good.fields["status"] == "SUCCESS"
        assert mail.calls == [] and irc.calls == []
        obs.add_package("home:alice", "bash", {"README": "no spec"})
        bad = h.launch(
            SW / "BOSS_commit_failure.yaml", {**conf("BOSS_commit_failure"), "ev": ev}
        ).wait()
        assert bad.status == "finished" and bad.fields["status"] == "FAILURE"
        assert mail.calls[0].params["template"] == "COMMIT_FAILURE"
        assert mail.calls[0].params["msg"] == ["check_spec: home:alice/bash has no .spec file"]
        assert irc.calls[0].params["msg"].startswith("commit 3 of home:alice/bash by alice fails")


def test_promotion_reminder_reminds_until_the_promotion():
    irc, mail = Recorder(), Recorder()
    clm = {
        "meta": {
            "id": "clm-1",
            "time": 1700000000000,
            "type": "EiffelConfidenceLevelModifiedEvent",
        },
        "data": {"name": "releaseCandidate", "value": "SUCCESS"},
        "links": [{"type": "SUBJECT", "target": "art-1"}],
    }
    with ProcessHarness() as h:
        h.register("promoted_notice_.*", Notice().handle_wi, regex=True)
        h.register("notify_irc", irc)
        h.register("notify", mail)
        run = h.launch(
            SW / "BOSS_promotion_reminder.yaml", {**conf("BOSS_promotion_reminder"), "event": clm}
        ).wait()
        assert run.status == "running" and irc.calls == []
        h.advance(24 * 3600 + 1)
        run.wait()
        assert [c.params["msg"] for c in irc.calls] == [
            "reminder 1/3: release candidate art-1 awaits promotion"
        ]
        assert mail.calls[0].params["template"] == "PROMOTION_REMINDER"
        # the promotion (as openci_a_promote reaches it) ends the reminders
        h.launch("name: promote\nsteps:\n  - participant: {ref: promoted_notice_art-1}\n").wait()
        run.wait()
        assert run.status == "finished" and run.fields["promoted"] is True
        assert len(irc.calls) == 1
