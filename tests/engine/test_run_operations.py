"""Errors of a run and the operations on runs (process language, section 6):
replay, re_apply, cancel, kill, pause/resume, stale and duplicate replies."""

from __future__ import annotations

import pytest

from engine.core.interpreter import iso
from engine.engine import EngineError, UnknownRun
from tests.engine.support import (
    START,
    cancelled_subids,
    definition,
    dispatched_to,
    only,
    register_calls,
    register_tracers,
    step_records,
)

ALPHA_BETA = definition("""
    name: ab
    steps:
      - alpha
      - beta
""")


def deliver_reply(h, wi):
    """Deliver a reply straight to the engine; returns why it was ignored."""
    return h.engine.deliver({"type": "reply", "wfid": wi.wfid, "workitem": wi.to_dict()})


# ---------------------------------------------------------------------------
# uncaught errors


def test_uncaught_error_status_error_while_other_branches_go_on(hx):
    h = hx
    bad = register_calls(h, "bad", fail_on=(1,))
    h.register("slow", reply=False)
    register_tracers(h, "after")
    src = definition("""
        name: t
        steps:
          - concurrence:
              - bad
              - slow
          - after
    """)
    run = h.launch(src).wait()
    assert run.status == "error"
    states = sorted((p.name, p.state) for p in run.positions)
    assert states == [("bad", "failed"), ("slow", "waiting")]
    h.reply(only(h.pending_for("slow")))
    assert run.status == "error"
    assert "after" not in h.trace
    run.replay()
    assert run.wait().status == "finished"
    assert bad.count == 2
    assert h.trace[-1] == "after"


def test_uncaught_error_stops_the_branch(h):
    register_calls(h, "bad", always_fail=True)
    register_tracers(h, "after")
    src = definition("""
        name: t
        steps:
          - bad
          - after
    """)
    run = h.launch(src).wait()
    assert run.status == "error"
    assert h.trace == ["bad"]
    assert not run.ended


def test_error_entry_of_a_raising_participant(hx):
    h = hx

    def exploding_participant(wi):
        raise ValueError("bad input 42")

    h.register("bad", exploding_participant)
    run = h.launch(
        definition("""
        name: t
        steps:
          - noop
          - bad
    """)
    ).wait()
    err = only(run.errors)
    assert err["message"] == "bad input 42"
    assert err["class"] == "ValueError"
    assert err["expid"] == "0_1"
    assert err["participant"] == "bad"
    assert err["at"] == iso(START)
    assert "Traceback" in err["traceback"]
    assert "exploding_participant" in err["traceback"]
    assert "ValueError: bad input 42" in err["traceback"]
    assert err["id"] and err["eid"].startswith("0_1")
    assert "fields" not in err


def test_error_entry_of_an_error_expression(h):
    run = h.launch(
        definition("""
        name: t
        steps:
          - error: "no ${what}"
    """),
        fields={"what": "luck"},
    ).wait()
    err = only(run.errors)
    assert err["message"] == "no luck"
    assert err["class"] == "ProcessError"
    assert err["expid"] == "0_0"
    assert "participant" not in err


