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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.radar.model import ERROR, FAIL, PASS, SKIPPED

__all__ = [
    "Core",
    "Part",
    "combine",
    "cores_of",
    "kth",
    "merged_streaks",
    "part_of",
    "parts_of",
    "responses_in_order",
    "streaks_sorted",
    "verdicts_in_order",
]

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
    _runs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(
        default=None, repr=False, compare=False
    )
    _blocks: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def nbytes(self) -> int:
        # with its verdicts' runs (made at its first combine): 12 bytes a verdict at most
        return int(self.responses.nbytes + self.t.nbytes + self.a.nbytes + 13 * len(self.v)) + 256

    def longest_but(self, touched: np.ndarray) -> int:
        """The longest of its runs of failures but those at ``touched``
        (sorted run indexes): the longest of each block of runs kept, the
        blocks ``touched`` falls in looked at run by run."""
        runs = self.runs()[1]
        if self._blocks is None:
            pad = (-len(runs)) % _BLOCK
            self._blocks = (
                np.pad(runs, (0, pad), constant_values=-1).reshape(-1, _BLOCK).max(axis=1)
            )
        of = touched // _BLOCK  # touched is sorted, each run once
        hit = of[np.flatnonzero(np.diff(of, prepend=-1))]
        blocks = self._blocks.copy()
        blocks[hit] = -1
        best = int(blocks.max()) if len(blocks) else 0
        inside = (hit[:, None] * _BLOCK + _IN_BLOCK).ravel()
        inside = inside[inside < len(runs)]
        free = runs[inside]
        free[np.searchsorted(inside, touched)] = -1
        if len(free):
            best = max(best, int(free.max()))
        return max(best, 0)

    def runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where its passes are (in :attr:`v`), the failures before, between
        and after them (one more than the passes), and how many passes come
        before each index of :attr:`v` (and its end)."""
        if self._runs is None:
            passing = self.v == CODES[PASS]
            passes = np.flatnonzero(passing).astype(np.int32)
            cuts = np.concatenate(([-1], passes, [len(self.v)]))
            before = np.zeros(len(self.v) + 1, dtype=np.int32)
            np.cumsum(passing, out=before[1:])
            self._runs = (passes, (np.diff(cuts) - 1).astype(np.int32), before)
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
    order = _order(rows["last"][at][kept], v[kept])
    t, vk = rows["last"][at][kept][order], v[kept][order]
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


def _order(t: np.ndarray, v: np.ndarray, kind: str | None = None) -> np.ndarray:
    """The order of verdicts ``v`` at times ``t`` in the streaks' order: by
    time, then by the verdict's name (by both only when two times are equal);
    ``kind``: numpy's sort (stable: ``t`` is runs in order)."""
    order = np.argsort(t, kind=kind)
    ts = t[order]
    if len(ts) > 1:
        step = ts[1:] != ts[:-1]
        if not step.all():  # equal times: by (the time's rank, the name), exact integers
            rank = np.concatenate(([0], np.cumsum(step, dtype=np.int64)))
            # in order but within each run of equal times: timsort takes it in one pass
            order = order[np.argsort(rank * 4 + ALPHA[v[order]], kind="stable")]
    return order


def parts_of(
    mine: dict[str, np.ndarray],
    ps: dict[str, np.ndarray],
    rows: dict[str, dict[str, np.ndarray]],
    gate: str | None,
    runs: Mapping[str, Sequence[tuple[int, np.ndarray, np.ndarray]]] | None = None,
    memos: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Part]:
    """:func:`part_of` of every system in ``mine`` (its mask over ``ps``),
    ``gate``'s rows the gate's (not for the gate itself), computed for all
    of them at once: each figure one numpy call over a (system x patch set)
    array, the same operations on the same values per element (``runs``,
    ``memos``: see :func:`cores_of`)."""
    made = cores_of(mine, ps, rows, gate, runs=runs, memos=memos)
    return {name: core.part for name, core in made.items()}


