"""A system's window figures from parts (no I/O: numpy over the rows).

A window's days split into the days it holds whole but for the newest
two (its *core*) and the rest (its *edges*: the first day, which the
window cuts, and the two newest, where reports still land). What a core
gives (:class:`Part`: counts, the response times sorted, the verdicts in
the order the streaks read them) stays what it was until a write moves a
version of its rows, so ``engine/radar/rows.py`` keeps it; the edges are
computed per request; :func:`combine` gives exactly what one pass over
every row of the window would (``stats.system_figures``): counts add up,
a percentile is the k-th of two sorted arrays, the streaks read the two
verdict sequences merged in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.radar.model import ERROR, FAIL, PASS, SKIPPED

__all__ = ["Part", "combine", "kth", "part_of", "parts_of", "streaks_sorted"]

#: a verdict's code in the rows, and back (engine/radar/rows.py)
CODES = {PASS: 1, FAIL: 2, ERROR: 3, SKIPPED: 4}
NAMES = {c: v for v, c in CODES.items()}
#: ``sorted()`` of (time, verdict name) ties by name: the codes in that order
ALPHA = np.zeros(5, dtype=np.int8)
for _i, _name in enumerate(sorted(CODES)):
    ALPHA[CODES[_name]] = _i
#: a patch set's row flags: it is stored; it appeared (its upload time is known)
LIVE, APPEARED = 1, 2


@dataclass
class Part:
    """What a set of rows (the patch sets ``mine`` of a system's scope)
    gives: the counts ``stats.system_figures`` adds up, the response times
    sorted, and the verdicts (skipped ones left out) with their times in
    the streaks' order (time, then the verdict's name)."""

    patch_sets: int
    reported: int
    reports: int
    rechecked: int
    rechecks: int
    tally: np.ndarray
    both: int
    agreed: int
    gate_passed: int
    gate_passed_failed: int
    responses: np.ndarray
    t: np.ndarray
    a: np.ndarray
    v: np.ndarray
    _runs: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)
    _top: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def nbytes(self) -> int:
        # with its runs and their order (made at its first combine): as many as its verdicts
        return int(self.responses.nbytes + self.t.nbytes + self.a.nbytes + 25 * len(self.v)) + 256

    def longest_but(self, touched: np.ndarray) -> int:
        """The longest of its runs of failures but those at ``touched``
        (sorted run indexes): from its longest down."""
        if self._top is None:
            self._top = np.argsort(-self.runs()[1], kind="stable")
        top, runs = self._top, self.runs()[1]
        for size in (64, len(top)):
            cand = top[:size]
            at = np.minimum(np.searchsorted(touched, cand), len(touched) - 1)
            free = np.flatnonzero(touched[at] != cand)
            if len(free):
                return int(runs[cand[free[0]]])
        return 0

    def runs(self) -> tuple[np.ndarray, np.ndarray]:
        """Where its passes are (in :attr:`v`), and the failures before,
        between and after them (one more than the passes)."""
        if self._runs is None:
            passes = np.flatnonzero(self.v == CODES[PASS])
            cuts = np.concatenate(([-1], passes, [len(self.v)]))
            self._runs = (passes, np.diff(cuts) - 1)
        return self._runs


def part_of(
    mine: np.ndarray,
    ps: dict[str, np.ndarray],
    rows: dict[str, np.ndarray],
    gate_rows: dict[str, np.ndarray] | None,
) -> Part:
    """The :class:`Part` of the rows ``mine`` (a mask over ``ps``, the
    patch sets' rows, and ``rows``, the system's rows at the same slots)."""
    at = np.flatnonzero(mine & (rows["reports"] > 0))  # the patch sets it reported on
    n = rows["reports"][at]
    rch = ps["rechecks"][at]
    answered = (rows["judged"][at] == 1) & ((ps["flags"][at] & APPEARED) != 0)
    responses = np.maximum(0.0, rows["first"][at][answered] - ps["appeared"][at][answered])
    v = rows["verdict"][at]
    both = agreed = gate_passed = gate_passed_failed = 0
    if gate_rows is not None:
        theirs = np.where(gate_rows["reports"][at] > 0, gate_rows["verdict"][at], 0)
        compared = (v >= 1) & (v <= 3) & (theirs >= 1) & (theirs <= 3)
        mine_pass = v == CODES[PASS]
        their_pass = theirs == CODES[PASS]
        both = int(np.count_nonzero(compared))
        agreed = int(np.count_nonzero(compared & (mine_pass == their_pass)))
        gate_passed = int(np.count_nonzero(compared & their_pass))
        gate_passed_failed = int(np.count_nonzero(compared & their_pass & ~mine_pass))
    kept = (v > 0) & (v != CODES[SKIPPED])
    t, vk = _in_order(rows["last"][at][kept], v[kept])
    return Part(
        patch_sets=int(np.count_nonzero(mine)),
        reported=len(at),
        reports=int(n.sum(dtype=np.int64)),
        rechecked=int(np.count_nonzero(rch)),
        rechecks=int(rch.sum(dtype=np.int64)),
        tally=np.bincount(v, minlength=5).astype(np.int64),
        both=both,
        agreed=agreed,
        gate_passed=gate_passed,
        gate_passed_failed=gate_passed_failed,
        responses=np.sort(responses),
        t=t,
        a=ALPHA[vk],
        v=vk,
    )


def _in_order(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Verdicts ``v`` at times ``t`` in the streaks' order: by time, then by
    the verdict's name (a sort by both only when two times are equal)."""
    order = np.argsort(t)
    ts = t[order]
    if len(ts) > 1:
        step = ts[1:] != ts[:-1]
        if not step.all():  # equal times: by (the time's rank, the name), exact integers
            rank = np.concatenate(([0], np.cumsum(step, dtype=np.int64)))
            order = order[np.argsort(rank * 4 + ALPHA[v[order]])]
            ts = t[order]
    return ts, v[order]


