"""The run store contract (``engine.store.base``), run against every store:
``MemoryStore``, ``RedisStore`` on the embedded Valkey and on the machine's
Redis (the ``store`` fixture in ``tests/conftest.py``)."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any

import pytest

from engine.core import states
from engine.store import (
    ConflictError,
    MemoryStore,
    RedisStore,
    Registration,
    RunExists,
    RunStore,
    RunSummary,
    StoreError,
)


def run_state(
    wfid: str,
    *,
    name: str = "build",
    status: str = states.RUNNING,
    at: float = 1000.0,
    errors: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    state = {
        "wfid": wfid,
        "name": name,
        "status": status,
        "launched_at": at,
        "errors": errors or [],
        "tree": {"0": {"kind": "sequence", "state": "active", "children": ["0_0"]}},
    }
    state.update(extra)
    return state


def run_threads(count: int, target) -> list[Any]:
    """Run ``target(barrier)`` in ``count`` threads started together; return
    their results (re-raising the first failure)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    failures: list[BaseException] = []

    def main(i: int) -> None:
        try:
            results[i] = target(barrier)
        except BaseException as exc:
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=main, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive(), "worker thread hung"
    if failures:
        raise failures[0]
    return results


def wfids(rows: list[RunSummary]) -> list[str]:
    return [row.wfid for row in rows]


# -- runs -------------------------------------------------------------------
def test_create_and_load(store: RunStore) -> None:
    state = run_state("w1", fields={"unicode": "påske ✓", "n": [1, 2.5, None, True]})
    assert store.create_run(state) == 1
    loaded, version = store.load_run("w1")
    assert (loaded, version) == (state, 1)
    assert store.load_run("nope") is None


def test_load_hands_out_independent_copies(store: RunStore) -> None:
    state = run_state("w1", fields={"a": [1]})
    store.create_run(state)
    state["fields"]["a"].append("changed after create")
    first, _ = store.load_run("w1")
    first["fields"]["a"].append("changed after load")
    second, _ = store.load_run("w1")
    assert second["fields"] == {"a": [1]}
    assert first is not second


def test_save_is_a_compare_and_set(store: RunStore) -> None:
    store.create_run(run_state("w1"))
    state, version = store.load_run("w1")
    state["step"] = 1
    assert store.save_run(state, version) == 2
    stale = dict(state, step="stale")
    with pytest.raises(ConflictError):
        store.save_run(stale, version)
    assert store.load_run("w1") == (state, 2)
    state["step"] = 2
    assert store.save_run(state, 2) == 3
    assert store.load_run("w1") == (state, 3)


def test_save_of_an_unknown_run_conflicts(store: RunStore) -> None:
    with pytest.raises(ConflictError):
        store.save_run(run_state("ghost"), 1)
    assert store.load_run("ghost") is None


def test_create_twice_raises_run_exists(store: RunStore) -> None:
    store.create_run(run_state("w1", marker="first"))
    with pytest.raises(RunExists):
        store.create_run(run_state("w1", marker="second"))
    state, version = store.load_run("w1")
    assert (state["marker"], version) == ("first", 1)


def test_state_without_index_keys_is_refused(store: RunStore) -> None:
    state = run_state("w1")
    del state["launched_at"]
    with pytest.raises(StoreError):
        store.create_run(state)


# -- listings -------------------------------------------------------------
def test_list_runs_newest_first_with_offset_and_limit(store: RunStore) -> None:
    for i, at in enumerate([5.0, 1.0, 3.0, 4.0, 2.0]):
        store.create_run(run_state(f"w{i}", at=at))
    assert wfids(store.list_runs()) == ["w0", "w3", "w2", "w4", "w1"]
    assert wfids(store.list_runs(offset=1, limit=2)) == ["w3", "w2"]
    assert wfids(store.list_runs(offset=4, limit=10)) == ["w1"]
    assert store.list_runs(offset=5) == []
    assert store.list_runs(limit=0) == []
    assert store.list_runs()[0] == RunSummary("w0", "build", states.RUNNING, 5.0)


