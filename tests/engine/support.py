"""Helpers shared by the engine's functional tests (tests/engine).

Every test drives the real engine through ``engine.testing.ProcessHarness``
on a virtual clock that starts at ``START`` (a round number, so sums of
durations are exact).

* harnesses: ``make`` (with or without the stock participants, on any store);
* definitions: ``definition`` (a whole YAML definition written indented in a
  test) and ``proc`` (a definition named ``t`` from its steps), ``run_proc``;
* participants: ``register_tracers`` (append their name to ``h.trace``),
  ``tick``, ``Calls``/``register_calls`` (count, record, fail on demand),
  holders (``reply=False``) with ``held`` and ``answer``;
* what happened: ``dispatched_names``, ``dispatched_to``, ``cancelled_names``,
  ``cancelled_subids``, ``step_records``, ``run_records``, ``clean``, ``only``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from typing import Any

from engine.store.base import RunStore
from engine.testing import HarnessRun, ProcessHarness
from participants.workitem import Workitem

#: the harness clock's start: 2027-01-15T08:00:00Z
START = 1_800_000_000.0
START_ISO = "2027-01-15T08:00:00Z"

#: participants that only append their name to the trace
TRACERS = ("alpha", "bravo", "charlie", "delta", "foxtrot", "golf")

#: participants registered with ``reply=False`` by ``make``
HOLDERS = ("hold", "hold_a", "hold_b", "hold_c", "hold_d")


# -- harnesses ------------------------------------------------------------------


def make(
    holders: Iterable[str] = HOLDERS,
    *,
    registered: bool = True,
    store: RunStore | None = None,
) -> ProcessHarness:
    """A harness on the virtual clock (on ``store``, default memory); with
    ``registered`` it has the tracers (alpha, bravo, ...), ``tick`` and the
    ``holders``."""
    h = ProcessHarness(store=store, start=START)
    return standard(h, holders) if registered else h


def standard(h: ProcessHarness, holders: Iterable[str] = ()) -> ProcessHarness:
    """Register the tracers, ``tick``, and ``holders`` (``reply=False``)."""
    register_tracers(h, *TRACERS)
    h.register("tick", tick)
    for name in holders:
        h.register(name, reply=False)
    return h


# -- definitions ----------------------------------------------------------------


def definition(text: str) -> str:
    """A whole YAML definition written indented in a test."""
    return textwrap.dedent(text).strip() + "\n"


def proc(steps: str, *, subprocesses: str | None = None, head: str = "") -> str:
    """A definition named ``t`` whose ``steps`` are the YAML list ``steps``
    (dedented); ``subprocesses`` is the YAML mapping of subprocesses and
    ``head`` more top-level YAML (``variables: {x: 1}``)."""
    text = "name: t\n"
    if head:
        text += textwrap.dedent(head).strip("\n") + "\n"
    if subprocesses:
        text += (
            "subprocesses:\n"
            + textwrap.indent(textwrap.dedent(subprocesses).strip("\n"), "  ")
            + "\n"
        )
    text += "steps:\n" + textwrap.indent(textwrap.dedent(steps).strip("\n"), "  ") + "\n"
    return text


def run_proc(
    h: ProcessHarness, steps: str, fields: dict[str, Any] | None = None, **kw: Any
) -> HarnessRun:
    """Launch ``proc(steps, **kw)`` and wait for it."""
    run = h.launch(proc(steps, **kw), fields=fields)
    return run.wait()


# -- participants ---------------------------------------------------------------


def register_tracers(h: ProcessHarness, *names: str) -> None:
    """Register each of ``names``: it appends its name to ``h.trace``."""
    for name in names:
        h.register(name, _tracer(h, name))


def _tracer(h: ProcessHarness, name: str) -> Any:
    def trace(wi: Workitem) -> None:
        h.trace.append(name)

    return trace


def tick(wi: Workitem) -> None:
    """A participant that counts its calls in ``fields.ticks``."""
    wi.fields["ticks"] = wi.fields.get("ticks", 0) + 1


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
    """Register a ``Calls`` participant ``name`` that traces to ``h.trace``."""
    c = Calls(name, h.trace, **kw)
    h.register(name, c)
    return c


def held(h: ProcessHarness, participant: str) -> Workitem:
    """The only workitem held for ``participant``."""
    wis = h.pending_for(participant)
    assert len(wis) == 1, f"expected one workitem held for {participant}, got {wis}"
    return wis[0]


def answer(h: ProcessHarness, participant: str, **fields: Any) -> None:
    """Reply for the workitem held for ``participant`` with ``fields`` set."""
    wi = held(h, participant)
    wi.fields.update(fields)
    h.reply(wi)


# -- what happened --------------------------------------------------------------


def dispatched_names(h: ProcessHarness) -> list[str]:
    """The participant names of every dispatched workitem, in order."""
    return [wi.participant_name for wi in h.dispatched]


def dispatched_to(h: ProcessHarness, name: str, run: HarnessRun | None = None) -> list[Workitem]:
    """The workitems dispatched to ``name`` (in ``run``), in order."""
    return [
        wi
        for wi in h.dispatched
        if wi.participant_name == name and (run is None or wi.wfid == run.wfid)
    ]


def cancelled_names(h: ProcessHarness) -> list[str]:
    """The participant names of every cancel notice, in order."""
    return [c.participant for c in h.cancelled]


def cancelled_subids(h: ProcessHarness) -> list[str]:
    """The workitem subids of every cancel notice, in order."""
    return [c.fei["subid"] for c in h.cancelled]


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
    """(event, outcome) of the run records of ``run``, in order."""
    wfid = run if isinstance(run, str) else run.wfid
    return [(r.event, r.outcome) for r in h.records if r.entity == "run" and r.wfid == wfid]


def clean(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` without the engine's bookkeeping keys (``__...__``)."""
    return {k: v for k, v in fields.items() if not (k.startswith("__") and k.endswith("__"))}


def only(items: list[Any]) -> Any:
    """The one item of ``items``."""
    assert len(items) == 1, items
    return items[0]
