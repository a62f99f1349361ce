"""The ``boss`` command against a running system (workers and participants
as processes): every verb, human output and ``--json``, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.core import states
from tests.e2e.conftest import System
from tests.waiting import wait_for

THREE = "name: three\nsteps:\n  - bump\n  - bump\n  - bump\n"


@pytest.fixture
def running(system: System) -> System:
    system.worker()
    system.participant("bump", "Bump")
    return system


def test_launch_wait_fields_and_show(running: System, tmp_path: Path) -> None:
    path = tmp_path / "three.yaml"
    path.write_text(THREE.replace("  - bump\n", "  - bump: {sleep: 0.5}\n", 1))
    out = running.boss(
        "launch",
        str(path),
        "--wait",
        "--timeout",
        "60",
        "-f",
        "n=10",
        "-f",
        "change.sha=c0ffee",
        "-f",
        "tags=[a, b]",
    )
    wfid, status = out.stdout.strip().rsplit(": ", 1)
    assert status == "finished"
    assert "bump (0_0) waiting" in out.stderr  # it follows the run as it goes
    shown = json.loads(running.boss("show", wfid, "--json").stdout)
    assert shown["status"] == "finished"
    assert shown["fields"]["n"] == 13  # a number, bumped three times
    assert shown["fields"]["change"] == {"sha": "c0ffee"}
    assert shown["fields"]["tags"] == ["a", "b"]
    human = running.boss("show", wfid).stdout
    assert f"run      {wfid}" in human and "status   finished" in human and "n: 13" in human


def test_launch_json_and_a_process_from_the_store(running: System) -> None:
    store = Path(running.config.process_dir)
    (store / "ci").mkdir()
    (store / "ci" / "three.yaml").write_text(THREE)
    out = running.boss("launch", "ci/three", "--json")
    wfid = json.loads(out.stdout)["wfid"]
    running.wait_status(wfid)
    assert running.engine.run(wfid).name == "three"


def test_launch_refuses_a_bad_definition_before_sending_anything(
    running: System, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nsteps:\n  - concurence:\n      - bump\n")
    out = running.boss("launch", str(bad), check=False)
    assert out.returncode == 2
    assert f"{bad}:3:5:" in out.stderr and "did you mean 'concurrence'" in out.stderr
    missing = running.boss("launch", "no/such/process", check=False)
    assert missing.returncode == 2 and "no process 'no/such/process'" in missing.stderr
    assert running.engine.count_runs()["running"] == 0
    assert running.store.list_runs() == []


def test_launch_wait_exits_1_on_an_error(running: System, tmp_path: Path) -> None:
    running.participant("build", "Raise")
    path = tmp_path / "b.yaml"
    path.write_text("name: b\nsteps:\n  - build\n")
    out = running.boss("launch", str(path), "--wait", "--timeout", "60", check=False)
    assert out.returncode == 1 and out.stdout.strip().endswith(": error")


def test_ps_and_errors(running: System) -> None:
    running.participant("build", "Raise")
    ok = [running.launch(THREE) for _ in range(3)]
    bad = running.launch("name: b\nsteps:\n  - build\n", {"project": "x"})
    for wfid in ok:
        running.wait_status(wfid)
    running.wait_status(bad, states.ERROR)
    listed = json.loads(running.boss("ps", "--json").stdout)
    assert listed["counts"]["finished"] == 3 and listed["counts"]["error"] == 1
    assert {r["wfid"] for r in listed["runs"]} == {*ok, bad}
    only = json.loads(running.boss("ps", "--status", "error", "--json").stdout)
    assert [r["wfid"] for r in only["runs"]] == [bad]
    human = running.boss("ps", "--name", "three").stdout.splitlines()
    assert human[0].split() == ["WFID", "PROCESS", "STATUS", "LAUNCHED", "(UTC)"]
    assert len(human) == 1 + 3 + 1 and "finished: 3" in human[-1]
    errs = running.boss("errors").stdout
    assert bad in errs and "RuntimeError: cannot build x" in errs
    shown = running.boss("show", bad).stdout
    assert "errors:" in shown and "Traceback" in shown


def test_pause_resume_kill_and_cancel_one_step(running: System) -> None:
    running.participant("sleeper", "Sleeper")
    wfid = running.launch("name: p\nsteps:\n  - sleeper: {seconds: 2}\n  - bump\n")
    wait_for(lambda: running.events("call"), 20, "the sleeper to start")
    running.boss("pause", wfid)
    running.wait_status(wfid, states.PAUSED)
    # the sleeper's reply comes while paused: held, not applied
    wait_for(
        lambda: running.store.load_run(wfid)[0].get("held"), 20, "the reply, held by the paused run"
    )
    assert running.status(wfid) == states.PAUSED
    running.boss("resume", wfid)
    running.wait_status(wfid)
    assert running.engine.run(wfid).fields["n"] == 1

    victim = running.launch("name: k\nsteps:\n  - sleeper: {seconds: 60}\n")
    running.wait_status(victim, states.RUNNING)
    running.boss("kill", victim)
    running.wait_status(victim, states.KILLED)

    one = running.launch("name: s\nsteps:\n  - sleeper: {seconds: 60}\n  - bump\n")
    wait_for(
        lambda: (
            running.status(one) == states.RUNNING
            and running.engine.positions(one)[0].name == "sleeper"
        ),
        20,
        "the sleeper step",
    )
    running.boss("cancel", one, "--step", "0_0")
    running.wait_status(one)
    assert running.engine.run(one).fields["n"] == 1


def test_operations_on_an_unknown_run_fail_clearly(running: System) -> None:
    for verb in ("cancel", "kill", "pause", "resume", "show", "replay"):
        out = running.boss(verb, "no-such-run", check=False)
        assert out.returncode == 1, verb
        assert "no run no-such-run" in out.stderr, (verb, out.stderr)


def test_register_participants_unregister(running: System) -> None:
    running.boss("register", "build_.*", "--queue", f"{running.prefix}.builders")
    running.boss("register", "first", "--position", "0")
    rows = json.loads(running.boss("participants", "--json").stdout)
    assert [r["pattern"] for r in rows] == ["first", "bump", "build_.*"]
    assert rows[2]["regex"] is True and rows[2]["queue"] == f"{running.prefix}.builders"
    bump = rows[1]
    assert bump["queue"] == f"{running.prefix}.bump" and bump["messages"] == 0
    if not running.broker_url.startswith("redis"):
        assert bump["consumers"] == 1  # RabbitMQ counts consumers
    human = running.boss("participants").stdout
    assert "build_.*" in human and "regex" in human
    bad = running.boss("register", "build_[", "--queue", "q", check=False)
    assert bad.returncode == 2 and "not a valid regular expression" in bad.stderr
    running.boss("unregister", "first")
    gone = running.boss("unregister", "first", check=False)
    assert gone.returncode == 1 and "no registration 'first'" in gone.stderr


def test_deadletters_reinject_a_corrected_body(running: System, tmp_path: Path) -> None:
    running.publisher.publish(b'{"process": ', queue=running.config.engine_queue)
    (letter,) = wait_for(
        lambda: json.loads(running.boss("deadletters", "--json").stdout), 20, "the dead letter"
    )
    assert letter["reason"].startswith("not JSON") and letter["body"] == '{"process": '
    human = running.boss("deadletters").stdout
    assert letter["id"] in human and "not JSON" in human
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps({"definition": THREE, "wfid": f"{running.prefix}-fixed"}))
    out = running.boss("deadletters", "reinject", letter["id"], "--body", str(fixed))
    assert f"re-injected {letter['id']}" in out.stdout
    running.wait_status(f"{running.prefix}-fixed")
    assert json.loads(running.boss("deadletters", "--json").stdout) == []
    missing = running.boss("deadletters", "drop", "nope", check=False)
    assert missing.returncode == 1 and "no dead letter nope" in missing.stderr


def test_workers_lists_the_live_engine_workers(running: System) -> None:
    live = json.loads(running.boss("workers", "--json").stdout)
    (w,) = live
    assert w["pid"] == running.procs[0].popen.pid and w["queue"] == running.config.engine_queue
