"""set, unset, wait, echo, noop, error, cancel_process / terminate, cancel,
if (expression and attribute), conditions and ``${}`` substitution
(process-language.md sections 2 and 5)."""

from __future__ import annotations

import textwrap

import pytest

from engine.testing import ProcessHarness
from tests.engine.support import (
    START,
    answer,
    cancelled_names,
    held,
    make,
    proc,
    run_proc,
)


@pytest.fixture
def h() -> ProcessHarness:
    """Tracers alpha..golf, tick, holders hold and hold_a..hold_d."""
    return make()


# -- set ----------------------------------------------------------------------------------

SETS = [
    pytest.param(
        "{'f:status': FAILED}", {"status": "SUCCESS"}, {"status": "FAILED"}, id="f-prefix"
    ),
    pytest.param("{plain: x}", {}, {"plain": "x"}, id="no-prefix"),
    pytest.param("{a.b.c: 1}", {}, {"a": {"b": {"c": 1}}}, id="dotted-creates"),
    pytest.param(
        "{'f:a.b': 2}", {"a": {"b": 1, "c": 3}}, {"a": {"b": 2, "c": 3}}, id="dotted-keeps-siblings"
    ),
    pytest.param("{a.b: 1}", {"a": "scalar"}, {"a": {"b": 1}}, id="dotted-through-a-scalar"),
    pytest.param(
        "{n: 5, fl: 1.5, t: true, l: [1, two], m: {k: v}, z: null}",
        {},
        {"n": 5, "fl": 1.5, "t": True, "l": [1, "two"], "m": {"k": "v"}, "z": None},
        id="typed-values",
    ),
    pytest.param("{on: yes, off: no}", {}, {"on": "yes", "off": "no"}, id="yaml-1.2-strings"),
    pytest.param(
        "{'f:${f:name}': x}",
        {"name": "target"},
        {"name": "target", "target": "x"},
        id="substituted-key",
    ),
    pytest.param(
        "{'${f:name}.sub': x}",
        {"name": "target"},
        {"name": "target", "target": {"sub": "x"}},
        id="substituted-dotted-key",
    ),
    pytest.param("{v: '${f:a}-x'}", {"a": "A"}, {"a": "A", "v": "A-x"}, id="substituted-value"),
    pytest.param("{v: '${f:n}'}", {"n": 3}, {"n": 3, "v": "3"}, id="substituted-value-is-text"),
    pytest.param(
        "{copy: $f:lst}",
        {"lst": [1, {"k": 2}]},
        {"lst": [1, {"k": 2}], "copy": [1, {"k": 2}]},
        id="raw-copy-list",
    ),
    pytest.param("{copy: $f:n}", {"n": 3}, {"n": 3, "copy": 3}, id="raw-copy-number"),
    pytest.param("{copy: $f:nope}", {}, {"copy": None}, id="raw-copy-of-missing-is-null"),
    pytest.param(
        "{copy: $f:m.k}", {"m": {"k": [1]}}, {"m": {"k": [1]}, "copy": [1]}, id="raw-copy-dotted"
    ),
    pytest.param("{v: '[${f:nope}]'}", {}, {"v": "[]"}, id="missing-is-empty"),
    pytest.param(
        "{cfg: {a: '${f:x}', l: ['${f:x}']}}",
        {"x": "X"},
        {"x": "X", "cfg": {"a": "X", "l": ["X"]}},
        id="nested-values-substituted",
    ),
    pytest.param("{a: 1, b: '${f:a}'}", {}, {"a": 1, "b": "1"}, id="keys-in-order"),
    pytest.param("{'v:x': 1}", {"k": 0}, {"k": 0}, id="variable-is-not-a-field"),
]


@pytest.mark.parametrize(("values", "fields", "result"), SETS)
def test_set_fields(h: ProcessHarness, values: str, fields: dict, result: dict) -> None:
    run = run_proc(h, f"- set: {values}", fields=fields)
    assert run.status == "finished"
    assert run.fields == result


VAR_SETS = [
    pytest.param("{'v:x': 1}", "${v:x}", "1", id="variable"),
    pytest.param("{'v:x': [1, 2]}", "${v:x}", "[1,2]", id="variable-list"),
    pytest.param("{'v:cfg.k': v}", "${v:cfg.k}|${v:cfg}", 'v|{"k":"v"}', id="variable-dotted"),
    pytest.param("{'v:${f:name}': x}", "${v:target}", "x", id="variable-substituted-key"),
    pytest.param("{'v:copy': $f:lst}", "${v:copy.1}", "b", id="variable-raw-copy"),
    pytest.param("{'v:a': 1, 'v:b': '${v:a}2'}", "${v:b}", "12", id="variables-in-order"),
]


@pytest.mark.parametrize(("values", "echo", "text"), VAR_SETS)
def test_set_variables(h: ProcessHarness, values: str, echo: str, text: str) -> None:
    run = run_proc(
        h, f"- set: {values}\n- echo: '{echo}'", fields={"name": "target", "lst": ["a", "b"]}
    )
    assert h.trace == [text]
    assert run.fields == {"name": "target", "lst": ["a", "b"]}


