"""The window figures of every CI system (exact: every record of the
window is read, nothing is sampled). Pure: it takes what
:class:`~engine.radar.store.RadarStore` read.

Definitions (``docs/radar.md`` has them with examples):

* the window's patch sets: those whose index time (when they appeared,
  else their earliest record) is in ``[since, until]``; a system is judged
  on those of the projects it has reported on;
* a system's *verdict* on a patch set: the worst (fail > error > pass >
  skipped) of its reports in the last round, a round starting at a
  recheck (so a recheck followed by a pass turns a fail into a pass);
* ``coverage``: patch sets it reported on / patch sets;
* ``success_rate``: pass / (pass + fail + error) over its verdicts;
* ``gate_pass_failure_rate``: of the patch sets the gate passed and the
  system gave pass, fail or error on, the share it failed (fail or error);
* ``agreement``: of the patch sets both gave pass or fail/error on, the
  share where both passed or both did not;
* ``response_p50_s``/``response_p90_s``: seconds from the patch set
  appearing to the system's first report with a verdict, nearest-rank
  percentiles (the smallest value with at least p% of the values at or
  below it) over every patch set of the window that appeared;
* ``recheck_rate``: share of its patch sets that were rechecked; ``rechecks``;
* ``since_last_s``: from its newest report (any time) to ``until``;
* ``longest_silence_s``: the longest time without a report of it within
  the window (from ``since`` to its first report, between two, from the
  last to ``until``);
* ``streak``: its newest verdicts alike (``{"verdict", "length"}``),
  ``fail_run``: how many of its newest verdicts in a row failed (fail or
  error), ``longest_fail_streak``;
* ``healthy`` and ``reasons`` (see :func:`health`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine.radar import rows
from engine.radar.model import ERROR, FAIL, PASS, SKIPPED
from engine.radar.parts import ratio as _ratio
from engine.radar.settings import RadarSettings
from engine.radar.store import PatchSet

__all__ = [
    "DAY",
    "daily",
    "days_of",
    "duration_text",
    "health",
    "percentile",
    "system_figures",
    "verdict_of",
    "window",
]

_RANK = {FAIL: 3, ERROR: 2, PASS: 1, SKIPPED: 0}


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile of ``values`` (None: no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def verdict_of(
    reports: Sequence[tuple[str, float, str | None, str | None]], rechecks: Sequence[float]
) -> str | None:
    """A system's verdict on a patch set (see the module docstring)."""
    judged = [r for r in reports if r[2] in _RANK]
    if not judged:
        return None
    last = max(r[1] for r in judged)
    start = max((t for t in rechecks if t <= last), default=-math.inf)
    return max((r[2] for r in judged if r[1] >= start), key=lambda v: _RANK[v or ""])


