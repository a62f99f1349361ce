"""``timeout`` / ``on_timeout`` and ``retry`` (process language, section 4)."""

from __future__ import annotations

import pytest

from engine.core.interpreter import iso
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


def held_then_beta(timeout: str, extra: str = "") -> str:
    return definition(f"""
        name: t
        steps:
          - participant: alpha
            timeout: {timeout}
        {extra}
          - beta
    """)


# ---------------------------------------------------------------------------
# timeout: every duration form


DURATIONS = [
    ("5s", 5.0),
    ("500ms", 0.5),
    ("0.3s", 0.3),
    ("1.5s", 1.5),
    ("5m", 300.0),
    ("2h", 7200.0),
    ("1h30m", 5400.0),
    ("1m30s", 90.0),
    ("1.5h", 5400.0),
    ("1d", 86400.0),
    ("2w", 1209600.0),
    ("1s500ms", 1.5),
    ('"1h 30m"', 5400.0),
    ("250ms", 0.25),
    ("10", 10.0),
    ("2.5", 2.5),
    ('"7"', 7.0),
]


@pytest.mark.parametrize(("text", "seconds"), DURATIONS, ids=[d[0] for d in DURATIONS])
def test_timeout_fires_exactly_after_the_duration(h, text, seconds):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    run = h.launch(held_then_beta(text)).wait()
    assert h.next_timer() == pytest.approx(seconds)
    h.advance(seconds * 0.99)
    assert run.status == "running"
    assert len(h.pending_for("alpha")) == 1
    assert h.trace == []
    h.advance(seconds * 0.02)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["beta"]
    assert run.fields["__timed_out__"]["timeout"] == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("expr", "fields", "seconds"),
    [
        ('"${t}"', {"t": "2m"}, 120.0),
        ('"${t}"', {"t": "1h30m"}, 5400.0),
        ('"${t}"', {"t": 45}, 45.0),
        ('"${t}"', {"t": "0.5s"}, 0.5),
        ('"${n}s"', {"n": 3}, 3.0),
        ('"${n}m${k}s"', {"n": 1, "k": 5}, 65.0),
        ('"${v:limit}"', {}, 30.0),
    ],
)
def test_timeout_is_substituted(h, expr, fields, seconds):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    src = definition(f"""
        name: t
        variables:
          limit: 30s
        steps:
          - participant: alpha
            timeout: {expr}
          - beta
    """)
    run = h.launch(src, fields=fields).wait()
    assert h.next_timer() == pytest.approx(seconds)
    h.advance(seconds * 0.99)
    assert run.status == "running"
    h.advance(seconds * 0.02)
    assert run.wait().status == "finished"
    assert run.fields["__timed_out__"]["timeout"] == pytest.approx(seconds)


def test_timeout_that_does_not_parse_after_substitution_is_a_run_error(h):
    # engine choice (the spec is silent): an error of the run at that step
    h.register("alpha", reply=False)
    run = h.launch(held_then_beta('"${t}"'), fields={"t": "soon"}).wait()
    assert run.status == "error"
    err = only(run.errors)
    assert err["class"] == "DurationError"
    assert err["expid"] == "0_0"
    assert h.dispatched == []


# ---------------------------------------------------------------------------
# on_timeout: cancel (the default)


@pytest.mark.parametrize("on_timeout", [None, "cancel"])
def test_default_on_timeout_cancels_marks_and_goes_on(hx, on_timeout):
    h = hx
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    extra = f"    on_timeout: {on_timeout}" if on_timeout else ""
    run = h.launch(held_then_beta("5s", extra)).wait()
    held = only(h.pending_for("alpha"))
    h.advance(5)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["beta"]
    assert run.fields["__timed_out__"] == {"expid": "0_0", "timeout": 5.0, "at": iso(START + 5)}
    notice = only(h.cancelled)
    assert notice.participant == "alpha"
    assert notice.fei["subid"] == held.fei["subid"]
    assert notice.flavour == "cancel"
    assert h.pending == {}
    # beta saw the mark too
    assert "__timed_out__" in only(dispatched_to(h, "beta")).fields


