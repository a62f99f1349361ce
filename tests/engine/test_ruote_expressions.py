"""What the real BOSS processes need from ruote: ``flank``, ``listen`` to
errors, block parameters (``apply``), ``inc``/``push``, iterator ``to``
with ``v:``/``f:``, the ``{}`` literal, and two ruote behaviours
(``on_error: cancel`` runs ``on_cancel``; a cancelled branch brings back
what it had done, so ``remaining: wait`` merges it).

The shapes come from ``SRCSRV_REQUEST_CREATE.BOSS_handle_SR.pdef`` and
``BUILD_SUCCESS.auto_ci.pdef`` of the BOSS standard workflow.
"""

from __future__ import annotations

import pytest

from engine.testing import ProcessHarness
from tests.engine.support import (
    answer,
    cancelled_names,
    clean,
    make,
    register_calls,
    run_proc,
)


@pytest.fixture
def h() -> ProcessHarness:
    """Tracers alpha..golf, tick, holders hold and hold_a..hold_d."""
    return make()


# -- flank ---------------------------------------------------------------------------------

LOG_ERROR = """
do_log_error:
  - cursor:
      - listen: {to: errors}
      - echo: "ERROR ${__error__.message} at ${__error__.participant}"
      - notify_admin
      - rewind
"""


def test_flank_goes_on_beside_the_parent_and_is_cancelled_when_it_ends(h):
    run = run_proc(
        h,
        """
        - hold_a:
          flank: true
        - alpha
        - hold_b
        """,
    )
    # the parent went on at once: alpha ran and hold_b waits, hold_a too
    assert h.trace == ["alpha"]
    assert {wi.participant_name for wi in h.pending.values()} == {"hold_a", "hold_b"}
    answer(h, "hold_b")
    run.wait()
    assert run.status == "finished"
    assert cancelled_names(h) == ["hold_a"]
    assert h.pending == {}


def test_a_flank_that_ends_first_does_not_move_its_parent(h):
    run = run_proc(
        h,
        """
        - sequence:
            - hold_a:
              flank: true
            - hold_b
            - charlie
        - delta
        """,
    )
    answer(h, "hold_a", from_flank=1)
    run.wait()
    # the flank's reply is not the sequence's next step: hold_b still waits
    assert h.trace == []
    assert [wi.participant_name for wi in h.pending.values()] == ["hold_b"]
    answer(h, "hold_b")
    run.wait()
    assert h.trace == ["charlie", "delta"]
    assert run.status == "finished"
    assert "from_flank" not in run.fields


def test_flank_sees_the_callers_variables_and_runs_on_cancel(h):
    run = run_proc(
        h,
        """
        - set: {"v:who": ops}
        - watch:
          flank: true
          on_cancel: charlie
        - alpha
        """,
        subprocesses="""
        watch:
          - hold: {to: "${v:who}"}
        """,
    )
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha", "charlie"]
    assert [wi.params["to"] for wi in h.dispatched if wi.participant_name == "hold"] == ["ops"]


def test_cancelling_the_run_cancels_the_flank(h):
    run = run_proc(
        h,
        """
        - hold_a:
          flank: true
        - hold_b
        """,
    )
    run.cancel()
    run.wait()
    assert run.status == "cancelled"
    assert sorted(cancelled_names(h)) == ["hold_a", "hold_b"]


# -- listen to errors ----------------------------------------------------------------------


def test_the_boss_error_flank_notifies_each_uncaught_error_and_the_run_stays_in_error(h):
    admin = register_calls(h, "notify_admin")
    register_calls(h, "build", fail_on=(1,), message="no space left")
    run = run_proc(
        h,
        """
        - do_log_error:
          flank: true
        - build
        - alpha
        """,
        subprocesses=LOG_ERROR,
        fields={"ev": {"id": 7}},
    )
    assert run.status == "error"
    assert h.trace == ["build", "ERROR no space left at build", "notify_admin"]
    assert admin.seen[0]["__error__"]["message"] == "no space left"
    assert admin.seen[0]["ev"] == {"id": 7}
    # the cursor rewound: the flank listens again
    run.replay()
    run.wait()
    assert run.status == "finished"
    assert h.trace[-2:] == ["build", "alpha"]
    assert admin.count == 1
    assert "__error__" not in run.fields


def test_listen_to_errors_ignores_caught_errors_and_other_classes(h):
    register_calls(h, "build", always_fail=True)
    run = run_proc(
        h,
        """
        - concurrence:
            count: 1
            branches:
              - sequence:
                  - listen: {to: errors, class: ProcessError}
                  - echo: "heard ${__error__.message}"
              - sequence:
                  - build:
                    on_error: pass
                  - build:
                    if: "${f:try} == 1"
                  - error: "stop here"
        """,
    )
    assert run.status == "finished"
    assert h.trace == ["build", "heard stop here"]


def test_listen_to_errors_where_and_merge_false(h):
    register_calls(h, "build", always_fail=True)
    run = run_proc(
        h,
        """
        - concurrence:
            count: 1
            branches:
              - sequence:
                  - listen: {to: errors, where: "${__error__.participant} == build", merge: false}
                  - echo: "error seen: ${__error__}"
              - sequence:
                  - error: "not this one"
                    on_error: pass
                  - build
        """,
    )
    assert run.status == "finished"
    assert h.trace == ["build", "error seen: "]


# -- block parameters: apply -------------------------------------------------------------

TICKET = """
with_ticket:
  - echo: "lock ${v:project}"
  - set: {"f:hasLock": true}
  - apply
  - echo: "unlock ${v:project}"
  - set: {"f:hasLock": false}
"""


