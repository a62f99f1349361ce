"""The run state's format version, its migrations and its accessors
(``engine.core.runstate``).

``tests/fixtures/runstate/v1_concurrence.json`` is a real version-1 state
(the format written before versions existed), captured with the engine of
that time from ``v1_concurrence.yaml``: the run waits on ``review`` inside a
concurrence whose other branch (``build``) has already replied. It holds the
state and the workitem ``review`` was dispatched.
"""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import pytest

from engine.core import interpreter, runstate, states
from engine.core.loader import load_definition
from engine.engine import Engine, Position
from engine.store.memory import MemoryStore
from engine.testing import ProcessHarness

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "runstate"
SOURCE = (FIXTURES / "v1_concurrence.yaml").read_text(encoding="utf-8")
CAPTURED = json.loads((FIXTURES / "v1_concurrence.json").read_text(encoding="utf-8"))
START = 1_790_000_000.0
WAITING = "0_1_1_1-7"


@pytest.fixture
def v1() -> dict:
    return copy.deepcopy(CAPTURED["state"])


def _stored(state: dict) -> ProcessHarness:
    """A harness whose store holds ``state`` as a store of the time would."""
    store = MemoryStore()
    d = load_definition(SOURCE)
    store.put_definition(d.digest, d.source, d.filename)
    store.create_run(state)
    h = ProcessHarness(store=store, start=START + 60)
    h.register("review", reply=False)
    return h


def _uninterrupted() -> tuple[list, dict]:
    """The trace and the final fields of the fixture's run, launched and
    answered in one go with the code of today."""
    with ProcessHarness(start=START) as h:
        h.register("build", lambda wi: wi.fields.__setitem__("built", True))
        h.register("test", lambda wi: wi.fields.__setitem__("tested", True))
        h.register("review", reply=False)
        run = h.launch(SOURCE, fields={"version": "1.2"})
        run.wait()
        [wi] = h.pending.values()
        wi.fields["reviewed"] = "yes"
        h.trace.clear()
        h.reply(wi)
        run.wait()
        return h.trace, run.fields


# -- versions and migrations ----------------------------------------------------------


def test_the_captured_state_is_version_1() -> None:
    state = CAPTURED["state"]
    assert runstate.VERSION_KEY not in state
    assert runstate.version(state) == 1
    assert state["def"] == load_definition(SOURCE).digest  # the fixture's own definition


def test_every_older_version_has_a_migration_to_the_next() -> None:
    assert runstate.STATE_VERSION == 2
    assert sorted(runstate.MIGRATIONS) == list(range(1, runstate.STATE_VERSION))


def test_upgrading_a_version_1_state_names_its_version_and_changes_nothing_else(v1) -> None:
    before = copy.deepcopy(v1)
    up = runstate.upgrade(v1)
    assert runstate.version(up) == runstate.STATE_VERSION
    assert up[runstate.VERSION_KEY] == 2
    assert {k: x for k, x in up.items() if k != runstate.VERSION_KEY} == before


def test_a_current_state_is_returned_as_it_is() -> None:
    d = load_definition(SOURCE)
    res = interpreter.launch(d, "w1", now=START, fields={"version": "1.2"})
    assert runstate.version(res.state) == runstate.STATE_VERSION
    before = copy.deepcopy(res.state)
    assert runstate.upgrade(res.state) is res.state
    assert res.state == before


def test_a_state_from_the_future_is_refused_with_a_clear_message(v1) -> None:
    v1[runstate.VERSION_KEY] = runstate.STATE_VERSION + 1
    with pytest.raises(runstate.StateVersionError) as exc:
        runstate.upgrade(v1)
    message = str(exc.value)
    assert v1["wfid"] in message
    assert f"version {runstate.STATE_VERSION + 1}, newer than this engine knows" in message
    assert f"up to {runstate.STATE_VERSION}" in message


@pytest.mark.parametrize("bad", [0, -1, "2", 1.5, None, True])
def test_a_version_that_is_not_a_format_version_is_refused(v1, bad) -> None:
    v1[runstate.VERSION_KEY] = bad
    with pytest.raises(runstate.StateVersionError, match="not a format version"):
        runstate.upgrade(v1)


def test_the_engine_refuses_a_run_from_the_future_and_leaves_it_as_it_was(v1) -> None:
    v1[runstate.VERSION_KEY] = 99
    h = _stored(v1)
    wfid = v1["wfid"]
    with pytest.raises(runstate.StateVersionError, match="newer than this engine knows"):
        h.engine.state(wfid)
    with pytest.raises(runstate.StateVersionError):
        h.reply(copy.deepcopy(CAPTURED["workitem"]))
    assert h.store.load_run(wfid) == (v1, 1)


# -- a version-1 run waiting in a store goes on --------------------------------------


