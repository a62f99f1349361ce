"""The YAML the translator builds and the emitter writes: mappings and step
lists whose entries carry the comments (and blank lines) that go before them
and the comment that goes after their first line. Leaves are plain Python
values (strings, numbers, booleans, ``None``, lists and dicts of them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Note:
    """A comment line: ``text`` follows the ``#``; ``offset`` is extra
    indentation (the comment's indentation relative to its statement's)."""

    text: str
    offset: int = 0


#: a blank line among the comments before an entry
BLANK_LINE = None

Before = list[Note | None]


@dataclass
class Item:
    """One step of a step list."""

    value: Any
    before: Before = field(default_factory=list)
    trailing: str | None = None


@dataclass
class YSeq:
    """A list of steps (always written in block style)."""

    items: list[Item] = field(default_factory=list)
    end: Before = field(default_factory=list)


@dataclass
class Entry:
    key: str
    value: Any
    before: Before = field(default_factory=list)
    trailing: str | None = None


@dataclass
class YMap:
    """A mapping; written in flow style (``{a: b}``) when it holds only plain
    values, has no comments and fits on a line."""

    entries: list[Entry] = field(default_factory=list)
    end: Before = field(default_factory=list)

    def get(self, key: str) -> Any:
        for entry in self.entries:
            if entry.key == key:
                return entry.value
        return None

    def keys(self) -> list[str]:
        return [e.key for e in self.entries]


def plain(value: Any) -> Any:
    """The value as plain Python data (comments dropped)."""
    if isinstance(value, YMap):
        return {e.key: plain(e.value) for e in value.entries}
    if isinstance(value, YSeq):
        return [plain(i.value) for i in value.items]
    if isinstance(value, Item):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