def test_error_entry_of_an_error_reply(h):
    h.register("alpha", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    h.advance(12)
    h.reply(only(h.pending_for("alpha")), error="remote said no")
    err = only(run.errors)
    assert err["message"] == "remote said no"
    assert err["class"] == "ParticipantError"
    assert err["participant"] == "alpha"
    assert err["at"] == iso(START + 12)


def test_two_branches_in_error_give_two_errors(h):
    register_calls(h, "bad1", always_fail=True)
    register_calls(h, "bad2", always_fail=True)
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              - bad1
              - bad2
    """)
    ).wait()
    assert run.status == "error"
    assert sorted(e["participant"] for e in run.errors) == ["bad1", "bad2"]
    assert len({e["id"] for e in run.errors}) == 2


# ---------------------------------------------------------------------------
# replay


def test_replay_reapplies_the_failing_step_with_fields_merged(hx):
    h = hx
    bad = register_calls(h, "bad", fail_on=(1,))
    register_tracers(h, "after")
    run = h.launch(
        definition("""
        name: t
        steps:
          - bad
          - after
    """),
        fields={"x": 1, "y": 1},
    ).wait()
    run.replay(fields={"y": 2, "fix": True})
    assert run.wait().status == "finished"
    assert run.errors == []
    assert bad.count == 2
    assert bad.seen[1]["x"] == 1
    assert bad.seen[1]["y"] == 2
    assert bad.seen[1]["fix"] is True
    assert run.fields["fix"] is True


def test_replay_after_fixing_fields(h):
    def picky(wi):
        if not wi.fields.get("token"):
            raise PermissionError("no token")

    h.register("picky", picky)
    register_tracers(h, "after")
    run = h.launch(
        definition("""
        name: t
        steps:
          - picky
          - after
    """)
    ).wait()
    assert run.status == "error"
    run.replay()  # nothing fixed: fails again
    assert run.status == "error"
    assert only(run.errors)["class"] == "PermissionError"
    run.replay(fields={"token": "s3cret"})
    assert run.wait().status == "finished"
    assert h.trace == ["after"]


def test_replay_removes_the_error_before_the_step_runs(h):
    h.register("alpha", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    h.reply(only(h.pending_for("alpha")), error="nope")
    assert run.status == "error"
    run.replay()
    assert run.errors == []
    assert run.status == "running"
    assert len(dispatched_to(h, "alpha")) == 2


def test_replaying_an_error_step_goes_on_past_it(hx):
    h = hx
    run = h.launch(
        definition("""
        name: t
        steps:
          - echo: before
          - error: stop here
          - echo: "after ${note}"
    """)
    ).wait()
    assert run.status == "error"
    run.replay(fields={"note": "replayed"})
    assert run.wait().status == "finished"
    assert h.trace == ["before", "after replayed"]
    assert run.fields["note"] == "replayed"


def test_replay_one_error_by_id(h):
    b1 = register_calls(h, "bad1", fail_on=(1,))
    b2 = register_calls(h, "bad2", fail_on=(1,))
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              - bad1
              - bad2
    """)
    ).wait()
    second = next(e for e in run.errors if e["participant"] == "bad2")
    run.replay(error_id=second["id"])
    assert (b1.count, b2.count) == (1, 2)
    assert run.status == "error"
    assert only(run.errors)["participant"] == "bad1"
    run.replay()
    assert run.wait().status == "finished"
    assert (b1.count, b2.count) == (2, 2)


def test_replay_one_error_by_eid(h):
    b1 = register_calls(h, "bad1", fail_on=(1,))
    b2 = register_calls(h, "bad2", fail_on=(1,))
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              - bad1
              - bad2
    """)
    ).wait()
    first = next(e for e in run.errors if e["participant"] == "bad1")
    run.replay(error_id=first["eid"])
    assert (b1.count, b2.count) == (2, 1)
    assert only(run.errors)["participant"] == "bad2"


def test_replay_without_an_error_is_refused(h):
    register_tracers(h, "alpha")
    h.register("beta", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    with pytest.raises(EngineError):
        run.replay()


def test_replay_of_an_unknown_error_id_is_refused(h):
    register_calls(h, "alpha", always_fail=True)
    run = h.launch(ALPHA_BETA).wait()
    with pytest.raises(EngineError):
        run.replay(error_id="no-such-error")
    assert run.status == "error"


def test_stale_reply_after_replay_is_ignored(h):
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    first = only(h.pending_for("alpha"))
    h.reply(first, error="nope")
    run.replay()
    second = only(h.pending_for("alpha"))
    # the old workitem answers again: no longer waiting
    reason = deliver_reply(h, first)
    h.pump()
    assert reason and "no longer waiting" in reason
    assert dispatched_to(h, "beta") == []
    h.reply(second)
    assert len(dispatched_to(h, "beta")) == 1


# ---------------------------------------------------------------------------
# re_apply


def test_re_apply_a_waiting_step(hx):
    h = hx
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    run = h.launch(ALPHA_BETA, fields={"x": 1}).wait()
    old = only(h.pending_for("alpha"))
    run.re_apply("0_0", fields={"x": 2, "again": True})
    assert cancelled_subids(h) == [old.fei["subid"]]
    new = only(h.pending_for("alpha"))
    assert new.fei["subid"] != old.fei["subid"]
    assert new.fields["x"] == 2
    assert new.fields["again"] is True
    # the old workitem's reply is stale
    old.fields["stale"] = True
    h.reply(old)
    assert dispatched_to(h, "beta") == []
    h.reply(new)
    beta = only(h.pending_for("beta"))
    assert "stale" not in beta.fields
    assert beta.fields["x"] == 2


def test_re_apply_by_eid(h):
    h.register("alpha", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    old = only(h.pending_for("alpha"))
    run.re_apply(old.fei["subid"])
    assert len(dispatched_to(h, "alpha")) == 2


def test_re_apply_a_failed_step_clears_its_error(h):
    bad = register_calls(h, "alpha", fail_on=(1,))
    register_tracers(h, "beta")
    run = h.launch(ALPHA_BETA).wait()
    assert run.status == "error"
    run.re_apply("0_0")
    assert run.wait().status == "finished"
    assert run.errors == []
    assert bad.count == 2


def test_re_apply_a_container_restarts_it(h):
    register_tracers(h, "a")
    h.register("b", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - sequence:
              - a
              - b
    """)
    ).wait()
    run.re_apply("0_0")
    assert h.trace == ["a", "a"]
    assert len(h.cancelled) == 1
    h.reply(only(h.pending_for("b")))
    assert run.wait().status == "finished"


