"""``participants.testing``: a handler run through the runtime's own code,
with no broker, on the example and standard participants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.wire import Malformed, validate
from participants import Participant, Workitem
from participants.examples.echo import ParticipantHandler as Echo
from participants.standard.eiffel_publish import ArtifactCreated
from participants.standard.notices import RequestNotice
from participants.testing import ParticipantTester, make_workitem, run_participant

ROOT = Path(__file__).resolve().parents[2]
ECHO_INI = ROOT / "participants" / "examples" / "echo.ini"


class Boom(Participant):
    def handle_wi(self, wi: Workitem) -> None:
        wi.fields["touched"] = True
        raise ValueError("no such package")


class Recorder(Participant):
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.lifecycle: list[str] = []
        self.cancels: list[str] = []

    def handle_lifecycle_control(self, ctrl: Any) -> None:
        super().handle_lifecycle_control(ctrl)
        self.lifecycle.append(ctrl.message)

    def handle_wi(self, wi: Workitem) -> None:
        self.seen.append(wi.fei["subid"])
        wi.fields["cancelled_seen"] = wi.cancelled

    def handle_cancel(self, wi: Workitem) -> None:
        self.cancels.append(wi.fei["subid"])


def test_make_workitem_is_what_the_engine_sends() -> None:
    wi = make_workitem("echo", {"project": "p"}, params={"message": "hi"}, expid="0_2")
    validate("workitem", wi)
    assert wi["fei"] == {
        "wfid": "20270115-0000000000aa",
        "expid": "0_2",
        "subid": "0_2-1",
        "engine_id": "boss",
    }
    assert wi["participant_name"] == "echo"
    assert wi["fields"] == {"project": "p", "params": {"message": "hi"}}
    assert "forget" not in wi
    assert make_workitem(forget=True)["forget"] is True


def test_make_workitem_refuses_what_the_schema_refuses() -> None:
    with pytest.raises(Malformed):
        make_workitem("")


def test_echo_with_its_ini() -> None:
    with ParticipantTester(Echo(), ECHO_INI) as tester:
        reply = tester.handle(make_workitem("echo"))
        again = tester.handle(make_workitem("echo", params={"message": "hi"}, subid="0_0-2"))
    assert reply.replied and not reply.forgotten and reply.error is None
    assert reply.reply_to == "boss_engine"
    assert reply.fields["msg"] == ["hello from echo"]
    assert reply.result is True
    assert reply.reply is not None
    assert reply.reply["fei"]["subid"] == "0_0-1"
    assert reply.reply["participant_name"] == "echo"
    assert {"started_at", "instance"} <= set(reply.reply)
    validate("workitem", reply.reply)
    assert again.fields["msg"] == ["hi"]


def test_echo_with_sections_as_a_mapping() -> None:
    reply = run_participant(Echo(), make_workitem("echo"), {"echo": {"greeting": "hey"}})
    assert reply.fields["msg"] == ["hey"]


def test_an_exception_becomes_the_reply_error() -> None:
    reply = run_participant(Boom(), make_workitem("boom"))
    assert reply.replied
    assert reply.error is not None
    assert reply.error["class"] == "ValueError"
    assert reply.error["message"] == "no such package"
    assert "Traceback" in reply.error["traceback"]
    assert reply.fields["touched"] is True  # the workitem as the handler left it


def test_forget_is_done_without_a_reply() -> None:
    handler = Recorder()
    reply = run_participant(handler, make_workitem("rec", forget=True))
    assert reply.forgotten and not reply.replied and reply.reply is None
    assert handler.seen == ["0_0-1"]
    assert handler.lifecycle == ["start", "stop"]


def test_a_second_delivery_gets_the_first_reply_and_does_not_run_again() -> None:
    handler = Recorder()
    with ParticipantTester(handler) as tester:
        first = tester.handle(make_workitem("rec"))
        second = tester.handle(make_workitem("rec"))
    assert handler.seen == ["0_0-1"]
    assert second.replied and second.workitem is None
    assert second.reply == first.reply


def test_a_cancelled_step_is_not_replied() -> None:
    handler = Recorder()
    with ParticipantTester(handler) as tester:
        reply = tester.handle(make_workitem("rec"), cancel=True)
    assert reply.cancelled and not reply.replied and not reply.forgotten


def test_a_malformed_workitem_is_deadlettered() -> None:
    handler = Recorder()
    with ParticipantTester(handler) as tester:
        reply = tester.handle(json.dumps({"fields": {}}).encode())
    assert reply.deadlettered and not reply.replied
    assert reply.deadletter is not None
    assert handler.seen == []


def test_request_notice_shapes_the_review() -> None:
    ev = {"reviewstate": "Accepted", "who": "alice", "comment": "ok"}
    reply = run_participant(RequestNotice(), make_workitem("request_notice_42", {"ev": ev}))
    assert reply.error is None and reply.result is True
    assert reply.fields["review"] == {"state": "accepted", "by": "alice", "comment": "ok"}
    assert reply.fields["notice"]["name"] == "request_notice_42"
    assert reply.fields["notice"]["wfid"] == "20270115-0000000000aa"


def test_eiffel_publisher_emits_before_replying() -> None:
    wi = make_workitem("artifact_created", params={"identity": "pkg:rpm/boss@1.0"})
    reply = run_participant(ArtifactCreated(), wi)
    assert reply.error is None
    [event] = reply.events
    assert event["meta"]["type"] == "EiffelArtifactCreatedEvent"
    assert reply.fields["artifact"] == event["meta"]["id"]
    assert {"type": "CONTEXT", "target": reply.workitem.activity_id} in event["links"]


def test_eiffel_publisher_without_its_required_param_fails_the_step() -> None:
    reply = run_participant(ArtifactCreated(), make_workitem("artifact_created"))
    assert reply.error is not None
    assert reply.error["message"] == "artifact_created: params.identity is required"
    assert reply.events == []
