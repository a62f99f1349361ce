"""cursor, loop, iterator and the cursor commands (process-language.md 2.2).

Loops that go back are guarded by ``tick`` (a participant counting its calls
in ``fields.ticks``) or by a variable, so every run ends.
"""

from __future__ import annotations

import textwrap

import pytest

from engine.core import interpreter
from engine.testing import ProcessHarness
from tests.engine.support import answer, cancelled_names, held, make, proc, run_proc


@pytest.fixture
def h() -> ProcessHarness:
    """Tracers alpha..golf, tick, holders hold and hold_a..hold_d."""
    return make()


def check(
    h: ProcessHarness,
    steps: str,
    trace: list,
    fields: dict | None = None,
    launch: dict | None = None,
) -> None:
    run = run_proc(h, steps, fields=launch)
    assert run.status == "finished", run.errors
    assert h.trace == trace
    if fields is not None:
        assert {k: run.fields.get(k) for k in fields} == fields


# -- cursor ---------------------------------------------------------------------------

CURSOR = [
    pytest.param(
        "- cursor: [alpha, bravo]\n- charlie", ["alpha", "bravo", "charlie"], {}, id="plain-list"
    ),
    pytest.param(
        "- cursor:\n    steps: [alpha, bravo]\n- charlie",
        ["alpha", "bravo", "charlie"],
        {},
        id="steps-mapping",
    ),
    pytest.param("- cursor: []\n- charlie", ["charlie"], {}, id="empty"),
    # break
    pytest.param(
        "- cursor: [alpha, break, bravo]\n- charlie", ["alpha", "charlie"], {}, id="break"
    ),
    pytest.param(
        "- cursor:\n  - alpha\n  - break:\n    if: '${f:stop}'\n  - bravo",
        ["alpha", "bravo"],
        {},
        id="break-if-false",
    ),
    pytest.param(
        "- set: {stop: true}\n- cursor:\n  - alpha\n  - break:\n    if: '${f:stop}'\n  - bravo",
        ["alpha"],
        {},
        id="break-if-true",
    ),
    # skip
    pytest.param(
        "- cursor: [alpha, skip, bravo, charlie]", ["alpha", "charlie"], {}, id="skip-alone-is-1"
    ),
    pytest.param(
        "- cursor: [alpha, {skip: 1}, bravo, charlie]", ["alpha", "charlie"], {}, id="skip-1"
    ),
    pytest.param(
        "- cursor: [alpha, {skip: 2}, bravo, charlie, delta]", ["alpha", "delta"], {}, id="skip-2"
    ),
    pytest.param(
        "- cursor: [alpha, {skip: 5}, bravo]\n- charlie",
        ["alpha", "charlie"],
        {},
        id="skip-past-the-end",
    ),
    pytest.param(
        "- set: {n: 2}\n- cursor: [alpha, {skip: '${f:n}'}, bravo, charlie, delta]",
        ["alpha", "delta"],
        {},
        id="skip-substituted",
    ),
    # back
    pytest.param(
        """
        - cursor:
          - alpha
          - tick
          - echo: "t${f:ticks}"
          - back: 2
            if: "${f:ticks} < 3"
          - bravo
        """,
        ["alpha", "t1", "t2", "t3", "bravo"],
        {"ticks": 3},
        id="back-2",
    ),
    pytest.param(
        """
        - cursor:
          - alpha
          - sequence: [tick, {echo: "t${f:ticks}"}]
          - back:
            if: "${f:ticks} < 2"
        """,
        ["alpha", "t1", "t2"],
        {"ticks": 2},
        id="back-alone-is-1",
    ),
    pytest.param(
        """
        - cursor:
          - tick
          - alpha
          - back: 9
            if: "${f:ticks} < 2"
        """,
        ["alpha", "alpha"],
        {"ticks": 2},
        id="back-past-the-start-goes-to-the-first",
    ),
    # jump
    pytest.param(
        """
        - cursor:
          - alpha
          - jump: fin
          - bravo
          - echo: fin
            tag: fin
          - charlie
        """,
        ["alpha", "fin", "charlie"],
        {},
        id="jump-to-tag",
    ),
    pytest.param(
        "- cursor: [alpha, {jump: charlie}, bravo, charlie, delta]",
        ["alpha", "charlie", "delta"],
        {},
        id="jump-to-participant-name",
    ),
    pytest.param(
        """
        - cursor:
          - alpha
          - jump: bravo
          - participant: {ref: bravo}
          - charlie
        """,
        ["alpha", "bravo", "charlie"],
        {},
        id="jump-to-participant-ref",
    ),
    pytest.param(
        "- cursor: [alpha, {jump: 3}, bravo, charlie]", ["alpha", "charlie"], {}, id="jump-to-index"
    ),
    pytest.param(
        "- set: {to: pub}\n- cursor:\n  - alpha\n  - jump: '${f:to}'\n  - bravo\n"
        "  - echo: published\n    tag: pub",
        ["alpha", "published"],
        {},
        id="jump-substituted",
    ),
    pytest.param(
        """
        - cursor:
          - echo: start
            tag: top
          - tick
          - jump: top
            if: "${f:ticks} < 3"
          - alpha
        """,
        ["start", "start", "start", "alpha"],
        {"ticks": 3},
        id="jump-backwards",
    ),
    # rewind
    pytest.param(
        """
        - cursor:
          - tick
          - echo: "t${f:ticks}"
          - rewind:
            if: "${f:ticks} < 3"
          - alpha
        """,
        ["t1", "t2", "t3", "alpha"],
        {"ticks": 3},
        id="rewind",
    ),
    pytest.param(
        """
        - cursor:
          - tick
          - rewind:
            unless: "${f:ticks} >= 2"
        """,
        [],
        {"ticks": 2},
        id="rewind-unless",
    ),
    # break_if & co: checked after each child
    pytest.param(
        """
        - cursor:
            break_if: "${f:ticks} >= 2"
            steps: [tick, tick, tick, alpha]
        - bravo
        """,
        ["bravo"],
        {"ticks": 2},
        id="break_if",
    ),
    pytest.param(
        """
        - set: {go: true}
        - cursor:
            break_unless: "${f:go}"
            steps: [alpha, {set: {go: false}}, bravo]
        - charlie
        """,
        ["alpha", "charlie"],
        {"go": False},
        id="break_unless",
    ),
    pytest.param(
        """
        - cursor:
            rewind_if: "${f:ticks} < 3"
            steps: [tick, {echo: "t${f:ticks}"}]
        """,
        ["t3"],
        {"ticks": 3},
        id="rewind_if",
    ),
    pytest.param(
        """
        - cursor:
            rewind_unless: "${f:ticks} >= 2"
            steps: [tick, {echo: "t${f:ticks}"}]
        """,
        ["t2"],
        {"ticks": 2},
        id="rewind_unless",
    ),
    pytest.param(
        """
        - cursor:
            break_if: "${f:ticks} == 2"
            rewind_if: "${f:ticks} < 5"
            steps: [tick, alpha]
        """,
        [],
        {"ticks": 2},
        id="break_if-before-rewind_if",
    ),
]


