"""What legacy BOSS clients send, through ``engine.wire.engine_message`` (the
path ``EngineService.handle`` takes): python-ruote-amqp's ``Launcher`` and
``Participant`` (MeeGoIntegration/python-ruote-amqp), ruote-amqp's
``Receiver`` keys as BOSS::Receiver takes them, and ruote 2.1 feis. Each
body is built the way the reference client builds it."""

from __future__ import annotations

import json
import traceback
from typing import Any

import pytest

from engine import wire

DEFINITION = "name: hello\nsteps:\n  - greet\n"

FEI = {"wfid": "w-1", "expid": "0_1", "subid": "0_1-3", "engine_id": "boss"}

#: a workitem as the engine dispatches it
WI: dict[str, Any] = {
    "fei": FEI,
    "fields": {"a": 1, "params": {"x": 1}},
    "participant_name": "build",
    "wf_name": "p",
    "wf_revision": None,
    "dispatched_at": "2026-11-22T10:00:00.000Z",
}


def launcher_body(process: str, fields: Any = None, variables: Any = None) -> bytes:
    """What ``RuoteAMQP.launcher.Launcher.launch`` publishes."""
    return json.dumps({"definition": process, "fields": fields, "variables": variables}).encode()


# -- 1. python-ruote-amqp's Launcher: nulls mean absent ----------------------------------


def test_a_launcher_item_without_fields_or_variables_is_accepted() -> None:
    msg = wire.engine_message(launcher_body(DEFINITION))
    assert msg == {"type": "launch", "definition": DEFINITION}


def test_robogrator_launches_with_fields_and_null_variables() -> None:
    # robogrator.py: self.launcher.launch(process, kwargs)
    fields = {"project": "Mer:Tools", "ev": {"type": "OBS_REPO_PUBLISHED"}}
    msg = wire.engine_message(launcher_body(DEFINITION, fields))
    assert msg == {"type": "launch", "definition": DEFINITION, "fields": fields}


def test_a_null_wfid_or_process_is_absent_too() -> None:
    body = json.dumps({"process": "ci/build", "definition": None, "wfid": None}).encode()
    assert wire.engine_message(body) == {"type": "launch", "process": "ci/build"}


def test_a_launcher_item_with_no_definition_is_still_dead_lettered() -> None:
    with pytest.raises(wire.Malformed) as exc:
        wire.engine_message(launcher_body(None))  # type: ignore[arg-type]
    assert exc.value.reason.startswith("invalid launch: at definition: None is not of type")


def test_a_launcher_item_with_bad_fields_is_still_dead_lettered() -> None:
    with pytest.raises(wire.Malformed) as exc:
        wire.engine_message(launcher_body(DEFINITION, [1, 2]))
    assert exc.value.reason.startswith("invalid launch: at fields:"), exc.value.reason


# -- 2. BOSS::Receiver (ruote-amqp Receiver) launch keys --------------------------------


def test_receiver_launch_keys_are_ours() -> None:
    body = json.dumps(
        {
            "process_definition": DEFINITION,
            "workitem_fields": {"who": "world"},
            "process_variables": {"v": 1},
        }
    ).encode()
    assert wire.engine_message(body) == {
        "type": "launch",
        "definition": DEFINITION,
        "fields": {"who": "world"},
        "variables": {"v": 1},
    }


def test_receiver_keys_mix_with_ours_and_null_ones_are_absent() -> None:
    body = json.dumps(
        {"process_definition": DEFINITION, "fields": {"a": 1}, "workitem_fields": None}
    ).encode()
    assert wire.engine_message(body) == {
        "type": "launch",
        "definition": DEFINITION,
        "fields": {"a": 1},
    }


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (
            {"process_definition": DEFINITION, "definition": "name: other\n"},
            "invalid launch: both 'process_definition' and 'definition'",
        ),
        (
            {"process_definition": DEFINITION, "workitem_fields": "oops"},
            "invalid launch: at fields: 'oops' is not of type 'object'",
        ),
        ({"process_definition": 3}, "invalid launch: at definition: 3 is not of type"),
        ({"process_definition": DEFINITION, "process": "ci/x"}, "invalid launch: at (top)"),
    ],
)
def test_a_malformed_receiver_launch_is_still_dead_lettered(
    item: dict[str, Any], reason: str
) -> None:
    with pytest.raises(wire.Malformed) as exc:
        wire.engine_message(json.dumps(item).encode())
    assert exc.value.reason.startswith(reason), exc.value.reason
    assert exc.value.fei is None


def test_the_same_definition_under_both_names_is_one() -> None:
    body = json.dumps({"process_definition": DEFINITION, "definition": DEFINITION}).encode()
    assert wire.engine_message(body) == {"type": "launch", "definition": DEFINITION}


# -- 3. a ruote 2.1 fei in a reply --------------------------------------------------------


def ruote21(fei: dict[str, Any]) -> dict[str, Any]:
    """A ruote 2.1 fei: ``engine_id``, ``wfid``, ``expid``, ``sub_wfid``."""
    return {
        "engine_id": fei.get("engine_id", "engine"),
        "wfid": fei["wfid"],
        "expid": fei["expid"],
        "sub_wfid": fei["subid"],
    }