#: a part's counts, in a :class:`Core`'s ``counts`` columns
SCALARS = (
    "patch_sets",
    "reported",
    "reports",
    "rechecked",
    "rechecks",
    "tally0",
    "tally1",
    "tally2",
    "tally3",
    "tally4",
    "both",
    "agreed",
    "gate_passed",
    "gate_passed_failed",
)


@dataclass
class Core:
    """A :class:`Part` kept by day: ``days`` (sorted), each day's counts
    (``counts``: a row of :data:`SCALARS` a day), and the part, its
    response times and verdicts tagged with their patch set's day
    (``rd``, ``td``), so that a day can be taken out and put in again
    (:meth:`replaced`) without computing the others again."""

    days: np.ndarray
    counts: np.ndarray
    part: Part
    td: np.ndarray
    rd: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.part.nbytes + self.counts.nbytes + self.td.nbytes + self.rd.nbytes

    def _of(self, drop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the verdicts and of the response times of the days
        ``drop`` (mostly one: a compare each)."""
        out = []
        for tags in (self.td, self.rd):
            mask = np.zeros(len(tags), dtype=bool)
            for d in drop:
                mask |= tags == d
            out.append(mask)
        return out[0], out[1]

    @classmethod
    def empty(cls) -> Core:
        """A core of no day."""
        no = np.zeros(0, dtype=np.int32)
        return _core(
            no,
            np.zeros((0, len(SCALARS)), dtype=np.int64),
            responses=_F8,
            rd=no,
            t=_F8,
            a=_I1,
            v=np.zeros(0, dtype=np.uint8),
            td=no,
        )

    def replaced(self, drop: np.ndarray, new: Core, same: bool = False) -> Core:
        """This core without the days ``drop`` and with ``new``'s days
        (none of them kept here); ``same``: the caller knows the days'
        verdicts and response times did not move (its rows and its patch
        sets as they were), only their counts may have."""
        part = self.part
        # a few days each (sets: np.isin costs more on arrays this small)
        dropped, joining = set(drop.tolist()), set(new.days.tolist())
        same_days = len(drop) == len(new.days) and joining <= dropped
        if same and same_days and dropped <= set(self.days.tolist()):
            out_v = out_r = None
        else:
            out_v, out_r = self._of(drop)
        if same_days and (
            out_v is None
            or (
                np.array_equal(part.t[out_v], new.part.t)
                and np.array_equal(part.v[out_v], new.part.v)
                and np.array_equal(part.responses[out_r], new.part.responses)
            )
        ):
            # the same days, their verdicts and response times as they were
            # (a recheck, a vote that changed no row): their counts only
            counts = self.counts.copy()
            at = np.searchsorted(self.days, new.days)
            if np.array_equal(self.days[np.minimum(at, len(self.days) - 1)], new.days):
                counts[at] = new.counts
                counted = _core(
                    self.days,
                    counts,
                    responses=part.responses,
                    rd=self.rd,
                    t=part.t,
                    a=part.a,
                    v=part.v,
                    td=self.td,
                )
                counted.part._runs, counted.part._blocks = part._runs, part._blocks
                return counted
        if out_v is None:
            out_v, out_r = self._of(drop)
        n = new.part
        keep_d = ~np.isin(self.days, drop)
        days = np.concatenate((self.days[keep_d], new.days))
        counts = np.concatenate((self.counts[keep_d], new.counts))
        order = np.argsort(days, kind="stable")
        if same_days and len(drop) == 1 and np.array_equal(part.responses[out_r], n.responses):
            # one day, its response times as they were (a recheck's new
            # votes do not move a row's first report): those arrays kept
            responses, rd = part.responses, self.rd
        else:
            keep_r = ~out_r
            kept_responses = part.responses[keep_r]
            rpos = np.searchsorted(kept_responses, n.responses, side="left")
            responses, rd = _inserted(
                (kept_responses, self.rd[keep_r]), (n.responses, new.rd), rpos
            )
        t, a, v, td = _spliced((part.t, part.a, part.v, self.td), out_v, part, new)
        return _core(days[order], counts[order], responses=responses, rd=rd, t=t, a=a, v=v, td=td)


def _spliced(
    olds: tuple[np.ndarray, ...], out: np.ndarray, part: Part, new: Core
) -> list[np.ndarray]:
    """A core's verdict arrays ``olds`` (in order: ``part``'s ``t``, ``a``,
    ``v`` and their days) without those ``out`` and with ``new``'s in
    their places. Only the stretch from the first taken out or put in to
    the last is masked and merged; the rest is copied as it is (a day of
    a 90-day core moved by a recheck: its verdicts sit near each other,
    and near the end)."""
    gone = np.flatnonzero(out)
    at = _positions(part, new.part)  # where among all of them, those going out included
    size = len(olds[0])
    lo = min(int(gone[0]) if len(gone) else size, int(at[0]) if len(at) else size)
    hi = max(int(gone[-1]) + 1 if len(gone) else 0, int(at[-1]) if len(at) else 0, lo)
    keep = ~out[lo:hi]
    # among those kept of [lo, hi): none go out before lo
    pos = at - np.searchsorted(gone, at, side="left") - lo
    n = new.part
    middle = _inserted(tuple(old[lo:hi][keep] for old in olds), (n.t, n.a, n.v, new.td), pos)
    return [
        np.concatenate((old[:lo], mid, old[hi:])) for old, mid in zip(olds, middle, strict=True)
    ]


def _inserted(
    olds: tuple[np.ndarray, ...], news: tuple[np.ndarray, ...], pos: np.ndarray
) -> list[np.ndarray]:
    """Each of ``news`` inserted into its of ``olds`` before the indexes
    ``pos`` (in order), as ``np.insert`` does, the places worked out once."""
    k, m = len(olds[0]), len(news[0])
    at = pos + np.arange(m)
    rest = np.ones(k + m, dtype=bool)
    rest[at] = False
    out = []
    for old, new in zip(olds, news, strict=True):
        merged = np.empty(k + m, dtype=old.dtype)
        merged[at] = new
        merged[rest] = old
        out.append(merged)
    return out


def _core(days: np.ndarray, counts: np.ndarray, **arrays: np.ndarray) -> Core:
    total = counts.sum(axis=0, dtype=np.int64) if len(counts) else np.zeros(len(SCALARS), np.int64)
    c = dict(zip(SCALARS, (int(x) for x in total), strict=True))
    part = Part(
        patch_sets=c["patch_sets"],
        reported=c["reported"],
        reports=c["reports"],
        rechecked=c["rechecked"],
        rechecks=c["rechecks"],
        tally=total[5:10].copy(),
        both=c["both"],
        agreed=c["agreed"],
        gate_passed=c["gate_passed"],
        gate_passed_failed=c["gate_passed_failed"],
        responses=arrays["responses"],
        t=arrays["t"],
        a=arrays["a"],
        v=arrays["v"],
    )
    return Core(days, counts, part, arrays["td"], arrays["rd"])


def cores_of(
    mine: dict[str, np.ndarray],
    ps: dict[str, np.ndarray],
    rows: dict[str, dict[str, np.ndarray]],
    gate: str | None,
    day_of: np.ndarray | None = None,
    sort: bool = True,
    runs: Mapping[str, Sequence[tuple[int, np.ndarray, np.ndarray]]] | None = None,
    memos: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Core]:
    """Per system in ``mine`` (its mask over ``ps``) its :class:`Core` of
    the rows, by ``day_of`` (each row's day, in order: the rows are laid
    out by day; None: all one day, 0), all systems at once (see
    :func:`parts_of`); not ``sort``: its counts alone (no response times,
    no verdicts: for :meth:`Core.replaced` told they did not move).
    ``runs`` (not with ``day_of``): per system, each of its segments of
    rows (a day's) with the segment's first row and its verdicts and
    answers in order (:func:`verdicts_in_order`, :func:`responses_in_order`):
    its verdicts and response times merged from those, not sorted; with
    ``memos``, per system the memo :func:`_merged` keeps."""
    names = list(mine)
    size = len(ps["time"])
    tagged = day_of is not None
    if day_of is None:
        day_of = np.zeros(size, dtype=np.int32)
    if not names:
        return {}
    # at most about 2 M elements an array (a 90-day core: a few systems at a time)
    per = max(1, _MOST // max(size, 1))
    if len(names) > per:
        out: dict[str, Core] = {}
        for i in range(0, len(names), per):
            chunk = {n: mine[n] for n in names[i : i + per]}
            out |= cores_of(chunk, ps, rows, gate, day_of if tagged else None, sort, runs, memos)
        return out
    days, starts = np.unique(day_of, return_index=True)

    def stack(column: str) -> np.ndarray:
        return np.stack([rows[n][column] for n in names])

    def per_day(values: np.ndarray) -> np.ndarray:  # (systems, days)
        if not size:
            return np.zeros((len(names), 0), dtype=np.int64)
        if len(starts) == 1:
            return values.sum(axis=1, dtype=np.int64)[:, None]
        return np.add.reduceat(values, starts, axis=1, dtype=np.int64)

    reports = stack("reports")
    verdict = stack("verdict")
    taken = np.stack([mine[n] for n in names])
    at = taken & (reports > 0)
    rch = ps["rechecks"]
    answered = at & (stack("judged") == 1) & ((ps["flags"] & APPEARED) != 0)
    delay = np.maximum(0.0, stack("first") - ps["appeared"]) if sort and runs is None else None
    if not sort or runs is not None:
        r_order = r_sorted = np.zeros((len(names), 0))
    elif tagged:  # each response time with its day
        r_order = np.argsort(np.where(answered, delay, np.inf), axis=1)
        r_sorted = np.take_along_axis(delay, r_order, axis=1)
    else:
        r_sorted = np.sort(np.where(answered, delay, np.inf), axis=1)
    n_answered = answered.sum(axis=1) if sort else np.zeros(len(names), dtype=np.int64)
    v = np.where(at, verdict, 0)
    columns = [
        per_day(taken),
        per_day(at),
        per_day(np.where(at, reports, 0)),
        per_day(at & (rch > 0)),
        per_day(np.where(at, rch, 0)),
        per_day(at & (v == 0)),
        *(per_day(v == c) for c in range(1, 5)),
    ]
    if gate is not None and gate in rows:
        g = rows[gate]
        theirs = np.where(g["reports"] > 0, g["verdict"], 0)
        compared = at & (v >= 1) & (v <= 3) & ((theirs >= 1) & (theirs <= 3))
        compared[[n == gate for n in names]] = False  # the gate is not compared with itself
        mine_pass = v == CODES[PASS]
        their_pass = theirs == CODES[PASS]
        columns += [
            per_day(compared),
            per_day(compared & (mine_pass == their_pass)),
            per_day(compared & their_pass),
            per_day(compared & their_pass & ~mine_pass),
        ]
    else:
        columns += [np.zeros_like(columns[0]) for _ in range(4)]
    counts = np.stack(columns, axis=2)  # (systems, days, SCALARS)
    kept = at & (v > 0) & (v != CODES[SKIPPED])
    last = stack("last")
    out = {}
    if not sort:
        return {
            name: _core(
                days,
                counts[i],
                responses=_F8,
                rd=_NO_DAYS,
                t=_F8,
                a=_I1,
                v=_NO_VERDICTS,
                td=_NO_DAYS,
            )
            for i, name in enumerate(names)
        }
    if runs is not None:
        for i, name in enumerate(names):
            out[name] = _merged(
                days,
                counts[i],
                taken[i],
                runs[name],
                last[i],
                v[i],
                rows[name],
                ps,
                memos.get(name) if memos is not None else None,
            )
        return out
    for i, name in enumerate(names):
        k = kept[i]
        order = _order(last[i][k], v[i][k])
        vk = v[i][k][order]
        m = int(n_answered[i])
        out[name] = _core(
            days,
            counts[i],
            responses=r_sorted[i, :m].copy(),
            rd=day_of[r_order[i, :m]] if tagged else np.zeros(m, dtype=np.int32),
            t=last[i][k][order],
            a=ALPHA[vk],
            v=vk,
            td=day_of[k][order],
        )
    return out


def verdicts_in_order(rows: dict[str, np.ndarray]) -> np.ndarray:
    """A system's rows of a segment (a day's), whatever the window: the
    indexes of those with a verdict (skipped ones left out) in the
    streaks' order."""
    v = rows["verdict"]
    vi = np.flatnonzero((rows["reports"] > 0) & (v >= 1) & (v <= 3))
    return vi[_order(rows["last"][vi], v[vi])].astype(np.int64)


