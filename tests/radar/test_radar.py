"""The radar (issue 17) against real Redis, from the recorded deliveries
in ``shared/payloads`` (read in place). Where a scenario needs more than
was recorded (several CI systems over days), the deliveries are the
recorded ones varied: a recorded ``patchset-created`` line with another
change number and time, the recorded ``comment-added`` (the "recheck"
one) with another author, message and vote. Every expected figure is
computed by hand in the test."""

from __future__ import annotations

import copy
import json
import random
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from engine.config import Config
from engine.launchers.base import RawEvent
from engine.launchers.gerrit import GerritSource
from engine.launchers.launcher import Launcher
from engine.launchers.settings import LauncherSettings
from engine.radar import (
    Classifier,
    RadarFeed,
    RadarSettings,
    RadarStore,
    from_run,
    percentile,
    window,
)
from engine.radar.stats import window_of_records
from tests.launchers.conftest import FakePublisher

pytestmark = pytest.mark.redis

FOREVER = 1e11  # retention: the recorded deliveries are years old
T0 = 1_753_736_174.0  # the recorded patchset-created's time (with_banner.jsonl)
H = 3600.0


@pytest.fixture
def feed(redis_client: redis.Redis, key_prefix: str) -> RadarFeed:
    return RadarFeed(RadarStore(redis_client, key_prefix, FOREVER), RadarSettings(gate="Zuul"))


def gerrit_file(payloads_dir: Path, name: str) -> list[dict[str, Any]]:
    lines = (payloads_dir / "gerrit" / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


class Gen:
    """Deliveries varied from the recorded ones."""

    def __init__(self, payloads_dir: Path) -> None:
        banner = gerrit_file(payloads_dir, "with_banner.jsonl")
        self.created = next(e for e in banner if e["type"] == "patchset-created")
        self.comment = gerrit_file(payloads_dir, "recheck_comment.jsonl")[0]

    def patchset(self, change: int, at: float, ps: int = 1) -> dict[str, Any]:
        e = copy.deepcopy(self.created)
        e["change"]["number"] = change
        e["patchSet"]["number"] = ps
        e["patchSet"]["createdOn"] = e["eventCreatedOn"] = int(at)
        return e

    def vote(
        self, who: str, change: int, at: float, verified: int, message: str = "", ps: int = 1
    ) -> dict[str, Any]:
        e = copy.deepcopy(self.comment)
        e["author"] = {"name": who, "username": who.lower().replace(" ", "-")}
        e["change"]["project"] = self.created["change"]["project"]
        e["project"] = self.created["project"]
        e["change"]["number"] = change
        e["patchSet"]["number"] = ps
        e["approvals"] = [{"type": "Verified", "description": "Verified", "value": str(verified)}]
        header = f"Patch Set {ps}: Verified{verified:+d}" if verified else f"Patch Set {ps}:"
        e["comment"] = f"{header}\n\n{message}"
        e["eventCreatedOn"] = int(at)
        return e

    def recheck(self, change: int, at: float) -> dict[str, Any]:
        e = copy.deepcopy(self.comment)
        e["change"]["project"] = self.created["change"]["project"]
        e["change"]["number"] = change
        e["eventCreatedOn"] = int(at)
        return e


@pytest.fixture
def gen(payloads_dir: Path) -> Gen:
    return Gen(payloads_dir)


def lines(events: list[dict[str, Any]]) -> list[bytes]:
    return [json.dumps(e).encode() for e in events]


def figures(feed: RadarFeed, since: float, until: float) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in window(feed.store, feed.settings, since=since, until=until)}


# -- recorded deliveries ------------------------------------------------------------------