@pytest.mark.parametrize(("steps", "trace", "fields"), CURSOR)
def test_cursor(h: ProcessHarness, steps: str, trace: list, fields: dict) -> None:
    check(h, steps, trace, fields)


def test_break_if_checked_after_the_first_child(h: ProcessHarness) -> None:
    run = run_proc(
        h, "- cursor:\n    break_if: '${f:stop}'\n    steps: [alpha, bravo]", fields={"stop": True}
    )
    assert h.trace == ["alpha"]
    assert run.status == "finished"


def test_reset_restores_the_received_workitem(h: ProcessHarness) -> None:
    steps = """
    - set: {x: orig}
    - cursor:
      - echo: "x=${f:x}"
      - set: {x: changed, "v:passes": "${v:passes}+"}
      - {cmd}:
        if: "${v:passes} == +"
    - echo: "end x=${f:x}"
    """
    check(h, steps.replace("{cmd}", "reset"), ["x=orig", "x=orig", "end x=changed"])


def test_rewind_keeps_the_current_workitem(h: ProcessHarness) -> None:
    steps = """
    - set: {x: orig}
    - cursor:
      - echo: "x=${f:x}"
      - set: {x: changed, "v:passes": "${v:passes}+"}
      - rewind:
        if: "${v:passes} == +"
    - echo: "end x=${f:x}"
    """
    check(h, steps, ["x=orig", "x=changed", "end x=changed"])


