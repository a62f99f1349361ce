"""Tokens of the Ruby subset ruote's process DSL is written in.

The lexer never fails on Ruby it does not understand (``other`` tokens): the
parser turns such statements into "not translated" notes. Its only errors are
an unterminated string and an unterminated ``#{...}``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PdefSyntaxError", "Token", "tokenize"]

KEYWORDS = frozenset({"do", "end", "true", "false", "nil"})

_OPS = ("**", "=>", "::", "==", "!=", "=~", "<=", ">=", "&&", "||", "->", "...", "..")
_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "s": " ",
    "e": "\x1b",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "0": "\0",
}


class PdefSyntaxError(Exception):
    """A file that cannot be read as the subset: ``line``/``col`` are 1-based."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(f"{line}:{col}: {message}")
        self.line = line
        self.col = col
        self.message = message

    def where(self, filename: str) -> str:
        return f"{filename}:{self.line}:{self.col}: {self.message}"


@dataclass
class Token:
    """``kind``: ``ident``, ``const``, ``label`` (``key:``), ``symbol``,
    ``string``, ``number``, ``op``, ``nl``, ``comment``, ``other``, ``eof``.
    ``value`` is the decoded value (the string's text, the symbol's name);
    ``interp`` marks a double-quoted string with an interpolation; ``space``
    says white space came before it; ``start``/``end`` are offsets."""

    kind: str
    value: object
    line: int
    col: int
    start: int
    end: int
    space: bool = False
    interp: bool = False

    def is_op(self, *ops: str) -> bool:
        return self.kind == "op" and self.value in ops

    def is_kw(self, *words: str) -> bool:
        return self.kind == "ident" and self.value in words

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of file"
        if self.kind == "nl":
            return "end of line"
        if self.kind in ("string", "symbol"):
            return self.kind
        return repr(str(self.value))


