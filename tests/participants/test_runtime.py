"""The participant runtime end to end: a real ``boss-participant`` process
against RabbitMQ and the embedded Valkey, the test playing the engine."""

from __future__ import annotations

import configparser
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.wire import engine_message, validate
from tests.participants.conftest import ROOT, Peer, Setup, lines, unacked, wait_for

INSTANCE = re.compile(r"^[^:]+:(\d+):[0-9a-f]{6}$")


def test_reply_changes_fields_and_keeps_params(setup: Setup, peer: Peer, spawn) -> None:
    proc = spawn(setup.ini())
    replies = peer.declare(f"replies-{setup.tag}")
    wi = setup.workitem(params={"target": "x86_64"})
    peer.publish(setup.queue, wi, reply_to=replies)
    [reply] = peer.collect(replies)
    validate("workitem", reply)
    assert reply["fei"] == wi["fei"]
    assert reply["participant_name"] == "tester"
    fields = reply["fields"]
    assert fields["params"] == {"target": "x86_64"}
    assert fields["__result__"] is True  # wi.result
    assert fields["handled_by"] == "tester"  # the handler read its own config
    assert fields["seen"] == {"project": "Mer:Tools", "target": "x86_64"}  # fields, then params
    assert fields["ev"] == {"id": 42, "checked": True}
    assert "error" not in reply
    assert reply["started_at"].endswith("Z")
    match = INSTANCE.match(reply["instance"])
    assert match and int(match.group(1)) == proc.pid

    # forget: done, never answered; no reply_to: the reply goes to engine_queue
    forgotten = setup.workitem(forget=True)
    plain = setup.workitem()
    peer.publish(setup.queue, forgotten, reply_to=replies)
    peer.publish(setup.queue, plain)
    [reply] = peer.collect(setup.engine)
    assert reply["fei"]["subid"] == plain["fei"]["subid"]
    assert setup.runs() == [wi["fei"]["subid"], forgotten["fei"]["subid"], plain["fei"]["subid"]]
    assert peer.get(replies) is None  # taken in order: the forget's reply would be there


def test_handler_error_becomes_the_replys_error(setup: Setup, peer: Peer, spawn) -> None:
    spawn(setup.ini())
    wi = setup.workitem(params={"raise": "the build broke"})
    peer.publish(setup.queue, wi, reply_to=setup.engine)
    [reply] = peer.collect(setup.engine)
    validate("workitem", reply)
    error = reply["error"]
    assert error["class"] == "ValueError"
    assert error["message"] == "the build broke"
    assert "Traceback" in error["traceback"] and "handle_wi" in error["traceback"]
    assert reply["fields"]["params"] == {"raise": "the build broke"}
    assert engine_message(reply)["type"] == "reply"


def test_plain_handler_class_from_a_module(setup: Setup, peer: Peer, spawn) -> None:
    spawn(setup.ini(participant={"code": "tests.participants.fixtures.handlers", "class": "Plain"}))
    wi = setup.workitem()
    peer.publish(setup.queue, wi, reply_to=setup.engine)
    [reply] = peer.collect(setup.engine)
    assert reply["fields"]["__result__"] == "plain"


def test_malformed_workitems_are_dead_lettered(setup: Setup, peer: Peer, spawn) -> None:
    proc = spawn(setup.ini())
    bad_schema = setup.workitem()
    bad_schema["fields"] = 3
    peer.publish(setup.queue, b"{not json", reply_to=setup.engine)
    peer.publish(setup.queue, bad_schema, reply_to=setup.engine)
    good = setup.workitem()
    peer.publish(setup.queue, good, reply_to=setup.engine)

    [reply] = peer.collect(setup.engine)
    assert reply["fei"] == good["fei"]
    letters = peer.collect(setup.deadletters, 2)
    for letter in letters:
        validate("deadletter", letter)
        assert letter["queue"] == setup.queue
        assert letter["by"].startswith("participant tester ")
        assert letter["encoding"] == "text"
    assert letters[0]["reason"].startswith("not JSON")
    assert letters[0]["body"] == "{not json"
    assert letters[1]["reason"] == "invalid workitem: at fields: 3 is not of type 'object'"
    assert letters[1]["body"] and '"fields": 3' in letters[1]["body"]
    assert setup.runs() == [good["fei"]["subid"]]
    assert proc.alive()


