"""Parse the Ruby subset of ruote's process DSL into a tree of calls
(``bossapp.pdef.tree``), keeping every comment and blank line.

A statement is a call ``[Receiver.]name args [do ... end | { ... }]`` whose
arguments are literals (strings, concatenated with ``+``, symbols, numbers,
``true``/``false``/``nil``, arrays and hashes; ``:k => v`` and ``k: v``), with
optional parentheses. Any other statement is Ruby code: it is kept as a
``Stmt`` with ``raw`` set (the translator reports it), skipped up to its end
(its ``do``/``end``, ``if``/``end`` and brackets balanced). Errors
(``PdefSyntaxError``) are for what makes the file unreadable: an unterminated
string, an ``end`` or a closing bracket with nothing to close, a block that
is never closed."""

from __future__ import annotations

from bossapp.pdef.lexer import PdefSyntaxError, Token, tokenize
from bossapp.pdef.tree import BLANK, Block, Comment, Stmt, Value

__all__ = ["PdefSyntaxError", "parse"]

_VALUE_START = ("string", "symbol", "number", "label")
#: Ruby keywords that open a block closed by ``end`` when they start a statement
_OPENERS = frozenset({"if", "unless", "while", "until", "case", "begin", "def", "class", "module"})
_CLOSERS = {")": "(", "]": "[", "}": "{"}


