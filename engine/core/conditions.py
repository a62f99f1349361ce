"""The safe condition evaluator (section 5 of the process language).

A condition (``if``, ``unless``, ``over_if``, ``break_if``, ``where``...) is
parsed once, when the definition loads, into a ``Condition``; evaluating it
walks pre-built closures. Python's ``eval`` is never involved.

Grammar (lowest precedence first; keywords are case-insensitive)::

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := primary [ OP primary | ["not"] "in" primary
                          | "is" ["not"] ("set" | "empty") ]
    OP         := "==" | "!=" | "<" | ">" | "<=" | ">=" | "=~"
    primary    := "(" or ")" | "[" [primary ("," primary)*] "]" | operand
    operand    := number | "true" | "false" | "null" | "{}" | 'quoted' | "quoted"
                | ${ref} | $f:path | $v:path | bare-word

* ``{}`` is the empty mapping (ruote processes test ``${f:x} != {}``); ``[]``
  the empty list.

* An operand that is exactly one ``${...}`` (or ``$f:x`` / ``$v:x``) is the
  *typed* value it names (string, number, boolean, list, mapping, or
  ``MISSING``): a field's content never changes the condition's syntax.
* A quoted string, or a bare word with other text around a ``${...}``
  (``build-${n}``), is text: its references are substituted as text.
* A bare word is a run of characters other than white space, ``()[],<>``
  and the operators ``==``, ``!=``, ``=~``; ``-3`` and ``1.5e3`` are numbers.
  Regular expressions with parentheses or spaces must be quoted. In quoted
  strings ``\\'``, ``\\"``, ``\\\\``, ``\\n``, ``\\t``, ``\\r`` are escapes;
  any other backslash is kept (``'\\d+'`` is the regex ``\\d+``).

Semantics
---------
* Equality: a number and a string that reads as a number compare as numbers
  (``"10" == 10``); a boolean and the string ``"true"``/``"false"`` (any
  case) compare as booleans; otherwise a boolean equals only a boolean (so
  ``true != 1``); a missing value equals only ``null`` (and another missing
  value); lists and mappings compare element-wise with these rules.
* Ordering (``<``...): numbers (after the same number/string conversion)
  and strings compare; two lists compare as Python lists; anything else is
  false (never an error).
* ``in``: an element of a list (same equality), a key of a mapping, or a
  substring of a string (a number or boolean on the left is its text).
* ``=~``: ``re.search`` of the pattern in the left side's text; a missing
  left side is false. A literal pattern is compiled at parse time (an
  invalid one is a ``ConditionError``); an invalid pattern from data is
  false.
* Truthiness: ``""``, ``false``, ``null``, ``0``, ``[]``, ``{}``,
  ``MISSING`` and the string ``"false"`` (any case) are false.
* ``is set``: not ``MISSING`` (``""`` and ``null`` are set); ``is empty``:
  ``MISSING``, ``null``, ``""``, ``[]`` or ``{}``.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from engine.core.substitution import (
    MISSING,
    Scope,
    find_close,
    interpolate,
    resolve,
    split_ref,
    to_text,
)

__all__ = ["Condition", "ConditionError", "parse_condition"]

Evaluator = Callable[[Scope], Any]


class ConditionError(ValueError):
    """A condition that does not parse.

    ``position`` is the 0-based offset into ``text`` (the column shown is
    ``position + 1``).
    """

    def __init__(self, text: str, position: int, message: str) -> None:
        self.text = text
        self.position = position
        self.message = message
        super().__init__(f'{message} at column {position + 1} in "{text}"')

    @property
    def column(self) -> int:
        return self.position + 1

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.text, self.position, self.message))


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition. Two conditions are equal when their sources are."""

    source: str
    _test: Callable[[Scope], bool] = field(compare=False, repr=False, hash=False)

    def evaluate(self, scope: Scope) -> bool:
        """True when the condition holds in ``scope`` (never raises on data)."""
        return self._test(scope)

    def __str__(self) -> str:
        return self.source


# -- values ------------------------------------------------------------------

_NUMBER_TYPES: Final = frozenset({int, float})
_DATA_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)


def _number(text: str) -> int | float | None:
    """The number a string reads as, or None."""
    text = text.strip()
    if not _DATA_NUMBER.fullmatch(text):
        return None
    try:
        if "." in text or "e" in text or "E" in text:
            return float(text)
        return int(text)
    except ValueError:  # more digits than int() accepts
        return float(text)


