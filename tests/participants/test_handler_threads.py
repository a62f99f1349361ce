"""The handler threads of a participant process (``participants.job.HandlerThreads``):
kept for the next job, a new one when the last is still busy, ended when
idle too long. In-process, no broker."""

from __future__ import annotations

import threading
from typing import Any

from participants.job import HandlerThreads
from tests.waiting import wait_for


class Jobs:
    """Jobs for a ``HandlerThreads``: each records the thread it ran on
    and its name; ``gate`` (an Event) holds a job until set."""

    def __init__(self, threads: HandlerThreads) -> None:
        self.threads = threads
        self.ran: dict[str, tuple[int, str]] = {}

    def run(self, key: str, gate: threading.Event | None = None, fail: bool = False) -> Any:
        done = threading.Event()

        def target() -> None:
            me = threading.current_thread()
            self.ran[key] = (threading.get_ident(), me.name)
            if gate is not None:
                gate.wait(30)
            if fail:
                raise RuntimeError("boom")

        self.threads.run(target, f"handler-{key}", done.set)
        return done


def test_the_next_job_runs_on_the_thread_the_last_one_ended_on() -> None:
    jobs = Jobs(HandlerThreads())
    for key in ("a", "b", "c"):
        assert jobs.run(key).wait(10)
    assert jobs.threads.started == 1
    assert len({ident for ident, _name in jobs.ran.values()}) == 1
    # each job's thread carries its name while it runs
    assert [name for _ident, name in jobs.ran.values()] == ["handler-a", "handler-b", "handler-c"]


def test_a_busy_thread_is_not_given_the_next_job() -> None:
    jobs = Jobs(HandlerThreads())
    gate = threading.Event()
    first = jobs.run("stuck", gate)  # a cancelled step whose handler goes on
    wait_for(lambda: "stuck" in jobs.ran, 10, "the first job to start")
    assert jobs.run("next").wait(10)  # not behind the stuck one
    assert jobs.threads.started == 2
    assert jobs.ran["next"][0] != jobs.ran["stuck"][0]
    gate.set()
    assert first.wait(10)
    # both threads free now: the next jobs take them, no third is started
    assert jobs.run("later").wait(10)
    assert jobs.run("last").wait(10)
    assert jobs.threads.started == 2


def test_a_thread_idle_too_long_ends() -> None:
    jobs = Jobs(HandlerThreads(idle=0.05))
    assert jobs.run("a").wait(10)
    ident = jobs.ran["a"][0]
    wait_for(
        lambda: all(t.ident != ident for t in threading.enumerate()), 10, "the idle thread to end"
    )
    assert jobs.run("b").wait(10)
    assert jobs.threads.started == 2


def test_a_job_that_raises_still_says_done_and_its_thread_is_not_kept() -> None:
    jobs = Jobs(HandlerThreads())
    assert jobs.run("bad", fail=True).wait(10)
    assert jobs.run("good").wait(10)
    assert jobs.threads.started == 2