class _NotSubset(Exception):
    """This statement is Ruby outside the subset (caught per statement)."""

    def __init__(self, token: Token, why: str) -> None:
        super().__init__(why)
        self.token = token
        self.why = why


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        self.toks = tokenize(text)
        self.pos = 0
        self.current: Stmt | None = None

    # -- tokens ------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.toks[self.pos]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.pos + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        tok = self.toks[self.pos]
        if tok.kind != "eof":
            self.pos += 1
        return tok

    def xcol(self, line: int, col: int) -> int:
        """The column with tabs expanded (for relative indentation)."""
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return len(text[: col - 1].expandtabs(8)) + 1

    def comment(self, tok: Token) -> Comment:
        return Comment(str(tok.value), tok.line, self.xcol(tok.line, tok.col))

    def skip_space(self) -> None:
        """Skip newlines and comments inside a continued statement; the
        comments go to the statement being parsed."""
        while self.tok.kind in ("nl", "comment"):
            tok = self.advance()
            if tok.kind == "comment" and self.current is not None:
                self.current.inner.append(self.comment(tok))

    # -- statements ----------------------------------------------------------------

    def program(self) -> Block:
        block = self.stmts(None)
        tok = self.tok
        if tok.kind != "eof":
            raise PdefSyntaxError(tok.line, tok.col, f"unexpected {tok.describe()}")
        return block

    def stmts(self, opener: Token | None) -> Block:
        """Statements up to ``end`` (a ``do`` block), ``}`` (a brace block) or
        the end of the file (``opener`` None); the closer is not consumed."""
        block = Block([], opener.line if opener else 1, opener.col if opener else 1)
        pending: list[Comment | None] = []
        closer = None if opener is None else ("end" if opener.value == "do" else "}")
        at_line_start = opener is None  # a block starts at the end of its 'do' line
        while True:
            tok = self.tok
            if tok.kind == "nl":
                self.advance()
                if at_line_start:
                    pending.append(BLANK)
                at_line_start = True
                continue
            if tok.kind == "comment":
                self.advance()
                pending.append(self.comment(tok))
                at_line_start = False
                continue
            if tok.is_op(";"):
                self.advance()
                continue
            if tok.kind == "eof":
                if opener is not None:
                    raise PdefSyntaxError(
                        opener.line,
                        opener.col,
                        f"'{opener.value}' is never closed: expected '{closer}' "
                        "before the end of the file",
                    )
                break
            if tok.is_kw("end") or tok.is_op("}", ")", "]"):
                text = "end" if tok.is_kw("end") else str(tok.value)
                if text != closer:
                    raise PdefSyntaxError(tok.line, tok.col, f"unexpected '{text}'")
                block.end_line = tok.line
                break
            stmt = self.statement()
            stmt.leading = pending
            pending = []
            block.stmts.append(stmt)
            at_line_start = False
            if self.tok.kind == "comment" and self.tok.line == stmt.end_line:
                stmt.trailing = self.comment(self.advance())
        block.end_comments = pending
        return block

    def statement(self) -> Stmt:
        start = self.pos
        tok = self.tok
        stmt = Stmt("", tok.line, tok.col, tok.line, indent=self.xcol(tok.line, tok.col))
        outer, self.current = self.current, stmt
        try:
            self.call(stmt)
        except _NotSubset as e:
            self.pos = start
            stmt.inner.clear()
            stmt.name = str(tok.value) if tok.kind in ("ident", "const") else ""
            stmt.args, stmt.kwargs, stmt.block = [], [], None
            stmt.raw = e.why
            stmt.raw_at = (e.token.line, e.token.col)
            self.skip_statement()
            stmt.end_line = self.toks[self.pos - 1].line if self.pos > start else tok.line
        finally:
            self.current = outer
        return stmt

    def end_of_statement(self) -> bool:
        tok = self.tok
        return tok.kind in ("nl", "comment", "eof") or tok.is_op(";", "}") or tok.is_kw("end")

    def call(self, stmt: Stmt) -> None:
        tok = self.tok
        if tok.kind == "const" and self.peek().is_op(".", "::"):
            stmt.receiver = str(tok.value)
            self.advance()
            self.advance()
            tok = self.tok
        elif tok.kind == "ident" and self.peek().is_op("=") and self.peek(2).kind == "const":
            # pdef = Ruote.process_definition ...: the assignment means nothing here
            self.advance()
            self.advance()
            self.call(stmt)
            return
        if tok.kind != "ident" or tok.value in ("do", "end", "true", "false", "nil"):
            raise _NotSubset(tok, f"{tok.describe()} does not start a call")
        if tok.value in _OPENERS or tok.value in ("for", "return", "yield", "def", "puts"):
            raise _NotSubset(tok, f"a Ruby '{tok.value}'")
        if self.peek().is_op("=", ".") or self.peek().kind == "other":
            raise _NotSubset(self.peek(), f"Ruby {self.peek().describe()} after {tok.describe()}")
        self.advance()
        stmt.name = str(tok.value)
        if self.tok.is_op("(") and not self.tok.space:
            self.advance()
            self.skip_space()
            if not self.tok.is_op(")"):
                self.arguments(stmt, parens=True)
            if not self.tok.is_op(")"):
                raise _NotSubset(self.tok, f"expected ')', found {self.tok.describe()}")
            self.advance()
        elif not self.end_of_statement() and not self.tok.is_kw("do") and not self.tok.is_op("{"):
            self.arguments(stmt, parens=False)
        if self.tok.is_kw("do") or self.tok.is_op("{"):
            opener = self.advance()
            if self.tok.value in ("|", "||"):
                raise _NotSubset(self.tok, "block parameters")
            if self.tok.kind == "comment" and self.tok.line == opener.line:
                stmt.inner.append(self.comment(self.advance()))
            outer, self.current = self.current, None
            try:
                stmt.block = self.stmts(opener)
            finally:
                self.current = outer
            closer = self.advance()
            stmt.block.end_line = closer.line
            stmt.end_line = closer.line
        else:
            stmt.end_line = self.toks[self.pos - 1].line
        if not self.end_of_statement():
            raise _NotSubset(self.tok, f"unexpected {self.tok.describe()} after the call")

    def arguments(self, stmt: Stmt, parens: bool) -> None:
        while True:
            tok = self.tok
            if tok.kind == "label":
                self.advance()
                self.skip_space()
                key = Value("sym", tok.value, tok.line, tok.col, text=str(tok.value))
                stmt.kwargs.append((key, self.value()))
            else:
                value = self.value()
                if self.tok.is_op("=>"):
                    self.advance()
                    self.skip_space()
                    stmt.kwargs.append((value, self.value()))
                elif stmt.kwargs:
                    raise _NotSubset(tok, "a positional argument after a hash argument")
                else:
                    stmt.args.append(value)
            if not self.tok.is_op(","):
                return
            self.advance()
            self.skip_space()
            if parens and self.tok.is_op(")"):
                return

    # -- values --------------------------------------------------------------------

    def value(self) -> Value:
        first = self.primary()
        if not self.tok.is_op("+"):
            return first
        parts = [first]
        while self.tok.is_op("+"):
            self.advance()
            self.skip_space()
            parts.append(self.primary())
        if any(p.kind != "str" for p in parts):
            raise _NotSubset(self.tok, "'+' on something else than strings")
        return Value(
            "str",
            "".join(p.value for p in parts),
            first.line,
            first.col,
            interp=any(p.interp for p in parts),
        )

    def primary(self) -> Value:
        tok = self.tok
        if tok.kind == "string":
            self.advance()
            value = Value("str", tok.value, tok.line, tok.col, interp=tok.interp)
        elif tok.kind == "symbol":
            self.advance()
            value = Value("sym", tok.value, tok.line, tok.col, interp=tok.interp)
        elif tok.kind == "number":
            self.advance()
            value = Value("num", tok.value, tok.line, tok.col)
        elif tok.is_op("-") and self.peek().kind == "number" and not self.peek().space:
            self.advance()
            num = self.advance()
            value = Value("num", -num.value, tok.line, tok.col)  # type: ignore[operator]
        elif tok.is_kw("true", "false"):
            self.advance()
            value = Value("bool", tok.value == "true", tok.line, tok.col)
        elif tok.is_kw("nil"):
            self.advance()
            value = Value("nil", None, tok.line, tok.col)
        elif tok.is_op("["):
            self.advance()
            items: list[Value] = []
            self.skip_space()
            while not self.tok.is_op("]"):
                items.append(self.value())
                self.skip_space()
                if self.tok.is_op(","):
                    self.advance()
                    self.skip_space()
                elif not self.tok.is_op("]"):
                    raise _NotSubset(self.tok, f"expected ',' or ']', found {self.tok.describe()}")
            self.advance()
            value = Value("array", items, tok.line, tok.col)
        elif tok.is_op("{"):
            self.advance()
            pairs: list[tuple[Value, Value]] = []
            self.skip_space()
            while not self.tok.is_op("}"):
                if self.tok.kind == "label":
                    label = self.advance()
                    key = Value("sym", label.value, label.line, label.col)
                else:
                    key = self.value()
                    self.skip_space()
                    if not self.tok.is_op("=>"):
                        raise _NotSubset(self.tok, f"expected '=>', found {self.tok.describe()}")
                    self.advance()
                self.skip_space()
                pairs.append((key, self.value()))
                self.skip_space()
                if self.tok.is_op(","):
                    self.advance()
                    self.skip_space()
                elif not self.tok.is_op("}"):
                    raise _NotSubset(self.tok, f"expected ',' or '}}', found {self.tok.describe()}")
            self.advance()
            value = Value("hash", pairs, tok.line, tok.col)
        elif tok.is_op("("):
            self.advance()
            self.skip_space()
            value = self.value()
            self.skip_space()
            if not self.tok.is_op(")"):
                raise _NotSubset(self.tok, f"expected ')', found {self.tok.describe()}")
            self.advance()
        else:
            raise _NotSubset(tok, f"{tok.describe()} is not a literal")
        if (self.tok.is_op(".", "::", "[") and not self.tok.space) or self.tok.kind == "other":
            raise _NotSubset(self.tok, f"Ruby {self.tok.describe()} after a literal")
        if self.tok.is_op("==", "!=", "=~", "&&", "||", "*", "-", "=", "..", "..."):
            raise _NotSubset(self.tok, f"Ruby operator {self.tok.describe()}")
        return value

    # -- Ruby outside the subset -----------------------------------------------------

    def skip_statement(self) -> None:
        """Skip to the end of this statement, keeping brackets and
        ``do``/``if``/... ``end`` balanced; a closer it did not open ends it
        (it belongs to the enclosing block)."""
        stack: list[Token] = []
        at_start = True
        while True:
            tok = self.tok
            if tok.kind == "eof":
                if stack:
                    opener = stack[-1]
                    raise PdefSyntaxError(
                        opener.line, opener.col, f"'{opener.value}' is never closed"
                    )
                return
            if not stack and (tok.kind == "nl" or tok.is_op(";")):
                prev = self.toks[self.pos - 1] if self.pos else tok
                if tok.kind == "nl" and prev.is_op(",", "+", "=>", "(", "[", "{", "\\", "."):
                    self.advance()
                    continue
                return
            if not stack and tok.kind == "comment":
                return
            if tok.is_kw("end") or tok.is_op(*_CLOSERS):
                if not stack:
                    return
                stack.pop()
            elif (
                tok.is_op("(", "[", "{")
                or tok.is_kw("do")
                or (tok.kind == "ident" and tok.value in _OPENERS and at_start)
            ):
                stack.append(tok)
            at_start = tok.kind == "nl" or tok.is_op(";", "(", "=") or tok.is_kw("do", "then")
            if tok.kind == "ident" and tok.value in ("else", "elsif", "then"):
                at_start = True
            self.advance()


def parse(text: str) -> Block:
    """The statements of a ``.pdef`` text.

    Raises ``PdefSyntaxError`` (line, column, message) when the text cannot
    be read: an unterminated string, an unexpected ``end`` or bracket, a
    block that is never closed."""
    return _Parser(text).program()