def test_re_apply_of_a_step_that_is_not_live_is_ignored(h):
    register_tracers(h, "alpha")
    h.register("beta", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    run.re_apply("0_0")
    assert h.trace == ["alpha"]
    assert run.status == "running"
    assert len(h.pending_for("beta")) == 1


# ---------------------------------------------------------------------------
# unknown participant / subprocess


def test_unknown_participant_is_a_run_error_then_register_and_replay(hx):
    h = hx
    register_tracers(h, "alpha")
    src = definition("""
        name: t
        steps:
          - alpha
          - ghost
          - echo: after
    """)
    run = h.launch(src).wait()
    assert run.status == "error"
    err = only(run.errors)
    assert err["class"] == "UnknownParticipant"
    assert "ghost" in err["message"]
    assert err["expid"] == "0_1"
    assert [p.name for p in run.positions] == ["ghost"]
    register_tracers(h, "ghost")
    run.replay()
    assert run.wait().status == "finished"
    assert h.trace == ["alpha", "ghost", "after"]


def test_unknown_participant_from_a_substitution(h):
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: "${who}"
    """),
        fields={"who": "nobody"},
    ).wait()
    assert run.status == "error"
    assert "nobody" in only(run.errors)["message"]
    register_tracers(h, "somebody")
    run.replay(fields={"who": "somebody"})
    assert run.wait().status == "finished"
    assert h.trace == ["somebody"]


def test_unknown_dynamic_subprocess_is_a_run_error(h):
    src = definition("""
        name: t
        subprocesses:
          real:
            - echo: in real
        steps:
          - subprocess: "${which}"
          - echo: after
    """)
    run = h.launch(src, fields={"which": "imaginary"}).wait()
    assert run.status == "error"
    err = only(run.errors)
    assert err["class"] == "UnknownSubprocess"
    assert "imaginary" in err["message"]
    run.replay(fields={"which": "real"})
    assert run.wait().status == "finished"
    assert h.trace == ["in real", "after"]


def test_unknown_participant_in_a_branch_lets_the_others_go_on(h):
    h.register("slow", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              - ghost
              - slow
    """)
    ).wait()
    assert run.status == "error"
    assert len(h.pending_for("slow")) == 1


# ---------------------------------------------------------------------------
# cancel and kill


def test_cancel_while_waiting(hx):
    h = hx
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    run = h.launch(ALPHA_BETA).wait()
    held = only(h.pending_for("alpha"))
    h.advance(3)
    run.cancel()
    assert run.status == "cancelled"
    notice = only(h.cancelled)
    assert notice.fei["subid"] == held.fei["subid"]
    assert notice.fei["wfid"] == run.wfid
    assert notice.flavour == "cancel"
    assert h.trace == []
    assert run.info.ended_at == START + 3
    assert run.positions == []


def test_cancel_of_one_step_by_expid(hx):
    h = hx
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    run = h.launch(ALPHA_BETA).wait()
    run.cancel("0_0")
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["beta"]
    assert only(h.cancelled).participant == "alpha"


def test_cancel_of_one_step_by_eid(h):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    run = h.launch(ALPHA_BETA).wait()
    run.cancel(only(h.pending_for("alpha")).fei["subid"])
    assert run.wait().status == "finished"
    assert h.trace == ["beta"]


