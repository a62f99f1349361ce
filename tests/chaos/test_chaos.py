"""Chaos (issue 20): processes killed at random while runs go on lose nothing.

On each broker (RabbitMQ, and the embedded Valkey through kombu's Redis
transport), as real OS processes started the way a user starts them: two
engine workers (``boss worker``, each with its trace aggregator child
process), a trace aggregator (``boss aggregator``) and three participant
processes (``boss-participant``: ``participants.runtime``) of a tiny
participant (``tests/chaos/handlers.py``) that notes every execution of
every step in a file. The process has ten participant steps, three of them
the branches of a concurrence.

``RUNS`` runs are launched, spread over the chaos, ``BURST`` of them at
once a third of the way in, while every 1 to 3 s (random, seeded: the seed
is printed; ``BOSS_CHAOS_SEED`` replays the schedule) a random engine
worker, aggregator (``boss aggregator`` or a worker's child) or participant
gets ``kill -9`` and is started again at once (an aggregator child by its
worker, as in production). After the last kill every run must end (a
deadline generous next to the seconds recovery takes), and then:

* no run is lost: every launch made a run, and it finished;
* no step is missing in a finished run: each participant step was executed
  and counted in the run's fields exactly as the process says;
* no step completed twice: each step's count in the run's fields is 1 (a
  reply applied twice would count 2, or skip a step), and the run's Eiffel
  activity events in the graph are exactly one triggered, started and
  finished per step and for the run;
* a step *executed* again by a participant because the one that had it
  was killed (at-least-once) is allowed, and counted.

The figures (runs, kills by kind, re-executions, anything lost, slowest
run, wall time) are printed (``pytest -s``; under xdist ``-rP`` shows them,
as a report section). On failure: the kill log, each bad run's state,
executions and events with the kills around its launch, on the Redis
transport where its missing messages are (a queue, an in-flight list,
``unacked``, or nowhere), and the warnings in every process's log.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import random
import re
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.broker import is_redis, queue_info
from engine.core import states
from engine.trace import eiffel
from engine.trace.activity import activity_id
from engine.trace.aggregator import graph_prefix
from engine.trace.bus import EventBus
from engine.trace.graph import Graph
from tests.e2e.conftest import Proc, System
from tests.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

HANDLERS = Path(__file__).with_name("handlers.py")

#: runs launched per broker (a burst of ``BURST`` of them at once, the rest
#: spread over the chaos), and kills (one every 1 to 3 s)
RUNS = int(os.environ.get("BOSS_CHAOS_RUNS", "100"))
BURST = int(os.environ.get("BOSS_CHAOS_BURST", "40"))
KILLS = int(os.environ.get("BOSS_CHAOS_KILLS", "18"))
KILL_EVERY = (1.0, 3.0)
#: after the last kill, seconds every run has to finish (recovery takes a
#: few: a redelivery, a visibility timeout or lease of 3-4 s)
DEADLINE = float(os.environ.get("BOSS_CHAOS_DEADLINE", "90"))

SEQ_BEFORE = ["c_s1", "c_s2", "c_s3"]
BRANCHES = ["c_b1", "c_b2", "c_b3"]
SEQ_AFTER = ["c_s4", "c_s5", "c_s6", "c_s7"]
STEPS = SEQ_BEFORE + BRANCHES + SEQ_AFTER

PROCESS = (
    "name: chaos\nsteps:\n"
    + "".join(f"  - {s}\n" for s in SEQ_BEFORE)
    + "  - concurrence:\n      merge_type: union\n      branches:\n"
    + "".join(f"        - {s}\n" for s in BRANCHES)
    + "".join(f"  - {s}\n" for s in SEQ_AFTER)
)

_TRANSITION = {"T": "triggered", "S": "started", "F": "finished", "C": "canceled"}

#: a run that will not change any more
ENDED = {*states.ENDED_RUN_STATES, states.ERROR}

ACTIVITY = {
    "EiffelActivityTriggeredEvent": "T",
    "EiffelActivityStartedEvent": "S",
    "EiffelActivityFinishedEvent": "F",
    "EiffelActivityCanceledEvent": "C",
}


@dataclass
class Kill:
    at: float  # seconds since the chaos began
    kind: str
    slot: str
    pid: int
    restarted: int | None  # the new process's pid (None: its worker restarts it)


@dataclass
class Chaos:
    system: System
    seed: int
    slots: dict[str, Proc] = field(default_factory=dict)
    kills: list[Kill] = field(default_factory=list)
    launched: dict[str, float] = field(default_factory=dict)  # wfid -> time.time()
    started: float = 0.0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # -- processes ---------------------------------------------------------------------

    def _start_boss(self, slot: str, *verb: str) -> Proc:
        """``boss -c boss.ini VERB... --loglevel INFO`` in ``slot``."""
        cmd = [sys.executable, "-m", "bossapp.cli", "-c", str(self.system.ini), *verb[:1]]
        proc = self.system._spawn(slot, [*cmd, "--loglevel", "INFO", *verb[1:]])
        self.slots[slot] = proc
        return proc

    def start_worker(self, slot: str) -> Proc:
        return self._start_boss(
            slot, "worker", "--hostname", f"{slot}-{uuid.uuid4().hex[:6]}@chaos"
        )

    def start_aggregator(self, slot: str) -> Proc:
        return self._start_boss(slot, "aggregator")

    def start_participant(self, slot: str) -> Proc:
        proc = self.system._spawn(
            slot, [sys.executable, "-m", "participants.runtime", str(self.participant_ini)]
        )
        self.slots[slot] = proc
        return proc

    @property
    def participant_ini(self) -> Path:
        return self.system.tmp / "chaos.ini"

    @property
    def executions_log(self) -> Path:
        return self.system.tmp / "executions.txt"

    def restart(self, slot: str) -> Proc:
        if slot.startswith("worker"):
            return self.start_worker(slot)
        if slot.startswith("aggregator"):
            return self.start_aggregator(slot)
        return self.start_participant(slot)

    def targets(self) -> dict[str, list[tuple[str, int]]]:
        """Per kind, the (slot, pid) of every process of it that may be
        killed now: engine workers, aggregators (``boss aggregator`` and the
        workers' aggregator child processes), participants."""
        out: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for slot, proc in self.slots.items():
            if not proc.alive():
                continue
            if slot.startswith("worker"):
                out["worker"].append((slot, proc.popen.pid))
                out["aggregator"] += [(slot, pid) for pid in _aggregator_children(proc)]
            elif slot.startswith("aggregator"):
                out["aggregator"].append((slot, proc.popen.pid))
            else:
                out["participant"].append((slot, proc.popen.pid))
        return out

    def kill_one(self) -> Kill:
        targets = self.targets()
        kind = self.rng.choice(sorted(targets))
        slot, pid = self.rng.choice(targets[kind])
        if kind == "aggregator" and slot.startswith("worker"):
            kind = "aggregator child"
        at = round(time.monotonic() - self.started, 2)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        restarted = None
        if kind != "aggregator child":
            self.slots[slot].popen.wait()
            restarted = self.restart(slot).popen.pid
        kill = Kill(at, kind, slot, pid, restarted)
        self.kills.append(kill)
        return kill

    # -- runs --------------------------------------------------------------------------

    def launch(self) -> str:
        wfid = f"{self.system.prefix}-{len(self.launched):03d}"
        self.launched[wfid] = time.time()
        self.system.publisher.send({"definition": PROCESS, "fields": {}, "wfid": wfid})
        return wfid

    def statuses(self) -> dict[str, str | None]:
        runs, _ = self.system.store.load_runs(list(self.launched))
        return {w: (r[0]["status"] if r else None) for w, r in runs.items()}

    def executions(self) -> list[tuple[str, str, str, int]]:
        if not self.executions_log.exists():
            return []
        out = []
        for line in self.executions_log.read_text().splitlines():
            wfid, subid, name, pid = line.split()
            out.append((wfid, subid, name, int(pid)))
        return out


def _aggregator_children(worker: Proc) -> list[int]:
    """The pids of a worker's aggregator child processes (``engine.trace``)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != worker.popen.pid:
                continue
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if b"engine.trace" in cmd:
            out.append(int(entry.name))
    return out


@pytest.fixture
def chaos(
    broker_url: str, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Chaos]:
    seed = int(os.environ.get("BOSS_CHAOS_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\nchaos seed {seed} (BOSS_CHAOS_SEED={seed} replays the schedule)")
    (tmp_path / "processes").mkdir()
    system = System(tmp_path, broker_url, redis_url, f"chaos{uuid.uuid4().hex[:10]}")
    try:
        yield Chaos(system, seed)
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(f"chaos seed {seed}\n" + _logs(system))
        invalid = system.invalid_events()
        assert not invalid, f"invalid Eiffel events were dead-lettered: {invalid}"
    finally:
        system.cleanup()


def _logs(system: System, tail: int = 4000) -> str:
    """The end of each process's log (a restarted process appends to the
    log of the one it replaced)."""
    out = []
    for log in sorted(system.tmp.glob("*.log")):
        text = log.read_text(errors="replace")
        out.append(f"==== {log.name} ====\n{text[-tail:]}")
    return "\n".join(out)


def _start(chaos: Chaos) -> None:
    """Everything up: the participants registered, every process consuming,
    and an event published now reaching the graph."""
    system = chaos.system
    queue = f"{system.prefix}.chaos"
    chaos.participant_ini.write_text(
        f"[participant]\nname = chaos\nqueue = {queue}\ncode = {HANDLERS}\nclass = Note\n\n"
        + system._boss_section()
        + f"\n[chaos]\nlog = {chaos.executions_log}\n"
    )
    for name in STEPS:
        system.engine.register(name, queue, regex=False)
    for i in range(2):
        chaos.start_worker(f"worker-{i}")
    chaos.start_aggregator("aggregator")
    for i in range(3):
        chaos.start_participant(f"chaos-{i}")
    wait_for(
        lambda: len(system.store.engines()) >= 2 or not all(p.alive() for p in system.procs),
        60,
        "two engine workers",
    )
    system.wait_consumers(queue, 3)
    assert all(p.alive() for p in system.procs), system.logs()
    if not is_redis(system.broker_url):
        with system.publisher.connection.clone() as conn:
            wait_for(
                lambda: (queue_info(conn, system.config.engine_queue).consumers or 0) >= 2,
                30,
                "the engine workers consuming",
            )
    # the trace queue is bound and consumed: an event reaches the graph
    graph = Graph(system.store.client, prefix=graph_prefix(system.config))
    sentinel = eiffel.artifact_created(f"pkg:generic/sentinel@{system.prefix}")
    bus = EventBus(system.config, system.publisher)
    bus.publish(sentinel)
    wait_for(lambda: graph.exists(sentinel["meta"]["id"]), 60, "an event in the graph")


def _schedule(chaos: Chaos) -> list[tuple[float, str]]:
    """(seconds from the start, "kill" or "launch"): ``KILLS`` kills 1 to 3 s
    apart; ``RUNS - BURST`` launches spread evenly up to the last kill but
    one, and ``BURST`` at once a fifth of a second before the kill a third
    of the way in (a worker's prefetch full of them when it is that kill)."""
    rng = chaos.rng
    at, kills = 0.0, []
    for _ in range(KILLS):
        at += rng.uniform(*KILL_EVERY)
        kills.append(at)
    spread = RUNS - BURST
    span = kills[-2] if len(kills) > 1 else kills[-1]
    burst = max(0.0, kills[len(kills) // 3] - 0.2)
    launches = [span * i / spread for i in range(spread)] + [burst] * BURST
    return sorted([(t, "kill") for t in kills] + [(t, "launch") for t in launches])


def _run_events(graph: Graph, wfid: str) -> list[dict[str, Any]]:
    return graph.chain(activity_id(wfid, None, "triggered"))


def _event_problems(graph: Graph, wfid: str, missing_only: bool = False) -> list[str]:
    """What is wrong with a run's activity events in the graph: exactly one
    triggered, started and finished for the run and for each of its steps
    (``missing_only``: only the ones that are not there)."""
    events = _run_events(graph, wfid)
    ids = Counter(e["meta"]["id"] for e in events)
    problems = [f"event {i} {n} times" for i, n in ids.items() if n > 1]
    run_act = activity_id(wfid, None, "triggered")
    names = {}  # activity id -> name ("run" for the run's)
    for e in events:
        if e["meta"]["type"] == "EiffelActivityTriggeredEvent":
            names[e["meta"]["id"]] = "run" if e["meta"]["id"] == run_act else e["data"]["name"]
    seen: Counter[str] = Counter()
    for e in events:
        kind = ACTIVITY.get(e["meta"]["type"])
        if kind is None:
            continue
        act = (
            e["meta"]["id"]
            if kind == "T"
            else next((x["target"] for x in e["links"] if x["type"] == "ACTIVITY_EXECUTION"), None)
        )
        seen[f"{kind} {names.get(act, act)}"] += 1
    expected = Counter(f"{k} {n}" for n in ["run", *STEPS] for k in "TSF")
    for key in sorted(set(seen) | set(expected)):
        if seen[key] < expected[key] or (seen[key] > expected[key] and not missing_only):
            problems.append(f"{key}: {seen[key]} (expected {expected[key]})")
    return problems


def _too_many(problem: str) -> bool:
    """Whether an event problem is one too many (``"F c_s4: 2 (expected
    1)"``, ``"event <id> 2 times"``), not one missing."""
    found = re.fullmatch(r".*: (\d+) \(expected (\d+)\)", problem)
    return int(found[1]) > int(found[2]) if found else problem.startswith("event ")


def _field_problems(fields: dict[str, Any]) -> list[str]:
    """A finished run's fields: each step counted once, the sequences in order."""
    problems = []
    done = fields.get("done", {})
    for name in STEPS:
        if done.get(name) != 1:
            problems.append(f"step {name} counted {done.get(name, 0)} times")
    trail = fields.get("trail", [])
    if (
        len(trail) != len(STEPS)
        or trail[:3] != SEQ_BEFORE
        or sorted(trail[3:6]) != BRANCHES
        or trail[6:] != SEQ_AFTER
    ):
        problems.append(f"trail {trail}")
    return problems


def test_chaos_loses_nothing(chaos: Chaos, request: pytest.FixtureRequest) -> None:
    system = chaos.system
    wall = time.monotonic()
    _start(chaos)
    setup_took = time.monotonic() - wall

    # the chaos: launches and kills on the seeded schedule
    chaos.started = time.monotonic()
    for at, what in _schedule(chaos):
        delay = chaos.started + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the schedule itself: random gaps are the point
        if what == "launch":
            chaos.launch()
        else:
            chaos.kill_one()
    chaos_took = time.monotonic() - chaos.started

    # every run ends (each process was restarted at once; recovery is seconds)
    recovery = time.monotonic()
    with contextlib.suppress(AssertionError):
        wait_for(
            lambda: all(s in ENDED for s in chaos.statuses().values()),
            DEADLINE,
            "every run to end",
            interval=0.25,
        )
    statuses = chaos.statuses()
    graph = Graph(system.store.client, prefix=graph_prefix(system.config))
    finished = [w for w, s in statuses.items() if s == states.FINISHED]
    # and all their events reach the graph (the aggregators catch up: a
    # batch a killed aggregator held comes again, after later ones)
    with contextlib.suppress(AssertionError):
        wait_for(
            lambda: not any(_event_problems(graph, w, missing_only=True) for w in finished),
            30,
            "every finished run's events in the graph",
            interval=0.5,
        )
    recovery_took = time.monotonic() - recovery

    # the figures
    lost = {w: s for w, s in statuses.items() if s != states.FINISHED}
    field_problems, doubled = {}, set()
    for w in finished:
        fields = system.engine.fields(w)
        doubled |= {(w, n) for n, count in fields.get("done", {}).items() if count > 1}
        problems = _field_problems(fields)
        if problems:
            field_problems[w] = problems
    event_problems = {}
    for w in chaos.launched:
        problems = _event_problems(graph, w)
        if problems:
            event_problems[w] = problems
            # more than one triggered/started/finished event for a step
            doubled |= {(w, p) for p in problems if _too_many(p)}
    executions = chaos.executions()
    by_step = Counter((w, n) for w, _, n, _ in executions if w in chaos.launched)
    reexecuted = {k: v for k, v in by_step.items() if v > 1}
    # a re-execution is expected of a step whose participant was killed
    killed = {k.pid for k in chaos.kills if k.kind == "participant"}
    pids = defaultdict(list)
    for w, _, n, pid in executions:
        pids[(w, n)].append(pid)
    unexplained = sorted(k for k in reexecuted if not killed & set(pids[k][:-1]))
    missing = [(w, n) for w in finished for n in STEPS if by_step[(w, n)] == 0]
    slowest = max(
        ((system.store.load_run(w)[0]["ended_at"] - chaos.launched[w], w) for w in finished),
        default=(0.0, None),
    )
    kinds = Counter(k.kind for k in chaos.kills)
    figures = (
        f"chaos on {'embedded' if system.config.redis_broker else 'rabbitmq'} "
        f"(seed {chaos.seed}): "
        f"{len(chaos.launched)} runs ({BURST} in a burst), {len(finished)} finished, "
        f"{sum(s is None for s in lost.values())} lost (no run), "
        f"{sum(s is not None for s in lost.values())} unfinished; {len(chaos.kills)} kills "
        f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}); "
        f"{sum(v - 1 for v in reexecuted.values())} re-executions of "
        f"{len(reexecuted)} steps ({len(unexplained)} not after a participant kill"
        f"{': ' + str(unexplained) if unexplained else ''}); {len(missing)} steps missing, "
        f"{len(doubled)} steps completed twice, "
        f"{len(field_problems)} runs with steps counted wrong, "
        f"{len(event_problems)} runs with wrong events; slowest run {slowest[0]:.1f} s; "
        f"wall time: setup {setup_took:.1f} s, chaos {chaos_took:.1f} s, "
        f"recovery {recovery_took:.1f} s, total {time.monotonic() - wall:.1f} s"
    )
    print(figures)
    # also in the report (``-rP``; xdist workers' own stdout is not shown)
    request.node.add_report_section("call", "chaos figures", figures)

    bad = set(lost) | set(field_problems) | set(event_problems) | {w for w, _ in missing}
    if bad:
        raise AssertionError(
            figures + "\n\n" + _diagnose(chaos, sorted(bad), field_problems, event_problems)
        )


def _redis_client(system: System) -> Any:
    import redis

    where = system.broker_url.split("://", 1)[1]
    if where.startswith("/"):
        return redis.Redis(unix_socket_path=where)
    return redis.Redis.from_url(system.broker_url)


def _decoded(raw: bytes) -> bytes:
    """A kombu Redis payload (or an ``unacked`` entry: [payload, exchange,
    routing key]) with its body decoded, to search in."""
    try:
        payload = json.loads(raw)
        if isinstance(payload, list):
            payload = payload[0]
        body = payload["body"]
        if payload.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body).decode(errors="replace")
        return raw + body.encode()
    except (ValueError, KeyError, TypeError, binascii.Error):
        return raw