def test_set_raw_copy_is_a_copy(h: ProcessHarness) -> None:
    def grow(wi):
        wi.fields["copy"].append("new")
        wi.fields["copy_m"]["k"] = "changed"

    h.register("grow", grow)
    run = run_proc(
        h, "- set: {copy: $f:lst, copy_m: $f:m}\n- grow", fields={"lst": ["a"], "m": {"k": "v"}}
    )
    assert run.fields == {
        "lst": ["a"],
        "m": {"k": "v"},
        "copy": ["a", "new"],
        "copy_m": {"k": "changed"},
    }


def test_set_variable_raw_copy_from_variable(h: ProcessHarness) -> None:
    run_proc(h, "- set: {'v:a': [1, 2]}\n- set: {'v:b': $v:a, c: $v:a}\n- hold: {b: $v:b}")
    wi = held(h, "hold")
    assert wi.params == {"b": [1, 2]}
    assert wi.fields["c"] == [1, 2]


# BUG-104
@pytest.mark.parametrize(
    ("key", "fields", "result"),
    [
        pytest.param("lst.0", {"lst": ["a", "b"]}, {"lst": ["x", "b"]}, id="list-item"),
        pytest.param(
            "lst.1.k",
            {"lst": [{"k": 1}, {"k": 2}]},
            {"lst": [{"k": 1}, {"k": "x"}]},
            id="mapping-in-a-list",
        ),
    ],
)
def test_set_through_a_list_index(h: ProcessHarness, key: str, fields: dict, result: dict) -> None:
    run = run_proc(h, f"- set: {{'{key}': x}}\n- echo: '${{{key}}}'", fields=fields)
    assert run.status == "finished"
    assert run.fields == result
    assert h.trace == ["x"]


# -- unset --------------------------------------------------------------------------------

UNSETS = [
    pytest.param("x", {"x": 1, "y": 2}, {"y": 2}, id="name"),
    pytest.param("f:x", {"x": 1, "y": 2}, {"y": 2}, id="f-prefix"),
    pytest.param("[x, y]", {"x": 1, "y": 2, "z": 3}, {"z": 3}, id="list"),
    pytest.param("a.b", {"a": {"b": 1, "c": 2}}, {"a": {"c": 2}}, id="dotted"),
    pytest.param("nope", {"x": 1}, {"x": 1}, id="missing"),
    pytest.param("a.nope.deeper", {"a": {"b": 1}}, {"a": {"b": 1}}, id="missing-dotted"),
    pytest.param("'${f:which}'", {"which": "x", "x": 1}, {"which": "x"}, id="substituted"),
    pytest.param("v:x", {"x": 1}, {"x": 1}, id="variable-leaves-fields"),
]


@pytest.mark.parametrize(("names", "fields", "result"), UNSETS)
def test_unset(h: ProcessHarness, names: str, fields: dict, result: dict) -> None:
    run = run_proc(h, f"- unset: {names}", fields=fields)
    assert run.status == "finished"
    assert run.fields == result


@pytest.mark.parametrize(
    ("names", "text"),
    [
        pytest.param("v:x", '[] [2] [{"k":1,"l":2}]', id="variable"),
        pytest.param("[v:x, v:y]", '[] [] [{"k":1,"l":2}]', id="variables"),
        pytest.param("v:m.k", '[1] [2] [{"l":2}]', id="variable-dotted"),
    ],
)
def test_unset_variables(h: ProcessHarness, names: str, text: str) -> None:
    run_proc(
        h,
        f"- set: {{'v:x': 1, 'v:y': 2, 'v:m': {{k: 1, l: 2}}}}\n- unset: {names}\n"
        "- echo: '[${v:x}] [${v:y}] [${v:m}]'",
    )
    assert h.trace == [text]


# BUG-105
@pytest.mark.parametrize(
    ("name", "fields", "result"),
    [
        pytest.param("lst.0", {"lst": ["a", "b"]}, {"lst": ["b"]}, id="list-item"),
        pytest.param(
            "lst.1.k",
            {"lst": [{"k": 1}, {"k": 2, "j": 3}]},
            {"lst": [{"k": 1}, {"j": 3}]},
            id="mapping-in-a-list",
        ),
    ],
)
def test_unset_through_a_list_index(
    h: ProcessHarness, name: str, fields: dict, result: dict
) -> None:
    run = run_proc(h, f"- unset: {name}\n- alpha", fields=fields)
    assert run.status == "finished"
    assert run.fields == result
    assert h.trace == ["alpha"]


# -- wait ---------------------------------------------------------------------------------

WAITS = [
    pytest.param("5s", 5, id="seconds"),
    pytest.param("2", 2, id="bare-number"),
    pytest.param("0.5", 0.5, id="bare-decimal"),
    pytest.param("500ms", 0.5, id="milliseconds"),
    pytest.param("0.3s", 0.3, id="decimal-seconds"),
    pytest.param("1m", 60, id="minutes"),
    pytest.param("1h30m", 5400, id="sum"),
    pytest.param("1d", 86400, id="day"),
    pytest.param("1w", 7 * 86400, id="week"),
    pytest.param("{for: 10s}", 10, id="for"),
    pytest.param("{for: 90}", 90, id="for-number"),
    pytest.param("'${f:delay}'", 3, id="substituted"),
    pytest.param("{for: '${f:delay}'}", 3, id="for-substituted"),
    pytest.param("{until: '2027-01-15T08:00:10Z'}", 10, id="until"),
    pytest.param("{until: '2027-01-15T09:00:10+01:00'}", 10, id="until-offset"),
    pytest.param("{until: '${f:when}'}", 20, id="until-substituted"),
]