def test_reset_from_a_participant(h: ProcessHarness) -> None:
    calls = []

    def reviewer(wi):
        calls.append(dict(wi.fields))
        if len(calls) == 1:
            wi.fields["draft"] = "bad"
            wi.command = "reset"

    h.register("reviewer", reviewer)
    run = run_proc(h, "- cursor: [reviewer, alpha]", fields={"draft": "v0"})
    assert [c["draft"] for c in calls] == ["v0", "v0"]
    assert h.trace == ["alpha"]
    assert run.fields == {"draft": "v0"}


# -- loop ----------------------------------------------------------------------------------

LOOPS = [
    pytest.param(
        """
        - loop:
          - tick
          - echo: "t${f:ticks}"
          - break:
            if: "${f:ticks} >= 3"
        - alpha
        """,
        ["t1", "t2", "t3", "alpha"],
        {"ticks": 3},
        id="break-at-the-end",
    ),
    pytest.param(
        """
        - loop:
            steps:
              - tick
              - break:
                if: "${f:ticks} == 2"
              - echo: "t${f:ticks}"
        """,
        ["t1"],
        {"ticks": 2},
        id="steps-mapping-break-in-the-middle",
    ),
    pytest.param(
        """
        - loop:
          - tick
          - skip:
            if: "${f:ticks} == 1"
          - echo: "t${f:ticks}"
          - break:
            if: "${f:ticks} >= 2"
        """,
        ["t2"],
        {"ticks": 2},
        id="skip-in-a-loop",
    ),
    pytest.param(
        """
        - loop:
          - tick
          - skip: 2
            if: "${f:ticks} == 1"
          - break:
            if: "${f:ticks} == 2"
          - echo: "t${f:ticks}"
        """,
        [],
        {"ticks": 2},
        id="skip-past-the-end-of-a-loop-wraps",
    ),
    pytest.param(
        """
        - loop:
          - tick
          - jump: out
            if: "${f:ticks} == 3"
          - rewind
          - break:
            tag: out
        """,
        [],
        {"ticks": 3},
        id="jump-to-a-break",
    ),
]


LOOPS.append(pytest.param("- loop: []\n- echo: out", ["out"], {}, id="empty-loop-ends"))


@pytest.mark.parametrize(("steps", "trace", "fields"), LOOPS)
def test_loop(h: ProcessHarness, steps: str, trace: list, fields: dict) -> None:
    check(h, steps, trace, fields)