def test_list_runs_orders_ties_by_wfid_descending(store: RunStore) -> None:
    for wfid in ["b", "c", "a"]:
        store.create_run(run_state(wfid, at=7.0))
    assert wfids(store.list_runs()) == ["c", "b", "a"]


def test_status_change_moves_the_run_between_indexes(store: RunStore) -> None:
    store.create_run(run_state("w1", at=1.0))
    store.create_run(run_state("w2", at=2.0))
    counts = {s: 0 for s in states.RUN_STATES}
    assert store.count_runs() == counts | {states.RUNNING: 2}

    for status in [states.PAUSED, states.ERROR, states.RUNNING, states.FINISHED]:
        state, version = store.load_run("w1")
        state["status"] = status
        store.save_run(state, version)
        assert store.list_runs(status=status)[-1] == RunSummary("w1", "build", status, 1.0)
        others = [s for s in states.RUN_STATES if s not in (status, states.RUNNING)]
        assert all(store.list_runs(status=s) == [] for s in others)
        expected = counts | {states.RUNNING: 1, status: 1}
        if status == states.RUNNING:
            expected[states.RUNNING] = 2
        assert store.count_runs() == expected
    assert wfids(store.list_runs(status=states.RUNNING)) == ["w2"]
    assert wfids(store.list_runs()) == ["w2", "w1"]


def test_count_runs_covers_every_status(store: RunStore) -> None:
    assert store.count_runs() == {s: 0 for s in states.RUN_STATES}
    for i, status in enumerate(states.RUN_STATES):
        for j in range(i + 1):
            store.create_run(run_state(f"{status}-{j}", status=status, at=float(j)))
    assert store.count_runs() == {s: i + 1 for i, s in enumerate(states.RUN_STATES)}
    assert wfids(store.list_runs(status=states.KILLED, limit=2)) == ["killed-5", "killed-4"]


def test_list_runs_by_name_and_by_name_and_status(store: RunStore) -> None:
    for i in range(10):
        status = states.FINISHED if i % 2 else states.RUNNING
        store.create_run(run_state(f"a{i}", name="alpha", status=status, at=float(i)))
        store.create_run(run_state(f"b{i}", name="beta", status=status, at=float(i) + 0.5))
    assert wfids(store.list_runs(name="alpha", limit=3)) == ["a9", "a8", "a7"]
    assert wfids(store.list_runs(name="beta", offset=8)) == ["b1", "b0"]
    assert wfids(store.list_runs(name="alpha", status=states.FINISHED)) == [
        "a9", "a7", "a5", "a3", "a1",
    ]  # fmt: skip
    assert wfids(store.list_runs(name="beta", status=states.RUNNING, offset=1, limit=2)) == [
        "b6",
        "b4",
    ]
    assert store.list_runs(name="gamma") == []
    assert store.list_runs(name="alpha", status=states.KILLED) == []
    # renaming a run moves it between name indexes
    state, version = store.load_run("a9")
    state["name"] = "gamma"
    store.save_run(state, version)
    assert wfids(store.list_runs(name="gamma")) == ["a9"]
    assert "a9" not in wfids(store.list_runs(name="alpha"))


def test_errors_are_listed_newest_run_first_until_cleared(store: RunStore) -> None:
    store.create_run(run_state("old", at=1.0, errors=[{"id": "e1", "message": "boom"}]))
    store.create_run(run_state("clean", at=2.0))
    store.create_run(run_state("new", at=3.0))
    state, version = store.load_run("new")
    state["status"] = states.ERROR
    state["errors"] = [{"id": "e2", "message": "a"}, {"id": "e3", "message": "b"}]
    version = store.save_run(state, version)

    assert store.list_errors() == [
        {"id": "e2", "message": "a", "wfid": "new"},
        {"id": "e3", "message": "b", "wfid": "new"},
        {"id": "e1", "message": "boom", "wfid": "old"},
    ]
    assert [e["id"] for e in store.list_errors(offset=1, limit=1)] == ["e3"]
    assert [e["id"] for e in store.list_errors(offset=2)] == ["e1"]
    assert store.list_errors(limit=0) == []

    # one error resolved, then all
    state["errors"] = state["errors"][1:]
    version = store.save_run(state, version)
    assert [e["id"] for e in store.list_errors()] == ["e3", "e1"]
    state["errors"] = []
    state["status"] = states.RUNNING
    store.save_run(state, version)
    assert store.list_errors() == [{"id": "e1", "message": "boom", "wfid": "old"}]