@pytest.mark.parametrize(("arg", "seconds"), WAITS)
def test_wait(h: ProcessHarness, arg: str, seconds: float) -> None:
    run = run_proc(
        h,
        f"- alpha\n- wait: {arg}\n- bravo",
        fields={"delay": "3s", "when": "2027-01-15T08:00:20Z"},
    )
    assert run.status == "running"
    assert h.trace == ["alpha"]
    assert h.next_timer() == pytest.approx(seconds)
    h.advance(seconds - 0.01)
    assert run.wait().status == "running"
    assert h.trace == ["alpha"]
    h.advance(0.01)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha", "bravo"]


@pytest.mark.parametrize(
    "arg",
    [
        pytest.param("{until: '2027-01-15T07:59:59Z'}", id="until-in-the-past"),
        pytest.param("{until: '2027-01-15T08:00:00Z'}", id="until-now"),
        pytest.param("'${f:delay}'", id="substituted-zero"),
    ],
)
def test_wait_that_is_already_over(h: ProcessHarness, arg: str) -> None:
    run = run_proc(h, f"- wait: {arg}\n- bravo", fields={"delay": "0s"})
    assert run.status == "finished"
    assert h.trace == ["bravo"]
    assert h.next_timer() is None


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        pytest.param("'${f:w}'", "invalid duration", id="duration"),
        pytest.param("{for: '${f:w}'}", "invalid duration", id="for"),
        pytest.param("{until: '${f:w}'}", "invalid time", id="until"),
    ],
)
def test_wait_with_a_bad_substituted_value_is_a_run_error(
    h: ProcessHarness, arg: str, message: str
) -> None:
    run = run_proc(h, f"- wait: {arg}\n- alpha", fields={"w": "garbage"})
    assert run.status == "error"
    assert message in run.errors[0]["message"]
    assert h.trace == []
    assert h.next_timer() is None


def test_wait_until_without_a_zone_is_utc(h: ProcessHarness) -> None:
    run = run_proc(h, "- wait: {until: '2027-01-15T08:00:10'}\n- alpha")
    assert h.next_timer() == pytest.approx(10)
    h.advance(10)
    assert run.wait().status == "finished"


def test_wait_keeps_the_workitem(h: ProcessHarness) -> None:
    run = run_proc(h, "- set: {a: 1}\n- wait: 1s\n- echo: '${a}'")
    h.advance(1)
    run.wait()
    assert h.trace == ["1"]
    assert run.fields == {"a": 1}


def test_wait_is_cancellable_with_the_run(h: ProcessHarness) -> None:
    run = run_proc(h, "- wait: 1h\n- alpha")
    run.cancel()
    run.wait()
    assert run.status == "cancelled"
    assert h.next_timer() is None
    h.advance(7200)
    assert h.trace == []
    assert run.status == "cancelled"


def test_cancelling_the_wait_step_goes_on(h: ProcessHarness) -> None:
    run = run_proc(h, "- wait: 1h\n- alpha")
    run.cancel("0_0")
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert h.next_timer() is None


def test_wait_cancelled_by_tag(h: ProcessHarness) -> None:
    run = run_proc(h, "- concurrence:\n  - wait: 1h\n    tag: nap\n  - cancel: nap\n- alpha")
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert h.next_timer() is None


def test_cancelling_a_cursor_cancels_its_wait(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
          - cursor: [{wait: 1h}, alpha]
            tag: c
          - sequence: [{wait: 1m}, {cancel: c}]
        - bravo
        """,
    )
    assert h.next_timer() == pytest.approx(60)
    h.advance(60)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["bravo"]
    assert h.next_timer() is None


def test_shorter_wait_ends_a_count_1_concurrence(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
            count: 1
            branches:
              - sequence: [{wait: 1h}, alpha]
              - sequence: [{wait: 10s}, bravo]
        - charlie
        """,
    )
    h.advance(10)
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["bravo", "charlie"]
    assert h.next_timer() is None
    h.advance(3600)
    assert h.trace == ["bravo", "charlie"]


def test_waits_in_sequence_add_up(h: ProcessHarness) -> None:
    run = run_proc(h, "- wait: 10s\n- echo: a\n- wait: 5s\n- echo: b")
    h.advance(10)
    assert h.trace == ["a"]
    assert h.next_timer() == pytest.approx(5)
    h.advance(5)
    run.wait()
    assert h.trace == ["a", "b"]
    assert h.clock.now == START + 15


def test_parallel_waits(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        "- concurrence:\n  - sequence: [{wait: 3s}, {echo: three}]\n"
        "  - sequence: [{wait: 1s}, {echo: one}]\n- echo: both",
    )
    h.advance(1)
    assert h.trace == ["one"]
    h.advance(2)
    run.wait()
    assert h.trace == ["one", "three", "both"]


# -- echo, noop ------------------------------------------------------------------------------

ECHOES = [
    pytest.param("hello", {}, "hello", id="plain"),
    pytest.param("'hello ${who}'", {"who": "world"}, "hello world", id="field"),
    pytest.param("5", {}, "5", id="number"),
    pytest.param("'${n}'", {"n": 5}, "5", id="number-field"),
    pytest.param("'${flag} ${off}'", {"flag": True, "off": False}, "true false", id="booleans"),
    pytest.param("'${lst}'", {"lst": [1, "a"]}, '[1,"a"]', id="list-as-json"),
    pytest.param("'${m}'", {"m": {"k": [1]}}, '{"k":[1]}', id="mapping-as-json"),
    pytest.param("'${z}|'", {"z": None}, "|", id="null-is-empty"),
]


