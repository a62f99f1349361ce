"""Helpers shared by the attribute / run-operation functional tests
(test_timeouts_retry, test_on_error_on_cancel_forget, test_run_operations,
test_listen_reserve, test_records_and_queries).

Not a conftest: other files in this package belong to other suites. Each test
module builds its own fixtures from ``make_harness``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from engine.store.base import RunStore
from engine.testing import HarnessRun, ProcessHarness
from participants.workitem import Workitem

#: the virtual clock's start: a round number, so sums of durations are exact
T0 = 1_800_000_000.0


def make_harness(store: RunStore | None = None) -> ProcessHarness:
    return ProcessHarness(store=store, start=T0)


def y(text: str) -> str:
    """A YAML definition written indented in a test."""
    return textwrap.dedent(text).strip() + "\n"


class Calls:
    """A participant that counts its calls, records what it saw, and raises
    for the calls listed in ``fail_on`` (1-based), or always with
    ``always_fail``."""

    def __init__(
        self,
        name: str,
        trace: list[Any] | None = None,
        *,
        fail_on: tuple[int, ...] = (),
        always_fail: bool = False,
        message: str = "boom",
        change: dict[str, Any] | None = None,
        exc: type[Exception] = RuntimeError,
    ) -> None:
        self.name = name
        self.trace = trace
        self.fail_on = set(fail_on)
        self.always_fail = always_fail
        self.message = message
        self.change = change or {}
        self.exc = exc
        self.count = 0
        self.seen: list[dict[str, Any]] = []
        self.wis: list[Workitem] = []

    def __call__(self, wi: Workitem) -> None:
        self.count += 1
        self.seen.append(dict(wi.fields))
        self.wis.append(wi)
        if self.trace is not None:
            self.trace.append(self.name)
        if self.always_fail or self.count in self.fail_on:
            raise self.exc(self.message)
        for k, v in self.change.items():
            wi.fields[k] = v


def register_calls(h: ProcessHarness, name: str, **kw: Any) -> Calls:
    c = Calls(name, h.trace, **kw)
    h.register(name, c)
    return c


def tracer(h: ProcessHarness, name: str) -> Callable[[Workitem], None]:
    def f(wi: Workitem) -> None:
        h.trace.append(name)

    return f


def register_tracers(h: ProcessHarness, *names: str) -> None:
    for n in names:
        h.register(n, tracer(h, n))


def step_records(
    h: ProcessHarness, run: HarnessRun | str | None = None, name: str | None = None
) -> list[tuple[str, str, str, str | None]]:
    """(eid, name, event, outcome) of step records, in order."""
    wfid = run if isinstance(run, str) or run is None else run.wfid
    return [
        (r.eid, r.name, r.event, r.outcome)
        for r in h.records
        if r.entity == "step"
        and (wfid is None or r.wfid == wfid)
        and (name is None or r.name == name)
    ]


def run_records(h: ProcessHarness, run: HarnessRun | str) -> list[tuple[str, str | None]]:
    wfid = run if isinstance(run, str) else run.wfid
    return [(r.event, r.outcome) for r in h.records if r.entity == "run" and r.wfid == wfid]


def dispatched_to(h: ProcessHarness, name: str, run: HarnessRun | None = None) -> list[Workitem]:
    return [
        wi
        for wi in h.dispatched
        if wi.participant_name == name and (run is None or wi.wfid == run.wfid)
    ]


def cancelled_subids(h: ProcessHarness) -> list[str]:
    return [c.fei["subid"] for c in h.cancelled]


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def bug(n: int, text: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(reason=f"BUG-{n}: {text}", strict=True)