def test_late_reply_after_timeout_is_ignored(hx):
    h = hx
    h.register("alpha", reply=False)
    h.register("gamma", reply=False)
    src = definition("""
        name: t
        steps:
          - participant: alpha
            timeout: 5s
          - gamma
    """)
    run = h.launch(src).wait()
    held = only(h.pending_for("alpha"))
    h.advance(5)
    assert len(dispatched_to(h, "gamma")) == 1
    held.fields["late"] = True
    h.reply(held)
    assert len(dispatched_to(h, "gamma")) == 1
    assert run.status == "running"
    h.reply(only(h.pending_for("gamma")))
    assert run.wait().status == "finished"
    assert "late" not in run.fields


def test_reply_before_the_timeout_cancels_the_timer(h):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    run = h.launch(held_then_beta("5s")).wait()
    assert h.next_timer() == pytest.approx(5)
    h.advance(2)
    h.reply(only(h.pending_for("alpha")))
    assert run.wait().status == "finished"
    assert h.next_timer() is None
    h.advance(100)
    assert "__timed_out__" not in run.fields
    assert h.cancelled == []


def test_timeout_clock_starts_when_the_step_is_applied(h):
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    src = definition("""
        name: t
        steps:
          - alpha
          - participant: beta
            timeout: 5s
    """)
    run = h.launch(src).wait()
    assert h.next_timer() is None
    h.advance(100)
    h.reply(only(h.pending_for("alpha")))
    assert h.next_timer() == pytest.approx(5)
    h.advance(4.9)
    assert len(h.pending_for("beta")) == 1
    h.advance(0.2)
    assert run.wait().status == "finished"
    assert run.fields["__timed_out__"]["at"] == iso(h.clock.now)
    assert h.clock.now == pytest.approx(START + 105.1)


def test_timeout_on_a_wait_step(h):
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - wait: 1h
            timeout: 10s
          - beta
    """)
    run = h.launch(src).wait()
    assert h.next_timer() == pytest.approx(10)
    h.advance(10)
    assert run.wait().status == "finished"
    assert h.trace == ["beta"]
    assert run.fields["__timed_out__"]["expid"] == "0_0"
    assert h.next_timer() is None  # the wait's own timer went with it


def test_timeout_then_cancel_of_the_run_removes_the_timer(h):
    h.register("alpha", reply=False)
    run = h.launch(held_then_beta("5s")).wait()
    run.cancel()
    assert run.status == "cancelled"
    assert h.next_timer() is None


# ---------------------------------------------------------------------------
# on_timeout: error, redo


def test_on_timeout_error_is_a_replayable_run_error(hx):
    h = hx
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    run = h.launch(held_then_beta("5s", "    on_timeout: error")).wait()
    first = only(h.pending_for("alpha"))
    h.advance(5)
    run.wait()
    assert run.status == "error"
    err = only(run.errors)
    assert err["class"] == "TimeoutError"
    assert "timed out" in err["message"]
    assert err["expid"] == "0_0"
    assert err["participant"] == "alpha"
    assert err["at"] == iso(START + 5)
    assert only(h.cancelled).fei["subid"] == first.fei["subid"]
    assert h.trace == []
    # the old workitem answering now changes nothing
    h.reply(first)
    assert run.status == "error"
    assert h.trace == []
    run.replay()
    assert len(dispatched_to(h, "alpha")) == 2
    assert run.errors == []
    assert run.status == "running"
    h.reply(only(h.pending_for("alpha")))
    assert run.wait().status == "finished"
    assert h.trace == ["beta"]


def test_on_timeout_error_is_caught_by_an_enclosing_on_error(h):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - sequence:
              - participant: alpha
                timeout: 5s
                on_timeout: error
            on_error: pass
          - beta
    """)
    run = h.launch(src).wait()
    h.advance(5)
    assert run.wait().status == "finished"
    assert run.fields["__error__"]["class"] == "TimeoutError"
    assert run.fields["__error__"]["expid"] == "0_0_0"
    assert h.trace == ["beta"]


@pytest.mark.parametrize("times_out", [1, 2, 3])
def test_on_timeout_redo_reapplies_the_step(h, times_out):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    run = h.launch(held_then_beta("5s", "    on_timeout: redo")).wait()
    for n in range(times_out):
        assert len(dispatched_to(h, "alpha")) == n + 1
        assert h.next_timer() == pytest.approx(5)
        h.advance(5)
    assert len(dispatched_to(h, "alpha")) == times_out + 1
    assert len(h.cancelled) == times_out
    assert h.trace == []
    h.reply(only(h.pending_for("alpha")))
    assert run.wait().status == "finished"
    assert h.trace == ["beta"]
    assert "__timed_out__" not in run.fields  # redo re-applies with the original workitem