def test_recorded_gerrit_streams(feed: RadarFeed, payloads_dir: Path) -> None:
    total = 0
    for name in ("with_banner.jsonl", "gogerrit_events.jsonl", "recheck_comment.jsonl"):
        with (payloads_dir / "gerrit" / name).open("rb") as fh:
            result = feed.import_gerrit(fh, name)
        assert result.errors == []
        total += result.stored
    # appeared (snix 30623,1), merged (snix 30605,2; test 1,1), the human "recheck"
    # (nova 3033,1); "Some comment" by Foo Bar and wip-state-changed mean nothing
    assert total == 4
    sets = {ps.psid: ps for ps in feed.store.patch_sets(0, 2e9)}
    assert sets["gerrit:snix:30623,1"].appeared == T0
    assert sets["gerrit:snix:30605,2"].merged == 1753734843.0
    assert sets["gerrit:openstack/nova:3033,1"].rechecks == [1572010999.0]
    assert feed.store.systems() == {}  # no CI account in the recordings


def test_recorded_github_checks(feed: RadarFeed, payloads_dir: Path) -> None:
    result = feed.import_deliveries([payloads_dir / "github"])
    assert result.errors == []
    systems = feed.store.systems()
    # the completed check runs and suites are octocoders-linter's; the other apps'
    # deliveries are a rerequest (a recheck) and a requested action (nothing)
    assert set(systems) == {"octocoders-linter"}
    sha = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    [f] = [
        f
        for f in window(feed.store, feed.settings, since=0, until=1557933700.0)
        if f["name"] == "octocoders-linter"
    ]
    ps = {p.psid: p for p in feed.store.patch_sets(0, 2e9)}[f"github:Codertocat/Hello-World:{sha}"]
    # the pull request's synchronize/opened (updated_at 15:20:33) is when it appeared
    assert ps.appeared == 1557933633.0
    # the first completed check run (15:21:12) answers 39 s later; the check run
    # recorded both as failure and success: the same id, one report
    assert f["response_p50_s"] == 39.0
    ids = sorted(r[0] for r in ps.reports["octocoders-linter"])
    assert ids == ["check_run:128620228", "check_suite:118578147"]
    # the check suite's rerequest is a recheck of its head
    assert ps.rechecks


def test_recorded_gitlab_hooks(feed: RadarFeed, payloads_dir: Path) -> None:
    result = feed.import_deliveries([payloads_dir / "gitlab"])
    assert result.errors == []
    [f] = window(feed.store, feed.settings, since=0, until=1471015600.0)
    assert f["name"] == "GitLab CI" and f["verdicts"]["pass"] == 1
    assert f["success_rate"] == 1.0


# -- exact figures -------------------------------------------------------------------------


def test_exact_percentiles_and_rates(feed: RadarFeed, gen: Gen) -> None:
    responses = [30, 60, 90, 120, 600, 900, 1200, 3600, 7200, 10]
    events = []
    for i, r in enumerate(responses):
        at = T0 + i * H
        events.append(gen.patchset(100 + i, at))
        verified = -1 if i in (2, 5) else 1
        events.append(gen.vote("Vendor X CI", 100 + i, at + r, verified, "Build done"))
    feed.import_gerrit(lines(events))
    until = T0 + 20 * H
    f = figures(feed, T0, until)["Vendor X CI"]
    # sorted: 10 30 60 90 120 600 900 1200 3600 7200; nearest rank: p50 the 5th, p90 the 9th
    assert (f["response_p50_s"], f["response_p90_s"]) == (120, 3600)
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([5], 90) == 5
    assert f["patch_sets"] == 10 and f["reported"] == 10 and f["coverage"] == 1.0
    assert f["success_rate"] == 8 / 10
    assert f["streak"] == {"verdict": "pass", "length": 4}  # changes 106..109
    # the last report: change 108's, 8 h + 7200 s = 10 h after the first patch set
    assert f["since_last_s"] == 10 * H
    # the longest gap: that last report to the window's end (20 h)
    assert f["longest_silence_s"] == 10 * H


