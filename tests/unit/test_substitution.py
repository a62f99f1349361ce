"""engine.core.substitution: ``${...}`` references (section 5)."""

from __future__ import annotations

import copy
import pickle
from collections import ChainMap
from typing import Any

import pytest

from engine.core.substitution import (
    MISSING,
    SPECIAL_NAMES,
    DictScope,
    Scope,
    find_close,
    has_substitution,
    interpolate,
    lookup_path,
    resolve,
    split_ref,
    substitute,
    to_text,
)


def make_scope() -> DictScope:
    return DictScope(
        fields={
            "status": "SUCCESS",
            "project": "home:foo",
            "n": 3,
            "ratio": 0.5,
            "ok": True,
            "bad": False,
            "nothing": None,
            "empty": "",
            "items": ["a", "b"],
            "nested": {"x": [1, {"y": "deep"}]},
            "ev": {"actions": [{"type": "submit", "target": "prj"}]},
            "key_name": "status",
            "wfid": "field-wfid",
            "a.b": "dotted-key",
            "a": {"b": "walked"},
            "evil": "${status}",
            "raw_ref": "$f:items",
        },
        variables={"repo": "openSUSE:Factory", "key": "project", "which": "v", "count": 0},
        specials={"wfid": "20260101-abc", "expid": "0_1_2", "wf_name": "handle_sr"},
    )


# -- MISSING and the scope ----------------------------------------------------


def test_missing_is_a_falsy_singleton() -> None:
    assert not MISSING
    assert repr(MISSING) == "MISSING"
    assert type(MISSING)() is MISSING
    assert copy.copy(MISSING) is MISSING
    assert copy.deepcopy({"x": MISSING})["x"] is MISSING
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert MISSING is not None and MISSING != ""


def test_special_names() -> None:
    assert (
        frozenset({"wfid", "expid", "subid", "wf_name", "wf_revision", "engine_id"})
        == SPECIAL_NAMES
    )


def test_dict_scope_is_a_scope() -> None:
    scope = DictScope()
    assert isinstance(scope, Scope)
    assert scope.field("x") is MISSING
    assert scope.variable("x") is MISSING
    assert scope.special("wfid") is MISSING


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("status", "SUCCESS"),
        ("nested.x.0", 1),
        ("nested.x.1.y", "deep"),
        ("nested.x.-1.y", "deep"),
        ("ev.actions.0.type", "submit"),
        ("a.b", "dotted-key"),  # a key holding the whole path wins
        ("nothing", None),
        ("empty", ""),
        ("absent", MISSING),
        ("nested.absent", MISSING),
        ("nested.x.5", MISSING),
        ("nested.x.y", MISSING),  # not an index
        ("status.length", MISSING),  # into a string
        ("n.0", MISSING),
        ("", MISSING),
    ],
)
def test_lookup_path(path: str, expected: Any) -> None:
    result = lookup_path(make_scope().fields, path)
    if expected is MISSING:
        assert result is MISSING
    else:
        assert result == expected


def test_variables_may_be_a_chain_of_scopes() -> None:
    scope = DictScope(variables=ChainMap({"inner": 1}, {"outer": 2, "inner": 0}))
    assert scope.variable("inner") == 1
    assert scope.variable("outer") == 2


# -- references -------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("f:status", ("field", "status")),
        ("status", ("field", "status")),
        ("v:repo", ("variable", "repo")),
        ("wfid", ("special", "wfid")),
        ("engine_id", ("special", "engine_id")),
        ("f:wfid", ("field", "wfid")),
        ("wfid.x", ("field", "wfid.x")),
        (" f: status ", ("field", "status")),
        ("home:foo", ("field", "home:foo")),
    ],
)
def test_split_ref(ref: str, expected: tuple[str, str]) -> None:
    assert split_ref(ref) == expected


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("f:status", "SUCCESS"),
        ("status", "SUCCESS"),
        ("n", 3),
        ("ok", True),
        ("items", ["a", "b"]),
        ("nested", {"x": [1, {"y": "deep"}]}),
        ("ev.actions", [{"type": "submit", "target": "prj"}]),
        ("ev.actions.0.target", "prj"),
        ("v:repo", "openSUSE:Factory"),
        ("v:count", 0),
        ("wfid", "20260101-abc"),
        ("f:wfid", "field-wfid"),
        ("expid", "0_1_2"),
        ("f:${v:key}", "home:foo"),
        ("${key_name}", "SUCCESS"),
        ("${v:which}:repo", "openSUSE:Factory"),
        (" status ", "SUCCESS"),
    ],
)
def test_resolve(ref: str, expected: Any) -> None:
    assert resolve(ref, make_scope()) == expected


@pytest.mark.parametrize(
    "ref", ["absent", "f:absent", "v:absent", "subid", "wf_revision", "", "f:", "v:", "f:${v:no}"]
)
def test_resolve_missing(ref: str) -> None:
    assert resolve(ref, make_scope()) is MISSING


# -- text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("abc", "abc"),
        ("", ""),
        (3, "3"),
        (0.5, "0.5"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        (MISSING, ""),
        ([1, "a"], '[1,"a"]'),
        ({"k": [True, None]}, '{"k":[true,null]}'),
        ({"é": "ü"}, '{"é":"ü"}'),
        ((1, 2), "[1,2]"),
    ],
)
def test_to_text(value: Any, text: str) -> None:
    assert to_text(value) == text


