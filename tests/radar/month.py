"""A generated month of Gerrit activity with known behaviour, and the
radar's figures of it computed independently (plain Python over the ground
truth the generator recorded, never over what the radar stored).

``generate`` draws (seeded) ``PER_DAY`` patch sets a day for ``DAYS`` days
and the reports of the project's gate (Zuul) and of twelve CI systems with
the behaviours of ``BEHAVIOUR``; every fact is recorded (``Truth``) and
turned into a Gerrit ``stream-events`` line varied from the recorded ones
in ``shared/payloads/gerrit`` (``patchset-created`` and ``change-merged``
from ``with_banner.jsonl``, ``comment-added`` from
``recheck_comment.jsonl``: ``author``, ``approvals``, ``comment``,
``patchSet``, ``eventCreatedOn`` changed). What happens after ``END`` (the
capture's "now") is not delivered and not in the truth.

``expected`` computes every figure of ``docs/radar.md`` ("The figures")
from the truth, and ``expected_health`` the health verdict and reasons.
Percentiles are nearest-rank (the radar's documented definition: the
smallest value with at least p % of the values at or below it), computed
with integer arithmetic.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

H = 3600
MIN = 60
DAY = 86400
START = 1_754_006_400  # 2025-08-01 00:00 UTC
DAYS = 30
END = START + DAYS * DAY  # the capture's "now": nothing later is delivered
PER_DAY = 40
N = DAYS * PER_DAY
STOP = START + 20 * DAY  # "Stopping CI" reports nothing from here on
OUTAGE = (START + 10 * DAY + 6 * H, START + 13 * DAY + 6 * H)  # "Burst CI" is down
ERRATIC_FROM = END - 12 * H  # "Erratic CI" fails or errs on what appeared since
PROJECT = "snix"  # the recorded patchset-created's project
GATE = "Zuul"
HUMAN = {"name": "Some Author", "email": "some.author@nonexistent.com", "username": "some.author"}
REVIEWER = {"name": "Florian Klink", "email": "flokli@flokli.de", "username": "flokli"}

PASS, FAIL, ERROR, SKIPPED = "pass", "fail", "error", "skipped"
DECISIVE = (PASS, FAIL, ERROR)

#: the systems and what they do (the gate first)
BEHAVIOUR = {
    GATE: "the gate: 'Starting check jobs.' (no verdict) within 90 s, then Verified "
    "+1 on good patch sets, -1 on bad ones, 15-75 min after; again after a recheck",
    "Healthy CI": "every patch set, 10-45 min, agrees with the patch set's quality but 3 %",
    "Stopping CI": "every patch set, 20-90 min, agrees but 5 %; no report from day 20 on",
    "Half CI": "every other patch set (odd indexes), 5-30 min, agrees",
    "Failing CI": "every patch set, 2-10 min, Verified -1 always",
    "Slow Jenkins": "every patch set, 6-9 h, agrees",
    "Flaky CI": "every patch set, 20-60 min; on a fifth an infra failure (-1), a human "
    "rechecks, Zuul and it report again (it then agrees)",
    "Message CI": "no vote: 'Build succeeded.' / 'Build failed.' (agrees but 10 %) or "
    "'Merge Failed.' (error, 5 %), 30 min-3 h",
    "Erratic CI": "pass 60 % whatever the quality, 10 min-2 h; on what appeared in the "
    "last 12 h alternately Verified -1 and NOT_REGISTERED (error)",
    "Skipper CI": "'Build skipped.' on 30 % (no vote), on 10 % that and then Verified "
    "agreeing 5-20 min later (same round), else Verified agreeing, 5-40 min",
    "Vendor A CI": "Code-Review +-1 (no Verified), pass 90 % whatever the quality, "
    "1 min + exponential (mean 20 min)",
    "Vendor B CI": "80 % of the patch sets (seeded), pass 75 % whatever the quality, "
    "normal(2 h, 30 min) clipped to 30 min-4 h; on a tenth of those a second report "
    "(another pipeline, pass 75 %) 10-30 min later, in the same round",
    "Burst CI": "every patch set, 5-20 min, agrees; down from day 10 06:00 to day 13 06:00",
}
SYSTEMS = list(BEHAVIOUR)


@dataclass
class PS:
    """One patch set's truth: its identity, when it appeared, whether it is
    good (the gate passes it), every report per system ``[(at, verdict)]``
    (verdict None: a report without one) and its rechecks' times."""

    index: int
    change: int
    number: int
    created: int
    good: bool
    reports: dict[str, list[tuple[int, str | None]]] = field(default_factory=dict)
    rechecks: list[int] = field(default_factory=list)
    merged: int | None = None


