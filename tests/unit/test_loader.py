"""The definition loader (engine.core.loader): process-language.md sections 1, 2 and 4.

Table-driven: each table row is a YAML snippet and what it must load to, or
the exact ``line:col`` and message of the problem it must report.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from engine.core.conditions import Condition, parse_condition
from engine.core.definition import BUILTIN_EXPRESSIONS, Definition, Handler, Node, Retry
from engine.core.loader import (
    LoadError,
    Problem,
    Yaml12Loader,
    check_files,
    load_definition,
    load_file,
)

# -- helpers ------------------------------------------------------------------

#: every step snippet is loaded under this head: a subprocess 'sub' exists
HEAD = "name: t\nsubprocesses:\n  sub: [x]\n  prechecks: [y]\nsteps:\n"
HEAD_LINES = HEAD.count("\n")


def doc(steps: str) -> str:
    return HEAD + textwrap.indent(textwrap.dedent(steps).strip("\n") + "\n", "  ")


def load(text: str) -> Definition:
    return load_definition(textwrap.dedent(text), "t.yaml")


def first(step: str) -> Node:
    """The node of a single step snippet."""
    return load_definition(doc(step), "t.yaml").nodes["0_0"]


def problems(text: str) -> list[Problem]:
    with pytest.raises(LoadError) as info:
        load_definition(text, "t.yaml")
    return info.value.problems


def step_problems(step: str) -> list[tuple[int, int, str]]:
    """(line, col, message) relative to the snippet as written (1-based)."""
    return [(p.line - HEAD_LINES, p.col - 2, p.message) for p in problems(doc(step))]


def cond(text) -> Condition:
    return parse_condition(text)


def names(node: Node) -> list[str]:
    return [c.name for c in node.children]


# -- every expression, every accepted argument shape ------------------------------

CONC_DEFAULTS = {
    "count": None,
    "remaining": "cancel",
    "merge": "first",
    "merge_type": "override",
    "over_if": None,
    "over_unless": None,
    "wait_for": None,
}
CURSOR_DEFAULTS = {"break_if": None, "break_unless": None, "rewind_if": None, "rewind_unless": None}
LISTEN_DEFAULTS = {"upon": "apply", "where": None, "merge": True, "wfid": False}

SHAPES = [
    # (id, step snippet, kind, opts, child names)
    ("sequence-list", "- sequence: [a, b]", "sequence", {}, ["a", "b"]),
    ("sequence-steps", "- sequence: {steps: [a]}", "sequence", {}, ["a"]),
    ("sequence-bare", "- sequence", "sequence", {}, []),
    ("sequence-null", "- sequence:", "sequence", {}, []),
    (
        "sequence-block",
        "- sequence:\n    steps:\n      - a\n      - echo: hi",
        "sequence",
        {},
        ["a", "echo"],
    ),
    ("concurrence-list", "- concurrence: [a, b]", "concurrence", CONC_DEFAULTS, ["a", "b"]),
    (
        "concurrence-all",
        """
        - concurrence:
            branches: [a, b]
            count: 2
            remaining: forget
            merge: last
            merge_type: mix
            over_if: "${f:ok} == true"
            over_unless: "${f:bad}"
            wait_for: [t1, t2]
        """,
        "concurrence",
        {
            "count": 2,
            "remaining": "forget",
            "merge": "last",
            "merge_type": "mix",
            "over_if": cond("${f:ok} == true"),
            "over_unless": cond("${f:bad}"),
            "wait_for": ["t1", "t2"],
        },
        ["a", "b"],
    ),
    (
        "concurrence-negative-count",
        "- concurrence: {count: -1, branches: [a, b, c]}",
        "concurrence",
        {**CONC_DEFAULTS, "count": -1},
        ["a", "b", "c"],
    ),
    (
        "concurrence-wait_for-string",
        "- concurrence: {wait_for: t1, branches: [{a: {}, tag: t1}]}",
        "concurrence",
        {**CONC_DEFAULTS, "wait_for": ["t1"]},
        ["a"],
    ),
    ("concurrence-empty", "- concurrence: []", "concurrence", CONC_DEFAULTS, []),
    ("participant-name", "- participant: beta", "participant", {"ref": "beta", "params": {}}, []),
    (
        "participant-ref",
        "- participant: {ref: beta, x: 1, forget: true}",
        "participant",
        {"ref": "beta", "params": {"x": 1, "forget": True}},
        [],
    ),
    (
        "participant-short",
        '- build: {project: "${project}"}',
        "participant",
        {"ref": "build", "params": {"project": "${project}"}},
        [],
    ),
    ("participant-string", "- build", "participant", {"ref": "build", "params": {}}, []),
    ("participant-null", "- build:", "participant", {"ref": "build", "params": {}}, []),
    (
        "participant-dynamic",
        '- participant: "${v:who}"',
        "participant",
        {"ref": "${v:who}", "params": {}},
        [],
    ),
    (
        "participant-nested-params",
        "- notify:\n    msg: [a, b]\n    to: {irc: '#ci'}",
        "participant",
        {"ref": "notify", "params": {"msg": ["a", "b"], "to": {"irc": "#ci"}}},
        [],
    ),
    ("subprocess-name", "- subprocess: sub", "subprocess", {"ref": "sub", "vars": {}}, []),
    (
        "subprocess-ref",
        "- subprocess: {ref: sub, a: 1}",
        "subprocess",
        {"ref": "sub", "vars": {"a": 1}},
        [],
    ),
    ("subprocess-short", "- sub", "subprocess", {"ref": "sub", "vars": {}}, []),
    (
        "subprocess-short-vars",
        "- sub: {a: 1, b: [x]}",
        "subprocess",
        {"ref": "sub", "vars": {"a": 1, "b": ["x"]}},
        [],
    ),
    ("subprocess-short-null", "- sub:", "subprocess", {"ref": "sub", "vars": {}}, []),
    (
        "subprocess-dynamic",
        '- subprocess: "${v:name}"',
        "subprocess",
        {"ref": "${v:name}", "vars": {}},
        [],
    ),
    (
        "subprocess-dynamic-ref",
        '- subprocess: {ref: "do_${f:kind}", k: v}',
        "subprocess",
        {"ref": "do_${f:kind}", "vars": {"k": "v"}},
        [],
    ),
    (
        "if-then",
        '- if: {test: "${a} == 1", then: [a]}',
        "if",
        {"test": cond("${a} == 1")},
        ["sequence"],
    ),
    (
        "if-then-else",
        "- if:\n    test: ${a} == 1\n    then: [a]\n    else: [b, c]",
        "if",
        {"test": cond("${a} == 1")},
        ["sequence", "sequence"],
    ),
    ("if-bool-test", "- if: {test: true, then: [a]}", "if", {"test": cond(True)}, ["sequence"]),
    (
        "iterator-list",
        "- iterator: {on: [1, b], steps: [a]}",
        "iterator",
        {"on": [1, "b"], "to": "i"},
        ["a"],
    ),
    (
        "iterator-comma",
        "- iterator: {on: 'a, b, c', to: x, steps: [a]}",
        "iterator",
        {"on": "a, b, c", "to": "x"},
        ["a"],
    ),
    (
        "iterator-field",
        "- iterator: {on: $f:items, steps: [a, b]}",
        "iterator",
        {"on": "$f:items", "to": "i"},
        ["a", "b"],
    ),
    (
        "iterator-var",
        "- iterator:\n    on: $v:list\n    to: item\n    steps:\n      - a",
        "iterator",
        {"on": "$v:list", "to": "item"},
        ["a"],
    ),
    ("iterator-no-steps", "- iterator: {on: [1]}", "iterator", {"on": [1], "to": "i"}, []),
    (
        "iterator-to-variable-prefix",
        "- iterator: {on: [1], to: 'v:action'}",
        "iterator",
        {"on": [1], "to": "action"},
        [],
    ),
    (
        "iterator-to-field",
        "- iterator: {on: [1], to: 'f:pair'}",
        "iterator",
        {"on": [1], "to": "i", "to_field": "pair"},
        [],
    ),
    (
        "concurrent_iterator-defaults",
        "- concurrent_iterator: {on: [1, 2], steps: [a]}",
        "concurrent_iterator",
        {"on": [1, 2], "to": "i", "count": None, "merge": "first", "merge_type": "override"},
        ["a"],
    ),
    (
        "concurrent_iterator-all",
        "- concurrent_iterator:\n    on: a,b\n    to: n\n    count: 1\n    merge: lowest\n"
        "    merge_type: stack\n    steps: [a]",
        "concurrent_iterator",
        {"on": "a,b", "to": "n", "count": 1, "merge": "lowest", "merge_type": "stack"},
        ["a"],
    ),
    ("cursor-list", "- cursor: [a, b]", "cursor", CURSOR_DEFAULTS, ["a", "b"]),
    (
        "cursor-options",
        """
        - cursor:
            steps: [a]
            break_if: "${f:done}"
            break_unless: "${f:go}"
            rewind_if: "${f:again} == 1"
            rewind_unless: "${f:x} is set"
        """,
        "cursor",
        {
            "break_if": cond("${f:done}"),
            "break_unless": cond("${f:go}"),
            "rewind_if": cond("${f:again} == 1"),
            "rewind_unless": cond("${f:x} is set"),
        },
        ["a"],
    ),
    ("loop-list", "- loop: [a, break]", "loop", CURSOR_DEFAULTS, ["a", "break"]),
    (
        "loop-steps",
        '- loop: {steps: [a], break_if: "${f:n} > 3"}',
        "loop",
        {**CURSOR_DEFAULTS, "break_if": cond("${f:n} > 3")},
        ["a"],
    ),
    (
        "set",
        '- set: {"f:status": FAILED, "v:count": 1, plain: x, a.b: [1], "v:m": {k: v}}',
        "set",
        {
            "values": {
                "f:status": "FAILED",
                "v:count": 1,
                "plain": "x",
                "a.b": [1],
                "v:m": {"k": "v"},
            }
        },
        [],
    ),
    ("set-empty", "- set: {}", "set", {"values": {}}, []),
    ("set-raw", "- set: {copy: $f:other}", "set", {"values": {"copy": "$f:other"}}, []),
    ("inc-name", "- inc: 'v:n'", "inc", {"values": {"v:n": 1}}, []),
    (
        "inc-mapping",
        "- inc: {'v:n': 2, 'f:list': '${x}'}",
        "inc",
        {"values": {"v:n": 2, "f:list": "${x}"}},
        [],
    ),
    ("push-mapping", "- push: {'v:l': a}", "push", {"values": {"v:l": "a"}}, []),
    ("apply-bare", "- apply", "apply", {}, []),
    ("unset-name", "- unset: x", "unset", {"names": ["x"]}, []),
    ("unset-list", "- unset: ['f:a', 'v:b', c]", "unset", {"names": ["f:a", "v:b", "c"]}, []),
    ("wait-int", "- wait: 10", "wait", {"for": 10.0, "until": None}, []),
    ("wait-float", "- wait: 0.5", "wait", {"for": 0.5, "until": None}, []),
    ("wait-sum", "- wait: 1h30m", "wait", {"for": 5400.0, "until": None}, []),
    ("wait-ms", "- wait: 500ms", "wait", {"for": 0.5, "until": None}, []),
    ("wait-for", "- wait: {for: 5m}", "wait", {"for": 300.0, "until": None}, []),
    (
        "wait-until",
        '- wait: {until: "2026-11-21T10:00:00Z"}',
        "wait",
        {"for": None, "until": "2026-11-21T10:00:00Z"},
        [],
    ),
    (
        "wait-until-plain-date",
        "- wait: {until: 2026-11-21}",
        "wait",
        {"for": None, "until": "2026-11-21"},
        [],
    ),
    ("wait-dynamic", '- wait: "${v:delay}"', "wait", {"for": "${v:delay}", "until": None}, []),
    (
        "wait-until-dynamic",
        '- wait: {until: "${f:at}"}',
        "wait",
        {"for": None, "until": "${f:at}"},
        [],
    ),
    ("listen-to", "- listen: {to: beta}", "listen", {"to": "beta", **LISTEN_DEFAULTS}, []),
    (
        "listen-errors",
        "- listen: {to: errors, class: ProcessError}",
        "listen",
        {**LISTEN_DEFAULTS, "to": "errors", "errors": True, "cls": "ProcessError"},
        [],
    ),
    (
        "listen-all",
        '- listen: {to: "build_.*", upon: reply, where: "${f:x} == 1", merge: false, wfid: TRUE}',
        "listen",
        {
            "to": "build_.*",
            "upon": "reply",
            "where": cond("${f:x} == 1"),
            "merge": False,
            "wfid": True,
        },
        [],
    ),
    (
        "listen-apply",
        "- listen: {to: a, upon: apply}",
        "listen",
        {"to": "a", **LISTEN_DEFAULTS},
        [],
    ),
    ("reserve", "- reserve: {mutex: m, steps: [a]}", "reserve", {"mutex": "m"}, ["a"]),
    ("reserve-no-steps", "- reserve: {mutex: m}", "reserve", {"mutex": "m"}, []),
    ("echo", "- echo: hello ${who}", "echo", {"text": "hello ${who}"}, []),
    ("echo-number-as-written", "- echo: 1.50", "echo", {"text": "1.50"}, []),
    ("echo-bool-as-written", "- echo: true", "echo", {"text": "true"}, []),
    ("echo-quoted", "- echo: 'on'", "echo", {"text": "on"}, []),
    ("noop", "- noop", "noop", {}, []),
    ("noop-null", "- noop:", "noop", {}, []),
    ("error-default", "- error", "error", {"message": "error"}, []),
    ("error-message", "- error: boom ${x}", "error", {"message": "boom ${x}"}, []),
    ("cancel_process", "- cancel_process", "cancel_process", {}, []),
    ("terminate", "- terminate", "cancel_process", {}, []),
    ("terminate-null", "- terminate:", "cancel_process", {}, []),
    ("cancel", "- cancel: t1", "cancel", {"tag": "t1"}, []),
    ("break", "- break", "break", {}, []),
    ("rewind", "- rewind", "rewind", {}, []),
    ("reset", "- reset", "reset", {}, []),
    ("skip", "- skip", "skip", {"count": 1}, []),
    ("skip-count", "- skip: 2", "skip", {"count": 2}, []),
    ("skip-dynamic", '- skip: "${v:n}"', "skip", {"count": "${v:n}"}, []),
    ("back", "- back", "back", {"count": 1}, []),
    ("back-count", "- back: 3", "back", {"count": 3}, []),
    ("jump-tag", "- jump: publish", "jump", {"to": "publish"}, []),
    ("jump-index", "- jump: 2", "jump", {"to": 2}, []),
    ("jump-zero", "- jump: 0", "jump", {"to": 0}, []),
]


@pytest.mark.parametrize(
    ("snippet", "kind", "opts", "children"),
    [pytest.param(*row[1:], id=row[0]) for row in SHAPES],
)
def test_expression_shapes(snippet, kind, opts, children):
    node = first(snippet)
    assert node.kind == kind
    assert node.opts == opts
    assert names(node) == children
    assert node.attrs == {}


def test_every_builtin_has_a_shape_row():
    covered = {row[0].split("-")[0] for row in SHAPES}
    assert BUILTIN_EXPRESSIONS.issubset(covered)


@pytest.mark.parametrize("value", ["cancel", "forget", "wait"])
def test_concurrence_remaining(value):
    assert first(f"- concurrence: {{remaining: {value}, branches: [a]}}").opts["remaining"] == value


@pytest.mark.parametrize("value", ["first", "last", "highest", "lowest"])
def test_concurrence_merge(value):
    assert first(f"- concurrence: {{merge: {value}, branches: [a]}}").opts["merge"] == value


@pytest.mark.parametrize(
    "value", ["override", "mix", "isolate", "stack", "union", "concat", "deep", "ignore"]
)
def test_concurrence_merge_type(value):
    node = first(f"- concurrence: {{merge_type: {value}, branches: [a]}}")
    assert node.opts["merge_type"] == value


def test_subprocess_dynamic_flag():
    assert first('- subprocess: "${v:name}"').dynamic is True
    assert first("- subprocess: sub").dynamic is False
    assert first("- sub").dynamic is False


def test_if_children_are_synthetic_sequences_with_ids():
    d = load_definition(doc("- if: {test: '${a}', then: [a, b], else: [c]}"))
    node = d.nodes["0_0"]
    then, else_ = node.children
    assert (then.id, then.kind, names(then)) == ("0_0_0", "sequence", ["a", "b"])
    assert (else_.id, else_.kind, names(else_)) == ("0_0_1", "sequence", ["c"])
    assert [c.id for c in then.children] == ["0_0_0_0", "0_0_0_1"]
    assert d.nodes["0_0_1_0"].name == "c"


def test_if_attribute_beside_an_expression():
    node = first('- build: {}\n  if: "${f:x} == 1"')
    assert node.kind == "participant"
    assert node.attrs == {"if": cond("${f:x} == 1")}


def test_if_expression_with_attributes_beside_it():
    node = first('- if: {test: "${a}", then: [a]}\n  tag: t\n  unless: "${b}"')
    assert node.kind == "if"
    assert node.attrs == {"tag": "t", "unless": cond("${b}")}


def test_expression_key_after_attributes():
    node = first("- tag: first\n  timeout: 5s\n  build: {x: 1}")
    assert (node.kind, node.opts["ref"], node.attrs) == (
        "participant",
        "build",
        {"tag": "first", "timeout": 5.0},
    )


# -- common attributes ------------------------------------------------------------

ATTRIBUTES = [
    ("if", 'if: "${f:x} == 1"', {"if": cond("${f:x} == 1")}),
    ("if-bool", "if: false", {"if": cond(False)}),
    ("if-number", "if: 0", {"if": cond(0)}),
    ("unless", 'unless: "${f:x} is set"', {"unless": cond("${f:x} is set")}),
    ("if-and-unless", "if: ${a}\n  unless: ${b}", {"if": cond("${a}"), "unless": cond("${b}")}),
    ("tag", "tag: publish", {"tag": "publish"}),
    ("tag-number-as-written", "tag: 1.0", {"tag": "1.0"}),
    ("timeout-s", "timeout: 30s", {"timeout": 30.0}),
    ("timeout-ms", "timeout: 500ms", {"timeout": 0.5}),
    ("timeout-decimal", "timeout: 0.3s", {"timeout": 0.3}),
    ("timeout-sum", "timeout: 1h30m", {"timeout": 5400.0}),
    ("timeout-bare", "timeout: 10", {"timeout": 10.0}),
    ("timeout-bare-float", "timeout: 2.5", {"timeout": 2.5}),
    ("timeout-days-weeks", "timeout: 1w 1d", {"timeout": 691200.0}),
    ("timeout-dynamic", 'timeout: "${v:t}"', {"timeout": "${v:t}"}),
    ("retry-int", "retry: 3", {"retry": Retry(3)}),
    ("retry-zero", "retry: 0", {"retry": Retry(0)}),
    (
        "retry-mapping",
        "retry: {times: 3, delay: 10s, backoff: 2}",
        {"retry": Retry(3, 10.0, 2.0)},
    ),
    ("retry-times-only", "retry: {times: 1}", {"retry": Retry(1, 0.0, 1.0)}),
    (
        "retry-float-backoff",
        "retry: {times: 2, delay: 1, backoff: 1.5}",
        {"retry": Retry(2, 1, 1.5)},
    ),
    ("forget-true", "forget: true", {"forget": True}),
    ("forget-True", "forget: True", {"forget": True}),
    ("forget-TRUE", "forget: TRUE", {"forget": True}),
    ("forget-false", "forget: false", {"forget": False}),
    ("on_error-pass", "on_error: pass", {"on_error": Handler("pass")}),
    ("on_error-redo", "on_error: redo", {"on_error": Handler("redo")}),
    ("on_error-cancel", "on_error: cancel", {"on_error": Handler("cancel")}),
    ("on_error-raise", "on_error: raise", {"on_error": Handler("raise")}),
    ("on_error-rewind", "on_error: rewind", {"on_error": Handler("command", command="rewind")}),
    ("on_error-break", "on_error: break", {"on_error": Handler("command", command="break")}),
    ("on_error-reset", "on_error: reset", {"on_error": Handler("command", command="reset")}),
    ("on_error-skip", "on_error: skip", {"on_error": Handler("command", command="skip")}),
    ("on_error-skip-2", "on_error: skip 2", {"on_error": Handler("command", command="skip 2")}),
    ("on_error-back", "on_error: back", {"on_error": Handler("command", command="back")}),
    ("on_error-back-3", "on_error: back  3", {"on_error": Handler("command", command="back 3")}),
    (
        "on_error-jump",
        "on_error: jump publish",
        {"on_error": Handler("command", command="jump publish")},
    ),
    ("on_error-subprocess", "on_error: sub", {"on_error": Handler("subprocess", ref="sub")}),
    (
        "on_error-participant",
        "on_error: notify_admin",
        {"on_error": Handler("participant", ref="notify_admin")},
    ),
    (
        "on_error-dynamic",
        'on_error: "${v:handler}"',
        {"on_error": Handler("participant", ref="${v:handler}")},
    ),
    (
        "on_error-jump-dynamic",
        'on_error: "jump ${v:target}"',
        {"on_error": Handler("command", command="jump ${v:target}")},
    ),
    (
        "on_error-skip-dynamic",
        'on_error: "skip ${v:n}"',
        {"on_error": Handler("command", command="skip ${v:n}")},
    ),
    ("on_timeout-error", "on_timeout: error", {"on_timeout": Handler("error")}),
    ("on_timeout-cancel", "on_timeout: cancel", {"on_timeout": Handler("cancel")}),
    ("on_timeout-redo", "on_timeout: redo", {"on_timeout": Handler("redo")}),
    ("on_timeout-pass", "on_timeout: pass", {"on_timeout": Handler("pass")}),
    (
        "on_timeout-jump",
        "on_timeout: jump 0",
        {"on_timeout": Handler("command", command="jump 0")},
    ),
    ("on_timeout-subprocess", "on_timeout: sub", {"on_timeout": Handler("subprocess", ref="sub")}),
    (
        "on_timeout-participant",
        "on_timeout: escalate",
        {"on_timeout": Handler("participant", ref="escalate")},
    ),
    ("on_cancel-subprocess", "on_cancel: sub", {"on_cancel": Handler("subprocess", ref="sub")}),
    (
        "on_cancel-participant",
        "on_cancel: cleanup",
        {"on_cancel": Handler("participant", ref="cleanup")},
    ),
]


@pytest.mark.parametrize(("snippet", "attrs"), [pytest.param(*r[1:], id=r[0]) for r in ATTRIBUTES])
def test_common_attributes(snippet, attrs):
    node = first(f"- build: {{}}\n  {snippet}")
    assert node.kind == "participant"
    assert node.attrs == attrs


def test_attributes_on_a_container():
    node = first("- sequence: [a]\n  timeout: 1m\n  on_error: pass\n  tag: t")
    assert node.attrs == {"timeout": 60.0, "on_error": Handler("pass"), "tag": "t"}
    assert node.tag == "t"


def test_no_attribute_gives_no_attr():
    node = first("- build")
    assert node.attrs == {}
    assert "on_timeout" not in first("- build: {}\n  timeout: 5s").attrs


def test_process_level_attributes_are_the_body_attrs():
    d = load(
        """
        name: p
        on_error: notify_admin
        on_timeout: error
        on_cancel: sub
        timeout: 2h
        tag: main
        subprocesses:
          sub: [x]
        steps: [a]
        """
    )
    assert d.body.id == "0"
    assert d.body.attrs == {
        "on_error": Handler("participant", ref="notify_admin"),
        "on_timeout": Handler("error"),
        "on_cancel": Handler("subprocess", ref="sub"),
        "timeout": 7200.0,
        "tag": "main",
    }


# -- the definition: top level, ids, source, digest --------------------------------

FULL = """\
name: handle_sr
revision: "2"
description: Handle a submit request
fields:
  status: SUCCESS