@pytest.mark.parametrize(("text", "fields", "line"), ECHOES)
def test_echo(h: ProcessHarness, text: str, fields: dict, line: str) -> None:
    run = run_proc(h, f"- echo: {text}", fields=fields)
    assert h.trace == [line]
    assert run.fields == fields


def test_noop(h: ProcessHarness) -> None:
    run = run_proc(h, "- alpha\n- noop\n- noop\n- bravo", fields={"a": 1})
    assert run.status == "finished"
    assert h.trace == ["alpha", "bravo"]
    assert run.fields == {"a": 1}


# -- error -------------------------------------------------------------------------------------


def test_error_becomes_a_run_error(h: ProcessHarness) -> None:
    run = run_proc(h, "- alpha\n- error: 'failed: ${f:why}'\n- bravo", fields={"why": "disk"})
    assert run.status == "error"
    assert h.trace == ["alpha"]
    [err] = run.errors
    assert err["message"] == "failed: disk"
    assert err["expid"] == "0_1"
    assert [p.expid for p in run.positions] == ["0_1"]


def test_error_without_a_message(h: ProcessHarness) -> None:
    run = run_proc(h, "- error\n- bravo")
    assert run.status == "error"
    assert run.errors[0]["message"]
    assert h.trace == []


def test_error_in_a_branch_other_branches_go_on(h: ProcessHarness) -> None:
    run = run_proc(h, "- concurrence:\n  - error: bad\n  - sequence: [hold, alpha]\n- bravo")
    assert run.status == "error"
    answer(h, "hold")
    run.wait()
    assert h.trace == ["alpha"]
    assert run.status == "error"
    assert [e["message"] for e in run.errors] == ["bad"]


def test_error_in_a_branch_cancelled_by_count_is_resolved(h: ProcessHarness) -> None:
    run = run_proc(h, "- concurrence:\n    count: 1\n    branches: [{error: bad}, hold]\n- alpha")
    assert run.status == "error"
    answer(h, "hold")
    run.wait()
    assert run.status == "finished"
    assert run.errors == []
    assert h.trace == ["alpha"]


def test_cancel_process_with_an_unresolved_error(h: ProcessHarness) -> None:
    run = run_proc(h, "- concurrence:\n  - error: bad\n  - sequence: [hold, terminate]")
    assert run.status == "error"
    answer(h, "hold")
    run.wait()
    assert run.status == "cancelled"


def test_replaying_an_error_step_goes_on_past_it(h: ProcessHarness) -> None:
    run = run_proc(h, "- error: stop here\n- alpha")
    run.replay()
    run.wait()
    assert run.status == "finished"
    assert h.trace == ["alpha"]


# -- cancel_process / terminate, cancel ------------------------------------------------------------


@pytest.mark.parametrize("kw", ["cancel_process", "terminate"])
def test_cancel_process(h: ProcessHarness, kw: str) -> None:
    run = run_proc(h, f"- alpha\n- {kw}\n- bravo")
    assert run.status == "cancelled"
    assert h.trace == ["alpha"]


@pytest.mark.parametrize("kw", ["cancel_process", "terminate"])
def test_cancel_process_cancels_the_waiting_participants(h: ProcessHarness, kw: str) -> None:
    run = run_proc(h, f"- concurrence:\n  - hold_a\n  - sequence: [alpha, {kw}]\n- bravo")
    assert run.status == "cancelled"
    assert h.trace == ["alpha"]
    assert cancelled_names(h) == ["hold_a"]
    assert h.pending == {}


def test_cancel_process_from_a_subprocess(h: ProcessHarness) -> None:
    run = h.launch(proc("- sub\n- bravo", subprocesses="sub: [alpha, terminate, charlie]"))
    run.wait()
    assert run.status == "cancelled"
    assert h.trace == ["alpha"]


def test_cancel_process_also_ends_forgotten_branches(h: ProcessHarness) -> None:
    run = run_proc(h, "- hold:\n  forget: true\n- alpha\n- cancel_process")
    assert run.status == "cancelled"
    assert cancelled_names(h) == ["hold"]


def test_cancel_process_runs_on_cancel(h: ProcessHarness) -> None:
    run = h.launch(
        proc(
            "- concurrence:\n  - sequence: [hold, alpha]\n    on_cancel: bravo\n"
            "  - sequence: [charlie, cancel_process]"
        )
    ).wait()
    assert run.status == "cancelled"
    assert h.trace == ["charlie", "bravo"]


def test_cancel_by_tag(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
          - sequence: [hold_a, alpha]
            tag: review
          - sequence: [bravo, {cancel: review}]
        - charlie
        """,
    )
    assert run.status == "finished"
    assert h.trace == ["bravo", "charlie"]
    assert cancelled_names(h) == ["hold_a"]


def test_cancel_by_substituted_tag(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        "- concurrence:\n  - hold_a:\n    tag: x\n  - cancel: '${f:t}'\n- alpha",
        fields={"t": "x"},
    )
    assert run.status == "finished"
    assert h.trace == ["alpha"]
    assert cancelled_names(h) == ["hold_a"]


def test_cancel_every_step_with_the_tag(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - concurrence:
          - hold_a:
            tag: x
          - hold_b:
            tag: x
          - hold_c
          - cancel: x
        - alpha
        """,
    )
    assert run.status == "running"
    assert sorted(cancelled_names(h)) == ["hold_a", "hold_b"]
    answer(h, "hold_c")
    run.wait()
    assert h.trace == ["alpha"]


