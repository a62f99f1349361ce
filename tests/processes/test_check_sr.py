"""processes/StandardWorkflow/BOSS_check_SR.yaml, run in the ProcessHarness.

Every participant is a stub that records one line into ``h.trace`` (so the
exact call order is asserted) and, when told to, fails its check, raises, or
raises once. BOSS_check_SR.conf is merged into the launch fields, as the
launcher does. The paths covered:

* accepted: every precheck passes (with and without waiting for a review;
  the review's listen is woken by a second run, the notice process);
* rejected: a precheck fails (status or result), later ones are skipped;
  a declined review; no review before the timeout;
* an uncaught error (change_request_state, obsticket get) leaves the run in
  ``error`` with the lock still held; ``replay`` (with or without fields)
  finishes it and releases the lock;
* a handled error (a precheck raises): on_error tells the admin, releases
  the lock, and the run ends with status ERROR;
* cancel: the on_cancel of the cursor holding the lock tells the admin and
  releases it; cancelling while the lock is being taken releases nothing;
* ``boss check`` accepts the file;
* one path (review, error, replay) on every store (memory, Valkey, Redis);
* a process-level handler sees the process variables (was BUG-201).

In every path the lock is taken once and released once (or never taken).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bossapp.cli import main as boss
from engine.store.base import RunStore
from engine.testing import HarnessRun, ProcessHarness
from participants.workitem import Workitem

ROOT = Path(__file__).resolve().parents[2]
PROCESS = ROOT / "processes" / "StandardWorkflow" / "BOSS_check_SR.yaml"
CONF = ROOT / "processes" / "StandardWorkflow" / "BOSS_check_SR.conf"

PROJECT = "Mer:Tools"
CHECKS = [
    "check_already_testing",
    "check_has_valid_repo",
    "check_spec",
    "check_package_built_at_source",
]
GET = f"obsticket get {PROJECT}"
RELEASE = f"obsticket release {PROJECT}"

#: the notice process: in BOSS, launched for an OBS request event; it reaches
#: the participant the SR run listens to (request_notice_<request id>)
NOTICE = """\
name: BOSS_request_notice
steps:
  - participant: {ref: "request_notice_${ev.id}"}
"""

TWO_WEEKS = 14 * 24 * 3600


# -- helpers -------------------------------------------------------------------


def conf() -> dict[str, Any]:
    with CONF.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def sr_fields(req_id: int = 42, project: str = PROJECT, **overrides: Any) -> dict[str, Any]:
    """Launch fields: the .conf, then the event, then the test's overrides."""
    ev = {
        "id": req_id,
        "type": "OBS_SRCSRV_REQUEST_CREATE",
        "target_project": project,
        "actions": [
            {
                "type": "submit",
                "sourceproject": "home:dev",
                "sourcepackage": "boss",
                "targetproject": project,
                "targetpackage": "boss",
            }
        ],
    }
    return {**conf(), "ev": ev, **overrides}


class Stubs:
    """Stub participants for the BOSS standard workflow.

    ``fail``: checks that fail by setting status FAILURE; ``fail_result``:
    checks that fail by ``result = False``; ``raise_in``: participants that
    always raise; ``raise_once``: participants that raise on their first call;
    ``notes``: a line a passing check adds to msg; ``hold``: participants
    registered with ``reply=False`` (their workitems wait in ``h.pending``).
    """

    def __init__(
        self,
        h: ProcessHarness,
        *,
        fail: tuple[str, ...] = (),
        fail_result: tuple[str, ...] = (),
        raise_in: tuple[str, ...] = (),
        raise_once: tuple[str, ...] = (),
        notes: dict[str, str] | None = None,
        hold: tuple[str, ...] = (),
    ) -> None:
        self.h = h
        self.notes = notes or {}
        self.fail = set(fail)
        self.fail_result = set(fail_result)
        self.raise_in = set(raise_in)
        self.raise_once = set(raise_once)
        self.calls: dict[str, int] = {}
        for pattern, handler in (
            ("obsticket", self.obsticket),
            ("check_.*", self.check),
            ("change_request_state", self.change_request_state),
            ("notify_irc", self.notify_irc),
            ("notify", self.notify),
            ("notify_admin", self.notify_admin),
            ("request_notice_.*", self.request_notice),
        ):
            h.register(pattern, handler, reply=pattern not in hold)

    def _enter(self, name: str, line: str) -> None:
        self.h.trace.append(line)
        n = self.calls[name] = self.calls.get(name, 0) + 1
        if name in self.raise_in or (name in self.raise_once and n == 1):
            raise RuntimeError(f"{name}: OBS API unreachable")

    def obsticket(self, wi: Workitem) -> None:
        self._enter("obsticket", f"obsticket {wi.params['action']} {wi.params['lock_project']}")

    def check(self, wi: Workitem) -> None:
        name = wi.participant_name
        self._enter(name, name)
        if name in self.fail:
            wi.fields["status"] = "FAILURE"
            wi.msg.append(f"{name}: failed for request {wi.lookup('ev.id')}")
        elif name in self.fail_result:
            wi.result = False
            wi.msg.append(f"{name}: failed for request {wi.lookup('ev.id')}")
        else:
            wi.result = True
            if name in self.notes:
                wi.msg.append(self.notes[name])

    def change_request_state(self, wi: Workitem) -> None:
        self._enter("change_request_state", f"change_request_state {wi.params['action']}")

    def notify_irc(self, wi: Workitem) -> None:
        self._enter("notify_irc", f"notify_irc {wi.params['irc_channel']}")

    def notify(self, wi: Workitem) -> None:
        self._enter("notify", f"notify {wi.params['template']}")

    def notify_admin(self, wi: Workitem) -> None:
        self._enter("notify_admin", "notify_admin")

    def request_notice(self, wi: Workitem) -> None:
        self._enter("request_notice", f"request_notice {wi.lookup('ev.id')}")