def test_delete_run_forgets_it_everywhere(store: RunStore) -> None:
    store.create_run(run_state("w1", status=states.ERROR, errors=[{"id": "e"}]))
    store.create_run(run_state("w2", at=2.0))
    store.delete_run("w1")
    store.delete_run("w1")  # absent: no error
    assert store.load_run("w1") is None
    assert wfids(store.list_runs()) == ["w2"]
    assert store.list_runs(status=states.ERROR) == []
    assert store.list_errors() == []
    assert store.count_runs()[states.ERROR] == 0
    store.delete_run("w2")
    assert store.list_runs(name="build") == []
    assert store.count_runs() == {s: 0 for s in states.RUN_STATES}
    if isinstance(store, RedisStore):
        assert list(store.scan_keys()) == []
    with pytest.raises(ConflictError):
        store.save_run(run_state("w2"), 1)
    assert store.create_run(run_state("w2")) == 1  # the wfid is free again


# -- definitions -------------------------------------------------------------
def test_definitions_are_stored_once(store: RunStore) -> None:
    assert store.get_definition("d1") is None
    store.put_definition("d1", "steps: []\n", "build.yaml")
    store.put_definition("d1", "steps: []\n", "copy.yaml")
    assert store.get_definition("d1") == ("steps: []\n", "build.yaml")
    store.put_definition("d2", "steps: [noop]\n")
    assert store.get_definition("d2") == ("steps: [noop]\n", None)


# -- timers ---------------------------------------------------------------------
def test_timers_schedule_replace_and_cancel(store: RunStore) -> None:
    assert store.next_timer_due() is None
    assert store.timers() == []
    store.schedule_timer("t1", 30.0, {"wfid": "w1", "kind": "timeout"})
    store.schedule_timer("t2", 10.0, {"wfid": "w2"})
    store.schedule_timer("t3", 20.0, {"wfid": "w1", "kind": "wait"})
    assert store.next_timer_due() == 10.0
    assert store.timers() == [
        ("t2", 10.0, {"wfid": "w2"}),
        ("t3", 20.0, {"wfid": "w1", "kind": "wait"}),
        ("t1", 30.0, {"wfid": "w1", "kind": "timeout"}),
    ]
    assert [t[0] for t in store.timers("w1")] == ["t3", "t1"]

    store.schedule_timer("t2", 40.0, {"wfid": "w2", "replaced": True})  # replace
    assert store.next_timer_due() == 20.0
    assert store.timers("w2") == [("t2", 40.0, {"wfid": "w2", "replaced": True})]

    store.cancel_timer("t3")
    store.cancel_timer("t3")  # absent: no error
    assert [t[0] for t in store.timers()] == ["t1", "t2"]
    assert store.claim_due_timers(100.0) == [
        ("t1", {"wfid": "w1", "kind": "timeout"}),
        ("t2", {"wfid": "w2", "replaced": True}),
    ]
    assert store.next_timer_due() is None