def responses_in_order(ps: dict[str, np.ndarray], rows: dict[str, np.ndarray]) -> np.ndarray:
    """The indexes of a system's rows of a segment that answered a patch
    set (of ``ps``, the same segment's) with a known upload, by response
    time."""
    answered = (rows["reports"] > 0) & (rows["judged"] == 1) & ((ps["flags"] & APPEARED) != 0)
    ri = np.flatnonzero(answered)
    return ri[np.argsort(np.maximum(0.0, rows["first"][ri] - ps["appeared"][ri]))].astype(np.int64)


def _merged(
    days: np.ndarray,
    counts: np.ndarray,
    taken: np.ndarray,
    runs: Sequence[tuple[int, np.ndarray, np.ndarray]],
    last: np.ndarray,
    v: np.ndarray,
    rows: dict[str, np.ndarray],
    ps: dict[str, np.ndarray],
    memo: dict[str, Any] | None = None,
) -> Core:
    """A system's :class:`Core` (untagged) from its segments' runs in order,
    those of its rows ``taken`` kept: each run in order already, so a stable
    sort merges them in a pass each. ``memo`` (the caller's, per system):
    the verdicts' order and the response times of the last call, given
    again when made of the same runs (the same objects: the caller keeps
    a segment's runs while its rows do not move) and the same rows of
    them taken."""
    vis, ris = [], []
    for start, vi, ri in runs:
        vi = vi + start
        ri = ri + start
        vis.append(vi[taken[vi]])
        ris.append(ri[taken[ri]])
    vi = np.concatenate(vis) if vis else np.zeros(0, dtype=np.int64)
    ri = np.concatenate(ris) if ris else np.zeros(0, dtype=np.int64)
    starts = tuple(start for start, _, _ in runs)
    kept = memo.get("verdicts") if memo is not None else None
    if kept is not None and _same_runs(kept, starts, [r[1] for r in runs], vi):
        t, a, vk = kept[3:]
    else:
        order = _order(last[vi], v[vi], kind="stable")
        vk = v[vi[order]]
        t, a = last[vi[order]], ALPHA[vk]
        if memo is not None:
            memo["verdicts"] = (tuple(r[1] for r in runs), starts, vi, t, a, vk)
    kept = memo.get("answers") if memo is not None else None
    if kept is not None and _same_runs(kept, starts, [r[2] for r in runs], ri):
        responses = kept[3]
    else:
        responses = np.sort(np.maximum(0.0, rows["first"][ri] - ps["appeared"][ri]), kind="stable")
        if memo is not None:
            memo["answers"] = (tuple(r[2] for r in runs), starts, ri, responses)
    return _core(
        days,
        counts,
        responses=responses,
        rd=np.zeros(len(responses), dtype=np.int32),
        t=t,
        a=a,
        v=vk,
        td=np.zeros(len(vk), dtype=np.int32),
    )