def params_of(h: ProcessHarness, participant: str) -> list[dict[str, Any]]:
    """The params of every dispatch to ``participant``, in order."""
    return [wi.params for wi in h.dispatched if wi.participant_name == participant]


def lock_calls(h: ProcessHarness, project: str = PROJECT) -> list[str]:
    return [
        t
        for t in h.trace
        if isinstance(t, str) and t.startswith("obsticket") and t.endswith(f" {project}")
    ]


def launch_sr(
    h: ProcessHarness, req_id: int = 42, project: str = PROJECT, **overrides: Any
) -> HarnessRun:
    return h.launch(PROCESS, fields=sr_fields(req_id, project, **overrides))


def launch_notice(
    h: ProcessHarness,
    req_id: int,
    state: str = "accepted",
    comment: str = "looks good",
    **extra: Any,
) -> HarnessRun:
    fields = {
        "ev": {"id": req_id, "type": "OBS_SRCSRV_REQUEST_REVIEWCHANGED"},
        "review": {"state": state, "by": "lbt", "comment": comment},
        **extra,
    }
    return h.launch(NOTICE, fields=fields).wait()


def is_listening(run: HarnessRun) -> bool:
    return [p.kind for p in run.positions] == ["listen"]


@pytest.fixture
def h() -> Iterator[ProcessHarness]:
    with ProcessHarness() as harness:
        yield harness


# -- the definition and its configuration ------------------------------------