def test_a_version_1_run_waiting_in_a_concurrence_finishes_when_its_reply_arrives(v1) -> None:
    h = _stored(v1)
    run = h.run(v1["wfid"])
    assert run.status == states.RUNNING
    assert run.positions == [
        Position(WAITING, "0_1_1_1", "review", "participant", states.WAITING, START, "review")
    ]
    wi = copy.deepcopy(CAPTURED["workitem"])
    wi["fields"]["reviewed"] = "yes"
    h.reply(wi)
    run.wait()
    assert run.status == states.FINISHED, run.errors
    # what the same run gives that never left the engine of today: the
    # concurrence keeps the fields of the branch that replied first (build)
    assert (h.trace, run.fields) == _uninterrupted()
    assert h.trace == ["done true  "]
    assert run.fields == {"version": "1.2", "built": True}
    stored, cas_version = h.store.load_run(v1["wfid"])
    assert cas_version == 2  # one save: the reply
    assert runstate.version(stored) == runstate.STATE_VERSION  # saved in the new format


def test_a_duplicate_of_the_reply_is_still_ignored_after_the_upgrade(v1) -> None:
    h = _stored(v1)
    run = h.run(v1["wfid"])
    h.reply(copy.deepcopy(CAPTURED["workitem"]))
    h.reply(copy.deepcopy(CAPTURED["workitem"]))
    run.wait()
    assert run.status == states.FINISHED
    assert len(h.trace) == 1


# -- accessors ------------------------------------------------------------------------


def test_the_accessors_give_what_the_web_ui_shows(v1) -> None:
    state = runstate.upgrade(v1)
    d = load_definition(SOURCE)
    assert runstate.status(state) == states.RUNNING
    assert runstate.errors(state) == []
    assert runstate.definition_digest(state) == d.digest
    # a live run's fields: those of its latest waiting step
    assert runstate.fields(state) == {"tested": True, "version": "1.2"}
    assert runstate.stored_fields(state) == {"version": "1.2"}

    [at] = runstate.positions(state)
    assert (at.eid, at.node_id, at.state, at.participant, at.since) == (
        WAITING,
        "0_1_1_1",
        states.WAITING,
        "review",
        START,
    )
    assert at.parent == "0_1_1-5" and at.children == ()
    assert at.is_position
    assert at.describe(d) == ("participant", "review")
    assert dict(at.workitem_fields) == {"tested": True, "version": "1.2"}
    with pytest.raises(TypeError):
        at.workitem_fields["x"] = 1  # type: ignore[index]

    # what Engine.run (the run page's source) reports, built on the accessors
    h = _stored(copy.deepcopy(CAPTURED["state"]))
    info = h.engine.run(v1["wfid"])
    assert info.status == runstate.status(state)
    assert info.fields == runstate.fields(state)
    assert [(p.eid, p.expid, p.state, p.since, p.participant) for p in info.positions] == [
        (at.eid, at.node_id, at.state, at.since, at.participant)
    ]

    top = runstate.root(state)
    assert top is not None and top.eid == "0-1" and top.parent is None
    assert [x.eid for x in runstate.expressions(state)] == ["0-1", "0_1-3", "0_1_1-5", WAITING]
    assert runstate.expression(state, "nope") is None
    assert runstate.has_step(state, WAITING) and runstate.has_step(state, "0_1_1_1")
    assert not runstate.has_step(state, "0_9")
    assert runstate.detached(state) == []

    tree = runstate.tree(state, d)
    assert tree == h.engine.tree(v1["wfid"])
    assert (tree["eid"], tree["kind"], tree["state"]) == ("0-1", "sequence", states.ACTIVE)
    [conc] = tree["children"]
    assert conc["kind"] == "concurrence"
    [branch] = conc["children"]  # the build branch has replied and is gone
    assert [c["name"] for c in branch["children"]] == ["review"]
    assert tree["detached"] == []


def test_an_ended_run_has_its_final_fields_and_no_tree() -> None:
    with ProcessHarness(start=START) as h:
        h.register("build", lambda wi: wi.fields.__setitem__("built", True))
        h.register("test")
        h.register("review")
        run = h.launch(SOURCE, fields={"version": "2"})
        run.wait()
        state = run.state
    assert runstate.status(state) == states.FINISHED
    assert runstate.fields(state) == runstate.stored_fields(state)
    assert runstate.fields(state)["built"] is True
    assert runstate.positions(state) == [] and runstate.root(state) is None
    assert runstate.tree(state, load_definition(SOURCE)) is None


def test_engine_state_hands_out_the_current_format(v1) -> None:
    store = MemoryStore()
    store.create_run(v1)
    assert runstate.version(Engine(store).state(v1["wfid"])) == runstate.STATE_VERSION


# -- nobody outside the core reads the short keys ---------------------------------------

#: the short keys of live expressions (``interpreter``'s module docstring)
#: that mean nothing else anywhere in the code
_SHORT_KEYS = frozenset({"n", "s", "pn", "k", "sl", "vk", "wt", "ii"})
_OUTSIDE = ("engine", "webui", "bossapp", "skynet")


def _short_key_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        key = None
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            key = node.slice.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop", "setdefault")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            key = node.args[0].value
        if key in _SHORT_KEYS:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_outside_the_core_reads_an_expression_by_short_key() -> None:
    core = ROOT / "engine" / "core"
    found = [
        hit
        for top in _OUTSIDE
        for path in sorted((ROOT / top).rglob("*.py"))
        if core not in path.parents
        for hit in _short_key_reads(path)
    ]
    assert found == [], "read run state through engine.core.runstate:\n" + "\n".join(found)


def test_the_short_key_scan_sees_a_read() -> None:
    assert _short_key_reads(ROOT / "engine" / "core" / "runstate.py")  # the accessors do
