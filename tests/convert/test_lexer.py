"""The lexer: Ruby's strings, symbols, labels, numbers and comments."""

from __future__ import annotations

import pytest

from bossapp.pdef.lexer import PdefSyntaxError, tokenize


def kinds(text: str) -> list[tuple[str, object]]:
    return [(t.kind, t.value) for t in tokenize(text) if t.kind != "eof"]


def test_a_call_with_a_ruote_hash() -> None:
    assert kinds("set :f => 'x', :val => 1") == [
        ("ident", "set"),
        ("symbol", "f"),
        ("op", "=>"),
        ("string", "x"),
        ("op", ","),
        ("symbol", "val"),
        ("op", "=>"),
        ("number", 1),
    ]


def test_single_quoted_strings_keep_backslashes_but_for_quote_and_backslash() -> None:
    (tok, _) = tokenize(r"'a\'b\\c\nd'")
    assert tok.value == "a'b\\c\\nd"
    assert not tok.interp


def test_double_quoted_strings_decode_ruby_escapes() -> None:
    (tok, _) = tokenize(r'"a\tb\"c\\d\u00e9\x41\e\s"')
    assert tok.value == 'a\tb"c\\d\u00e9A\x1b '
    assert not tok.interp


def test_an_interpolation_is_marked_an_escaped_one_is_text() -> None:
    (tok, _) = tokenize('"hi #{name}!"')
    assert tok.interp and tok.value == "hi #{name}!"
    (tok, _) = tokenize(r'"hi \#{name}"')
    assert not tok.interp and tok.value == "hi #{name}"
    (tok, _) = tokenize('"hi #$global"')
    assert tok.interp


def test_ruote_substitutions_in_double_quotes_are_not_interpolations() -> None:
    (tok, _) = tokenize('"${ev.id} $f:emails"')
    assert not tok.interp and tok.value == "${ev.id} $f:emails"


def test_symbols_labels_and_scope() -> None:
    assert kinds('Ruote::define to: :errors, :"a b" => nil') == [
        ("const", "Ruote"),
        ("op", "::"),
        ("ident", "define"),
        ("label", "to"),
        ("symbol", "errors"),
        ("op", ","),
        ("symbol", "a b"),
        ("op", "=>"),
        ("ident", "nil"),
    ]


def test_numbers() -> None:
    assert kinds("1 2.5 1_000 3e2") == [
        ("number", 1),
        ("number", 2.5),
        ("number", 1000),
        ("number", 300.0),
    ]


def test_comments_and_positions_with_tabs() -> None:
    toks = tokenize("\talpha # note\n# whole\n")
    alpha, comment, nl, whole, _, _ = toks
    assert (alpha.line, alpha.col) == (1, 2)
    assert comment.kind == "comment" and comment.value == " note"
    assert nl.kind == "nl"
    assert (whole.line, whole.col, whole.value) == (2, 1, " whole")


def test_backslash_newline_continues_the_line() -> None:
    assert [k for k, _ in kinds("alpha \\\n  :a => 1")] == ["ident", "symbol", "op", "number"]


@pytest.mark.parametrize(
    ("text", "where"),
    [("x 'abc\n", (1, 3)), ('x "abc\n\n', (1, 3)), ('\n  x "#{a"', (2, 6))],
)
def test_unterminated_strings_name_where_they_start(text: str, where: tuple[int, int]) -> None:
    with pytest.raises(PdefSyntaxError) as e:
        tokenize(text)
    assert (e.value.line, e.value.col) == where
    assert "unterminated" in e.value.message
    assert e.value.where("X.pdef").startswith(f"X.pdef:{where[0]}:{where[1]}: unterminated")