def duration_text(seconds: float | None) -> str:
    """``2 h``, ``45 min``, ``3 d 4 h``, ``12 s``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    if s < 2 * 3600:
        return f"{s // 60} min"
    if s < 2 * 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h" + (f" {m} min" if m and h < 10 else "")
    d, h = divmod(s // 3600, 24)
    return f"{d} d" + (f" {h} h" if h else "")


def system_figures(
    name: str,
    patch_sets: Sequence[PatchSet],
    *,
    since: float,
    until: float,
    report_times: Sequence[float],
    last_report: float | None,
    projects: Iterable[str] | None = None,
    gate: str | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The figures of system ``name`` over the window's ``patch_sets``
    (``report_times``: its reports' times in the window, oldest first;
    ``projects``: the projects it reports on; ``gate``: the gate's name)."""
    meta = dict(meta or {})
    scope = set(projects) if projects is not None else None
    mine = [ps for ps in patch_sets if scope is None or ps.project in scope]
    verdicts: list[tuple[float, str]] = []
    reported = reports = rechecked = rechecks = 0
    responses: list[float] = []
    counts = {PASS: 0, FAIL: 0, ERROR: 0, SKIPPED: 0}
    gate_passed = gate_passed_failed = both = agreed = 0
    for ps in mine:
        own = ps.reports.get(name)
        if not own:
            continue
        reported += 1
        reports += len(own)
        if ps.rechecks:
            rechecked += 1
            rechecks += len(ps.rechecks)
        verdict = verdict_of(own, ps.rechecks)
        judged = [r[1] for r in own if r[2] is not None]
        if ps.appeared is not None and judged:
            responses.append(max(0.0, min(judged) - ps.appeared))
        if verdict is None:
            continue
        counts[verdict] += 1
        verdicts.append((max(judged), verdict))
        if gate and gate != name and ps.reports.get(gate):
            theirs = verdict_of(ps.reports[gate], ps.rechecks)
            if verdict in (PASS, FAIL, ERROR) and theirs in (PASS, FAIL, ERROR):
                both += 1
                agreed += (verdict == PASS) == (theirs == PASS)
                if theirs == PASS:
                    gate_passed += 1
                    gate_passed_failed += verdict != PASS
    decided = counts[PASS] + counts[FAIL] + counts[ERROR]
    verdicts.sort()
    streak: dict[str, Any] | None = None
    longest_fail = run = 0
    for _, v in verdicts:
        if v == SKIPPED:
            continue
        if streak is not None and streak["verdict"] == v:
            streak["length"] += 1
        else:
            streak = {"verdict": v, "length": 1}
        run = run + 1 if v in (FAIL, ERROR) else 0
        longest_fail = max(longest_fail, run)
    # a window of all time ("since 0") starts at the system's first report
    start = since if since > 0 or not report_times else report_times[0]
    edges = [start, *report_times, until]
    silence = max((b - a for a, b in itertools.pairwise(edges)), default=until - since)
    arrived = (
        sum(1 for ps in mine if ps.time > last_report) if last_report is not None else len(mine)
    )
    return {
        "name": name,
        "classified": bool(meta.get("classified", True)),
        "gate": name == gate or bool(meta.get("gate")),
        "forge": meta.get("forge"),
        "patch_sets": len(mine),
        "reported": reported,
        "reports": reports,
        "coverage": _ratio(reported, len(mine)),
        "verdicts": dict(counts),
        "success_rate": _ratio(counts[PASS], decided),
        "gate_passed": gate_passed,
        "gate_pass_failure_rate": _ratio(gate_passed_failed, gate_passed),
        "agreement": _ratio(agreed, both),
        "compared_with_gate": both,
        "response_p50_s": percentile(responses, 50),
        "response_p90_s": percentile(responses, 90),
        "responses": len(responses),
        "rechecks": rechecks,
        "recheck_rate": _ratio(rechecked, reported),
        "last_report": last_report,
        "since_last_s": None if last_report is None else max(0.0, until - last_report),
        "arrived_since_last": arrived,
        "longest_silence_s": max(0.0, silence),
        "streak": streak,
        "fail_run": run,
        "longest_fail_streak": longest_fail,
    }


def health(figures: dict[str, Any], settings: RadarSettings) -> tuple[bool | None, list[str]]:
    """``(healthy, reasons)``: unhealthy when it has been silent longer than
    ``silence`` while patch sets arrived, covers less than
    ``min_coverage``, fails more than ``max_gate_pass_failure`` of what the
    gate passed, failed the last ``max_fail_streak`` patch sets, or its
    p90 response time is over ``max_response_p90`` (the rates only over
    ``min_patch_sets`` or more). An unclassified system: None (not judged)."""
    if not figures["classified"]:
        return None, ["not a configured CI system (unclassified account)"]
    reasons = []
    quiet, arrived = figures["since_last_s"], figures["arrived_since_last"]
    if quiet is not None and quiet > settings.silence and arrived:
        reasons.append(
            f"no report for {duration_text(quiet)} while {arrived} patch "
            f"set{'s' if arrived != 1 else ''} arrived"
        )
    n, least = figures["patch_sets"], settings.min_patch_sets
    if (
        figures["coverage"] is not None
        and n >= least
        and figures["coverage"] < settings.min_coverage
    ):
        reasons.append(
            f"reported on {figures['coverage']:.0%} of patch sets ({figures['reported']} of {n};"
            f" minimum {settings.min_coverage:.0%})"
        )
    rate, passed = figures["gate_pass_failure_rate"], figures["gate_passed"]
    if rate is not None and passed >= least and rate > settings.max_gate_pass_failure:
        reasons.append(
            f"failed {rate:.0%} of the patch sets the gate passed ({round(rate * passed)} of"
            f" {passed}; maximum {settings.max_gate_pass_failure:.0%})"
        )
    # its newest verdicts that failed, fail and error alike
    fail_run = figures.get("fail_run", 0)
    if fail_run >= settings.max_fail_streak:
        reasons.append(f"failed the last {fail_run} patch sets in a row")
    p90 = figures["response_p90_s"]
    if settings.max_response_p90 and p90 is not None and p90 > settings.max_response_p90:
        reasons.append(
            f"p90 response time {duration_text(p90)} (maximum"
            f" {duration_text(settings.max_response_p90)})"
        )
    return not reasons, reasons


def gate_of(systems: Mapping[str, Mapping[str, Any]], settings: RadarSettings) -> str | None:
    """The gate's name: the configured one (spelt as the system reported
    it), else the system whose account is marked as the gate."""
    gate = settings.gate or next((n for n, m in systems.items() if m.get("gate")), None)
    if gate:
        gate = next((n for n in systems if n.lower() == gate.lower()), gate)
    return gate