def test_cancel_of_an_unknown_step_is_ignored(h):
    h.register("alpha", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    run.cancel("9_9")
    assert run.status == "running"
    assert h.cancelled == []
    assert len(h.pending_for("alpha")) == 1


def test_cancel_of_a_concurrence_branch(h):
    h.register("a", reply=False)
    h.register("b", reply=False)
    register_tracers(h, "after")
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              - a
              - b
          - after
    """)
    ).wait()
    run.cancel("0_0_0")
    assert run.status == "running"
    assert [c.participant for c in h.cancelled] == ["a"]
    h.reply(only(h.pending_for("b")))
    assert run.wait().status == "finished"
    assert h.trace == ["after"]


def test_cancel_a_run_in_error(hx):
    h = hx
    register_calls(h, "alpha", always_fail=True)
    run = h.launch(ALPHA_BETA).wait()
    assert run.status == "error"
    run.cancel()
    assert run.status == "cancelled"
    assert run.errors == []
    assert h.engine.list_errors() == []


def test_kill_a_run_in_error(h):
    register_calls(h, "alpha", always_fail=True)
    run = h.launch(ALPHA_BETA).wait()
    run.kill()
    assert run.status == "killed"
    assert run.errors == []
    assert h.engine.list_errors() == []


def test_kill_while_waiting(hx):
    h = hx
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: alpha
            timeout: 1h
          - beta
    """)
    ).wait()
    run.kill()
    assert run.status == "killed"
    assert only(h.cancelled).flavour == "kill"
    assert h.next_timer() is None
    h.advance(7200)
    assert h.trace == []
    assert run.status == "killed"


def test_kill_a_cancelling_run(h):
    # cancel waits for the on_cancel handler; kill ends it at once
    h.register("alpha", reply=False)
    h.register("cleanup", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: alpha
            on_cancel: cleanup
    """)
    ).wait()
    run.cancel()
    assert len(h.pending_for("cleanup")) == 1
    run.kill()
    assert run.status == "killed"
    assert "cleanup" in [c.participant for c in h.cancelled]


# ---------------------------------------------------------------------------
# pause / resume


def test_pause_holds_a_reply_until_resume(hx):
    h = hx
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    run.pause()
    alpha = only(h.pending_for("alpha"))
    alpha.fields["from_alpha"] = 1
    h.reply(alpha)
    h.advance(60)
    assert dispatched_to(h, "beta") == []
    assert [p.name for p in run.positions] == ["alpha"]
    run.resume()
    assert run.status == "running"
    beta = only(h.pending_for("beta"))
    assert beta.fields["from_alpha"] == 1
    h.reply(beta)
    assert run.wait().status == "finished"


def test_pause_holds_timers_until_resume(h):
    register_tracers(h, "beta")
    run = h.launch(
        definition("""
        name: t
        steps:
          - wait: 10s
          - beta
    """)
    ).wait()
    run.pause()
    h.advance(20)
    assert h.trace == []
    assert not run.ended
    run.resume()
    assert run.wait().status == "finished"
    assert h.trace == ["beta"]


def test_pause_holds_a_timeout(h):
    h.register("alpha", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: alpha
            timeout: 5s
    """)
    ).wait()
    run.pause()
    h.advance(10)
    assert h.cancelled == []
    assert len(h.pending_for("alpha")) == 1
    run.resume()
    assert run.wait().status == "finished"
    assert only(h.cancelled).participant == "alpha"
    assert "__timed_out__" in run.fields