def test_claim_due_timers_boundaries_order_and_limit(store: RunStore) -> None:
    for i, due in enumerate([5.0, 1.0, 3.0, 2.0, 4.0, 3.0000001]):
        store.schedule_timer(f"t{i}", due, {"i": i})
    assert store.claim_due_timers(0.999) == []
    assert store.claim_due_timers(1.0) == [("t1", {"i": 1})]  # due == now is due
    assert store.claim_due_timers(1.0) == []
    assert store.claim_due_timers(3.0, limit=1) == [("t3", {"i": 3})]
    assert store.claim_due_timers(3.0) == [("t2", {"i": 2})]
    assert store.claim_due_timers(4.5, limit=0) == []
    assert store.claim_due_timers(4.5, limit=5) == [("t5", {"i": 5}), ("t4", {"i": 4})]
    assert store.next_timer_due() == 5.0
    # a rescheduled timer is claimed at its new time only, once
    store.schedule_timer("t0", 9.0, {"i": 0, "again": True})
    assert store.claim_due_timers(8.0) == []
    assert store.claim_due_timers(9.0) == [("t0", {"i": 0, "again": True})]
    assert store.timers() == []


def test_racing_claimers_get_each_timer_exactly_once(store: RunStore) -> None:
    ids = [f"t{i:04d}" for i in range(2000)]
    for i, timer_id in enumerate(ids):
        store.schedule_timer(timer_id, float(i % 97), {"i": i})
    store.schedule_timer("later", 1e9, {})

    def claimer(barrier: threading.Barrier) -> list[str]:
        barrier.wait()
        mine = []
        while batch := store.claim_due_timers(1000.0, limit=25):
            mine.extend(timer_id for timer_id, _ in batch)
        return mine

    claimed = run_threads(8, claimer)
    counts = Counter(timer_id for mine in claimed for timer_id in mine)
    assert sorted(counts) == ids
    assert set(counts.values()) == {1}
    assert [t[0] for t in store.timers()] == ["later"]


def test_leased_timers_come_back_unless_acknowledged(store: RunStore) -> None:
    store.schedule_timer("a", 1.0, {"i": "a"})
    store.schedule_timer("b", 2.0, {"i": "b"})
    store.schedule_timer("c", 50.0, {"i": "c"})
    leased = store.lease_due_timers(now=10.0, lease=30.0)
    assert leased == [("a", 40.0, {"i": "a"}), ("b", 40.0, {"i": "b"})]
    # leased: not due again before the lease runs out, and still listed
    assert store.lease_due_timers(now=39.0, lease=30.0) == []
    assert store.lease_due_timers(now=39.0, lease=30.0, limit=0) == []
    assert store.ack_timer("a", 40.0) is True
    assert store.ack_timer("a", 40.0) is False
    # "b" was never acknowledged (its claimer died): it is due again
    assert store.lease_due_timers(now=40.0, lease=60.0) == [("b", 100.0, {"i": "b"})]
    # "c" was scheduled again meanwhile: the old lease's ack leaves it alone
    assert store.lease_due_timers(now=50.0, lease=19.0) == [("c", 69.0, {"i": "c"})]
    store.schedule_timer("c", 100.0, {"i": "c2"})
    assert store.ack_timer("c", 69.0) is False
    assert sorted((t, d) for t, d, _ in store.timers()) == [("b", 100.0), ("c", 100.0)]


def test_racing_leasers_get_each_timer_exactly_once(store: RunStore) -> None:
    ids = [f"t{i:04d}" for i in range(1000)]
    for i, timer_id in enumerate(ids):
        store.schedule_timer(timer_id, float(i % 97), {"i": i})

    def leaser(barrier: threading.Barrier) -> list[str]:
        barrier.wait()
        mine = []
        while batch := store.lease_due_timers(1000.0, 60.0, limit=25):
            for timer_id, due, _ in batch:
                mine.append(timer_id)
                assert store.ack_timer(timer_id, due)
        return mine

    claimed = run_threads(8, leaser)
    counts = Counter(timer_id for mine in claimed for timer_id in mine)
    assert sorted(counts) == ids
    assert set(counts.values()) == {1}
    assert store.timers() == []


def test_reschedule_moves_only_existing_timers(store: RunStore) -> None:
    store.schedule_timer("lease", 10.0, {"p": 1})
    assert store.reschedule_timer("lease", 99.0) is True
    assert store.timers() == [("lease", 99.0, {"p": 1})]
    assert store.claim_due_timers(50.0) == []
    assert store.reschedule_timer("nope", 5.0) is False
    assert [t for t, _, _ in store.timers()] == ["lease"]