def test_a_ruote_21_fei_is_normalised_to_ours() -> None:
    # python-ruote-amqp's Participant.reply_to_engine: json.dumps(workitem.to_h())
    reply = dict(WI, fei=ruote21(FEI))
    msg = wire.engine_message(json.dumps(reply).encode())
    assert msg["type"] == "reply" and msg["wfid"] == "w-1"
    assert msg["workitem"]["fei"] == FEI
    assert msg["workitem"] == WI


def test_a_fei_with_both_subid_and_sub_wfid_keeps_subid() -> None:
    reply = dict(WI, fei=dict(FEI, sub_wfid="old"))
    assert wire.engine_message(json.dumps(reply).encode())["workitem"]["fei"] == FEI


def test_a_ruote_21_fei_inside_a_wrapped_reply_is_normalised() -> None:
    body = {"type": "reply", "wfid": "w-1", "workitem": dict(WI, fei=ruote21(FEI)), "id": "m"}
    msg = wire.engine_message(json.dumps(body).encode())
    assert msg["workitem"]["fei"] == FEI and msg["id"] == "m"


def test_a_malformed_reply_with_a_ruote_21_fei_still_names_its_step() -> None:
    reply = dict(WI, fei=ruote21(FEI), fields="oops")
    with pytest.raises(wire.Malformed) as exc:
        wire.engine_message(json.dumps(reply).encode())
    assert exc.value.reason.startswith("invalid workitem: at fields")
    assert exc.value.fei == FEI


def test_a_ruote_21_fei_of_a_main_process_names_no_step() -> None:
    # ruote 2.1 leaves sub_wfid null outside subprocesses: no dispatch is named
    reply = dict(WI, fei=dict(ruote21(FEI), sub_wfid=None))
    with pytest.raises(wire.Malformed) as exc:
        wire.engine_message(json.dumps(reply).encode())
    assert exc.value.reason == "invalid workitem: at fei: 'subid' is a required property"
    assert exc.value.fei is None


# -- 4. python-ruote-amqp's error trace ----------------------------------------------------


def ruby_backtrace(exc: BaseException) -> list[str]:
    """python-ruote-amqp's ``format_ruby_backtrace(traceback.extract_tb(...))``."""
    return [
        "%s:%d: in `%s %s'" % (f.filename, f.lineno, f.name, f.line)  # noqa: UP031
        for f in traceback.extract_tb(exc.__traceback__)
    ]


def failed_reply() -> tuple[dict[str, Any], list[str]]:
    """A reply as python-ruote-amqp's Participant sends it when consume() raised."""
    try:
        raise RuntimeError("osc said no")
    except RuntimeError as exc:
        trace = ruby_backtrace(exc)
        error = {
            "class": "Ruote::Amqp::RemoteError",
            "message": f"{exc.__class__.__name__}: {exc}",
            "trace": trace,
        }
    return dict(WI, error=error), trace


def test_an_error_trace_becomes_its_traceback() -> None:
    reply, trace = failed_reply()
    msg = wire.engine_message(json.dumps(reply).encode())
    error = msg["workitem"]["error"]
    assert error == {
        "class": "Ruote::Amqp::RemoteError",
        "message": "RuntimeError: osc said no",
        "traceback": "\n".join(trace),
    }
    assert 'in `failed_reply raise RuntimeError("osc said no")\'' in error["traceback"]
    assert reply["error"]["trace"] == trace  # the body read is left as it was


def test_a_top_level_trace_beside_an_error_is_its_traceback() -> None:
    # Workitem.trace = [...] and Workitem.error = {...}
    reply = dict(WI, error={"class": "X", "message": "m"}, trace=["a.py:1: in `f x'"])
    workitem = wire.engine_message(json.dumps(reply).encode())["workitem"]
    assert workitem["error"] == {"class": "X", "message": "m", "traceback": "a.py:1: in `f x'"}
    assert "trace" not in workitem


def test_a_string_error_with_a_trace_keeps_both() -> None:
    reply = dict(WI, error="it broke", trace=["a.py:1: in `f x'", "b.py:2: in `g y'"])
    workitem = wire.engine_message(json.dumps(reply).encode())["workitem"]
    assert workitem["error"] == {
        "message": "it broke",
        "traceback": "a.py:1: in `f x'\nb.py:2: in `g y'",
    }


def test_our_own_traceback_wins_over_a_trace() -> None:
    reply = dict(WI, error={"message": "m", "traceback": "ours", "trace": ["theirs"]})
    workitem = wire.engine_message(json.dumps(reply).encode())["workitem"]
    assert workitem["error"] == {"message": "m", "traceback": "ours"}


def test_a_trace_without_an_error_is_left_alone() -> None:
    reply = dict(WI, trace=["a.py:1: in `f x'"])
    assert wire.engine_message(json.dumps(reply).encode())["workitem"] == reply


def test_a_malformed_legacy_error_is_still_dead_lettered_with_its_step() -> None:
    reply = dict(WI, fei=ruote21(FEI), error={"message": 3, "trace": ["x"]})
    with pytest.raises(wire.Malformed) as exc:
        wire.engine_message(json.dumps(reply).encode())
    assert exc.value.reason.startswith("invalid workitem: at error/message: 3 is not of type")
    assert exc.value.fei == FEI
