"""The standard workflow end to end: processes/StandardWorkflow/BOSS_handle_SR.yaml
(once it is the faithful port of SRCSRV_REQUEST_CREATE.BOSS_handle_SR.pdef)
launched by the real OBS launcher code for a recorded ``request.create``
event, from a process store laid out as robogrator's (the project's
``OBS_SRCSRV_REQUEST_CREATE.BOSS_handle_SR.yaml`` and its ``.conf``: the real
SRCSRV_REQUEST_CREATE.BOSS_handle_SR.conf's fields with the practical
stages), with every real participant the process calls running under
``boss-participant`` against the fakes.

Stages run: auto_review, prechecks, accept, reject, report (its bugzilla
step only runs with the ``bugzilla`` stage, left out: the compat Bugzilla
client cannot make a call on Python 3, see test_participants.py). Not run:
review_* (they wait for a person), trial_build, build_image, test_image,
qa-vote, revs (no build farm, image builder or OTS behind the fake).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.launchers.base import RawEvent
from engine.launchers.launcher import Launcher
from engine.launchers.obs import ObsSource
from engine.launchers.settings import LauncherSettings
from engine.process_store import read_conf
from tests.compat.conftest import CHANNEL, ROOT, CompatSite, compat_payload

PROCESS = ROOT / "processes" / "StandardWorkflow" / "BOSS_handle_SR.yaml"
FAITHFUL = "# faithful port of SRCSRV_REQUEST_CREATE.BOSS_handle_SR.pdef"
LABEL = "OBS_SRCSRV_REQUEST_CREATE"

#: the .conf's prechecks that run against the fake OBS (sentinel kept)
PRECHECKS = [
    "check_multiple_destinations",
    "check_no_changes",
    "check_has_valid_repo",
    "check_package_built_at_source",
    "",
]

#: every participant BOSS_handle_SR calls with those stages and prechecks
HANDLE_SR_PARTICIPANTS = [
    "obsticket",
    "get_userdata",
    "change_request_state",
    "is_repo_published",
    "get_request",
    "get_notify_recipients_obs",
    "notify",
    "notify_irc",
    *[p for p in PRECHECKS if p],
]


def faithful_port() -> bool:
    return PROCESS.exists() and FAITHFUL in (
        line.strip() for line in PROCESS.read_text(encoding="utf-8").splitlines()
    )


def handle_sr_conf(compat: Path, **overrides: Any) -> dict[str, Any]:
    """SRCSRV_REQUEST_CREATE.BOSS_handle_SR.conf (read in place, as the
    process store reads a .conf) with the practical stages and prechecks,
    IRC on ``#boss``, and ``overrides``."""
    conf = read_conf(compat / "processes" / "SRCSRV_REQUEST_CREATE.BOSS_handle_SR.conf")
    conf.update(
        stages=["auto_review", "prechecks", "accept", "reject", "report", ""],
        prechecks=PRECHECKS,
        obsurl="https://build.example.com/",
        admin_emails=["admin@example.com"],
        irc={"log_channel": CHANNEL, "req_channel": CHANNEL, "highlight": ""},
    )
    conf.update(overrides)
    return conf


def launch_process_file(
    site: CompatSite,
    process: Path,
    conf: dict[str, Any],
    message: dict[str, Any],
    *,
    name: str = "BOSS_handle_SR",
) -> list[str]:
    """Launch ``process`` for the OBS bus ``message`` (``{"routing_key",
    "body"}``) the way ``boss launcher obs`` does: a process store with
    ``<target project as path>/OBS_SRCSRV_REQUEST_CREATE.<name>.yaml``
    (a link to ``process``) and ``.conf`` (``conf``, written as YAML) for
    each target project, then the real ``Launcher.handle`` on the message
    (normalised by ``ObsSource``; one run per target, fields = the conf's
    and ``ev``). Returns the wfids."""
    store = site.system.tmp / "store"
    [event] = ObsSource().normalise(_raw(message))
    for target in event.targets:
        where = store.joinpath(*target.split(":"))
        where.mkdir(parents=True, exist_ok=True)
        link = where / f"{LABEL}.{name}.yaml"
        link.unlink(missing_ok=True)
        link.symlink_to(process)
        (where / f"{LABEL}.{name}.conf").write_text(yaml.safe_dump(conf))
    settings = dataclasses.replace(
        LauncherSettings.load(site.system.config), process_store=str(store)
    )
    launcher = Launcher(site.system.config, settings, publisher=site.system.publisher)
    try:
        outcome = launcher.handle(ObsSource(), _raw(message))
    finally:
        launcher.close()
    assert outcome.reason is None, outcome.reason
    return outcome.wfids


def _raw(message: dict[str, Any]) -> RawEvent:
    return RawEvent(body=json.dumps(message["body"]).encode(), routing_key=message["routing_key"])