def _bool_word(text: str) -> bool | None:
    word = text.strip().lower()
    if word == "true":
        return True
    if word == "false":
        return False
    return None


def _truthy(value: Any) -> bool:
    if value is True:
        return True
    if value is False or value is None or value is MISSING:
        return False
    kind = type(value)
    if kind is str:
        return value != "" and value.strip().lower() != "false"
    if kind is int or kind is float:
        return value != 0
    try:
        return bool(value)
    except Exception:
        return True


def _seq_eq(a: Any, b: Any) -> bool:
    return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b, strict=True))


def _map_eq(a: Mapping[Any, Any], b: Mapping[Any, Any]) -> bool:
    try:
        if a.keys() != b.keys():
            return False
        return all(_eq(a[k], b[k]) for k in a)
    except Exception:
        return False


def _eq(a: Any, b: Any) -> bool:
    kind_a = type(a)
    kind_b = type(b)
    if kind_a is kind_b:
        if kind_a is list or kind_a is tuple:
            return _seq_eq(a, b)
        if kind_a is dict:
            return _map_eq(a, b)
        try:
            return bool(a == b)
        except Exception:
            return False
    if a is MISSING or b is MISSING:
        return a is None or b is None
    if kind_a is bool or kind_b is bool:
        if kind_a is str:
            return _bool_word(a) is b
        if kind_b is str:
            return _bool_word(b) is a
        return False
    if kind_a is str and kind_b in _NUMBER_TYPES:
        number = _number(a)
        return number is not None and number == b
    if kind_b is str and kind_a in _NUMBER_TYPES:
        number = _number(b)
        return number is not None and number == a
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return _seq_eq(a, b)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return _map_eq(a, b)
    try:
        return bool(a == b)
    except Exception:
        return False


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _ordered(a: Any, b: Any, op: Callable[[Any, Any], Any]) -> bool:
    kind_a = type(a)
    kind_b = type(b)
    if kind_a is str and kind_b in _NUMBER_TYPES:
        a = _number(a)
        if a is None:
            return False
        kind_a = type(a)
    elif kind_b is str and kind_a in _NUMBER_TYPES:
        b = _number(b)
        if b is None:
            return False
        kind_b = type(b)
    if (kind_a in _NUMBER_TYPES and kind_b in _NUMBER_TYPES) or (kind_a is str and kind_b is str):
        return bool(op(a, b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        try:
            return bool(op(list(a), list(b)))
        except Exception:
            return False
    return False


def _lt(a: Any, b: Any) -> bool:
    return _ordered(a, b, operator.lt)


def _gt(a: Any, b: Any) -> bool:
    return _ordered(a, b, operator.gt)


def _le(a: Any, b: Any) -> bool:
    return _ordered(a, b, operator.le)


def _ge(a: Any, b: Any) -> bool:
    return _ordered(a, b, operator.ge)


_COMPARATORS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "==": _eq,
    "!=": _ne,
    "<": _lt,
    ">": _gt,
    "<=": _le,
    ">=": _ge,
}


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, list | tuple):
        return any(_eq(item, element) for element in container)
    if isinstance(container, Mapping):
        return any(_eq(item, key) for key in container)
    if isinstance(container, str):
        if isinstance(item, str):
            return item in container
        if isinstance(item, int | float):  # bool included: its text is true/false
            return to_text(item) in container
    return False


def _search(value: Any, pattern: Any) -> bool:
    if value is MISSING or pattern is MISSING:
        return False
    try:
        return re.search(to_text(pattern), to_text(value)) is not None
    except (re.error, RecursionError):
        return False


def _is_empty(value: Any) -> bool:
    if value is MISSING or value is None:
        return True
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) == 0
    return False


# -- tokens ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    #: "(", ")", "[", "]", ",", "op", "kw", "value", "ref", "template", "eof"
    kind: str
    #: the source text of the token
    text: str
    pos: int
    value: Any = None


_KEYWORDS: Final = frozenset({"and", "or", "not", "in", "is"})
_CONSTANTS: Final[dict[str, Any]] = {"true": True, "false": False, "null": None}
_LITERAL_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?", re.ASCII)
_TWO_CHAR_OPERATORS: Final = frozenset({"==", "!=", "<=", ">=", "=~"})
_ESCAPES: Final[dict[str, str]] = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    "'": "'",
    '"': '"',
}
_RAW_REF = re.compile(r"\$([fv]):(\S+)")
_WORD_BREAKS: Final = frozenset("()[],<>")
_HINTS: Final[dict[str, str]] = {
    "=": "did you mean '=='?",
    "!": "use 'not' or '!='",
    "&&": "use 'and'",
    "&": "use 'and'",
    "||": "use 'or'",
    "|": "use 'or'",
}