def test_gate_agreement_and_false_negatives(feed: RadarFeed, gen: Gen) -> None:
    #          change: 0  1  2  3  4  5  6  7
    gate = [1, 1, 1, 1, -1, -1, 1, 1]
    vendor = [1, -1, 1, -1, -1, 1, 1, 0]  # 0: no vote on change 7
    events = []
    for i in range(8):
        at = T0 + i * H
        events.append(gen.patchset(200 + i, at))
        events.append(gen.vote("Zuul", 200 + i, at + 60, gate[i]))
        if vendor[i]:
            events.append(gen.vote("Vendor X CI", 200 + i, at + 120, vendor[i]))
    feed.import_gerrit(lines(events))
    f = figures(feed, T0, T0 + 10 * H)
    v, z = f["Vendor X CI"], f["Zuul"]
    assert z["gate"] and not v["gate"]
    # both judged on 0..6: agree on 0, 2, 4, 6 (4 of 7)
    assert v["compared_with_gate"] == 7 and v["agreement"] == 4 / 7
    # the gate passed 0, 1, 2, 3, 6 (vendor judged all five); the vendor failed 1, 3
    assert v["gate_passed"] == 5 and v["gate_pass_failure_rate"] == 2 / 5
    assert v["coverage"] == 7 / 8
    assert z["gate_pass_failure_rate"] is None  # the gate is not compared with itself
    assert v["healthy"] is False
    assert "failed 40% of the patch sets the gate passed (2 of 5; maximum 30%)" in v["reasons"]


def test_recheck_starts_a_new_round(feed: RadarFeed, gen: Gen) -> None:
    events = [
        gen.patchset(300, T0),
        gen.vote("Vendor X CI", 300, T0 + 60, -1, "Build failed."),
        gen.recheck(300, T0 + 120),
        gen.vote("Vendor X CI", 300, T0 + 600, 1, "Build succeeded."),
    ]
    feed.import_gerrit(lines(events))
    f = figures(feed, T0, T0 + H)["Vendor X CI"]
    assert f["verdicts"]["pass"] == 1 and f["verdicts"]["fail"] == 0
    assert f["rechecks"] == 1 and f["recheck_rate"] == 1.0
    assert f["response_p50_s"] == 60  # the first report counts, whatever it said


def test_message_verdicts_and_unclassified_accounts(feed: RadarFeed, gen: Gen) -> None:
    events = [
        gen.patchset(400, T0),
        gen.vote("Jenkins", 400, T0 + 10, 0, "Build failed. See the log."),
        gen.vote("Alice Smith", 400, T0 + 20, 1),  # a Verified vote, not a CI account
        gen.vote("Bob Jones", 400, T0 + 30, 0, "Looks good"),  # a human: nothing
    ]
    feed.import_gerrit(lines(events))
    f = figures(feed, T0, T0 + H)
    assert set(f) == {"Jenkins", "Alice Smith"}
    assert f["Jenkins"]["verdicts"]["fail"] == 1
    assert f["Alice Smith"]["classified"] is False and f["Alice Smith"]["healthy"] is None


# -- idempotence, order, silence -----------------------------------------------------------


def month(gen: Gen) -> list[dict[str, Any]]:
    rng = random.Random(17)
    events = []
    for i in range(60):
        at = T0 + i * 0.5 * H
        events.append(gen.patchset(500 + i, at))
        events.append(
            gen.vote("Zuul", 500 + i, at + rng.randint(300, 3000), rng.choice([1, 1, -1]))
        )
        if i < 30:  # then it falls silent
            events.append(gen.vote("Vendor X CI", 500 + i, at + rng.randint(60, 9000), 1))
        if i % 7 == 3:
            events.append(gen.recheck(500 + i, at + 4000))
    return events


#: the rows' keys (engine/radar/rows.py): laid out in the order patch sets came
ROWS_KEYS = re.compile(
    rb"radar:(prow|rows|rt|rtdays|pslist):|radar:(projids|projn|vers|vseq|vlog)$"
)


def dump(client: redis.Redis, prefix: str, records_only: bool = False) -> dict[bytes, Any]:
    """Every key under ``prefix``; ``records_only``: without the rows, whose
    layout follows the order the records came in (slots, summaries)."""
    out: dict[bytes, Any] = {}
    for key in sorted(client.scan_iter(match=prefix + "*")):
        if records_only and ROWS_KEYS.search(key):
            continue
        if key.endswith(b"radar:forgot"):
            continue  # a random name by design (RadarStore's memo of what it wrote)
        kind = client.type(key)
        if kind == b"hash":
            out[key] = client.hgetall(key)
            if records_only:
                out[key] = {
                    f: v
                    for f, v in out[key].items()
                    if not f.endswith(b"\x1e") and f not in (b"day", b"slot", b"rch")
                }
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            out[key] = sorted(client.smembers(key))
        elif kind == b"list":
            out[key] = client.lrange(key, 0, -1)
        else:
            out[key] = client.get(key)
    return out


