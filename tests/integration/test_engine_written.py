"""``Engine`` keeps the runs it saved last as it saved them
(``RunStore.save_run_written``): the next message of such a run is applied
without reading the run first, and the save is refused when anything wrote
the run in between (another engine, or the run deleted and launched again
under its wfid), after which the run is read and the message applied to it
as stored. A recording publisher stands in for the broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine import wire
from engine.core import messages
from engine.store import RedisStore
from tests.integration.test_engine_service import Recorder, service
from tests.integration.test_engine_service import store as store

THREE = "name: three\nsteps:\n  - alpha\n  - beta\n  - gamma\n"
OTHER = "name: other\nsteps:\n  - alpha\n  - delta\n"


@pytest.fixture
def reads(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The wfids of the runs read for a message (``deliver``)."""
    got: list[str] = []
    real = store.load_run_and_listeners_version

    def counted(wfid: str) -> object:
        got.append(wfid)
        return real(wfid)

    monkeypatch.setattr(store, "load_run_and_listeners_version", counted)
    yield got


def register(s: object) -> None:
    for name in ("alpha", "beta", "gamma", "delta"):
        s.engine.register(name, f"q.{name}")  # type: ignore[attr-defined]


def test_the_next_message_of_a_run_saved_last_is_applied_without_reading_it(
    store: RedisStore, reads: list[str]
) -> None:
    assert store.written_saves
    rec = Recorder()
    s = service(store, rec, "w.c0")
    register(s)
    s.handle(wire.dumps({"definition": THREE, "wfid": "r1"}))
    for _ in range(3):
        s.handle(wire.dumps(rec.dispatched[-1].workitem))
    assert [d.participant for d in rec.dispatched] == ["alpha", "beta", "gamma"]
    assert s.engine.status("r1") == "finished"
    assert reads == ["r1"]  # the first reply only (a launch is not kept)
    assert s.engine.written_misses == 0


def test_a_run_another_engine_wrote_meanwhile_is_read_and_the_message_applied_to_it(
    store: RedisStore, reads: list[str]
) -> None:
    rec_a, rec_b = Recorder(), Recorder()
    a, b = service(store, rec_a, "wa.c0"), service(store, rec_b, "wb.c0")
    register(a)
    a.handle(wire.dumps({"definition": THREE, "wfid": "r2"}))
    a.handle(wire.dumps(rec_a.dispatched[-1].workitem))  # alpha's reply: A keeps the run
    b.handle(wire.dumps(rec_a.dispatched[-1].workitem))  # beta's, to B
    assert [d.participant for d in rec_b.dispatched] == ["gamma"]
    # an operation applies to the run A kept too: its save is refused
    a.handle(wire.dumps(messages.operation("pause", "r2")))
    assert a.engine.written_misses == 1
    assert a.engine.status("r2") == "paused"
    a.handle(wire.dumps(messages.operation("resume", "r2")))
    a.handle(wire.dumps(rec_b.dispatched[-1].workitem))  # gamma's
    assert a.engine.written_misses == 1  # A saved it last again
    assert a.engine.status("r2") == "finished"
    assert [d.participant for d in rec_a.dispatched] == ["alpha", "beta"]
    assert reads == ["r2", "r2", "r2"]  # alpha's reply, beta's (B), the refused pause


def test_a_message_the_run_as_kept_would_ignore_is_looked_at_on_the_run_as_stored(
    store: RedisStore, reads: list[str]
) -> None:
    """Nothing saved, nothing checked: an ignored message is decided on the
    run as read."""
    rec_a, rec_b = Recorder(), Recorder()
    a, b = service(store, rec_a, "wa.c0"), service(store, rec_b, "wb.c0")
    register(a)
    a.handle(wire.dumps({"definition": THREE, "wfid": "r4"}))
    a.handle(wire.dumps(rec_a.dispatched[-1].workitem))  # A keeps r4: beta waits
    b.handle(wire.dumps(rec_a.dispatched[-1].workitem))  # beta's reply, to B
    a.handle(wire.dumps(rec_b.dispatched[-1].workitem))  # gamma waits on no step A kept
    assert a.engine.status("r4") == "finished"
    assert reads == ["r4", "r4", "r4"]