def test_cancel_of_an_unknown_tag_does_nothing(h: ProcessHarness) -> None:
    run = run_proc(h, "- alpha\n- cancel: nothing_has_this_tag\n- bravo")
    assert run.status == "finished"
    assert h.trace == ["alpha", "bravo"]


def test_cancel_of_a_tag_that_already_ended(h: ProcessHarness) -> None:
    run = run_proc(h, "- alpha:\n  tag: a\n- cancel: a\n- bravo")
    assert run.status == "finished"
    assert h.trace == ["alpha", "bravo"]


def test_cancel_of_an_enclosing_tag(h: ProcessHarness) -> None:
    run = run_proc(h, "- sequence: [alpha, {cancel: outer}, bravo]\n  tag: outer\n- charlie")
    assert run.status == "finished"
    assert h.trace == ["alpha", "charlie"]


def test_cancelled_step_keeps_the_applied_workitem(h: ProcessHarness) -> None:
    run = run_proc(h, "- sequence: [hold]\n  tag: s\n- echo: '${changed}'")
    wi = held(h, "hold")
    wi.fields["changed"] = "yes"
    run.cancel(wi.fei["expid"])
    run.wait()
    assert run.status == "finished"
    assert h.trace == [""]


# -- if (the expression) -----------------------------------------------------------------------

IFS = [
    pytest.param("{test: 'true', then: [alpha]}", ["alpha", "end"], id="then"),
    pytest.param("{test: 'false', then: [alpha]}", ["end"], id="false-without-else"),
    pytest.param(
        "{test: 'false', then: [alpha], else: [bravo, charlie]}",
        ["bravo", "charlie", "end"],
        id="else",
    ),
    pytest.param("{test: '${f:go}', then: [alpha], else: [bravo]}", ["alpha", "end"], id="field"),
    pytest.param(
        "{test: '${f:nope}', then: [alpha], else: [bravo]}", ["bravo", "end"], id="missing-is-false"
    ),
    pytest.param("{test: 'true', then: []}", ["end"], id="empty-then"),
    pytest.param(
        "{test: 'true', then: [{if: {test: 'false', then: [alpha], else: [bravo]}}]}",
        ["bravo", "end"],
        id="nested",
    ),
]


@pytest.mark.parametrize(("arg", "trace"), IFS)
def test_if_expression(h: ProcessHarness, arg: str, trace: list) -> None:
    run = run_proc(h, f"- if: {arg}\n- echo: end", fields={"go": True})
    assert run.status == "finished"
    assert h.trace == trace


def test_if_branch_fields_flow_on(h: ProcessHarness) -> None:
    run = run_proc(
        h,
        """
        - if:
            test: "${f:n} > 1"
            then:
              - set: {branch: then}
            else:
              - set: {branch: else}
        - echo: "${branch}"
        """,
        fields={"n": 2},
    )
    assert h.trace == ["then"]
    assert run.fields == {"n": 2, "branch": "then"}