def test_redelivery_and_out_of_order_are_idempotent(
    redis_client: redis.Redis, key_prefix: str, gen: Gen
) -> None:
    events = month(gen)
    settings = RadarSettings(gate="Zuul")
    a = RadarFeed(RadarStore(redis_client, key_prefix + "a:", FOREVER), settings)
    b = RadarFeed(RadarStore(redis_client, key_prefix + "b:", FOREVER), settings)
    a.import_gerrit(lines(events))
    shuffled = events * 2  # every event delivered twice, in a random order
    random.Random(3).shuffle(shuffled)
    b.import_gerrit(lines(shuffled))
    until = T0 + 40 * H
    fa, fb = figures(a, T0, until), figures(b, T0, until)
    assert fa == fb
    strip = len(key_prefix) + 2
    da = {k[strip:]: v for k, v in dump(redis_client, key_prefix + "a:", True).items()}
    db = {k[strip:]: v for k, v in dump(redis_client, key_prefix + "b:", True).items()}
    assert da == db
    # the rows are laid out in arrival order, and say the same over any window
    for since, until in ((0, 2e9), (T0 + 3 * H, T0 + 20 * H), (T0 - 1, T0 + 30 * H + 0.5)):
        ra = window(a.store, settings, since=since, until=until)
        assert ra == window(b.store, settings, since=since, until=until)
        assert ra == window_of_records(a.store, settings, since=since, until=until)


def test_a_server_without_the_script_gets_it_and_the_batch_again(
    redis_client: redis.Redis, key_prefix: str, gen: Gen
) -> None:
    """``RadarStore.add`` sends EVALSHA without asking first: a server that
    does not have the script (restarted, flushed) gets it and the whole
    batch again, with the same result as a server that had it."""
    events = month(gen) * 2  # delivered twice: more than two script calls in one batch
    settings = RadarSettings(gate="Zuul")
    a = RadarFeed(RadarStore(redis_client, key_prefix + "a:", FOREVER), settings)
    b = RadarFeed(RadarStore(redis_client, key_prefix + "b:", FOREVER), settings)
    # a script of its own, unknown to the server (a comment makes its SHA new)
    source = b.store._script.script + f"\n-- {uuid.uuid4().hex}\n"
    b.store._script = redis_client.register_script(source)
    assert redis_client.script_exists(b.store._script.sha) == [False]
    a.import_gerrit(lines(events))
    stored = b.import_gerrit(lines(events)).stored
    assert stored > 200  # more than two script calls: one in flight when the first fails
    assert redis_client.script_exists(b.store._script.sha) == [True]
    strip = len(key_prefix) + 2
    da = {k[strip:]: v for k, v in dump(redis_client, key_prefix + "a:").items()}
    db = {k[strip:]: v for k, v in dump(redis_client, key_prefix + "b:").items()}
    assert da == db and da


def test_report_before_its_patch_set_appears(feed: RadarFeed, gen: Gen) -> None:
    feed.import_gerrit(lines([gen.vote("Vendor X CI", 600, T0 + 300, 1)]))
    [ps] = feed.store.patch_sets(0, 2e9)
    assert ps.appeared is None and ps.time == T0 + 300  # counted, indexed by the report
    f = figures(feed, T0, T0 + H)["Vendor X CI"]
    assert f["coverage"] == 1.0 and f["response_p50_s"] is None
    feed.import_gerrit(lines([gen.patchset(600, T0)]))
    [ps] = feed.store.patch_sets(0, 2e9)
    assert ps.appeared == T0 and ps.time == T0
    assert figures(feed, T0, T0 + H)["Vendor X CI"]["response_p50_s"] == 300