def test_a_run_launched_again_under_its_wfid_is_not_written_over_from_memory(
    store: RedisStore, reads: list[str]
) -> None:
    """A keeps r3 at version 2; r3 is deleted, launched again with another
    definition and brought to version 2 by B: the same version, another
    run. A's next message for r3 must meet the run as stored."""
    rec_a, rec_b = Recorder(), Recorder()
    a, b = service(store, rec_a, "wa.c0"), service(store, rec_b, "wb.c0")
    register(a)
    a.handle(wire.dumps({"definition": THREE, "wfid": "r3"}))
    a.handle(wire.dumps(rec_a.dispatched[-1].workitem))  # A keeps r3 (v2): beta waits
    assert store.load_run("r3")[1] == 2  # type: ignore[index]
    store.delete_run("r3")
    b.handle(wire.dumps({"definition": OTHER, "wfid": "r3"}))
    b.handle(wire.dumps(rec_b.dispatched[-1].workitem))  # alpha's reply: delta waits
    assert store.load_run("r3")[1] == 2  # type: ignore[index]
    a.handle(wire.dumps(messages.operation("pause", "r3")))
    assert a.engine.written_misses == 1  # the same version, not the same write
    state = a.engine.state("r3")
    assert state["name"] == "other" and a.engine.status("r3") == "paused"
    assert [p.name for p in a.engine.positions("r3")] == ["delta"]


