"""The next workitems at hand (``participant_prefetch``, 8 by default).

An instance works on one workitem at a time and holds the next ones (up to
``participant_prefetch`` - 1), which start one after the other the moment
the reply before each is published. A long step must not keep them from
another instance: after ``participant_hold`` seconds they all go back to
the queue, and the instance takes no more until it is idle.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from tests.participants.conftest import ParticipantProcess, Peer, Setup, unacked, wait_for


def logged_at(proc: ParticipantProcess, needle: str) -> list[datetime]:
    """When the participant logged each line holding ``needle``."""
    return [
        datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        for line in proc.text().splitlines()
        if needle in line
    ]


def instance(proc: ParticipantProcess) -> str:
    """The instance id a participant process logged when it connected."""
    found = re.search(r"connected to \S+ as (\S+)", proc.text())
    assert found, proc.text()
    return found.group(1)


def test_the_next_workitem_goes_back_while_a_long_step_runs(
    setup: Setup, peer: Peer, spawn
) -> None:
    first = spawn(
        setup.ini("first.ini", participant={"lease_after": 30}, boss={"participant_hold": 0.3})
    ).ready()
    long = setup.workitem(params={"sleep": 6})
    short = setup.workitem()
    peer.publish(setup.queue, long, reply_to=setup.engine)
    first.wait_log(f"received {long['fei']['wfid']} {long['fei']['subid']}")
    peer.publish(setup.queue, short, reply_to=setup.engine)
    # taken with the long one in hand, then given back: ready on the queue
    # again (not held, not acknowledged) while the long step still runs
    first.wait_log("gave the next workitem back to the queue", 5)
    wait_for(lambda: peer.count(setup.queue) == 1, 5, "the short workitem back on the queue")
    # (the runs file is written by the handler's thread: nothing orders it
    # with the give-back on the main one)
    wait_for(lambda: setup.runs() == [long["fei"]["subid"]], 5, "the long step's run noted")

    second = spawn(setup.ini("second.ini")).ready()
    [reply] = peer.collect(setup.engine, 1, 4)  # long before the 6 s step ends
    assert reply["fei"] == short["fei"]
    assert reply["instance"] == instance(second) != instance(first)
    [reply] = peer.collect(setup.engine, 1, 15)
    assert reply["fei"] == long["fei"] and reply["instance"] == instance(first)
    assert sorted(setup.runs()) == sorted([long["fei"]["subid"], short["fei"]["subid"]])
    wait_for(lambda: unacked(setup.broker_url, setup.queue) == 0, 5, "every ack")
    assert peer.count(setup.queue) == 0


def test_short_steps_run_one_after_the_other_in_order(setup: Setup, peer: Peer, spawn) -> None:
    # steps of 50 ms against a hold of 5 s: on a loaded two-core machine a
    # 50 ms step took 380 ms once, past the default 0.2 s, and its next
    # workitems went back (that path is the long-step test's)
    proc = spawn(setup.ini(boss={"participant_hold": 5})).ready()
    items = [setup.workitem(params={"sleep": 0.05}) for _ in range(12)]
    for wi in items:
        peer.publish(setup.queue, wi, reply_to=setup.engine)
    replies = peer.collect(setup.engine, len(items))
    assert [r["fei"] for r in replies] == [wi["fei"] for wi in items]
    assert setup.runs() == [wi["fei"]["subid"] for wi in items]  # each once, in order
    # every delivery acknowledged once its reply was confirmed
    wait_for(lambda: unacked(setup.broker_url, setup.queue) == 0, 5, "every ack")
    assert peer.count(setup.queue) == 0
    assert "gave the next workitem back" not in proc.text()


def test_several_held_all_go_back_while_a_long_step_runs(setup: Setup, peer: Peer, spawn) -> None:
    first = spawn(
        setup.ini(
            "first.ini",
            participant={"lease_after": 60},
            boss={"participant_prefetch": 4, "participant_hold": 3},
        )
    ).ready()
    long = setup.workitem(params={"sleep": 10})
    short = [setup.workitem() for _ in range(3)]
    peer.publish(setup.queue, long, reply_to=setup.engine)
    first.wait_log(f"received {long['fei']['wfid']} {long['fei']['subid']}")
    for wi in short:
        peer.publish(setup.queue, wi, reply_to=setup.engine)
    # all three taken and held with the long one in hand (the instance
    # holds up to participant_prefetch - 1; none given back at once)
    wait_for(lambda: peer.count(setup.queue) == 0, 2.5, "the three short workitems taken")
    assert "gave the next workitem back" not in first.text()
    # after participant_hold every held one goes back, for another instance
    # (all three then, none before: the log's clock says when)
    first.wait_log("gave the next workitem back to the queue", 10, count=3)
    received = logged_at(first, f"received {long['fei']['wfid']} {long['fei']['subid']}")
    given_back = logged_at(first, "gave the next workitem back to the queue")
    assert len(given_back) == 3
    assert min(given_back) - received[0] >= timedelta(seconds=2.9), first.text()
    wait_for(lambda: peer.count(setup.queue) == 3, 5, "the short workitems back on the queue")
    # (the runs file is written by the handler's thread: nothing orders it
    # with the give-back on the main one)
    wait_for(lambda: setup.runs() == [long["fei"]["subid"]], 5, "the long step's run noted")
    second = spawn(setup.ini("second.ini")).ready()
    replies = peer.collect(setup.engine, 3, 5)  # before the 10 s step ends
    assert sorted(r["fei"]["subid"] for r in replies) == sorted(wi["fei"]["subid"] for wi in short)
    assert {r["instance"] for r in replies} == {instance(second)}
    [reply] = peer.collect(setup.engine, 1, 15)
    assert reply["fei"] == long["fei"] and reply["instance"] == instance(first)
    wait_for(lambda: unacked(setup.broker_url, setup.queue) == 0, 5, "every ack")
    assert peer.count(setup.queue) == 0


def test_one_at_a_time_when_asked(setup: Setup, peer: Peer, spawn) -> None:
    spawn(setup.ini(participant={"lease_after": 30}, boss={"participant_prefetch": 1})).ready()
    long = setup.workitem(params={"sleep": 3})
    peer.publish(setup.queue, long, reply_to=setup.engine)
    wait_for(lambda: setup.runs() == [long["fei"]["subid"]], 5, "the long step started")
    peer.publish(setup.queue, setup.workitem(), reply_to=setup.engine)
    # prefetch 1: the second stays on the queue, never delivered
    wait_for(lambda: peer.count(setup.queue) == 1, 5, "the second workitem waiting")
    assert unacked(setup.broker_url, setup.queue) == 1
    peer.collect(setup.engine, 2, 15)