def test_a_silent_system_is_flagged_with_the_reason(feed: RadarFeed, gen: Gen) -> None:
    events = month(gen)
    feed.import_gerrit(lines(events))
    until = T0 + 30 * H
    f = figures(feed, T0, until)
    vendor, zuul = f["Vendor X CI"], f["Zuul"]
    # computed from the deliveries, not from the store
    last = max(
        e["eventCreatedOn"] for e in events if e.get("author", {}).get("name") == "Vendor X CI"
    )
    assert feed.store.last_report("Vendor X CI") == last
    assert last is not None
    arrived = sum(1 for i in range(60) if T0 + i * 0.5 * H > last)
    assert vendor["arrived_since_last"] == arrived > 0
    assert vendor["healthy"] is False
    hours = int((until - last) // 3600)
    assert f"no report for {hours} h" in vendor["reasons"][0]
    assert vendor["reasons"][0].endswith(f"while {arrived} patch sets arrived")
    assert vendor["coverage"] == 30 / 60
    assert zuul["healthy"] is True and zuul["reasons"] == []


def test_retention_bounds_what_is_stored(
    redis_client: redis.Redis, key_prefix: str, gen: Gen
) -> None:
    store = RadarStore(redis_client, key_prefix, retention=10 * H)
    feed = RadarFeed(store, RadarSettings())
    now = time.time()  # Redis expires keys by its own clock
    old, new = gen.patchset(700, now - 12 * H), gen.patchset(701, now - 5 * H)
    records = feed.records("gerrit", None, old) + feed.records("gerrit", None, new)
    assert store.add(records, now) == 1
    ttl = redis_client.ttl(store.k("ps", "gerrit:snix:701,1"))
    assert 5 * H - 60 < ttl <= 6 * H  # expires with the retention (rounded up to the hour)
    assert [p.change for p in store.patch_sets(0, 2e10)] == ["701"]
    assert store.prune(now + 6 * H) == 1  # the patch set index entry
    assert store.patch_sets(0, 2e10) == []


# -- live: the launcher's listener, BOSS's runs, the CLI -----------------------------------


def test_the_launcher_feeds_the_radar_without_changing_launches(
    feed: RadarFeed, gen: Gen, tmp_path: Path
) -> None:
    fake = FakePublisher()
    launcher = Launcher(
        Config(process_dir=str(tmp_path)),
        LauncherSettings(),
        publisher=fake,
        bus=fake,
        listeners=[feed.event],
    )
    source = GerritSource()
    for e in [gen.patchset(800, T0), gen.vote("Vendor X CI", 800, T0 + 90, 1)]:
        outcome = launcher.handle(source, RawEvent(json.dumps(e).encode()))
        assert outcome.deadletter is None and outcome.wfids == []
    f = figures(feed, T0, T0 + H)["Vendor X CI"]
    assert f["response_p50_s"] == 90
    # an event the radar cannot read is set aside, the launch goes on
    broken = gen.vote("Vendor X CI", 801, T0, 1)
    del broken["eventCreatedOn"]
    outcome = launcher.handle(source, RawEvent(json.dumps(broken).encode()))
    assert outcome.deadletter is None
    [letter] = feed.store.client.lrange(feed.store.k("deadletters"), 0, -1)
    assert "no project, change.number, patchSet.number or time" in json.loads(letter)["reason"]


class Runs:
    """The run store's boundary the radar reads: transitions and run states."""

    def __init__(self, runs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        self.rows = [(f"{i + 1}-0", "run", s) for i, (s, _) in enumerate(runs)]
        self.fields = {s["wfid"]: f for s, f in runs}

    def transitions(self, after: str = "0-0", count: int = 1000) -> list[Any]:
        n = int(after.split("-")[0])
        return self.rows[n : n + count]

    def load_run(self, wfid: str) -> tuple[dict[str, Any], int]:
        return {"fields": self.fields[wfid]}, 1


def test_boss_runs_are_one_more_system(feed: RadarFeed, gen: Gen) -> None:
    feed.import_gerrit(lines([gen.patchset(900, T0), gen.patchset(901, T0)]))
    ev = {"source": "gerrit", "project": "snix", "change": "900", "patchset": "1"}
    runs = Runs(
        [
            (
                {"wfid": "w1", "name": "ci", "outcome": "failure", "ended_at": T0 + 500},
                {"ev": ev},
            ),
            (
                {"wfid": "w2", "name": "ci", "outcome": "success", "ended_at": T0 + 700},
                {"ev": ev | {"change": "901"}},
            ),
            ({"wfid": "w3", "name": "ci", "outcome": "pending"}, {"ev": ev}),
        ]
    )
    assert feed.sync_runs(runs) == 2
    assert feed.sync_runs(runs) == 0  # the cursor moved on
    f = figures(feed, T0, T0 + H)["BOSS"]
    assert f["verdicts"] == {"pass": 1, "fail": 1, "error": 0, "skipped": 0}
    assert (f["response_p50_s"], f["response_p90_s"]) == (500, 700)
    assert from_run({"outcome": "success", "ended_at": 1}, {"ev": {"source": "obs"}}) == []


def test_classifier_default_pattern() -> None:
    c = Classifier()
    ci = [{"name": "Zuul"}, {"name": "Vendor X CI"}, {"name": "x", "username": "jenkins-bot"}]
    human = [{"name": "Cinder Dev"}, {"name": "Lucia", "email": "ci@example.org"}]
    assert all(c.account(a).ci for a in ci)  # type: ignore[union-attr]
    assert not any(c.account(a).ci for a in human)  # type: ignore[union-attr]
    c = Classifier(RadarSettings(systems=("Alice Smith",), ignore=("Zuul",)))
    assert c.account({"name": "Alice Smith"}).ci  # type: ignore[union-attr]
    assert not c.account({"name": "Zuul"}).ci  # type: ignore[union-attr]


def test_cli_import_systems_show(
    redis_url: str,
    key_prefix: str,
    payloads_dir: Path,
    gen: Gen,
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    from bossapp.cli import main

    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\n".join(lines(month(gen))))
    env = {
        "BOSS_REDIS_URL": redis_url,
        "BOSS_KEY_PREFIX": key_prefix,
        "BOSS_RADAR_RETENTION": "36500d",
        "BOSS_RADAR_GATE": "Zuul",
        "BOSS_CONFIG": "/dev/null",
    }
    runner = CliRunner()
    recorded = payloads_dir / "gerrit" / "with_banner.jsonl"
    out = runner.invoke(main, ["ci", "import", str(capture), str(recorded), "--json"], env=env)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["files"][0]["errors"] == []
    until = str(T0 + 30 * H)
    out = runner.invoke(
        main, ["ci", "systems", "--since", "2d", "--until", until, "--json"], env=env
    )
    assert out.exit_code == 0, out.output
    data = {f["name"]: f for f in json.loads(out.output)}
    for key in (
        "name",
        "reports",
        "coverage",
        "success_rate",
        "response_p50_s",
        "healthy",
        "reasons",
    ):
        assert key in data["Zuul"]
    assert data["Vendor X CI"]["healthy"] is False
    out = runner.invoke(main, ["ci", "systems", "--since", "2d", "--until", until], env=env)
    assert "UNHEALTHY" in out.output and "Vendor X CI: no report for" in out.output
    out = runner.invoke(main, ["ci", "system", "vendor x ci", "--limit", "3"], env=env)
    assert out.exit_code == 0 and out.output.count("pass") == 3, out.output
    # the rows laid out again from the records: the same figures
    before = runner.invoke(
        main, ["ci", "systems", "--since", "2d", "--until", until, "--json"], env=env
    )
    out = runner.invoke(main, ["ci", "rebuild", "--json"], env=env)
    assert out.exit_code == 0 and json.loads(out.output)["patch_sets"] > 10, out.output
    again = runner.invoke(
        main, ["ci", "systems", "--since", "2d", "--until", until, "--json"], env=env
    )
    assert json.loads(again.output) == json.loads(before.output)