def test_what_an_engine_keeps_is_bounded_in_runs_and_characters(
    store: RedisStore, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import engine as engine_module

    rec = Recorder()
    s = service(store, rec, "w.c0")
    register(s)
    for k in range(3):
        s.handle(wire.dumps({"definition": THREE, "wfid": f"b{k}"}))
    for d in list(rec.dispatched):
        s.handle(wire.dumps(d.workitem))  # each run saved once: kept
    kept = s.engine._written
    assert list(kept) == ["b0", "b1", "b2"]
    assert s.engine._written_chars == sum(len(w.data) for w in kept.values())
    monkeypatch.setattr(engine_module, "WRITTEN_RUNS", 2)
    s.handle(wire.dumps(rec.dispatched[-1].workitem))  # b2's beta: b2 kept anew
    assert list(kept) == ["b1", "b2"]  # the oldest dropped
    assert all(len(w.data) > 100 for w in kept.values())
    monkeypatch.setattr(engine_module, "WRITTEN_CHARS", 400)  # a run over 100 is too big
    s.handle(wire.dumps(rec.dispatched[-1].workitem))  # b2's gamma
    assert "b2" not in kept  # not kept...
    assert s.engine.status("b2") == "finished"  # ...and stored all the same
    assert s.engine._written_chars == sum(len(w.data) for w in kept.values())


def test_a_launch_stores_its_definition_and_run_in_one_round_trip(
    store: RedisStore, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``RunStore.create_run_written``: the definition goes with the run
    (no ``put_definition`` of its own) and the listeners' version comes back
    with it (the listeners are not read again for the first dispatch);
    the run's first reply reads it (a launch does not keep its run)."""
    import hashlib

    rec = Recorder()
    s = service(store, rec, "w.c0")
    register(s)
    s.handle(wire.dumps({"definition": THREE, "wfid": "l0"}))  # the listeners read once
    calls: list[str] = []
    for name in ("put_definition", "listeners", "create_run", "listeners_version"):
        real = getattr(store, name)

        def counted(*args: object, _name: str = name, _real: object = real) -> object:
            calls.append(_name)
            return _real(*args)  # type: ignore[operator]

        monkeypatch.setattr(store, name, counted)
    digest = hashlib.sha256(OTHER.encode()).hexdigest()
    assert store.get_definition(digest) is None
    s.handle(wire.dumps({"definition": OTHER, "wfid": "l1", "filename": "other.yaml"}))
    assert [d.participant for d in rec.dispatched] == ["alpha", "alpha"]
    assert calls == []
    assert store.get_definition(digest) == (OTHER, "other.yaml")
    s.handle(wire.dumps(rec.dispatched[-1].workitem))
    assert [d.participant for d in rec.dispatched] == ["alpha", "alpha", "delta"]
    assert reads == ["l1"] and s.engine.written_misses == 0
    # a definition already stored is left as it is (the first one wins)
    s.handle(wire.dumps({"definition": OTHER, "wfid": "l2", "filename": "again.yaml"}))
    assert store.get_definition(digest) == (OTHER, "other.yaml")
    # the same launch again (a redelivery) is still recognised: nothing dispatched
    s.handle(wire.dumps({"definition": OTHER, "wfid": "l2", "filename": "again.yaml"}))
    assert [d.workitem["fei"]["wfid"] for d in rec.dispatched].count("l2") == 1
    assert s.engine.status("l2") == "running"


def test_a_batch_of_runs_saved_last_is_applied_without_reading_them(
    store: RedisStore, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Engine.deliver_many`` takes the runs this engine saved last as it
    saved them, and keeps the runs a batch saved: only runs it has not kept
    are read. A kept run another engine moved on meanwhile is looked at
    again, alone, on the run as read: a message the kept run would ignore,
    and one whose save of the kept run is refused."""
    from engine.service import Incoming

    batch_reads: list[list[str]] = []
    real = store.load_runs

    def counted(wfids: list[str]) -> object:
        batch_reads.append(list(wfids))
        return real(wfids)

    monkeypatch.setattr(store, "load_runs", counted)
    rec_a, rec_b = Recorder(), Recorder()
    a, b = service(store, rec_a, "wa.c0"), service(store, rec_b, "wb.c0")
    register(a)
    runs = ("k1", "k2", "k3", "k4")
    for wfid in runs:
        a.handle(wire.dumps({"definition": THREE, "wfid": wfid}))

    def last(rec: Recorder, wfid: str) -> bytes:
        return wire.dumps(
            [d.workitem for d in rec.dispatched if d.workitem["fei"]["wfid"] == wfid][-1]
        )

    assert a.handle_batch([Incoming(last(rec_a, w)) for w in runs]) == ["reply applied"] * 4
    assert batch_reads == [list(runs)]  # launched: not kept, read
    for w in ("k3", "k4"):
        b.handle(last(rec_a, w))  # their beta replies, to B: A's k3 and k4 are out of date
    out = a.handle_batch([Incoming(last(rec_a, w)) for w in ("k1", "k2")])
    assert out == ["reply applied"] * 2
    assert batch_reads == [list(runs)] and reads == ["k3", "k4"]  # (B's reads)
    misses = a.engine.written_misses
    out = a.handle_batch(
        [
            *(Incoming(last(rec_a, w)) for w in ("k1", "k2")),
            # gamma's reply: ignored by k3 as A kept it (beta waits there)
            Incoming(last(rec_b, "k3")),
            # applies to k4 as kept, but its save is refused (B wrote it)
            Incoming(wire.dumps(messages.operation("pause", "k4"))),
        ]
    )
    assert out == ["reply applied"] * 3 + ["pause applied"]
    assert a.engine.written_misses == misses + 1
    assert batch_reads == [list(runs)] and reads == ["k3", "k4", "k3", "k4"]
    assert [a.engine.status(w) for w in runs] == ["finished"] * 3 + ["paused"]
    assert [d.participant for d in rec_a.dispatched].count("gamma") == 2


def test_a_batch_does_not_write_over_a_run_launched_again_under_its_wfid(
    store: RedisStore, reads: list[str]
) -> None:
    """As ``deliver``: a run A keeps at version 2, deleted and launched
    again by B and brought to version 2 there, is the same version but not
    the same write; A's batch save of it is refused (the write's token)."""
    from engine.service import Incoming

    rec_a, rec_b = Recorder(), Recorder()
    a, b = service(store, rec_a, "wa.c0"), service(store, rec_b, "wb.c0")
    register(a)
    for wfid in ("t1", "t2"):
        a.handle(wire.dumps({"definition": THREE, "wfid": wfid}))
    first = [Incoming(wire.dumps(d.workitem)) for d in rec_a.dispatched]
    assert a.handle_batch(first) == ["reply applied"] * 2  # A keeps both at v2
    store.delete_run("t1")
    b.handle(wire.dumps({"definition": OTHER, "wfid": "t1"}))
    b.handle(wire.dumps(rec_b.dispatched[-1].workitem))  # alpha's reply: delta waits
    assert store.load_run("t1")[1] == 2  # type: ignore[index]
    misses = a.engine.written_misses
    out = a.handle_batch(
        [
            Incoming(wire.dumps(messages.operation("pause", "t1"))),
            Incoming(wire.dumps(messages.operation("pause", "t2"))),
        ]
    )
    assert out == ["pause applied"] * 2
    assert a.engine.written_misses == misses + 1
    assert a.engine.state("t1")["name"] == "other" and a.engine.status("t1") == "paused"
    assert [p.name for p in a.engine.positions("t1")] == ["delta"]
