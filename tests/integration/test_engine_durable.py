"""Runs live in the store, not in an engine: a fresh engine (a restarted
worker, another host) carries on any run, with the definition it was
launched with, whatever happened to the file since."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.engine import Engine, UnknownRun
from engine.store import RunStore
from engine.testing import ProcessHarness

PROC_V1 = """\
name: pinned
revision: "1"
steps:
  - alpha
  - echo: "v1 after alpha"
  - beta
"""

PROC_V2 = """\
name: pinned
revision: "2"
steps:
  - gamma
  - echo: "v2"
"""


def test_editing_the_file_does_not_change_a_run_in_flight(store: RunStore, tmp_path: Path) -> None:
    path = tmp_path / "pinned.yaml"
    path.write_text(PROC_V1)
    h = ProcessHarness(store=store)
    h.register("alpha", reply=False)
    h.register("beta")
    h.register("gamma")
    run = h.launch(str(path)).wait()
    assert [wi.participant_name for wi in h.dispatched] == ["alpha"]

    path.write_text(PROC_V2)  # edit the file while the run waits on alpha
    newer = h.launch(str(path)).wait()
    assert newer.status == "finished" and h.trace == ["v2"]

    (wi,) = h.pending_for("alpha")
    h.reply(wi)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["v2", "v1 after alpha"]
    assert [w.participant_name for w in h.dispatched] == ["alpha", "gamma", "beta"]
    assert run.info.revision == "1" and newer.info.revision == "2"
    assert run.info.definition != newer.info.definition


def test_a_fresh_engine_carries_on_a_run(store: RunStore) -> None:
    first = ProcessHarness(store=store)
    first.register("alpha", reply=False)
    first.register("beta")
    run = first.launch(PROC_V1).wait()
    (held,) = first.pending_for("alpha")

    # the first engine is gone; a second one (empty caches) gets the reply
    second = ProcessHarness(store=store)
    second.register("beta")
    second.reply(held.to_dict())
    second.run(run.wfid).wait()
    assert second.engine.status(run.wfid) == "finished"
    assert second.trace == ["v1 after alpha"]
    assert [w.participant_name for w in second.dispatched] == ["beta"]


def test_unknown_run_is_a_clear_error(store: RunStore) -> None:
    eng = Engine(store)
    with pytest.raises(UnknownRun, match="no run nope"):
        eng.cancel("nope")
    assert eng.deliver({"type": "reply", "wfid": "nope", "workitem": {}}) is not None


class _DiesBeforeDispatch:
    """A dispatcher whose engine 'crashes' (raises) before publishing."""

    def dispatch(self, effect):
        raise SystemExit("engine killed between storing the state and dispatching")

    def cancel(self, effect):
        pass


def _waiting_on_alpha(store: RunStore) -> tuple[ProcessHarness, Any, dict[str, Any]]:
    """A run of ``PROC_V1`` at its first step (alpha, not answered) and
    that step's reply; skipped on a store that dies with its engine."""
    if not store.durable:
        pytest.skip("an in-memory store dies with its engine: there is nothing to recover")
    h = ProcessHarness(store=store)
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    run = h.launch(PROC_V1).wait()
    (held,) = h.pending_for("alpha")
    return h, run, {"type": "reply", "wfid": run.wfid, "workitem": held.to_dict()}


def test_redelivery_after_a_crash_sends_the_lost_dispatch(store: RunStore) -> None:
    h, run, reply = _waiting_on_alpha(store)

    doomed = Engine(store, dispatcher=_DiesBeforeDispatch())
    with pytest.raises(SystemExit):
        doomed.deliver(reply)  # state stored (alpha done), beta never dispatched
    assert [p.name for p in h.engine.positions(run.wfid)] == ["beta"]
    assert h.pending_for("beta") == []

    # the broker redelivers the unacknowledged reply to a live engine: a
    # duplicate as far as the state goes, but its engine is gone, so the
    # stored effects are carried out again
    h.engine.engine_alive = lambda engine_id: engine_id != doomed.id
    reason = h.engine.deliver(reply)
    h.pump()
    assert reason is not None and "sent again" in reason
    assert [w.participant_name for w in h.pending_for("beta")] == ["beta"]
    assert h.trace == []  # echo lines went to the dead engine's log; not re-sent

    # a duplicate of a message whose engine is alive changes nothing
    before = len(h.dispatched)
    assert "duplicate" in (h.engine.deliver(reply) or "")
    h.pump()
    assert len(h.dispatched) == before
    (b,) = h.pending_for("beta")
    h.reply(b)
    assert run.wait().status == "finished"


