"""``boss demo``: the whole distributed system on one machine, nothing to set up.

With no configuration it uses the embedded Valkey (``engine.embedded``) as
run store *and* broker (kombu's Redis transport), starts one engine worker
(``boss worker``, a Celery worker) and the demo participants
(``participants.demo``) as separate processes, registers them, launches
``processes/demo/pipeline.yaml`` (sequence, concurrence, a parallel
iterator), prints each step as it starts, ends or fails, replays the build
that fails on its first host, and stops every process it started. The runs
stay in the store: ``boss ps`` shows them afterwards.

With a configuration (``--config``, ``BOSS_*``) the same demo runs on that
broker and store instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kombu.utils.url import maybe_sanitize_url

from engine.config import Config
from engine.core import messages, runstate, states

DEMO_PROCESS = Path(__file__).resolve().parent.parent / "processes" / "demo" / "pipeline.yaml"

#: (registered pattern, queue, handler class in participants.demo, instances)
PARTICIPANTS = [
    ("check_.*", "demo.check", "Check", 2),
    ("build", "demo.build", "Build", 1),
    ("run_tests", "demo.run_tests", "RunTests", 2),
    ("release_candidate", "demo.release_candidate", "ReleaseCandidate", 1),
]


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log: Path


@dataclass(eq=False)
class Demo:
    """One demo: start, launch, watch, replay, stop (see the module docstring)."""

    config: Config
    out: Callable[[str], None] = print
    process: Path = DEMO_PROCESS
    timeout: float = 120.0
    web: str | None = "127.0.0.1:8080"
    web_server: Any = field(default=None, init=False)
    procs: list[_Proc] = field(default_factory=list, init=False)
    started_embedded: bool = field(default=False, init=False)
    t0: float = field(default_factory=time.monotonic, init=False)

    # -- set-up ---------------------------------------------------------------------

    def _state_dir(self) -> Path:
        from engine.embedded import default_state_dir

        return Path(self.config.state_dir) if self.config.state_dir else default_state_dir()

    def start(self) -> None:
        from engine.embedded import EmbeddedValkey

        if self.config.embedded:
            server = EmbeddedValkey(self._state_dir())
            self.started_embedded = not server.is_running()
        broker = self.config.resolved_broker_url()
        store_url = self.config.resolved_redis_url()
        # the children read this configuration from the environment
        self.env = {
            **os.environ,
            "BOSS_BROKER_URL": broker,
            "BOSS_REDIS_URL": store_url,
            "BOSS_KEY_PREFIX": self.config.key_prefix,
            "BOSS_ENGINE_QUEUE": self.config.engine_queue,
            "BOSS_DEADLETTER_QUEUE": self.config.deadletter_queue,
            "BOSS_CONTROL_EXCHANGE": self.config.control_exchange,
        }
        self.env.pop("BOSS_CONFIG", None)
        if self.config.embedded:
            self.out(f"store and broker: the embedded Valkey at {store_url}")
        else:
            self.out(
                f"store: {maybe_sanitize_url(store_url)}  broker: {maybe_sanitize_url(broker)}"
            )
        from engine.engine import Engine
        from engine.store import open_store

        self.store = open_store(store_url, prefix=self.config.key_prefix)
        self.engine = Engine(self.store)
        logs = self._state_dir() / "demo"
        logs.mkdir(parents=True, exist_ok=True)
        before = {e["id"] for e in self.store.engines()}
        self._spawn(
            "engine worker",
            [
                sys.executable,
                "-m",
                "bossapp.cli",
                "worker",
                "--loglevel",
                "WARNING",
                "--hostname",
                f"boss-demo-{os.getpid()}@localhost",
            ],
            logs / "worker.log",
        )
        for pattern, queue, cls, instances in PARTICIPANTS:
            self.engine.register(pattern, queue)
            ini = logs / f"{cls}.ini"
            ini.write_text(
                f"[participant]\nname = {pattern}\nqueue = {queue}\n"
                f"code = participants.demo\nclass = {cls}\n"
            )
            for i in range(instances):
                self._spawn(
                    f"{cls} #{i + 1}",
                    [sys.executable, "-m", "participants.runtime", str(ini)],
                    logs / f"{cls}-{i + 1}.log",
                )
        self.out(
            f"started an engine worker and {len(self.procs) - 1} participant processes "
            f"(logs in {logs})"
        )
        deadline = time.monotonic() + 60
        while not {e["id"] for e in self.store.engines()} - before:
            self._check_children()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the engine worker did not start within 60s: see {logs / 'worker.log'}"
                )
            time.sleep(0.05)
        if self.web:
            from webui.serve import serve_in_thread

            web_config = self.config.replace(broker_url=broker, redis_url=store_url)
            self.web_server, url = serve_in_thread(
                web_config, self.web, users={"demo": ("demo-password", "admin")}
            )
            asked = self.web.rpartition(":")[2]
            taken = (
                f"; port {asked} was taken"
                if asked not in ("", "0") and not url.rstrip("/").endswith(f":{asked}")
                else ""
            )
            self.out(f"web UI: {url} (log in as demo / demo-password{taken})")

    def _spawn(self, name: str, argv: list[str], log: Path) -> None:
        with log.open("ab") as fh:
            popen = subprocess.Popen(
                argv, stdout=fh, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        self.procs.append(_Proc(name, popen, log))

    def _check_children(self) -> None:
        for p in self.procs:
            if p.popen.poll() is not None:
                tail = p.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{p.name} exited ({p.popen.returncode}):\n{tail}")

    # -- the run --------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.out(f"  {time.monotonic() - self.t0:6.2f}s  {text}")

    def run(self) -> dict[str, Any]:
        from engine.broker import Publisher
        from engine.engine import new_wfid
        from engine.trace import EventBus, eiffel

        wfid = new_wfid()
        publisher = Publisher(self.config.replace(broker_url=self.env["BOSS_BROKER_URL"]))
        # the change, as a VCS launcher would announce it on the trace bus
        commit = "c0ffee" + "0" * 34
        scc = eiffel.source_change_created(
            commit=commit, repo_uri="https://git.example/hello.git", repo_name="hello"
        )
        scs = eiffel.source_change_submitted(
            scc["meta"]["id"],
            commit=commit,
            repo_uri="https://git.example/hello.git",
            repo_name="hello",
        )
        EventBus(self.config, publisher).publish([scc, scs])
        self.change_event = scs["meta"]["id"]
        fields = {
            "project": "hello",
            "change": "c0ffee",
            "targets": ["x86_64", "aarch64"],
            "change_event": self.change_event,
        }
        self.out(f"launching {self.process.name} as {wfid}")
        self.t0 = time.monotonic()
        publisher.send(
            {
                "definition": self.process.read_text(encoding="utf-8"),
                "filename": str(self.process),
                "fields": fields,
                "wfid": wfid,
                "cause": [self.change_event],
            }
        )
        seen: dict[str, tuple[str, str]] = {}  # eid -> (state, step name)
        replayed = False
        deadline = time.monotonic() + self.timeout
        status = None
        while time.monotonic() < deadline:
            loaded = self.store.load_run(wfid)
            if loaded is None:
                time.sleep(0.02)
                continue
            st = runstate.upgrade(loaded[0])
            status = runstate.status(st)
            now = {p.eid: p for p in self.engine.positions(wfid)}
            for eid, p in now.items():
                label = f"{p.name:<18}"
                if seen.get(eid, ("", ""))[0] != p.state:
                    if p.state == states.WAITING:
                        self.say(f"{label} started")
                    elif p.state == states.FAILED:
                        err = next((e for e in runstate.errors(st) if e["eid"] == eid), {})
                        self.say(f"{label} FAILED: {err.get('class')}: {err.get('message')}")
                    seen[eid] = (p.state, p.name)
            for eid in [e for e in seen if e not in now]:
                if seen[eid][0] == states.WAITING:
                    self.say(f"{seen[eid][1]:<18} done")
                del seen[eid]
            if status == states.ERROR and not replayed:
                self.say("replaying the failed build on builder-2")
                publisher.send(messages.replay(wfid, fields={"build_host": "builder-2"}))
                replayed = True
            if status in states.ENDED_RUN_STATES:
                break
            self._check_children()
            time.sleep(0.05)
        publisher.close()
        info = self.engine.run(wfid)
        self.say(f"run {wfid} {info.status}")
        for line in info.fields.get("msg", []):
            self.out(f"    {line}")
        if info.fields.get("rc"):
            self.out(f"release candidate {info.fields['rc']} is ready")
        trace = self.trace(wfid) if info.status == states.FINISHED else {}
        return {"status": info.status, "fields": info.fields, "wfid": wfid, "trace": trace}

    def trace(self, wfid: str) -> dict[str, Any]:
        """What the traceability graph says about the change afterwards."""
        from engine.trace import Graph, activity_id, graph_prefix, lead_time, trace_up

        graph = Graph(self.store.client, prefix=graph_prefix(self.config))
        end = activity_id(wfid, None, "finished")
        deadline = time.monotonic() + 15
        while not graph.exists(end) and time.monotonic() < deadline:
            time.sleep(0.05)  # the aggregator is a moment behind the run
        up = trace_up(graph, self.change_event)
        seconds = lead_time(graph, self.change_event, "releaseCandidate")
        levels = sorted(e["data"]["name"] for e in up["confidence_levels"])
        run_events = len(graph.chain(activity_id(wfid, None, "triggered")))
        self.out(
            f"trace: change c0ffee is in {len(up['artifacts'])} artifact(s) with "
            f"confidence levels {', '.join(levels)}; the run recorded {run_events} "
            "events"
        )
        if seconds is not None:
            self.out(
                f"lead time from the change to releaseCandidate: {seconds:.2f}s "
                f"(boss trace lead-time {self.change_event} --level releaseCandidate)"
            )
        return {
            "artifacts": len(up["artifacts"]),
            "levels": levels,
            "lead_time": seconds,
            "run_events": run_events,
        }

    # -- tear-down --------------------------------------------------------------------

    def stop(self) -> None:
        if self.web_server is not None:
            self.web_server.shutdown()
        for p in self.procs:
            if p.popen.poll() is None:
                os.killpg(p.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for p in self.procs:
            try:
                p.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.popen.pid, signal.SIGKILL)
                p.popen.wait()
        if getattr(self, "store", None) is not None:
            self.store.close()
        if self.started_embedded:
            from engine.embedded import shutdown_embedded

            shutdown_embedded(self._state_dir())
        self.out(
            f"stopped {len(self.procs)} processes"
            + (" and the embedded Valkey (the runs stay on disk)" if self.started_embedded else "")
        )


class DemoStopped(Exception):
    """The demo was stopped by a signal (SIGINT, SIGTERM); everything it
    started has been stopped. ``signum`` is the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_stopped(signum: int, frame: Any) -> None:
    raise DemoStopped(signum)


