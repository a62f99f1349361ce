"""The embedded Valkey is supervised (issue 20, item 4) and keeps what it
acknowledged (item 2).

* A real engine worker and participant process on the embedded default (no
  URLs, only a state dir): ``kill -9`` the Valkey and they start it again,
  exactly one of them, saying so in its log; a run launched before the kill
  and one launched after both finish; with the worker stopped, the
  participant alone brings it back the next time.
* A deliberate stop (``shutdown_embedded``, ``EmbeddedValkey.stop``) is not
  undone by a watcher; a deliberate start afterwards is watched again.
* A forked child has a live watcher of its own.
* A server this module did not start (``boss-valkey.service``) is not
  watched.
* Every write the server acknowledged before a ``kill -9`` is there after
  the restart, with each fsync policy (the reply is sent after ``write(2)``:
  the page cache has it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine import embedded
from engine.broker import Publisher
from engine.config import Config
from engine.embedded import EmbeddedValkey, ensure_embedded, shutdown_embedded, unwatch
from engine.store import RedisStore
from tests.waiting import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ROOT / "tests" / "e2e" / "handlers.py"
RESTARTED = "was not running: started it again (pid "


def servers_of(state: Path) -> list[int]:
    """The pids of the valkey-server processes serving ``state`` (their
    working directory), zombies left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") != str(state):
                continue
            if "valkey" not in (entry / "comm").read_text():
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
        except OSError:
            continue
        found.append(int(entry.name))
    return found


def serving_pid(state: Path) -> int | None:
    """The pid of the server answering on the state dir's socket, if any."""
    server = EmbeddedValkey(state)
    status, pid = server._probe()
    return pid if status == "up" else None


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not embedded._pid_alive(pid), 10, f"valkey-server {pid} to die")


# -- a worker and a participant bring it back -------------------------------------


