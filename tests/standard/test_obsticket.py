"""obsticket: two runs contending for one project's lock in Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from participants.standard.obsticket import LockTimeout, ObsTicket
from tests.conftest import delete_keys
from tests.standard.conftest import started, stopped, workitem
from tests.waiting import wait_for


@pytest.fixture
def ticket(redis_url: str, key_prefix: str) -> Iterator[ObsTicket]:
    handler = started(
        ObsTicket(),
        {"boss": {"redis_url": redis_url, "key_prefix": key_prefix}, "obsticket": {"poll": 0.02}},
    )
    yield handler
    assert handler.client is not None
    delete_keys(handler.client, key_prefix)
    stopped(handler)


def _step(action: str, wfid: str, **params: object):
    return workitem(
        {"msg": []}, {"action": action, "lock_project": "Mer:Tools", **params}, wfid=wfid
    )


def test_two_runs_contend_the_second_waits_for_the_release(ticket):
    first = _step("get", "run-a")
    ticket.handle_wi(first)
    assert first.result is True and first.fields["obsticket"]["holder"] == "run-a"
    assert ticket.holder("Mer:Tools")["holder"] == "run-a"
    # run b waits (in its own thread, as a second instance of the pool would)
    second = _step("get", "run-b")
    done = threading.Event()
    t = threading.Thread(target=lambda: (ticket.handle_wi(second), done.set()))
    t.start()
    assert not done.wait(0.3)  # still waiting
    # b cannot require or take it without waiting, a's release lets b in
    tried = _step("try", "run-b")
    ticket.handle_wi(tried)
    assert tried.result is False and tried.msg == ["Mer:Tools is locked by run run-a"]
    with pytest.raises(
        RuntimeError,
        match="run run-b does not hold the lock of Mer:Tools "
        r"\(held by run-a\)",
    ):
        ticket.handle_wi(_step("require", "run-b"))
    ticket.handle_wi(_step("require", "run-a"))
    ticket.handle_wi(_step("release", "run-a"))
    wait_for(done.is_set, 5, "run b to get the lock")
    t.join(5)
    assert ticket.holder("Mer:Tools")["holder"] == "run-b"
    # a's second release does nothing to b's lock
    again = _step("release", "run-a")
    ticket.handle_wi(again)
    assert again.msg == ["obsticket: Mer:Tools was not locked by this run"]
    assert ticket.holder("Mer:Tools")["holder"] == "run-b"
    # re-entrant for the holder
    ticket.handle_wi(_step("get", "run-b"))
    ticket.handle_wi(_step("release", "run-b"))
    assert ticket.holder("Mer:Tools") is None


def test_get_with_a_deadline_fails_clearly_and_cancel_stops_the_wait(ticket):
    ticket.handle_wi(_step("get", "run-a"))
    with pytest.raises(LockTimeout, match=r"Mer:Tools still held by run run-a after 0.1s"):
        ticket.handle_wi(_step("get", "run-b", wait=0.1))
    waiting = _step("get", "run-c")
    t = threading.Thread(target=ticket.handle_wi, args=(waiting,))
    t.start()
    waiting.cancelled = True
    t.join(5)
    assert not t.is_alive() and "obsticket" not in waiting.fields
    assert ticket.holder("Mer:Tools")["holder"] == "run-a"


def test_bad_action_or_no_project(ticket):
    with pytest.raises(ValueError, match="action 'grab' is not get"):
        ticket.handle_wi(_step("grab", "x"))
    with pytest.raises(ValueError, match=r"no params.lock_project"):
        ticket.handle_wi(workitem({}, {"action": "get"}))