def test_boss_check_accepts_the_definition_clirunner() -> None:
    result = CliRunner().invoke(boss, ["check", str(PROCESS)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{PROCESS}: ok (BOSS_check_SR, ")


def test_boss_check_accepts_the_definition_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bossapp.cli", "check", "--json", str(PROCESS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = yaml.safe_load(proc.stdout)  # JSON is YAML
    assert report == [{"file": str(PROCESS), "ok": True, "problems": []}]


def test_conf_is_yaml_of_launch_fields() -> None:
    c = conf()
    assert c["prechecks"] == CHECKS
    assert c["wait_for_review"] is False
    assert c["irc_channel"] == "#mer-boss"
    assert isinstance(c["mail_to"], list)


# -- accepted -------------------------------------------------------------------


def test_accepted_all_prechecks_pass(h: ProcessHarness) -> None:
    Stubs(h)
    run = launch_sr(h).wait()
    assert run.status == "finished", run.errors
    assert h.trace == [
        GET,
        *CHECKS,
        "change_request_state accept",
        "notify_irc #mer-boss",
        "notify SR_SUCCESS",
        RELEASE,
    ]
    assert run.fields["status"] == "SUCCESS"
    assert run.fields["msg"] == []
    assert run.fields["prechecks_passed"] is True
    assert params_of(h, "change_request_state") == [{"action": "accept", "comment": []}]
    assert params_of(h, "notify") == [
        {"template": "SR_SUCCESS", "mail_to": ["release-team@example.org"], "msg": []}
    ]
    assert lock_calls(h) == [GET, RELEASE]


def test_accepted_collects_msg_of_passing_checks(h: ProcessHarness) -> None:
    """Checks that pass may still add lines; notifications carry them."""
    Stubs(
        h,
        notes={
            "check_spec": "check_spec: boss.spec ok",
            "check_package_built_at_source": "built for 3 of 3 repositories",
        },
    )
    run = launch_sr(h).wait()
    assert run.status == "finished", run.errors
    assert h.trace == [
        GET,
        *CHECKS,
        "change_request_state accept",
        "notify_irc #mer-boss",
        "notify SR_SUCCESS",
        RELEASE,
    ]
    expected_msg = ["check_spec: boss.spec ok", "built for 3 of 3 repositories"]
    assert run.fields["msg"] == expected_msg
    assert params_of(h, "notify_irc") == [{"irc_channel": "#mer-boss", "msg": expected_msg}]
    assert params_of(h, "change_request_state") == [{"action": "accept", "comment": expected_msg}]


def test_no_prechecks_configured(h: ProcessHarness) -> None:
    Stubs(h)
    run = launch_sr(h, prechecks=[]).wait()
    assert run.status == "finished", run.errors
    assert h.trace == [
        GET,
        "change_request_state accept",
        "notify_irc #mer-boss",
        "notify SR_SUCCESS",
        RELEASE,
    ]
    assert run.fields["prechecks_passed"] is True


def test_prechecks_as_comma_string(h: ProcessHarness) -> None:
    """iterator.on takes a comma string too (a .conf written as a string)."""
    Stubs(h)
    run = launch_sr(h, prechecks="check_spec, check_has_valid_repo").wait()
    assert run.status == "finished", run.errors
    assert h.trace[:3] == [GET, "check_spec", "check_has_valid_repo"]


def test_accepted_after_review_woken_by_notice_run(h: ProcessHarness) -> None:
    Stubs(h)
    run = launch_sr(h, wait_for_review=True).wait()
    # prechecks done, now waiting on the listen; the lock is held meanwhile
    assert run.status == "running"
    assert is_listening(run)
    assert h.trace == [GET, *CHECKS]
    assert h.next_timer() == pytest.approx(TWO_WEEKS)

    # the notice's own msg/status/ev must not clobber the SR's (restored)
    notice = launch_notice(h, 42, "accepted", msg=["noise from the notice"], status="NOISE")
    assert notice.status == "finished"
    run.wait()
    assert run.status == "finished", run.errors
    assert h.trace == [
        GET,
        *CHECKS,
        "request_notice 42",
        "change_request_state accept",
        "notify_irc #mer-boss",
        "notify SR_SUCCESS",
        RELEASE,
    ]
    assert run.fields["status"] == "SUCCESS"
    assert run.fields["msg"] == []
    assert run.fields["review"] == {"state": "accepted", "by": "lbt", "comment": "looks good"}
    assert run.fields["ev"]["target_project"] == PROJECT
    assert lock_calls(h) == [GET, RELEASE]
    assert h.next_timer() is None  # the review timeout was cancelled


def test_notice_for_another_request_does_not_wake(h: ProcessHarness) -> None:
    """Two SRs wait for reviews; each notice wakes only its own request's run."""
    Stubs(h)
    sr42 = launch_sr(h, 42, wait_for_review=True).wait()
    sr43 = launch_sr(h, 43, "Mer:Core", wait_for_review=True).wait()
    assert is_listening(sr42) and is_listening(sr43)

    launch_notice(h, 43, "accepted")
    # a notice for 42 that carries no review decision does not match `where`
    launch_notice(h, 42, "new")
    sr42.wait()
    sr43.wait()
    assert sr43.status == "finished", sr43.errors
    assert sr42.status == "running" and is_listening(sr42)
    assert lock_calls(h, "Mer:Core") == ["obsticket get Mer:Core", "obsticket release Mer:Core"]
    assert lock_calls(h) == [GET]

    launch_notice(h, 42, "accepted")
    sr42.wait()
    assert sr42.status == "finished", sr42.errors
    assert sr42.fields["status"] == "SUCCESS"
    assert lock_calls(h) == [GET, RELEASE]


# -- rejected -------------------------------------------------------------------


def test_rejected_when_a_precheck_fails(h: ProcessHarness) -> None:
    Stubs(h, fail=("check_has_valid_repo",))
    run = launch_sr(h).wait()
    assert run.status == "finished", run.errors
    # check_spec and check_package_built_at_source are skipped
    assert h.trace == [
        GET,
        "check_already_testing",
        "check_has_valid_repo",
        "change_request_state reject",
        "notify_irc #mer-boss",
        "notify SR_FAILURE",
        RELEASE,
    ]
    expected_msg = ["check_has_valid_repo: failed for request 42"]
    assert run.fields["status"] == "FAILURE"
    assert run.fields["msg"] == expected_msg
    assert "prechecks_passed" not in run.fields
    assert params_of(h, "change_request_state") == [{"action": "reject", "comment": expected_msg}]
    assert params_of(h, "notify_irc") == [{"irc_channel": "#mer-boss", "msg": expected_msg}]
    assert lock_calls(h) == [GET, RELEASE]


def test_rejected_when_a_precheck_returns_false(h: ProcessHarness) -> None:
    """The other convention: ``workitem.result = False`` sets status FAILURE."""
    Stubs(h, fail_result=("check_spec",))
    run = launch_sr(h).wait()
    assert run.status == "finished", run.errors
    assert h.trace == [
        GET,
        "check_already_testing",
        "check_has_valid_repo",
        "check_spec",
        "change_request_state reject",
        "notify_irc #mer-boss",
        "notify SR_FAILURE",
        RELEASE,
    ]
    assert run.fields["status"] == "FAILURE"
    assert run.fields["msg"] == ["check_spec: failed for request 42"]
    assert lock_calls(h) == [GET, RELEASE]


def test_failed_precheck_skips_the_review(h: ProcessHarness) -> None:
    Stubs(h, fail=("check_already_testing",))
    run = launch_sr(h, wait_for_review=True).wait()
    assert run.status == "finished", run.errors
    assert h.trace == [
        GET,
        "check_already_testing",
        "change_request_state reject",
        "notify_irc #mer-boss",
        "notify SR_FAILURE",
        RELEASE,
    ]
    assert h.next_timer() is None


def test_rejected_when_the_review_is_declined(h: ProcessHarness) -> None:
    Stubs(h, notes={"check_spec": "check_spec: boss.spec ok"})
    run = launch_sr(h, wait_for_review=True).wait()
    assert is_listening(run)
    launch_notice(h, 42, "declined", "please fix the changelog")
    run.wait()
    assert run.status == "finished", run.errors
    assert h.trace == [
        GET,
        *CHECKS,
        "request_notice 42",
        "change_request_state reject",
        "notify_irc #mer-boss",
        "notify SR_FAILURE",
        RELEASE,
    ]
    expected_msg = ["check_spec: boss.spec ok", "review declined by lbt: please fix the changelog"]
    assert run.fields["status"] == "FAILURE"
    assert run.fields["msg"] == expected_msg
    assert params_of(h, "change_request_state") == [{"action": "reject", "comment": expected_msg}]
    assert lock_calls(h) == [GET, RELEASE]


def test_rejected_when_no_review_comes(h: ProcessHarness) -> None:
    Stubs(h, fail=())
    run = launch_sr(h, wait_for_review=True, review_timeout="1d").wait()
    assert is_listening(run)
    h.advance(23 * 3600)
    assert run.status == "running" and is_listening(run)
    h.advance(3600)
    run.wait()
    assert run.status == "finished", run.errors
    assert h.trace == [
        GET,
        *CHECKS,
        "change_request_state reject",
        "notify_irc #mer-boss",
        "notify SR_FAILURE",
        RELEASE,
    ]
    assert run.fields["status"] == "FAILURE"
    assert run.fields["msg"] == ["no review of request 42 within 1d"]
    assert run.fields["__timed_out__"]["timeout"] == 86400
    # a late notice is ignored: nothing listens any more
    launch_notice(h, 42, "accepted")
    assert h.trace[-2:] == [RELEASE, "request_notice 42"]
    assert lock_calls(h) == [GET, RELEASE]


# -- errors -------------------------------------------------------------------------


def test_change_request_state_error_stays_then_replay_finishes(h: ProcessHarness) -> None:
    stubs = Stubs(h, raise_once=("change_request_state",))
    run = launch_sr(h).wait()
    assert run.status == "error"
    [err] = run.errors
    assert err["participant"] == "change_request_state"
    assert err["message"] == "change_request_state: OBS API unreachable"
    assert err["class"] == "RuntimeError"
    assert h.trace == [GET, *CHECKS, "change_request_state accept"]
    assert lock_calls(h) == [GET]  # still held while the run is in error

    run.replay()
    assert run.status == "finished", run.errors
    assert run.errors == []
    assert h.trace == [
        GET,
        *CHECKS,
        "change_request_state accept",
        "change_request_state accept",
        "notify_irc #mer-boss",
        "notify SR_SUCCESS",
        RELEASE,
    ]
    assert stubs.calls["change_request_state"] == 2
    assert run.fields["status"] == "SUCCESS"
    assert run.fields["msg"] == []
    assert lock_calls(h) == [GET, RELEASE]


def test_replay_with_fields(h: ProcessHarness) -> None:
    """The operator replays with a note in msg: it reaches the comment and
    the notifications."""
    Stubs(h, raise_once=("change_request_state",))
    run = launch_sr(h).wait()
    assert run.status == "error"
    note = ["accepted after the OBS outage (replayed by admin)"]
    run.replay(fields={"msg": note, "replayed_by": "admin"})
    assert run.status == "finished", run.errors
    assert params_of(h, "change_request_state") == [
        {"action": "accept", "comment": []},
        {"action": "accept", "comment": note},
    ]
    assert params_of(h, "notify_irc") == [{"irc_channel": "#mer-boss", "msg": note}]
    assert run.fields["msg"] == note
    assert run.fields["replayed_by"] == "admin"
    assert run.fields["status"] == "SUCCESS"
    assert lock_calls(h) == [GET, RELEASE]


def test_reject_error_then_replay(h: ProcessHarness) -> None:
    Stubs(h, fail=("check_spec",), raise_once=("change_request_state",))
    run = launch_sr(h).wait()
    assert run.status == "error"
    assert h.trace[-1] == "change_request_state reject"
    run.replay()
    assert run.status == "finished", run.errors
    assert h.trace[-4:] == [
        "change_request_state reject",
        "notify_irc #mer-boss",
        "notify SR_FAILURE",
        RELEASE,
    ]
    assert run.fields["status"] == "FAILURE"
    assert run.fields["msg"] == ["check_spec: failed for request 42"]
    assert lock_calls(h) == [GET, RELEASE]


def test_lock_get_error_then_replay(h: ProcessHarness) -> None:
    """The lock is never taken: nothing to release until the replay takes it."""
    Stubs(h, raise_once=("obsticket",))
    run = launch_sr(h).wait()
    assert run.status == "error"
    assert run.errors[0]["participant"] == "obsticket"
    assert h.trace == [GET]
    run.replay()
    assert run.status == "finished", run.errors
    assert h.trace == [
        GET,
        GET,
        *CHECKS,
        "change_request_state accept",
        "notify_irc #mer-boss",
        "notify SR_SUCCESS",
        RELEASE,
    ]


def test_precheck_error_is_handled_by_on_error(h: ProcessHarness) -> None:
    Stubs(h, raise_in=("check_spec",), notes={"check_has_valid_repo": "repos: 3 valid"})
    run = launch_sr(h).wait()
    assert run.status == "finished", run.errors
    assert run.errors == []
    # no further check, no change of the request, no ordinary notification
    assert h.trace == [
        GET,
        "check_already_testing",
        "check_has_valid_repo",
        "check_spec",
        "notify_admin",
        RELEASE,
    ]
    assert run.fields["status"] == "ERROR"
    # on_error's line comes after what the checks collected
    assert run.fields["msg"] == [
        "repos: 3 valid",
        "check_spec failed: check_spec: OBS API unreachable",
    ]
    err = run.fields["__error__"]
    assert err["participant"] == "check_spec"
    assert err["class"] == "RuntimeError"
    [admin] = params_of(h, "notify_admin")
    assert admin["subject"] == "[BOSS] BOSS_check_SR failed for request 42"
    assert admin["error"]["message"] == "check_spec: OBS API unreachable"
    assert admin["msg"] == run.fields["msg"]
    assert params_of(h, "change_request_state") == []
    assert lock_calls(h) == [GET, RELEASE]


def test_precheck_error_skips_the_review(h: ProcessHarness) -> None:
    """A crash in the first check: no review is awaited, the lock is released."""
    Stubs(h, raise_in=("check_already_testing",))
    run = launch_sr(h, wait_for_review=True).wait()
    assert run.status == "finished", run.errors
    assert h.trace == [GET, "check_already_testing", "notify_admin", RELEASE]
    assert run.fields["msg"] == [
        "check_already_testing failed: check_already_testing: OBS API unreachable"
    ]
    assert h.next_timer() is None


# -- cancel (on_cancel: handle_cancel) ---------------------------------------------


def test_cancel_while_waiting_for_review_releases_the_lock(h: ProcessHarness) -> None:
    Stubs(h)
    run = launch_sr(h, wait_for_review=True).wait()
    assert is_listening(run)
    run.cancel()
    run.wait()
    assert run.status == "cancelled"
    assert h.trace == [GET, *CHECKS, "notify_admin", RELEASE]
    [admin] = params_of(h, "notify_admin")
    assert admin["subject"] == "[BOSS] BOSS_check_SR cancelled for request 42"
    assert lock_calls(h) == [GET, RELEASE]
    assert h.next_timer() is None  # the review timeout went with the listen
    launch_notice(h, 42, "accepted")  # nothing listens any more
    assert h.trace[-1] == "request_notice 42"
    assert params_of(h, "change_request_state") == []


def test_cancel_while_taking_the_lock_releases_nothing(h: ProcessHarness) -> None:
    Stubs(h, hold=("obsticket",))
    run = launch_sr(h).wait()
    assert [wi.params["action"] for wi in h.pending_for("obsticket")] == ["get"]
    run.cancel()
    run.wait()
    assert run.status == "cancelled"
    # obsticket get is cancelled; the cursor holding the lock never started,
    # so its on_cancel (notify_admin, release) does not run
    assert h.trace == [GET]
    assert [(c.participant, c.flavour) for c in h.cancelled] == [("obsticket", "cancel")]
    assert h.pending == {}


def test_cancel_a_run_in_error_releases_the_lock(h: ProcessHarness) -> None:
    Stubs(h, raise_in=("change_request_state",))
    run = launch_sr(h).wait()
    assert run.status == "error"
    assert lock_calls(h) == [GET]
    run.cancel()
    run.wait()
    assert run.status == "cancelled"
    assert run.errors == []
    assert h.trace == [GET, *CHECKS, "change_request_state accept", "notify_admin", RELEASE]
    assert lock_calls(h) == [GET, RELEASE]


# -- BUG-201: process-level handlers lose the process variables --------------------

#: the first design of BOSS_check_SR's cancel path: a process-level handler
#: that releases the lock only when v:lock_held says it was taken
LOCK_HELD = """\
name: lock_held
{attr}: release_if_held
subprocesses:
  release_if_held:
    - obsticket: {{action: release, lock_project: "${{ev.target_project}}"}}
      if: "${{v:lock_held}} == true"
steps:
  - obsticket: {{action: get, lock_project: "${{ev.target_project}}"}}
  - set: {{"v:lock_held": true}}
  - {last}
"""


@pytest.mark.parametrize(
    ("attr", "last"),
    [("on_cancel", "listen: {to: never_reached}"), ("on_error", "error: boom")],
)
def test_process_level_handler_sees_process_variables(
    h: ProcessHarness, attr: str, last: str
) -> None:
    Stubs(h)
    run = h.launch(LOCK_HELD.format(attr=attr, last=last), fields=sr_fields()).wait()
    if attr == "on_cancel":
        run.cancel()
        run.wait()
    assert run.status == ("cancelled" if attr == "on_cancel" else "finished")
    assert lock_calls(h) == [GET, RELEASE]


# -- the same run on every store (memory, embedded Valkey, a machine's Redis) ------


def test_review_error_and_replay_on_every_store(store: RunStore) -> None:
    """Listeners, timers and errors live in the store: the review path with
    a replay behaves the same on Redis as in memory."""
    with ProcessHarness(store=store) as h:
        Stubs(h, raise_once=("change_request_state",))
        run = launch_sr(h, wait_for_review=True).wait()
        assert is_listening(run)
        launch_notice(h, 43, "accepted")  # another request: ignored
        launch_notice(h, 42, "declined", "no changelog entry")
        run.wait()
        assert run.status == "error"
        assert run.errors[0]["participant"] == "change_request_state"
        assert lock_calls(h) == [GET]
        run.replay()
        assert run.status == "finished", run.errors
        assert h.trace == [
            GET,
            *CHECKS,
            "request_notice 43",
            "request_notice 42",
            "change_request_state reject",
            "change_request_state reject",
            "notify_irc #mer-boss",
            "notify SR_FAILURE",
            RELEASE,
        ]
        assert run.fields["status"] == "FAILURE"
        assert run.fields["msg"] == ["review declined by lbt: no changelog entry"]
        assert lock_calls(h) == [GET, RELEASE]
        assert h.next_timer() is None
