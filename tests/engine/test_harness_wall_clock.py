"""``ProcessHarness`` under the wall clock (``clock=time.time``): a pump
thread runs the engine on its own while the test polls; ``run.wait()``
returns when only a timer, a listen or a held workitem is left (process
language, section 7); ``h.wait_until``/``run.wait_for``; the workitem's
attribute access in harness participants.

No test sleeps and hopes: each waits on a condition with a deadline, and
timers are either short (they must fire) or long (they must still be
pending), never in between."""

from __future__ import annotations

import gc
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.store import RunStore
from engine.testing import HarnessRun, ProcessHarness, VirtualClock
from participants.workitem import Workitem
from tests.engine.support import START, definition, only, proc, register_tracers

ROOT = Path(__file__).resolve().parents[2]

#: how long a test waits for something that must happen (generous: a slow,
#: busy CI machine)
DEADLINE = 20.0


def pump_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ProcessHarness-pump")]


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    before = set(pump_threads())
    yield
    assert set(pump_threads()) <= before, "a pump thread outlived its harness"


@pytest.fixture
def wall(store: RunStore) -> Iterator[ProcessHarness]:
    """A harness on the wall clock, on every store (memory, Valkey, Redis)."""
    with ProcessHarness(store=store, clock=time.time) as h:
        yield h


def poll(cond: Callable[[], Any], what: str) -> None:
    """Poll ``cond`` from the test's thread (no harness helper), with a deadline."""
    deadline = time.monotonic() + DEADLINE
    while not cond():
        assert time.monotonic() < deadline, f"not within {DEADLINE}s: {what}"
        time.sleep(0.01)


# -- the pump thread progresses while the test polls ------------------------------


def test_a_wait_fires_while_the_test_only_polls_status(wall: ProcessHarness) -> None:
    h = wall
    register_tracers(h, "alpha")
    run = h.launch(proc("- wait: 0.3s\n- alpha"))
    poll(lambda: run.status == "finished", "the run finished")
    assert h.trace == ["alpha"]
    assert h.next_timer() is None


def test_a_forgotten_branch_runs_after_the_main_flow_ended(wall: ProcessHarness) -> None:
    h = wall
    seen: list[tuple[list[Any], str]] = []
    run: HarnessRun | None = None

    def alpha(wi: Workitem) -> None:
        assert run is not None
        # on the pump thread, with the harness locked: queries are safe
        seen.append((list(h.trace), run.status))
        h.trace.append("alpha")

    h.register("alpha", alpha)
    register_tracers(h, "main")
    run = h.launch(
        proc("""
            - sequence:
                - wait: 0.2s
                - alpha
              forget: true
            - main
        """)
    )
    poll(lambda: run.status == "finished", "the forgotten branch ended")
    # alpha ran when the main flow was over and the run still running
    assert seen == [(["main"], "running")]
    assert h.trace == ["main", "alpha"]


def test_a_participant_is_called_without_wait(wall: ProcessHarness) -> None:
    h = wall
    register_tracers(h, "alpha", "bravo")
    run = h.launch(proc("- alpha\n- bravo"))
    poll(lambda: run.status == "finished", "the run finished")
    assert h.trace == ["alpha", "bravo"]


# -- run.wait() does not sleep through timers -----------------------------------------


def test_wait_returns_at_once_when_only_a_timer_is_left(wall: ProcessHarness) -> None:
    h = wall
    register_tracers(h, "alpha")
    t0 = time.monotonic()
    run = h.launch(proc("- wait: 60s\n- alpha")).wait(timeout=DEADLINE)
    assert time.monotonic() - t0 < 50  # not slept through (the state says so too)
    assert run.status == "running"
    assert [p.kind for p in run.positions] == ["wait"]
    next_timer = h.next_timer()
    assert next_timer is not None and next_timer > 0
    assert h.trace == []
    run.cancel()
    assert run.status == "cancelled"
    assert h.next_timer() is None


def test_wait_returns_when_only_a_listen_is_left(wall: ProcessHarness) -> None:
    h = wall
    h.register("beta", reply=False)
    listener = definition("""
        name: listener
        steps:
          - listen: {to: beta}
          - echo: "woke with ${from_b}"
    """)
    a = h.launch(listener).wait(timeout=DEADLINE)
    assert a.status == "running"
    assert [p.kind for p in a.positions] == ["listen"]
    b = h.launch(proc("- beta"), fields={"from_b": "B"})
    # the pump thread dispatches beta, which wakes the listener
    poll(lambda: a.status == "finished", "the listener woke")
    assert h.trace == ["woke with B"]
    assert b.status == "running"
    b.cancel()


@pytest.mark.parametrize("pump", [True, False], ids=["reply", "reply-pump-false"])
def test_wait_returns_on_a_held_workitem_and_a_reply_from_the_test_goes_on(
    wall: ProcessHarness, pump: bool
) -> None:
    h = wall
    h.register("hold", reply=False)
    register_tracers(h, "alpha")
    run = h.launch(proc("- hold\n- wait: 0.1s\n- alpha")).wait(timeout=DEADLINE)
    assert run.status == "running"
    assert [p.participant for p in run.positions] == ["hold"]
    wi = only(h.pending_for("hold"))
    wi.fields["answer"] = 42
    h.reply(wi, pump=pump)  # from the test's thread, while the pump runs
    poll(lambda: run.status == "finished", "the run finished after the reply")
    assert h.trace == ["alpha"]
    assert run.fields["answer"] == 42
    assert h.pending == {}


