"""``boss demo``: the whole engine on one machine, with nothing to set up.

It starts (or reuses) the embedded Valkey as the run store, registers a few
in-process participants that pretend to check, build and test, launches
``processes/demo/ci_pipeline.yaml`` with real timers (a retried build waits
one second), and prints each step as the traceability records arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import effects as fx
from engine import states
from engine.testing import ProcessHarness
from participants.workitem import Workitem

DEMO_PROCESS = Path(__file__).resolve().parent.parent / "processes" / "demo" / "ci_pipeline.yaml"


def _participants(attempts: dict[str, int]) -> dict[str, Callable[[Workitem], Any]]:
    def check(wi: Workitem) -> None:
        wi.msg.append(f"{wi.participant_name}: ok")

    def build(wi: Workitem) -> None:
        attempts["build"] = attempts.get("build", 0) + 1
        if attempts["build"] == 1:
            raise RuntimeError("build host went away (the demo fails the first attempt)")
        wi.fields["binary"] = f"{wi.params['project']}.rpm"

    def run_tests(wi: Workitem) -> None:
        wi.msg.append(f"tests passed on {wi.params['target']}")

    def release_candidate(wi: Workitem) -> None:
        wi.fields["rc"] = wi.params["version"]

    return {
        "check_.*": check,
        "build": build,
        "run_tests": run_tests,
        "release_candidate": release_candidate,
    }


def run_demo(store_url: str | None = None, out: Callable[[str], None] = print,
             process: Path = DEMO_PROCESS) -> dict[str, Any]:
    """Run the demo and return the finished run's fields."""
    from engine.store import open_store

    store = open_store(store_url, prefix="boss:demo:")
    t0 = time.time()

    def on_record(r: fx.Record) -> None:
        what = r.name if r.entity == "step" else f"run {r.name}"
        outcome = f" {r.outcome}" if r.outcome else ""
        out(f"  {r.at - t0:6.2f}s  {what:<20} {r.event}{outcome}")

    h = ProcessHarness(store=store, clock=time.time)
    h.engine.on_record = on_record
    h.engine.on_echo = lambda wfid, text: out(f"  echo: {text}")
    for pattern, fn in _participants({}).items():
        h.register(pattern, fn)
    out(f"store: {getattr(store, 'url', store_url or 'embedded')}")
    out(f"launching {process.name}")
    run = h.launch(str(process), fields={"project": "hello", "change": "c0ffee",
                                         "targets": ["x86_64", "aarch64"]})
    while True:
        run.wait(timeout=60)
        if run.status in states.ENDED_RUN_STATES:
            break
        nxt = h.next_timer()
        if nxt is None:
            break
        time.sleep(min(nxt, 1.0) + 0.01)
    info = run.info
    out(f"run {info.wfid}: {info.status}")
    out(f"fields: {info.fields}")
    return {"status": info.status, "fields": info.fields, "wfid": info.wfid}