def test_loop_waits_for_participants_each_time(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - loop:
          - hold
          - break:
            if: "${f:done}"
        - alpha
        """,
    )
    for _ in range(3):
        answer(h, "hold", done=False)
    assert h.trace == []
    answer(h, "hold", done=True)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert len(h.dispatched) == 5


def test_loop_broken_by_a_participant_command(h: ProcessHarness) -> None:
    def worker(wi):
        wi.fields["n"] = wi.fields.get("n", 0) + 1
        if wi.fields["n"] == 4:
            wi.command = "break"

    h.register("worker", worker)
    run = run_proc(h, "- loop: [worker, alpha]\n- bravo")
    assert run.status == "finished"
    assert h.trace == ["alpha", "alpha", "alpha", "bravo"]
    assert run.fields == {"n": 4}


def test_loop_of_5000_instantaneous_iterations_yields_and_finishes(h: ProcessHarness) -> None:
    seen: list[str] = []
    deliver = h.engine.deliver

    def spy(msg):
        seen.append(msg.get("type"))
        return deliver(msg)

    h.engine.deliver = spy
    text = proc(
        """
        - loop:
          - set: {"v:n": "${v:n}x"}
          - noop
          - noop
          - break:
            if: "${v:n} =~ '^x{5000}$'"
        - echo: done
        """
    )
    run = h.launch(text).wait(timeout=60)
    assert run.status == "finished"
    assert h.trace == ["done"]
    assert seen.count("continue") >= 5000 * 4 // interpreter.OPERATION_BUDGET


def test_iterator_of_5000_items(h: ProcessHarness) -> None:
    run = h.launch(
        proc(
            """
            - iterator:
                on: $f:items
                steps:
                  - set: {last: "${v:i}"}
            """
        ),
        fields={"items": list(range(5000))},
    ).wait(timeout=60)
    assert run.status == "finished"
    assert run.fields["last"] == "4999"


# -- nested cursors ------------------------------------------------------------------------

NESTED = [
    pytest.param(
        """
        - cursor:
          - alpha
          - cursor: [bravo, break, charlie]
          - delta
        """,
        ["alpha", "bravo", "delta"],
        id="inner-break",
    ),
    pytest.param(
        """
        - cursor:
          - alpha
          - cursor:
            - tick
            - echo: "t${f:ticks}"
            - rewind:
              if: "${f:ticks} < 2"
          - bravo
        """,
        ["alpha", "t1", "t2", "bravo"],
        id="inner-rewind",
    ),
    pytest.param(
        """
        - cursor:
          - alpha
          - cursor: [bravo, skip, charlie, delta]
          - foxtrot
        """,
        ["alpha", "bravo", "delta", "foxtrot"],
        id="inner-skip",
    ),
    pytest.param(
        """
        - cursor:
          - alpha
          - cursor:
            - bravo
            - jump: end
            - charlie
            - echo: inner end
              tag: end
          - echo: outer end
            tag: end
        """,
        ["alpha", "bravo", "inner end", "outer end"],
        id="jump-to-a-tag-in-the-inner",
    ),
    pytest.param(
        """
        - cursor:
          - alpha
          - jump: inner
          - bravo
          - cursor: [charlie, {jump: last}, delta, {echo: last, tag: last}]
            tag: inner
          - foxtrot
        """,
        ["alpha", "charlie", "last", "foxtrot"],
        id="outer-jump-to-the-tagged-inner",
    ),
    pytest.param(
        """
        - cursor:
          - tick
          - cursor:
            - echo: "in${f:ticks}"
            - break
          - rewind:
            if: "${f:ticks} < 2"
          - alpha
        """,
        ["in1", "in2", "alpha"],
        id="outer-rewind-around-inner-break",
    ),
    pytest.param(
        """
        - loop:
          - tick
          - loop:
            - echo: "inner${f:ticks}"
            - break
          - break:
            if: "${f:ticks} == 2"
        - alpha
        """,
        ["inner1", "inner2", "alpha"],
        id="nested-loops",
    ),
    pytest.param(
        """
        - cursor:
          - alpha
          - iterator:
              on: [a, b, c]
              steps:
                - echo: "${v:i}"
                - break:
                  if: "${v:i} == b"
          - bravo
        """,
        ["alpha", "a", "b", "bravo"],
        id="break-in-iterator-in-cursor",
    ),
    pytest.param(
        """
        - iterator:
            on: [a, b]
            steps:
              - cursor:
                - echo: "${v:i}1"
                - break
                - echo: never
              - echo: "${v:i}2"
        """,
        ["a1", "a2", "b1", "b2"],
        id="break-in-cursor-in-iterator",
    ),
]


@pytest.mark.parametrize(("steps", "trace"), NESTED)
def test_nested_cursors(h: ProcessHarness, steps: str, trace: list) -> None:
    check(h, steps, trace)


def test_command_from_deep_inside_nested_sequences(h: ProcessHarness) -> None:
    check(
        h,
        """
        - cursor:
          - alpha
          - sequence:
            - sequence:
              - sequence:
                - bravo
                - jump: fin
                - charlie
              - delta
            - foxtrot
          - golf
          - echo: fin
            tag: fin
        - echo: after
        """,
        ["alpha", "bravo", "fin", "after"],
    )


def test_command_from_a_subprocess_acts_on_the_callers_cursor(h: ProcessHarness) -> None:
    run = h.launch(
        proc(
            "- cursor: [alpha, sub, bravo]\n- charlie", subprocesses="sub: [delta, break, foxtrot]"
        )
    ).wait()
    assert run.status == "finished"
    assert h.trace == ["alpha", "delta", "charlie"]


def test_command_from_an_if_branch(h: ProcessHarness) -> None:
    check(
        h,
        """
        - loop:
          - tick
          - if:
              test: "${f:ticks} >= 2"
              then: [break]
              else: [{echo: "t${f:ticks}"}]
        - echo: out
        """,
        ["t1", "out"],
        {"ticks": 2},
    )


def test_break_in_a_concurrence_branch_inside_a_loop(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - loop:
          - tick
          - concurrence:
            - hold_a
            - sequence:
              - break:
                if: "${f:ticks} == 2"
        - alpha
        """,
    )
    answer(h, "hold_a")
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert run.fields["ticks"] == 2
    assert cancelled_names(h) == ["hold_a"]


