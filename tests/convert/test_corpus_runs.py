"""Every real BOSS process, converted by ``boss convert`` from the compat
data in place, runs in the ProcessHarness with participants that do what
the real ones do (``tests.processes.boss_participants``), with the real
``.conf`` of the process where it has one: the path each process takes is
the path the ruote original took."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bossapp.pdef import convert
from engine.testing import HarnessRun, ProcessHarness
from tests.processes.boss_participants import Site, harness


@pytest.fixture
def site() -> Site:
    return Site()


@pytest.fixture
def h(site: Site) -> ProcessHarness:
    return harness(site)


def launch(h: ProcessHarness, processes: Path, stem: str, fields: dict[str, Any]) -> HarnessRun:
    """Convert ``stem``.pdef, check the output, launch it with its real
    .conf (when it has one) under ``fields``."""
    result = convert((processes / f"{stem}.pdef").read_text(encoding="utf-8"), f"{stem}.pdef")
    assert result.findings == []
    conf_path = processes / f"{stem}.conf"
    conf = yaml.safe_load(conf_path.read_text()) if conf_path.is_file() else {}
    return h.launch(result.yaml, fields={**(conf or {}), **fields}).wait()


BUILD_EV = {"project": "Mer:Core", "repository": "standard", "package": "bash", "arch": "i586"}


def test_handle_sr_accepts_a_good_request(h, site, processes) -> None:
    run = launch(
        h,
        processes,
        "SRCSRV_REQUEST_CREATE.BOSS_handle_SR",
        {
            "project": "Mer:Core",
            "stages": ["auto_review", "prechecks", "accept", "report", "bugzilla", ""],
            "emails": ["release@example.org"],
            "ev": {
                "id": "42",
                "who": "alice",
                "author": "alice",
                "actions": [{"type": "submit", "sourceproject": "home:alice"}],
            },
        },
    )
    assert run.status == "finished", run.errors
    assert [c["action"] for c in site.request_changes] == ["add review", "accept review", "accept"]
    assert [m["subject"] for m in site.mails] == ["[BOSS] SR#42 Accepted promotion request"]
    assert site.locks == {}


def test_req_change_monitor_reaches_req_changed(h, site, processes) -> None:
    run = launch(h, processes, "SRCSRV_REQUEST_STATECHANGE.BOSS_handle_SR", {"ev": {"id": "42"}})
    assert run.status == "finished"
    assert site.calls == ["request_notice"]


def test_auto_ci_waits_for_the_repository_then_runs_the_enabled_tasks(h, site, processes) -> None:
    site.unpublished["Mer:Core"] = 1
    run = launch(
        h,
        processes,
        "BUILD_SUCCESS.auto_ci",
        {
            "ev": BUILD_EV,
            "auto": {"repo": "standard", "enabled": ["prjconf", "patterns", "doc"], "level": "1"},
            "irc": {"log_channel": "#ci"},
        },
    )
    assert run.status == "running"  # repeat: wait 1m, then ask
    h.advance(60)
    run.wait()
    assert run.status == "running"  # not published yet: once more
    h.advance(60)
    run.wait()
    assert run.status == "finished", run.errors
    assert site.calls.count("is_repo_published") == 2
    # get_provides found nothing: no update; autodoc_deploy ran
    assert "update_meta" not in site.calls and "autodoc_deploy" in site.calls
    assert run.fields["ev"]["id"] == "Mer:Core_standard_bash"
    assert ("#ci", f"process {run.wfid} Mer:Core_standard_bash running doc") in site.irc


def test_auto_ci_ignores_other_repositories(h, site, processes) -> None:
    run = launch(
        h,
        processes,
        "BUILD_SUCCESS.auto_ci",
        {"ev": BUILD_EV, "auto": {"repo": "other", "enabled": ["doc"]}},
    )
    assert run.status == "cancelled"
    assert site.calls == []


@pytest.mark.parametrize("selected", [{}, {"bash-tests": ["t1"]}])
def test_auto_ci_qa_runs_only_with_test_packages(h, site, processes, selected) -> None:
    run = launch(
        h,
        processes,
        "BUILD_SUCCESS.auto_ci",
        {
            "ev": BUILD_EV,
            "auto": {"repo": "standard", "enabled": ["qa"]},
            "qa": {"selected_test_packages": selected},
            "irc": {"log_channel": "#ci", "req_channel": "#mer", "highlight": "ci:"},
        },
    )
    h.advance(60)
    run.wait()
    if selected:
        h.advance(5)  # wait '5s' before testing
        run.wait()
    assert run.status == "finished", run.errors
    assert ("test_vm_image" in site.calls) is bool(selected)


def test_notify_failure_tells_irc_when_the_build_failed(h, site, processes) -> None:
    site.results["get_build_results"] = False
    run = launch(
        h,
        processes,
        "SRCSRV_COMMIT.notify_failure",
        {"ev": BUILD_EV, "irc": {"log_channel": "#ci"}},
    )
    h.advance(60)
    run.wait()
    assert run.status == "finished", run.errors
    assert site.irc == [("#ci", "")]


def test_notify_failure_skips_patterns(h, site, processes) -> None:
    run = launch(
        h, processes, "SRCSRV_COMMIT.notify_failure", {"ev": {**BUILD_EV, "package": "_pattern"}}
    )
    assert run.status == "cancelled"
    assert site.calls == []


def test_delete_webhook(h, site, processes) -> None:
    run = launch(h, processes, "SRCSRV_DELETE_PACKAGE.delete_webhook", {"ev": BUILD_EV})
    assert run.status == "finished"
    assert site.calls == ["delete_webhook", "notify_irc"]
    assert site.irc == [
        (
            "#commits",
            "package bash in project Mer:Core and any associated webhook mappings were deleted",
        )
    ]


def test_promotion_reminder_diffs_every_pair(h, site, processes) -> None:
    site.results["obs_repodiff"] = False
    run = launch(
        h,
        processes,
        "promotion_reminder",
        {
            "project_pairs": [
                {"source": "Mer:Core:Testing", "target": "Mer:Core"},
                {"source": "Mer:Tools:Testing", "target": "Mer:Tools"},
            ],
            "irc": {"log_channel": "#mer"},
        },
    )
    assert run.status == "finished", run.errors
    assert site.calls.count("obs_repodiff") == 2
    assert site.irc == [("#mer", ""), ("#mer", "")]