def test_launch_fields_are_the_conf_and_the_event(compat_dir: Path) -> None:
    """What the launch helper gives a run, checked without a broker: the
    .conf's fields and ``ev`` as the OBS launcher maps the event."""
    message = compat_payload(compat_dir, "request_create")
    [event] = ObsSource().normalise(_raw(message))
    conf = handle_sr_conf(compat_dir / "boss-standard-workflow")
    fields = {**conf, "ev": event.ev(event.targets[0])}
    assert fields["template"]["accept"] == "accept-notice"
    assert fields["stages"][:2] == ["auto_review", "prechecks"]
    assert fields["ev"]["id"] == "1100456"
    assert fields["ev"]["who"] == "jdoe"
    assert fields["ev"]["namespace"] == "opensuse.obs"
    assert fields["ev"]["target_project"] == "devel:tools"
    assert fields["ev"]["label"] == LABEL


@pytest.mark.skipif(
    not faithful_port(),
    reason=f"{PROCESS.relative_to(ROOT)} is not the faithful port yet "
    f"(it has no line {FAITHFUL!r})",
)
def test_boss_handle_sr_end_to_end(site: CompatSite, compat_dir: Path) -> None:
    # notify.py of the compat copy cannot send a mail on Python 3 (its
    # fixup_utf8 calls str.decode): its successor, BOSS's
    # participants.standard.notify, runs with the same notify.conf and the
    # real Cheetah templates
    site.start(*HANDLE_SR_PARTICIPANTS, successors=("notify",))
    message = compat_payload(compat_dir, "request_create")
    ev = site.new_request_event(message, one_action=True)
    message["body"].update(id=int(ev["id"]), number=int(ev["id"]))
    message["body"]["actions"] = message["body"]["actions"][:1]
    rid = ev["id"]
    [wfid] = launch_process_file(site, PROCESS, handle_sr_conf(site.compat), message)

    # the SR is accepted in OBS, after the automated review
    from tests.waiting import wait_for

    def accepted() -> bool:
        loaded = site.system.store.load_run(wfid)
        errors = loaded[0].get("errors") if loaded else None
        assert not errors or site.obs.requests[rid]["state"] == "accepted", (
            f"SR#{rid} not accepted ({site.obs.requests[rid]['state']}); "
            f"run errors: {[(e['participant'], e['message']) for e in errors]}"
        )
        return site.obs.requests[rid]["state"] == "accepted"

    wait_for(accepted, 90, f"SR#{rid} accepted")
    [change] = [c for c in site.obs.changes if c["id"] == rid]
    assert change["newstate"] == "accepted"
    assert [(c["cmd"], c["newstate"]) for c in site.obs.review_changes if c["id"] == rid] == [
        ("addreview", "new"),
        ("changereviewstate", "accepted"),
    ]
    # IRC shows do_log's lines and the accept notice
    site.said(f"SR#{rid} Got request lock, process started")
    site.said(f"SR#{rid} running check_has_valid_repo")
    site.said(f"SR#{rid} Prechecks done")
    site.said(f"SR#{rid} Accepting")
    # the locks were the SR's and the target project's (robogrator launched
    # with fields.project = the target project; the .pdef locks ${project})
    prjdir = site.system.tmp / "obsticket"
    assert (prjdir / f"SR_{rid}.tail").exists()
    assert (prjdir / "devel:tools.tail").exists(), sorted(p.name for p in prjdir.iterdir())

    status, errors = site.outcome(wfid, timeout=60)
    assert (status, errors) == ("finished", [])
    # do_notify_accept: the mail, then the IRC notice
    site.said(
        f"SR#{rid} Accepted promotion request at https://build.example.com//request/show/{rid}"
    )
    fields = site.system.engine.run(wfid).fields
    assert fields["status"] == "SUCCESS"
    [mail] = site.smtp.to("jdoe@example.com")
    assert mail.subject == f"[BOSS] SR#{rid} Accepted promotion request"
    assert "Thanks for your contribution Jane Doe" in mail.body


SMALL = """
name: BOSS_handle_SR
steps:
  - get_request: {req_id: "${ev.id}", field: req, no_diff: "true"}
  - notify_irc:
      irc_channel: "${irc.req_channel}"
      msg: "${pname} SR#${ev.id} for ${ev.target_project}: ${req.state.name}"
"""


def test_launch_helper_runs_a_store_process(site: CompatSite, compat_dir: Path) -> None:
    """The helper above, on a small process in place of the port: one run
    per target project, with the .conf's fields and ``ev``."""
    site.start("get_request", "notify_irc")
    process = site.system.tmp / "small.yaml"
    process.write_text(SMALL)
    message = compat_payload(compat_dir, "request_create")
    ev = site.new_request_event(message)
    message["body"].update(id=int(ev["id"]), number=int(ev["id"]))
    wfids = launch_process_file(site, process, handle_sr_conf(site.compat), message)
    assert len(wfids) == 2  # devel:tools and devel:tools:Testing
    for wfid in wfids:
        site.system.wait_status(wfid)
    rid = ev["id"]
    for target in ("devel:tools", "devel:tools:Testing"):
        site.said(f"BOSS SR#{rid} for {target}: new")
