"""``on_error``, ``on_cancel`` and ``forget`` (process language, section 4)."""

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
)

# ---------------------------------------------------------------------------
# on_error: pass


def test_on_error_pass_keeps_the_error_in_fields(hx):
    h = hx
    register_calls(h, "bad", always_fail=True, message="disk full", exc=OSError)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - participant: bad
            on_error: pass
          - beta
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert run.errors == []
    assert run.fields["__error__"] == {
        "message": "disk full",
        "class": "OSError",
        "expid": "0_0",
        "participant": "bad",
        "at": iso(START),
    }
    assert h.trace == ["bad", "beta"]
    assert only(dispatched_to(h, "beta")).fields["__error__"]["message"] == "disk full"


def test_on_error_pass_on_an_error_expression(h):
    src = definition("""
        name: t
        steps:
          - error: "cannot build ${project}"
            on_error: pass
          - echo: "after ${__error__.message}"
    """)
    run = h.launch(src, fields={"project": "p1"}).wait()
    assert run.status == "finished"
    err = run.fields["__error__"]
    assert err["message"] == "cannot build p1"
    assert err["class"] == "ProcessError"
    assert err["expid"] == "0_0"
    assert "participant" not in err
    assert h.trace == ["after cannot build p1"]


def test_on_error_pass_on_an_error_reply(h):
    h.register("alpha", reply=False)
    src = definition("""
        name: t
        steps:
          - participant: alpha
            on_error: pass
    """)
    run = h.launch(src).wait()
    h.advance(30)
    h.reply(only(h.pending_for("alpha")), error="remote failure")
    assert run.wait().status == "finished"
    err = run.fields["__error__"]
    assert err["message"] == "remote failure"
    assert err["participant"] == "alpha"
    assert err["at"] == iso(START + 30)


def test_on_error_pass_on_a_container_skips_the_rest_of_it(h):
    register_calls(h, "bad", always_fail=True)
    register_tracers(h, "skipped", "beta")
    src = definition("""
        name: t
        steps:
          - sequence:
              - bad
              - skipped
            on_error: pass
          - beta
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert h.trace == ["bad", "beta"]
    assert run.fields["__error__"]["expid"] == "0_0_0"


# ---------------------------------------------------------------------------
# on_error: redo, cancel, raise


def test_on_error_redo(h):
    flaky = register_calls(h, "flaky", fail_on=(1, 2))
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - participant: flaky
            on_error: redo
          - beta
    """)
    run = h.launch(src, fields={"x": 1}).wait()
    assert run.status == "finished"
    assert flaky.count == 3
    assert h.trace == ["flaky", "flaky", "flaky", "beta"]
    # redo re-applies with the workitem the step received
    assert all("__error__" not in seen for seen in flaky.seen)
    assert "__error__" not in run.fields


def test_on_error_redo_on_a_container(h):
    a = register_calls(h, "a")
    b = register_calls(h, "b", fail_on=(1,))
    src = definition("""
        name: t
        steps:
          - sequence:
              - a
              - b
            on_error: redo
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert (a.count, b.count) == (2, 2)


def test_on_error_cancel_drops_the_step_and_goes_on(h):
    bad = register_calls(h, "bad", always_fail=True, change={"never": 1})
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - participant: bad
            on_error: cancel
          - beta
    """)
    run = h.launch(src, fields={"x": 1}).wait()
    assert run.status == "finished"
    assert bad.count == 1
    assert h.trace == ["bad", "beta"]
    assert run.fields == {"x": 1}


def test_on_error_cancel_on_a_concurrence_cancels_the_other_branches(h):
    register_calls(h, "bad", always_fail=True)
    h.register("slow", reply=False)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - concurrence:
              - slow
              - bad
            on_error: cancel
          - beta
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert "slow" in [c.participant for c in h.cancelled]
    assert h.pending == {}
    assert h.trace == ["bad", "beta"]


