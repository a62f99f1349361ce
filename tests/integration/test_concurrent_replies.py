"""Many workers, one run: concurrent replies are never lost nor applied twice.

Each thread is a separate engine (its own ``Engine`` and, for Redis, its own
connection: separate workers in all but process), sharing only the store.
They deliver the replies of one 200-branch concurrence in a shuffled order,
every reply twice (a duplicate from the broker), all at once. The store's
compare-and-set must serialise them: the run finishes with every branch's
field merged, and each step is finished exactly once.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import pytest

from engine.core import effects as fx
from engine.engine import Engine, Undecided
from engine.store import RedisStore, RunStore

BRANCHES = 200
THREADS = 8


class Collect:
    def __init__(self) -> None:
        self.out: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def dispatch(self, effect: fx.Dispatch) -> None:
        with self.lock:
            self.out.append(effect.workitem)

    def cancel(self, effect: fx.CancelWorkitem) -> None:
        pass


def _process() -> dict[str, Any]:
    return {
        "name": "hammer",
        "steps": [
            {
                "concurrence": {
                    "merge_type": "mix",
                    "branches": [{f"worker{i}": {"n": i}} for i in range(BRANCHES)],
                }
            },
            "final",
        ],
    }


def _engine(store: RunStore, records: list[fx.Record], col: Collect) -> Engine:
    lock = threading.Lock()

    def on_record(r: fx.Record) -> None:
        with lock:
            records.append(r)

    return Engine(store, dispatcher=col, on_record=on_record)


def _second_store(store: RunStore) -> RunStore:
    if isinstance(store, RedisStore):
        return RedisStore(_url(store), prefix=store.prefix)  # a connection of its own
    return store


def _url(store: RedisStore) -> str:
    kw = store.client.connection_pool.connection_kwargs
    if "path" in kw:
        return f"unix://{kw['path']}?db={kw.get('db', 0)}"
    return f"redis://{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"


def test_hammer_one_concurrence(store: RunStore) -> None:
    records: list[fx.Record] = []
    col = Collect()
    main = _engine(store, records, col)
    main.register("worker.*", "q.workers", regex=True)
    main.register("final", "q.final")
    wfid = main.launch(_process())
    assert len(col.out) == BRANCHES

    replies = []
    for wi in col.out:
        wi = dict(wi, fields={**wi["fields"], f"b{wi['fields']['params']['n']}": True})
        replies += [wi, wi]  # every reply twice
    random.Random(7).shuffle(replies)
    col.out.clear()

    engines = [_engine(_second_store(store), records, col) for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        eng = engines[k]
        barrier.wait()
        try:
            for wi in replies[k::THREADS]:
                msg = {"type": "reply", "wfid": wfid, "workitem": wi}
                try:
                    eng.deliver(msg)
                except Undecided:  # a duplicate of what a live engine applied
                    eng.deliver(msg, recheck=True)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)

    # the concurrence replied once: exactly one dispatch of `final`
    finals = [wi for wi in col.out if wi["participant_name"] == "final"]
    assert len(finals) == 1
    merged = finals[0]["fields"]
    assert {k for k in merged if k.startswith("b")} == {f"b{i}" for i in range(BRANCHES)}

    # each worker step finished exactly once, whatever the duplicates
    finished = Counter(r.eid for r in records if r.entity == "step" and r.event == "finished")
    assert len(finished) == BRANCHES and set(finished.values()) == {1}
    # the race really happened: some saves lost the compare-and-set and retried
    if isinstance(store, RedisStore):
        assert sum(e.conflicts for e in engines) > 0

    main.deliver({"type": "reply", "wfid": wfid, "workitem": finals[0]})
    assert main.status(wfid) == "finished"


@pytest.mark.parametrize("workers", [2, 4])
def test_timers_fire_once_across_workers(store: RunStore, workers: int) -> None:
    """A wait timer claimed by racing workers fires exactly once."""
    col = Collect()
    records: list[fx.Record] = []
    now = [1000.0]
    engines = []
    for _ in range(workers):
        eng = _engine(_second_store(store), records, col)
        eng.clock = lambda: now[0]
        engines.append(eng)
    engines[0].register("after", "q.after")
    wfids = [
        engines[0].launch({"name": "w", "steps": [{"wait": "5s"}, "after"]}) for _ in range(50)
    ]
    now[0] += 5
    barrier = threading.Barrier(workers)

    def fire(eng: Engine) -> None:
        barrier.wait()
        while eng.fire_due_timers(limit=7):
            pass

    threads = [threading.Thread(target=fire, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    per_run = Counter(wi["fei"]["wfid"] for wi in col.out)
    assert per_run == {w: 1 for w in wfids}