def test_a_taken_over_dispatch_whose_step_was_answered_since_is_not_sent_again(
    store: RunStore,
) -> None:
    """Engine A stores a reply and dispatches the next step, then is cut off
    before the broker hears its acknowledgement. The step is done and its
    reply applied by engine B; then the broker gives A's reply to B again.
    A is gone, so B takes A's outbox entry over, but the step that entry
    dispatched waits for nothing any more: it is not dispatched again (a
    second participant instance would have done it a second time)."""
    h, run, reply = _waiting_on_alpha(store)

    cut_off = Engine(store, dispatcher=h)  # dispatches, then is never heard of again
    cut_off.deliver(reply)
    h.pump()
    (beta,) = h.pending_for("beta")
    h.reply(beta)  # done by a participant, applied by the live engine
    assert run.wait().status == "finished"
    dispatched = len(h.dispatched)

    h.engine.engine_alive = lambda engine_id: engine_id != cut_off.id
    reason = h.engine.deliver(reply)  # the broker's redelivery of A's reply
    h.pump()
    assert reason is not None and "sent again" in reason
    assert len(h.dispatched) == dispatched
    assert h.pending_for("beta") == []


CONCURRENCE = """\
name: fan
steps:
  - concurrence:
      branches:
        - sequence: [alpha, beta]
        - gamma
"""


def test_a_crash_is_recovered_after_another_engine_applied_the_next_message(
    store: RunStore,
) -> None:
    """Engine A stores a reply and dies before dispatching; engine B applies
    another reply to the same run before A's is redelivered. The run's
    outbox still holds A's entry, so B carries it out when it comes."""
    if not store.durable:
        pytest.skip("an in-memory store dies with its engine: there is nothing to recover")
    h = ProcessHarness(store=store)
    for name in ("alpha", "beta", "gamma"):
        h.register(name, reply=False)
    run = h.launch(CONCURRENCE).wait()
    (alpha,) = h.pending_for("alpha")
    (gamma,) = h.pending_for("gamma")
    reply_a = {"type": "reply", "wfid": run.wfid, "workitem": alpha.to_dict()}

    doomed = Engine(store, dispatcher=_DiesBeforeDispatch())
    with pytest.raises(SystemExit):
        doomed.deliver(reply_a)  # alpha done, beta never dispatched
    h.reply(gamma)  # engine B applies the other branch's reply
    owners = {x[1] for x in store.load_run(run.wfid)[0]["outbox"]}
    assert doomed.id in owners  # A's entry survived B's save
    assert h.pending_for("beta") == []

    h.engine.engine_alive = lambda engine_id: engine_id != doomed.id
    reason = h.engine.deliver(reply_a)
    h.pump()
    assert reason is not None and "sent again" in reason
    (beta,) = h.pending_for("beta")
    h.reply(beta)
    assert run.wait().status == "finished"


def test_an_engine_keeps_only_its_latest_outbox_entry(store: RunStore) -> None:
    """Its older entries are done with (it carried them out before taking
    its next message); other engines' entries stay until they age out."""
    if not store.durable:
        pytest.skip("the outbox is kept only in durable stores")
    h = ProcessHarness(store=store)
    for name in ("alpha", "beta", "gamma"):
        h.register(name, reply=False)
    run = h.launch(CONCURRENCE).wait()
    other = Engine(store, dispatcher=h, send=h._send, clock=h.clock)
    (alpha,) = h.pending_for("alpha")
    other.deliver({"type": "reply", "wfid": run.wfid, "workitem": alpha.to_dict()})
    h.pump()
    (gamma,) = h.pending_for("gamma")
    h.reply(gamma)
    owners = [x[1] for x in store.load_run(run.wfid)[0]["outbox"]]
    assert sorted(owners) == sorted([other.id, h.engine.id])
    (beta,) = h.pending_for("beta")
    h.reply(beta)
    assert run.wait().status == "finished"