# -- engine workers' liveness -------------------------------------------------
def test_engine_heartbeats_run_out(store: RunStore) -> None:
    store.engine_heartbeat("e1", 30.0, {"host": "h", "pid": 1})
    store.engine_heartbeat("e2", 0.05, {"host": "h", "pid": 2})
    assert store.engine_alive("e1") and store.engine_alive("e2")
    deadline = time.monotonic() + 5
    while store.engine_alive("e2"):
        assert time.monotonic() < deadline, "a heartbeat never ran out"
        time.sleep(0.01)
    assert [e["id"] for e in store.engines()] == ["e1"]
    assert store.engines()[0]["pid"] == 1
    store.engine_gone("e1")
    assert not store.engine_alive("e1")
    assert store.engines() == []
    assert not store.engine_alive("never")


# -- participant registrations ------------------------------------------------
def patterns(store: RunStore) -> list[str]:
    return [r.pattern for r in store.participants()]


def test_registrations_keep_order_and_replace_in_place(store: RunStore) -> None:
    store.register_participant(Registration("check_spec", "q.check"))
    store.register_participant(Registration("build_.*", "q.build", regex=True))
    store.register_participant(Registration("notify", "q.notify", options={"forget": True}))
    assert store.participants() == [
        Registration("check_spec", "q.check"),
        Registration("build_.*", "q.build", regex=True),
        Registration("notify", "q.notify", options={"forget": True}),
    ]
    store.register_participant(Registration("build_.*", "q.build2", regex=True))
    assert patterns(store) == ["check_spec", "build_.*", "notify"]
    assert store.participants()[1].queue == "q.build2"

    assert store.unregister_participant("check_spec") is True
    assert store.unregister_participant("check_spec") is False
    assert patterns(store) == ["build_.*", "notify"]


def test_registration_positions(store: RunStore) -> None:
    for name in "abc":
        store.register_participant(Registration(name, f"q.{name}"))
    store.register_participant(Registration("first", "q"), position=0)
    assert patterns(store) == ["first", "a", "b", "c"]
    store.register_participant(Registration("mid", "q"), position=2)
    assert patterns(store) == ["first", "a", "mid", "b", "c"]
    store.register_participant(Registration("end", "q"), position=99)
    assert patterns(store) == ["first", "a", "mid", "b", "c", "end"]
    store.register_participant(Registration("neg", "q"), position=-1)
    assert patterns(store) == ["first", "a", "mid", "b", "c", "neg", "end"]
    # a known pattern with a position moves there (and is replaced)
    store.register_participant(Registration("c", "q.c2"), position=0)
    assert patterns(store) == ["c", "first", "a", "mid", "b", "neg", "end"]
    assert store.participants()[0].queue == "q.c2"


# -- listeners --------------------------------------------------------------------
def test_listeners(store: RunStore) -> None:
    assert store.listeners() == []
    store.add_listener("l1", {"to": "build", "upon": "reply", "wfid": "w1"})
    store.add_listener("l2", {"to": "notify"})
    store.add_listener("l2", {"to": "notify", "replaced": True})
    assert dict(store.listeners()) == {
        "l1": {"to": "build", "upon": "reply", "wfid": "w1"},
        "l2": {"to": "notify", "replaced": True},
    }
    assert store.remove_listener("l1") is True
    assert store.remove_listener("l1") is False
    assert [lid for lid, _ in store.listeners()] == ["l2"]


def test_only_one_racer_removes_a_listener(store: RunStore) -> None:
    for round_ in range(10):
        store.add_listener(f"l{round_}", {"round": round_})

        def remover(barrier: threading.Barrier, lid: str = f"l{round_}") -> bool:
            barrier.wait()
            return store.remove_listener(lid)

        assert sorted(run_threads(16, remover)) == [False] * 15 + [True]
    assert store.listeners() == []