def _ident_char(c: str) -> bool:
    return c.isalnum() or c == "_"


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1
        self.line_start = 0
        self.tokens: list[Token] = []
        self.space = False

    def col(self, pos: int | None = None) -> int:
        return (self.i if pos is None else pos) - self.line_start + 1

    def add(self, kind: str, value: object, start: int, line: int, col: int, **kw: bool) -> None:
        self.tokens.append(Token(kind, value, line, col, start, self.i, self.space, **kw))
        self.space = False

    def newline(self) -> None:
        self.line += 1
        self.line_start = self.i

    def run(self) -> list[Token]:
        t = self.text
        n = len(t)
        while self.i < n:
            c = t[self.i]
            start, line, col = self.i, self.line, self.col()
            if c in " \t\r\f\v":
                self.i += 1
                self.space = True
            elif c == "\\" and t[self.i + 1 : self.i + 2] == "\n":
                self.i += 2
                self.newline()
                self.space = True
            elif c == "\n":
                self.i += 1
                self.add("nl", "\n", start, line, col)
                self.newline()
            elif c == "#":
                end = t.find("\n", self.i)
                end = n if end < 0 else end
                self.i = end
                self.add("comment", t[start + 1 : end].rstrip(), start, line, col)
            elif c == "'":
                self.add("string", self.single(), start, line, col)
            elif c == '"':
                value, interp = self.double()
                self.add("string", value, start, line, col, interp=interp)
            elif c.isdigit():
                self.number(start, line, col)
            elif c == ":" and t[self.i + 1 : self.i + 2] == ":":
                self.i += 2
                self.add("op", "::", start, line, col)
            elif c == ":" and (
                self.i + 1 < n and (t[self.i + 1].isalpha() or t[self.i + 1] == "_")
            ):
                self.i += 1
                while self.i < n and _ident_char(t[self.i]):
                    self.i += 1
                if self.i < n and t[self.i] in "?!=" and t[self.i + 1 : self.i + 2] != ">":
                    self.i += 1
                self.add("symbol", t[start + 1 : self.i], start, line, col)
            elif c == ":" and t[self.i + 1 : self.i + 2] in ("'", '"'):
                self.i += 1
                if t[self.i] == "'":
                    value: object = self.single()
                    self.add("symbol", value, start, line, col)
                else:
                    value, interp = self.double()
                    self.add("symbol", value, start, line, col, interp=interp)
            elif c.isalpha() or c == "_":
                while self.i < n and _ident_char(t[self.i]):
                    self.i += 1
                if self.i < n and t[self.i] in "?!" and t[self.i + 1 : self.i + 2] != "=":
                    self.i += 1
                word = t[start : self.i]
                if (
                    t[self.i : self.i + 1] == ":"
                    and t[self.i + 1 : self.i + 2] != ":"
                    and word not in KEYWORDS
                ):
                    self.i += 1
                    self.add("label", word, start, line, col)
                else:
                    self.add("const" if word[0].isupper() else "ident", word, start, line, col)
            else:
                for op in _OPS:
                    if t.startswith(op, self.i):
                        self.i += len(op)
                        self.add("op", op, start, line, col)
                        break
                else:
                    self.i += 1
                    kind = "op" if c in "(){}[],.+-;=" else "other"
                    self.add(kind, c, start, line, col)
        self.add("eof", "", self.i, self.line, self.col())
        return self.tokens

    def number(self, start: int, line: int, col: int) -> None:
        t = self.text
        while self.i < len(t) and (t[self.i].isdigit() or t[self.i] == "_"):
            self.i += 1
        is_float = False
        if t[self.i : self.i + 1] == "." and t[self.i + 1 : self.i + 2].isdigit():
            is_float = True
            self.i += 1
            while self.i < len(t) and (t[self.i].isdigit() or t[self.i] == "_"):
                self.i += 1
        if t[self.i : self.i + 1] in ("e", "E") and (
            t[self.i + 1 : self.i + 2].isdigit()
            or (t[self.i + 1 : self.i + 2] in ("+", "-") and t[self.i + 2 : self.i + 3].isdigit())
        ):
            is_float = True
            self.i += 2
            while self.i < len(t) and t[self.i].isdigit():
                self.i += 1
        if self.i < len(t) and (t[self.i].isalpha() or t[self.i] == "_"):
            # 0x1f, 1r and friends: not in the subset
            while self.i < len(t) and _ident_char(t[self.i]):
                self.i += 1
            self.add("other", t[start : self.i], start, line, col)
            return
        text = t[start : self.i].replace("_", "")
        self.add("number", float(text) if is_float else int(text), start, line, col)

    def single(self) -> str:
        """A '...' string: only \\' and \\\\ are escapes."""
        t = self.text
        line, col = self.line, self.col()
        self.i += 1
        out: list[str] = []
        while self.i < len(t):
            c = t[self.i]
            if c == "\\" and t[self.i + 1 : self.i + 2] in ("'", "\\"):
                out.append(t[self.i + 1])
                self.i += 2
                continue
            self.i += 1
            if c == "'":
                return "".join(out)
            if c == "\n":
                self.newline()
            out.append(c)
        raise PdefSyntaxError(line, col, "unterminated string")

    def double(self) -> tuple[str, bool]:
        """A "..." string with Ruby's escapes; (text, has an interpolation)."""
        t = self.text
        line, col = self.line, self.col()
        self.i += 1
        out: list[str] = []
        interp = False
        while self.i < len(t):
            c = t[self.i]
            if c == '"':
                self.i += 1
                return "".join(out), interp
            if c == "\\" and self.i + 1 < len(t):
                self.i += 1
                out.append(self.escape())
                continue
            if c == "#" and t[self.i + 1 : self.i + 2] in ("{", "$", "@"):
                interp = True
                if t[self.i + 1] == "{":
                    self.interpolation(out)
                    continue
            self.i += 1
            if c == "\n":
                self.newline()
            out.append(c)
        raise PdefSyntaxError(line, col, "unterminated string")

    def interpolation(self, out: list[str]) -> None:
        t = self.text
        line, col = self.line, self.col()
        start = self.i
        depth = 0
        while self.i < len(t):
            c = t[self.i]
            self.i += 1
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    out.append(t[start : self.i])
                    return
            elif c == "\n":
                self.newline()
        raise PdefSyntaxError(line, col, "unterminated '#{' interpolation")

    def escape(self) -> str:
        t = self.text
        c = t[self.i]
        self.i += 1
        if c in _SIMPLE_ESCAPES and not (c == "0" and t[self.i : self.i + 1].isdigit()):
            return _SIMPLE_ESCAPES[c]
        if c == "\n":  # a backslash-newline joins the lines
            self.newline()
            return ""
        if c in "01234567":
            digits = c
            while len(digits) < 3 and t[self.i : self.i + 1] in tuple("01234567"):
                digits += t[self.i]
                self.i += 1
            return chr(int(digits, 8))
        if c == "x":
            digits = ""
            while len(digits) < 2 and t[self.i : self.i + 1].lower() in tuple("0123456789abcdef"):
                digits += t[self.i]
                self.i += 1
            return chr(int(digits, 16)) if digits else "x"
        if c == "u":
            if t[self.i : self.i + 1] == "{":
                end = t.find("}", self.i)
                if end > 0:
                    codes = t[self.i + 1 : end].split()
                    self.i = end + 1
                    try:
                        return "".join(chr(int(code, 16)) for code in codes)
                    except ValueError:
                        return ""
            digits = t[self.i : self.i + 4]
            try:
                value = chr(int(digits, 16))
            except ValueError:
                return "u"
            self.i += 4
            return value
        return c  # \" \\ \# \' and any other character stand for themselves


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an ``eof`` token.

    Raises ``PdefSyntaxError`` for an unterminated string."""
    return _Lexer(text).run()
