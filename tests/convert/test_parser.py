"""The parser: calls, arguments, blocks, continuation lines, comments,
Ruby code outside the subset, and the errors that stop a conversion."""

from __future__ import annotations

import pytest

from bossapp.pdef.parser import PdefSyntaxError, parse
from bossapp.pdef.tree import Stmt


def only(text: str) -> Stmt:
    (stmt,) = parse(text).stmts
    return stmt


def kw(stmt: Stmt) -> dict[str, object]:
    return {str(k.value): v.value for k, v in stmt.kwargs}


def test_the_definition_call_and_its_block() -> None:
    s = only("Ruote.process_definition :name => 'x', :revision => '1' do\n  alpha\nend\n")
    assert (s.receiver, s.name) == ("Ruote", "process_definition")
    assert kw(s) == {"name": "x", "revision": "1"}
    assert s.block is not None and [c.name for c in s.block.stmts] == ["alpha"]
    assert (s.line, s.end_line) == (1, 3)


def test_positional_then_hash_arguments_and_labels() -> None:
    s = only("error 'failed', :unless => '${__result__}', tag: 'e'")
    assert [a.value for a in s.args] == ["failed"]
    assert kw(s) == {"unless": "${__result__}", "tag": "e"}


def test_string_keys_arrays_hashes_and_literals() -> None:
    s = only("set 'v:x' => [1, -2, 'a', nil, true, false, {'k' => :v}]")
    (key, value) = s.kwargs[0]
    assert key.value == "v:x"
    assert value.kind == "array"
    assert [v.kind for v in value.value] == ["num", "num", "str", "nil", "bool", "bool", "hash"]
    assert value.value[1].value == -2


def test_continuation_after_comma_plus_arrow_and_inside_brackets() -> None:
    text = (
        "notify :template => 'x',\n"
        "       :subject => 'a' +\n"
        "                   \"b\" + 'c',\n"
        "       :list => [\n"
        "         1,\n"
        "         2\n"
        "       ], :h =>\n"
        "         'v'\n"
        "beta\n"
    )
    notify, beta = parse(text).stmts
    assert kw(notify)["subject"] == "abc"
    assert [v.value for v in notify.kwargs[2][1].value] == [1, 2]
    assert kw(notify)["h"] == "v"
    assert (notify.line, notify.end_line) == (1, 8)
    assert beta.line == 9


def test_parentheses_around_arguments() -> None:
    s = only("alpha(:a => 1,\n      :b => 2)")
    assert kw(s) == {"a": 1, "b": 2}
    assert only("beta()").kwargs == []


def test_one_line_blocks_do_end_and_braces() -> None:
    s = only("_if :test => 'x' do set 'status' => 'FAIL' end")
    assert s.block is not None and [c.name for c in s.block.stmts] == ["set"]
    s = only("concurrence { alpha; beta }")
    assert s.block is not None and [c.name for c in s.block.stmts] == ["alpha", "beta"]


def test_comments_before_after_and_at_the_end_of_a_block() -> None:
    text = (
        "sequence do  # the main flow\n"
        "\n"
        "  # first\n"
        "  alpha  # trailing\n"
        "\n"
        "  #   indented more\n"
        "  beta :a => 1, # inside the call\n"
        "        :b => 2\n"
        "  # at the end\n"
        "end\n"
    )
    seq = only(text)
    assert [c.text for c in seq.inner] == [" the main flow"]
    assert seq.block is not None
    alpha, beta = seq.block.stmts
    assert [c and c.text for c in alpha.leading] == [None, " first"]
    assert alpha.trailing is not None and alpha.trailing.text == " trailing"
    assert [c and c.text for c in beta.leading] == [None, "   indented more"]
    assert [c.text for c in beta.inner] == [" inside the call"]
    assert [c and c.text for c in seq.block.end_comments] == [" at the end"]


def test_tabs_count_as_indentation() -> None:
    seq = only("sequence do\n  alpha\n\tbeta\nend\n")
    assert seq.block is not None
    alpha, beta = seq.block.stmts
    assert (beta.line, beta.col, beta.indent) == (3, 2, 9)
    assert alpha.indent == 3


@pytest.mark.parametrize(
    ("text", "why", "at"),
    [
        ("x = 1 + 2\n", "Ruby '=' after 'x'", (1, 3)),
        ("alpha :when => Time.now\n", "'Time' is not a literal", (1, 16)),
        ("alpha :n => 1 + 2\n", "'+' on something else than strings", (1, 18)),
        ("foo.bar\n", "Ruby '.' after 'foo'", (1, 4)),
        ("if x\n  alpha\nend\n", "a Ruby 'if'", (1, 1)),
        ("alpha do |wi|\n  beta\nend\n", "block parameters", (1, 10)),
    ],
)
def test_ruby_code_is_kept_raw_with_where_and_why(text: str, why: str, at: tuple[int, int]) -> None:
    stmts = parse(text + "omega\n").stmts
    raw, omega = stmts
    assert raw.raw == why
    assert raw.raw_at == at
    assert omega.name == "omega" and omega.is_call  # parsing goes on after it


@pytest.mark.parametrize(
    ("text", "message", "at"),
    [
        ("sequence do\n  alpha 'x\nend\n", "unterminated string", (2, 9)),
        ("sequence do\n  alpha\nend\nend\n", "unexpected 'end'", (4, 1)),
        ("sequence do\n  alpha\n", "'do' is never closed", (1, 10)),
        ("alpha)\n", "unexpected ')'", (1, 6)),
        ("sequence do\n  alpha\n}\n", "unexpected '}'", (3, 1)),
    ],
)
def test_errors_name_line_column_and_construct(
    text: str, message: str, at: tuple[int, int]
) -> None:
    with pytest.raises(PdefSyntaxError) as e:
        parse(text)
    assert message in e.value.message
    assert (e.value.line, e.value.col) == at