def test_replies_held_while_paused_keep_their_order(h):
    h.register("a", reply=False)
    h.register("b", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              merge: first
              branches:
                - a
                - b
    """)
    ).wait()
    run.pause()
    b = only(h.pending_for("b"))
    b.fields["who"] = "b"
    h.reply(b)
    a = only(h.pending_for("a"))
    a.fields["who"] = "a"
    h.reply(a)
    assert not run.ended
    assert len(run.positions) == 2
    run.resume()
    assert run.wait().status == "finished"
    assert run.fields["who"] == "b"  # b replied first


def test_cancel_goes_through_while_paused(h):
    h.register("alpha", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    run.pause()
    run.cancel()
    assert run.status == "cancelled"
    assert only(h.cancelled).participant == "alpha"


def test_kill_goes_through_while_paused(h):
    h.register("alpha", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    run.pause()
    run.kill()
    assert run.status == "killed"


def test_resume_of_a_run_that_is_not_paused_is_ignored(h):
    h.register("alpha", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    reason = h.engine.deliver({"type": "resume", "wfid": run.wfid})
    assert reason is not None
    assert run.status == "running"


def test_pause_of_a_run_in_error_then_resume(h):
    register_calls(h, "alpha", always_fail=True)
    run = h.launch(ALPHA_BETA).wait()
    run.pause()
    assert run.status == "paused"
    run.resume()
    assert run.status == "error"


def test_paused_status_while_paused(hx):
    h = hx
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    run.pause()
    assert run.status == "paused"
    assert [r.wfid for r in h.engine.list_runs(status="paused")] == [run.wfid]
    h.reply(only(h.pending_for("alpha")))
    assert run.status == "paused"
    run.resume()
    assert run.status == "running"


def test_replay_while_paused_waits_for_resume(h):
    bad = register_calls(h, "alpha", fail_on=(1,))
    register_tracers(h, "beta")
    run = h.launch(ALPHA_BETA).wait()
    run.pause()
    run.replay()
    assert bad.count == 1
    assert len(run.errors) == 1
    run.resume()
    assert run.wait().status == "finished"
    assert bad.count == 2


# ---------------------------------------------------------------------------
# operations on an ended run


ENDED_OPS = {
    "cancel": lambda run: run.cancel(),
    "cancel step": lambda run: run.cancel("0_0"),
    "kill": lambda run: run.kill(),
    "pause": lambda run: run.pause(),
    "resume": lambda run: run.resume(),
    "re_apply": lambda run: run.re_apply("0_0"),
}


@pytest.mark.parametrize("end", ["finished", "cancelled", "killed"])
@pytest.mark.parametrize("op", list(ENDED_OPS))
def test_operations_on_an_ended_run_are_ignored(h, op, end):
    h.register("alpha", lambda wi: wi.fields.update(done=True), reply=end == "finished")
    register_tracers(h, "beta")
    run = h.launch(ALPHA_BETA).wait()
    if end == "cancelled":
        run.cancel()
    elif end == "killed":
        run.kill()
    assert run.status == end
    fields = run.fields
    records = len(h.records)
    dispatched = len(h.dispatched)
    ENDED_OPS[op](run)
    assert run.status == end
    assert run.fields == fields
    assert len(h.records) == records
    assert len(h.dispatched) == dispatched


def test_replay_of_an_ended_run_is_refused(h):
    register_tracers(h, "alpha", "beta")
    run = h.launch(ALPHA_BETA).wait()
    with pytest.raises(EngineError):
        run.replay()
    assert run.status == "finished"


@pytest.mark.parametrize("op", ["cancel", "kill", "pause", "resume", "re_apply", "replay"])
def test_operations_on_an_unknown_run(h, op):
    run = h.run("20991231-000000000000")
    with pytest.raises(UnknownRun):
        if op == "re_apply":
            run.re_apply("0_0")
        else:
            getattr(run, op)()


# ---------------------------------------------------------------------------
# stale and duplicate replies


def test_stale_reply_for_a_cancelled_step(h):
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    alpha = only(h.pending_for("alpha"))
    run.cancel("0_0")
    assert len(dispatched_to(h, "beta")) == 1
    alpha.fields["late"] = True
    reason = deliver_reply(h, alpha)
    h.pump()
    assert reason and "no longer waiting" in reason
    assert len(dispatched_to(h, "beta")) == 1
    assert "late" not in only(h.pending_for("beta")).fields


def test_stale_reply_for_a_cancelled_run(h):
    h.register("alpha", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    alpha = only(h.pending_for("alpha"))
    run.cancel()
    reason = deliver_reply(h, alpha)
    assert reason is not None
    assert run.status == "cancelled"


def test_stale_reply_for_a_timed_out_step(h):
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: alpha
            timeout: 1s
          - beta
    """)
    ).wait()
    alpha = only(h.pending_for("alpha"))
    h.advance(1)
    reason = deliver_reply(h, alpha)
    h.pump()
    assert reason and "no longer waiting" in reason
    assert len(dispatched_to(h, "beta")) == 1
    assert run.status == "running"