def parts_of(
    mine: dict[str, np.ndarray],
    ps: dict[str, np.ndarray],
    rows: dict[str, dict[str, np.ndarray]],
    gate: str | None,
) -> dict[str, Part]:
    """:func:`part_of` of every system in ``mine`` (its mask over ``ps``),
    ``gate``'s rows the gate's (not for the gate itself), computed for all
    of them at once: each figure one numpy call over a (system x patch set)
    array, the same operations on the same values per element."""
    names = list(mine)
    if not names:
        return {}
    if not len(ps["time"]):
        return {n: part_of(mine[n], ps, rows[n], None) for n in names}
    # at most about 2 M elements an array (a 90-day core: a few systems at a time)
    per = max(1, _MOST // len(ps["time"]))
    if len(names) > per:
        out: dict[str, Part] = {}
        for i in range(0, len(names), per):
            out |= parts_of({n: mine[n] for n in names[i : i + per]}, ps, rows, gate)
        return out

    def stack(column: str) -> np.ndarray:
        return np.stack([rows[n][column] for n in names])

    reports = stack("reports")
    verdict = stack("verdict")
    at = np.stack([mine[n] for n in names]) & (reports > 0)
    rch = ps["rechecks"]
    answered = at & (stack("judged") == 1) & ((ps["flags"] & APPEARED) != 0)
    delay = np.maximum(0.0, stack("first") - ps["appeared"])
    responses = np.sort(np.where(answered, delay, np.inf), axis=1)
    n_answered = answered.sum(axis=1)
    v = np.where(at, verdict, 0)
    tally = np.stack([(v == c).sum(axis=1) for c in range(5)], axis=1).astype(np.int64)
    tally[:, 0] = 0
    tally[:, 0] = at.sum(axis=1) - tally.sum(axis=1)  # reported on, no verdict
    both = agreed = gate_passed = gate_passed_failed = np.zeros(len(names), dtype=np.int64)
    if gate is not None and gate in rows:
        g = rows[gate]
        theirs = np.where(g["reports"] > 0, g["verdict"], 0)
        compared = at & (v >= 1) & (v <= 3) & ((theirs >= 1) & (theirs <= 3))
        mine_pass = v == CODES[PASS]
        their_pass = theirs == CODES[PASS]
        both = compared.sum(axis=1)
        agreed = (compared & (mine_pass == their_pass)).sum(axis=1)
        gate_passed = (compared & their_pass).sum(axis=1)
        gate_passed_failed = (compared & their_pass & ~mine_pass).sum(axis=1)
    kept = at & (v > 0) & (v != CODES[SKIPPED])
    last = stack("last")
    patch_sets = np.count_nonzero(np.stack([mine[n] for n in names]), axis=1)
    reported = np.count_nonzero(at, axis=1)
    n_reports = np.where(at, reports, 0).sum(axis=1, dtype=np.int64)
    rechecked = np.count_nonzero(at & (rch > 0), axis=1)
    rechecks = np.where(at, rch, 0).sum(axis=1, dtype=np.int64)
    out = {}
    for i, name in enumerate(names):
        if name == gate:  # the gate is not compared with itself
            out[name] = part_of(mine[name], ps, rows[name], None)
            continue
        t, vk = _in_order(last[i][kept[i]], v[i][kept[i]])
        out[name] = Part(
            patch_sets=int(patch_sets[i]),
            reported=int(reported[i]),
            reports=int(n_reports[i]),
            rechecked=int(rechecked[i]),
            rechecks=int(rechecks[i]),
            tally=tally[i],
            both=int(both[i]),
            agreed=int(agreed[i]),
            gate_passed=int(gate_passed[i]),
            gate_passed_failed=int(gate_passed_failed[i]),
            responses=responses[i, : int(n_answered[i])].copy(),
            t=t,
            a=ALPHA[vk],
            v=vk,
        )
    return out


def kth(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """The ``k``-th smallest (1-based) of the sorted arrays ``a`` and ``b``
    together."""
    if not len(a):
        return float(b[k - 1])
    if not len(b):
        return float(a[k - 1])
    # i of b's and k - i of a's: the least i whose b[i] (0-based) is past a[k-i-1]
    lo, hi = max(0, k - len(a)), min(k, len(b))
    while lo < hi:
        i = (lo + hi) // 2
        if b[i] < a[k - i - 1]:
            lo = i + 1
        else:
            hi = i
    i = lo
    last_a = a[k - i - 1] if k - i >= 1 else -math.inf
    last_b = b[i - 1] if i >= 1 else -math.inf
    return float(max(last_a, last_b))


def _percentile(a: np.ndarray, b: np.ndarray, p: float) -> float | None:
    n = len(a) + len(b)
    if not n:
        return None
    return kth(a, b, max(1, math.ceil(p / 100 * n)))


def _positions(core: Part, edge: Part) -> np.ndarray:
    """Where the edge's verdicts fall among the core's (indexes into
    :attr:`Part.v`, in order; equal time and name: the same verdict, either
    place)."""
    pos = np.searchsorted(core.t, edge.t, side="left")
    ends = np.searchsorted(core.t, edge.t, side="right")
    for i in np.flatnonzero(ends > pos):  # equal times: by name
        lo, hi = int(pos[i]), int(ends[i])
        pos[i] = lo + int(np.searchsorted(core.a[lo:hi], edge.a[i], side="left"))
    return pos


def _merged_streaks(core: Part, edge: Part) -> tuple[dict[str, Any] | None, int, int]:
    """:func:`streaks_sorted` of the core's and the edge's verdicts merged,
    without merging them: the core's runs of failures (between its passes)
    that no edge verdict falls in stay as they are; those some fall in are
    counted again from where they fall; the newest run from the newest
    verdicts merged."""
    if not len(edge.v):
        return streaks_sorted(core.v)
    if not len(core.v):
        return streaks_sorted(edge.v)
    pos = _positions(core, edge)
    passes, runs = core.runs()
    ev = edge.v
    # the core run each edge verdict falls in, and the core failures of that run before it
    j = np.searchsorted(passes, pos, side="left")
    start = np.zeros(len(pos), dtype=np.int64)
    after = j > 0
    start[after] = passes[j[after] - 1] + 1
    failed = ev != CODES[PASS]
    before = np.cumsum(failed) - failed  # the edge's failures before each of its verdicts
    heads = np.flatnonzero(np.concatenate(([True], j[1:] != j[:-1])))  # a run's first
    sizes = np.diff(np.concatenate((heads, [len(ev)])))
    # F: the failures of its run before each edge verdict, core's and edge's
    f = (pos - start) + before - np.repeat(before[heads], sizes)
    p = np.flatnonzero(~failed)
    fp, jp = f[p], j[p]
    same = np.concatenate(([False], jp[1:] == jp[:-1]))
    split = fp - np.where(same, np.concatenate(([0], fp[:-1])), 0)  # runs ended by edge passes
    touched = j[heads]
    total = runs[touched] + np.add.reduceat(failed.astype(np.int64), heads)
    last_f = np.zeros(len(heads), dtype=np.int64)
    if len(p):
        ends = np.flatnonzero(np.concatenate((jp[1:] != jp[:-1], [True])))  # a run's last pass
        last_f[np.searchsorted(touched, jp[ends])] = fp[ends]
    tails = total - last_f  # what is left of each touched run after its last edge pass
    longest = max(
        core.longest_but(touched),
        int(split.max()) if len(split) else 0,
        int(tails.max()),
    )
    fail_run = int(tails[-1]) if touched[-1] == len(runs) - 1 else int(runs[-1])
    # the newest run of one verdict: from the newest verdicts merged, as many as it takes
    n, m = len(core.v), 64
    while True:
        lo = max(0, n - m)
        k = int(np.searchsorted(pos, lo, side="left"))
        tail = np.insert(core.v[lo:], pos[k:] - lo, ev[k:])
        other = np.flatnonzero(tail != tail[-1])
        if len(other) or (lo == 0 and k == 0):
            length = len(tail) - (int(other[-1]) + 1 if len(other) else 0)
            break
        m *= 4
    return {"verdict": NAMES[int(tail[-1])], "length": length}, fail_run, longest


def streaks_sorted(v: np.ndarray) -> tuple[dict[str, Any] | None, int, int]:
    """``streak``, ``fail_run``, ``longest_fail_streak`` of the verdicts
    ``v`` in order (skipped ones left out)."""
    if not len(v):
        return None, 0, 0
    change = np.flatnonzero(v[1:] != v[:-1])
    length = len(v) - (int(change[-1]) + 1 if len(change) else 0)
    streak = {"verdict": NAMES[int(v[-1])], "length": length}
    passes = np.flatnonzero(v == CODES[PASS])
    if not len(passes):
        return streak, len(v), len(v)
    cuts = np.concatenate(([-1], passes, [len(v)]))
    runs = np.diff(cuts) - 1
    return streak, int(runs[-1]), int(runs.max())


def combine(core: Part | None, edge: Part) -> dict[str, Any]:
    """The figures of ``core`` and ``edge`` together that
    ``stats.system_figures`` gives from their rows' records (those that
    need no report times: ``rows.py`` adds them)."""
    if core is None:
        core = _EMPTY
    patch_sets = core.patch_sets + edge.patch_sets
    reported = core.reported + edge.reported
    tally = core.tally + edge.tally
    counts = {name: int(tally[c]) for name, c in CODES.items()}
    decided = counts[PASS] + counts[FAIL] + counts[ERROR]
    both = core.both + edge.both
    gate_passed = core.gate_passed + edge.gate_passed
    streak, fail_run, longest = _merged_streaks(core, edge)
    ratio = _ratio
    return {
        "patch_sets": patch_sets,
        "reported": reported,
        "reports": core.reports + edge.reports,
        "coverage": ratio(reported, patch_sets),
        "verdicts": counts,
        "success_rate": ratio(counts[PASS], decided),
        "gate_passed": gate_passed,
        "gate_pass_failure_rate": ratio(
            core.gate_passed_failed + edge.gate_passed_failed, gate_passed
        ),
        "agreement": ratio(core.agreed + edge.agreed, both),
        "compared_with_gate": both,
        "response_p50_s": _percentile(core.responses, edge.responses, 50),
        "response_p90_s": _percentile(core.responses, edge.responses, 90),
        "responses": len(core.responses) + len(edge.responses),
        "rechecks": core.rechecks + edge.rechecks,
        "recheck_rate": ratio(core.rechecked + edge.rechecked, reported),
        "streak": streak,
        "fail_run": fail_run,
        "longest_fail_streak": longest,
    }


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


#: the elements of one (system x patch set) array in :func:`parts_of`
_MOST = 2_000_000
_F8 = np.zeros(0, dtype="<f8")
_I1 = np.zeros(0, dtype=np.int8)
_EMPTY = Part(0, 0, 0, 0, 0, np.zeros(5, dtype=np.int64), 0, 0, 0, 0, _F8, _F8, _I1, _I1)
