"""The faithful port of the real BOSS_handle_SR
(processes/StandardWorkflow/BOSS_handle_SR.yaml with the real .conf), run
in the ProcessHarness with participants that do what the real ones do
(``boss_participants``): its every path, as the ruote original took it.

tests/compat runs it end to end with the real participants, unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.testing import HarnessRun, ProcessHarness
from tests.processes.boss_participants import Site, harness

ROOT = Path(__file__).resolve().parents[2]
SW = ROOT / "processes" / "StandardWorkflow"
PROCESS = SW / "BOSS_handle_SR.yaml"
MONITOR = SW / "BOSS_req_change_monitor.yaml"
CONF = yaml.safe_load((SW / "BOSS_handle_SR.conf").read_text())

EV = {
    "id": "42",
    "type": "OBS_SRCSRV_REQUEST_CREATE",
    "who": "alice",
    "author": "alice",
    "state": "new",
    "actions": [
        {
            "type": "submit",
            "sourceproject": "home:alice",
            "sourcepackage": "bash",
            "targetproject": "Mer:Core",
            "targetpackage": "bash",
        }
    ],
}

#: the stages a site without image builds and OTS runs
PLAIN = ["auto_review", "prechecks", "bugzilla", "accept", "reject", "report", ""]


def launch(
    h: ProcessHarness, stages: list[str] = PLAIN, ev: dict[str, Any] | None = None, **conf: Any
) -> HarnessRun:
    fields = {
        **CONF,
        "project": "Mer:Core",  # as the launcher gives it (robogrator did)
        "stages": stages,
        "emails": ["release@example.org"],
        "admin_emails": ["boss-admin@example.org"],
        "irc": {"log_channel": "#boss-log", "req_channel": "#mer", "highlight": "sr:"},
        **conf,
        "ev": ev or EV,
    }
    return h.launch(PROCESS, fields=fields)


@pytest.fixture
def site() -> Site:
    return Site()


@pytest.fixture
def h(site: Site) -> ProcessHarness:
    return harness(site)


def actions(site: Site) -> list[str]:
    return [c["action"] for c in site.request_changes]


def test_it_loads_and_names_its_launch_label() -> None:
    from engine.core.loader import load_file
    from engine.process_store import standard_labels

    d = load_file(PROCESS)
    assert d.name == "BOSS_handle_SR" and d.revision == "0.2"
    assert standard_labels(PROCESS)[0] == ["OBS_SRCSRV_REQUEST_CREATE"]
    assert standard_labels(MONITOR)[0] == ["OBS_SRCSRV_REQUEST_STATECHANGE"]


def test_a_good_request_is_checked_accepted_reported_and_announced(h, site) -> None:
    run = launch(h).wait()
    assert run.status == "finished", run.errors
    assert run.fields["status"] == "SUCCESS"
    # every precheck of the .conf ran, in order, up to the "" sentinel
    prechecks = [p for p in CONF["prechecks"] if p]
    ran = [c for c in site.calls if c in prechecks]
    assert ran == [*prechecks, "bugzilla"]  # and bugzilla again in the report
    # the request: a review while the checks run, closed, then accepted
    assert actions(site) == ["add review", "accept review", "accept"]
    assert site.request_changes[1]["comment"] == "Prechecks succeeded."
    # the request lock and the target project's lock, both released
    assert site.lock_log == [
        ("require", "SR_42"),
        ("get", "Mer:Core"),
        ("release", "Mer:Core"),
        ("release", "SR_42"),
    ]
    assert site.locks == {}
    # Bugzilla: a dry run among the prechecks, the real update in the report
    assert [b.get("dryrun") for b in site.bugzilla] == ["True", None]
    assert site.bugzilla[1]["resolution"] == "FIXED"
    # the submitter is told, the maintainers in Cc; IRC hears the acceptance
    [mail] = site.mails
    assert mail["template"] == "accept-notice"
    assert mail["subject"] == "[BOSS] SR#42 Accepted promotion request"
    assert mail["to"] == ["alice@example.org", "release@example.org"]
    assert mail["cc"] == ["bob@example.org"]
    assert (
        "#mer",
        "sr: SR#42 Accepted promotion request at https://build.pub.meego.com//request/show/42",
    ) in site.irc
    assert run.fields["author"] == {"realname": "Alice Developer", "email": "alice@example.org"}
    # do_log echoes every stage to the trace and to the log channel
    assert f"process {run.wfid}: SR#42 Process finished" in h.trace
    assert ("#boss-log", f"process {run.wfid} SR#42 Accepting") in site.irc


def test_a_failing_precheck_rejects_the_request_and_ends_the_run(h, site) -> None:
    site.results["check_no_changes"] = False
    run = launch(h).wait()
    # do_terminate: terminate is ruote's cancel_process
    assert run.status == "cancelled"
    assert actions(site) == ["add review", "accept review", "reject"]
    assert site.request_changes[1]["comment"] == "Prechecks completed; there were some failures."
    [mail] = site.mails
    assert mail["subject"] == "[BOSS] SR#42 Rejected promotion request"
    assert mail["template"] == "reject-notice"
    # every check still ran (a failure only sets status), the lock of the
    # target project was never taken, the request lock is released
    assert "check_l10n_update" in site.calls
    assert ("get", "Mer:Core") not in site.lock_log
    assert site.locks == {}


def test_a_second_run_for_the_same_request_bails_out(h, site) -> None:
    site.locks["SR_42"] = "another-run"
    run = launch(h).wait()
    assert run.status == "cancelled"
    assert site.request_changes == []
    assert any("Did not get request lock" in line for line in h.trace)
    assert site.locks == {"SR_42": "another-run"}


@pytest.mark.parametrize(
    ("state", "status", "expected"),
    [
        ("new", "finished", ["add review", "accept review", "add review", "accept"]),
        ("declined", "cancelled", ["add review", "accept review", "add review"]),
        ("accepted", "cancelled", ["add review", "accept review", "add review"]),
    ],
)
def test_review_before_lock_waits_for_the_reviewer(h, site, state, status, expected) -> None:
    run = launch(h, stages=["review_before_lock", *PLAIN]).wait()
    # waiting in do_review's listen for req_changed_42
    assert run.status == "running"
    assert site.mails[-1]["template"] == "review-notice"
    assert site.mails[-1]["subject"] == "[BOSS] SR#42 waiting for review"
    assert site.request_changes[-1]["reviewer"] == "Mer:Core"  # reviewer defaults to project
    # another request's change wakes nothing
    other = h.launch(MONITOR, fields={"ev": {**EV, "id": "43", "state": "declined"}}).wait()
    assert other.status == "finished" and run.status == "running"
    # the companion process, launched for the state change
    monitor = h.launch(MONITOR, fields={"ev": {**EV, "state": state}}).wait()
    assert monitor.status == "finished"
    run.wait()
    assert run.status == status
    assert actions(site) == expected
    if state == "declined":
        assert site.mails[-1]["template"] == "reject-notice"
    if state == "accepted":
        assert site.mails[-1]["template"] == "accept-notice"
    assert site.locks == {}


def test_trial_build_waits_for_the_builds_and_removes_the_trial_area(h, site) -> None:
    site.unpublished["Mer:Core:Trial:SR42"] = 2
    run = launch(
        h, stages=["trial_build", *PLAIN], build_trial={**CONF["build_trial"], "create": "yes"}
    ).wait()
    assert run.status == "running"  # wait 1m for the scheduler
    h.advance(60)
    run.wait()
    # is_repo_published said no twice: two more minutes
    h.advance(60)
    run.wait()
    h.advance(60)
    run.wait()
    h.advance(30)  # the last wait before the results
    run.wait()
    assert run.status == "finished", run.errors
    published = [c for c in site.calls if c == "is_repo_published"]
    # the source project once (prechecks), the trial project 3 times, the target once
    assert len(published) == 1 + 3 + 1
    assert actions(site)[-3:] == ["add review", "accept review", "accept"]
    assert site.request_changes[-2]["comment"] == "Build trial succeeded."
    # remove_on_success: the trial area goes once the lock is released
    assert site.removed_trials == ["Mer:Core:Trial:SR42"]


def test_trial_build_failure_rejects_inside_the_lock_and_keeps_the_area_a_day(h, site) -> None:
    site.results["get_build_trial_results"] = False
    conf = {**CONF["build_trial"], "create": "yes", "remove_on_fail": "true"}
    run = launch(h, stages=["trial_build", *PLAIN], build_trial=conf).wait()
    h.advance(60)
    run.wait()
    h.advance(30)
    run.wait()
    assert actions(site)[-2:] == ["accept review", "reject"]
    assert (
        site.request_changes[-2]["comment"]
        == "Build trial completed; there were some new failures."
    )
    assert run.fields["status"] == "FAILED"
    # the removal waits keep_failed_for (1d) in a detached branch: the run
    # is not over until it is done
    assert run.status == "running"
    assert site.removed_trials == []
    assert ("release", "Mer:Core") in site.lock_log
    h.advance(86_400)
    run.wait()
    assert run.status == "finished"
    assert site.removed_trials == ["Mer:Core:Trial:SR42"]


def test_a_crash_is_reported_by_the_flanking_error_watcher_and_can_be_replayed(h, site) -> None:
    site.failing["get_userdata"] = "LDAP unreachable"
    run = launch(h).wait()
    assert run.status == "error"
    [err] = run.errors
    assert err["participant"] == "get_userdata"
    # do_log_error heard it: echo, the log channel, the admins' mail
    assert f"process {run.wfid}: SR#42 ERROR" in h.trace
    assert ("#boss-log", f"sr: process {run.wfid} SR#42 ERROR") in site.irc
    [mail] = site.mails
    assert mail["to"] == ["boss-admin@example.org"]
    assert mail["template"] == "error-notice"
    # the operator fixes the cause and replays: the run goes on
    del site.failing["get_userdata"]
    run.replay()
    run.wait()
    assert run.status == "finished"
    assert actions(site)[-1] == "accept"
    assert site.locks == {}


@pytest.mark.parametrize("built", [True, False])
def test_image_build_and_test_stages(h, site, built) -> None:
    site.results["build_image"] = built
    trial = {**CONF["build_trial"], "project": "Mer:Core:Trial:SR42"}
    run = launch(h, stages=["build_image", "test_image", *PLAIN], build_trial=trial).wait()
    assert run.status == "finished", run.errors
    assert "build_ks" in site.calls and "request_image" in site.calls
    if built:
        assert run.fields["status"] == "SUCCESS"
        assert "test_vm_image" in site.calls
        comments = [c["comment"] for c in site.request_changes]
        assert "Image build trial successfully completed." in comments
        assert actions(site)[-1] == "accept"
    else:
        # the cursor breaks on the failed status: no test, the request rejected
        assert run.fields["status"] == "FAILED"
        assert "test_vm_image" not in site.calls
        assert any(line.endswith("Image build failed") for line in h.trace)
        assert actions(site)[-1] == "reject"
