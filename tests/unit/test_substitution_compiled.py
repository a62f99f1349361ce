"""The compiled substitution used for definition values gives exactly what
``substitute`` gives, and never hands out the definition's own containers."""

from __future__ import annotations

from typing import Any

import pytest

from engine.core.substitution import DictScope, substitute, substitute_node_value

SCOPE = DictScope(
    fields={
        "project": "home:x",
        "n": 3,
        "lst": [1, 2],
        "ev": {"id": 7, "tags": ["a"]},
        "key": "project",
        "flag": True,
        "none": None,
    },
    variables={"repo": "r1", "k": "n"},
    specials={"wfid": "W1", "expid": "0_1"},
)

VALUES: list[Any] = [
    "plain",
    "",
    "${project}",
    "${f:project}-${v:repo}",
    "x ${n} y",
    "${missing}",
    "${f:${v:k}}",
    "${ev.id}/${ev.tags.0}",
    "$f:lst",
    "$v:repo",
    "$f:nope",
    "${flag} ${none} ${lst}",
    "${wfid}:${expid}",
    "unclosed ${project",
    "$ not a ref",
    {"target": "${project}", "n": 1},
    {"${v:repo}": "${n}", "plain": "x"},
    {"a": {"b": ["${project}", 2, {"c": "$f:lst"}]}},
    ["${project}", "x", 3, None, True],
    [],
    {},
    42,
    None,
    True,
    3.5,
]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v)[:40] for v in VALUES])
def test_compiled_equals_substitute(value: Any) -> None:
    assert substitute_node_value(value, SCOPE) == substitute(value, SCOPE)
    # twice: the second call goes through the cache
    assert substitute_node_value(value, SCOPE) == substitute(value, SCOPE)


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], {"a": "${project}"}, ["${n}"]])
def test_compiled_result_is_a_new_container(value: Any) -> None:
    out = substitute_node_value(value, SCOPE)
    assert out is not value
    if isinstance(out, dict):
        out["extra"] = 1
    else:
        out.append("extra")
    assert "extra" not in (value if isinstance(value, list) else value.keys())