def _check_refs_closed(text: str, start: int, end: int) -> None:
    """Raise for an unclosed ``${`` in ``text[start:end]``."""
    body = text[start:end]
    at = body.find("${")
    while at >= 0:
        close = find_close(body, at + 2)
        if close < 0:
            raise ConditionError(text, start + at, "unclosed '${'")
        at = body.find("${", close + 1)


def _classify(word: str, pos: int, text: str) -> _Token:
    if word.startswith("${") and find_close(word, 2) == len(word) - 1:
        ref = word[2:-1]
        if "${" not in ref and not split_ref(ref)[1]:
            raise ConditionError(text, pos, f"empty reference {word!r}")
        return _Token("ref", word, pos, ref)
    if word[1:3] in ("f:", "v:") and _RAW_REF.fullmatch(word):
        return _Token("ref", word, pos, word[1:])
    if "${" in word:
        return _Token("template", word, pos, word)
    if word == "{}":  # the empty mapping (ruote's `!= {}`)
        return _Token("value", word, pos, {})
    lower = word.lower()
    if lower in _KEYWORDS:
        return _Token("kw", word, pos, lower)
    if lower in _CONSTANTS:
        return _Token("value", word, pos, _CONSTANTS[lower])
    if _LITERAL_NUMBER.fullmatch(word):
        number = _number(word)
        return _Token("value", word, pos, number)
    return _Token("value", word, pos, word)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()[],":
            tokens.append(_Token(c, c, i))
            i += 1
        elif text[i : i + 2] in _TWO_CHAR_OPERATORS:
            tokens.append(_Token("op", text[i : i + 2], i))
            i += 2
        elif c in "<>":
            tokens.append(_Token("op", c, i))
            i += 1
        elif c in "'\"":
            i = _quoted(text, i, tokens)
        else:
            i = _word(text, i, tokens)
    tokens.append(_Token("eof", "", n))
    return tokens


def _quoted(text: str, start: int, tokens: list[_Token]) -> int:
    quote = text[start]
    chars: list[str] = []
    n = len(text)
    i = start + 1
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            following = text[i + 1]
            chars.append(_ESCAPES.get(following, "\\" + following))
            i += 2
            continue
        if c == quote:
            _check_refs_closed(text, start + 1, i)
            value = "".join(chars)
            kind = "template" if "${" in value else "value"
            tokens.append(_Token(kind, text[start : i + 1], start, value))
            return i + 1
        chars.append(c)
        i += 1
    raise ConditionError(text, start, f"unclosed quote {quote}")


def _word(text: str, start: int, tokens: list[_Token]) -> int:
    n = len(text)
    i = start
    while i < n:
        c = text[i]
        if c == "$" and text.startswith("{", i + 1):
            close = find_close(text, i + 2)
            if close < 0:
                raise ConditionError(text, i, "unclosed '${'")
            i = close + 1
            continue
        if c.isspace() or c in _WORD_BREAKS:
            break
        if c in "=!" and text[i : i + 2] in _TWO_CHAR_OPERATORS:
            break
        i += 1
    tokens.append(_classify(text[start:i], start, text))
    return i


# -- parser ------------------------------------------------------------------


class _Dynamic:
    __slots__ = ()

    def __repr__(self) -> str:
        return "_DYNAMIC"


#: the "constant" of an operand whose value depends on the scope
_DYNAMIC: Final = _Dynamic()

#: an operand: its evaluator, and its value when it is a constant
_Operand = tuple[Evaluator, Any]


def _as_test(fn: Evaluator, boolean: bool) -> Callable[[Scope], bool]:
    if boolean:
        return fn
    return lambda scope: _truthy(fn(scope))


def _any(tests: list[Callable[[Scope], bool]]) -> Callable[[Scope], bool]:
    if len(tests) == 2:
        first, second = tests
        return lambda scope: first(scope) or second(scope)

    def any_of(scope: Scope) -> bool:
        return any(test(scope) for test in tests)

    return any_of