def window(
    store: Any,
    settings: RadarSettings,
    *,
    since: float,
    until: float,
    project: str | None = None,
    names: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """The figures and health of every system (of ``names``, when given)
    over ``[since, until]``, read from ``store`` (a ``RadarStore``), gate
    first then by name: from its rows (``engine.radar.rows``) when they
    hold every record, else from the records themselves."""
    systems = store.systems()
    gate = gate_of(systems, settings)
    if rows.rolled(store):
        wanted = systems if names is None else {n: systems[n] for n in names if n in systems}
        out = rows.figures(
            store, wanted, gate, since=since, until=until, project=project, systems_known=systems
        )
        for figures in out:
            figures["healthy"], figures["reasons"] = health(figures, settings)
        out.sort(key=lambda f: (not f["gate"], f["name"].lower()))
        return out
    out = window_of_records(store, settings, since=since, until=until, project=project)
    return out if names is None else [f for f in out if f["name"] in set(names)]


def window_of_records(
    store: Any,
    settings: RadarSettings,
    *,
    since: float,
    until: float,
    project: str | None = None,
) -> list[dict[str, Any]]:
    """:func:`window` from every record of the window (a store without rows,
    and what the rows are checked against)."""
    patch_sets = store.patch_sets(since, until, project)
    systems = store.systems()
    gate = gate_of(systems, settings)
    out = []
    for name, meta in systems.items():
        projects = store.projects(name)
        if project:
            if project not in projects:
                continue
            projects = {project}
        figures = system_figures(
            name,
            patch_sets,
            since=since,
            until=until,
            report_times=store.report_times(name, since, until),
            last_report=store.last_report(name),
            projects=projects,
            gate=gate,
            meta=meta,
        )
        figures["healthy"], figures["reasons"] = health(figures, settings)
        out.append(figures)
    out.sort(key=lambda f: (not f["gate"], f["name"].lower()))
    return out


DAY = 86400.0

#: the figures a day's bucket keeps (see :func:`daily`)
DAILY_FIELDS = ("patch_sets", "reported", "reports", "coverage", "success_rate", "response_p50_s")


def days_of(since: float, until: float, most: int = 366) -> list[tuple[float, float]]:
    """``[since, until]`` cut at UTC midnights: ``[(start, end)]``, each day
    ``[start, end)`` but the last, which ends at ``until`` (inclusive); the
    newest ``most`` days."""
    out: list[tuple[float, float]] = []
    start = since
    while start <= until:
        end = (math.floor(start / DAY) + 1) * DAY
        out.append((start, min(end, until)))
        if end >= until:
            break
        start = end
    return out[-most:]


def daily(
    store: Any,
    settings: RadarSettings,
    *,
    since: float,
    until: float,
    project: str | None = None,
    names: Iterable[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Per system (``names``, else every one), its figures day by day over
    ``[since, until]`` (UTC days, see :func:`days_of`): ``[{"day", "since",
    "until", <DAILY_FIELDS>}]``. Each day is exactly what :func:`window`
    gives over that day (the same :func:`system_figures` on the day's patch
    sets), with the patch sets read once for the whole span."""
    systems = store.systems()
    wanted = list(systems) if names is None else [n for n in names if n in systems]
    if since <= 0:  # all time: from the oldest report of the systems asked for
        firsts = [t for n in wanted if (t := store.first_report(n, until)) is not None]
        since = min(firsts, default=until)
    spans = days_of(since, until)
    if not spans:
        return {n: [] for n in wanted}
    if rows.rolled(store):
        return rows.daily_figures(store, wanted, spans, project=project)
    since = spans[0][0]
    patch_sets = store.patch_sets(since, until, project)
    gate = gate_of(systems, settings)
    last = len(spans) - 1
    per_day = [
        [ps for ps in patch_sets if a <= ps.time and (ps.time < b or (i == last and ps.time <= b))]
        for i, (a, b) in enumerate(spans)
    ]
    out: dict[str, list[dict[str, Any]]] = {}
    for name in wanted:
        projects = store.projects(name)
        if project:
            projects = {project} if project in projects else set()
        buckets = []
        for (a, b), sets in zip(spans, per_day, strict=True):
            f = system_figures(
                name,
                sets,
                since=a,
                until=b,
                report_times=[],
                last_report=None,
                projects=projects,
                gate=gate,
                meta=systems[name],
            )
            day = time_day(a)
            buckets.append({"day": day, "since": a, "until": b, **{k: f[k] for k in DAILY_FIELDS}})
        out[name] = buckets
    return out


def time_day(t: float) -> str:
    """``YYYY-MM-DD`` (UTC) of ``t``."""
    import datetime as _dt

    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y-%m-%d")