# -- operations from the test's thread while the pump runs ------------------------------


def test_cancel_from_the_test_while_the_pump_is_busy(wall: ProcessHarness) -> None:
    h = wall
    h.register("tick", lambda wi: wi.fields.__setitem__("ticks", wi.fields.get("ticks", 0) + 1))
    register_tracers(h, "cleanup")
    run = h.launch(
        definition("""
            name: t
            on_cancel: cleanup
            steps:
              - loop:
                  - tick
                  - wait: 0.01s
        """)
    )
    h.wait_until(lambda: len(h.dispatched) >= 3, timeout=DEADLINE)
    run.cancel()  # its consequences are carried out before it returns
    assert run.status == "cancelled"
    assert h.trace == ["cleanup"]
    count = len(h.dispatched)
    assert run.wait(timeout=DEADLINE).status == "cancelled"
    assert len(h.dispatched) == count
    assert h.next_timer() is None


def test_pause_and_resume_from_the_test(wall: ProcessHarness) -> None:
    h = wall
    register_tracers(h, "alpha")
    run = h.launch(proc("- wait: 0.2s\n- alpha"))
    run.pause()
    assert run.status == "paused"
    run.resume()
    run.wait_for(lambda r: r.status == "finished", timeout=DEADLINE)
    assert h.trace == ["alpha"]


def test_many_runs_and_polling_threads_at_once(wall: ProcessHarness) -> None:
    h = wall
    h.register("hold", reply=False)
    register_tracers(h, "alpha")
    runs = [h.launch(proc("- wait: 0.05s\n- hold\n- alpha")) for _ in range(5)]
    errors: list[BaseException] = []

    def answer_all() -> None:  # a second thread replies while the test polls
        try:
            done = 0
            while done < len(runs):
                for wi in h.wait_until(lambda: h.pending_for("hold"), timeout=DEADLINE):
                    h.reply(wi)
                    done += 1
        except BaseException as exc:
            errors.append(exc)

    answerer = threading.Thread(target=answer_all)
    answerer.start()
    try:
        poll(lambda: all(r.status == "finished" for r in runs), "every run finished")
    finally:
        answerer.join(DEADLINE)
    assert not answerer.is_alive() and errors == []
    assert h.trace == ["alpha"] * 5


# -- h.wait_until / run.wait_for ------------------------------------------------------------


def test_wait_until_returns_the_conditions_value(wall: ProcessHarness) -> None:
    h = wall
    h.register("hold", reply=False)
    h.launch(proc("- wait: 0.05s\n- hold"))
    wis = h.wait_until(lambda: h.pending_for("hold"), timeout=DEADLINE)
    assert [wi.participant_name for wi in wis] == ["hold"]


def test_wait_until_times_out(wall: ProcessHarness) -> None:
    h = wall
    run = h.launch(proc("- wait: 60s"))
    with pytest.raises(TimeoutError, match=r"still not true after 0\.2s"):
        h.wait_until(lambda: run.status == "finished", timeout=0.2)
    assert run.status == "running"
    run.cancel()


def test_wait_until_on_the_virtual_clock_moves_it_timer_by_timer() -> None:
    with ProcessHarness(start=START) as h:
        assert h.thread is None and not h.running
        register_tracers(h, "alpha", "bravo")
        run = h.launch(proc("- wait: 1h\n- alpha\n- wait: 1h\n- bravo"))
        h.wait_until(lambda: "alpha" in h.trace, timeout=7200)
        assert isinstance(h.clock, VirtualClock)
        assert h.clock.now == START + 3600
        assert run.status == "running"
        with pytest.raises(TimeoutError, match="the next timer is later"):
            h.wait_until(lambda: run.ended, timeout=60)
        assert h.clock.now == START + 3600
        run.wait_for(lambda r: r.status == "finished", timeout=3600)
        assert h.clock.now == START + 7200
        assert h.trace == ["alpha", "bravo"]
        with pytest.raises(TimeoutError, match="no timer is left"):
            h.wait_until(lambda: False)


def test_wait_until_without_a_pump_thread_does_the_work_itself() -> None:
    with ProcessHarness(clock=time.time, background=False) as h:
        assert h.thread is None
        register_tracers(h, "alpha")
        run = h.launch(proc("- wait: 0.2s\n- alpha"))
        assert run.wait().status == "running"
        run.wait_for(lambda r: r.status == "finished", timeout=DEADLINE)
        assert h.trace == ["alpha"]


# -- the pump thread's life -------------------------------------------------------------------