def test_a_subprocess_call_with_a_block_runs_it_where_apply_is(h):
    run = run_proc(
        h,
        """
        - with_ticket:
            project: Mer:Core
            steps:
              - echo: "building with lock=${f:hasLock} in ${v:project}"
              - alpha
        - bravo
        """,
        subprocesses=TICKET,
    )
    assert run.status == "finished"
    assert h.trace == [
        "lock Mer:Core",
        "building with lock=true in Mer:Core",
        "alpha",
        "unlock Mer:Core",
        "bravo",
    ]
    assert run.fields["hasLock"] is False


def test_the_subprocess_expression_takes_a_block_and_apply_without_one_does_nothing(h):
    run = run_proc(
        h,
        """
        - subprocess:
            ref: with_ticket
            project: A
            steps: [alpha]
        - with_ticket: {project: B}
        """,
        subprocesses=TICKET,
    )
    assert run.status == "finished"
    assert h.trace == ["lock A", "alpha", "unlock A", "lock B", "unlock B"]


def test_nested_blocks_apply_their_own_callers_block(h):
    run = run_proc(
        h,
        """
        - outer:
            steps: [alpha]
        """,
        subprocesses="""
        outer:
          - echo: outer in
          - inner:
              steps:
                - echo: inner block
                - apply
          - echo: outer out
        inner:
          - echo: inner in
          - apply
        """,
    )
    assert run.status == "finished"
    assert h.trace == ["outer in", "inner in", "inner block", "alpha", "outer out"]


# -- inc / push -----------------------------------------------------------------------------


def test_inc_and_push_on_variables_and_fields(h):
    run = run_proc(
        h,
        """
        - set: {"v:sourceprojects": []}
        - iterator:
            on: $f:ev.actions
            to: "v:action"
            steps:
              - if:
                  test: '"${v:action.sourceproject}" not in ${v:sourceprojects}'
                  then:
                    - echo: "wait for ${v:action.sourceproject}"
              - inc: {"v:sourceprojects": "${v:action.sourceproject}"}
        - set: {"f:seen": "$v:sourceprojects"}
        - inc: "f:count"
        - inc: {"f:count": 2.5}
        - push: {"f:log": a}
        - push: {"f:log": b}
        - set: {"f:one": x}
        - push: {"f:one": y}
        """,
        fields={
            "ev": {
                "actions": [
                    {"type": "submit", "sourceproject": "home:a"},
                    {"type": "submit", "sourceproject": "home:b"},
                    {"type": "submit", "sourceproject": "home:a"},
                ]
            }
        },
    )
    assert run.status == "finished"
    assert h.trace == ["wait for home:a", "wait for home:b"]
    assert run.fields["seen"] == ["home:a", "home:b", "home:a"]
    assert run.fields["count"] == 3.5
    assert run.fields["log"] == ["a", "b"]
    assert run.fields["one"] == ["x", "y"]


def test_inc_of_text_is_an_error_of_the_run(h):
    run = run_proc(h, '- set: {"f:n": "three"}\n- inc: "f:n"')
    assert run.status == "error"
    [err] = run.errors
    assert "cannot add 1 to 'three'" in err["message"]


# -- iterator to v: / f: ---------------------------------------------------------------------


def test_iterator_to_with_a_v_prefix_binds_the_variable(h):
    run = run_proc(
        h,
        """
        - iterator:
            on: [check_spec, check_valid_changes]
            to: "v:check"
            steps:
              - echo: "running ${v:check}"
        """,
    )
    assert run.status == "finished"
    assert h.trace == ["running check_spec", "running check_valid_changes"]


def test_iterator_to_a_field(h):
    run = run_proc(
        h,
        """
        - concurrent_iterator:
            on: $f:project_pairs
            to: "f:pair"
            merge_type: isolate
            steps:
              - echo: "diff ${pair.source} ${pair.target}"
        - iterator:
            on: [1, 2]
            to: "f:n"
            steps:
              - echo: "n=${f:n}"
        """,
        fields={"project_pairs": [{"source": "a", "target": "b"}]},
    )
    assert run.status == "finished"
    assert h.trace == ["diff a b", "n=1", "n=2"]
    assert run.fields["n"] == 2


# -- the empty-mapping literal ---------------------------------------------------------------


@pytest.mark.parametrize(("packages", "ran"), [({}, False), ({"pkg-tests": ["t"]}, True)])
def test_not_equal_to_the_empty_mapping(h, packages, ran):
    run = run_proc(
        h,
        """
        - alpha:
          if: "${f:qa.selected_test_packages} != {}"
        """,
        fields={"qa": {"selected_test_packages": packages}},
    )
    assert run.status == "finished"
    assert h.trace == (["alpha"] if ran else [])


# -- ruote behaviours --------------------------------------------------------------------------


def test_on_error_cancel_runs_the_steps_on_cancel(h):
    register_calls(h, "build", always_fail=True)
    run = run_proc(
        h,
        """
        - sequence:
            - build
          on_error: cancel
          on_cancel: charlie
        - alpha
        """,
    )
    assert run.status == "finished"
    assert h.trace == ["build", "charlie", "alpha"]


def test_remaining_wait_merges_what_the_cancelled_branches_had_done(h):
    run = run_proc(
        h,
        """
        - concurrence:
            count: 1
            remaining: wait
            merge_type: isolate
            branches:
              - hold_a
              - sequence: [set: {seen: b}, hold_b]
        """,
        fields={"x": 0},
    )
    answer(h, "hold_a", a=1)
    run.wait()
    assert run.status == "finished"
    assert clean(run.fields["0"]) == {"x": 0, "a": 1}
    assert clean(run.fields["1"]) == {"x": 0, "seen": "b"}