@pytest.mark.parametrize(
    ("text", "start", "close"),
    [
        ("${a}", 2, 3),
        ("${f:${v:k}}x", 2, 10),
        ("${a{b}c}", 2, 7),
        ("${a", 2, -1),
        ("${f:${v:k}", 2, -1),
        ("${}", 2, 2),
    ],
)
def test_find_close(text: str, start: int, close: int) -> None:
    assert find_close(text, start) == close


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        ("cost $5", "cost $5"),
        ("${status}", "SUCCESS"),  # one ${...} alone is still text
        ("${n}", "3"),
        ("${ok}", "true"),
        ("${bad}", "false"),
        ("${nothing}", ""),
        ("${absent}", ""),
        ("${items}", '["a","b"]'),
        ("${nested}", '{"x":[1,{"y":"deep"}]}'),
        ("build ${project} ok", "build home:foo ok"),
        ("${f:status}/${v:repo}", "SUCCESS/openSUSE:Factory"),
        ("${wfid}:${expid}", "20260101-abc:0_1_2"),
        ("${f:wfid}", "field-wfid"),
        ("${ev.actions.0.type}", "submit"),
        ("${f:${v:key}}", "home:foo"),
        ("[${f:${key_name}}]", "[SUCCESS]"),
        ("${evil}", "${status}"),  # substituted text is not substituted again
        ("${raw_ref}", "$f:items"),
        ("${unclosed", "${unclosed"),
        ("a ${f:${v:key} b", "a ${f:project b"),  # outer unclosed, inner done
        ("${status} and ${unclosed", "SUCCESS and ${unclosed"),
        ("${status}}", "SUCCESS}"),
        ("$${status}", "$SUCCESS"),
        ("${}", ""),
        ("${ status }", "SUCCESS"),
        ("100% ${ratio}", "100% 0.5"),
    ],
)
def test_substitute_text(value: str, expected: str) -> None:
    scope = make_scope()
    assert substitute(value, scope) == expected
    assert interpolate(value, scope) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$f:items", ["a", "b"]),
        ("$f:nested", {"x": [1, {"y": "deep"}]}),
        ("$f:n", 3),
        ("$f:ok", True),
        ("$f:nested.x.1", {"y": "deep"}),
        ("$v:count", 0),
        ("$v:repo", "openSUSE:Factory"),
        ("$f:absent", None),
        ("$v:absent", None),
        ("$f:${v:key}", "home:foo"),
    ],
)
def test_substitute_raw_reference(value: str, expected: Any) -> None:
    assert substitute(value, make_scope()) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" $f:items", " $f:items"),  # not exactly a raw reference
        ("$f:items and more", "$f:items and more"),
        ("$x:items", "$x:items"),
        ("$f:", "$f:"),
    ],
)
def test_not_a_raw_reference(value: str, expected: str) -> None:
    assert substitute(value, make_scope()) == expected


def test_interpolate_never_passes_raw_values() -> None:
    assert interpolate("$f:items", make_scope()) == "$f:items"


def test_raw_reference_is_a_copy() -> None:
    scope = make_scope()
    result = substitute("$f:nested", scope)
    result["x"].append("changed")
    assert scope.fields["nested"] == {"x": [1, {"y": "deep"}]}


@pytest.mark.parametrize("value", [None, 3, 2.5, True, False, b"${x}"])
def test_non_strings_pass_through(value: Any) -> None:
    assert substitute(value, make_scope()) is value


def test_string_without_dollar_is_returned_as_is() -> None:
    text = "".join(["no", " substitution"])
    assert substitute(text, make_scope()) is text


def test_substitute_walks_containers() -> None:
    value = {
        "msg": "build ${project} ok",
        "list": ["${n}", "$f:items", 7, {"deep": "${v:repo}"}],
        "${status}": "key substituted",
        "$f:items": "a key stays text",
        "tuple": ("${ok}",),
        "n": 3,
    }
    assert substitute(value, make_scope()) == {
        "msg": "build home:foo ok",
        "list": ["3", ["a", "b"], 7, {"deep": "openSUSE:Factory"}],
        "SUCCESS": "key substituted",
        "$f:items": "a key stays text",
        "tuple": ("true",),
        "n": 3,
    }


def test_substitute_does_not_mutate_its_input() -> None:
    value = {"a": ["${n}", {"b": "${status}"}], "${n}": "x"}
    snapshot = copy.deepcopy(value)
    result = substitute(value, make_scope())
    assert value == snapshot
    assert result is not value
    assert result["a"] is not value["a"]
    assert result["a"][1] is not value["a"][1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", False),
        ("$5 and $x", False),
        ("${x}", True),
        ("a ${unclosed", True),
        ("$f:x", True),
        ("$v:x.y", True),
        ("$f:x y", False),
        ({"k": "v"}, False),
        ({"k": ["a", {"b": "${c}"}]}, True),
        ({"${k}": 1}, True),
        (["a", "$v:x"], True),
        (("a", "b"), False),
        (3, False),
        (None, False),
    ],
)
def test_has_substitution(value: Any, expected: bool) -> None:
    assert has_substitution(value) is expected


class RecordingScope:
    """A Scope that is not a DictScope: resolve only uses the protocol."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def field(self, path: str) -> Any:
        self.calls.append(("field", path))
        return f"F({path})"

    def variable(self, path: str) -> Any:
        self.calls.append(("variable", path))
        return f"V({path})"

    def special(self, name: str) -> Any:
        self.calls.append(("special", name))
        return MISSING


def test_any_scope_implementation_works() -> None:
    scope = RecordingScope()
    assert substitute("${a.b} ${v:c} ${subid}", scope) == "F(a.b) V(c) "
    assert scope.calls == [("field", "a.b"), ("variable", "c"), ("special", "subid")]