CONDITIONS = [
    # condition, fields, expected truth
    pytest.param("${f:n} > 5", {"n": 10}, True, id="number-gt"),
    pytest.param("${f:n} > 5", {"n": 3}, False, id="number-not-gt"),
    pytest.param("${f:n} > 5", {"n": "10"}, True, id="numeric-string-vs-number"),
    pytest.param("${f:n} < 9", {"n": "10"}, False, id="numeric-string-compares-as-number"),
    pytest.param("${f:n} == 10", {"n": "10"}, True, id="numeric-string-equals-number"),
    pytest.param("${f:n} == 10.0", {"n": 10}, True, id="int-equals-float"),
    pytest.param("${f:n} >= 0", {"n": 0}, True, id="zero-ge"),
    pytest.param("${f:n} != 3", {"n": 3}, False, id="ne"),
    pytest.param("${f:n} <= 3", {"n": 3}, True, id="le"),
    pytest.param("${f:s} == 'a b'", {"s": "a b"}, True, id="quoted-string"),
    pytest.param("${f:s} == SUCCESS", {"s": "SUCCESS"}, True, id="bare-string"),
    pytest.param("${f:s} == y", {"s": "y or true"}, False, id="field-cannot-change-syntax"),
    pytest.param("${f:s} == 'y'", {"s": "y' or 'a' == 'a"}, False, id="quote-injection"),
    pytest.param("'${f:x}-suffix' == 'a-suffix'", {"x": "a"}, True, id="text-inside-string"),
    pytest.param("${f:flag}", {"flag": True}, True, id="bool-true"),
    pytest.param("${f:flag}", {"flag": False}, False, id="bool-false"),
    pytest.param("${f:flag} == true", {"flag": True}, True, id="bool-equals-true"),
    pytest.param("${f:flag} == false", {"flag": False}, True, id="bool-equals-false"),
    pytest.param("${f:n}", {"n": 0}, False, id="zero-is-false"),
    pytest.param("${f:n}", {"n": 2}, True, id="number-is-true"),
    pytest.param("${f:s}", {"s": ""}, False, id="empty-string-is-false"),
    pytest.param("${f:s}", {"s": "x"}, True, id="string-is-true"),
    pytest.param("${f:z}", {"z": None}, False, id="null-is-false"),
    pytest.param("${f:z} == null", {"z": None}, True, id="equals-null"),
    pytest.param("${f:lst}", {"lst": []}, False, id="empty-list-is-false"),
    pytest.param("${f:nope}", {}, False, id="missing-is-false"),
    pytest.param("${f:lst} is empty", {"lst": []}, True, id="is-empty"),
    pytest.param("${f:lst} is not empty", {"lst": [1]}, True, id="is-not-empty"),
    pytest.param("${f:s} is empty", {"s": ""}, True, id="empty-string-is-empty"),
    pytest.param("${f:x} is set", {"x": ""}, True, id="is-set-empty-string"),
    pytest.param("${f:x} is set", {}, False, id="is-set-missing"),
    pytest.param("${f:x} is not set", {}, True, id="is-not-set"),
    pytest.param("${v:x} is set", {}, True, id="variable-is-set"),
    pytest.param("${f:x} in [a, b]", {"x": "a"}, True, id="in-list"),
    pytest.param("${f:x} in [a, b]", {"x": "c"}, False, id="not-in-list"),
    pytest.param("${f:x} not in [a, b]", {"x": "c"}, True, id="not-in"),
    pytest.param("${f:n} in [1, 2]", {"n": "2"}, True, id="in-numeric-string"),
    pytest.param("a in ${f:lst}", {"lst": ["a", "b"]}, True, id="in-field-list"),
    pytest.param("${f:name} =~ '^build_'", {"name": "build_arm"}, True, id="regex"),
    pytest.param("${f:name} =~ '^build_'", {"name": "rebuild"}, False, id="regex-no-match"),
    pytest.param("${f:a} and ${f:b}", {"a": True, "b": False}, False, id="and"),
    pytest.param("${f:a} or ${f:b}", {"a": True, "b": False}, True, id="or"),
    pytest.param("not ${f:b}", {"b": False}, True, id="not"),
    pytest.param(
        "(${f:a} or ${f:b}) and not ${f:c}",
        {"a": False, "b": True, "c": False},
        True,
        id="parentheses",
    ),
    pytest.param(
        "${f:a} or ${f:b} and ${f:c}",
        {"a": True, "b": False, "c": False},
        True,
        id="and-binds-tighter",
    ),
    pytest.param("${f:a.b} == 1", {"a": {"b": 1}}, True, id="dotted-field"),
    pytest.param("${f:lst.0} == x", {"lst": ["x"]}, True, id="list-index"),
    pytest.param("${v:x} == 1", {}, True, id="variable-typed"),
    pytest.param("${x} == 2", {"x": 2}, True, id="bare-field"),
    pytest.param("${f:${v:key}} == deep", {"k2": "deep"}, True, id="nested-reference"),
    pytest.param("${f:b} == 1", {"b": True}, False, id="bool-is-not-a-number"),
    pytest.param("${f:n} == true", {"n": 1}, False, id="number-is-not-a-bool"),
    pytest.param("${f:b} > 0", {"b": True}, False, id="bool-does-not-order-with-numbers"),
    pytest.param("${f:n} == 1.0", {"n": "1"}, True, id="numeric-string-equals-float"),
    pytest.param(
        "${f:a} == ${f:b}",
        {"a": [1, {"k": 2}], "b": [1, {"k": 2}]},
        True,
        id="lists-compare-as-they-are",
    ),
    pytest.param("${f:a} < ${f:b}", {"a": "abc", "b": "abd"}, True, id="strings-order"),
    pytest.param("${f:a} < 5", {"a": "abc"}, False, id="string-vs-number-does-not-order"),
    # spec silent: the engine reads the strings "true"/"false" as booleans (ruote)
    pytest.param("${f:s} == true", {"s": "true"}, True, id="string-true-equals-true"),
    pytest.param("${f:s}", {"s": "false"}, False, id="string-false-is-false"),
    # spec silent: a missing value equals null
    pytest.param("${f:nope} == null", {}, True, id="missing-equals-null"),
]


@pytest.mark.parametrize(("cond", "fields", "truth"), CONDITIONS)
def test_conditions_with_typed_operands(
    h: ProcessHarness, cond: str, fields: dict, truth: bool
) -> None:
    steps = textwrap.dedent(
        """
        - set: {"v:x": 1, "v:key": k2}
        - if:
            test: COND
            then: [{echo: "yes"}]
            else: [{echo: "no"}]
        - echo: "if-attr"
          if: COND
        - echo: "unless-attr"
          unless: COND
        """
    ).replace("COND", '"' + cond.replace('"', '\\"') + '"')
    run = run_proc(h, steps, fields=fields)
    assert run.status == "finished"
    assert h.trace == (["yes", "if-attr"] if truth else ["no", "unless-attr"])


# -- if / unless on every kind of step -----------------------------------------------------------

SUBS = "sub:\n  - echo: in sub"