def _all(tests: list[Callable[[Scope], bool]]) -> Callable[[Scope], bool]:
    if len(tests) == 2:
        first, second = tests
        return lambda scope: first(scope) and second(scope)

    def all_of(scope: Scope) -> bool:
        return all(test(scope) for test in tests)

    return all_of


def _constant(value: Any) -> _Operand:
    return (lambda scope: value), value


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    # helpers
    def _peek(self) -> _Token:
        return self.tokens[self.i]

    def _next(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def _at_keyword(self, word: str) -> bool:
        token = self.tokens[self.i]
        return token.kind == "kw" and token.value == word

    def _error(self, pos: int, message: str) -> ConditionError:
        return ConditionError(self.text, pos, message)

    def _expected_operand(self, token: _Token) -> ConditionError:
        previous = self.tokens[self.i - 1] if self.i > 0 else None
        if previous is None:
            if token.kind == "eof":
                return self._error(0, "empty condition")
            return self._error(token.pos, f"expected an operand, found {token.text!r}")
        if token.kind == "eof":
            return self._error(token.pos, f"expected an operand after {previous.text!r}")
        return self._error(
            token.pos, f"expected an operand after {previous.text!r}, found {token.text!r}"
        )

    def _unexpected(self, token: _Token, in_parens: bool) -> ConditionError:
        if token.kind == ")":
            return self._error(token.pos, "unmatched ')'")
        if token.kind == "]":
            return self._error(token.pos, "unmatched ']'")
        if token.kind == ",":
            return self._error(token.pos, "unexpected ',' outside a [...] list")
        hint = _HINTS.get(token.text)
        if hint is not None and token.kind == "value":
            return self._error(token.pos, f"unknown operator {token.text!r}; {hint}")
        wanted = "an operator, 'and', 'or' or ')'" if in_parens else "an operator, 'and' or 'or'"
        return self._error(token.pos, f"expected {wanted} before {token.text!r}")

    # grammar
    def parse(self) -> Callable[[Scope], bool]:
        if self._peek().kind == "eof":
            raise self._error(0, "empty condition")
        fn, boolean = self._or()
        token = self._peek()
        if token.kind != "eof":
            raise self._unexpected(token, in_parens=False)
        return _as_test(fn, boolean)

    def _or(self) -> tuple[Evaluator, bool]:
        fn, boolean = self._and()
        if not self._at_keyword("or"):
            return fn, boolean
        tests = [_as_test(fn, boolean)]
        while self._at_keyword("or"):
            self._next()
            tests.append(_as_test(*self._and()))
        return _any(tests), True

    def _and(self) -> tuple[Evaluator, bool]:
        fn, boolean = self._not()
        if not self._at_keyword("and"):
            return fn, boolean
        tests = [_as_test(fn, boolean)]
        while self._at_keyword("and"):
            self._next()
            tests.append(_as_test(*self._not()))
        return _all(tests), True

    def _not(self) -> tuple[Evaluator, bool]:
        if self._at_keyword("not"):
            self._next()
            inner = _as_test(*self._not())
            return (lambda scope: not inner(scope)), True
        return self._comparison()

    def _comparison(self) -> tuple[Evaluator, bool]:
        left = self._primary()
        token = self._peek()
        if token.kind == "op":
            self._next()
            right_token = self._peek()
            right = self._primary()
            return self._compare(token.text, left, right, right_token), True
        if token.kind == "kw":
            if token.value == "in":
                self._next()
                return self._membership(left, self._primary(), negate=False), True
            if token.value == "not":
                following = self.tokens[self.i + 1]
                if following.kind == "kw" and following.value == "in":
                    self.i += 2
                    return self._membership(left, self._primary(), negate=True), True
                found = following.text or "the end"
                raise self._error(following.pos, f"expected 'in' after 'not', found {found!r}")
            if token.value == "is":
                return self._is(left[0]), True
        return left[0], False

    def _primary(self) -> _Operand:
        token = self._peek()
        kind = token.kind
        if kind == "(":
            self._next()
            fn, _ = self._or()
            close = self._peek()
            if close.kind == ")":
                self._next()
                return fn, _DYNAMIC
            if close.kind == "eof":
                raise self._error(token.pos, "unclosed '('")
            raise self._unexpected(close, in_parens=True)
        if kind == "[":
            return self._list()
        if kind == "value":
            self._next()
            return _constant(token.value)
        if kind == "ref":
            self._next()
            return self._reference(token.value), _DYNAMIC
        if kind == "template":
            self._next()
            template = token.value
            return (lambda scope: interpolate(template, scope)), _DYNAMIC
        raise self._expected_operand(token)

    def _list(self) -> _Operand:
        opening = self._next()
        items: list[_Operand] = []
        if self._peek().kind == "]":
            self._next()
        else:
            while True:
                if self._peek().kind == "eof":
                    raise self._error(opening.pos, "unclosed '['")
                items.append(self._primary())
                token = self._peek()
                if token.kind == ",":
                    self._next()
                    continue
                if token.kind == "]":
                    self._next()
                    break
                if token.kind == "eof":
                    raise self._error(opening.pos, "unclosed '['")
                raise self._error(
                    token.pos, f"expected ',' or ']' in the list, found {token.text!r}"
                )
        if all(constant is not _DYNAMIC for _, constant in items):
            return _constant([constant for _, constant in items])
        fns = [fn for fn, _ in items]
        return (lambda scope: [fn(scope) for fn in fns]), _DYNAMIC

    @staticmethod
    def _reference(ref: str) -> Evaluator:
        if "${" in ref:
            return lambda scope: resolve(ref, scope)
        kind, path = split_ref(ref)
        if kind == "field":
            return lambda scope: scope.field(path)
        if kind == "variable":
            return lambda scope: scope.variable(path)
        return lambda scope: scope.special(path)

    def _compare(
        self, op: str, left: _Operand, right: _Operand, right_token: _Token
    ) -> Callable[[Scope], bool]:
        left_fn = left[0]
        right_fn, right_constant = right
        if op == "=~":
            if right_constant is _DYNAMIC:
                return lambda scope: _search(left_fn(scope), right_fn(scope))
            pattern_text = to_text(right_constant)
            try:
                pattern = re.compile(pattern_text)
            except re.error as exc:
                raise self._error(
                    right_token.pos, f"invalid regular expression {pattern_text!r}: {exc}"
                )
            search = pattern.search

            def matches(scope: Scope) -> bool:
                value = left_fn(scope)
                if value is MISSING:
                    return False
                return search(to_text(value)) is not None

            return matches
        test = _COMPARATORS[op]
        if right_constant is _DYNAMIC:
            return lambda scope: test(left_fn(scope), right_fn(scope))
        return lambda scope: test(left_fn(scope), right_constant)

    @staticmethod
    def _membership(left: _Operand, right: _Operand, negate: bool) -> Callable[[Scope], bool]:
        left_fn = left[0]
        right_fn = right[0]
        if negate:
            return lambda scope: not _contains(right_fn(scope), left_fn(scope))
        return lambda scope: _contains(right_fn(scope), left_fn(scope))

    def _is(self, value: Evaluator) -> Callable[[Scope], bool]:
        self._next()  # 'is'
        negate = False
        if self._at_keyword("not"):
            self._next()
            negate = True
        token = self._peek()
        form = token.text.lower() if token.kind == "value" else ""
        if form not in ("set", "empty"):
            wanted = "expected 'set', 'empty', 'not set' or 'not empty' after 'is'"
            if token.kind == "eof":
                raise self._error(token.pos, wanted)
            raise self._error(token.pos, f"{wanted}, found {token.text!r}")
        self._next()
        if form == "set":
            if negate:
                return lambda scope: value(scope) is MISSING
            return lambda scope: value(scope) is not MISSING
        if negate:
            return lambda scope: not _is_empty(value(scope))
        return lambda scope: _is_empty(value(scope))


# -- public ------------------------------------------------------------------


def _constant_condition(source: str, result: bool) -> Condition:
    return Condition(source, lambda scope: result)


@functools.lru_cache(maxsize=1024)
def _parse_text(text: str) -> Condition:
    return Condition(text, _Parser(text).parse())


def parse_condition(text: str | bool | int | float | None) -> Condition:
    """Parse a condition once (at load time).

    A YAML boolean, number or null gives a constant condition (``null`` and
    ``0`` are false). Raises ``ConditionError`` when ``text`` does not parse.
    """
    if isinstance(text, Condition):
        return text
    if text is None:
        return _constant_condition("null", False)
    if isinstance(text, bool):
        return _constant_condition("true" if text else "false", text)
    if isinstance(text, int | float):
        return _constant_condition(to_text(text), _truthy(text))
    if not isinstance(text, str):
        raise ConditionError(
            repr(text),
            0,
            f"a condition must be text, a boolean or a number, not {type(text).__name__}",
        )
    return _parse_text(text)
