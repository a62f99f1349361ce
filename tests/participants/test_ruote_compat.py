"""python-ruote-amqp's workitem API (``RuoteAMQP``), as BOSS's participants use it.

The real BOSS standard workflow is read in place from ``../shared/compat``
(``$BOSS_COMPAT_DIR`` if set); the tests that need it skip when it is absent.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import participants
from participants.testing import make_workitem, run_participant
from RuoteAMQP import FlowExpressionId, Launcher, Participant, Workitem
from RuoteAMQP import workitem as ruote_workitem

ROOT = Path(__file__).resolve().parents[2]


def _find_compat() -> Path:
    env = os.environ.get("BOSS_COMPAT_DIR")
    if env:
        return Path(env)
    for base in (ROOT, *ROOT.parents):
        candidate = base / "shared" / "compat"
        if candidate.is_dir():
            return candidate
    return Path("/work/shared/compat")


@pytest.fixture(scope="module")
def compat_dir() -> Path:
    path = _find_compat() / "boss-standard-workflow"
    if not path.is_dir():
        pytest.skip(f"the BOSS standard workflow is not at {path} (set BOSS_COMPAT_DIR)")
    return path


def wi_data(**fields: Any) -> dict[str, Any]:
    return make_workitem("check", fields, params={"action": "build", "n": {"deep": 1}})


# -- the workitem -------------------------------------------------------------------------


def test_same_class_as_the_runtime_hands_out() -> None:
    assert Workitem is participants.Workitem is ruote_workitem.Workitem
    assert ruote_workitem.FlowExpressionId is FlowExpressionId


def test_construction_from_json_text_and_dict() -> None:
    data = wi_data(project="p")
    from_text = Workitem(json.dumps(data))
    from_bytes = Workitem(json.dumps(data).encode())
    from_dict = Workitem(copy.deepcopy(data))
    for wi in (from_text, from_bytes, from_dict):
        assert wi.fields.project == "p"
        assert wi.to_h() == data
    with pytest.raises(ValueError):
        Workitem("not json")


def test_fields_attribute_access_nested_and_missing() -> None:
    wi = Workitem(wi_data(ev={"actions": [{"type": "submit"}], "who": "me"}, msg=[]))
    assert wi.fields.ev.actions == [{"type": "submit"}]
    assert wi.fields.ev.who == "me"
    assert wi.fields.ev["who"] == "me"
    assert list(wi.fields.ev) == ["actions", "who"]
    assert wi.fields.missing is None
    assert wi.fields.ev.missing is None
    assert getattr(wi.fields, "project", None) is None
    assert getattr(wi.fields, "project", "dflt") is None  # as python-ruote-amqp: None
    assert wi.fields.ev.as_dict() is wi.fields["ev"]
    assert wi.fields.as_dict() is wi.fields
    assert isinstance(wi.fields, dict)
    assert wi.fields["ev"]["who"] == "me"  # today's API


def test_fields_assignment_creates_keys_and_nested_changes_stick() -> None:
    wi = Workitem(wi_data(msg=[]))
    wi.fields.msg.append("one")
    wi.fields.status = "FAILED"
    wi.fields.qa = {}
    wi.fields.qa.results = {}
    wi.fields.qa.results.report_url = "http://qa/1"
    wi.fields.copy_of_qa = wi.fields.qa  # a proxy is stored as its dict
    wi.set_field("build_trial.project", "trial")
    assert wi.to_h()["fields"]["msg"] == ["one"]
    assert wi.to_h()["fields"]["status"] == "FAILED"
    assert wi.to_h()["fields"]["qa"] == {"results": {"report_url": "http://qa/1"}}
    assert wi.fields.build_trial.project == "trial"
    assert wi.lookup("qa.results.report_url") == "http://qa/1"
    assert wi.lf("qa.results.report_url") == "http://qa/1"
    json.loads(wi.dump())  # still plain JSON
    del wi.fields.status
    assert "status" not in wi.fields


def test_params_attribute_access() -> None:
    wi = Workitem(wi_data())
    assert wi.params.action == "build"
    assert wi.params["action"] == "build"
    assert wi.params.get("action") == "build"
    assert wi.params.n.deep == 1
    assert wi.params.nothing is None
    assert wi.params.as_dict() == {"action": "build", "n": {"deep": 1}}
    bare = Workitem({"fei": {}, "fields": {}})
    assert bare.params.action is None and bare.params == {}


def test_result_is_the_result_field() -> None:
    wi = Workitem(wi_data())
    assert wi.result is None
    wi.result = True
    assert wi.fields["__result__"] is True
    assert wi.fields.__result__ is True


def test_fei() -> None:
    wi = Workitem(wi_data())
    fei = wi.fei
    assert isinstance(fei, FlowExpressionId)
    assert fei.wfid == wi.wfid == "20270115-0000000000aa"
    assert fei.expid == "0_0" and fei.subid == "0_0-1" and fei.engine_id == "boss"
    assert fei.sub_wfid == "0_0-1"  # ruote 2.1's name
    assert fei["wfid"] == fei.wfid and fei == wi.to_h()["fei"]
    assert wi.sid == "0_0!0_0-1!20270115-0000000000aa"
    assert FlowExpressionId({"expid": "0_5_7"}).child_id == 7
    parent = FlowExpressionId({"wfid": "w", "expid": "0_5", "engine_id": "e"})
    assert parent.direct_child({"wfid": "w", "expid": "0_5_7", "engine_id": "e"})
    assert not parent.direct_child({"wfid": "w", "expid": "0_6_7", "engine_id": "e"})


def test_envelope_helpers() -> None:
    wi = Workitem(wi_data())
    assert wi.participant_name == "check"
    assert wi.wf_name == "test"
    assert wi.dispatched_at == "2027-01-15T08:00:00.000Z"
    assert json.loads(wi.dump()) == wi.to_h()
    assert wi.dump() == json.dumps(wi.to_h(), sort_keys=True, indent=4)
    assert wi.as_dict() is wi.to_h() is wi.to_dict()
    assert type(wi.to_h()["fields"]) is dict and type(wi.to_h()["fields"]["params"]) is dict
    twin = wi.dup()
    twin.fields.x = 1
    assert wi.fields.x is None and twin.fei == wi.fei
    assert wi.timed_out is None


def test_forget_error_and_cancel() -> None:
    wi = Workitem(wi_data())
    assert wi.forget is False
    wi.forget = True
    assert wi.forget is True and wi.to_h()["forget"] is True
    wi.forget = False
    assert "forget" not in wi.to_h()
    assert wi.error is None
    wi.error = {"class": "Ruote::Amqp::RemoteError", "message": "no"}
    assert wi.to_h()["error"]["message"] == "no"
    wi.error = None
    assert "error" not in wi.to_h()
    assert wi.is_cancel is False
    wi.cancelled = True
    assert wi.is_cancel is True
    assert Workitem({"fei": {}, "fields": {}, "cancel": True}).is_cancel


# -- through the runtime ------------------------------------------------------------------


class ForgetfulHandler:
    def handle_wi(self, wid: Workitem) -> None:
        wid.fields.msg = ["queued"]
        wid.result = True
        wid.error = None


class FailingHandler:
    def handle_wi(self, wid: Workitem) -> None:
        wid.fields.msg = []
        wid.fields.msg.append("about to fail")
        raise RuntimeError("Missing mandatory field 'ev.actions'")


def test_attribute_changes_reach_the_reply() -> None:
    reply = run_participant(ForgetfulHandler(), make_workitem("p", {"ev": {"id": 1}}))
    assert reply.replied and reply.error is None
    assert reply.result is True
    assert reply.fields["msg"] == ["queued"]
    assert reply.reply is not None and reply.reply["fields"]["ev"] == {"id": 1}


def test_an_exception_is_the_reply_error() -> None:
    reply = run_participant(FailingHandler(), make_workitem("p"))
    assert reply.error is not None and reply.error["class"] == "RuntimeError"


class Consumer(Participant):
    def consume(self) -> None:
        assert self.workitem is not None
        self.workitem.fields.seen = self.workitem.params.action
        self.workitem.result = True


def test_participant_base_class_consume() -> None:
    reply = run_participant(Consumer("q"), make_workitem("q", params={"action": "go"}))
    assert reply.result is True and reply.fields["seen"] == "go"
    with pytest.raises(RuntimeError, match="not run by the participant runtime"):
        Consumer("q").reply_to_engine()


def test_reply_to_engine_replies_through_the_runtimes_send_to_engine() -> None:
    # the runtime gives every handler send_to_engine (tests/participants/
    # test_skynet_compat.py drives it for real); reply_to_engine goes through it
    p = Consumer("q")
    sent: list[Any] = []
    p.send_to_engine = sent.append  # type: ignore[attr-defined]
    held = Workitem(make_workitem("q"))
    p.reply_to_engine(held)
    assert sent == [held]
    with pytest.raises(ValueError, match="no workitem"):
        p.reply_to_engine()


# -- the launcher -------------------------------------------------------------------------


class FakePublisher:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, msg: dict[str, Any]) -> None:
        self.sent.append(msg)


def test_launcher_url_and_launch_item() -> None:
    pub = FakePublisher()
    launcher = Launcher(
        amqp_host="mq.example",
        amqp_user="boss",
        amqp_pass="p@ss",
        amqp_vhost="boss",
        publisher=pub,
    )
    assert launcher.broker_url == "amqp://boss:p%40ss@mq.example:5672/boss"
    wfid = launcher.launch("name: x\nsequence: []\n", fields={"project": "p"})
    (item,) = pub.sent
    assert item["definition"].startswith("name: x")
    assert item["fields"] == {"project": "p"} and item["variables"] == {}
    assert item["wfid"] == wfid
    from engine.wire import validate

    validate("launch", item)
    with pytest.raises(TypeError):
        launcher.launch("x", fields=["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        launcher.launch("x", variables="nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Launcher(conn=object())


# -- the real BOSS code -------------------------------------------------------------------


@pytest.fixture
def boss_modules(compat_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    modules = compat_dir / "modules"
    monkeypatch.syspath_prepend(str(modules))
    for name in [n for n in sys.modules if n == "boss" or n.startswith("boss.")]:
        monkeypatch.delitem(sys.modules, name)
    return modules


def test_boss_checks_module(boss_modules: Path) -> None:
    from boss.checks import CheckActionProcessor  # type: ignore[import-not-found]

    class Checker:
        @CheckActionProcessor("check_spec")
        def check(self, action: dict[str, Any], wid: Workitem) -> tuple[bool, str]:
            return action["sourcepackage"] != "bad", "spec is broken"

    checker = Checker()
    action = {"type": "submit", "sourcepackage": "good", "targetproject": "T"}
    wid = Workitem(wi_data(ev={"actions": [action]}))
    assert checker.check(action, wid) == (True, "spec is broken")
    assert wid.fields["msg"] == ["INFO check_spec (good): spec is broken"]

    bad = dict(action, sourcepackage="bad")
    assert checker.check(bad, wid) == (False, "spec is broken")
    assert wid.fields.msg[-1] == "FAILED check_spec (bad): spec is broken"

    wid.fields.package_conf = {"bad": {"checks": {"check_spec": "warn"}}}
    assert checker.check(bad, wid) == (True, "spec is broken")
    assert wid.fields.msg[-1] == "WARNING check_spec (bad) failed: spec is broken"

    wid.fields.package_conf.bad.checks.check_spec = "skip"
    assert checker.check(bad, wid) == (True, None)
    assert wid.fields.msg[-1] == "SKIPPED check_spec (bad)"

    assert checker.check({"type": "delete"}, wid)[0] is True
    with pytest.raises(TypeError):
        checker.check(action, {"not": "a workitem"})


def load_participant(compat_dir: Path, name: str) -> Any:
    path = compat_dir / "participants" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"boss_compat_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ParticipantHandler


def test_real_check_multiple_destinations(compat_dir: Path) -> None:
    handler = load_participant(compat_dir, "check_multiple_destinations")
    one = [
        {"type": "submit", "targetproject": "A", "deleteproject": None},
        {"type": "submit", "targetproject": "A", "deleteproject": None},
    ]
    reply = run_participant(
        handler(), make_workitem("check_multiple_destinations", {"ev": {"actions": one}})
    )
    assert reply.error is None and reply.result is True
    assert reply.fields["msg"] == []

    two = [*one, {"type": "delete", "targetproject": None, "deleteproject": "B"}]
    reply = run_participant(
        handler(),
        make_workitem("check_multiple_destinations", {"ev": {"actions": two}, "msg": ["earlier"]}),
    )
    assert reply.error is None and reply.result is False
    assert reply.fields["msg"] == ["earlier", "Multiple destination projects in request"]

    reply = run_participant(handler(), make_workitem("check_multiple_destinations", {"ev": {}}))
    assert reply.error is not None and reply.error["class"] == "RuntimeError"
    assert "ev.actions" in reply.error["message"]


def test_a_ruote_cancel_item_on_the_work_queue_drops_the_workitem() -> None:
    """A registration with ``ruote`` also gets ruote's cancel item on its
    queue; the runtime takes it as our cancel: the workitem that comes
    after it is dropped, with no reply and no dead letter."""
    from participants.testing import ParticipantTester

    calls: list[str] = []

    class Handler:
        def handle_wi(self, wi: Workitem) -> None:
            calls.append(wi.fei.subid)

    data = make_workitem("build", {"x": 1})
    cancel = {"cancel": True, "fei": data["fei"], "flavour": "cancel"}
    with ParticipantTester(Handler()) as tester:
        first = tester.handle(json.dumps(cancel).encode())
        assert not first.replied and not first.deadlettered
        second = tester.handle(data)
    assert calls == []
    assert not second.replied and not second.deadlettered
