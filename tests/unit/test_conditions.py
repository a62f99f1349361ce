"""engine.core.conditions: the safe condition evaluator (section 5)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

import engine.core.conditions
from engine.core.conditions import Condition, ConditionError, parse_condition
from engine.core.substitution import MISSING, DictScope

FIELDS: dict[str, Any] = {
    "status": "SUCCESS",
    "n": 3,
    "n_text": "3",
    "ten_text": "10",
    "ratio": 0.5,
    "neg": -2,
    "zero": 0,
    "ok": True,
    "bad": False,
    "true_text": "true",
    "false_text": "FALSE",
    "nothing": None,
    "empty": "",
    "blank": " ",
    "items": ["a", "b", "3"],
    "numbers": [1, 2, 3],
    "no_items": [],
    "mapping": {"k": 1, "10": "ten"},
    "no_mapping": {},
    "ev": {"actions": [{"type": "submit", "target": "home:foo"}]},
    "key_name": "status",
    "project": "home:foo",
    "version": "build-1.2",
    "word_and": "and",
    # values that look like condition syntax: always compared as values
    "syntax": "x == y",
    "injection": ") or (1",
    "quote": 'it\'s "quoted"',
    "ref_text": "${status}",
    "bad_regex": "(unclosed",
    "pattern": "^SUC",
    "ints_as_text": ["1", "2"],
    "__result__": True,
}
VARIABLES: dict[str, Any] = {"key": "status", "repo": "home:foo", "limit": 5, "list": [1, 2]}
SPECIALS: dict[str, Any] = {"wfid": "20260101-abc", "expid": "0_1", "wf_name": "handle_sr"}


@pytest.fixture
def scope() -> DictScope:
    return DictScope(FIELDS, VARIABLES, SPECIALS)


def check(text: str | bool | int | float | None, expected: bool) -> None:
    scope = DictScope(FIELDS, VARIABLES, SPECIALS)
    result = parse_condition(text).evaluate(scope)
    assert result is expected, f"{text!r} gave {result!r}, expected {expected!r}"


# -- operators and literals -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # == and != with every literal kind
        ("${f:status} == SUCCESS", True),
        ("${status} == SUCCESS", True),
        ("${status} == FAILED", False),
        ("${status} != FAILED", True),
        ("${status} != SUCCESS", False),
        ("${status} == 'SUCCESS'", True),
        ('${status} == "SUCCESS"', True),
        ("${status} == success", False),  # case-sensitive values
        ("${n} == 3", True),
        ("${n} == 3.0", True),
        ("${n} == -3", False),
        ("${neg} == -2", True),
        ("${ratio} == 0.5", True),
        ("${ratio} == .5", True),
        ("${n} == 3e0", True),
        ("${ok} == true", True),
        ("${ok} == TRUE", True),
        ("${ok} == True", True),
        ("${bad} == false", True),
        ("${ok} == false", False),
        ("${nothing} == null", True),
        ("${nothing} == NULL", True),
        ("${empty} == ''", True),
        ('${empty} == ""', True),
        ("${empty} == null", False),
        ("${project} == home:foo", True),
        ("${version} == build-1.2", True),
        ("${items} == [a, b, 3]", True),
        ("${items} == [a, b, '3']", True),
        ("${items} == [a, b]", False),
        ("${no_items} == []", True),
        ("${numbers} == [1, 2, 3]", True),
        ("${mapping} == ${mapping}", True),
        ("${ev.actions.0.type} == submit", True),
        ("${ev.actions.0.target} == ${project}", True),
        # ordering
        ("${n} > 2", True),
        ("${n} > 3", False),
        ("${n} >= 3", True),
        ("${n} < 4", True),
        ("${n} <= 2", False),
        ("${neg} < 0", True),
        ("${ratio} < 1", True),
        ("${status} > ABC", True),  # strings compare as strings
        ("${status} < ABC", False),
        ("${numbers} < [1, 2, 4]", True),
        # regex
        ("${status} =~ ^SUC", True),
        ("${status} =~ CESS$", True),
        ("${status} =~ ^FAIL", False),
        ("${status} =~ 'S(UC|AD)'", True),
        ("${status} =~ '^s' ", False),
        ("${project} =~ '^home:'", True),
        ("${version} =~ '\\d+\\.\\d+'", True),
        ("${n} =~ ^3$", True),  # a number's text
        ("${ok} =~ ^true$", True),  # a boolean's text
        ("${status} =~ ${pattern}", True),
        ("${status} =~ ${bad_regex}", False),  # invalid pattern from data: false
        ("${absent} =~ .*", False),
        ("${status} =~ ${absent}", False),
        # in / not in
        ("a in ${items}", True),
        ("c in ${items}", False),
        ("c not in ${items}", True),
        ("a not in ${items}", False),
        ("3 in ${items}", True),  # "3" reads as a number
        ("${n} in ${items}", True),
        ("2 in ${numbers}", True),
        ("'2' in ${numbers}", True),
        ("4 in ${numbers}", False),
        ("k in ${mapping}", True),
        ("10 in ${mapping}", True),
        ("ten in ${mapping}", False),  # keys, not values
        ("CESS in ${status}", True),
        ("cess in ${status}", False),
        ("${status} in [SUCCESS, FAILED]", True),
        ("${status} in ['FAILED', \"ERROR\"]", False),
        ("${status} not in [FAILED, ERROR]", True),
        ("${n} in [1, 2, 3]", True),
        ("${n_text} in [1, 2, 3]", True),
        ("${ok} in [true]", True),
        ("${ok} in [1]", False),
        ("x in []", False),
        ("x in ${absent}", False),
        ("x not in ${absent}", True),
        ("${absent} in ${items}", False),
        ("[1, 2] in [[1, 2], [3]]", True),
        ("${n} in ${v:list}", False),
        ("1 in ${v:list}", True),
        ("oo in ${project}", True),
        ("3 in '1234'", True),
        # is set / is empty
        ("${status} is set", True),
        ("${empty} is set", True),
        ("${nothing} is set", True),
        ("${absent} is set", False),
        ("${absent} is not set", True),
        ("${empty} is not set", False),
        ("${v:repo} is set", True),
        ("${v:absent} is set", False),
        ("${absent} is empty", True),
        ("${empty} is empty", True),
        ("${nothing} is empty", True),
        ("${no_items} is empty", True),
        ("${no_mapping} is empty", True),
        ("${blank} is empty", False),
        ("${zero} is empty", False),
        ("${status} is empty", False),
        ("${items} is not empty", True),
        ("${empty} is not empty", False),
        ("${ok} IS NOT SET", False),
        ("${absent} Is Set", False),
    ],
)
def test_operators(text: str, expected: bool) -> None:
    check(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # numbers vs strings that read as numbers
        ("${n_text} == 3", True),
        ("${n_text} == 3.0", True),
        ("${n_text} != 3", False),
        ("${n_text} > 2", True),
        ("'10' > 9", True),
        ('"10" > 9', True),
        ("${ten_text} > 9", True),
        ("${ten_text} >= 10.0", True),
        ("9 < ${ten_text}", True),
        ("${ten_text} > '9'", False),  # two strings compare as strings
        ("abc > 1", False),  # not a number: incomparable, false
        ("abc < 1", False),
        ("abc == 1", False),
        ("${ints_as_text} == [1, 2]", True),
        # booleans vs "true"/"false" text
        ("${true_text} == true", True),
        ("${true_text} == false", False),
        ("${false_text} == false", True),
        ("${ok} == 'true'", True),
        ("${ok} == 'TRUE'", True),
        ("${ok} == yes", False),
        ("${ok} == 1", False),  # a boolean is not a number
        ("${bad} == 0", False),
        ("${__result__} == true", True),
        # incomparable ordering is false, never an error
        ("${items} > 3", False),
        ("${mapping} < ${mapping}", False),
        ("${ok} > false", False),
        ("${absent} < 1", False),
        ("${absent} >= ${absent}", False),
        ("${nothing} < 1", False),
        # missing values
        ("${absent} == null", True),
        ("${absent} == ${absent}", True),
        ("${absent} == ''", False),
        ("${absent} != ''", True),
        ("${absent} == 0", False),
        ("${absent} == false", False),
    ],
)
def test_typed_comparisons(text: str, expected: bool) -> None:
    check(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a condition that is a single operand is its truthiness
        ("${status}", True),
        ("${empty}", False),
        ("${blank}", True),
        ("${ok}", True),
        ("${bad}", False),
        ("${nothing}", False),
        ("${zero}", False),
        ("${n}", True),
        ("${neg}", True),
        ("${items}", True),
        ("${no_items}", False),
        ("${mapping}", True),
        ("${no_mapping}", False),
        ("${absent}", False),
        ("${v:limit}", True),
        ("${true_text}", True),
        ("${false_text}", False),  # the text "false" is false, like ${x} == false
        ("true", True),
        ("false", False),
        ("null", False),
        ("0", False),
        ("0.0", False),
        ("1", True),
        ("-1", True),
        ("''", False),
        ("'x'", True),
        ("[]", False),
        ("[0]", True),
        ("word", True),
        ("(${status})", True),
        ("not ${status}", False),
        ("not ${absent}", True),
    ],
)
def test_truthiness(text: str, expected: bool) -> None:
    check(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true or false and false", True),  # and binds tighter than or
        ("(true or false) and false", False),
        ("false and true or true", True),
        ("false and (true or true)", False),
        ("not true or true", True),  # not binds tighter than or
        ("not (true or true)", False),
        ("not false and false", False),  # not binds tighter than and
        ("not (false and false)", True),
        ("not ${status} == FAILED", True),  # not (status == FAILED)
        ("not ${status} == SUCCESS", False),
        ("not not ${ok}", True),
        ("NOT ${ok}", False),
        ("${ok} AND ${n} > 2", True),
        ("${bad} OR ${n} == 3", True),
        ("${n} > 2 and ${n} < 4 and ${status} == SUCCESS", True),
        ("${n} > 2 and ${n} < 4 and ${status} == FAILED", False),
        ("false or false or ${ok}", True),
        ("false or false or false", False),
        ("((${n} == 3))", True),
        ("(${n} == 3) == true", True),
        ("(${n} == 4) == false", True),
        ("(${n}) == 3", True),
        ("${status} == SUCCESS and (${n} == 1 or ${n} == 3)", True),
        ("${status}==SUCCESS", True),  # no spaces needed around operators
        ("${n} == 3and", False),  # 3and is a bare word, not 3 then a keyword
        ("(${n}>=3)and(${n}<=3)", True),
        ("  ${n} == 3  ", True),
        ("${n}\n== 3", True),
    ],
)
def test_precedence_and_grouping(text: str, expected: bool) -> None:
    check(text, expected)


# -- references and substitution -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${f:${v:key}} == SUCCESS", True),  # nested reference
        ("${${key_name}} == SUCCESS", True),
        ("${f:${v:absent}} is set", False),
        ("${v:repo} == home:foo", True),
        ("${v:limit} > ${n}", True),
        ("${wfid} == 20260101-abc", True),
        ("${expid} == 0_1", True),
        ("${wf_name} == handle_sr", True),
        ("${subid} is set", False),  # unknown special
        ("$f:status == SUCCESS", True),  # the raw form is a typed operand too
        ("$f:numbers == [1, 2, 3]", True),
        ("$v:limit == 5", True),
        ("$f:absent is set", False),
        ("build-${n} == build-3", True),  # a word with other text is text
        ("build-${n} == 'build-3'", True),
        ("v${n}.0 == v3.0", True),
        ("'${status}' == SUCCESS", True),  # a quoted reference is text
        ("'${n}' == 3", True),  # text "3", read as a number
        ('\'${items}\' == \'["a","b","3"]\'', True),
        ("'${absent}' == ''", True),  # missing is "" in text
        ("'${absent}' is set", True),
        ("'${ok}' == true", True),
        ("'[${status}]' == '[SUCCESS]'", True),
        ("'${f:${v:key}}!' == 'SUCCESS!'", True),
        ("${f: status } == SUCCESS", True),
        ("'it\\'s' == \"it's\"", True),  # escapes in quoted strings
        ("'a\\\\b' == \"a\\\\b\"", True),
        ("'\\n' =~ '\\n'", True),
        ("'a b c' == 'a b c'", True),
        ("'a == b' == 'a == b'", True),
        ("'(' == '('", True),
    ],
)
def test_references(text: str, expected: bool) -> None:
    check(text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a field's content can never change the condition's syntax
        ("${syntax} == 'x == y'", True),
        ("${syntax} == x", False),
        ("${syntax}", True),
        ("${syntax} is set", True),
        ("${injection} == ') or (1'", True),
        ("${injection} == nothing", False),
        ("${injection} == x and false", False),
        ("${quote} == 'it\\'s \"quoted\"'", True),
        ("${ref_text} == '${status}'", False),  # the text is not re-substituted
        ("${ref_text} == SUCCESS", False),
        ("${ref_text} =~ '^\\$\\{'", True),
        ("${word_and} == and_not_keyword", False),
        ("${word_and} == 'and'", True),
        ("${word_and}", True),
        ("'x' in ${syntax}", True),
    ],
)
def test_typed_operands_cannot_inject_syntax(text: str, expected: bool) -> None:
    check(text, expected)


def test_condition_is_parsed_once_and_reused(scope: DictScope) -> None:
    condition = parse_condition("${f:status} == ${v:expected}")
    assert condition.evaluate(DictScope({"status": "A"}, {"expected": "A"})) is True
    assert condition.evaluate(DictScope({"status": "A"}, {"expected": "B"})) is False
    assert condition.evaluate(DictScope({}, {})) is True  # missing == missing
    assert condition.evaluate(DictScope({"status": "x"}, {})) is False


def test_evaluate_returns_a_bool(scope: DictScope) -> None:
    assert parse_condition("${items}").evaluate(scope) is True
    assert parse_condition("${n}").evaluate(scope) is True
    assert parse_condition("${ok} and ${items}").evaluate(scope) is True


class CountingScope(DictScope):
    def __init__(self) -> None:
        super().__init__({"a": 1})
        self.lookups = 0

    def field(self, path: str) -> Any:
        self.lookups += 1
        return super().field(path)


@pytest.mark.parametrize(
    ("text", "lookups"),
    [("false and ${a}", 0), ("true or ${a}", 0), ("${a} or ${a}", 1), ("${a} and ${a}", 2)],
)
def test_and_or_short_circuit(text: str, lookups: int) -> None:
    scope = CountingScope()
    parse_condition(text).evaluate(scope)
    assert scope.lookups == lookups


@pytest.mark.parametrize(
    "fields",
    [
        {"x": None},
        {"x": [1, "a", None]},
        {"x": {"k": [1]}},
        {"x": object()},
        {"x": float("nan")},
        {"x": "(("},
        {"x": 10**50},
        {},
    ],
)
def test_evaluation_never_raises_on_data(fields: dict[str, Any]) -> None:
    scope = DictScope(fields)
    for text in [
        "${x} == 1",
        "${x} != 'a'",
        "${x} < 1",
        "${x} > [1]",
        "${x} <= ${x}",
        "${x} >= abc",
        "${x} =~ ${x}",
        "abc =~ ${x}",
        "1 in ${x}",
        "${x} in ${x}",
        "${x} is empty",
        "${x}",
        "not ${x}",
    ]:
        assert isinstance(parse_condition(text).evaluate(scope), bool), text


# -- constants from YAML --------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "source", "expected"),
    [
        (True, "true", True),
        (False, "false", False),
        (None, "null", False),
        (0, "0", False),
        (1, "1", True),
        (2.5, "2.5", True),
        (0.0, "0.0", False),
    ],
)
def test_constant_conditions(value: Any, source: str, expected: bool) -> None:
    condition = parse_condition(value)
    assert condition.source == source
    assert condition.evaluate(DictScope()) is expected
    # the same as the text form
    assert condition == parse_condition(source)
    assert parse_condition(source).evaluate(DictScope()) is expected


def test_not_a_condition() -> None:
    with pytest.raises(ConditionError) as info:
        parse_condition(["a"])  # type: ignore[arg-type]
    assert "list" in info.value.message


def test_parse_condition_accepts_a_condition() -> None:
    condition = parse_condition("a == b")
    assert parse_condition(condition) is condition  # type: ignore[arg-type]


# -- Condition objects -----------------------------------------------------------------


def test_conditions_compare_by_source() -> None:
    first = parse_condition("${a} == 1")
    again = parse_condition("${a} == 1")
    other = parse_condition("${a} == 2")
    assert first == again
    assert hash(first) == hash(again)
    assert first != other
    assert {first, again, other} == {first, other}
    assert first.source == "${a} == 1"
    assert str(first) == "${a} == 1"
    assert "${a} == 1" in repr(first)


def test_condition_is_immutable() -> None:
    condition = parse_condition("${a}")
    with pytest.raises(AttributeError):
        condition.source = "other"  # type: ignore[misc]
    assert isinstance(condition, Condition)


def test_no_python_eval_anywhere() -> None:
    source = Path(engine.core.conditions.__file__).read_text()
    for forbidden in ("eval(", "exec(", "literal_eval", "compile(source"):
        assert forbidden not in source


# -- parse errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("", 0, "empty condition"),
        ("   ", 0, "empty condition"),
        ("a b", 2, "expected an operator"),
        ("${a} ${b}", 5, "expected an operator"),
        ("${a} == 1 2", 10, "expected an operator"),
        ("'a' 'b'", 4, "expected an operator"),
        ("(a == b", 0, "unclosed '('"),
        ("x and ((a == b)", 6, "unclosed '('"),
        ("(a b)", 3, "expected an operator, 'and', 'or' or ')'"),
        ("a == b)", 6, "unmatched ')'"),
        (")", 0, "expected an operand, found ')'"),
        ("()", 1, "expected an operand after '(', found ')'"),
        ("[1, 2", 0, "unclosed '['"),
        ("x in [1, [2]", 5, "unclosed '['"),
        ("x in [1 2]", 8, "expected ',' or ']'"),
        ("x in [1,]", 8, "expected an operand after ','"),
        ("x in [,1]", 6, "expected an operand after '['"),
        ("a ] b", 2, "unmatched ']'"),
        ("a, b", 1, "unexpected ','"),
        ("'abc", 0, "unclosed quote '"),
        ('x == "abc', 5, 'unclosed quote "'),
        ("x == 'it\\'s", 5, "unclosed quote"),
        ("${a == 1", 0, "unclosed '${'"),
        ("x == ${f:${v:k}", 5, "unclosed '${'"),
        ("x == pre${a", 8, "unclosed '${'"),
        ("x == 'a ${b'", 8, "unclosed '${'"),
        ("${}", 0, "empty reference"),
        ("${f:} == 1", 0, "empty reference"),
        ("a ==", 4, "expected an operand after '=='"),
        ("${a} == ", 8, "expected an operand after '=='"),
        ("a !=", 4, "expected an operand after '!='"),
        ("a <", 3, "expected an operand after '<'"),
        ("a =~", 4, "expected an operand after '=~'"),
        ("a in", 4, "expected an operand after 'in'"),
        ("a not in", 8, "expected an operand after 'in'"),
        ("== a", 0, "expected an operand, found '=='"),
        ("a == == b", 5, "expected an operand after '==', found '=='"),
        ("a and", 5, "expected an operand after 'and'"),
        ("a or", 4, "expected an operand after 'or'"),
        ("and a", 0, "expected an operand, found 'and'"),
        ("a or and b", 5, "expected an operand after 'or', found 'and'"),
        ("not", 3, "expected an operand after 'not'"),
        ("not in x", 4, "expected an operand after 'not', found 'in'"),
        ("a not b", 6, "expected 'in' after 'not'"),
        ("a == b == c", 7, "expected an operator, 'and' or 'or'"),
        ("a < b < c", 6, "expected an operator, 'and' or 'or'"),
        ("${a} is foo", 8, "expected 'set', 'empty', 'not set' or 'not empty' after 'is'"),
        ("${a} is", 7, "after 'is'"),
        ("${a} is not", 11, "after 'is'"),
        ("${a} is 'set'", 8, "after 'is'"),
        ("${a} is set set", 12, "expected an operator"),
        ("${a} = 3", 5, "unknown operator '='; did you mean '=='?"),
        ("a && b", 2, "unknown operator '&&'"),
        ("a || b", 2, "unknown operator '||'"),
        ("x =~ '('", 5, "invalid regular expression '('"),
        ("x =~ 'a[b'", 5, "invalid regular expression"),
        ("x =~ *", 5, "invalid regular expression"),
    ],
)
def test_parse_errors(text: str, position: int, message: str) -> None:
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    error = info.value
    assert error.text == text
    assert message in error.message, error.message
    assert error.position == position, str(error)
    assert str(error) == f'{error.message} at column {position + 1} in "{text}"'


def test_condition_error_details() -> None:
    with pytest.raises(ConditionError) as info:
        parse_condition("${a} == ")
    error = info.value
    assert isinstance(error, ValueError)
    assert error.column == 9
    assert str(error) == "expected an operand after '==' at column 9 in \"${a} == \""
    clone = pickle.loads(pickle.dumps(error))
    assert (clone.text, clone.position, clone.message) == (error.text, 8, error.message)


@pytest.mark.parametrize(
    "text",
    [
        "${status} =~ ${pattern}",  # a pattern from data is checked at run time only
        "${a} =~ 'pre${b}'",
        "x =~ '\\d+'",
        "x =~ ^a.*$",
    ],
)
def test_dynamic_or_valid_patterns_parse(text: str) -> None:
    assert parse_condition(text).source == text


def test_parse_error_for_literal_missing_field_is_not_raised() -> None:
    # a reference to a field that does not exist parses (it is data)
    assert parse_condition("${nope.nope} == 1").evaluate(DictScope()) is False


def test_missing_sentinel_never_leaks_as_true() -> None:
    scope = DictScope({"x": MISSING})
    assert parse_condition("${x}").evaluate(scope) is False
    assert parse_condition("${x} is set").evaluate(scope) is False