def test_register_at_start_up(setup: Setup, peer: Peer, spawn) -> None:
    spawn(setup.ini(participant={"register": "true", "regexp": "^test(er|ing)$"}))
    [notice] = peer.collect(setup.engine)
    assert notice == {
        "type": "register",
        "pattern": "^test(er|ing)$",
        "queue": setup.queue,
        "regex": True,
    }
    assert engine_message(notice)["type"] == "register"


def test_sigterm_mid_step_replies_then_stops(setup: Setup, peer: Peer, spawn) -> None:
    proc = spawn(setup.ini(greeting="from-my-section"))
    wi = setup.workitem(params={"sleep": 1})
    peer.publish(setup.queue, wi, reply_to=setup.engine)
    wait_for(setup.report(f"running-{wi['fei']['subid']}").exists, 15, "the handler to start")
    proc.signal(signal.SIGTERM)
    assert proc.wait(15) == 0, proc.text()
    [reply] = peer.collect(setup.engine)
    assert reply["fei"] == wi["fei"] and "error" not in reply
    assert lines(setup.report("lifecycle")) == ["start from-my-section", "stop"]
    assert peer.count(setup.queue) == 0
    assert unacked(setup.broker_url, setup.queue) == 0


def test_second_signal_exits_at_once(setup: Setup, peer: Peer, spawn) -> None:
    proc = spawn(setup.ini())
    wi = setup.workitem(params={"sleep": 60})
    peer.publish(setup.queue, wi, reply_to=setup.engine)
    wait_for(setup.report(f"running-{wi['fei']['subid']}").exists, 15, "the handler to start")
    proc.signal(signal.SIGTERM)
    proc.wait_log("stopping: finishing")
    proc.signal(signal.SIGINT)
    assert proc.wait(5) == 128 + signal.SIGINT
    assert peer.get(setup.engine) is None
    assert lines(setup.report("lifecycle")) == ["start hello"]


# -- configuration errors: no broker needed ------------------------------------------------

GOOD_CODE = "class ParticipantHandler:\n    def handle_wi(self, wi):\n        pass\n"