def _same_runs(
    kept: tuple[Any, ...], starts: tuple[int, ...], runs: list[np.ndarray], taken: np.ndarray
) -> bool:
    """Whether ``kept`` (a memo of :func:`_merged`) was made of the runs
    ``runs`` (the same objects) at ``starts``, the same of them taken."""
    return (
        kept[1] == starts
        and len(kept[0]) == len(runs)
        and all(a is b for a, b in zip(kept[0], runs, strict=True))
        and np.array_equal(kept[2], taken)
    )


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
    # most come after every one of the core (the newest days): searched for only the others
    pos = np.full(len(edge.t), len(core.t), dtype=np.int64)
    inside = int(np.searchsorted(edge.t, core.t[-1], side="right")) if len(core.t) else 0
    pos[:inside] = np.searchsorted(core.t, edge.t[:inside], side="left")
    n = len(core.t)
    if not n:
        return pos
    tied = np.flatnonzero((pos < n) & (core.t[np.minimum(pos, n - 1)] == edge.t))
    if len(tied):  # equal times: after those of the core with a name before its
        lo, a = pos[tied], edge.a[tied]
        hi = np.searchsorted(core.t, edge.t[tied], side="right")
        before = np.zeros(len(tied), dtype=pos.dtype)
        for k in range(int((hi - lo).max())):  # a few: equal times are few
            at = lo + k
            inside = at < hi
            before += inside & (core.a[np.minimum(at, len(core.a) - 1)] < a)
        pos[tied] = lo + before
    return pos