variables: {count: 0}
on_error: notify_admin
subprocesses:
  do_prechecks:
    - check_spec
    - check_has_valid_repo
steps:
  - do_prechecks
  - build: {project: "${project}"}
  - concurrence:
      - a
      - sequence: [b, c]
"""


def test_full_definition():
    d = load_definition(FULL, "handle_sr.yaml")
    assert (d.name, d.revision, d.description) == ("handle_sr", "2", "Handle a submit request")
    assert d.fields == {"status": "SUCCESS"}
    assert d.variables == {"count": 0}
    assert list(d.subprocesses) == ["do_prechecks"]
    assert d.subprocesses["do_prechecks"].id == "do_prechecks/0"
    assert names(d.subprocesses["do_prechecks"]) == ["check_spec", "check_has_valid_repo"]
    assert d.body.kind == "sequence"
    assert names(d.body) == ["do_prechecks", "build", "concurrence"]
    assert d.source == FULL
    assert d.digest == hashlib.sha256(FULL.encode()).hexdigest()
    assert d.filename == "handle_sr.yaml"


def test_node_ids_and_positions():
    d = load_definition(FULL)
    assert sorted(d.nodes) == sorted(
        [
            "0",
            "0_0",
            "0_1",
            "0_2",
            "0_2_0",
            "0_2_1",
            "0_2_1_0",
            "0_2_1_1",
            "do_prechecks/0",
            "do_prechecks/0_0",
            "do_prechecks/0_1",
        ]
    )
    assert all(d.node(i).id == i for i in d.nodes)
    assert d.nodes["0_2_1_1"].name == "c"
    assert (d.nodes["0_1"].line, d.nodes["0_1"].col) == (14, 5)
    assert (d.nodes["0_2_1"].line, d.nodes["0_2_1"].col) == (17, 9)
    assert (d.nodes["do_prechecks/0_1"].line, d.nodes["do_prechecks/0_1"].col) == (11, 7)
    assert d.body is d.nodes["0"]


@pytest.mark.parametrize(
    ("text", "revision"),
    [
        ('revision: "2"', "2"),
        ("revision: 2", "2"),
        ("revision: 2.10", "2.10"),
        ("revision: abc1234", "abc1234"),
        ("revision:", None),
        ("", None),
    ],
)
def test_revision_is_a_string_as_written(text, revision):
    d = load_definition(f"name: t\n{text}\nsteps: [a]\n")
    assert d.revision == revision


@pytest.mark.parametrize("name", ["a", "handle_sr", "A-1.2_b", "123"])
def test_valid_names(name):
    assert load_definition(f"name: {name}\nsteps: []\n").name == name


def test_digest_follows_the_text():
    a = load_definition("name: t\nsteps: [a]\n")
    b = load_definition("name: t\nsteps: [a]  # edited\n")
    assert a.digest != b.digest
    assert a.digest == load_definition("name: t\nsteps: [a]\n").digest


def test_empty_steps_and_null_fields():
    d = load_definition("name: t\nfields:\nvariables:\nsubprocesses:\nsteps: []\n")
    assert (d.fields, d.variables, d.subprocesses, d.body.children) == ({}, {}, {}, ())


# -- YAML 1.2 core schema -------------------------------------------------------------

SCALARS = [
    ("yes", "yes"),
    ("no", "no"),
    ("on", "on"),
    ("off", "off"),
    ("y", "y"),
    ("n", "n"),
    ("Yes", "Yes"),
    ("true", True),
    ("True", True),
    ("TRUE", True),
    ("false", False),
    ("False", False),
    ("FALSE", False),
    ("~", None),
    ("null", None),
    ("NULL", None),
    ("", None),
    ("010", 10),
    ("0o10", 8),
    ("0x1f", 31),
    ("+12", 12),
    ("-3", -3),
    ("1_000", "1_000"),
    ("1.5", 1.5),
    ("1e3", 1000.0),
    (".5", 0.5),
    ("-.inf", -math.inf),
    ("2024-01-01", "2024-01-01"),
    ("1:30", "1:30"),
    ("'true'", "true"),
    ("!!str 12", "12"),
    ("!!int '12'", 12),
    ("!!float 1", 1.0),
]


@pytest.mark.parametrize(("text", "value"), SCALARS)
def test_yaml_1_2_scalars(text, value):
    d = load_definition(f"name: t\nfields:\n  x: {text}\nsteps: []\n")
    assert d.fields["x"] == value
    assert type(d.fields["x"]) is type(value)


def test_nan():
    assert math.isnan(load_definition("name: t\nfields: {x: .nan}\nsteps: []\n").fields["x"])


def test_on_is_a_plain_key():
    d = load_definition("name: t\nfields:\n  on: push\n  yes: 1\n  no: 2\n  off: 3\nsteps: []\n")
    assert d.fields == {"on": "push", "yes": 1, "no": 2, "off": 3}


def test_on_key_of_iterator_and_participant():
    node = first("- iterator:\n    on: [a]\n    steps: [x]")
    assert node.opts["on"] == ["a"]
    node = first("- on: {yes: no}")
    assert node.opts == {"ref": "on", "params": {"yes": "no"}}


def test_global_safe_loader_untouched():
    assert yaml.safe_load("on: yes") == {True: True}
    assert yaml.load("a: off", Loader=Yaml12Loader) == {"a": "off"}


def test_aliases_are_expanded():
    d = load_definition("name: t\nsteps:\n  - &s {echo: hi, tag: x}\n  - *s\n")
    assert [(n.id, n.kind, n.opts["text"]) for n in d.body.children] == [
        ("0_0", "echo", "hi"),
        ("0_1", "echo", "hi"),
    ]


# -- dict, path and file inputs --------------------------------------------------------


def test_load_dict():
    data = {"name": "t", "steps": ["a", {"echo": "hi", "timeout": "5s"}, {"set": {"on": "yes"}}]}
    d = load_definition(data)
    assert names(d.body) == ["a", "echo", "set"]
    assert d.nodes["0_1"].attrs == {"timeout": 5.0}
    assert d.nodes["0_2"].opts == {"values": {"on": "yes"}}
    assert d.source == yaml.safe_dump(data, sort_keys=True)
    assert d.digest == hashlib.sha256(d.source.encode()).hexdigest()
    assert (d.nodes["0_1"].line, d.nodes["0_1"].col) == (0, 0)


def test_dict_source_loads_back_to_the_same_definition():
    tricky = ["0o10", "1e3", "tRuE", "on", "yes", "2024-01-01", "010", "1_000", "", "null", "~"]
    data = {
        "name": "t",
        "fields": {f"k{i}": v for i, v in enumerate(tricky)} | {"n": 1, "f": 1.5, "b": True},
        "steps": [{"set": {"z": 1, "a": 2, "m": [3]}}, {"echo": "1e3"}],
    }
    d = load_definition(data)
    again = load_definition(d.source)
    assert again.digest == d.digest
    assert again.fields == d.fields == data["fields"]
    assert [(n.id, n.kind, n.opts) for n in again.nodes.values()] == [
        (n.id, n.kind, n.opts) for n in d.nodes.values()
    ]
    assert list(d.nodes["0_0"].opts["values"]) == ["a", "m", "z"]


def test_load_dict_with_tuples_and_booleans():
    d = load_definition({"name": "t", "steps": ({"iterator": {"on": (1, 2), "steps": ("a",)}},)})
    assert d.nodes["0_0"].opts["on"] == [1, 2]
    assert load_definition({"name": "t", "steps": [{"a": {"flag": True}}]}).nodes["0_0"].opts[
        "params"
    ] == {"flag": True}


def test_load_dict_errors_have_no_position():
    with pytest.raises(LoadError) as info:
        load_definition({"name": "t", "steps": [{"concurence": ["a"]}]})
    [p] = info.value.problems
    assert (p.line, p.col) == (0, 0)
    assert "did you mean 'concurrence'?" in p.message


def test_load_dict_yaml_1_1_on_hint():
    with pytest.raises(LoadError) as info:
        load_definition({"name": "t", "steps": [{"iterator": {True: [1], "steps": ["a"]}}]})
    assert "read the key 'on' as true" in str(info.value)


def test_load_path_and_str_path(tmp_path):
    f = tmp_path / "hello.yaml"
    f.write_text("name: hello\nsteps: [a]\n")
    for source in (f, str(f)):
        d = load_definition(source)
        assert (d.name, d.filename, d.source) == ("hello", str(f), f.read_text())
    assert load_definition(f, "other.yaml").filename == "other.yaml"
    assert load_file(f).name == "hello"
    assert load_file(str(f)).filename == str(f)


def test_missing_yaml_path_is_reported_as_such():
    with pytest.raises(LoadError) as info:
        load_definition("does/not/exist.yaml")
    assert "no such file: 'does/not/exist.yaml'" in str(info.value)


def test_errors_name_the_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: t\nsteps:\n  - concurence: [a]\n")
    with pytest.raises(LoadError) as info:
        load_file(f)
    assert str(info.value) == (
        f"{f}:3:5: 'concurence' is not an expression or participant attribute; "
        "did you mean 'concurrence'?"
    )


def test_check_files(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("name: g\nsteps: [a]\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nsteps:\n  - wait: 5x\n  - concurrence: {count: 0}\n")
    missing = tmp_path / "missing.yaml"
    found = check_files([good, bad, missing])
    assert [(p.filename, p.line, p.col) for p in found] == [
        (str(bad), 3, 11),
        (str(bad), 4, 26),
        (str(missing), 0, 0),
    ]
    assert found[2].message.startswith("cannot read")
    assert check_files([good]) == []


def test_problem_and_load_error_str():
    p = Problem(None, 3, 5, "boom")
    assert str(p) == "<string>:3:5: boom"
    assert str(Problem("a.yaml", 1, 2, "x")) == "a.yaml:1:2: x"
    e = LoadError([p, Problem("a.yaml", 1, 2, "x")])
    assert str(e) == "<string>:3:5: boom\na.yaml:1:2: x"
    assert e.problems[1].filename == "a.yaml"
    assert isinstance(e, Exception)
    copy = pickle.loads(pickle.dumps(e))
    assert copy.problems == e.problems
    assert str(copy) == str(e)


# -- errors: exact line and column ---------------------------------------------------------

# (id, document, [(line, col, message fragment), ...]) -- every problem is listed
DOC_ERRORS = [
    # malformed YAML
    ("yaml-unclosed-flow", "name: t\nsteps: [a\n", [(3, 1, "expected ',' or ']'")]),
    ("yaml-tab", "name: t\nsteps:\n\t- a\n", [(3, 1, "found character '\\t'")]),
    ("yaml-bad-indent", "name: t\n  bad: indent\n", [(2, 6, "mapping values are not allowed")]),
    ("yaml-undefined-alias", "name: t\nsteps: [*x]\n", [(2, 9, "found undefined alias 'x'")]),
    (
        "yaml-control-character",
        "name: t\x07\nsteps: [a]\n",
        [(1, 8, "unacceptable character #x0007")],
    ),
    (
        "yaml-two-documents",
        "name: t\nsteps: []\n---\nname: u\n",
        [(3, 1, "expected a single document")],
    ),
    ("yaml-unclosed-quote", 'name: "t\nsteps: []\n', [(3, 1, "found unexpected end of stream")]),
    # the document
    ("empty-document", "", [(1, 1, "the document is empty")]),
    ("comment-only-document", "# nothing\n", [(1, 1, "the document is empty")]),
    ("list-document", "- a\n- b\n", [(1, 1, "a definition must be a mapping, got a list")]),
    ("string-document", "hello\n", [(1, 1, "a definition must be a mapping, got a string")]),
    ("number-document", "42\n", [(1, 1, "got an integer")]),
    # top level
    ("missing-name", "steps: [a]\n", [(1, 1, "missing required key 'name'")]),
    ("missing-steps", "name: t\n", [(1, 1, "missing required key 'steps'")]),
    (
        "missing-both",
        "description: x\n",
        [(1, 1, "missing required key 'name'"), (1, 1, "missing required key 'steps'")],
    ),
    ("bad-name", "name: has space\nsteps: []\n", [(1, 7, "invalid name 'has space'")]),
    ("bad-name-slash", "name: a/b\nsteps: []\n", [(1, 7, "invalid name 'a/b'")]),
    ("name-list", "name: [a]\nsteps: []\n", [(1, 7, "'name' must be a string, got a list")]),
    ("name-bool", "name: true\nsteps: []\n", [(1, 7, "'name' must be a string, got a boolean")]),
    ("name-empty", "name: ''\nsteps: []\n", [(1, 7, "'name' must not be empty")]),
    ("name-null", "name:\nsteps: []\n", [(1, 6, "'name' must be a string, got nothing")]),
    (
        "unknown-top-level-key",
        "name: t\nstpes: []\nsteps: []\n",
        [(2, 1, "unknown top-level key 'stpes'; did you mean 'steps'?")],
    ),
    (
        "unknown-top-level-key-no-suggestion",
        "name: t\nsteps: []\nzzz: 1\n",
        [(3, 1, "unknown top-level key 'zzz'")],
    ),
    (
        "top-level-attribute-not-allowed",
        "name: t\nsteps: []\nretry: 3\n",
        [(3, 1, "'retry' is not allowed at the top level")],
    ),
    (
        "steps-string",
        "name: t\nsteps: a\n",
        [(2, 8, "'steps' must be a list of steps, got a string")],
    ),
    ("steps-mapping", "name: t\nsteps: {a: 1}\n", [(2, 8, "got a mapping")]),
    ("steps-null", "name: t\nsteps:\n", [(2, 7, "'steps' must be a list of steps, got nothing")]),
    ("fields-list", "name: t\nfields: [1]\nsteps: []\n", [(2, 9, "'fields' must be a mapping")]),
    ("variables-string", "name: t\nvariables: x\nsteps: []\n", [(2, 12, "'variables' must be a")]),
    (
        "description-mapping",
        "name: t\ndescription: {a: 1}\nsteps: []\n",
        [(2, 14, "'description' must be a string")],
    ),
    (
        "subprocesses-list",
        "name: t\nsubprocesses: [a]\nsteps: []\n",
        [(2, 15, "'subprocesses' must be a mapping of name -> list of steps")],
    ),
    (
        "subprocess-bad-name",
        "name: t\nsubprocesses:\n  bad name: [a]\nsteps: []\n",
        [(3, 3, "invalid subprocess name 'bad name'")],
    ),
    (
        "subprocess-builtin-name",
        "name: t\nsubprocesses:\n  sequence: [a]\nsteps: []\n",
        [(3, 3, "subprocess name 'sequence' is a built-in expression")],
    ),
    (
        "subprocess-attribute-name",
        "name: t\nsubprocesses:\n  tag: [a]\nsteps: []\n",
        [(3, 3, "subprocess name 'tag' is a common attribute")],
    ),
    (
        "subprocess-body-not-list",
        "name: t\nsubprocesses:\n  s: a\nsteps: []\n",
        [(3, 6, "subprocess 's' must be a list of steps, got a string")],
    ),
    (
        "subprocess-body-error",
        "name: t\nsubprocesses:\n  s:\n    - wait: 5x\nsteps: []\n",
        [(4, 13, "'wait': invalid duration '5x'")],
    ),
    # duplicate keys
    ("duplicate-top-level-key", "name: t\nname: u\nsteps: []\n", [(2, 1, "duplicate key 'name'")]),
    (
        "duplicate-key-in-step",
        "name: t\nsteps:\n  - a: {}\n    tag: x\n    tag: y\n",
        [(5, 5, "duplicate key 'tag' (first at line 4)")],
    ),
    (
        "duplicate-key-in-params",
        "name: t\nsteps:\n  - a: {x: 1, x: 2}\n",
        [(3, 15, "duplicate key 'x' (first at line 3)")],
    ),
    (
        "duplicate-key-in-fields",
        "name: t\nfields:\n  a: 1\n  a: 2\nsteps: []\n",
        [(4, 3, "duplicate key 'a'")],
    ),
    (
        "duplicate-key-number-vs-string",
        "name: t\nfields: {1: a, '1': b}\nsteps: []\n",
        [(2, 16, "duplicate key '1'")],
    ),
    # values
    (
        "unsupported-tag-binary",
        "name: t\nfields: {x: !!binary aGk=}\nsteps: []\n",
        [(2, 13, "unsupported tag 'tag:yaml.org,2002:binary'")],
    ),
    (
        "unsupported-tag-custom",
        "name: t\nfields: {x: !foo bar}\nsteps: []\n",
        [(2, 13, "unsupported tag '!foo'")],
    ),
    (
        "bad-explicit-int",
        "name: t\nfields: {x: !!int abc}\nsteps: []\n",
        [(2, 13, "'abc' is not a valid int")],
    ),
    (
        "recursive-alias",
        "name: t\nfields: &a {x: *a}\nsteps: []\n",
        [(2, 9, "recursive alias")],
    ),
    (
        "complex-key",
        "name: t\nfields: {[a]: 1}\nsteps: []\n",
        [(2, 10, "a mapping key must be a scalar, got a list")],
    ),
    # several problems reported together, in document order
    (
        "several-problems",
        "name: bad name\nsteps:\n  - concurence: [a]\n  - wait: 5x\nstpes: []\n",
        [
            (1, 7, "invalid name"),
            (3, 5, "did you mean 'concurrence'?"),
            (4, 11, "invalid duration"),
            (5, 1, "did you mean 'steps'?"),
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(*r[1:], id=r[0]) for r in DOC_ERRORS])
def test_document_errors(text, expected):
    found = problems(text)
    assert [(p.line, p.col) for p in found] == [(line, col) for line, col, _ in expected]
    for p, (_, _, fragment) in zip(found, expected, strict=True):
        assert fragment in p.message
        assert p.filename == "t.yaml"


# (id, step snippet, [(line within the snippet, col, message fragment), ...])
STEP_ERRORS = [
    # step shapes
    ("empty-mapping", "- {}", [(1, 3, "empty step")]),
    ("null-step", "-", [(1, 2, "empty step")]),
    ("empty-string-step", "- ''", [(1, 3, "empty step")]),
    ("number-step", "- 3", [(1, 3, "a step must be a name or a mapping, got an integer (3)")]),
    ("bool-step", "- true", [(1, 3, "got a boolean")]),
    ("list-step", "- [a]", [(1, 3, "a step must be a name or a mapping, got a list")]),
    (
        "only-attributes",
        "- tag: x\n  timeout: 5s",
        [(1, 3, "a step needs an expression key; found only attributes: 'tag', 'timeout'")],
    ),
    (
        "misspelt-attribute",
        "- build: {}\n  timout: 30s",
        [
            (
                2,
                3,
                "got 2 keys that are not attributes: 'build', 'timout' ('timout': did you mean "
                "'timeout'?)",
            )
        ],
    ),
    (
        "misspelt-attribute-first",
        "- on_eror: pass\n  build: {}",
        [(1, 3, "'on_eror': did you mean 'on_error'?")],
    ),
    (
        "two-expression-keys",
        "- alpha: {}\n  beta: {}",
        [(2, 3, "got 2 keys that are not attributes: 'alpha', 'beta'")],
    ),
    (
        "misspelt-expression",
        "- concurence: [a, b]",
        [
            (
                1,
                3,
                "'concurence' is not an expression or participant attribute; did you mean "
                "'concurrence'?",
            )
        ],
    ),
    (
        "misspelt-expression-scalar",
        "- sequense: a",
        [
            (
                1,
                3,
                "'sequense' is not an expression or participant attribute; did you mean "
                "'sequence'?",
            )
        ],
    ),
    (
        "misspelt-attribute-alone",
        "- timout: 30s",
        [(1, 3, "did you mean 'timeout'?")],
    ),
    (
        "participant-list-argument",
        "- foo: [1]",
        [(1, 3, "'foo' takes a mapping of params, got a list")],
    ),
    (
        "participant-scalar-argument",
        "- foo: bar",
        [(1, 3, "'foo' takes a mapping of params, got a string")],
    ),
    (
        "subprocess-short-list",
        "- sub: [a]",
        [(1, 3, "subprocess 'sub' takes a mapping of variables")],
    ),
    # built-ins with a wrong argument
    (
        "sequence-string",
        "- sequence: a",
        [(1, 13, "'sequence' takes a list of steps or a mapping with 'steps', got a string")],
    ),
    (
        "sequence-unknown-option",
        "- sequence: {steps: [a], stpes: 1}",
        [(1, 26, "'sequence' has no option 'stpes'; did you mean 'steps'?")],
    ),
    (
        "sequence-steps-not-list",
        "- sequence: {steps: a}",
        [(1, 21, "'sequence.steps' must be a list of steps, got a string")],
    ),
    ("sequence-bad-child", "- sequence: [a, 3]", [(1, 17, "a step must be a name or a mapping")]),
    (
        "concurrence-scalar",
        "- concurrence: 3",
        [
            (
                1,
                16,
                "'concurrence' takes a list of steps or a mapping with 'branches', got an integer",
            )
        ],
    ),
    (
        "concurrence-steps",
        "- concurrence: {steps: [a]}",
        [
            (
                1,
                17,
                "'concurrence' has no option 'steps'; a concurrence's children go under 'branches'",
            )
        ],
    ),
    (
        "concurrence-count-zero",
        "- concurrence: {count: 0}",
        [(1, 24, "'concurrence.count' must not be 0")],
    ),
    (
        "concurrence-count-string",
        "- concurrence: {count: x}",
        [(1, 24, "'concurrence.count' must be an integer, got a string")],
    ),
    (
        "concurrence-count-bool",
        "- concurrence: {count: true}",
        [(1, 24, "must be an integer, got a boolean")],
    ),
    (
        "concurrence-remaining",
        "- concurrence: {remaining: never}",
        [(1, 28, "'concurrence.remaining' must be one of cancel, forget, wait, got 'never'")],
    ),
    (
        "concurrence-merge-typo",
        "- concurrence: {merge: frist}",
        [
            (
                1,
                24,
                "must be one of first, last, highest, lowest, got 'frist'; did you mean 'first'?",
            )
        ],
    ),
    (
        "concurrence-merge_type",
        "- concurrence: {merge_type: deeep}",
        [(1, 29, "did you mean 'deep'?")],
    ),
    (
        "concurrence-merge-list",
        "- concurrence: {merge: [first]}",
        [(1, 24, "'concurrence.merge' must be one of first, last, highest, lowest, got a list")],
    ),
    (
        "concurrence-wait_for-mapping",
        "- concurrence: {wait_for: {a: 1}}",
        [
            (
                1,
                27,
                "'concurrence.wait_for' (a tag or a list of tags) must be a string, got a mapping",
            )
        ],
    ),
    (
        "concurrence-wait_for-item",
        "- concurrence: {wait_for: [a, [b]]}",
        [(1, 31, "'concurrence.wait_for' item must be a string, got a list")],
    ),
    (
        "concurrence-over_if",
        "- concurrence: {over_if: 'a ==', branches: [a]}",
        [(1, 31, "invalid condition in 'concurrence.over_if': expected an operand after '=='")],
    ),
    (
        "concurrence-unknown",
        "- concurrence: {cont: 1}",
        [(1, 17, "'concurrence' has no option 'cont'; did you mean 'count'?")],
    ),
    (
        "participant-null",
        "- participant",
        [(1, 3, "'participant' needs an argument: a name or {ref, ...params}")],
    ),
    (
        "participant-list",
        "- participant: [a]",
        [(1, 16, "'participant' takes a name or a mapping {ref, ...params}, got a list")],
    ),
    (
        "participant-no-ref",
        "- participant: {x: 1}",
        [(1, 16, "'participant' needs 'ref' (the name)")],
    ),
    (
        "participant-ref-list",
        "- participant: {ref: [a]}",
        [(1, 22, "'participant.ref' must be a string, got a list")],
    ),
    (
        "participant-bool",
        "- participant: true",
        [(1, 16, "'participant' name must be a string, got a boolean")],
    ),
    (
        "subprocess-unknown",
        "- subprocess: nope",
        [(1, 15, "unknown subprocess 'nope'; this definition has: prechecks, sub")],
    ),
    (
        "subprocess-unknown-suggest",
        "- subprocess: precheck",
        [(1, 15, "unknown subprocess 'precheck'; did you mean 'prechecks'?")],
    ),
    (
        "subprocess-unknown-ref",
        "- subprocess: {ref: subb, a: 1}",
        [(1, 21, "unknown subprocess 'subb'; did you mean 'sub'?")],
    ),
    ("subprocess-no-ref", "- subprocess: {a: 1}", [(1, 15, "'subprocess' needs 'ref'")]),
    ("subprocess-null", "- subprocess:", [(1, 3, "'subprocess' needs an argument")]),
    (
        "if-string-alone",
        "- if: '${a}'",
        [(1, 7, "'if' as an expression takes {test, then, else}, got a string")],
    ),
    ("if-bare", "- if", [(1, 3, "'if' needs an argument: {test, then, else}")]),
    ("if-no-test", "- if: {then: [a]}", [(1, 3, "'if' needs 'test' (a condition)")]),
    ("if-no-then", "- if: {test: '${a}'}", [(1, 3, "'if' needs 'then' (a list of steps)")]),
    (
        "if-then-not-list",
        "- if: {test: '${a}', then: a}",
        [(1, 28, "'if.then' must be a list of steps, got a string")],
    ),
    (
        "if-else-mapping",
        "- if: {test: '${a}', then: [a], else: {b: 1}}",
        [(1, 39, "'if.else' must be a list of steps, got a mapping")],
    ),
    (
        "if-bad-test",
        "- if: {test: '${a} == ', then: [a]}",
        [(1, 23, "invalid condition in 'if.test': expected an operand after '=='")],
    ),
    (
        "if-unknown-option",
        "- if: {test: x, then: [a], els: [b]}",
        [(1, 28, "'if' has no option 'els'; did you mean 'else'?")],
    ),
    (
        "iterator-list",
        "- iterator: [a]",
        [(1, 13, "'iterator' takes a mapping {on, to, steps}, got a list")],
    ),
    (
        "iterator-no-on",
        "- iterator: {steps: [a]}",
        [(1, 3, "'iterator' needs 'on' (a list, a comma string or $f:name)")],
    ),
    (
        "iterator-on-number",
        "- iterator: {on: 3, steps: [a]}",
        [
            (
                1,
                18,
                "'iterator.on' must be a list, a comma-separated string or $f:name, got an integer",
            )
        ],
    ),
    ("iterator-on-mapping", "- iterator: {on: {a: 1}}", [(1, 18, "got a mapping")]),
    (
        "iterator-to-list",
        "- iterator: {on: [1], to: [x]}",
        [(1, 27, "'iterator.to' must be a string, got a list")],
    ),
    (
        "iterator-step-typo",
        "- iterator: {on: [1], step: [a]}",
        [(1, 23, "'iterator' has no option 'step'; did you mean 'steps'?")],
    ),
    (
        "iterator-count-not-allowed",
        "- iterator: {on: [1], count: 1}",
        [(1, 23, "'iterator' has no option 'count'")],
    ),
    ("iterator-null", "- iterator", [(1, 3, "'iterator' needs an argument")]),
    (
        "concurrent_iterator-count",
        "- concurrent_iterator: {on: [1], count: 0}",
        [(1, 41, "'concurrent_iterator.count' must not be 0")],
    ),
    (
        "concurrent_iterator-merge",
        "- concurrent_iterator: {on: [1], merge: up}",
        [(1, 41, "'concurrent_iterator.merge' must be one of")],
    ),
    (
        "cursor-option-typo",
        "- cursor: {steps: [a], break_iff: x}",
        [(1, 24, "'cursor' has no option 'break_iff'; did you mean 'break_if'?")],
    ),
    (
        "cursor-bad-condition",
        "- cursor: {steps: [a], rewind_if: '(a'}",
        [(1, 36, "invalid condition in 'cursor.rewind_if': unclosed '('")],
    ),
    ("loop-branches", "- loop: {branches: [a]}", [(1, 10, "'loop' has no option 'branches'")]),
    ("set-list", "- set: [a]", [(1, 8, "'set' takes a mapping like")]),
    ("inc-list", "- inc: [a]", [(1, 8, '\'inc\' takes "v:count" or {"v:count": 2}')]),
    ("inc-null", "- inc", [(1, 3, "'inc' needs an argument")]),
    ("inc-empty-name", "- inc: 'f:'", [(1, 8, "'inc' 'f:' names no field or variable")]),
    ("push-string", "- push: 'v:l'", [(1, 9, "'push' takes a mapping {\"v:list\": value}")]),
    ("apply-argument", "- apply: x", [(1, 10, "'apply' takes no argument")]),
    ("flank-not-boolean", "- a: {}\n  flank: yes", [(2, 10, "'flank' must be")]),
    (
        "iterator-to-dotted",
        "- iterator: {on: [1], to: 'v:a.b'}",
        [(1, 27, "a variable name has no dots")],
    ),
    (
        "listen-class-without-errors",
        "- listen: {to: a, class: X}",
        [(1, 19, "'listen.class' is only for 'to: errors'")],
    ),
    (
        "listen-errors-upon",
        "- listen: {to: errors, upon: reply}",
        [(1, 30, "'listen' to errors takes no 'upon'")],
    ),
    (
        "ruote-repeat",
        "- repeat: {}",
        [(1, 3, "'repeat' is a ruote expression, not a participant; write loop")],
    ),
    ("ruote-_if-bare", "- _if", [(1, 3, "'_if' is a ruote expression, not a participant")]),
    (
        "ruote-cron",
        "- cron: {}",
        [(1, 3, "'cron' is a ruote expression, not a participant; the language has no")],
    ),
    (
        "subprocess-block-not-list",
        "- subprocess: {ref: s, steps: x}",
        [
            (1, 21, "unknown subprocess 's'"),
            (1, 31, "a subprocess call's 'steps' (its block) must be a list of steps"),
        ],
    ),
    ("set-string", "- set: x", [(1, 8, "got a string")]),
    ("set-null", "- set", [(1, 3, "'set' needs an argument")]),
    ("set-empty-key", "- set: {'v:': 1}", [(1, 9, "'set' key 'v:' names no field or variable")]),
    (
        "unset-mapping",
        "- unset: {a: 1}",
        [(1, 10, "'unset' takes a name or a list of names, got a mapping")],
    ),
    (
        "unset-list-item",
        "- unset: [a, [b]]",
        [(1, 14, "'unset' item must be a string, got a list")],
    ),
    ("unset-null", "- unset", [(1, 3, "'unset' needs an argument")]),
    ("wait-bad-duration", "- wait: 5x", [(1, 9, "'wait': invalid duration '5x'")]),
    ("wait-negative", "- wait: -5", [(1, 9, "negative")]),
    (
        "wait-list",
        "- wait: [1]",
        [(1, 9, "'wait' takes a duration, {for: duration} or {until: time}, got a list")],
    ),
    (
        "wait-bool",
        "- wait: true",
        [(1, 9, "'wait' must be a duration (like 30s, 5m, 1h30m), got a boolean")],
    ),
    ("wait-null", "- wait", [(1, 3, "'wait' needs an argument")]),
    (
        "wait-both",
        "- wait: {for: 1, until: '2026-01-01'}",
        [(1, 9, "'wait' takes either 'for' or 'until', not both")],
    ),
    ("wait-empty", "- wait: {}", [(1, 9, "'wait' needs 'for' (a duration) or 'until' (a time)")]),
    (
        "wait-unknown",
        "- wait: {fro: 1}",
        [(1, 10, "'wait' has no option 'fro'; did you mean 'for'?")],
    ),
    (
        "wait-bad-until",
        "- wait: {until: tomorrow}",
        [(1, 17, "'wait.until': invalid time 'tomorrow'")],
    ),
    (
        "wait-until-number",
        "- wait: {until: 5}",
        [(1, 17, "'wait.until' must be an ISO 8601 time, got an integer")],
    ),
    ("wait-for-bad", "- wait: {for: 1y}", [(1, 15, "'wait.for': invalid duration '1y'")]),
    (
        "listen-string",
        "- listen: beta",
        [(1, 11, "'listen' takes a mapping {to, upon, where, merge, wfid}, got a string")],
    ),
    ("listen-no-to", "- listen: {upon: reply}", [(1, 3, "'listen' needs 'to'")]),
    (
        "listen-upon",
        "- listen: {to: a, upon: done}",
        [(1, 25, "'listen.upon' must be apply or reply, got 'done'")],
    ),
    (
        "listen-merge-yes",
        "- listen: {to: a, merge: yes}",
        [(1, 26, "'listen.merge' must be true or false, got a string")],
    ),
    (
        "listen-wfid-number",
        "- listen: {to: a, wfid: 1}",
        [(1, 25, "'listen.wfid' must be true or false, got an integer")],
    ),
    (
        "listen-where",
        "- listen: {to: a, where: 'x =~ \"[\"'}",
        [(1, 32, "invalid condition in 'listen.where': invalid regular expression")],
    ),
    ("listen-unknown", "- listen: {to: a, upn: reply}", [(1, 19, "did you mean 'upon'?")]),
    ("reserve-no-mutex", "- reserve: {steps: [a]}", [(1, 3, "'reserve' needs 'mutex'")]),
    (
        "reserve-list",
        "- reserve: [a]",
        [(1, 12, "'reserve' takes a mapping {mutex, steps}, got a list")],
    ),
    (
        "reserve-bad-child",
        "- reserve: {mutex: m, steps: [[a]]}",
        [(1, 31, "a step must be a name or a mapping, got a list")],
    ),
    ("echo-list", "- echo: [a]", [(1, 9, "'echo' takes a text, got a list")]),
    ("echo-null", "- echo", [(1, 3, "'echo' needs an argument: a text")]),
    ("noop-argument", "- noop: x", [(1, 9, "'noop' takes no argument, got a string")]),
    ("break-argument", "- break: 1", [(1, 10, "'break' takes no argument, got an integer")]),
    ("rewind-argument", "- rewind: [a]", [(1, 11, "'rewind' takes no argument, got a list")]),
    ("reset-argument", "- reset: x", [(1, 10, "'reset' takes no argument")]),
    ("terminate-argument", "- terminate: now", [(1, 14, "'terminate' takes no argument")]),
    (
        "cancel_process-argument",
        "- cancel_process: {a: 1}",
        [(1, 19, "'cancel_process' takes no argument, got a mapping")],
    ),
    ("error-list", "- error: [a]", [(1, 10, "'error' takes a message, got a list")]),
    (
        "cancel-null",
        "- cancel",
        [(1, 3, "'cancel' needs an argument: the tag of the step to cancel")],
    ),
    ("cancel-list", "- cancel: [a]", [(1, 11, "'cancel' (a tag) must be a string, got a list")]),
    ("skip-zero", "- skip: 0", [(1, 9, "'skip' takes a positive count, got 0")]),
    ("skip-negative", "- skip: -1", [(1, 9, "'skip' takes a positive count, got -1")]),
    (
        "skip-word",
        "- skip: two",
        [(1, 9, "'skip' takes nothing or a positive count, got a string")],
    ),
    (
        "back-float",
        "- back: 1.5",
        [(1, 9, "'back' takes nothing or a positive count, got a number")],
    ),
    ("jump-null", "- jump", [(1, 3, "'jump' needs an argument: a tag, a step name or an index")]),
    ("jump-negative", "- jump: -1", [(1, 9, "'jump' index must be >= 0, got -1")]),
    (
        "jump-list",
        "- jump: [a]",
        [(1, 9, "'jump' target (a tag, a step name or an index) must be a string")],
    ),
    # attributes
    (
        "timeout-bad",
        "- a: {}\n  timeout: 5x",
        [(2, 12, "'timeout': invalid duration '5x' (unknown unit in '5x')")],
    ),
    ("timeout-upper-unit", "- a: {}\n  timeout: 5M", [(2, 12, "'timeout': invalid duration '5M'")]),
    (
        "timeout-list",
        "- a: {}\n  timeout: [1]",
        [(2, 12, "'timeout' must be a duration (like 30s, 5m, 1h30m), got a list")],
    ),
    ("timeout-negative", "- a: {}\n  timeout: -1", [(2, 12, "negative")]),
    ("timeout-bool", "- a: {}\n  timeout: true", [(2, 12, "got a boolean")]),
    ("timeout-null", "- a: {}\n  timeout:", [(2, 11, "got nothing")]),
    ("retry-negative", "- a: {}\n  retry: -1", [(2, 10, "'retry' must be a count >= 0, got -1")]),
    (
        "retry-string",
        "- a: {}\n  retry: x",
        [(2, 10, "'retry' must be a count or {times, delay, backoff}, got a string")],
    ),
    ("retry-no-times", "- a: {}\n  retry: {delay: 5s}", [(2, 10, "'retry' needs 'times'")]),
    (
        "retry-times-string",
        "- a: {}\n  retry: {times: x}",
        [(2, 18, "'retry.times' must be an integer, got a string")],
    ),
    (
        "retry-times-negative",
        "- a: {}\n  retry: {times: -2}",
        [(2, 18, "'retry.times' must be >= 0")],
    ),
    (
        "retry-bad-delay",
        "- a: {}\n  retry: {times: 1, delay: 5x}",
        [(2, 28, "'retry.delay': invalid duration")],
    ),
    (
        "retry-dynamic-delay",
        "- a: {}\n  retry: {times: 1, delay: '${x}'}",
        [(2, 28, "'retry.delay' must be a literal duration")],
    ),
    (
        "retry-backoff-small",
        "- a: {}\n  retry: {times: 1, backoff: 0.5}",
        [(2, 30, "'retry.backoff' must be a number >= 1, got 0.5")],
    ),
    (
        "retry-backoff-string",
        "- a: {}\n  retry: {times: 1, backoff: x}",
        [(2, 30, "'retry.backoff' must be a number >= 1, got a string")],
    ),
    (
        "retry-unknown",
        "- a: {}\n  retry: {times: 1, tries: 2}",
        [(2, 21, "'retry' has no option 'tries'")],
    ),
    (
        "forget-yes",
        "- a: {}\n  forget: yes",
        [(2, 11, "'forget' must be true or false, got a string")],
    ),
    (
        "forget-number",
        "- a: {}\n  forget: 1",
        [(2, 11, "'forget' must be true or false, got an integer")],
    ),
    ("tag-list", "- a: {}\n  tag: [x]", [(2, 8, "'tag' must be a string, got a list")]),
    ("tag-null", "- a: {}\n  tag:", [(2, 7, "'tag' must be a string, got nothing")]),
    ("if-list", "- a: {}\n  if: [x]", [(2, 7, "'if' must be a condition (a string), got a list")]),
    ("if-null", "- a: {}\n  if:", [(2, 6, "'if' must be a condition (a string), got nothing")]),
    (
        "if-bad-condition",
        "- a: {}\n  if: ${a} == )",
        [(2, 15, "invalid condition in 'if': expected an operand after '==', found ')'")],
    ),
    ("if-bad-condition-quoted", '- a: {}\n  if: "x and"', [(2, 13, "invalid condition in 'if'")]),
    ("if-bad-condition-escaped", '- a: {}\n  if: "\\t("', [(2, 7, "invalid condition in 'if'")]),
    (
        "if-bad-condition-block",
        "- a: {}\n  if: >\n    (a ==",
        [(2, 7, "invalid condition in 'if'")],
    ),
    (
        "unless-bad-condition",
        "- a: {}\n  unless: a ) b",
        [(2, 13, "invalid condition in 'unless': unmatched ')'")],
    ),
    (
        "on_error-null",
        "- a: {}\n  on_error:",
        [
            (
                2,
                12,
                "'on_error' must be an action (pass, redo, cancel, raise), a cursor command "
                "or a participant or subprocess name, got nothing",
            )
        ],
    ),
    ("on_error-empty", "- a: {}\n  on_error: ''", [(2, 13, "got an empty string")]),
    ("on_error-bool", "- a: {}\n  on_error: true", [(2, 13, "got a boolean")]),
    ("on_error-list", "- a: {}\n  on_error: [a]", [(2, 13, "got a list")]),
    ("on_error-error", "- a: {}\n  on_error: error", [(2, 13, "'on_error: error' is not allowed")]),
    ("on_error-builtin", "- a: {}\n  on_error: noop", [(2, 13, "'on_error: noop' is not allowed")]),
    (
        "on_error-skip-word",
        "- a: {}\n  on_error: skip two",
        [(2, 13, "'on_error: skip' takes a positive count, like 'skip 2'")],
    ),
    ("on_error-skip-zero", "- a: {}\n  on_error: skip 0", [(2, 13, "takes a positive count")]),
    (
        "on_error-jump-bare",
        "- a: {}\n  on_error: jump",
        [(2, 13, "'on_error: jump' needs one target")],
    ),
    (
        "on_error-rewind-arg",
        "- a: {}\n  on_error: rewind 2",
        [(2, 13, "'on_error: rewind' takes no argument")],
    ),
    (
        "on_error-pass-arg",
        "- a: {}\n  on_error: pass now",
        [(2, 13, "'on_error: pass' takes no argument")],
    ),
    (
        "on_error-two-words",
        "- a: {}\n  on_error: notify admin",
        [(2, 13, "'on_error' value 'notify admin' is not an action")],
    ),
    ("on_timeout-null", "- a: {}\n  on_timeout:", [(2, 14, "(pass, redo, cancel, raise, error)")]),
    (
        "on_timeout-builtin",
        "- a: {}\n  on_timeout: echo",
        [(2, 15, "'on_timeout: echo' is not allowed")],
    ),
    (
        "on_cancel-action",
        "- a: {}\n  on_cancel: pass",
        [
            (
                2,
                14,
                "'on_cancel: pass' is not allowed; "
                "on_cancel takes a participant or subprocess name",
            )
        ],
    ),
    (
        "on_cancel-command",
        "- a: {}\n  on_cancel: rewind",
        [(2, 14, "'on_cancel: rewind' is not allowed")],
    ),
    ("on_cancel-error", "- a: {}\n  on_cancel: error", [(2, 14, "is not allowed")]),
    (
        "on_cancel-two-words",
        "- a: {}\n  on_cancel: a b",
        [(2, 14, "'on_cancel' value 'a b' is not a participant or subprocess name")],
    ),
    (
        "on_cancel-number",
        "- a: {}\n  on_cancel: 3",
        [(2, 14, "'on_cancel' must be a participant or subprocess name, got an integer")],
    ),
    # nested errors keep their own position
    (
        "nested-error",
        "- sequence:\n    - concurrence:\n        - a\n        - wait: 1x",
        [(4, 17, "'wait': invalid duration '1x'")],
    ),
    (
        "errors-in-both-if-branches",
        "- if:\n    test: ${a}\n    then: [wait: 1x]\n    else: [echo]",
        [(3, 18, "invalid duration"), (4, 12, "'echo' needs an argument")],
    ),
    (
        "attribute-and-expression-errors-together",
        "- wait: 1x\n  timeout: 2x\n  tag: [t]",
        [(1, 9, "'wait'"), (2, 12, "'timeout'"), (3, 8, "'tag'")],
    ),
]


@pytest.mark.parametrize(
    ("snippet", "expected"), [pytest.param(*r[1:], id=r[0]) for r in STEP_ERRORS]
)
def test_step_errors(snippet, expected):
    found = step_problems(snippet)
    assert [(line, col) for line, col, _ in found] == [(line, col) for line, col, _ in expected]
    for (_, _, message), (_, _, fragment) in zip(found, expected, strict=True):
        assert fragment in message


def test_spec_example_message_verbatim():
    text = "name: handle_sr\nsteps:\n" + "  - a\n" * 11 + "  - concurence:\n      - b\n"
    with pytest.raises(LoadError) as info:
        load_definition(text, "handle_sr.yaml")
    assert str(info.value) == (
        "handle_sr.yaml:14:5: 'concurence' is not an expression or participant attribute; "
        "did you mean 'concurrence'?"
    )


def test_all_problems_are_reported_not_just_the_first():
    steps = "".join(f"  - wait: {i}x\n" for i in range(1, 21))
    found = problems(f"name: t\nsteps:\n{steps}")
    assert len(found) == 20
    assert [p.line for p in found] == list(range(3, 23))


def test_aliased_error_reported_once():
    found = problems("name: t\nsteps:\n  - &w {wait: 5x}\n  - *w\n  - *w\n")
    assert [(p.line, p.col) for p in found] == [(3, 15)]


def test_string_without_filename_uses_string_marker():
    with pytest.raises(LoadError) as info:
        load_definition("name: t\n")
    assert str(info.value) == "<string>:1:1: missing required key 'steps'"


# -- size and speed ------------------------------------------------------------------


def test_200_steps_load_in_milliseconds():
    text = "name: big\nsteps:\n" + "".join(
        f"  - p{i}: {{a: {i}, b: [x, y]}}\n    timeout: 5m\n    if: '${{f:x}} == {i}'\n"
        for i in range(200)
    )
    load_definition(text)  # warm up
    start = time.perf_counter()
    d = load_definition(text)
    elapsed = time.perf_counter() - start
    assert len(d.nodes) == 201
    assert elapsed < 0.25, elapsed


def test_alias_bomb_is_bounded():
    lines = ["name: bomb", "subprocesses:", "  s0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        prev = f"*a{i - 1}"
        lines.append(f"  s{i}: &a{i} [{', '.join([f'sequence: {prev}'] * 10)}]")
    lines.append("steps: []")
    start = time.perf_counter()
    with pytest.raises(LoadError) as info:
        load_definition("\n".join(lines) + "\n")
    assert "definition too large" in str(info.value)
    assert time.perf_counter() - start < 10


def test_deep_nesting_is_an_error_not_a_crash():
    text = "name: t\nsteps:\n  - " + "[" * 3000 + "]" * 3000 + "\n"
    with pytest.raises(LoadError):
        load_definition(text)


def test_example_processes_in_the_tree_load():
    root = Path(__file__).resolve().parents[2] / "processes"
    for path in sorted(root.rglob("*.yaml")):
        load_file(path)
