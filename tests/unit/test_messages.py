"""``engine.core.messages``: every constructor builds a message the wire
schemas accept, the schemas and the constructors name the same types, the
wire format is the one participants depend on, and the engine's dispatch
tables cover every type it accepts."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest

from engine import wire
from engine.core import effects as fx
from engine.core import interpreter
from engine.core import messages as m

WI: dict[str, Any] = {
    "fei": {"wfid": "w-1", "expid": "0_1", "subid": "0_1-3", "engine_id": "boss"},
    "fields": {"a": 1, "params": {"x": 1}},
    "participant_name": "build",
    "wf_name": "p",
    "wf_revision": None,
    "dispatched_at": "2026-11-22T10:00:00.000Z",
}
CAUSE = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"

#: every message type -> messages built with its constructor, with and
#: without the optional parts
SAMPLES: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "launch": lambda: [
        m.launch_item(definition="name: x\nsequence: []\n"),
        m.launch_item(
            definition="name: x\nsequence: []\n",
            filename="x.yaml",
            fields={"a": 1},
            variables={"v": 2},
            wfid="w-1",
            cause=[CAUSE],
            id="m-1",
        ),
        m.launch_item(process="ci/build", fields={"p": 1}, wfid="t-1", cause=[CAUSE]),
    ],
    "reply": lambda: [m.reply(WI), m.reply(WI, "w-1", id="malformed:0_1-3")],
    "cancel": lambda: [
        m.cancel("w-1"),
        m.cancel("w-1", "0_1"),
        m.cancel("w-1", "0_1-3", flavour="kill"),
    ],
    "kill": lambda: [m.kill("w-1")],
    "pause": lambda: [m.pause("w-1")],
    "resume": lambda: [m.resume("w-1")],
    "replay": lambda: [m.replay("w-1"), m.replay("w-1", "e-1", {"host": "b2"})],
    "re_apply": lambda: [m.re_apply("w-1", "0_1"), m.re_apply("w-1", "0_1-3", {"a": 2})],
    "started": lambda: [m.started("w-1", "0_1-3", lease=60, instance="i-1", workitem=WI)],
    "alive": lambda: [m.alive("w-1", "0_1-3", lease=60.0, instance="i-1")],
    "continue": lambda: [m.continue_("w-1")],
    "listen": lambda: [m.listen("w-1", "0_2-4", WI)],
    "mutex": lambda: [m.mutex("w-1", "0_2-4", "deploy")],
    "timer": lambda: [
        *(m.timer("w-1", "0_1-3", kind) for kind in sorted(m.TIMER_KINDS - {"lease"})),
        m.lease_timer("w-1", "0_1-3", lease=60.0, instance=None, workitem=WI),
        m.lease_timer("w-1", "0_1-3", lease=2.0, instance="i-1", workitem=WI),
    ],
    "register": lambda: [
        m.register("build"),
        m.register("build", "q.build", regex=False),
        m.register("^b.*", "q.b", regex=True, position=0),
    ],
    "unregister": lambda: [m.unregister("build")],
}


def _schema(name: str) -> dict[str, Any]:
    text = (resources.files("engine") / "schemas" / f"{name}.json").read_text(encoding="utf-8")
    return json.loads(text)


def test_the_schemas_and_the_constructors_name_the_same_types() -> None:
    enum = set(_schema("message")["properties"]["type"]["enum"])
    assert enum == m.ENGINE_TYPES
    assert enum | {"launch"} == m.MESSAGE_TYPES  # launch.json: items without a type
    assert set(m.CONSTRUCTORS) == m.MESSAGE_TYPES
    assert set(SAMPLES) == m.MESSAGE_TYPES
    # the constructor of each type builds that type
    for kind, build in SAMPLES.items():
        for msg in build():
            assert msg.get("type", "launch") == kind


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_every_constructor_builds_a_valid_wire_message(kind: str) -> None:
    for msg in SAMPLES[kind]():
        body = wire.dumps(msg)
        if kind == "launch":
            assert "type" not in msg
            wire.validate("launch", msg)
            assert wire.engine_message(body) == m.as_launch_message(msg)
            assert m.as_launch_item(m.as_launch_message(msg)) == msg
        else:
            wire.validate("message", msg)
            got = wire.engine_message(body)
            assert got == msg if kind != "reply" else got["workitem"] == WI
            assert got["type"] == kind


def test_the_messages_to_participants_are_valid() -> None:
    for flavour in ("cancel", "kill"):
        item = m.cancel_item(WI["fei"], "build", flavour)
        wire.validate("cancel", item)
        assert item == {
            "type": "cancel",
            "flavour": flavour,
            "fei": WI["fei"],
            "participant_name": "build",
        }
    reply = m.workitem_reply(
        {**WI, "fields": {"b": 2}},
        fei=WI["fei"],
        participant_name="build",
        started_at="2026-11-22T10:00:01.000Z",
        instance="host:1",
        error={"message": "no", "class": "RuntimeError", "traceback": None},
    )
    wire.validate("workitem", reply)
    assert wire.engine_message(wire.dumps(reply)) == m.reply(reply)
    assert reply["fields"] == {"b": 2} and reply["error"]["class"] == "RuntimeError"
    assert "error" not in m.workitem_reply(
        WI, fei=WI["fei"], participant_name="build", started_at=None, instance=None
    )
    # the step-log job: this reply's, never one an earlier step's reply left
    logged = m.workitem_reply(
        {**WI, "log_job": "host:1.7"},
        fei=WI["fei"],
        participant_name="build",
        started_at="2026-11-22T10:00:01.000Z",
        instance="host:2",
        log_job="host:2.1",
    )
    wire.validate("workitem", logged)
    assert logged["log_job"] == "host:2.1"
    # a reply whose log_job is not text is refused, saying which key
    with pytest.raises(wire.Malformed, match="log_job"):
        wire.engine_message(wire.dumps({**logged, "log_job": 7}))
    assert "log_job" not in m.workitem_reply(
        {**WI, "log_job": "host:1.7"},
        fei=WI["fei"],
        participant_name="build",
        started_at=None,
        instance="host:2",
    )


def test_the_wire_format_is_unchanged() -> None:
    """The dicts the senders used to write by hand, key for key."""
    assert m.cancel("w") == {"type": "cancel", "wfid": "w"}
    assert m.cancel("w", "0_1") == {"type": "cancel", "wfid": "w", "eid": "0_1"}
    assert m.replay("w") == {"type": "replay", "wfid": "w", "error_id": None, "fields": None}
    assert m.re_apply("w", "0_1") == {"type": "re_apply", "wfid": "w", "eid": "0_1", "fields": None}
    assert m.continue_("w") == {"type": "continue", "wfid": "w"}
    assert m.mutex("w", "e", "x") == {"type": "mutex", "wfid": "w", "eid": "e", "mutex": "x"}
    assert m.timer("w", "e", "wait") == {"type": "timer", "wfid": "w", "eid": "e", "timer": "wait"}
    assert list(m.lease_timer("w", "e", lease=1.0, instance=None, workitem=WI)) == [
        "type",
        "wfid",
        "eid",
        "timer",
        "lease",
        "instance",
        "workitem",
    ]
    assert m.register("p", "q", regex=False) == {
        "type": "register",
        "pattern": "p",
        "queue": "q",
        "regex": False,
    }
    assert m.started("w", "s", lease=60, instance="i", workitem=WI) == {
        "type": "started",
        "wfid": "w",
        "eid": "s",
        "lease": 60,
        "instance": "i",
        "workitem": WI,
    }
    assert m.alive("w", "s", lease=60, instance="i") == {
        "type": "alive",
        "wfid": "w",
        "eid": "s",
        "lease": 60,
        "instance": "i",
    }
    assert m.reply(WI) == {"type": "reply", "wfid": "w-1", "workitem": WI}
    assert m.redeliver(m.kill("w")) == {"type": "redeliver", "wfid": "w", "message": m.kill("w")}
    assert "redeliver" not in m.MESSAGE_TYPES  # a stored timer payload, never sent
    with pytest.raises(ValueError, match="exactly one"):
        m.launch_item(definition="x", process="y")
    with pytest.raises(ValueError, match="exactly one"):
        m.launch_item(fields={})


def test_operations_are_one_table() -> None:
    from webui.actions import ACTIONS

    assert dict(ACTIONS) == dict(m.OPERATION_TYPES)
    assert set(m.OPERATIONS) == {"cancel", "kill", "pause", "resume", "replay", "reapply"}
    for name, kind in m.OPERATION_TYPES.items():
        assert m.OPERATIONS[name] is m.CONSTRUCTORS[kind]
    assert m.operation("reapply", "w", eid="0_1") == m.re_apply("w", "0_1")
    assert m.operation("cancel", "w", eid=None) == {"type": "cancel", "wfid": "w"}
    with pytest.raises(ValueError, match="unknown operation"):
        m.operation("explode", "w")


def test_message_ids_spot_redeliveries() -> None:
    assert m.message_id(m.reply(WI)) == "reply:0_1-3"
    assert m.message_id(m.reply(WI, id="x")) == "x"
    assert m.message_id(m.timer("w", "0_1-3", "timeout")) == "timer:0_1-3:timeout"
    assert m.message_id(m.kill("w")) is None
    assert m.message_id(m.reply({"fei": {}})) is None


def test_the_dispatch_tables_cover_every_type_the_engine_accepts() -> None:
    from engine.engine import _CARRY_OUT
    from engine.service import HANDLERS, EngineService

    assert set(HANDLERS) == m.MESSAGE_TYPES
    # what the service does not handle itself goes to Engine.deliver, and
    # the interpreter acts on every one of those
    delivered = {k for k, h in HANDLERS.items() if h is EngineService._on_run_message}
    assert delivered == interpreter.HANDLED_TYPES
    assert delivered == m.ENGINE_TYPES - {"alive", "register", "unregister"}
    # every effect the core can ask for is carried out
    assert set(_CARRY_OUT) == set(fx.EFFECT_TYPES.values())
