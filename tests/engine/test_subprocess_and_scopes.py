"""subprocess and variable scopes (process-language.md section 2).

A subprocess runs in a new variable scope whose parent is the caller's
scope; its extra keys become variables of that scope; ``set v:`` inside it
writes that scope.
"""

from __future__ import annotations

import pytest

from engine.core.loader import LoadError
from engine.testing import ProcessHarness
from tests.engine.support import answer, held, make, proc


@pytest.fixture
def h() -> ProcessHarness:
    """Tracers alpha..golf, tick, holders hold and hold_a..hold_d."""
    return make()


def check(
    h: ProcessHarness,
    steps: str,
    subs: str,
    trace: list,
    *,
    head: str = "",
    fields: dict | None = None,
    variables: dict | None = None,
) -> ProcessHarness:
    run = h.launch(
        proc(steps, subprocesses=subs, head=head), fields=fields, variables=variables
    ).wait()
    assert run.status == "finished", run.errors
    assert h.trace == trace
    return run


SUBS = """
show:
  - echo: "x=${v:x} y=${v:y}"
"""

CALLS = [
    pytest.param("- show", [], "x= y=", id="short-form"),
    pytest.param("- show:", [], "x= y=", id="short-form-null"),
    pytest.param("- show: {x: 1, y: two}", [], "x=1 y=two", id="short-form-vars"),
    pytest.param("- subprocess: show", [], "x= y=", id="subprocess-name"),
    pytest.param("- subprocess: {ref: show, x: 1}", [], "x=1 y=", id="subprocess-ref-vars"),
    pytest.param(
        "- show: {x: '${f:a}', y: 'pre-${f:b}'}", [], "x=A y=pre-B", id="vars-substituted"
    ),
    pytest.param(
        "- set: {'v:x': outer}\n- show: {y: inner}",
        [],
        "x=outer y=inner",
        id="caller-scope-visible",
    ),
    pytest.param(
        "- set: {'v:x': outer}\n- show: {x: inner}", [], "x=inner y=", id="sub-var-shadows-caller"
    ),
    pytest.param("- show: {x: '${v:dx}'}", [], "x=DX y=", id="vars-from-definition-variables"),
    pytest.param("- show: {x: '${wfid}'}", [], "x=WFID y=", id="vars-with-wfid"),
]


@pytest.mark.parametrize(("steps", "extra", "line"), CALLS)
def test_subprocess_calls(h: ProcessHarness, steps: str, extra: list, line: str) -> None:
    run = h.launch(
        proc(steps + "\n- echo: 'after x=${v:x}'", subprocesses=SUBS, head="variables: {dx: DX}"),
        fields={"a": "A", "b": "B"},
    ).wait()
    assert run.status == "finished", run.errors
    after = "after x=outer" if "outer" in steps else "after x="
    assert h.trace == [line.replace("WFID", run.wfid), after]


def test_subprocess_runs_its_body_in_order(h: ProcessHarness) -> None:
    check(
        h,
        "- alpha\n- two\n- delta",
        "two: [bravo, charlie]",
        ["alpha", "bravo", "charlie", "delta"],
    )


def test_subprocess_body_expids(h: ProcessHarness) -> None:
    check(
        h,
        "- echo: '${expid}'\n- sub",
        "sub:\n  - echo: '${expid}'\n  - sequence: [{echo: '${expid}'}]",
        ["0_0", "sub/0_0", "sub/0_1_0"],
    )


def test_subprocess_shares_the_workitem(h: ProcessHarness) -> None:
    run = check(
        h,
        "- set: {a: 1}\n- sub\n- echo: '${a} ${b}'",
        "sub:\n  - echo: 'in ${a}'\n  - set: {a: 2, b: 3}",
        ["in 1", "2 3"],
    )
    assert run.fields == {"a": 2, "b": 3}