def _missing_ids(chaos: Chaos, wfid: str, problems: list[str]) -> dict[str, str]:
    """The ids of a run's missing activity events (``"F c_s4: 0 (expected
    1)"``), named: ids are derived from the run, the step's subid (from
    the executions log) and the transition."""
    subids = {n: sub for w, sub, n, _ in chaos.executions() if w == wfid}
    out = {}
    for problem in problems:
        key, _, rest = problem.partition(": ")
        kind, _, name = key.partition(" ")
        if not rest.startswith("0 ") or kind not in _TRANSITION:
            continue
        if name == "run":
            out[key] = activity_id(wfid, None, _TRANSITION[kind])
        elif name in subids:
            out[key] = activity_id(wfid, subids[name], _TRANSITION[kind])
    return out


def _redis_broker_state(chaos: Chaos, bad: list[str], event_problems: dict[str, list[str]]) -> str:
    """On the Redis transport: this test's queues, the in-flight lists and
    unacknowledged deliveries of them, and where in all that the first bad
    runs' missing messages are (a launch: its wfid; a trace batch: the ids
    of the missing events), if anywhere."""
    system = chaos.system
    if not system.config.redis_broker:
        return ""
    r = _redis_client(system)
    now = time.time()
    out = ["broker (Redis transport):"]
    try:
        places: dict[str, bytes] = {}  # where -> content
        for key in r.scan_iter(match=f"*{system.prefix}.*", count=1000):
            name = key.decode(errors="replace")
            if name.startswith(system.config.key_prefix) or r.type(key) != b"list":
                continue  # the store's keys (the same server)
            items = r.lrange(key, 0, -1)
            if not name.startswith("_boss.inflight."):
                out.append(f"  queue {name}: {len(items)}")
            for i, item in enumerate(items):
                places[f"{name}[{i}]"] = _decoded(item)
        inflight = r.hgetall("_boss.inflight.queues")
        holders = r.hgetall("_boss.inflight.holders")
        stamps = dict(r.zrange("_boss.inflight", 0, -1, withscores=True))
        for lst, queue in inflight.items():
            if system.prefix.encode() not in queue:
                continue
            if not r.llen(lst):
                continue
            age = now - stamps[lst] if lst in stamps else None
            out.append(
                f"  in-flight {lst.decode()}: {r.llen(lst)} "
                f"(holder {holders.get(lst)}, kept alive {age and round(age, 1)} s ago)"
            )
        unacked = r.hgetall("unacked")
        index = dict(r.zrange("unacked_index", 0, -1, withscores=True))
        who = r.hgetall("_boss.holders")
        mine = 0
        for tag, raw in unacked.items():
            if system.prefix.encode() not in raw:
                continue
            mine += 1
            places[f"unacked {tag.decode()}"] = _decoded(raw)
            age = now - index[tag] if tag in index else None
            out.append(
                f"  unacked {tag.decode()} ({json.loads(raw)[1:]}, holder {who.get(tag)}, "
                f"{age and round(age, 1)} s old)"
            )
        out.append(f"  {mine} unacknowledged deliveries of this test")
        for w in bad[:5]:
            needles = {"any message of it": w, **_missing_ids(chaos, w, event_problems.get(w, []))}
            for what, needle in needles.items():
                hits = [where for where, content in places.items() if needle.encode() in content]
                out.append(
                    f"  {w} {what} ({needle}): in {hits or 'no queue, in-flight list or unacked'}"
                )
    finally:
        r.close()
    return "\n".join(out)