def test_stale_reply_for_a_re_applied_step(h):
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    old = only(h.pending_for("alpha"))
    run.re_apply("0_0")
    assert deliver_reply(h, old) is not None
    h.pump()
    assert dispatched_to(h, "beta") == []


def test_stale_error_reply_is_ignored(h):
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    alpha = only(h.pending_for("alpha"))
    h.reply(alpha)
    h.reply(alpha, error="too late to fail")
    assert run.status == "running"
    assert run.errors == []


def test_duplicate_reply_is_applied_once(hx):
    h = hx
    h.register("alpha", reply=False)
    beta = register_calls(h, "beta", change={"n": 1})
    h.register("gamma", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
          - beta
          - gamma
    """)
    ).wait()
    alpha = only(h.pending_for("alpha"))
    h.reply(alpha)
    reason = deliver_reply(h, alpha)
    h.pump()
    assert reason and ("no longer waiting" in reason or "already applied" in reason)
    assert beta.count == 1
    assert len(dispatched_to(h, "gamma")) == 1
    h.reply(only(h.pending_for("gamma")))
    assert run.wait().status == "finished"
    assert beta.count == 1
    finished = [r for r in step_records(h, run, "alpha") if r[2] == "finished"]
    assert len(finished) == 1


def test_duplicate_reply_of_a_branch_does_not_count_twice(hx):
    h = hx
    h.register("a", reply=False)
    h.register("b", reply=False)
    after = register_calls(h, "after")
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              - a
              - b
          - after
    """)
    ).wait()
    a = only(h.pending_for("a"))
    h.reply(a)
    h.reply(a)
    assert after.count == 0
    assert run.status == "running"
    assert len(h.pending_for("b")) == 1
    h.reply(only(h.pending_for("b")))
    assert run.wait().status == "finished"
    assert after.count == 1


def test_duplicate_reply_in_a_loop_does_not_advance_twice(h):
    h.register("step", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - iterator:
              on: [1, 2, 3]
              steps:
                - step
    """)
    ).wait()
    first = only(h.pending_for("step"))
    h.reply(first)
    h.reply(first)
    assert len(dispatched_to(h, "step")) == 2
    h.reply(only(h.pending_for("step")))
    h.reply(only(h.pending_for("step")))
    assert run.wait().status == "finished"
    assert len(dispatched_to(h, "step")) == 3


def test_reply_for_an_unknown_run_is_ignored(h):
    reason = h.engine.deliver(
        {
            "type": "reply",
            "wfid": "20991231-ffffffffffff",
            "workitem": {"fei": {"wfid": "20991231-ffffffffffff", "subid": "0_0-1"}},
        }
    )
    assert reason is not None and "unknown run" in reason


def test_reply_with_a_forged_subid_is_ignored(h):
    h.register("alpha", reply=False)
    run = h.launch(ALPHA_BETA).wait()
    alpha = only(h.pending_for("alpha"))
    forged = alpha.to_dict()
    forged["fei"] = {**forged["fei"], "subid": "0-1"}  # the root sequence, not waiting
    assert h.engine.deliver({"type": "reply", "wfid": run.wfid, "workitem": forged}) is not None
    assert run.status == "running"
    assert len(h.pending_for("alpha")) == 1


def test_cancel_of_a_failed_step_resolves_the_error_and_goes_on(h):
    register_calls(h, "alpha", always_fail=True)
    register_tracers(h, "beta")
    run = h.launch(ALPHA_BETA).wait()
    assert run.status == "error"
    run.cancel("0_0")
    assert run.wait().status == "finished"
    assert run.errors == []
    assert h.trace == ["alpha", "beta"]
    assert h.engine.list_errors() == []


def test_stale_reply_for_a_redone_step(h):
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: alpha
            timeout: 5s
            on_timeout: redo
          - beta
    """)
    ).wait()
    first = only(h.pending_for("alpha"))
    h.advance(5)
    assert deliver_reply(h, first) is not None
    h.pump()
    assert dispatched_to(h, "beta") == []
    assert len(dispatched_to(h, "alpha")) == 2
    assert run.status == "running"


def test_kill_ends_forgotten_branches_too(h):
    h.register("a", reply=False)
    h.register("b", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: a
            forget: true
          - b
    """)
    ).wait()
    run.kill()
    assert run.status == "killed"
    assert sorted((c.participant, c.flavour) for c in h.cancelled) == [("a", "kill"), ("b", "kill")]