def test_subprocess_vars_do_not_leak_out(h: ProcessHarness) -> None:
    check(
        h,
        "- sub: {x: 1}\n- echo: 'x=[${v:x}] y=[${v:y}]'",
        "sub:\n  - set: {'v:y': 2}\n  - echo: 'in x=${v:x} y=${v:y}'",
        ["in x=1 y=2", "x=[] y=[]"],
    )


def test_set_of_a_subprocess_var_stays_in_the_subprocess(h: ProcessHarness) -> None:
    check(
        h,
        "- set: {'v:x': main}\n- sub: {x: 1}\n- echo: 'x=${v:x}'",
        "sub:\n  - set: {'v:x': 2}\n  - echo: 'in x=${v:x}'",
        ["in x=2", "x=main"],
    )


def test_set_inside_a_subprocess_writes_the_subprocess_scope(h: ProcessHarness) -> None:
    # BUG-101
    check(
        h,
        "- set: {'v:x': main}\n- sub\n- echo: 'after x=${v:x}'",
        "sub:\n  - echo: 'in x=${v:x}'\n  - set: {'v:x': sub}\n  - echo: 'in x=${v:x}'",
        ["in x=main", "in x=sub", "after x=main"],
    )


def test_set_inside_a_subprocess_does_not_change_definition_variables(h: ProcessHarness) -> None:
    check(
        h,
        "- sub\n- echo: 'after ${v:level}'",
        "sub:\n  - set: {'v:level': inner}\n  - echo: 'in ${v:level}'",
        ["in inner", "after top"],
        head="variables: {level: top}",
    )


def test_unset_inside_a_subprocess_leaves_the_callers_variable(h: ProcessHarness) -> None:
    check(
        h,
        "- set: {'v:x': main}\n- sub\n- echo: 'after x=${v:x}'",
        "sub:\n  - unset: v:x\n  - echo: 'in x=${v:x}'",
        ["in x=main", "after x=main"],
    )


def test_unset_of_a_shadowing_variable_inside_a_subprocess(h: ProcessHarness) -> None:
    check(
        h,
        "- set: {'v:x': main}\n- sub\n- echo: 'after x=${v:x}'",
        "sub:\n  - set: {'v:x': sub}\n  - echo: 'in x=${v:x}'\n  - unset: v:x\n"
        "  - echo: 'in x=${v:x}'",
        ["in x=sub", "in x=main", "after x=main"],
    )


def test_each_call_gets_a_fresh_scope(h: ProcessHarness) -> None:
    check(
        h,
        "- sub: {n: 1}\n- sub: {n: 2}",
        "sub:\n  - echo: 'n=${v:n} seen=[${v:seen}]'\n  - set: {'v:seen': '${v:n}'}",
        ["n=1 seen=[]", "n=2 seen=[]"],
    )


def test_nested_subprocesses(h: ProcessHarness) -> None:
    check(
        h,
        """
        - set: {"v:top": T}
        - outer: {o: O}
        - echo: "main: o=[${v:o}] i=[${v:i}]"
        """,
        """
        outer:
          - inner: {i: I}
          - echo: "outer: top=${v:top} o=${v:o} i=[${v:i}]"
        inner:
          - echo: "inner: top=${v:top} o=${v:o} i=${v:i}"
        """,
        ["inner: top=T o=O i=I", "outer: top=T o=O i=[]", "main: o=[] i=[]"],
    )


def test_nested_subprocess_sees_the_callers_var_not_its_definition_site(h: ProcessHarness) -> None:
    check(
        h,
        "- a: {who: from_a}\n- b: {who: from_b}",
        "a: [leaf]\nb: [leaf]\nleaf:\n  - echo: '${v:who}'",
        ["from_a", "from_b"],
    )


def test_recursion_with_a_field_counter(h: ProcessHarness) -> None:
    run = check(
        h,
        "- countdown\n- echo: done",
        """
        countdown:
          - tick
          - echo: "level ${f:ticks}"
          - countdown:
            if: "${f:ticks} < 5"
        """,
        [*(f"level {i}" for i in range(1, 6)), "done"],
    )
    assert run.fields == {"ticks": 5}