def test_command_from_a_concurrence_branch_cancels_the_siblings(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - cursor:
          - concurrence:
            - hold_a
            - sequence: [alpha, break]
          - bravo
        - charlie
        """,
    )
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha", "charlie"]
    assert cancelled_names(h) == ["hold_a"]


def test_command_from_a_concurrence_branch_cancels_a_sibling_wait(h: ProcessHarness) -> None:
    run = run_proc(
        h, "- loop:\n  - concurrence:\n    - wait: 1h\n    - sequence: [alpha, break]\n- bravo"
    )
    assert run.status == "finished"
    assert h.trace == ["alpha", "bravo"]
    assert h.next_timer() is None


PARTICIPANT_COMMANDS = [
    pytest.param("jump pub", ["alpha", "published"], id="jump-tag"),
    pytest.param("jump to pub", ["alpha", "published"], id="jump-to-tag-ruote-form"),
    pytest.param("jump charlie", ["alpha", "charlie", "published"], id="jump-name"),
    pytest.param("skip 1", ["alpha", "charlie", "published"], id="skip-1"),
    pytest.param("skip", ["alpha", "charlie", "published"], id="skip"),
    pytest.param("skip 2", ["alpha", "published"], id="skip-2"),
    pytest.param("break", ["alpha", "after"], id="break"),
]


@pytest.mark.parametrize(("command", "trace"), PARTICIPANT_COMMANDS)
def test_command_from_a_participant(h: ProcessHarness, command: str, trace: list) -> None:
    def reviewer(wi):
        wi.command = command

    h.register("reviewer", reviewer)
    check(
        h,
        """
        - cursor:
          - alpha
          - reviewer
          - bravo
          - charlie
          - echo: published
            tag: pub
        - echo: after
        """,
        trace if command == "break" else [*trace, "after"],
    )


def test_rewind_from_a_participant(h: ProcessHarness) -> None:
    def reviewer(wi):
        wi.fields["reviews"] = wi.fields.get("reviews", 0) + 1
        if wi.fields["reviews"] < 3:
            wi.command = "rewind"

    h.register("reviewer", reviewer)
    check(h, "- cursor: [alpha, reviewer, bravo]", ["alpha"] * 3 + ["bravo"], {"reviews": 3})


def test_command_from_a_held_participant_inside_a_nested_sequence(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - cursor:
          - sequence:
            - sequence: [hold, alpha]
            - bravo
          - charlie
          - echo: fin
            tag: fin
        """,
    )
    wi = held(h, "hold")
    wi.command = "jump fin"
    h.reply(wi)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["fin"]
    assert "__command__" not in run.fields


def test_participant_command_does_not_stay_in_the_fields(h: ProcessHarness) -> None:
    h.register("skipper", lambda wi: setattr(wi, "command", "skip 1"))
    seen = []
    h.register("look", lambda wi: seen.append(dict(wi.fields)))
    run = run_proc(h, "- cursor: [skipper, alpha, look]\n- look")
    assert run.status == "finished"
    assert seen == [{"params": {}}, {"params": {}}]
    assert run.fields == {}


@pytest.mark.parametrize(
    "command",
    ["break", "rewind", "reset", "skip", "{skip: 2}", "back", "{back: 2}", "{jump: x}"],
)
def test_cursor_command_outside_any_cursor_is_ignored(h: ProcessHarness, command: str) -> None:
    run = run_proc(h, f"- alpha\n- sequence: [bravo, {command}, charlie]\n- delta")
    assert run.status == "finished"
    assert h.trace == ["alpha", "bravo", "charlie", "delta"]


def test_participant_command_outside_any_cursor_is_ignored(h: ProcessHarness) -> None:
    h.register("breaker", lambda wi: setattr(wi, "command", "break"))
    run = run_proc(h, "- alpha\n- breaker\n- bravo")
    assert run.status == "finished"
    assert h.trace == ["alpha", "bravo"]
    assert "__command__" not in run.fields


def test_cursor_command_in_a_concurrence_outside_a_cursor_is_ignored(h: ProcessHarness) -> None:
    run = run_proc(h, "- concurrence:\n  - sequence: [break, alpha]\n  - bravo\n- charlie")
    assert run.status == "finished"
    assert sorted(h.trace[:2]) == ["alpha", "bravo"]
    assert h.trace[2] == "charlie"


