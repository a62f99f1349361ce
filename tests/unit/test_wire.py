"""``engine.wire``: classifying engine-queue bodies, validation, dead letters."""

from __future__ import annotations

import json

import pytest

from engine import wire

WI = {
    "fei": {"wfid": "w-1", "expid": "0_1", "subid": "0_1-3", "engine_id": "boss"},
    "fields": {"a": 1, "params": {"x": 1}},
    "participant_name": "build",
    "wf_name": "p",
    "wf_revision": None,
    "dispatched_at": "2026-11-22T10:00:00.000Z",
}


def test_a_reply_a_launch_and_an_operation_are_told_apart() -> None:
    assert wire.engine_message(json.dumps(WI).encode()) == {
        "type": "reply",
        "wfid": "w-1",
        "workitem": WI,
    }
    launch = wire.engine_message(b'{"process": "ci/build", "fields": {"p": 1}}')
    assert launch == {"type": "launch", "process": "ci/build", "fields": {"p": 1}}
    assert wire.engine_message({"type": "cancel", "wfid": "w-1"})["type"] == "cancel"
    wrapped = wire.engine_message({"type": "reply", "wfid": "w-1", "workitem": WI, "id": "m1"})
    assert wrapped["type"] == "reply" and wrapped["id"] == "m1"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not UTF-8 text"),
        (b"{", "not JSON: Expecting property name"),
        (b"[1, 2]", "not a JSON object but list"),
        (b'{"hello": 1}', "neither a reply (no 'fei'), a launch item"),
        (b'{"type": "cancel"}', "invalid message: at (top): 'wfid' is a required property"),
        (b'{"type": "explode", "wfid": "w"}', "invalid message: at type: 'explode' is not one of"),
        (
            b'{"type": "alive", "wfid": "w", "eid": "e", "lease": 0}',
            "invalid message: at lease: 0 is less than or equal to the minimum of 0",
        ),
        (b'{"definition": "x", "process": "y"}', "invalid launch: at (top)"),
        (b'{"process": "p", "wfid": "../etc"}', "invalid launch: at wfid: '../etc' does not match"),
        (
            b'{"type": "reply", "wfid": "w", "workitem": "not a workitem"}',
            "a reply's workitem is not a JSON object but str",
        ),
    ],
)
def test_malformed_bodies_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(wire.Malformed) as exc:
        wire.engine_message(body)
    assert exc.value.reason.startswith(reason), exc.value.reason
    assert exc.value.fei is None


def test_a_malformed_reply_still_names_its_step() -> None:
    bad = dict(WI, fields="oops")
    with pytest.raises(wire.Malformed) as exc:
        wire.engine_message(json.dumps(bad))
    assert exc.value.reason == "invalid workitem: at fields: 'oops' is not of type 'object'"
    assert exc.value.fei == WI["fei"]
    nameless = dict(WI, fei={"wfid": "w-1"})
    with pytest.raises(wire.Malformed) as exc:
        wire.engine_message(json.dumps(nameless))
    assert exc.value.fei is None  # no subid: no step to fail


SAMPLES = [
    ("workitem", WI, True),
    ("workitem", dict(WI, forget="yes"), False),
    ("workitem", dict(WI, error={"message": "m", "class": "C", "traceback": None}), True),
    ("workitem", dict(WI, error=5), False),
    ("workitem", {k: v for k, v in WI.items() if k != "participant_name"}, False),
    ("launch", {"definition": "name: x"}, True),
    ("launch", {"definition": ""}, False),
    ("launch", {"process": "p", "variables": []}, False),
    ("message", {"type": "register", "pattern": "build_.*", "queue": "q", "regex": True}, True),
    ("message", {"type": "register", "queue": "q"}, False),
    ("message", {"type": "replay", "wfid": "w", "error_id": None, "fields": {"a": 1}}, True),
    ("message", {"type": "replay", "wfid": "w", "fields": []}, False),
    ("message", {"type": "started", "wfid": "w", "eid": "e", "lease": 2.5}, True),
    ("message", {"type": "started", "wfid": "w"}, False),
    ("cancel", {"type": "cancel", "fei": WI["fei"], "participant_name": "b"}, True),
    ("cancel", {"type": "cancel", "fei": {"wfid": "w"}, "participant_name": "b"}, False),
]


@pytest.mark.parametrize(("kind", "obj", "ok"), SAMPLES)
def test_the_compiled_and_the_walking_validator_agree(kind: str, obj: dict, ok: bool) -> None:
    """The hot path accepts with fastjsonschema; rejections are explained by
    jsonschema. Both read the same schema file and must agree."""
    walking = not list(wire._validator(kind).iter_errors(obj))
    assert walking is ok
    fast = wire._fast(kind)
    if fast is not None:
        import fastjsonschema

        try:
            fast(obj)
            compiled = True
        except fastjsonschema.JsonSchemaException:
            compiled = False
        assert compiled is ok
    if ok:
        wire.validate(kind, obj)
    else:
        with pytest.raises(wire.Malformed, match=f"invalid {kind}: at "):
            wire.validate(kind, obj)


def test_dead_letters_keep_the_body_exactly() -> None:
    text = wire.deadletter(
        '{"a": "é"}',
        "bad",
        "boss.engine",
        by="engine x",
        headers={"n": 1, "nested": {"dropped": True}},
    )
    wire.validate("deadletter", text)
    assert text["encoding"] == "text" and wire.deadletter_body(text) == '{"a": "é"}'.encode()
    assert text["headers"] == {"n": 1}
    binary = wire.deadletter(b"\xff\x00\x01", "not UTF-8", "q", by="p")
    assert binary["encoding"] == "base64"
    assert wire.deadletter_body(binary) == b"\xff\x00\x01"
    assert len(binary["id"]) == 32 and binary["at"].endswith("Z")