@pytest.mark.parametrize(
    ("ini", "code", "expected"),
    [
        ("[boss]\n", None, "no [participant] section"),
        ("[participant]\nqueue = q\n", None, "[participant] name is missing"),
        ("[participant]\nname = p\n", None, "[participant] code is missing"),
        (
            "[participant]\nname = p\ncode = nowhere.py\n",
            None,
            "code = {tmp}/nowhere.py: no such file",
        ),
        (
            "[participant]\nname = p\ncode = no.such.module\n",
            None,
            "code = no.such.module: no such file or module",
        ),
        (
            "[participant]\nname = p\ncode = h.py\n",
            "class Other:\n    pass\n",
            "class = ParticipantHandler: {tmp}/h.py has no such class",
        ),
        (
            "[participant]\nname = p\ncode = h.py\nclass = Other\n",
            "class Other:\n    def handle(self, wi):\n        pass\n",
            "Other has no handle_wi(self, wi) method",
        ),
        (
            "[participant]\nname = p\ncode = h.py\n",
            "class ParticipantHandler:\n    def handle_wi(self):\n        pass\n",
            "ParticipantHandler.handle_wi must take (self, wi); it takes (self)",
        ),
        (
            "[participant]\nname = p\ncode = h.py\n",
            GOOD_CODE + "    def handle_cancel(self, wi, why):\n        pass\n",
            "ParticipantHandler.handle_cancel must take (self, wi); it takes (self, wi, why)",
        ),
        (
            "[participant]\nname = p\ncode = h.py\n",
            "def broken(:\n",
            "code = {tmp}/h.py: cannot load: SyntaxError",
        ),
        (
            "[participant]\nname = p\ncode = h.py\nregister = maybe\n",
            GOOD_CODE,
            "[participant] register = 'maybe': not a boolean",
        ),
        (
            "[participant]\nname = p\ncode = h.py\nlease = 0\n",
            GOOD_CODE,
            "[participant] lease = '0': must be greater than 0",
        ),
        (
            "[participant]\nname = p\ncode = h.py\n[boss]\nbroker = amqp://x\n",
            GOOD_CODE,
            "[boss] unknown configuration key 'broker'",
        ),
    ],
    ids=[
        "no-participant",
        "no-name",
        "no-code",
        "code-file-missing",
        "module-missing",
        "class-missing",
        "no-handle_wi",
        "handle_wi-signature",
        "handle_cancel-signature",
        "syntax-error",
        "bad-bool",
        "bad-lease",
        "bad-boss-key",
    ],
)
def test_config_errors(tmp_path: Path, ini: str, code: str | None, expected: str) -> None:
    cfg = tmp_path / "p.ini"
    cfg.write_text(ini, encoding="utf-8")
    if code is not None:
        (tmp_path / "h.py").write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "participants.runtime", str(cfg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"boss-participant: {cfg}: "), done.stderr
    assert expected.format(tmp=tmp_path) in done.stderr


def test_missing_config_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "participants.runtime", str(tmp_path / "absent.ini")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert done.returncode == 2
    absent = tmp_path / "absent.ini"
    assert done.stderr == f"boss-participant: {absent}: no such configuration file\n"


def test_echo_example(setup: Setup, peer: Peer, spawn, tmp_path: Path) -> None:
    """``participants/examples/echo.ini`` as shipped, pointed at the test's
    broker and queues, run with the ``boss-participant`` command."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "participants" / "examples" / "echo.ini", encoding="utf-8")
    parser["participant"]["code"] = str(ROOT / "participants" / "examples" / "echo.py")
    parser["participant"]["queue"] = setup.queue
    parser["boss"].update(
        {
            "broker_url": setup.broker_url,
            "engine_queue": setup.engine,
            "deadletter_queue": setup.deadletters,
        }
    )
    cfg = tmp_path / "echo.ini"
    with cfg.open("w", encoding="utf-8") as fh:
        parser.write(fh)
    command = Path(sys.executable).with_name("boss-participant")
    log = (tmp_path / "echo.log").open("wb")
    proc = subprocess.Popen([str(command), str(cfg)], stderr=log, cwd=tmp_path)
    try:
        [registered] = peer.collect(setup.engine)
        assert registered == {
            "type": "register",
            "pattern": "echo",
            "queue": setup.queue,
            "regex": False,
        }
        wi = setup.workitem(params={"message": "hi there"})
        plain = setup.workitem()
        peer.publish(setup.queue, wi, reply_to=setup.engine)
        peer.publish(setup.queue, plain, reply_to=setup.engine)
        first, second = peer.collect(setup.engine, 2)
        assert first["fields"]["msg"] == ["hi there"] and first["fields"]["__result__"] is True
        assert second["fields"]["msg"] == ["hello from echo"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        log.close()


@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_reply_to_a_missing_queue_is_logged(setup: Setup, peer: Peer, spawn) -> None:
    proc = spawn(setup.ini())
    wi = setup.workitem()
    peer.publish(setup.queue, wi, reply_to=f"nowhere-{setup.tag}")
    proc.wait_log(f"the broker returned a message for 'nowhere-{setup.tag}'")
    nxt = setup.workitem()
    peer.publish(setup.queue, nxt, reply_to=setup.engine)
    [reply] = peer.collect(setup.engine)
    assert reply["fei"] == nxt["fei"] and proc.alive()