def test_skipped_command_does_nothing(h: ProcessHarness) -> None:
    check(h, "- cursor:\n  - alpha\n  - break:\n    unless: 'true'\n  - bravo", ["alpha", "bravo"])


@pytest.mark.parametrize(
    ("handler", "trace"),
    [
        pytest.param("break", ["alpha", "after"], id="break"),
        pytest.param("skip 1", ["alpha", "charlie", "after"], id="skip"),
        pytest.param("jump fin", ["alpha", "fin", "after"], id="jump"),
    ],
)
def test_on_error_command_acts_on_the_enclosing_cursor(
    h: ProcessHarness, handler: str, trace: list
) -> None:
    check(
        h,
        f"""
        - cursor:
          - alpha
          - error: boom
            on_error: {handler}
          - bravo
          - charlie
          - echo: fin
            tag: fin
        - echo: after
        """,
        trace if handler != "skip 1" else [*trace[:2], "fin", "after"],
    )


def test_jump_to_an_unknown_target_is_an_error(h: ProcessHarness) -> None:
    # spec silent; ruote stays in place, this engine raises an error of the run
    run = run_proc(h, "- cursor: [alpha, {jump: nowhere}, bravo]")
    assert run.status == "error"
    assert "nowhere" in run.errors[0]["message"]
    assert h.trace == ["alpha"]


# -- iterator ------------------------------------------------------------------------------

ITER_ON = [
    pytest.param("[a, b, c]", {}, ["a", "b", "c"], id="list"),
    pytest.param("'a, b,c'", {}, ["a", "b", "c"], id="comma-string"),
    pytest.param("a", {}, ["a"], id="single-word"),
    pytest.param("$f:lst", {"lst": ["x", "y"]}, ["x", "y"], id="raw-field-list"),
    pytest.param("$f:lst", {"lst": [1, 2, 3]}, ["1", "2", "3"], id="raw-field-numbers"),
    pytest.param("'${f:csv}'", {"csv": "p, q"}, ["p", "q"], id="substituted-comma-string"),
    pytest.param("$v:lst", {}, ["v1", "v2"], id="raw-variable"),
    pytest.param("[]", {}, [], id="empty-list"),
    pytest.param("''", {}, [], id="empty-string"),
    pytest.param("$f:lst", {"lst": []}, [], id="empty-field"),
    pytest.param("$f:missing", {}, [], id="missing-field"),
    pytest.param("$f:csv", {"csv": "a, b"}, ["a", "b"], id="raw-field-comma-string"),
    pytest.param("[[1, 2], {k: v}]", {}, ["[1,2]", '{"k":"v"}'], id="nested-values"),
]


@pytest.mark.parametrize(("on", "fields", "trace"), ITER_ON)
def test_iterator_on(h: ProcessHarness, on: str, fields: dict, trace: list) -> None:
    check(
        h,
        f"""
        - set: {{"v:lst": [v1, v2]}}
        - iterator:
            on: {on}
            steps:
              - echo: "${{v:i}}"
        - echo: end
        """,
        [*trace, "end"],
        launch=fields,
    )


def test_iterator_to_and_ii(h: ProcessHarness) -> None:
    check(
        h,
        """
        - iterator:
            on: [a, b, c]
            to: item
            steps:
              - echo: "${v:ii}:${v:item}:[${v:i}]"
        """,
        ["0:a:[]", "1:b:[]", "2:c:[]"],
    )