def test_timeout_error_and_retry(h):
    # engine choice: `on_timeout: error` makes the step fail, so `retry` applies
    h.register("alpha", reply=False)
    src = definition("""
        name: t
        steps:
          - participant: alpha
            timeout: 5s
            on_timeout: error
            retry: 1
          - beta
    """)
    run = h.launch(src).wait()
    h.advance(5)
    assert len(dispatched_to(h, "alpha")) == 2
    assert run.status == "running"
    h.advance(5)
    assert run.status == "error"
    assert len(dispatched_to(h, "alpha")) == 2


# ---------------------------------------------------------------------------
# on_timeout: cursor commands


CURSOR_ON_TIMEOUT = [
    ("jump d", ["a", "d"]),
    ("skip 1", ["a", "d"]),
    ("skip 2", ["a"]),
    ("break", ["a"]),
]


@pytest.mark.parametrize(("command", "trace"), CURSOR_ON_TIMEOUT)
def test_on_timeout_cursor_command(h, command, trace):
    register_tracers(h, "a", "c", "d", "after")
    h.register("slow", reply=False)
    src = definition(f"""
        name: t
        steps:
          - cursor:
              - a
              - participant: slow
                timeout: 5s
                on_timeout: {command}
              - c
              - d
          - after
    """)
    run = h.launch(src).wait()
    h.advance(5)
    assert run.wait().status == "finished"
    assert h.trace == [*trace, "after"]
    assert len(h.cancelled) == 1


def test_on_timeout_rewind(h):
    register_tracers(h, "a", "c")
    h.register("slow", reply=False)
    src = definition("""
        name: t
        steps:
          - cursor:
              - a
              - participant: slow
                timeout: 5s
                on_timeout: rewind
              - c
    """)
    run = h.launch(src).wait()
    h.advance(5)
    assert h.trace == ["a", "a"]
    h.reply(only(h.pending_for("slow")))
    assert run.wait().status == "finished"
    assert h.trace == ["a", "a", "c"]


# ---------------------------------------------------------------------------
# on_timeout: a participant or a subprocess instead


def test_on_timeout_participant_runs_instead(hx):
    h = hx
    h.register("alpha", reply=False)
    fallback = register_calls(h, "fallback", change={"fell_back": True})
    register_tracers(h, "beta")
    run = h.launch(held_then_beta("5s", "    on_timeout: fallback")).wait()
    assert fallback.count == 0
    h.advance(5)
    assert run.wait().status == "finished"
    assert fallback.count == 1
    assert fallback.seen[0]["__timed_out__"]["expid"] == "0_0"
    assert h.trace == ["fallback", "beta"]
    assert run.fields["fell_back"] is True
    assert only(h.cancelled).participant == "alpha"


def test_on_timeout_subprocess_runs_instead(h):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        subprocesses:
          recover:
            - echo: "recovering ${__timed_out__.expid} after ${__timed_out__.timeout}"
            - set: {recovered: true}
        steps:
          - participant: alpha
            timeout: 5s
            on_timeout: recover
          - beta
    """)
    run = h.launch(src).wait()
    h.advance(5)
    assert run.wait().status == "finished"
    assert h.trace == ["recovering 0_0 after 5.0", "beta"]
    assert run.fields["recovered"] is True


# ---------------------------------------------------------------------------
# timeout on containers and concurrences


def test_timeout_on_a_sequence_cancels_its_waiting_child(hx):
    h = hx
    h.register("a", reply=False)
    register_tracers(h, "b", "beta")
    src = definition("""
        name: t
        steps:
          - sequence:
              - a
              - b
            timeout: 10s
          - beta
    """)
    run = h.launch(src).wait()
    held = only(h.pending_for("a"))
    h.advance(10)
    assert run.wait().status == "finished"
    assert h.trace == ["beta"]
    assert cancelled_subids(h) == [held.fei["subid"]]
    assert run.fields["__timed_out__"]["expid"] == "0_0"


def test_timeout_on_a_concurrence_cancels_every_branch(h):
    h.register("a", reply=False)
    h.register("b", reply=False)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - concurrence:
              - a
              - b
            timeout: 1m
          - beta
    """)
    run = h.launch(src).wait()
    subids = sorted(wi.fei["subid"] for wi in h.pending.values())
    assert len(subids) == 2
    h.advance(60)
    assert run.wait().status == "finished"
    assert sorted(cancelled_subids(h)) == subids
    assert h.trace == ["beta"]
    assert run.fields["__timed_out__"]["expid"] == "0_0"