KINDS = [
    # step (ATTR is the attribute), applied: (status, trace), skipped: (status, trace)
    pytest.param(
        "- alpha:\n  ATTR",
        ("finished", ["alpha", "end"]),
        ("finished", ["end"]),
        id="participant-string",
    ),
    pytest.param(
        "- participant: alpha\n  ATTR",
        ("finished", ["alpha", "end"]),
        ("finished", ["end"]),
        id="participant",
    ),
    pytest.param(
        "- alpha: {x: 1}\n  ATTR",
        ("finished", ["alpha", "end"]),
        ("finished", ["end"]),
        id="participant-params",
    ),
    pytest.param("- hold:\n  ATTR", ("running", []), ("finished", ["end"]), id="held-participant"),
    pytest.param(
        "- sequence: [alpha, bravo]\n  ATTR",
        ("finished", ["alpha", "bravo", "end"]),
        ("finished", ["end"]),
        id="sequence",
    ),
    pytest.param(
        "- concurrence: [alpha, bravo]\n  ATTR",
        ("finished", ["alpha", "bravo", "end"]),
        ("finished", ["end"]),
        id="concurrence",
    ),
    pytest.param(
        "- cursor: [alpha, break, bravo]\n  ATTR",
        ("finished", ["alpha", "end"]),
        ("finished", ["end"]),
        id="cursor",
    ),
    pytest.param(
        "- loop: [alpha, break]\n  ATTR",
        ("finished", ["alpha", "end"]),
        ("finished", ["end"]),
        id="loop",
    ),
    pytest.param(
        "- iterator: {on: [a, b], steps: [{echo: '${v:i}'}]}\n  ATTR",
        ("finished", ["a", "b", "end"]),
        ("finished", ["end"]),
        id="iterator",
    ),
    pytest.param(
        "- concurrent_iterator: {on: [a, b], steps: [{echo: '${v:i}'}]}\n  ATTR",
        ("finished", ["a", "b", "end"]),
        ("finished", ["end"]),
        id="concurrent_iterator",
    ),
    pytest.param(
        "- sub:\n  ATTR",
        ("finished", ["in sub", "end"]),
        ("finished", ["end"]),
        id="subprocess-short",
    ),
    pytest.param(
        "- subprocess: sub\n  ATTR",
        ("finished", ["in sub", "end"]),
        ("finished", ["end"]),
        id="subprocess",
    ),
    pytest.param(
        "- if: {test: 'true', then: [alpha]}\n  UNLESS",
        ("finished", ["alpha", "end"]),
        ("finished", ["end"]),
        id="if-expression",
    ),
    pytest.param(
        "- set: {s: 1}\n  ATTR\n- echo: 's=${s}'",
        ("finished", ["s=1", "end"]),
        ("finished", ["s=", "end"]),
        id="set",
    ),
    pytest.param(
        "- unset: u\n  ATTR\n- echo: 'u=${u}'",
        ("finished", ["u=", "end"]),
        ("finished", ["u=1", "end"]),
        id="unset",
    ),
    pytest.param("- wait: 10s\n  ATTR", ("running", []), ("finished", ["end"]), id="wait"),
    pytest.param(
        "- reserve: {mutex: m, steps: [alpha]}\n  ATTR",
        ("finished", ["alpha", "end"]),
        ("finished", ["end"]),
        id="reserve",
    ),
    pytest.param(
        "- listen: {to: nobody_calls_this}\n  ATTR",
        ("running", []),
        ("finished", ["end"]),
        id="listen",
    ),
    pytest.param(
        "- echo: hi\n  ATTR", ("finished", ["hi", "end"]), ("finished", ["end"]), id="echo"
    ),
    pytest.param("- error: boom\n  ATTR", ("error", []), ("finished", ["end"]), id="error"),
    pytest.param(
        "- cancel_process:\n  ATTR", ("cancelled", []), ("finished", ["end"]), id="cancel_process"
    ),
    pytest.param("- terminate:\n  ATTR", ("cancelled", []), ("finished", ["end"]), id="terminate"),
    pytest.param(
        "- concurrence:\n  - hold_a:\n    tag: x\n  - cancel: x\n    ATTR",
        ("finished", ["end"]),
        ("running", []),
        id="cancel",
    ),
    pytest.param(
        "- cursor:\n  - break:\n    ATTR\n  - alpha",
        ("finished", ["end"]),
        ("finished", ["alpha", "end"]),
        id="break",
    ),
    pytest.param(
        "- cursor:\n  - skip:\n    ATTR\n  - alpha\n  - bravo",
        ("finished", ["bravo", "end"]),
        ("finished", ["alpha", "bravo", "end"]),
        id="skip",
    ),
    pytest.param(
        "- cursor:\n  - jump: j\n    ATTR\n  - alpha\n  - echo: j\n    tag: j",
        ("finished", ["j", "end"]),
        ("finished", ["alpha", "j", "end"]),
        id="jump",
    ),
]


ATTR_CASES = [
    ("if", True, True),
    ("if", False, False),
    ("unless", True, False),
    ("unless", False, True),
]

#: every kind crossed with if/unless true/false ('if' as an expression takes 'unless' only)
KIND_CASES = [
    pytest.param(
        kind.values[0],
        kind.values[1],
        kind.values[2],
        attr,
        value,
        applied,
        id=f"{kind.id}-{attr}-{str(value).lower()}",
    )
    for kind in KINDS
    for attr, value, applied in ATTR_CASES
    if not ("UNLESS" in kind.values[0] and attr == "if")
]