RECURSIONS = [
    pytest.param(100, "tick", id="100-levels-participant"),
    pytest.param(100, "instant", id="100-levels-instant"),
    pytest.param(300, "tick", id="300-levels-participant"),  # BUG-106
    pytest.param(300, "instant", id="300-levels-instant"),  # BUG-106
    pytest.param(500, "tick", id="500-levels-participant"),
    pytest.param(1000, "instant", id="1000-levels-instant"),
]


@pytest.mark.parametrize(("depth", "how"), RECURSIONS)
def test_deep_recursion(h: ProcessHarness, depth: int, how: str) -> None:
    if how == "tick":
        body = f"rec:\n  - tick\n  - rec:\n    if: '${{f:ticks}} < {depth}'"
    else:  # the recursive call is the last step: its reply unwinds every level at once
        body = (
            f"rec:\n  - set: {{d: '${{f:d}}x'}}\n  - rec:\n"
            f"    unless: \"${{f:d}} =~ '^x{{{depth}}}$'\""
        )
    run = h.launch(proc("- rec\n- echo: done", subprocesses=body)).wait(timeout=60)
    assert run.status == "finished"
    assert h.trace == ["done"]
    if how == "tick":
        assert run.fields == {"ticks": depth}
    else:
        assert run.fields == {"d": "x" * depth}


@pytest.mark.parametrize(
    "depth",
    [
        pytest.param(100, id="100-levels"),
        pytest.param(300, id="300-levels"),  # BUG-106
        pytest.param(500, id="500-levels"),
    ],
)
def test_deep_recursion_cancelled_at_the_bottom(h: ProcessHarness, depth: int) -> None:
    run = h.launch(
        proc(
            "- rec",
            subprocesses=f"rec:\n  - tick\n  - rec:\n"
            f"    if: '${{f:ticks}} < {depth}'\n  - hold:\n"
            f"    if: '${{f:ticks}} == {depth}'",
        )
    ).wait()
    assert run.status == "running"
    assert held(h, "hold").fields["ticks"] == depth
    run.cancel()
    run.wait()
    assert run.status == "cancelled"
    assert [c.participant for c in h.cancelled] == ["hold"]


def test_recursion_with_a_variable_per_level(h: ProcessHarness) -> None:
    check(
        h,
        "- rec: {depth: '+'}",
        """
        rec:
          - echo: "down ${v:depth}"
          - rec: {depth: "${v:depth}+"}
            if: "${v:depth} != '+++'"
          - echo: "up ${v:depth}"
        """,
        ["down +", "down ++", "down +++", "up +++", "up ++", "up +"],
    )


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param("- subprocess: '${f:which}'", id="subprocess-ref"),
        pytest.param("- subprocess: {ref: '${f:which}', v: V}", id="subprocess-ref-mapping"),
        pytest.param("- subprocess: 'sub_${f:suffix}'", id="partial-ref"),
        pytest.param("- participant: '${f:which}'", id="participant-naming-a-subprocess"),
    ],
)
def test_dynamic_subprocess_ref(h: ProcessHarness, steps: str) -> None:
    check(
        h,
        steps + "\n- alpha",
        "sub_b:\n  - echo: 'in b v=${v:v}'\nsub_c: [charlie]",
        ["in b v=V" if "v: V" in steps else "in b v=", "alpha"],
        fields={"which": "sub_b", "suffix": "b"},
    )


def test_dynamic_subprocess_ref_to_nothing_is_a_run_error(h: ProcessHarness) -> None:
    run = h.launch(
        proc("- alpha\n- subprocess: '${f:which}'\n- bravo", subprocesses="sub: [charlie]"),
        fields={"which": "nope"},
    ).wait()
    assert run.status == "error"
    assert "nope" in run.errors[0]["message"]
    assert h.trace == ["alpha"]


def test_literal_unknown_subprocess_is_a_load_error(h: ProcessHarness) -> None:
    with pytest.raises(LoadError, match="unknown subprocess 'nope'"):
        h.launch(proc("- subprocess: nope", subprocesses="sub: [alpha]"))


