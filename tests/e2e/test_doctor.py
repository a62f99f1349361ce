"""``boss doctor`` against a running system (on RabbitMQ and the embedded
broker): a healthy one passes; a stopped worker, a waiting dead letter, an
unreachable broker and a queue without a consumer each give their finding
and what to do. And the workers' operations surface: ``/metrics`` from the
worker and its aggregator process, JSON log lines."""

from __future__ import annotations

import json
import random
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from engine.doctor import FAIL, OK, WARN, Report, diagnose
from tests.e2e.conftest import System
from tests.waiting import wait_for


def _diagnose(system: System, **overrides: Any) -> Report:
    return diagnose(str(system.ini), environ={}, timeout=2.0, **overrides)


def _status(report: Report) -> dict[str, str]:
    return {f.check: f.status for f in report.findings}


def _healthy(system: System) -> Report:
    """Until every check passes (the aggregator child takes a moment)."""
    last: list[Report] = []

    def ok() -> bool:
        last[:] = [_diagnose(system)]
        return last[0].status == OK

    try:
        wait_for(ok, 30, "a healthy doctor report")
    except AssertionError:
        raise AssertionError(json.dumps(last[0].as_dict(), indent=1, default=str)) from None
    return last[0]


def _doctor_cli(system: System, *args: str) -> tuple[int, str]:
    out = system.boss("doctor", *args, check=False)
    return out.returncode, out.stdout