def test_iterator_items_keep_their_types(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - iterator:
            on: $f:lst
            steps:
              - hold: {value: $v:i, index: $v:ii}
        """,
        fields={"lst": [7, {"k": [1]}]},
    )
    seen = []
    for _ in range(2):
        wi = held(h, "hold")
        seen.append(wi.params)
        h.reply(wi)
    run.wait()
    assert seen == [{"value": 7, "index": 0}, {"value": {"k": [1]}, "index": 1}]


def test_iterator_passes_fields_between_iterations(h: ProcessHarness) -> None:
    check(
        h,
        "- iterator:\n    on: [a, b, c]\n    steps: [tick, {echo: '${v:i}${f:ticks}'}]",
        ["a1", "b2", "c3"],
        {"ticks": 3},
    )


def test_iterator_waits_for_each_iteration(h: ProcessHarness) -> None:
    run = run_proc(
        h, "- iterator:\n    on: [a, b]\n    steps:\n      - hold: {item: '${v:i}'}\n- alpha"
    )
    assert held(h, "hold").params == {"item": "a"}
    answer(h, "hold", got_a=1)
    assert held(h, "hold").params == {"item": "b"}
    assert held(h, "hold").fields["got_a"] == 1
    answer(h, "hold")
    run.wait()
    assert h.trace == ["alpha"]


def test_iterator_with_participant_names_from_items(h: ProcessHarness) -> None:
    check(h, "- iterator:\n    on: [charlie, alpha]\n    steps: ['${v:i}']", ["charlie", "alpha"])


ITER_COMMANDS = [
    pytest.param("rewind", "${v:i} == b and ${f:ticks} < 3", "abc", "ababc", id="rewind"),
    pytest.param("skip", "${v:i} == a", "abcd", "acd", id="skip-alone-is-1"),
    pytest.param("skip: 1", "${v:i} == b", "abcd", "abd", id="skip-1"),
    pytest.param("skip: 2", "${v:i} == a", "abcd", "ad", id="skip-2"),
    pytest.param("skip: 9", "${v:i} == b", "abcd", "ab", id="skip-past-the-end"),
    pytest.param("back", "${v:i} == c and ${f:ticks} < 4", "abcd", "abcbcd", id="back"),
    pytest.param("back: 2", "${v:i} == c and ${f:ticks} < 4", "abcd", "abcabcd", id="back-2"),
    pytest.param("jump: 3", "${v:i} == a", "abcd", "ad", id="jump-forward"),
    pytest.param(
        "jump: 0", "${v:i} == c and ${f:ticks} < 4", "abcd", "abcabcd", id="jump-back-to-0"
    ),
    pytest.param(
        "jump: 1", "${v:i} == d and ${f:ticks} < 5", "abcd", "abcdbcd", id="jump-back-to-1"
    ),
    pytest.param("break", "${v:i} == b", "abcd", "ab", id="break"),
]


@pytest.mark.parametrize(("command", "cond", "items", "trace"), ITER_COMMANDS)
def test_iterator_commands(
    h: ProcessHarness, command: str, cond: str, items: str, trace: str
) -> None:
    cmd = command if ":" in command else command + ":"
    steps = (
        textwrap.dedent(
            """
        - iterator:
            on: $f:items
            steps:
              - tick
              - echo: "${v:i}"
              - CMD
                if: "COND"
              - noop
        - echo: end
        """
        )
        .replace("CMD", cmd)
        .replace("COND", cond)
    )
    check(h, steps, [*trace, "end"], launch={"items": list(items)})


def test_iterator_command_from_a_participant(h: ProcessHarness) -> None:
    def adjust(wi):
        if wi.params["item"] == "b":
            wi.command = "break"

    h.register("adjust", adjust)
    check(
        h,
        "- iterator:\n    on: [a, b, c]\n    steps:\n      - echo: '${v:i}'\n"
        "      - adjust: {item: '${v:i}'}\n- echo: end",
        ["a", "b", "end"],
    )


def test_iterator_command_from_a_nested_sequence(h: ProcessHarness) -> None:
    check(
        h,
        """
        - iterator:
            on: [a, b, c, d]
            steps:
              - echo: "${v:i}"
              - sequence:
                - sequence:
                  - skip:
                    if: "${v:i} == a"
                  - echo: "in-${v:i}"
        """,
        ["a", "c", "in-c", "d", "in-d"],
    )


def test_iterator_without_steps(h: ProcessHarness) -> None:
    check(h, "- iterator:\n    on: [a, b]\n- alpha", ["alpha"])


def test_iterator_variable_shadows_an_outer_one(h: ProcessHarness) -> None:
    # spec silent; ruote 2.3's iterator writes the current scope (the outer
    # 'item' would be overwritten), this engine binds it in the iteration's scope
    check(
        h,
        """
        - set: {"v:item": outer}
        - iterator:
            on: [a, b]
            to: item
            steps:
              - echo: "${v:item}"
        - echo: "${v:item}"
        """,
        ["a", "b", "outer"],
    )


def test_set_variable_inside_an_iterator_sticks_in_the_enclosing_scope(h: ProcessHarness) -> None:
    check(
        h,
        """
        - iterator:
            on: [a, b, c]
            steps:
              - set: {"v:seen": "${v:seen}${v:i}"}
        - echo: "${v:seen}"
        """,
        ["abc"],
    )