def test_timeout_on_one_concurrence_branch(hx):
    h = hx
    h.register("a", reply=False)
    h.register("b", reply=False)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - concurrence:
              - participant: a
                timeout: 5s
              - b
          - beta
    """)
    run = h.launch(src).wait()
    b = only(h.pending_for("b"))
    h.advance(5)
    assert [c.participant for c in h.cancelled] == ["a"]
    assert run.status == "running"
    assert h.trace == []
    b.fields["from_b"] = 1
    h.reply(b)
    assert run.wait().status == "finished"
    assert h.trace == ["beta"]
    assert run.fields["__timed_out__"]["expid"] == "0_0_0"


def test_timeouts_of_different_branches_fire_independently(h):
    h.register("a", reply=False)
    h.register("b", reply=False)
    src = definition("""
        name: t
        steps:
          - concurrence:
              - participant: a
                timeout: 5s
              - participant: b
                timeout: 10s
    """)
    run = h.launch(src).wait()
    h.advance(5)
    assert [c.participant for c in h.cancelled] == ["a"]
    assert len(h.pending_for("b")) == 1
    assert h.next_timer() == pytest.approx(5)
    h.advance(5)
    assert [c.participant for c in h.cancelled] == ["a", "b"]
    assert run.wait().status == "finished"


def test_a_branch_timeout_with_on_timeout_error_stops_only_that_branch(h):
    h.register("a", reply=False)
    h.register("b", reply=False)
    src = definition("""
        name: t
        steps:
          - concurrence:
              - participant: a
                timeout: 5s
                on_timeout: error
              - b
    """)
    run = h.launch(src).wait()
    h.advance(5)
    assert run.status == "error"
    assert only(run.errors)["expid"] == "0_0_0"
    # the other branch goes on
    assert len(h.pending_for("b")) == 1
    h.reply(only(h.pending_for("b")))
    assert run.status == "error"
    run.replay()
    h.reply(only(h.pending_for("a")))
    assert run.wait().status == "finished"


def test_process_level_timeout(h):
    # engine choice: a process-level timeout (default on_timeout: cancel)
    # cancels the body and the run ends as finished with __timed_out__
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        timeout: 1m
        steps:
          - alpha
          - beta
    """)
    run = h.launch(src).wait()
    h.advance(60)
    assert run.wait().status == "finished"
    assert h.trace == []
    assert only(h.cancelled).participant == "alpha"
    assert run.fields["__timed_out__"]["expid"] == "0"