class Rig:
    """An engine worker and a participant process on the embedded default of
    ``state`` (their config names no URL); the test itself talks to the
    server by its socket, without watching it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.state = (tmp / "state").resolve()
        self.prefix = f"sup{uuid.uuid4().hex[:8]}"
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        server = EmbeddedValkey(self.state, detach=True).start()  # no watcher here
        self.url = server.url
        common = dict(
            key_prefix=f"{self.prefix}:",
            engine_queue=f"{self.prefix}.engine",
            deadletter_queue=f"{self.prefix}.deadletter",
            control_exchange=f"{self.prefix}.control",
            event_exchange=f"{self.prefix}.eiffel",
            trace_queue=f"{self.prefix}.trace",
            trace_deadletter_queue=f"{self.prefix}.trace.deadletter",
            heartbeat=0.5,
            lease_after=1.0,
            lease=3.0,
            visibility_timeout=4.0,
        )
        boss = "[boss]\n" + f"state_dir = {self.state}\n"
        boss += "".join(f"{k} = {v}\n" for k, v in common.items())
        self.ini = tmp / "boss.ini"
        self.ini.write_text(boss)
        # the test's own view: explicit URLs, so this process watches nothing
        self.config = Config.load(
            None,
            environ={},
            broker_url="redis+socket://" + server.url.removeprefix("unix://"),
            redis_url=server.url,
            **common,
        )
        self.store = RedisStore(server.url, prefix=self.config.key_prefix)
        self.publisher = Publisher(self.config)
        self.report = tmp / "report.jsonl"
        self.queue = f"{self.prefix}.bump"
        (tmp / "bump.ini").write_text(
            f"[participant]\nname = bump\nqueue = {self.queue}\ncode = {HANDLERS}\n"
            f"class = Bump\n\n{boss}\n[report]\npath = {self.report}\n"
        )

    def spawn(self, name: str, argv: list[str]) -> Path:
        log = self.tmp / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOSS_")}
        env["PYTHONPATH"] = str(ROOT)
        env["HOME"] = str(self.tmp)  # no ~/.config/boss/boss.ini of the machine's
        with log.open("ab") as fh:
            popen = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.procs.append((name, popen, log))
        return log

    def start(self) -> None:
        before = {e["id"] for e in self.store.engines()}
        self.spawn(
            "worker",
            [sys.executable, "-m", "bossapp.cli", "-c", str(self.ini), "worker",
             "--loglevel", "INFO", "--hostname", f"sup-{self.prefix}@test"],
        )  # fmt: skip
        wait_for(
            lambda: {e["id"] for e in self.store.engines()} - before or self.dead(),
            60,
            "the engine worker to start",
        )
        from engine.engine import Engine

        Engine(self.store).register("bump", self.queue, regex=False)
        ini = str(self.tmp / "bump.ini")
        log = self.spawn("participant", [sys.executable, "-m", "participants.runtime", ini])
        wait_for(lambda: "consuming" in log.read_text() or self.dead(), 60, "the participant")
        assert not self.dead(), self.logs()

    def dead(self) -> list[str]:
        return [name for name, p, _ in self.procs if p.poll() is not None]

    def logs(self) -> str:
        return "\n".join(
            f"==== {name} (exit {p.poll()}) ====\n{log.read_text(errors='replace')[-6000:]}"
            for name, p, log in self.procs
        )

    def launch(self, steps: int, sleep: float) -> str:
        wfid = f"{self.prefix}-{uuid.uuid4().hex[:8]}"
        body = "".join(f"  - bump: {{tag: s{i}, sleep: {sleep}}}\n" for i in range(steps))
        self.publisher.send({"definition": f"name: sup\nsteps:\n{body}", "wfid": wfid})
        return wfid

    def status(self, wfid: str) -> str | None:
        try:
            loaded = self.store.load_run(wfid)
        except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError, OSError):
            return None  # the server is being started again
        return loaded[0]["status"] if loaded else None

    def steps_done(self, wfid: str) -> int:
        if not self.report.exists():
            return 0
        lines = [json.loads(x) for x in self.report.read_text().splitlines() if x.strip()]
        return sum(1 for x in lines if x["wfid"] == wfid)

    def stop(self) -> None:
        for _, p, _ in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, p, _ in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for closer in (self.publisher.close, self.store.close):
            with contextlib.suppress(Exception):
                closer()
        shutdown_embedded(self.state)


@pytest.fixture
def rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    r = Rig(tmp_path)
    try:
        yield r
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(r.logs())
        r.stop()


def test_a_killed_server_is_started_again_by_its_dependents(rig: Rig) -> None:
    rig.start()
    old = serving_pid(rig.state)
    assert old is not None and servers_of(rig.state) == [old]
    before = rig.launch(steps=6, sleep=0.4)
    wait_for(lambda: rig.steps_done(before) >= 1, 60, "the first run's first step")

    kill9(old)

    new = wait_for(
        lambda: (pid := serving_pid(rig.state)) not in (None, old) and pid,
        30,
        "the worker or the participant to start the Valkey again",
    )
    assert servers_of(rig.state) == [new]
    assert int((rig.state / "valkey.pid").read_text()) == new
    wait_for(
        lambda: f"{RESTARTED}{new})" in rig.logs(), 10, "the restart to be logged", interval=0.2
    )
    lines = [x for x in rig.logs().splitlines() if RESTARTED in x]
    assert len(lines) == 1, lines  # one process started it; the others found it up
    assert f"embedded Valkey at {rig.state} was not running" in lines[0]

    after = rig.launch(steps=3, sleep=0.05)
    for wfid in (before, after):
        wait_for(lambda w=wfid: rig.status(w) == "finished", 120, f"run {wfid} to finish")
    assert servers_of(rig.state) == [new]  # nobody started a second one meanwhile
    assert not rig.dead(), rig.logs()

    # with the engine worker gone, the participant alone brings it back
    name, worker, _ = rig.procs[0]
    assert name == "worker"
    worker.send_signal(signal.SIGTERM)
    worker.wait(30)
    kill9(new)
    third = wait_for(
        lambda: (pid := serving_pid(rig.state)) not in (None, new) and pid,
        30,
        "the participant to start the Valkey again",
    )
    participant_log = rig.procs[1][2]
    wait_for(
        lambda: f"{RESTARTED}{third})" in participant_log.read_text(),
        10,
        "the participant's log to say so",
        interval=0.2,
    )
    assert servers_of(rig.state) == [third]


# -- a deliberate stop, a deliberate start, a fork ---------------------------------


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    path = (tmp_path / "state").resolve()
    try:
        yield path
    finally:
        unwatch(path)
        shutdown_embedded(path)


def watcher_of(state: Path) -> embedded._Watcher:
    return embedded._watchers[state]


def wait_looks(watcher: embedded._Watcher, n: int = 3) -> None:
    """Until ``watcher`` has looked at the server ``n`` more times."""
    start = watcher.looks
    wait_for(lambda: watcher.looks >= start + n, 30, f"the watcher to look {n} times")


def test_a_deliberate_stop_is_not_undone_and_a_deliberate_start_is_watched(
    state: Path,
) -> None:
    ensure_embedded(state)
    watcher = watcher_of(state)
    assert watcher.thread.is_alive()

    assert shutdown_embedded(state) is True
    assert (state / "valkey.stopped").exists()
    wait_looks(watcher)
    assert serving_pid(state) is None and servers_of(state) == []
    assert watcher.check() is False and servers_of(state) == []

    # a deliberate start (any boss command) clears the mark: watched again
    ensure_embedded(state)
    assert not (state / "valkey.stopped").exists()
    assert watcher_of(state) is watcher and watcher.thread.is_alive()
    old = serving_pid(state)
    assert old is not None
    kill9(old)
    wait_for(lambda: watcher.restarts == 1, 30, "the watcher to start it again")
    new = serving_pid(state)
    assert new not in (None, old) and servers_of(state) == [new]


def test_stopping_a_server_one_started_is_deliberate_too(state: Path) -> None:
    server = EmbeddedValkey(state).start()  # a child process of this one
    embedded.watch(state)
    watcher = watcher_of(state)
    wait_looks(watcher, 1)
    server.stop()
    wait_looks(watcher)
    assert serving_pid(state) is None and watcher.restarts == 0


def test_a_failed_start_does_not_stand_the_watchers_down(state: Path) -> None:
    """``start()`` cleans up after a server that died at start: not a
    deliberate stop."""
    server = EmbeddedValkey(state, config={"no-such-option": "1"})
    with pytest.raises(embedded.EmbeddedError):
        server.start()
    assert not (state / "valkey.stopped").exists()


def test_two_watchers_noticing_at_once_start_one_server(state: Path) -> None:
    EmbeddedValkey(state, detach=True).start()
    old = serving_pid(state)
    assert old is not None
    kill9(old)
    watchers = [embedded._Watcher(state, None) for _ in range(4)]
    barrier = threading.Barrier(len(watchers))
    started: list[bool] = []

    def check(w: embedded._Watcher) -> None:
        barrier.wait()
        started.append(w.check())

    threads = [threading.Thread(target=check, args=(w,)) for w in watchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(started) == [False, False, False, True]
    new = serving_pid(state)
    assert new is not None and servers_of(state) == [new]


def test_a_forked_child_has_a_live_watcher_of_its_own(state: Path) -> None:
    ensure_embedded(state)
    parent = watcher_of(state)
    pid = os.fork()
    if pid == 0:  # the child: its own thread, alive
        try:
            child = embedded._watchers.get(state)
            ok = child is not None and child is not parent and child.thread.is_alive()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert parent.thread.is_alive()


def test_a_server_started_elsewhere_is_not_watched(state: Path, tmp_path: Path) -> None:
    """Like boss-valkey.service: its own config file, systemd restarts it."""
    state.mkdir(parents=True)
    own = EmbeddedValkey(state)
    conf = tmp_path / "service-valkey.conf"
    conf.write_text(
        f'daemonize no\nport 0\nunixsocket "{own.socket_path}"\nunixsocketperm 700\n'
        f'dir "{state}"\npidfile "{own.pidfile}"\nlogfile "{own.log_path}"\n'
        'appendonly yes\nsave ""\n'
    )
    service = subprocess.Popen([embedded._binary(), str(conf)], cwd=state)
    try:
        wait_for(lambda: serving_pid(state) == service.pid, 30, "the service's server")
        ensure_embedded(state)  # reuses it ...
        assert state not in embedded._watchers  # ... without watching it
    finally:
        service.terminate()
        service.wait(30)


# -- what a kill -9 of the server loses: nothing it acknowledged -----------------------


@pytest.mark.parametrize("fsync", ["everysec", "no", "always"])
def test_every_acknowledged_write_survives_a_kill_9(tmp_path: Path, fsync: str) -> None:
    """A writer stores keys one by one as fast as it can and notes each
    reply; the server is killed -9 in the middle of it (no clean shutdown,
    no flush, writes since the last fsync only in the page cache); after a
    restart every acknowledged key is there. With
    ``appendfsync no`` too: the reply follows the write(2) to the AOF, and
    a killed process leaves the page cache to the kernel."""
    state = tmp_path / "state"
    server = EmbeddedValkey(state, detach=True, config={"appendfsync": fsync}).start()
    acked: list[int] = []
    broken: list[BaseException] = []

    def write() -> None:
        client = redis.Redis.from_url(server.url, retry_on_timeout=False)
        try:
            i = 0
            while True:
                client.set(f"k{i}", i)  # returns once the server replied
                acked.append(i)
                client.rpush("ticks", i)  # a second structure, in the same AOF
                acked.append(-i - 1)
                i += 1
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            broken.append(exc)
        finally:
            client.close()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        # past the first background fsync (everysec): some of what it
        # acknowledged was fsynced, the rest is only in the page cache
        began = time.monotonic()
        wait_for(
            lambda: (len(acked) >= 2000 and time.monotonic() - began > 1.5) or broken,
            90,
            "1.5 s and 2000 acknowledged writes",
        )
        assert not broken, broken
        kill9(server.pid)  # while the writer is still writing
        writer.join(30)
        assert broken, "the writer should have lost its server"
        keys = [i for i in acked if i >= 0]
        ticks = [-i - 1 for i in acked if i < 0]
        restarted = EmbeddedValkey(state, detach=True, config={"appendfsync": fsync}).start()
        assert restarted.started
        client = redis.Redis.from_url(restarted.url)
        stored = client.mget([f"k{i}" for i in keys])
        missing = [i for i, v in zip(keys, stored, strict=True) if v != str(i).encode()]
        assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
        listed = [int(x) for x in client.lrange("ticks", 0, -1)]
        assert listed[: len(ticks)] == ticks
        client.close()
    finally:
        shutdown_embedded(state)
