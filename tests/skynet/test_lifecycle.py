"""The life of a pool under a real supervisord, with real participant
processes consuming a real broker (RabbitMQ and the embedded Valkey) and a
real engine worker running processes that use them (issue 4, "What it must
show")."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from skynet import programs
from tests.e2e.conftest import System
from tests.skynet.conftest import HANDLERS, Host
from tests.waiting import wait_for


def _engine(host: Host) -> System:
    """An engine worker process on the host's broker, queues and store."""
    system = System(host.tmp, host.broker_url, host.redis_url, host.prefix)
    system.worker()
    return system


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie is gone too
        return fh.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_install_register_run_scale_crash_disable_uninstall(
    make_host: Callable[..., Host], broker_url: str
) -> None:
    host = make_host(broker_url)
    system = _engine(host)
    try:
        # install: one program file, one RUNNING instance consuming the queue
        out = host.cli(
            "install",
            str(HANDLERS),
            "-n",
            "pool",
            "-q",
            host.queue("pool"),
            "--conf",
            str(host.extra),
        ).output
        assert "installed pool: 1 instance(s)" in out
        assert host.include_files() == ["pool.conf"]
        assert host.states("pool") == {"pool@00": "RUNNING"}
        wait_for(lambda: host.events("start"), 20, "the instance to start its handler")

        # register with the engine, and a process that uses the participant
        assert (
            "registered pool (name) -> " + host.queue("pool") in host.cli("register", "pool").output
        )
        assert any(
            r.pattern == "pool" and r.queue == host.queue("pool")
            for r in system.store.participants()
        )
        first = system.launch("name: one\nsteps:\n  - pool\n  - pool\n")
        system.wait_status(first, timeout=30)
        assert system.engine.run(first).fields["n"] == 2

        # a long step in flight on pool@00 ...
        (p0,) = host.pids("pool").values()
        slow = system.launch("name: slow\nsteps:\n  - pool: {sleep: 8}\n")
        wait_for(lambda: host.events("call", wfid=slow), 20, "the slow step to start")
        assert host.events("call", wfid=slow)[0]["pid"] == p0

        # ... while the pool scales 1 -> 4 -> 2: pool@00 keeps its process
        assert "started pool@01 pool@02 pool@03" in host.cli("scale", "pool", "4").output
        after_up = host.pids("pool")
        assert set(after_up) == {"pool@00", "pool@01", "pool@02", "pool@03"}
        assert after_up["pool@00"] == p0
        assert set(host.states("pool").values()) == {"RUNNING"}
        assert "stopped pool@02 pool@03" in host.cli("scale", "pool", "2").output
        after_down = host.pids("pool")
        assert after_down == {"pool@00": p0, "pool@01": after_up["pool@01"]}
        assert not _alive(after_up["pool@02"]) and not _alive(after_up["pool@03"])
        assert not host.events("done", wfid=slow), "the step ended before the scaling did"
        assert programs.parse(host.config.include_path / "pool.conf").instances == 2

        # the step in flight completes, on the instance that stayed
        system.wait_status(slow, timeout=30)
        assert system.engine.run(slow).fields["pids"] == [p0]
        assert [e["pid"] for e in host.events("done", wfid=slow)] == [p0]

        # an instance crashes mid-step: supervisor restarts it, the step is done
        host.cli(
            "install",
            str(HANDLERS),
            "-n",
            "crash",
            "--class",
            "CrashOnce",
            "-q",
            host.queue("crash"),
            "--conf",
            str(host.extra),
            "--register",
        )
        (c0,) = host.pids("crash").values()
        wfid = system.launch("name: crash\nsteps:\n  - crash: {after: 0.3}\n")
        system.wait_status(wfid, timeout=40)
        assert system.engine.run(wfid).fields["survived"] is True
        (crashed,) = host.events("crash", wfid=wfid)
        (done,) = host.events("done", wfid=wfid)
        assert crashed["pid"] == c0 and done["pid"] != c0
        wait_for(
            lambda: host.states("crash") == {"crash@00": "RUNNING"},
            20,
            "the crashed instance to be RUNNING again",
        )
        assert host.pids("crash")["crash@00"] == done["pid"]
        assert re.search(
            r"exited: crash@00 \(exit status 17", (host.state / "supervisord.log").read_text()
        )

        # disable: stopped, not started again with supervisord, listed as disabled
        assert "disabled pool: STOPPED" in host.cli("disable", "pool").output
        assert set(host.states("pool").values()) == {"STOPPED"}
        assert "autostart = false" in (host.config.include_path / "pool.conf").read_text()
        disabled = host.cli("list", "--disabled").output
        assert "pool" in disabled and "crash" not in disabled
        assert "crash" in host.cli("list", "--enabled").output

        # uninstall: no program file, no supervisor programs, no processes
        live = [*host.pids("crash").values()]
        host.cli("uninstall", "pool", "crash")
        assert host.include_files() == []
        assert host.processes() == {}
        wait_for(lambda: not any(_alive(p) for p in live), 10, "the instances to exit")
    finally:
        system.cleanup()