def test_timeout_inside_a_subprocess(h):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        subprocesses:
          sub:
            - participant: alpha
              timeout: 3s
        steps:
          - sub
          - beta
    """)
    run = h.launch(src).wait()
    h.advance(3)
    assert run.wait().status == "finished"
    assert run.fields["__timed_out__"]["expid"] == "sub/0_0"
    assert h.trace == ["beta"]


def test_timeout_in_a_loop_is_armed_per_iteration(h):
    h.register("slow", reply=False)
    src = definition("""
        name: t
        steps:
          - iterator:
              on: [1, 2, 3]
              steps:
                - participant: slow
                  timeout: 5s
    """)
    run = h.launch(src).wait()
    for n in range(1, 4):
        assert len(dispatched_to(h, "slow")) == n
        assert h.next_timer() == pytest.approx(5)
        h.advance(5)
    assert run.wait().status == "finished"
    assert len(h.cancelled) == 3


def test_timed_out_step_has_one_timed_out_record(h):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    run = h.launch(held_then_beta("5s")).wait()
    h.advance(5)
    run.wait()
    recs = step_records(h, run, "alpha")
    assert [(ev, out) for _, _, ev, out in recs] == [("triggered", None), ("finished", "TIMED_OUT")]


# ---------------------------------------------------------------------------
# retry


@pytest.mark.parametrize("times", [0, 1, 2, 3, 5])
def test_retry_count_gives_times_plus_one_attempts(h, times):
    flaky = register_calls(h, "flaky", always_fail=True)
    register_tracers(h, "beta")
    src = definition(f"""
        name: t
        steps:
          - participant: flaky
            retry: {times}
          - beta
    """)
    run = h.launch(src).wait()
    assert flaky.count == times + 1
    assert run.status == "error"
    assert only(run.errors)["participant"] == "flaky"
    assert h.trace == ["flaky"] * (times + 1)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_retry_succeeds_on_the_kth_attempt(hx, k):
    h = hx
    flaky = register_calls(h, "flaky", fail_on=tuple(range(1, k)))
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - participant: flaky
            retry: 3
          - beta
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert flaky.count == k
    assert run.errors == []
    assert h.trace == ["flaky"] * k + ["beta"]
    assert "__error__" not in run.fields


def test_retry_mapping_without_delay(h):
    flaky = register_calls(h, "flaky", always_fail=True)
    src = definition("""
        name: t
        steps:
          - participant: flaky
            retry: {times: 2}
    """)
    run = h.launch(src).wait()
    assert flaky.count == 3
    assert run.status == "error"
    assert h.next_timer() is None


RETRY_DELAYS = [
    ("10s", None, [10, 10, 10]),
    ("10s", 2, [10, 20, 40]),
    ("1m", 1, [60, 60, 60]),
    ("500ms", 3, [0.5, 1.5, 4.5]),
    ("2s", 1.5, [2, 3, 4.5]),
    ("1h", 2, [3600, 7200, 14400]),
]


@pytest.mark.parametrize(("delay", "backoff", "waits"), RETRY_DELAYS)
def test_retry_delays_between_attempts(hx, delay, backoff, waits):
    h = hx
    flaky = register_calls(h, "flaky", always_fail=True)
    backoff_s = f", backoff: {backoff}" if backoff is not None else ""
    src = definition(f"""
        name: t
        steps:
          - participant: flaky
            retry: {{times: 3, delay: {delay}{backoff_s}}}
    """)
    run = h.launch(src).wait()
    for attempt, wait in enumerate(waits, start=1):
        assert flaky.count == attempt
        assert run.status == "running"
        assert run.errors == []
        assert h.next_timer() == pytest.approx(wait)
        h.advance(wait * 0.99)
        assert flaky.count == attempt
        h.advance(wait * 0.02)
    assert flaky.count == 4
    assert run.status == "error"
    assert h.next_timer() is None


def test_retry_exhaustion_then_on_error_pass(h):
    flaky = register_calls(h, "flaky", always_fail=True, message="still broken")
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - participant: flaky
            retry: 2
            on_error: pass
          - beta
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert flaky.count == 3
    assert run.fields["__error__"]["message"] == "still broken"
    assert h.trace[-1] == "beta"


def test_retry_exhaustion_then_on_error_handler(h):
    register_calls(h, "flaky", always_fail=True)
    handler = register_calls(h, "handler")
    src = definition("""
        name: t
        steps:
          - participant: flaky
            retry: {times: 1, delay: 1s}
            on_error: handler
    """)
    run = h.launch(src).wait()
    assert handler.count == 0  # not before the retries ran out
    h.advance(1)
    assert run.wait().status == "finished"
    assert handler.count == 1
    assert handler.seen[0]["__error__"]["participant"] == "flaky"


def test_retry_exhaustion_then_enclosing_on_error(h):
    flaky = register_calls(h, "flaky", always_fail=True)
    register_tracers(h, "skipped", "beta")
    src = definition("""
        name: t
        steps:
          - sequence:
              - participant: flaky
                retry: 1
              - skipped
            on_error: pass
          - beta
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert flaky.count == 2
    assert "skipped" not in h.trace
    assert h.trace[-1] == "beta"