def test_on_error_raise_hands_the_error_to_the_enclosing_handler(h):
    register_calls(h, "bad", always_fail=True)
    outer = register_calls(h, "outer")
    register_tracers(h, "skipped", "beta")
    src = definition("""
        name: t
        steps:
          - sequence:
              - participant: bad
                on_error: raise
              - skipped
            on_error: outer
          - beta
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert outer.count == 1
    assert outer.seen[0]["__error__"]["participant"] == "bad"
    assert h.trace == ["bad", "outer", "beta"]


def test_on_error_raise_without_an_enclosing_handler_is_a_run_error(h):
    register_calls(h, "bad", always_fail=True)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - participant: bad
            on_error: raise
          - beta
    """)
    run = h.launch(src).wait()
    assert run.status == "error"
    assert only(run.errors)["participant"] == "bad"
    assert h.trace == ["bad"]


# ---------------------------------------------------------------------------
# on_error: cursor commands


def test_on_error_rewind(hx):
    h = hx
    register_tracers(h, "a", "c")
    register_calls(h, "flaky", fail_on=(1,))
    src = definition("""
        name: t
        steps:
          - cursor:
              - a
              - participant: flaky
                on_error: rewind
              - c
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert h.trace == ["a", "flaky", "a", "flaky", "c"]


ON_ERROR_COMMANDS = [
    ("jump d", ["a", "bad", "d", "after"]),
    ("jump 3", ["a", "bad", "d", "after"]),
    ("skip 1", ["a", "bad", "d", "after"]),
    ("skip 2", ["a", "bad", "after"]),
    ("break", ["a", "bad", "after"]),
]


@pytest.mark.parametrize(("command", "trace"), ON_ERROR_COMMANDS)
def test_on_error_cursor_command(h, command, trace):
    register_tracers(h, "a", "c", "d", "after")
    register_calls(h, "bad", always_fail=True)
    src = definition(f"""
        name: t
        steps:
          - cursor:
              - a
              - participant: bad
                on_error: {command}
              - c
              - d
          - after
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert h.trace == trace


def test_on_error_jump_to_a_tag_sees_the_error(h):
    register_calls(h, "bad", always_fail=True, message="compile error")
    register_tracers(h, "c")
    src = definition("""
        name: t
        steps:
          - cursor:
              - participant: bad
                on_error: jump report
              - c
              - echo: "report: ${__error__.message}"
                tag: report
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert h.trace == ["bad", "report: compile error"]


def test_on_error_command_in_a_nested_step_acts_on_the_nearest_cursor(h):
    register_tracers(h, "a", "c", "d")
    register_calls(h, "bad", always_fail=True)
    src = definition("""
        name: t
        steps:
          - cursor:
              - a
              - sequence:
                  - participant: bad
                    on_error: jump d
                  - c
              - c
              - d
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert h.trace == ["a", "bad", "d"]


def test_on_error_break_in_an_iterator(h):
    seen = []

    def item(wi):
        seen.append(wi.params["n"])
        if wi.params["n"] == 2:
            raise RuntimeError("two")

    h.register("item", item)
    src = definition("""
        name: t
        steps:
          - iterator:
              on: [1, 2, 3, 4]
              to: n
              steps:
                - item: {n: "$v:n"}
                  on_error: break
          - echo: done
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert seen == [1, 2]
    assert h.trace == ["done"]


# ---------------------------------------------------------------------------
# on_error: a participant or subprocess in its place


def test_on_error_participant_runs_in_place_and_sees_the_error(hx):
    h = hx
    register_calls(h, "bad", always_fail=True, message="it broke")
    handler = register_calls(h, "fixer", change={"fixed": True})
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - participant: bad
            on_error: fixer
          - beta
    """)
    run = h.launch(src, fields={"x": 1}).wait()
    assert run.status == "finished"
    assert handler.count == 1
    err = handler.seen[0]["__error__"]
    assert err["message"] == "it broke"
    assert err["class"] == "RuntimeError"
    assert err["expid"] == "0_0"
    assert err["participant"] == "bad"
    assert handler.seen[0]["x"] == 1
    assert run.fields["fixed"] is True
    assert h.trace == ["bad", "fixer", "beta"]


def test_on_error_subprocess_runs_in_place_and_sees_the_error(h):
    register_calls(h, "bad", always_fail=True, message="it broke")
    register_tracers(h, "beta")
    src = definition("""
        name: t
        subprocesses:
          recover:
            - echo: "recovering from ${__error__.message} at ${__error__.expid}"
            - set: {recovered: true}
        steps:
          - participant: bad
            on_error: recover
          - beta
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert h.trace == ["bad", "recovering from it broke at 0_0", "beta"]
    assert run.fields["recovered"] is True


def test_nearest_enclosing_handler_wins(h):
    register_calls(h, "bad", always_fail=True)
    inner = register_calls(h, "inner")
    outer = register_calls(h, "outer")
    src = definition("""
        name: t
        on_error: outer
        steps:
          - sequence:
              - sequence:
                  - bad
                on_error: inner
            on_error: outer
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert (inner.count, outer.count) == (1, 0)


def test_step_handler_beats_the_container_handler(h):
    register_calls(h, "bad", always_fail=True)
    register_tracers(h, "c")
    outer = register_calls(h, "outer")
    src = definition("""
        name: t
        steps:
          - sequence:
              - participant: bad
                on_error: pass
              - c
            on_error: outer
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert outer.count == 0
    assert h.trace == ["bad", "c"]


def test_process_level_on_error(hx):
    h = hx
    register_calls(h, "bad", always_fail=True, message="nope")
    admin = register_calls(h, "notify_admin")
    register_tracers(h, "a", "skipped")
    src = definition("""
        name: t
        on_error: notify_admin
        steps:
          - a
          - bad
          - skipped
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert admin.count == 1
    assert admin.seen[0]["__error__"]["message"] == "nope"
    assert admin.seen[0]["__error__"]["participant"] == "bad"
    assert h.trace == ["a", "bad", "notify_admin"]


def test_process_level_on_error_pass(h):
    src = definition("""
        name: t
        on_error: pass
        steps:
          - error: boom
          - echo: skipped
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert run.fields["__error__"]["message"] == "boom"
    assert h.trace == []


def test_on_error_inside_a_subprocess(h):
    register_calls(h, "bad", always_fail=True)
    register_tracers(h, "in_sub", "beta")
    src = definition("""
        name: t
        subprocesses:
          sub:
            - participant: bad
              on_error: pass
            - in_sub
        steps:
          - sub
          - beta
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert h.trace == ["bad", "in_sub", "beta"]
    assert run.fields["__error__"]["expid"] == "sub/0_0"


def test_on_error_on_the_subprocess_call(h):
    register_calls(h, "bad", always_fail=True)
    register_tracers(h, "in_sub", "beta")
    handler = register_calls(h, "handler")
    src = definition("""
        name: t
        subprocesses:
          sub:
            - bad
            - in_sub
        steps:
          - subprocess: sub
            on_error: handler
          - beta
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert h.trace == ["bad", "handler", "beta"]
    assert handler.seen[0]["__error__"]["expid"] == "sub/0_0"


def test_on_error_on_the_short_form_subprocess_call(h):
    register_calls(h, "bad", always_fail=True)
    src = definition("""
        name: t
        subprocesses:
          sub:
            - bad
        steps:
          - sub: {x: 1}
            on_error: pass
          - echo: "after ${__error__.participant}"
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert h.trace == ["bad", "after bad"]


def test_an_error_in_the_handler_goes_further_up(h):
    register_calls(h, "bad", always_fail=True, message="first")
    register_calls(h, "bad_handler", always_fail=True, message="second")
    outer = register_calls(h, "outer")
    src = definition("""
        name: t
        steps:
          - sequence:
              - participant: bad
                on_error: bad_handler
            on_error: outer
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert outer.count == 1
    err = outer.seen[0]["__error__"]
    assert err["message"] == "second"
    assert err["participant"] == "bad_handler"


def test_an_error_in_the_handler_without_enclosing_handler_is_a_run_error(h):
    register_calls(h, "bad", always_fail=True, message="first")
    register_calls(h, "bad_handler", always_fail=True, message="second")
    src = definition("""
        name: t
        steps:
          - participant: bad
            on_error: bad_handler
    """)
    run = h.launch(src).wait()
    assert run.status == "error"
    err = only(run.errors)
    assert err["message"] == "second"
    assert err["participant"] == "bad_handler"


def test_an_unregistered_handler_is_a_run_error(h):
    register_calls(h, "bad", always_fail=True)
    src = definition("""
        name: t
        steps:
          - participant: bad
            on_error: nobody_home
    """)
    run = h.launch(src).wait()
    assert run.status == "error"
    err = only(run.errors)
    assert err["class"] == "UnknownParticipant"
    assert "nobody_home" in err["message"]


def test_error_in_a_concurrence_branch_with_on_error_on_the_concurrence(hx):
    h = hx
    register_calls(h, "bad", always_fail=True)
    h.register("slow1", reply=False)
    h.register("slow2", reply=False)
    handler = register_calls(h, "handler")
    src = definition("""
        name: t
        steps:
          - concurrence:
              - slow1
              - bad
              - slow2
            on_error: handler
          - echo: after
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert {"slow1", "slow2"} <= {c.participant for c in h.cancelled}
    assert h.pending == {}
    assert handler.count == 1
    assert handler.seen[0]["__error__"]["participant"] == "bad"
    assert h.trace[-2:] == ["handler", "after"]


def test_on_error_on_one_branch_leaves_the_concurrence_going(h):
    register_calls(h, "bad", always_fail=True)
    h.register("slow", reply=False)
    src = definition("""
        name: t
        steps:
          - concurrence:
              - slow
              - participant: bad
                on_error: pass
    """)
    run = h.launch(src).wait()
    assert run.status == "running"
    assert "slow" not in [c.participant for c in h.cancelled]
    assert len(h.pending_for("slow")) == 1
    h.reply(only(h.pending_for("slow")))
    assert run.wait().status == "finished"


def test_handler_substituted_name(h):
    # a handler name with ${...} is a participant resolved at run time
    register_calls(h, "bad", always_fail=True)
    handler = register_calls(h, "handler_x")
    src = definition("""
        name: t
        steps:
          - participant: bad
            on_error: "handler_${which}"
    """)
    run = h.launch(src, fields={"which": "x"}).wait()
    assert run.status == "finished"
    assert handler.count == 1


# ---------------------------------------------------------------------------
# on_cancel


def _on_cancel_def() -> str:
    return definition("""
        name: t
        steps:
          - participant: alpha
            on_cancel: cleanup
          - beta
    """)


def test_on_cancel_runs_when_the_run_is_cancelled(hx):
    h = hx
    h.register("alpha", reply=False)
    cleanup = register_calls(h, "cleanup")
    register_tracers(h, "beta")
    run = h.launch(_on_cancel_def(), fields={"x": 1}).wait()
    held = only(h.pending_for("alpha"))
    run.cancel()
    run.wait()
    assert run.status == "cancelled"
    assert cleanup.count == 1
    assert cleanup.seen[0]["x"] == 1
    assert cancelled_subids(h) == [held.fei["subid"]]
    assert "beta" not in h.trace


def test_the_run_is_cancelled_only_once_the_on_cancel_handler_replied(h):
    h.register("alpha", reply=False)
    h.register("cleanup", reply=False)
    register_tracers(h, "beta")
    run = h.launch(_on_cancel_def()).wait()
    run.cancel()
    assert run.status == "running"
    cleanup = only(h.pending_for("cleanup"))
    h.reply(cleanup)
    assert run.wait().status == "cancelled"
    assert "beta" not in h.trace


def test_on_cancel_runs_when_the_step_is_cancelled_and_the_flow_goes_on(h):
    h.register("alpha", reply=False)
    cleanup = register_calls(h, "cleanup")
    register_tracers(h, "beta")
    run = h.launch(_on_cancel_def()).wait()
    run.cancel("0_0")
    run.wait()
    assert cleanup.count == 1
    assert h.trace == ["cleanup", "beta"]
    assert run.status == "finished"


def test_on_cancel_does_not_run_on_kill(hx):
    h = hx
    h.register("alpha", reply=False)
    cleanup = register_calls(h, "cleanup")
    run = h.launch(_on_cancel_def()).wait()
    run.kill()
    assert run.status == "killed"
    assert cleanup.count == 0
    assert only(h.cancelled).flavour == "kill"


def test_on_cancel_does_not_run_on_normal_completion(h):
    cleanup = register_calls(h, "cleanup")
    register_tracers(h, "alpha", "beta")
    run = h.launch(_on_cancel_def()).wait()
    assert run.status == "finished"
    assert cleanup.count == 0


def test_on_cancel_does_not_run_on_timeout(h):
    # engine choice (ruote 2.3: a timeout is its own cancel flavour, only
    # on_timeout applies)
    h.register("alpha", reply=False)
    cleanup = register_calls(h, "cleanup")
    src = definition("""
        name: t
        steps:
          - participant: alpha
            timeout: 5s
            on_cancel: cleanup
    """)
    run = h.launch(src).wait()
    h.advance(5)
    assert run.wait().status == "finished"
    assert cleanup.count == 0


def test_on_cancel_on_a_container(h):
    h.register("alpha", reply=False)
    cleanup = register_calls(h, "cleanup")
    src = definition("""
        name: t
        steps:
          - sequence:
              - alpha
            on_cancel: cleanup
    """)
    run = h.launch(src).wait()
    run.cancel()
    assert run.wait().status == "cancelled"
    assert cleanup.count == 1
    assert only(h.cancelled).participant == "alpha"


def test_nested_on_cancel_handlers_run_inner_first(h):
    h.register("alpha", reply=False)
    register_tracers(h, "inner_cleanup", "outer_cleanup")
    src = definition("""
        name: t
        steps:
          - sequence:
              - participant: alpha
                on_cancel: inner_cleanup
            on_cancel: outer_cleanup
    """)
    run = h.launch(src).wait()
    run.cancel()
    assert run.wait().status == "cancelled"
    assert h.trace == ["inner_cleanup", "outer_cleanup"]


def test_on_cancel_subprocess(h):
    h.register("alpha", reply=False)
    src = definition("""
        name: t
        subprocesses:
          undo:
            - echo: "undoing ${what}"
        steps:
          - participant: alpha
            on_cancel: undo
    """)
    run = h.launch(src, fields={"what": "the build"}).wait()
    run.cancel()
    assert run.wait().status == "cancelled"
    assert h.trace == ["undoing the build"]


def test_process_level_on_cancel(h):
    h.register("alpha", reply=False)
    cleanup = register_calls(h, "cleanup")
    src = definition("""
        name: t
        on_cancel: cleanup
        steps:
          - alpha
    """)
    run = h.launch(src).wait()
    run.cancel()
    assert run.wait().status == "cancelled"
    assert cleanup.count == 1


def test_cancel_process_expression_runs_on_cancel_handlers(h):
    h.register("alpha", reply=False)
    cleanup = register_calls(h, "cleanup")
    register_tracers(h, "never")
    src = definition("""
        name: t
        steps:
          - concurrence:
              - participant: alpha
                on_cancel: cleanup
              - sequence:
                  - echo: stopping
                  - cancel_process
          - never
    """)
    run = h.launch(src).wait()
    assert run.status == "cancelled"
    assert cleanup.count == 1
    assert "never" not in h.trace


def test_terminate_kills_nothing_but_cancels(h):
    h.register("alpha", reply=False)
    cleanup = register_calls(h, "cleanup")
    src = definition("""
        name: t
        steps:
          - concurrence:
              - participant: alpha
                on_cancel: cleanup
              - terminate
    """)
    run = h.launch(src).wait()
    assert run.status == "cancelled"
    assert cleanup.count == 1
    assert only(h.cancelled).flavour == "cancel"


def test_on_cancel_of_a_branch_cancelled_by_its_concurrence(h):
    # engine choice: a branch cancelled because its concurrence is over is
    # cancelled (not killed), so its on_cancel runs
    register_tracers(h, "fast")
    h.register("slow", reply=False)
    cleanup = register_calls(h, "cleanup")
    src = definition("""
        name: t
        steps:
          - concurrence:
              count: 1
              branches:
                - fast
                - participant: slow
                  on_cancel: cleanup
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert cleanup.count == 1


def test_cancel_tag_expression_runs_on_cancel(h):
    h.register("alpha", reply=False)
    cleanup = register_calls(h, "cleanup")
    src = definition("""
        name: t
        steps:
          - concurrence:
              - participant: alpha
                tag: build
                on_cancel: cleanup
              - cancel: build
          - echo: after
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert cleanup.count == 1
    assert h.trace[-1] == "after"


# ---------------------------------------------------------------------------
# forget


def test_forget_attribute_parent_goes_on_at_once(hx):
    h = hx
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    src = definition("""
        name: t
        steps:
          - participant: alpha
            forget: true
          - beta
    """)
    run = h.launch(src, fields={"x": 1}).wait()
    assert len(h.pending_for("alpha")) == 1
    assert len(h.pending_for("beta")) == 1
    beta = only(h.pending_for("beta"))
    beta.fields["main"] = True
    h.reply(beta)
    # the main flow is over but the forgotten branch is not
    assert run.status == "running"
    alpha = only(h.pending_for("alpha"))
    alpha.fields["detached"] = True
    h.reply(alpha)
    assert run.wait().status == "finished"
    assert run.fields == {"x": 1, "main": True}


def test_forgotten_branch_ending_first_then_main_flow(h):
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    src = definition("""
        name: t
        steps:
          - participant: alpha
            forget: true
          - beta
    """)
    run = h.launch(src).wait()
    h.reply(only(h.pending_for("alpha")))
    assert run.status == "running"
    h.reply(only(h.pending_for("beta")))
    assert run.wait().status == "finished"


def test_forget_on_a_container(h):
    h.register("a", reply=False)
    register_tracers(h, "b", "main")
    src = definition("""
        name: t
        steps:
          - sequence:
              - a
              - b
            forget: true
          - main
    """)
    run = h.launch(src).wait()
    assert h.trace == ["main"]
    assert run.status == "running"
    h.reply(only(h.pending_for("a")))
    assert run.wait().status == "finished"
    assert h.trace == ["main", "b"]


def test_forget_in_a_concurrence_branch(h):
    h.register("a", reply=False)
    register_tracers(h, "b", "after")
    src = definition("""
        name: t
        steps:
          - concurrence:
              - participant: a
                forget: true
              - b
          - after
    """)
    run = h.launch(src).wait()
    assert h.trace == ["b", "after"]
    assert run.status == "running"
    h.reply(only(h.pending_for("a")))
    assert run.wait().status == "finished"


def test_cancel_of_a_run_cancels_its_forgotten_branches(h):
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    src = definition("""
        name: t
        steps:
          - participant: alpha
            forget: true
          - beta
    """)
    run = h.launch(src).wait()
    run.cancel()
    assert run.wait().status == "cancelled"
    assert sorted(c.participant for c in h.cancelled) == ["alpha", "beta"]


def test_error_in_a_forgotten_branch_is_a_run_error(h):
    flaky = register_calls(h, "flaky", fail_on=(1,))
    register_tracers(h, "main")
    src = definition("""
        name: t
        steps:
          - participant: flaky
            forget: true
          - main
    """)
    run = h.launch(src).wait()
    assert h.trace == ["flaky", "main"]
    assert run.status == "error"
    assert only(run.errors)["participant"] == "flaky"
    run.replay()
    assert run.wait().status == "finished"
    assert flaky.count == 2


@pytest.mark.parametrize(
    "form", ["- alpha: {forget: true}", "- participant: {ref: alpha, forget: true}"]
)
def test_forget_param_no_reply_awaited(hx, form):
    h = hx
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    src = definition(f"""
        name: t
        steps:
          {form}
          - beta
    """)
    run = h.launch(src, fields={"x": 1}).wait()
    assert run.status == "finished"
    assert h.trace == ["beta"]
    assert h.pending == {}
    wi = only(dispatched_to(h, "alpha"))
    assert wi.forget is True
    assert wi.params["forget"] is True


def test_forget_param_a_reply_that_comes_anyway_is_ignored(h):
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    src = definition("""
        name: t
        steps:
          - alpha: {forget: true}
          - beta
    """)
    run = h.launch(src, fields={"x": 1}).wait()
    wi = only(dispatched_to(h, "alpha"))
    wi.fields["sneaky"] = True
    h.reply(wi)
    assert len(dispatched_to(h, "beta")) == 1
    beta = only(h.pending_for("beta"))
    assert "sneaky" not in beta.fields
    h.reply(beta)
    assert run.wait().status == "finished"
    assert "sneaky" not in run.fields
    assert len(dispatched_to(h, "beta")) == 1


def test_forget_param_substituted(h):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    src = definition("""
        name: t
        steps:
          - alpha: {forget: "$f:fire_and_forget"}
          - beta
    """)
    run = h.launch(src, fields={"fire_and_forget": True}).wait()
    assert run.status == "finished"
    assert h.pending == {}


# ---------------------------------------------------------------------------
# a participant that answered with an error is not told to cancel


@pytest.mark.parametrize(
    "attr", ["on_error: pass", "on_error: cancel", "on_error: handler", "retry: 1"]
)
def test_no_cancel_notice_for_a_step_that_already_replied_with_an_error(h, attr):
    register_calls(h, "bad", fail_on=(1,))
    register_calls(h, "handler")
    src = definition(f"""
        name: t
        steps:
          - participant: bad
            {attr}
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert h.cancelled == []


# ---------------------------------------------------------------------------
# errors in and around handlers


def test_an_error_in_the_process_level_handler_is_a_run_error(h):
    register_calls(h, "bad", always_fail=True)
    register_calls(h, "admin", always_fail=True, message="admin down")
    src = definition("""
        name: t
        on_error: admin
        steps:
          - bad
    """)
    run = h.launch(src).wait()
    assert run.status == "error"
    err = only(run.errors)
    assert (err["message"], err["participant"]) == ("admin down", "admin")
    assert [(p.name, p.state) for p in run.positions] == [("admin", "failed")]


def test_cancel_while_the_on_error_handler_runs(h):
    register_calls(h, "bad", always_fail=True)
    h.register("handler", reply=False)
    src = definition("""
        name: t
        steps:
          - participant: bad
            on_error: handler
          - echo: never
    """)
    run = h.launch(src).wait()
    handler = only(h.pending_for("handler"))
    run.cancel()
    assert run.status == "cancelled"
    assert handler.fei["subid"] in cancelled_subids(h)
    assert h.trace == ["bad"]


def test_an_error_in_the_on_cancel_handler_then_replay(h):
    # engine choice (ruote 2.3: a cancel of a cancelling expression is
    # discarded): the failing on_cancel handler leaves the run in error;
    # replaying the handler ends the cancel, kill ends the run
    h.register("alpha", reply=False)
    cleanup = register_calls(h, "cleanup", fail_on=(1,))
    src = definition("""
        name: t
        steps:
          - participant: alpha
            on_cancel: cleanup
          - echo: never
    """)
    run = h.launch(src).wait()
    run.cancel()
    assert run.status == "error"
    assert only(run.errors)["participant"] == "cleanup"
    run.cancel()  # discarded: the run is already being cancelled
    assert run.status == "error"
    run.replay()
    assert run.status == "cancelled"
    assert cleanup.count == 2
    assert "never" not in h.trace


def test_an_error_in_the_on_cancel_handler_then_kill(h):
    h.register("alpha", reply=False)
    register_calls(h, "cleanup", always_fail=True)
    src = definition("""
        name: t
        steps:
          - participant: alpha
            on_cancel: cleanup
    """)
    run = h.launch(src).wait()
    run.cancel()
    assert run.status == "error"
    run.kill()
    assert run.status == "killed"
    assert run.errors == []


def test_on_error_inside_a_forgotten_branch(h):
    register_calls(h, "bad", always_fail=True)
    handler = register_calls(h, "handler")
    register_tracers(h, "main")
    src = definition("""
        name: t
        steps:
          - participant: bad
            forget: true
            on_error: handler
          - main
    """)
    run = h.launch(src).wait()
    assert run.status == "finished"
    assert handler.count == 1
    assert "__error__" not in run.fields  # the main flow's fields


def test_forget_on_the_last_step_main_fields_are_kept(h):
    register_calls(h, "a", change={"from_a": 1})
    h.register("b", reply=False)
    src = definition("""
        name: t
        steps:
          - a
          - participant: b
            forget: true
    """)
    run = h.launch(src).wait()
    assert run.status == "running"
    b = only(h.pending_for("b"))
    b.fields["from_b"] = 2
    h.reply(b)
    assert run.wait().status == "finished"
    assert run.fields == {"from_a": 1}


def test_cancel_of_a_run_whose_forgotten_branch_failed(h):
    register_calls(h, "bad", always_fail=True)
    register_tracers(h, "main")
    src = definition("""
        name: t
        steps:
          - participant: bad
            forget: true
          - main
    """)
    run = h.launch(src).wait()
    assert run.status == "error"
    run.cancel()
    assert run.status == "cancelled"
    assert run.errors == []
