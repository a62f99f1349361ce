"""The parse tree of a ruote process definition (``.pdef``): calls with their
arguments, blocks and the comments around them. Positions are 1-based."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Comment:
    """A ``#`` comment: ``text`` is what follows the ``#``; ``col`` is the
    column of the ``#`` with tabs expanded (``None`` for a blank line)."""

    text: str
    line: int
    col: int


#: a blank line in a list of leading comments
BLANK = None


@dataclass
class Value:
    """A literal argument: ``kind`` is ``str``, ``sym``, ``num``, ``bool``,
    ``nil``, ``array``, ``hash`` or ``ruby`` (anything else: Ruby code).
    ``interp`` marks a double-quoted string holding ``#{...}``."""

    kind: str
    value: Any
    line: int
    col: int
    interp: bool = False
    text: str = ""


@dataclass
class Block:
    """The statements of a ``do ... end`` (or ``{ ... }``) block; ``end_comments``
    are the comments (and blank lines) after its last statement."""

    stmts: list[Stmt]
    line: int
    col: int
    end_line: int = 0
    end_comments: list[Comment | None] = field(default_factory=list)


@dataclass
class Stmt:
    """A statement: a call (``raw`` is empty) or Ruby code outside the subset
    (``raw`` says why). ``line``..``end_line`` are its source lines."""

    name: str
    line: int
    col: int
    end_line: int
    receiver: str | None = None
    args: list[Value] = field(default_factory=list)
    kwargs: list[tuple[Value, Value]] = field(default_factory=list)
    block: Block | None = None
    raw: str = ""
    raw_at: tuple[int, int] = (0, 0)
    leading: list[Comment | None] = field(default_factory=list)
    inner: list[Comment] = field(default_factory=list)
    trailing: Comment | None = None
    indent: int = 0

    @property
    def is_call(self) -> bool:
        return not self.raw