def test_retry_success_before_exhaustion_skips_on_error(h):
    flaky = register_calls(h, "flaky", fail_on=(1,))
    handler = register_calls(h, "handler")
    src = definition("""
        name: t
        steps:
          - participant: flaky
            retry: 1
            on_error: handler
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert flaky.count == 2
    assert handler.count == 0


def test_retry_on_a_container_reapplies_the_whole_container(hx):
    h = hx
    a = register_calls(h, "a")
    b = register_calls(h, "b", fail_on=(1, 2))
    register_tracers(h, "after")
    src = definition("""
        name: t
        steps:
          - sequence:
              - a
              - b
            retry: 2
          - after
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert a.count == 3
    assert b.count == 3
    assert h.trace == ["a", "b", "a", "b", "a", "b", "after"]


def test_retry_on_a_container_exhausted(h):
    a = register_calls(h, "a")
    b = register_calls(h, "b", always_fail=True)
    src = definition("""
        name: t
        steps:
          - sequence:
              - a
              - b
            retry: 1
    """)
    run = h.launch(src).wait()
    assert run.status == "error"
    assert (a.count, b.count) == (2, 2)
    assert only(run.errors)["participant"] == "b"


def test_inner_and_outer_retry_multiply(h):
    b = register_calls(h, "b", always_fail=True)
    src = definition("""
        name: t
        steps:
          - sequence:
              - participant: b
                retry: 1
            retry: 2
    """)
    run = h.launch(src).wait()
    assert run.status == "error"
    assert b.count == 6


def test_retry_on_a_container_with_delay(h):
    a = register_calls(h, "a")
    register_calls(h, "b", fail_on=(1,))
    src = definition("""
        name: t
        steps:
          - sequence:
              - a
              - b
            retry: {times: 1, delay: 30s}
    """)
    run = h.launch(src).wait()
    assert a.count == 1
    assert h.next_timer() == pytest.approx(30)
    h.advance(30)
    assert run.wait().status == "finished"
    assert a.count == 2


def test_retry_of_an_error_reply_redispatches_a_new_workitem(h):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - participant: alpha
            retry: 1
          - beta
    """)
    run = h.launch(src).wait()
    first = only(h.pending_for("alpha"))
    h.reply(first, error="nope")
    second = only(h.pending_for("alpha"))
    assert second.fei["subid"] != first.fei["subid"]
    assert run.status == "running"
    h.reply(second)
    assert run.wait().status == "finished"
    assert h.trace == ["beta"]


def test_retry_reapplies_with_the_original_workitem(h):
    seen = []

    def dirty(wi):
        seen.append(dict(wi.fields))
        wi.fields["dirt"] = len(seen)
        if len(seen) < 3:
            raise RuntimeError("fail")

    h.register("dirty", dirty)
    src = definition("""
        name: t
        steps:
          - participant: dirty
            retry: 3
    """)
    run = h.launch(src, fields={"x": 1}).wait()
    assert run.status == "finished"
    assert len(seen) == 3
    assert all("dirt" not in s for s in seen)
    assert all(s["x"] == 1 for s in seen)
    assert run.fields["dirt"] == 3


def test_retry_of_an_error_expression(h):
    src = definition("""
        name: t
        steps:
          - sequence:
              - echo: try
              - error: "bad ${x}"
            retry: 2
    """)
    run = h.launch(src, fields={"x": "luck"}).wait()
    assert run.status == "error"
    assert h.trace == ["try"] * 3
    assert only(run.errors)["message"] == "bad luck"


def test_cancel_during_a_retry_delay(h):
    flaky = register_calls(h, "flaky", always_fail=True)
    src = definition("""
        name: t
        steps:
          - participant: flaky
            retry: {times: 3, delay: 10s}
    """)
    run = h.launch(src).wait()
    assert h.next_timer() == pytest.approx(10)
    run.cancel()
    assert run.status == "cancelled"
    assert h.next_timer() is None
    h.advance(100)
    assert flaky.count == 1


def test_each_retry_attempt_has_its_own_records(h):
    register_calls(h, "flaky", fail_on=(1, 2))
    src = definition("""
        name: t
        steps:
          - participant: flaky
            retry: 3
    """)
    run = h.launch(src).wait()
    recs = step_records(h, run, "flaky")
    eids = list(dict.fromkeys(r[0] for r in recs))
    assert len(eids) == 3
    for eid, outcome in zip(eids, ["FAILED", "FAILED", "SUCCESSFUL"], strict=True):
        assert [(ev, out) for e, _, ev, out in recs if e == eid] == [
            ("triggered", None),
            ("finished", outcome),
        ]


def test_retry_in_a_concurrence_branch(h):
    flaky = register_calls(h, "flaky", fail_on=(1, 2))
    steady = register_calls(h, "steady")
    src = definition("""
        name: t
        steps:
          - concurrence:
              - participant: flaky
                retry: 2
              - steady
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert (flaky.count, steady.count) == (3, 1)


def test_on_timeout_error_handled_by_the_steps_own_on_error(h):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - participant: alpha
            timeout: 5s
            on_timeout: error
            on_error: pass
          - beta
    """)
    run = h.launch(src).wait()
    h.advance(5)
    assert run.wait().status == "finished"
    err = run.fields["__error__"]
    assert (err["class"], err["expid"], err["participant"]) == ("TimeoutError", "0_0", "alpha")
    assert h.trace == ["beta"]


def test_on_timeout_error_on_a_container_then_replay_restarts_it(h):
    h.register("alpha", reply=False)
    register_tracers(h, "a0", "beta")
    src = definition("""
        name: t
        steps:
          - sequence:
              - a0
              - alpha
            timeout: 5s
            on_timeout: error
          - beta
    """)
    run = h.launch(src).wait()
    h.advance(5)
    assert run.status == "error"
    err = only(run.errors)
    assert (err["class"], err["expid"]) == ("TimeoutError", "0_0")
    assert "participant" not in err
    assert [(p.kind, p.state) for p in run.positions] == [("sequence", "failed")]
    assert only(h.cancelled).participant == "alpha"
    run.replay()
    assert h.trace == ["a0", "a0"]
    assert h.next_timer() == pytest.approx(5)  # the timeout is armed again
    h.reply(only(h.pending_for("alpha")))
    assert run.wait().status == "finished"
    assert h.trace == ["a0", "a0", "beta"]


def test_a_failed_step_keeps_no_timeout_and_replay_rearms_it(h):
    h.register("alpha", reply=False)
    src = definition("""
        name: t
        steps:
          - participant: alpha
            timeout: 5s
    """)
    run = h.launch(src).wait()
    h.reply(only(h.pending_for("alpha")), error="nope")
    assert run.status == "error"
    assert h.next_timer() is None
    h.advance(10)
    assert run.status == "error"  # a failed step does not time out
    run.replay()
    assert h.next_timer() == pytest.approx(5)
    h.advance(5)
    assert run.wait().status == "finished"
    assert "__timed_out__" in run.fields


def test_timeout_fired_while_paused_beats_a_reply_held_after_it(h):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    run = h.launch(held_then_beta("5s")).wait()
    run.pause()
    h.advance(6)
    alpha = only(h.pending_for("alpha"))
    alpha.fields["late"] = True
    h.reply(alpha)
    run.resume()
    assert run.wait().status == "finished"
    assert "late" not in run.fields
    assert run.fields["__timed_out__"]["at"] == iso(START + 6)
    assert h.trace == ["beta"]


def test_replay_after_retries_ran_out_retries_again(h):
    # engine choice: replay re-applies the step afresh, with its retries
    flaky = register_calls(h, "flaky", always_fail=True)
    src = definition("""
        name: t
        steps:
          - participant: flaky
            retry: 2
    """)
    run = h.launch(src).wait()
    assert flaky.count == 3
    run.replay()
    assert flaky.count == 6
    assert run.status == "error"
    assert len(run.errors) == 1


def test_the_error_after_retries_is_dated_at_the_last_attempt(h):
    register_calls(h, "flaky", always_fail=True)
    src = definition("""
        name: t
        steps:
          - participant: flaky
            retry: {times: 2, delay: 10s}
    """)
    run = h.launch(src).wait()
    h.advance(10)
    h.advance(10)
    assert run.status == "error"
    assert only(run.errors)["at"] == iso(START + 20)


def test_a_skipped_step_arms_no_timeout(h):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - participant: alpha
            if: "${go} == yes"
            timeout: 5s
          - beta
    """)
    run = h.launch(src, fields={"go": "no"}).wait()
    assert run.status == "finished"
    assert h.next_timer() is None
    assert h.dispatched[0].participant_name == "beta"


def test_on_timeout_redo_in_a_concurrence_branch(h):
    h.register("a", reply=False)
    register_tracers(h, "b")
    src = definition("""
        name: t
        steps:
          - concurrence:
              - participant: a
                timeout: 5s
                on_timeout: redo
              - b
    """)
    run = h.launch(src).wait()
    h.advance(5)
    assert len(dispatched_to(h, "a")) == 2
    assert run.status == "running"
    h.reply(only(h.pending_for("a")))
    assert run.wait().status == "finished"
