"""Helpers shared by the engine's functional tests (tests/engine).

Every test drives the real engine through ``engine.testing.ProcessHarness``
on a virtual clock that starts at ``START``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from typing import Any

from engine.testing import HarnessRun, ProcessHarness
from participants.workitem import Workitem

#: the harness clock's start: 2027-01-15T08:00:00Z
START = 1_800_000_000.0
START_ISO = "2027-01-15T08:00:00Z"

#: participants that only append their name to the trace
TRACERS = ("alpha", "bravo", "charlie", "delta", "foxtrot", "golf")


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


def tracer(h: ProcessHarness, name: str) -> None:
    """Register ``name``: it appends its name to ``h.trace``."""
    h.register(name, lambda wi: h.trace.append(name))


def tick(wi: Workitem) -> None:
    """A participant that counts its calls in ``fields.ticks``."""
    wi.fields["ticks"] = wi.fields.get("ticks", 0) + 1


def standard(h: ProcessHarness, holders: Iterable[str] = ()) -> ProcessHarness:
    """Register the tracers, ``tick``, and ``holders`` (``reply=False``)."""
    for name in TRACERS:
        tracer(h, name)
    h.register("tick", tick)
    for name in holders:
        h.register(name, reply=False)
    return h


def run_proc(
    h: ProcessHarness, steps: str, fields: dict[str, Any] | None = None, **kw: Any
) -> HarnessRun:
    """Launch ``proc(steps, **kw)`` and wait for it."""
    run = h.launch(proc(steps, **kw), fields=fields)
    return run.wait()


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


def dispatched_names(h: ProcessHarness) -> list[str]:
    return [wi.participant_name for wi in h.dispatched]


def cancelled_names(h: ProcessHarness) -> list[str]:
    return [c.participant for c in h.cancelled]


def clean(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` without the engine's bookkeeping keys (``__...__``)."""
    return {k: v for k, v in fields.items() if not (k.startswith("__") and k.endswith("__"))}


def make(
    holders: Iterable[str] = ("hold", "hold_a", "hold_b", "hold_c", "hold_d"),
    *,
    registered: bool = True,
) -> ProcessHarness:
    """A harness on the virtual clock; with ``registered`` it has the
    tracers (alpha, bravo, ...), ``tick`` and the ``holders``."""
    h = ProcessHarness(start=START)
    return standard(h, holders) if registered else h