def test_subprocess_wins_over_a_participant_of_the_same_name(h: ProcessHarness) -> None:
    check(h, "- alpha\n- bravo", "alpha:\n  - echo: 'the subprocess'", ["the subprocess", "bravo"])


def test_subprocess_waiting_on_a_participant(h: ProcessHarness) -> None:
    run = h.launch(
        proc("- sub: {x: X}\n- bravo", subprocesses="sub:\n  - hold: {x: '${v:x}'}\n  - alpha")
    ).wait()
    assert run.status == "running"
    assert held(h, "hold").params == {"x": "X"}
    assert held(h, "hold").fei["expid"] == "sub/0_0"
    answer(h, "hold", r=1)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha", "bravo"]
    assert run.fields == {"r": 1}


def test_subprocess_raw_vars(h: ProcessHarness) -> None:
    run = h.launch(
        proc(
            "- sub: {items: $f:lst, n: $f:n}",
            subprocesses="""
        sub:
          - iterator:
              on: $v:items
              steps:
                - echo: "${v:i}"
          - hold: {n: $v:n}
        """,
        ),
        fields={"lst": ["p", "q"], "n": 3},
    ).wait()
    assert h.trace == ["p", "q"]
    assert held(h, "hold").params == {"n": 3}
    assert run.status == "running"


def test_subprocess_with_if_and_unless(h: ProcessHarness) -> None:
    check(
        h,
        """
        - sub: {n: 1}
          if: "${f:go}"
        - sub: {n: 2}
          unless: "${f:go}"
        - subprocess: {ref: sub, n: 3}
          if: "${f:go} == false"
        """,
        "sub:\n  - echo: 'n=${v:n}'",
        ["n=1"],
        fields={"go": True},
    )


def test_subprocess_in_concurrence_branches_have_their_own_scopes(h: ProcessHarness) -> None:
    run = h.launch(
        proc(
            """
        - concurrence:
          - sub: {who: one}
          - sub: {who: two}
        """,
            subprocesses="sub:\n  - hold: {who: '${v:who}'}\n  - echo: 'end ${v:who}'",
        )
    ).wait()
    two = next(wi for wi in h.pending.values() if wi.params["who"] == "two")
    h.reply(two)
    one = next(wi for wi in h.pending.values() if wi.params["who"] == "one")
    h.reply(one)
    run.wait()
    assert h.trace == ["end two", "end one"]


# -- variables outside subprocesses -----------------------------------------------------------


def test_definition_and_launch_variables(h: ProcessHarness) -> None:
    check(
        h,
        "- echo: '${v:a} ${v:b}'",
        "",
        ["A2 B"],
        head="variables: {a: A, b: B}",
        variables={"a": "A2"},
    )


def test_set_and_read_variables_at_the_top(h: ProcessHarness) -> None:
    run = check(
        h,
        "- set: {'v:x': 1, 'v:cfg.k': v}\n- echo: '${v:x} ${v:cfg.k} ${v:cfg}'",
        "",
        ['1 v {"k":"v"}'],
    )
    assert run.fields == {}


def test_variables_are_not_fields(h: ProcessHarness) -> None:
    run = check(
        h, "- set: {'v:x': var, x: field}\n- echo: '${v:x} ${f:x} ${x}'", "", ["var field field"]
    )
    assert run.fields == {"x": "field"}


def test_unset_variable(h: ProcessHarness) -> None:
    check(
        h, "- set: {'v:x': 1, 'v:y': 2}\n- unset: v:x\n- echo: '[${v:x}] [${v:y}]'", "", ["[] [2]"]
    )


def test_variables_visible_in_concurrence_branches(h: ProcessHarness) -> None:
    run = check(
        h,
        "- set: {'v:x': X}\n- concurrence:\n  - echo: 'a ${v:x}'\n  - echo: 'b ${v:x}'",
        "",
        ["a X", "b X"],
    )
    assert run.status == "finished"