@dataclass
class Truth:
    patch_sets: list[PS]
    #: every delivered event, in the order of its time (the capture)
    events: list[dict[str, Any]]
    #: human comments that are not rechecks ("I will recheck later", +2 reviews)
    noise: int = 0


# -- the deliveries ----------------------------------------------------------------------


class Events:
    """Stream-events lines varied from the recorded ones."""

    def __init__(self, gerrit_dir: Path) -> None:
        banner = [
            line
            for line in (gerrit_dir / "with_banner.jsonl").read_text().splitlines()
            if line.startswith("{")
        ]
        self.created = next(b for b in banner if '"patchset-created"' in b)
        self.merged = next(b for b in banner if '"change-merged"' in b)
        self.comment = (gerrit_dir / "recheck_comment.jsonl").read_text().splitlines()[0]

    @staticmethod
    def _patchset(e: dict[str, Any], ps: PS) -> None:
        rev = hashlib.sha1(f"{ps.change},{ps.number}".encode()).hexdigest()
        e["patchSet"].update(
            number=ps.number,
            revision=rev,
            ref=f"refs/changes/{ps.change % 100:02d}/{ps.change}/{ps.number}",
            createdOn=ps.created,
        )
        e["change"]["number"] = ps.change
        e["change"]["url"] = f"https://cl.snix.dev/c/snix/+/{ps.change}"

    def patchset_created(self, ps: PS) -> dict[str, Any]:
        e = json.loads(self.created)
        self._patchset(e, ps)
        e["eventCreatedOn"] = ps.created
        return e

    def change_merged(self, ps: PS, at: int) -> dict[str, Any]:
        e = json.loads(self.merged)
        self._patchset(e, ps)
        e["newRev"] = e["patchSet"]["revision"]
        e["eventCreatedOn"] = at
        return e

    def comment_added(
        self,
        ps: PS,
        at: int,
        author: dict[str, str],
        message: str,
        votes: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        e = json.loads(self.comment)
        self._patchset(e, ps)
        e["change"]["project"] = e["project"] = PROJECT
        e["author"] = author
        votes = votes or {}
        e["approvals"] = [
            {"type": label, "description": label, "value": str(value)}
            for label, value in votes.items()
        ]
        shown = " ".join(f"{label}{value:+d}" for label, value in votes.items() if value)
        e["comment"] = f"Patch Set {ps.number}:{' ' + shown if shown else ''}\n\n{message}"
        e["eventCreatedOn"] = at
        return e


def account(name: str) -> dict[str, str]:
    slug = name.lower().replace(" ", "-")
    return {"name": name, "email": f"{slug}@ci.example.org", "username": slug}


#: how a verdict is said: (votes, message) per style
def said(style: str, verdict: str | None) -> tuple[dict[str, int], str]:
    if verdict is None:
        return {}, "Starting check jobs."
    if style == "verified" and verdict in (PASS, FAIL):
        good = verdict == PASS
        text = "Build succeeded (check pipeline)." if good else "Build failed (check pipeline)."
        jobs = "\n\n- tox-py312 https://logs.example.org/a1 : " + ("SUCCESS" if good else "FAILURE")
        return {"Verified": 1 if good else -1}, text + jobs + " in 4m 12s"
    if style == "code-review" and verdict in (PASS, FAIL):
        return {"Code-Review": 1 if verdict == PASS else -1}, "Third-party CI results."
    messages = {
        PASS: "Build succeeded.",
        FAIL: "Build failed. See the logs.",
        ERROR: "Merge Failed.\n\nThis change could not be merged."
        if style == "merge"
        else "NOT_REGISTERED",
        SKIPPED: "Build skipped: only documentation changed.",
    }
    return {"Code-Review": 0}, messages[verdict]


STYLE = {
    "Vendor A CI": "code-review",
    "Message CI": "merge",
    "Erratic CI": "verified",
    "Skipper CI": "verified",
}


def generate(gerrit_dir: Path, seed: int = 17) -> Truth:
    """The month (see the module docstring)."""
    rng = random.Random(seed)
    ev = Events(gerrit_dir)
    times = sorted(rng.sample(range(START + MIN, END - MIN), N))
    patch_sets: list[PS] = []
    open_changes: list[int] = []
    next_change = 31000
    latest: dict[int, int] = {}
    for i, created in enumerate(times):
        if open_changes and rng.random() < 0.3:
            change = rng.choice(open_changes[-20:])
        else:
            change, next_change = next_change, next_change + 1
            open_changes.append(change)
        latest[change] = latest.get(change, 0) + 1
        patch_sets.append(PS(i, change, latest[change], created, rng.random() < 0.8))

    # (time, order, kind, ps, system, verdict, message-style, extra)
    facts: list[tuple[int, int, str, PS, str, str | None, str]] = []
    used: dict[str, set[int]] = {s: set() for s in SYSTEMS}
    order = 0

    def report(ps: PS, system: str, at: int, verdict: str | None, style: str = "") -> None:
        nonlocal order
        while at in used[system]:  # one report of a system per second: no ties to break
            at += 1
        used[system].add(at)
        order += 1
        facts.append(
            (at, order, "report", ps, system, verdict, style or STYLE.get(system, "verified"))
        )

    def other(ps: PS, at: int, kind: str) -> None:
        nonlocal order
        order += 1
        facts.append((at, order, kind, ps, "", None, ""))

    def agree(good: bool, flip: float) -> str:
        ok = good if rng.random() >= flip else not good
        return PASS if ok else FAIL

    noise = 0
    for ps in patch_sets:
        c, g = ps.created, ps.good
        other(ps, c, "created")
        gate_at = c + rng.randint(15 * MIN, 75 * MIN)
        report(ps, GATE, c + rng.randint(20, 90), None)
        report(ps, GATE, gate_at, PASS if g else FAIL)
        report(ps, "Healthy CI", c + rng.randint(10 * MIN, 45 * MIN), agree(g, 0.03))
        at = c + rng.randint(20 * MIN, 90 * MIN)
        verdict = agree(g, 0.05)
        if at < STOP:
            report(ps, "Stopping CI", at, verdict)
        if ps.index % 2 == 1:
            report(ps, "Half CI", c + rng.randint(5 * MIN, 30 * MIN), agree(g, 0.0))
        report(ps, "Failing CI", c + rng.randint(2 * MIN, 10 * MIN), FAIL)
        report(ps, "Slow Jenkins", c + rng.randint(6 * H, 9 * H), agree(g, 0.0))
        first = c + rng.randint(20 * MIN, 60 * MIN)
        if rng.random() < 0.2:  # an infra failure, a recheck, a second round
            report(ps, "Flaky CI", first, FAIL)
            recheck = first + rng.randint(5 * MIN, 60 * MIN)
            other(ps, recheck, "recheck")
            report(ps, GATE, recheck + rng.randint(15 * MIN, 60 * MIN), PASS if g else FAIL)
            report(ps, "Flaky CI", recheck + rng.randint(20 * MIN, 60 * MIN), agree(g, 0.0))
        else:
            report(ps, "Flaky CI", first, agree(g, 0.0))
        at = c + rng.randint(30 * MIN, 3 * H)
        report(ps, "Message CI", at, ERROR if rng.random() < 0.05 else agree(g, 0.1))
        at = c + rng.randint(10 * MIN, 2 * H)
        if c >= ERRATIC_FROM:
            report(ps, "Erratic CI", at, FAIL if ps.index % 2 else ERROR)
        else:
            report(ps, "Erratic CI", at, PASS if rng.random() < 0.6 else FAIL)
        at = c + rng.randint(5 * MIN, 40 * MIN)
        draw = rng.random()
        if draw < 0.3:
            report(ps, "Skipper CI", at, SKIPPED)
        elif draw < 0.4:  # skipped, then tested after all: the worst of the round is the test's
            report(ps, "Skipper CI", at, SKIPPED)
            report(ps, "Skipper CI", at + rng.randint(5 * MIN, 20 * MIN), agree(g, 0.0))
        else:
            report(ps, "Skipper CI", at, agree(g, 0.0))
        at = c + MIN + int(rng.expovariate(1 / (20 * MIN)))
        report(ps, "Vendor A CI", at, PASS if rng.random() < 0.9 else FAIL)
        if rng.random() < 0.8:
            at = c + int(min(4 * H, max(30 * MIN, rng.gauss(2 * H, 30 * MIN))))
            report(ps, "Vendor B CI", at, PASS if rng.random() < 0.75 else FAIL)
            if rng.random() < 0.1:  # a second pipeline's report in the same round
                later = at + rng.randint(10 * MIN, 30 * MIN)
                report(ps, "Vendor B CI", later, PASS if rng.random() < 0.75 else FAIL)
        at = c + rng.randint(5 * MIN, 20 * MIN)
        if not OUTAGE[0] <= at < OUTAGE[1]:
            report(ps, "Burst CI", at, agree(g, 0.0))
        if rng.random() < 0.03:  # a recheck for no failure: only the gate runs again
            recheck = c + rng.randint(2 * H, 5 * H)
            other(ps, recheck, "recheck")
            report(ps, GATE, recheck + rng.randint(15 * MIN, 60 * MIN), PASS if g else FAIL)
        if rng.random() < 0.1:
            other(ps, c + rng.randint(10 * MIN, 10 * H), "review")
        if rng.random() < 0.02:
            other(ps, c + rng.randint(10 * MIN, 10 * H), "chatter")
        if g and rng.random() < 0.5:
            other(ps, gate_at + rng.randint(H, DAY), "merged")

    facts.sort(key=lambda f: (f[0], f[1]))
    events: list[dict[str, Any]] = []
    for at, _, kind, ps, system, verdict, style in facts:
        if at > END:
            continue  # not happened yet when the capture stops
        if kind == "created":
            events.append(ev.patchset_created(ps))
        elif kind == "report":
            ps.reports.setdefault(system, []).append((at, verdict))
            votes, message = said(style, verdict)
            events.append(ev.comment_added(ps, at, account(system), message, votes))
        elif kind == "recheck":
            ps.rechecks.append(at)
            events.append(ev.comment_added(ps, at, HUMAN, "recheck", {"Code-Review": 0}))
        elif kind == "review":
            noise += 1
            events.append(
                ev.comment_added(ps, at, REVIEWER, "Looks good to me.", {"Code-Review": 2})
            )
        elif kind == "chatter":
            noise += 1
            events.append(ev.comment_added(ps, at, HUMAN, "I will recheck later, the CI is down."))
        elif kind == "merged":
            ps.merged = at
            events.append(ev.change_merged(ps, at))
    return Truth(patch_sets, events, noise)


# -- the figures, computed here ----------------------------------------------------------

_WORST = {FAIL: 3, ERROR: 2, PASS: 1, SKIPPED: 0}


def verdict(reports: list[tuple[int, str | None]], rechecks: list[int]) -> str | None:
    """The worst verdict of the reports of the last round (rounds are cut at
    rechecks; the last round is the one of the newest report with a verdict)."""
    judged = sorted((at, v) for at, v in reports if v is not None)
    if not judged:
        return None
    newest = judged[-1][0]
    began = [r for r in rechecks if r <= newest]
    since = max(began) if began else None
    last_round = [v for at, v in judged if since is None or at >= since]
    worst = last_round[0]
    for v in last_round[1:]:
        if _WORST[v] > _WORST[worst]:
            worst = v
    return worst


def nearest_rank(values: list[int], p: int) -> int | None:
    """The smallest value with at least ``p`` % of ``values`` at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(1, -(-p * len(ordered) // 100))  # ceil(p * n / 100), in integers
    return ordered[k - 1]


def share(a: int, b: int) -> float | None:
    return a / b if b else None


def expected(truth: Truth, system: str, since: int, until: int) -> dict[str, Any]:
    """Every figure of ``system`` over ``[since, until]`` (``since`` 0: all
    time, the silence counted from its first report)."""
    sets = [ps for ps in truth.patch_sets if since <= ps.created <= until]
    mine = [ps for ps in sets if ps.reports.get(system)]
    counts = {PASS: 0, FAIL: 0, ERROR: 0, SKIPPED: 0}
    responses: list[int] = []
    given: list[tuple[int, str]] = []  # (when the verdict was given, verdict)
    both = agreed = gate_passed = gate_passed_failed = 0
    for ps in mine:
        own = ps.reports[system]
        with_verdict = [at for at, v in own if v is not None]
        if with_verdict:
            responses.append(max(0, min(with_verdict) - ps.created))
        v = verdict(own, ps.rechecks)
        if v is None:
            continue
        counts[v] += 1
        given.append((max(with_verdict), v))
        if system != GATE and GATE in ps.reports:
            g = verdict(ps.reports[GATE], ps.rechecks)
            if v in DECISIVE and g in DECISIVE:
                both += 1
                agreed += int((v == PASS) == (g == PASS))
                if g == PASS:
                    gate_passed += 1
                    gate_passed_failed += int(v != PASS)
    given.sort()
    judged = [v for _, v in given if v != SKIPPED]
    streak = None
    if judged:
        length = 1
        while length < len(judged) and judged[-1 - length] == judged[-1]:
            length += 1
        streak = {"verdict": judged[-1], "length": length}
    longest = run = 0
    for v in judged:
        run = run + 1 if v in (FAIL, ERROR) else 0
        longest = max(longest, run)
    newest_failing = 0
    for v in reversed(judged):
        if v not in (FAIL, ERROR):
            break
        newest_failing += 1
    every = sorted(at for ps in truth.patch_sets for at, _ in ps.reports.get(system, []))
    inside = [at for at in every if since <= at <= until]
    start = since if since > 0 or not inside else inside[0]
    edges = [start, *inside, until]
    last = every[-1] if every else None
    decided = counts[PASS] + counts[FAIL] + counts[ERROR]
    return {
        "name": system,
        "gate": system == GATE,
        "patch_sets": len(sets),
        "reported": len(mine),
        "reports": sum(len(ps.reports[system]) for ps in mine),
        "coverage": share(len(mine), len(sets)),
        "verdicts": counts,
        "success_rate": share(counts[PASS], decided),
        "gate_passed": gate_passed,
        "gate_pass_failure_rate": share(gate_passed_failed, gate_passed),
        "agreement": share(agreed, both),
        "compared_with_gate": both,
        "response_p50_s": nearest_rank(responses, 50),
        "response_p90_s": nearest_rank(responses, 90),
        "responses": len(responses),
        "rechecks": sum(len(ps.rechecks) for ps in mine),
        "recheck_rate": share(sum(1 for ps in mine if ps.rechecks), len(mine)),
        "last_report": last,
        # a report after ``until`` (a past window): "since" it is 0, not negative
        "since_last_s": None if last is None else max(0, until - last),
        "arrived_since_last": sum(1 for ps in sets if last is None or ps.created > last),
        "longest_silence_s": max(edges[k + 1] - edges[k] for k in range(len(edges) - 1)),
        "streak": streak,
        "longest_fail_streak": longest,
        # not a figure of the radar: how many of the newest verdicts failed
        # (fail or error), for the health rule "its last 5 verdicts failed"
        "newest_failing": newest_failing,
    }


@dataclass(frozen=True)
class Thresholds:
    silence: int = 2 * H
    min_coverage: float = 0.5
    max_gate_pass_failure: float = 0.3
    max_fail_streak: int = 5
    max_response_p90: int = 12 * H
    min_patch_sets: int = 5


#: a reason: a pattern (a duration in it is a group) and the seconds each group must show
Reason = tuple[str, list[int]]


def expected_health(f: dict[str, Any], t: Thresholds) -> tuple[bool, list[Reason]]:
    """The documented rules ("healthy and reasons", docs/radar.md) over ``f``."""
    reasons: list[Reason] = []
    arrived = f["arrived_since_last"]
    if f["since_last_s"] is not None and f["since_last_s"] > t.silence and arrived:
        plural = "s" if arrived != 1 else ""
        reasons.append(
            (f"no report for (.+) while {arrived} patch set{plural} arrived", [f["since_last_s"]])
        )
    n = f["patch_sets"]
    if f["coverage"] is not None and n >= t.min_patch_sets and f["coverage"] < t.min_coverage:
        pct = round(100 * f["reported"] / n)
        reasons.append(
            (
                re.escape(
                    f"reported on {pct}% of patch sets ({f['reported']} of {n}; "
                    f"minimum {round(100 * t.min_coverage)}%)"
                ),
                [],
            )
        )
    rate, passed = f["gate_pass_failure_rate"], f["gate_passed"]
    if rate is not None and passed >= t.min_patch_sets and rate > t.max_gate_pass_failure:
        failed = round(rate * passed)
        reasons.append(
            (
                re.escape(
                    f"failed {round(100 * rate)}% of the patch sets the gate passed ({failed} of "
                    f"{passed}; maximum {round(100 * t.max_gate_pass_failure)}%)"
                ),
                [],
            )
        )
    if f["newest_failing"] >= t.max_fail_streak:
        reasons.append((f"failed the last {f['newest_failing']} patch sets in a row", []))
    p90 = f["response_p90_s"]
    if t.max_response_p90 and p90 is not None and p90 > t.max_response_p90:
        reasons.append((r"p90 response time (.+) \(maximum (.+)\)", [p90, t.max_response_p90]))
    return not reasons, reasons


_UNITS = {"d": DAY, "h": H, "min": MIN, "s": 1}


def seconds_of(text: str) -> tuple[int, int]:
    """``3 d 4 h`` -> (its seconds, the smallest unit shown)."""
    parts = re.findall(r"(\d+) (d|h|min|s)\b", text)
    if not parts or " ".join(f"{n} {u}" for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts), min(_UNITS[u] for _, u in parts)


def matches(reason: str, pattern: Reason) -> bool:
    """``reason`` says what ``pattern`` says, each duration within its last unit shown."""
    found = re.fullmatch(pattern[0], reason)
    if found is None:
        return False
    for text, value in zip(found.groups(), pattern[1], strict=True):
        shown, unit = seconds_of(text)
        if not shown <= value < shown + unit:  # floored to the last unit shown
            return False
    return True


#: the figures compared (every figure of docs/radar.md but the health)
FIGURES = (
    "patch_sets",
    "reported",
    "reports",
    "coverage",
    "verdicts",
    "success_rate",
    "gate_passed",
    "gate_pass_failure_rate",
    "agreement",
    "compared_with_gate",
    "response_p50_s",
    "response_p90_s",
    "responses",
    "rechecks",
    "recheck_rate",
    "last_report",
    "since_last_s",
    "arrived_since_last",
    "longest_silence_s",
    "streak",
    "longest_fail_streak",
    "gate",
)
