"""Long steps (leases, RabbitMQ's consumer timeout) and cancel items."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from engine.wire import engine_message
from tests.participants.conftest import Peer, Setup, lines, unacked, wait_for


def kind(message: dict[str, Any]) -> str:
    return message.get("type", "reply")


def has_reply(messages: list[dict[str, Any]]) -> bool:
    return any(kind(m) == "reply" for m in messages)


def test_lease_started_alive_then_reply(setup: Setup, peer: Peer, spawn) -> None:
    proc = spawn(setup.ini(participant={"lease_after": 0.5, "lease": 1.5}))
    wi = setup.workitem(params={"sleep": 3})
    subid = wi["fei"]["subid"]
    peer.publish(setup.queue, wi, reply_to=setup.engine)

    got = peer.collect(setup.engine)
    started = got[0]
    assert engine_message(started) == started
    assert started == {
        "type": "started",
        "wfid": wi["fei"]["wfid"],
        "eid": subid,
        "lease": 1.5,
        "instance": started["instance"],
        "workitem": wi,
    }
    # the delivery is acknowledged while the handler still runs
    wait_for(lambda: unacked(setup.broker_url, setup.queue) == 0, 2.0, "the ack")
    assert peer.count(setup.queue) == 0
    # the runs file is written by the handler's thread, the lease taken by
    # the main one: nothing orders the two
    wait_for(lambda: setup.runs() == [subid], 5, "the handler's run noted")
    assert not has_reply(got)

    peer.collect_until(setup.engine, has_reply, 10, "the reply", into=got)
    kinds = [kind(m) for m in got]
    assert kinds[0] == "started" and kinds[-1] == "reply"
    assert set(kinds[1:-1]) == {"alive"}, kinds  # every lease / 3 = 0.5 s
    for alive in got[1:-1]:
        assert engine_message(alive) == {
            "type": "alive",
            "wfid": wi["fei"]["wfid"],
            "eid": subid,
            "lease": 1.5,
            "instance": started["instance"],
        }
    assert got[-1]["fei"] == wi["fei"] and got[-1]["fields"]["__result__"] is True
    assert setup.runs() == [subid]

    # and it consumes again
    after = setup.workitem()
    peer.publish(setup.queue, after, reply_to=setup.engine)
    [reply] = peer.collect(setup.engine)
    assert reply["fei"] == after["fei"]
    assert proc.alive()


# -- RabbitMQ's consumer timeout -----------------------------------------------------------


def _rabbit_env(key: str) -> str | None:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "eval", f"application:get_env(rabbit, {key})."],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    match = re.fullmatch(r"\{ok,(.*)\}", out, re.S)
    return match.group(1) if match else None


def _set_rabbit_env(key: str, value: str | None) -> None:
    expr = (
        f"application:unset_env(rabbit, {key})."
        if value is None
        else f"application:set_env(rabbit, {key}, {value})."
    )
    subprocess.run(["rabbitmqctl", "-q", "eval", expr], capture_output=True, check=True, timeout=30)


@pytest.fixture
def consumer_timeout_3s(rabbitmq_url: str) -> Iterator[None]:
    """RabbitMQ's consumer timeout at 3 s for channels opened meanwhile,
    checked every 0.5 s (the channel tick), restored afterwards."""
    old = {key: _rabbit_env(key) for key in ("consumer_timeout", "channel_tick_interval")}
    try:
        _set_rabbit_env("consumer_timeout", "3000")
        _set_rabbit_env("channel_tick_interval", "500")
        yield
    finally:
        for key, value in old.items():
            _set_rabbit_env(key, value)


@pytest.mark.usefixtures("consumer_timeout_3s")
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
@pytest.mark.rabbitmq
def test_lease_outlives_the_consumer_timeout(setup: Setup, peer: Peer, spawn) -> None:
    proc = spawn(setup.ini(participant={"lease_after": 1, "lease": 3})).ready()
    wi = setup.workitem(params={"sleep": 8})
    peer.publish(setup.queue, wi, reply_to=setup.engine)
    got = peer.collect_until(setup.engine, has_reply, 20, "the reply")
    kinds = [kind(m) for m in got]
    assert kinds.count("started") == 1 and kinds.count("reply") == 1, kinds
    assert setup.runs() == [wi["fei"]["subid"]]
    assert "lost the broker connection" not in proc.text()
    assert proc.alive()
    second = setup.workitem()
    peer.publish(setup.queue, second, reply_to=setup.engine)
    peer.collect_until(
        setup.engine,
        lambda ms: any(m.get("fei") == second["fei"] for m in ms),
        10,
        "the second reply",
        into=got,
    )
    assert [kind(m) for m in got].count("reply") == 2
    assert peer.get(setup.engine) is None


@pytest.mark.usefixtures("consumer_timeout_3s")
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
@pytest.mark.rabbitmq
def test_held_delivery_timed_out_is_answered_not_redone(setup: Setup, peer: Peer, spawn) -> None:
    """Without a lease the broker closes the channel after 3 s and gives the
    workitem again; the runtime reconnects, replies, and answers the
    redelivery from its memory of replies instead of running it twice."""
    proc = spawn(setup.ini(participant={"lease_after": 60})).ready()
    wi = setup.workitem(params={"sleep": 5})
    peer.publish(setup.queue, wi, reply_to=setup.engine)
    replies = peer.collect(setup.engine, 2, 20)
    assert replies[0] == replies[1] and replies[0]["fei"] == wi["fei"]
    assert "PRECONDITION_FAILED" in proc.text()
    # logged once the second reply is published: the reply can arrive first
    proc.wait_log("delivered again: answered with the reply sent before")
    assert setup.runs() == [wi["fei"]["subid"]]
    wait_for(lambda: unacked(setup.broker_url, setup.queue) == 0, 5, "the ack")
    assert proc.alive()


# -- cancel items -------------------------------------------------------------------------


def cancel_item(wi: dict[str, Any]) -> dict[str, Any]:
    fei = {k: wi["fei"][k] for k in ("wfid", "expid", "subid")}
    return {
        "type": "cancel",
        "flavour": "cancel",
        "fei": fei,
        "participant_name": wi["participant_name"],
    }


@pytest.mark.parametrize("lease_after", [30, 0.3], ids=["held", "leased"])
def test_cancel_in_hand(setup: Setup, peer: Peer, spawn, lease_after: float) -> None:
    proc = spawn(setup.ini(participant={"lease_after": lease_after, "lease": 3})).ready()
    wi = setup.workitem(params={"sleep": 30})
    subid = wi["fei"]["subid"]
    peer.publish(setup.queue, wi, reply_to=setup.engine)
    wait_for(setup.report(f"running-{subid}").exists, 10, "the handler to start")
    if lease_after < 1:
        peer.collect(setup.engine)  # started
    peer.publish_topic(setup.control, setup.queue, cancel_item(wi))
    wait_for(lambda: lines(setup.report("cancelled")) == [subid], 10, "handle_cancel")
    proc.wait_log("ended after its cancel: no reply")
    wait_for(lambda: unacked(setup.broker_url, setup.queue) == 0, 5, "the ack")

    after = setup.workitem()
    peer.publish(setup.queue, after, reply_to=setup.engine)
    got = peer.collect_until(setup.engine, has_reply, 10, "the next reply")
    assert [m["fei"] for m in got if kind(m) == "reply"] == [after["fei"]]
    assert setup.runs() == [subid, after["fei"]["subid"]]
    # the cancelled one is remembered: given again, it is dropped unrun
    peer.publish(setup.queue, wi, reply_to=setup.engine)
    proc.wait_log("cancelled before it was taken")
    assert peer.get(setup.engine) is None


def test_cancel_before_the_workitem_is_taken(setup: Setup, peer: Peer, spawn) -> None:
    proc = spawn(setup.ini()).ready()
    doomed, kept = setup.workitem(), setup.workitem()
    peer.publish_topic(setup.control, setup.queue, cancel_item(doomed))
    proc.wait_log(f"cancel for {doomed['fei']['wfid']} {doomed['fei']['subid']} remembered")
    peer.publish(setup.queue, doomed, reply_to=setup.engine)
    peer.publish(setup.queue, kept, reply_to=setup.engine)
    [reply] = peer.collect(setup.engine)
    assert reply["fei"] == kept["fei"]
    assert "cancelled before it was taken" in proc.text()
    assert setup.runs() == [kept["fei"]["subid"]]
    assert lines(setup.report("cancelled")) == []
    assert peer.count(setup.queue) == 0 and peer.get(setup.engine) is None