def test_close_stops_the_thread() -> None:
    h = ProcessHarness(clock=time.time)
    thread = h.thread
    assert thread is not None and h.running
    assert thread in threading.enumerate()
    register_tracers(h, "alpha")
    run = h.launch(proc("- wait: 60s\n- alpha"))
    h.close()
    assert not thread.is_alive()
    assert thread not in threading.enumerate()
    assert not h.running
    h.close()  # twice is fine
    # the harness still answers, and works by hand (nothing runs on its own)
    assert run.status == "running"
    run.cancel()
    assert run.status == "cancelled"


def test_leaving_the_with_block_stops_the_thread(store: RunStore) -> None:
    with ProcessHarness(store=store, clock=time.time) as h:
        thread = h.thread
        assert thread is not None and thread.is_alive()
        register_tracers(h, "alpha")
        h.launch(proc("- wait: 0.05s\n- alpha"))
    assert not thread.is_alive()
    assert thread not in threading.enumerate()


def test_a_harness_nobody_closed_stops_its_thread_once_collected() -> None:
    h = ProcessHarness(clock=time.time)
    thread = h.thread
    assert thread is not None and thread.is_alive()
    del h  # the thread holds no strong reference to its harness
    gc.collect()
    thread.join(DEADLINE)
    assert not thread.is_alive()


def test_the_virtual_clock_starts_no_thread() -> None:
    before = set(threading.enumerate())
    with ProcessHarness() as h:
        assert h.thread is None
        assert set(threading.enumerate()) == before
        with pytest.raises(TypeError):
            ProcessHarness(clock=time.time, background=False).advance(1)


def test_what_stops_the_pump_thread_is_raised_in_the_test() -> None:
    def broken(wi: Workitem) -> None:  # reply=False handlers are not caught
        raise ValueError("broken holder")

    h = ProcessHarness(clock=time.time)
    h.register("broken", broken, reply=False)
    run = h.launch(proc("- broken"))
    with pytest.raises(ValueError, match="broken holder"):
        h.wait_until(lambda: False, timeout=DEADLINE)
    assert h.thread is not None
    h.thread.join(DEADLINE)
    assert not h.thread.is_alive()
    assert run.status == "running"  # raised once, then the harness answers again
    h.close()


def test_the_failure_is_raised_by_close_when_nothing_else_raised_it() -> None:
    h = ProcessHarness(clock=time.time)
    h.register("broken", lambda wi: 1 / 0, reply=False)
    h.launch(proc("- broken"))
    assert h.thread is not None
    h.thread.join(DEADLINE)  # it stops on the failure
    assert not h.thread.is_alive()
    with pytest.raises(ZeroDivisionError):
        h.close()


def test_a_run_that_never_waits_stops_the_pump_thread() -> None:
    h = ProcessHarness(clock=time.time, busy_timeout=0.3)
    register_tracers(h, "alpha")
    h.launch(proc("- loop: [alpha]"))
    with pytest.raises(TimeoutError, match="never waits"):
        h.wait_until(lambda: False, timeout=DEADLINE)
    h.close()


# -- the workitem in harness participants ----------------------------------------------------


@pytest.mark.parametrize("clock", [None, time.time], ids=["virtual", "wall"])
def test_workitem_attribute_access_in_a_participant(clock: Callable[[], float] | None) -> None:
    seen: dict[str, Any] = {}

    def alpha(wi: Workitem) -> None:
        assert isinstance(wi, Workitem)
        seen["wfid"] = wi.fei.wfid
        seen["expid"] = wi.fei.expid
        seen["subid"] = wi.fei.subid
        seen["y"] = wi.fields.x.y
        seen["missing"] = wi.fields.nope
        seen["param"] = wi.params.p
        seen["project"] = wi.project  # fields first, then params
        wi.fields.x.z = "set"
        wi.fields.out = wi.params.p * 2
        wi.result = True

    with ProcessHarness(clock=clock) as h:
        h.register("alpha", alpha)
        run = h.launch(proc("- alpha: {p: 21, project: from-params}"), fields={"x": {"y": 1}})
        run.wait_for(lambda r: r.ended, timeout=DEADLINE)
        assert run.status == "finished"
        assert seen == {
            "wfid": run.wfid,
            "expid": only(h.dispatched).fei.expid,
            "subid": only(h.dispatched).fei["subid"],
            "y": 1,
            "missing": None,
            "param": 21,
            "project": "from-params",
        }
        assert run.fields["x"] == {"y": 1, "z": "set"}
        assert run.fields["out"] == 42
        held = only(h.dispatched)
        assert held.fei.wfid == run.wfid and held.params.p == 21


# -- the examples of the docs, run as written --------------------------------------------------


def python_blocks(path: Path, containing: str) -> list[str]:
    """The fenced Python blocks of ``path`` whose text has ``containing``."""
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(), re.S)
    return [b for b in blocks if containing in b]


@pytest.mark.parametrize(
    ("doc", "containing"),
    [
        ("README.md", "ProcessHarness() as h"),
        ("docs/process-language.md", "ProcessHarness(clock=time.time)"),
    ],
)
def test_the_harness_examples_of_the_docs_run_as_written(
    doc: str, containing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # they name processes/... from the repository root
    (block,) = python_blocks(ROOT / doc, containing)
    exec(compile(block, doc, "exec"), {"ProcessHarness": ProcessHarness})