def test_a_healthy_system_passes(system: System) -> None:
    system.worker()
    system.participant("bump", "Bump")
    report = _healthy(system)
    checks = _status(report)
    for name in ("config", "store", "store.memory", "broker", "topology", "workers"):
        assert checks[name] == OK, name
    for name in ("aggregator", "steplogs", "deadletters", "deadletters.trace", "participants"):
        assert checks[name] == OK, name
    assert report.get("config").data["source"] == str(system.ini)  # type: ignore[union-attr]
    workers = report.get("workers")
    assert workers is not None and "1 engine worker(s) alive" in workers.found
    assert workers.data["versions"] == ["0.1.0"]
    code, out = _doctor_cli(system)
    assert code == 0, out
    assert "0 warning(s), 0 failure(s)" in out and f"loaded from {system.ini}" in out
    code, out = _doctor_cli(system, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "ok" and data["exit_code"] == 0
    assert {f["check"] for f in data["findings"]} >= set(checks)


def test_a_stopped_worker_fails_with_how_to_start_one(system: System) -> None:
    proc = system.worker()
    _healthy(system)
    proc.popen.terminate()
    proc.popen.wait(30)
    report = _diagnose(system)
    workers = report.get("workers")
    assert workers is not None and workers.status == FAIL
    assert "no engine worker is alive" in workers.found
    assert "boss worker" in workers.fix
    code, out = _doctor_cli(system)
    assert code == 1
    assert "FAIL  workers" in out and "fix: start one: `boss worker`" in out


def test_a_waiting_dead_letter_warns_with_the_commands(system: System) -> None:
    system.worker()
    _healthy(system)
    system.publisher.publish(b"this is not JSON", queue=system.config.engine_queue)

    def warned() -> Report | None:
        report = _diagnose(system)
        found = report.get("deadletters")
        return report if found is not None and found.status == WARN else None

    report = wait_for(warned, 30, "the dead letter in the doctor's report")
    letters = report.get("deadletters")
    assert letters is not None
    assert f"1 dead letter(s) wait on {system.config.deadletter_queue}" in letters.found
    assert "`boss deadletters`" in letters.fix and "boss deadletters reinject ID" in letters.fix
    assert report.status == WARN, report.as_dict()
    code, out = _doctor_cli(system)
    assert code == 2, out
    assert "WARN  deadletters" in out


def test_an_unreachable_broker_fails_with_the_key_to_correct(
    system: System, tmp_path: Path
) -> None:
    rabbit = system.broker_url.startswith("amqp")
    wrong = "amqp://guest:guest@127.0.0.1:1//" if rabbit else "redis://127.0.0.1:1/0"
    report = _diagnose(system, broker_url=wrong)
    broker = report.get("broker")
    assert broker is not None and broker.status == FAIL
    assert "127.0.0.1:1" in broker.found and "refused" in broker.found.lower()
    assert "broker_url" in broker.fix
    assert report.get("topology") is None  # nothing more is asked of a broker that is away
    assert report.get("store") is not None and report.get("store").status == OK  # type: ignore[union-attr]
    ini = tmp_path / "wrong.ini"
    text = system.ini.read_text().replace(
        f"broker_url = {system.broker_url}", f"broker_url = {wrong}"
    )
    ini.write_text(text)
    out = system.boss("-c", str(ini), "doctor", check=False)
    # the first -c (the system's) is the group's option; the second one wins
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL  broker" in out.stdout and "broker_url" in out.stdout


def test_a_participant_queue_without_a_consumer_warns(system: System) -> None:
    system.worker()
    system.participant("bump", "Bump")
    _healthy(system)
    queue = f"{system.prefix}.ghost"
    system.engine.register("ghost", queue, regex=False)
    report = _diagnose(system)
    participants = report.get("participants")
    assert participants is not None
    if system.broker_url.startswith("amqp"):  # RabbitMQ: the queue is not even there
        assert participants.status == WARN
        assert f"{queue} does not exist" in participants.found
    wfid = system.launch("name: g\nsteps:\n  - ghost\n")
    system.wait_status(wfid, "running")

    def warned() -> Report | None:
        report = _diagnose(system)
        found = report.get("participants")
        return report if found is not None and "1 workitem(s) wait" in found.found else None

    report = wait_for(warned, 30, "the waiting workitem in the doctor's report")
    participants = report.get("participants")
    assert participants is not None and participants.status == WARN
    assert queue in participants.found and f"{system.prefix}.bump" not in participants.found
    if system.broker_url.startswith("amqp"):
        assert f"{queue} has no consumer" in participants.found
    assert "boss-participant" in participants.fix and "boss unregister PATTERN" in participants.fix
    assert "ghost" in participants.fix
    code, _ = _doctor_cli(system)
    assert code == 2


# -- metrics and JSON logs ------------------------------------------------------------------


def _free_ports() -> int:
    """A port free with the next one (the worker's and its aggregator's),
    below Linux's ephemeral range (32768 and up), where no outgoing
    connection of another test takes it between this check and the bind."""
    for _ in range(100):
        port = random.randint(20000, 32000)
        try:
            for p in (port, port + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise AssertionError("no two free ports")


def _scrape(port: int) -> str:
    """The metrics served on ``port``; empty while nothing listens there yet
    (the aggregator child starts its server a moment after the worker)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return resp.read().decode()
    except urllib.error.URLError:
        return ""


def _sample(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_and_json_logs_of_the_worker_and_its_aggregator(system: System) -> None:
    port = _free_ports()
    system.ini.write_text(system.ini.read_text() + f"metrics_port = {port}\nlog_format = json\n")
    proc = system.worker()
    system.participant("bump", "Bump")
    wfid = system.launch("name: m\nsteps:\n  - bump\n  - bump\n")
    system.wait_status(wfid)

    # a message is counted once it is handled, a moment after its effect is
    # stored: the run can be seen finished before its last reply is counted
    def counted() -> str | None:
        text = _scrape(port)
        done = (
            _sample(text, "boss_engine_dispatches_total") >= 2
            and _sample(text, 'boss_engine_messages_total{type="reply"}') >= 2
            and _sample(text, "boss_engine_handle_seconds_count") >= 3
        )
        return text if done else None

    worker = wait_for(counted, 30, "the worker's metrics of the launch and both replies")
    assert 'boss_engine_messages_total{type="launch"}' in worker
    assert _sample(worker, 'boss_engine_messages_total{type="reply"}') >= 2
    assert _sample(worker, "boss_engine_handle_seconds_count") >= 3
    # every message taken was in a batch of one or more
    assert _sample(worker, "boss_engine_batch_messages_sum") >= 3
    assert "boss_engine_deadletters_total 0.0" in worker

    def flushed() -> str | None:  # the same for a batch: its figures come together
        text = _scrape(port + 1)
        done = (
            _sample(text, 'boss_trace_events_total{outcome="stored"}') > 0
            and _sample(text, "boss_trace_batch_messages_count") >= 1
        )
        return text if done else None

    trace = wait_for(flushed, 30, "the aggregator's metrics of a stored batch")
    assert _sample(trace, 'boss_trace_events_total{outcome="stored"}') > 0
    assert _sample(trace, "boss_trace_batch_messages_count") >= 1
    assert "boss_steplog_lines_total" in trace
    assert "boss_engine_" not in trace and "boss_trace_" not in worker
    # the worker's own lines are JSON objects with the standard fields
    lines = [x for x in proc.log.read_text().splitlines() if x.startswith("{")]
    records = [json.loads(x) for x in lines]
    started = [r for r in records if "consumer thread(s)" in r["message"]]
    assert started, proc.log.read_text()[-3000:]
    assert set(started[0]) >= {"time", "level", "logger", "message"}
    assert started[0]["logger"] == "boss.worker" and started[0]["level"] == "INFO"
    # its heartbeat says so (the next beat after the aggregator process started)
    heartbeat = wait_for(
        lambda: next(
            (e for e in system.store.engines() if e["pid"] == proc.popen.pid and e["aggregator"]),
            None,
        ),
        10,
        "a heartbeat saying the aggregator process runs",
    )
    assert heartbeat["metrics_port"] == port and heartbeat["version"] == "0.1.0"
