"""The Python API (``Runtime`` in-process), the configuration reader,
debug logging, and giving up ("die") when the broker refuses the set-up."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import kombu
import pytest

from participants import LifecycleControl, Participant, Runtime, Workitem
from participants.config import load_config
from participants.lru import LRU
from tests.participants.conftest import Peer, Setup, lines


class Recorder(Participant):
    """A handler object given to ``Runtime`` directly."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.lifecycle: list[str] = []

    def handle_lifecycle_control(self, ctrl: LifecycleControl) -> None:
        super().handle_lifecycle_control(ctrl)
        self.lifecycle.append(ctrl.message)

    def handle_wi(self, wi: Workitem) -> None:
        self.seen.append(wi.fei["subid"])
        wi.result = {"in": "process"}


def test_runtime_in_process(setup: Setup, peer: Peer) -> None:
    handler = Recorder()
    runtime = Runtime(setup.ini(participant={"code": ""}), handler=handler)
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(runtime.run()), daemon=True)
    thread.start()
    try:
        assert runtime.ready.wait(15)
        wi = setup.workitem()
        peer.publish(setup.queue, wi, reply_to=setup.engine)
        [reply] = peer.collect(setup.engine)
        assert reply["fields"]["__result__"] == {"in": "process"}
        assert reply["instance"] == runtime.instance
        assert handler.seen == [wi["fei"]["subid"]]
        assert handler.config is not None and handler.config["fixture"]["greeting"] == "hello"
    finally:
        runtime.stop()
        thread.join(15)
    assert status == [0]
    assert handler.lifecycle == ["start", "stop"]


def test_debug_trace_and_dump_from_the_workitem(setup: Setup, peer: Peer, spawn) -> None:
    proc = spawn(setup.ini(participant={"debug_trace": "false"}))
    quiet, loud = setup.workitem(), setup.workitem(fields={"debug_trace": True, "debug_dump": True})
    peer.publish(setup.queue, quiet, reply_to=setup.engine)
    peer.publish(setup.queue, loud, reply_to=setup.engine)
    peer.collect(setup.engine, 2)
    proc.wait_log(f"replied {loud['fei']['wfid']} {loud['fei']['subid']} to {setup.engine}")
    proc.wait_log(" reply {")  # the dump is the line after, written apart
    text = proc.text()
    assert quiet["fei"]["subid"] not in text
    assert f"received {loud['fei']['wfid']} {loud['fei']['subid']} (0_1) for tester" in text
    dumped = [
        line.split("received workitem ", 1)[1]
        for line in text.splitlines()
        if "received workitem " in line
    ]
    assert [json.loads(d) for d in dumped] == [loud]
    replies = [
        json.loads(line.split(" reply ", 1)[1]) for line in text.splitlines() if " reply {" in line
    ]
    assert [r["fei"] for r in replies] == [loud["fei"]]
    # timestamps on every line
    assert all(line[:4].isdigit() and line[10] == " " for line in text.splitlines())


@pytest.mark.rabbitmq
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_die_when_the_broker_refuses_the_queue(setup: Setup, peer: Peer, spawn) -> None:
    other = f"odd-{setup.tag}"
    with kombu.Connection(setup.broker_url) as conn:
        kombu.Queue(other, durable=True, max_length=5)(conn.channel()).declare()
    peer.declared.add(other)
    proc = spawn(setup.ini(queue=other))
    assert proc.wait(20) == 1
    assert "giving up: Fatal: the broker refused the set-up of queue" in proc.text()
    assert "PRECONDITION_FAILED" in proc.text()
    assert lines(setup.report("lifecycle")) == ["start hello", "die"]


# -- no broker ------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_config_amqp_section_and_overrides(tmp_path: Path, monkeypatch: Any) -> None:
    for var in ("BOSS_BROKER_URL", "BOSS_LEASE", "BOSS_LEASE_AFTER"):
        monkeypatch.delenv(var, raising=False)
    cfg = load_config(
        write(
            tmp_path / "p.ini",
            (
                "[participant]\nname = build\nregexp = ^build_.*$\ncode = sub/h.py\nlease = 90\n"
                "lease_after = 0\nregister = yes\nworkers = 3\n"
                "[amqp]\nhost = rabbit.example\nuser = boss\npwd = s3cr/t\nvhost = ci\n"
                "[build]\nkey = value\n"
            ),
        )
    )
    assert cfg.queue == "build" and cfg.pattern == "^build_.*$" and cfg.register
    assert cfg.code == str(tmp_path / "sub" / "h.py")
    assert cfg.class_name == "ParticipantHandler"
    assert cfg.boss.broker_url == "amqp://boss:s3cr%2Ft@rabbit.example:5672/ci"
    assert (cfg.boss.lease, cfg.boss.lease_after) == (90.0, 0.0)
    assert cfg.section("build") == {"key": "value"}
    assert cfg.unknown_keys == ("workers",)


def test_config_inline_comments_are_not_part_of_values(tmp_path: Path) -> None:
    # as the module documents (and as supervisor reads the same file
    # when SkyNET runs the participant)
    cfg = load_config(
        write(
            tmp_path / "p.ini",
            (
                "[participant]\nname = build    ; required\ncode = h.py ; the handler\n"
                "[boss]\nbroker_url = amqp://u:p#w@h:5672/v\n"
            ),
        )
    )
    assert (cfg.name, cfg.queue) == ("build", "build")
    assert cfg.code == str(tmp_path / "h.py")
    assert cfg.boss.broker_url == "amqp://u:p#w@h:5672/v"  # '#' is not a comment


def test_lru_is_bounded() -> None:
    lru: LRU[str, int] = LRU(3)
    for i in range(5):
        lru.put(str(i), i)
    assert len(lru) == 3 and "0" not in lru and "1" not in lru
    assert lru.get("2") == 2  # now the most recent
    lru.put("5", 5)
    assert "2" in lru and "3" not in lru


def test_workitem_cancelled_is_not_a_field() -> None:
    wi = Workitem({"fei": {}, "fields": {"a": 1}})
    assert wi.cancelled is False
    wi.cancelled = True
    assert wi.cancelled is True and "cancelled" not in wi.fields
    wi.other = 2
    assert wi.fields == {"a": 1, "other": 2}


def test_a_handlers_events_name_the_site(setup: Setup, peer: Peer, spawn) -> None:
    """Events a handler records (``wi.emit``) go on the traceability bus
    before the reply, stamped with the site's ``eiffel_domain`` (the
    engine's own events carry it; a federated peer must see where each
    event came from)."""
    spawn(setup.ini(boss={"eiffel_domain": "community-a", "trace_queue": setup.engine + ".trace"}))
    wi = setup.workitem(params={"emit": "ArtifactCreated"})
    peer.publish(setup.queue, wi, reply_to=setup.engine)
    [reply] = peer.collect(setup.engine)
    assert reply["fei"] == wi["fei"]
    peer.declared.add(setup.engine + ".trace")
    [event] = peer.collect(setup.engine + ".trace")
    assert event["meta"]["type"] == "EiffelArtifactCreatedEvent"
    assert event["meta"]["source"]["domainId"] == "community-a"
    assert event["meta"]["source"]["name"] == "boss"  # the rest of the source kept
    assert event["data"]["identity"] == f"pkg:generic/fixture@{wi['fei']['subid']}"