def _ignore(signum: int, frame: Any) -> None:
    """A second signal while stopping: the stop goes on."""


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def run_demo(
    config: Config | None = None,
    out: Callable[[str], None] = print,
    process: Path = DEMO_PROCESS,
    web: str | None = "127.0.0.1:8080",
    serve: bool = False,
) -> dict[str, Any]:
    """Run the demo; returns the run's status, fields and wfid. ``web``: where
    the web UI serves while it runs (None: not at all; the next free port
    when that one is taken); ``serve``: keep the system and the UI running
    after the pipeline, until Ctrl-C or SIGTERM.

    SIGINT and SIGTERM stop the demo cleanly whenever they come: the child
    processes and the embedded Valkey are stopped, then :class:`DemoStopped`
    is raised. SIGINT is handled even when the demo was started in the
    background (``boss demo &``: the shell starts it with SIGINT ignored)."""
    demo = Demo(config or Config.load(), out=out, process=process, web=web)
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in _SIGNALS} if main else {}
    try:
        demo.start()
        result = demo.run()
        if serve:
            out("serving the web UI and the demo system: Ctrl-C (or SIGTERM) stops them")
            while True:
                time.sleep(3600)
        return result
    except DemoStopped as exc:
        out(f"{exc}: stopping the demo")
        raise
    finally:
        for sig in previous:
            signal.signal(sig, _ignore)  # the stop is not interrupted
        try:
            demo.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