def merged_streaks(core: Part, edge: Part) -> tuple[dict[str, Any] | None, int, int]:
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
    passes, runs, passes_before = core.runs()
    ev = edge.v
    # the core run each edge verdict falls in, and the core failures of that run before it
    j = passes_before[pos].astype(np.int64)
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
    # the newest run of one verdict: back from the end of the two merged
    # (core verdict i at i + the edge's before it, edge verdict k at pos[k] + k)
    n = len(core.v)
    newest = ev[-1] if pos[-1] >= n else core.v[-1]
    i = _last_other(core.v, newest)
    k = _last_other(ev, newest)
    other = max(
        i + int(np.searchsorted(pos, i, side="right")) if i >= 0 else -1,
        k + int(pos[k]) if k >= 0 else -1,
    )
    length = n + len(ev) - 1 - other
    return {"verdict": NAMES[int(newest)], "length": length}, fail_run, longest


def _last_other(v: np.ndarray, value: int) -> int:
    """The index of the last of ``v`` that is not ``value`` (-1: none),
    looked for from the end, a few at a time."""
    m = 64
    while True:
        lo = max(0, len(v) - m)
        other = np.flatnonzero(v[lo:] != value)
        if len(other):
            return lo + int(other[-1])
        if lo == 0:
            return -1
        m *= 4


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