# -- mutexes --------------------------------------------------------------------------
def test_mutex_queue_and_handoff(store: RunStore) -> None:
    assert store.mutex("m") == (None, [])
    assert store.acquire_mutex("m", "a") is True
    assert store.acquire_mutex("m", "a") is True  # idempotent for the holder
    assert store.acquire_mutex("m", "b") is False
    assert store.acquire_mutex("m", "c") is False
    assert store.acquire_mutex("m", "b") is False  # not queued twice
    assert store.acquire_mutex("m", "d") is False
    assert store.mutex("m") == ("a", ["b", "c", "d"])
    assert store.acquire_mutex("other", "b") is True  # mutexes are independent

    assert store.release_mutex("m", "c") is None  # a waiter leaves the queue
    assert store.mutex("m") == ("a", ["b", "d"])
    assert store.release_mutex("m", "zz") is None  # a stranger: no effect
    assert store.release_mutex("m", "a") == "b"  # handoff, first come first
    assert store.mutex("m") == ("b", ["d"])
    assert store.acquire_mutex("m", "b") is True
    assert store.acquire_mutex("m", "a") is False  # back of the queue
    assert store.release_mutex("m", "b") == "d"
    assert store.release_mutex("m", "b") is None  # released twice: no effect
    assert store.release_mutex("m", "d") == "a"
    assert store.release_mutex("m", "a") is None
    assert store.mutex("m") == (None, [])
    assert store.acquire_mutex("m", "e") is True


# -- concurrency --------------------------------------------------------------------------
def test_compare_and_set_loses_no_update(store: RunStore) -> None:
    store.create_run(run_state("w-cas", counter=0))

    def worker(barrier: threading.Barrier) -> int:
        conflicts = 0
        barrier.wait()
        for _ in range(200):
            while True:
                state, version = store.load_run("w-cas")
                state["counter"] += 1
                try:
                    store.save_run(state, version)
                    break
                except ConflictError:
                    conflicts += 1
        return conflicts

    run_threads(8, worker)
    state, version = store.load_run("w-cas")
    assert state["counter"] == 1600
    assert version == 1601


# -- memory (Redis-backed stores) ------------------------------------------------------
def test_memory_per_run(store: RunStore, record_property) -> None:
    """One run with a ~1.5 KB state: its hash plus its index entries."""
    if isinstance(store, MemoryStore):
        pytest.skip("measures Redis memory")
    assert isinstance(store, RedisStore)

    def sized(wfid: str, at: float) -> dict[str, Any]:
        state = run_state(wfid, at=at, tree={})
        while len(json.dumps(state, separators=(",", ":"))) < 1500:
            n = len(state["tree"])
            state["tree"][f"0_{n}"] = {"kind": "participant", "state": "waiting", "ref": "check"}
        return state

    client, prefix = store.client, store.prefix
    indexes = [f"{prefix}runs", f"{prefix}runs:status:running", f"{prefix}runs:name:build"]
    runs = 300  # enough for the sorted sets to take their large-set encoding
    for i in range(runs):
        store.create_run(sized(f"20240101-{i:06d}", 1.7e9 + i))
    hash_bytes = client.memory_usage(f"{prefix}run:20240101-000000", samples=0)
    index_bytes = sum(client.memory_usage(key, samples=0) for key in indexes) / runs
    state_bytes = len(json.dumps(sized("20240101-000000", 1.7e9), separators=(",", ":")))
    total = hash_bytes + index_bytes
    record_property("run_memory_bytes", round(total))
    info = client.info("server")
    server = (
        f"valkey {info['valkey_version']}"
        if "valkey_version" in info
        else f"redis {info['redis_version']}"
    )
    print(
        f"\n{server}: state {state_bytes} B JSON, "
        f"hash {hash_bytes} B, index entries {index_bytes:.0f} B, total {total:.0f} B per run"
    )
    assert total < 2 * state_bytes