def _diagnose(
    chaos: Chaos,
    bad: list[str],
    field_problems: dict[str, list[str]],
    event_problems: dict[str, list[str]],
) -> str:
    """The kill log, each bad run's state, executions and events, the
    broker's bookkeeping, and the warnings and errors in the logs."""
    system = chaos.system
    out = [f"replay the schedule with BOSS_CHAOS_SEED={chaos.seed}"]
    out.append("kills (s since the chaos began, kind, slot, pid, restarted as):")
    out += [f"  {k.at:7.2f} {k.kind:16} {k.slot:12} {k.pid} -> {k.restarted}" for k in chaos.kills]
    executions = defaultdict(list)
    for w, subid, name, pid in chaos.executions():
        executions[w].append(f"{name}/{subid}@{pid}")
    graph = Graph(system.store.client, prefix=graph_prefix(system.config))
    began = time.time() - (time.monotonic() - chaos.started)  # the chaos, on the wall clock
    for w in bad[:30]:
        launched = chaos.launched[w] - began
        near = [
            f"{k.kind} {k.slot} at {k.at:.2f}" for k in chaos.kills if -3 < k.at - launched < 10
        ]
        out.append(f"run {w} (launched at {launched:.2f} s; kills around it: {near}):")
        loaded = system.store.load_run(w)
        if loaded is None:
            out.append("  no run in the store")
        else:
            st = loaded[0]
            out.append(f"  status {st['status']}; errors {st.get('errors')}")
            with contextlib.suppress(Exception):
                out.append(
                    "  at " + str([(p.expid, p.name, p.state) for p in system.engine.positions(w)])
                )
            out.append(f"  outbox {[(x[0], x[1]) for x in (st.get('outbox') or [])]}")
            out.append(f"  timers {system.store.timers(w)}")
            with contextlib.suppress(Exception):
                out.append(f"  fields {system.engine.fields(w)}")
        out.append(f"  field problems {field_problems.get(w)}")
        events = _run_events(graph, w)
        if events:
            out.append(f"  event problems {event_problems.get(w)}")
        out.append(f"  executions {executions.get(w)}")
        out.append(
            "  events "
            + str(
                [
                    (ACTIVITY.get(e["meta"]["type"], e["meta"]["type"]), e["data"].get("name"))
                    for e in events
                ]
                or "none in the graph"
            )
        )
    with contextlib.suppress(Exception):
        out.append(_redis_broker_state(chaos, bad, event_problems))
    with contextlib.suppress(Exception):
        from engine.broker import list_deadletters

        with system.publisher.connection.clone() as conn:
            letters = list_deadletters(system.config, conn)
        out.append(f"engine dead letters: {letters}")
    out.append("warnings and errors in the logs:")
    for log in sorted(system.tmp.glob("*.log")):
        lines = [
            x
            for x in log.read_text(errors="replace").splitlines()
            if any(k in x for k in ("WARNING", "ERROR", "CRITICAL", "Traceback", "Error"))
        ]
        out.append(f"==== {log.name}: {len(lines)} ====")
        out += lines[-40:]
    return "\n".join(out)