@pytest.mark.parametrize(
    ("step", "when_applied", "when_skipped", "attr", "value", "applied"), KIND_CASES
)
def test_if_unless_on_every_kind_of_step(
    h: ProcessHarness, step: str, when_applied, when_skipped, attr: str, value: bool, applied: bool
) -> None:
    step = step.replace("UNLESS", "unless: '${f:c}'").replace("ATTR", f"{attr}: '${{f:c}}'")
    run = h.launch(
        proc(step + "\n- echo: end", subprocesses=SUBS), fields={"c": value, "u": 1}
    ).wait()
    status, trace = when_applied if applied else when_skipped
    assert run.status == status
    assert h.trace == trace


def test_back_command_with_if_is_applied(h: ProcessHarness) -> None:
    run = run_proc(h, "- cursor:\n  - tick\n  - back:\n    if: '${f:ticks} < 3'\n- echo: end")
    assert run.status == "finished"
    assert run.fields == {"ticks": 3}


def test_skipped_step_keeps_the_fields(h: ProcessHarness) -> None:
    run = run_proc(h, "- set: {a: 2}\n  if: 'false'\n- tick:\n  unless: 'true'", fields={"a": 1})
    assert run.fields == {"a": 1}
    assert h.dispatched == []


# -- ${} substitution ----------------------------------------------------------------------

SUBSTITUTIONS = [
    pytest.param("${f:x}", "X", id="f-field"),
    pytest.param("${x}", "X", id="bare-field"),
    pytest.param("${v:x}", "V", id="variable"),
    pytest.param("${wfid}", "WFID", id="wfid"),
    pytest.param("${expid}", "0_1", id="expid"),
    pytest.param("${f:wfid}", "field-wfid", id="field-named-wfid"),
    pytest.param("${f:${v:key}}", "X", id="nested"),
    pytest.param("${v:${f:vkey}}", "V", id="nested-variable"),
    pytest.param("${f:${v:${f:kk}}}", "X", id="nested-twice"),
    pytest.param("[${f:nope}]", "[]", id="missing-field"),
    pytest.param("[${v:nope}]", "[]", id="missing-variable"),
    pytest.param("[${f:${v:nope}}]", "[]", id="nested-missing"),
    pytest.param("${a.b}", "AB", id="dotted"),
    pytest.param("${f:lst.1}", "second", id="list-index"),
    pytest.param("${f:a.nope.deeper}|", "|", id="dotted-missing"),
    pytest.param("x=${f:x} v=${v:x} id=${expid}", "x=X v=V id=0_1", id="several"),
    pytest.param("${f:inj}", "${f:x}", id="substituted-text-is-not-substituted-again"),
    pytest.param("no refs $ here {}", "no refs $ here {}", id="no-reference"),
]


@pytest.mark.parametrize(("template", "text"), SUBSTITUTIONS)
def test_substitution(h: ProcessHarness, template: str, text: str) -> None:
    run = run_proc(
        h,
        f"- set: {{'v:x': V, 'v:key': x, 'v:vx': x}}\n- echo: '{template}'",
        fields={
            "x": "X",
            "wfid": "field-wfid",
            "vkey": "x",
            "kk": "key",
            "a": {"b": "AB"},
            "lst": ["first", "second"],
            "inj": "${f:x}",
        },
    )
    assert h.trace == [text.replace("WFID", run.wfid)]


SUBSTITUTION_PLACES = [
    pytest.param(
        "- hold: {p: '${f:x}'}",
        lambda h, run: held(h, "hold").params == {"p": "X"},
        id="participant-params",
    ),
    pytest.param(
        "- participant: {ref: hold, p: '${v:x}'}",
        lambda h, run: held(h, "hold").params == {"p": "V"},
        id="participant-ref-params",
    ),
    pytest.param("- '${f:who}'", lambda h, run: h.trace == ["bravo"], id="participant-name"),
    pytest.param(
        "- sub: {p: '${f:x}${v:x}'}", lambda h, run: h.trace == ["p=XV"], id="subprocess-vars"
    ),
    pytest.param(
        "- error: 'e ${f:x}'", lambda h, run: run.errors[0]["message"] == "e X", id="error-message"
    ),
    pytest.param(
        "- set: {'${f:x}': '${v:x}'}", lambda h, run: run.fields["X"] == "V", id="set-key-and-value"
    ),
    pytest.param(
        "- iterator: {on: '${f:csv}', steps: [{echo: '${v:i}'}]}",
        lambda h, run: h.trace == ["a", "b"],
        id="iterator-on",
    ),
    pytest.param(
        "- cursor: [{jump: '${f:target}'}, alpha, {echo: t, tag: T}]",
        lambda h, run: h.trace == ["t"],
        id="jump-target",
    ),
    pytest.param("- wait: '${f:delay}'", lambda h, run: h.next_timer() == 7, id="wait"),
    pytest.param(
        "- echo: '${f:x}'\n  if: \"${v:x} == V\"",
        lambda h, run: h.trace == ["X"],
        id="if-attribute",
    ),
]


@pytest.mark.parametrize(("step", "ok"), SUBSTITUTION_PLACES)
def test_substitution_everywhere(h: ProcessHarness, step: str, ok) -> None:
    run = h.launch(
        proc("- set: {'v:x': V}\n" + step, subprocesses="sub: [{echo: 'p=${v:p}'}]"),
        fields={"x": "X", "who": "bravo", "csv": "a,b", "target": "T", "delay": "7s"},
    ).wait()
    assert ok(h, run)