def combine(
    core: Part | None,
    edge: Part,
    streaks: tuple[dict[str, Any] | None, int, int] | None = None,
) -> dict[str, Any]:
    """The figures of ``core`` and ``edge`` together that
    ``stats.system_figures`` gives from their rows' records (those that
    need no report times: ``rows.py`` adds them); ``streaks``: their
    :func:`merged_streaks`, when the caller knows them."""
    if core is None:
        core = _EMPTY
    patch_sets = core.patch_sets + edge.patch_sets
    reported = core.reported + edge.reported
    tally = core.tally + edge.tally
    counts = {name: int(tally[c]) for name, c in CODES.items()}
    decided = counts[PASS] + counts[FAIL] + counts[ERROR]
    both = core.both + edge.both
    gate_passed = core.gate_passed + edge.gate_passed
    streak, fail_run, longest = merged_streaks(core, edge) if streaks is None else streaks
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


def ratio(a: int, b: int) -> float | None:
    """``a / b``, None when ``b`` is 0."""
    return a / b if b else None


#: runs of failures a block (:meth:`Part.longest_but`)
_BLOCK = 256
_IN_BLOCK = np.arange(_BLOCK)
#: the elements of one (system x patch set) array in :func:`parts_of`
_MOST = 2_000_000
_F8 = np.zeros(0, dtype="<f8")
_NO_TALLY = np.zeros(5, dtype=np.int64)
_I1 = np.zeros(0, dtype=np.int8)
_NO_DAYS = np.zeros(0, dtype=np.int32)
_NO_VERDICTS = np.zeros(0, dtype=np.uint8)
_EMPTY = Part(0, 0, 0, 0, 0, np.zeros(5, dtype=np.int64), 0, 0, 0, 0, _F8, _F8, _I1, _I1)
