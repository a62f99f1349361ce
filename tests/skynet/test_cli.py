"""The ``skynet`` command on a real (private) supervisord: bad input says
what is wrong and leaves nothing half-installed; apply touches only what
changed; info, status, log, manual, enable; supervisord not running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from skynet.supervisor import Supervisor
from tests.skynet.conftest import FIXTURES, HANDLERS, Host
from tests.waiting import wait_for


def test_bad_input_is_a_clear_message_and_nothing_is_installed(host: Host, tmp_path: Path) -> None:
    cases = [
        (
            ["install", str(FIXTURES / "missing.py")],
            f"skynet: code file {FIXTURES / 'missing.py'}: no such file",
        ),
        (
            ["install", str(FIXTURES / "bad_signature.py")],
            "ParticipantHandler.handle_wi must take (self, wi); it takes (self)",
        ),
        (["install", str(FIXTURES / "no_handler.py")], "it has no class ParticipantHandler"),
        (
            ["install", str(FIXTURES / "broken_import.py")],
            "cannot import it: ModuleNotFoundError: No module named 'a_module_that_does_not_exist'",
        ),
        (
            ["install", str(HANDLERS), "--class", "Nope"],
            "it has no class Nope (handler classes in it: CrashOnce, ParticipantHandler; "
            "use --class)",
        ),
        (
            ["install", str(HANDLERS), "-u", "no-such-user-here"],
            "skynet: no such user 'no-such-user-here' on this host (run-as user)",
        ),
        (["install", str(HANDLERS), "-n", "a b"], "invalid participant name 'a b'"),
        (["install", str(HANDLERS), "-i", "0"], "instances = 0: must be 1 to 100"),
        (["install", str(HANDLERS), "-r", "(unclosed"], "not a regular expression"),
    ]
    for args, message in cases:
        result = host.cli(*args, code=2)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert host.include_files() == []
    assert host.processes() == {}
    # a duplicate name: the first stays as it was
    host.cli("install", str(HANDLERS), "-n", "dup", "--no-apply")
    before = (host.config.include_path / "dup.conf").read_text()
    result = host.cli(
        "install", str(FIXTURES / "misbehaving.py"), "-n", "dup", "--class", "Spews", code=2
    )
    assert "participant 'dup' is already installed" in result.output
    assert (host.config.include_path / "dup.conf").read_text() == before
    assert host.include_files() == ["dup.conf"] and host.processes() == {}


def test_unknown_participants_and_no_supervisord(host: Host, tmp_path: Path) -> None:
    for verb in ("start", "stop", "info", "scale", "uninstall", "log", "register"):
        args = [verb, "ghost"] + (["2"] if verb == "scale" else [])
        result = host.cli(*args, code=1)
        assert result.output.strip() == (
            "skynet: no participant 'ghost' is installed (see 'skynet list')"
        ), verb
    assert "name a participant, or give --all" in host.cli("start", code=2).output
    # a system supervisord that is not running
    ini = tmp_path / "system.ini"
    ini.write_text(
        f"[skynet]\nsupervisor_url = unix://{tmp_path}/none.sock\ninclude_dir = {tmp_path}/conf.d\n"
    )
    from click.testing import CliRunner

    from skynet.cli import main

    result = CliRunner().invoke(main, ["-c", str(ini), "list"])
    assert result.exit_code == 1
    assert result.output.startswith(
        f"skynet: supervisord is not running (nothing answers at unix://{tmp_path}/none.sock"
    )
    result = CliRunner().invoke(main, ["-c", str(ini), "install", str(HANDLERS)])
    assert result.exit_code == 1 and "supervisord is not running" in result.output
    assert not (tmp_path / "conf.d").exists() or not list((tmp_path / "conf.d").iterdir())


def test_a_socket_the_caller_may_not_open_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from skynet.errors import NotPermitted

    client = Supervisor(f"unix://{tmp_path}/s.sock")

    def refuse(*_a: object, **_k: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(client._transport, "request", refuse)
    with pytest.raises(NotPermitted, match="add you to the 'skynet' group"):
        client.supervisor.getState()


def test_apply_touches_only_what_changed(host: Host) -> None:
    host.install("keep", instances=2)
    host.install("edit")
    keep, edit = host.pids("keep"), host.pids("edit")
    assert "nothing changed" in host.cli("apply").output
    # an edit of one participant's own config restarts that one only
    conf = host.config.include_path / "edit.conf"
    conf.write_text(conf.read_text().replace("[report]\n", "[report]\nflavour = new\n"))
    result = host.cli("apply")
    assert "restarted: edit@00" in result.output and "keep" not in result.output
    assert host.pids("keep") == keep
    assert host.pids("edit")["edit@00"] != edit["edit@00"]
    wait_for(lambda: host.states("edit") == {"edit@00": "RUNNING"}, 20, "edit to restart")
    # a program file removed by hand: apply stops and removes its instances
    conf.unlink()
    assert "removed: edit@00" in host.cli("apply").output
    assert set(host.processes()) == {"keep@00", "keep@01"}
    assert host.pids("keep") == keep
    # rebuild rewrites from what the file records: nothing to restart
    assert "nothing changed" in host.cli("rebuild", "--all").output
    assert host.pids("keep") == keep


def test_info_status_list_log_enable_and_manual(host: Host) -> None:
    host.install("bump", instances=2, regexp="bump_.*")
    host.cli("register", "bump")
    info = host.cli("info", "bump").output
    for line in (
        "name:        bump",
        f"location:    {host.config.include_path}/bump.conf",
        f"code:        {HANDLERS}",
        "class:       ParticipantHandler",
        f"queue:       {host.queue('bump')}",
        "regexp:      bump_.*",
        "instances:   2",
        "state:       RUNNING",
        "states:      bump@00 RUNNING, bump@01 RUNNING",
        f"registered:  bump_.* -> {host.queue('bump')}",
        "sections:    report",
        "description: Bumps ``n``; sleeps ``params.sleep`` seconds first.",
    ):
        assert line in info, (line, info)
    assert "queue depth: 0 waiting" in info
    status = host.cli("status", "bump").output.splitlines()
    assert status[0].split() == ["PARTICIPANT", "INSTANCE", "STATE", "PID", "DESCRIPTION"]
    assert [r.split()[:3] for r in status[1:]] == [
        ["bump", "bump@00", "RUNNING"],
        ["bump", "bump@01", "RUNNING"],
    ]
    listing = host.cli("list").output.splitlines()
    assert listing[1].split()[:5] == ["bump", "RUNNING", "2/2", host.queue("bump"), "yes"]
    wait_for(lambda: len(host.events("start")) == 2, 20, "both handlers to start")
    # each instance's last log line, once each has logged one
    log = wait_for(
        lambda: (lambda out: len(out) == 2 and out)(
            host.cli("log", "bump", "-n", "1").output.splitlines()
        ),
        20,
        "a log line each",
    )
    assert [x.split(":")[0] for x in log] == ["bump@00", "bump@01"]
    assert "unregistered bump" in host.cli("unregister", "bump").output

    host.cli("disable", "bump")
    assert "enabled bump: RUNNING" in host.cli("enable", "bump").output
    assert set(host.states("bump").values()) == {"RUNNING"}
    assert "autostart = true" in (host.config.include_path / "bump.conf").read_text()
    before = host.pids("bump")
    assert "bump: RUNNING" in host.cli("reload", "--all").output
    assert set(host.pids("bump").values()).isdisjoint(before.values())
    assert set(host.states("bump").values()) == {"RUNNING"}

    # manual: one instance in the foreground, stopped with Ctrl-C
    host.cli("stop", "bump")
    proc = subprocess.Popen(
        [sys.executable, "-m", "skynet.cli", "-c", str(host.ini), "manual", "bump"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "consuming" in line:
                break
        assert lines[0].startswith("running ") and "participants.runtime" in lines[0]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_run_as_and_permissions(make_host: Callable[..., Host], embedded_broker_url: str) -> None:
    from skynet.errors import NotPermitted
    from skynet.permissions import Caller
    from skynet.pools import Pools

    host = make_host(embedded_broker_url)
    host.install("mine", apply=False, user="nobody")
    assert "user = nobody" in (host.config.include_path / "mine.conf").read_text()
    host.install("rooted", apply=False)
    member = Pools(host.config, Caller(1000, frozenset({"users", "skynet"})))
    outsider = Pools(host.config, Caller(1000, frozenset({"users"})))
    nobody = Pools(host.config, Caller(65534, frozenset()))
    try:
        # a member of 'skynet' manages user-owned participants, and the user its own
        member.rebuild(["mine"])
        nobody.rebuild(["mine"])
        with pytest.raises(
            NotPermitted, match="only root, that user and members of the 'skynet' group may"
        ):
            outsider.uninstall("mine")
        # participants that run as root are root's
        for pools in (member, nobody):
            with pytest.raises(NotPermitted, match=r"^root-only: participants that run as root"):
                pools.uninstall("rooted")
            with pytest.raises(NotPermitted, match=r"^root-only"):
                pools.install(HANDLERS, "more", apply=False)
        assert host.include_files() == ["mine.conf", "rooted.conf"]
    finally:
        for p in (member, outsider, nobody):
            p.close()
