"""Write the translator's YAML tree (``bossapp.pdef.ytree``) as text, with its
comments. Block style for steps; flow style (``{k: v}``, ``[a, b]``) for
parameter mappings and lists that fit on a line. Strings are written plain
only when both YAML 1.2 (our loader) and YAML 1.1 (other tools) read them
back as the same string; otherwise quoted (single quotes when the text holds
double quotes, else double quotes with JSON-compatible escapes)."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from bossapp.pdef.ytree import Before, Entry, Item, YMap, YSeq

__all__ = ["emit", "scalar"]

WIDTH = 100

_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ ./-]*")
# what YAML 1.2's core schema reads as something else than a string
_Y12_NOT_STR = re.compile(
    r"(?i:true|false)|~|null|Null|NULL|[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)


def _plain_ok(text: str, key: bool = False) -> bool:
    if not _PLAIN.fullmatch(text) or text.endswith(" ") or "  " in text:
        return False
    if _Y12_NOT_STR.fullmatch(text):
        return False
    if key and text == "on":  # an ordinary key in YAML 1.2 (iterator's `on`)
        return True
    try:
        return yaml.safe_load(text) == text
    except yaml.YAMLError:
        return False


def scalar(value: Any, key: bool = False) -> str:
    """One scalar as YAML text."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _plain_ok(text, key):
        return text
    if '"' in text and "'" not in text and text.isprintable():
        return "'" + text + "'"
    return json.dumps(text, ensure_ascii=False)


def _flow(value: Any) -> str | None:
    """``value`` in flow style, or None when it holds comments or steps."""
    if isinstance(value, YSeq):
        return "[]" if not value.items and not value.end else None
    if isinstance(value, YMap):
        if value.end or any(e.before or e.trailing for e in value.entries):
            return None
        parts = []
        for e in value.entries:
            text = _flow(e.value)
            if text is None:
                return None
            parts.append(f"{scalar(e.key, key=True)}: {text}")
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            text = _flow(v)
            if text is None:
                return None
            parts.append(f"{scalar(k, key=True)}: {text}")
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, list):
        texts = [_flow(v) for v in value]
        if any(t is None for t in texts):
            return None
        return "[" + ", ".join(t for t in texts if t is not None) + "]"
    if isinstance(value, Item):
        return None
    return scalar(value)


class _Writer:
    def __init__(self) -> None:
        self.out: list[str] = []

    def line(self, text: str) -> None:
        self.out.append(text.rstrip())

    def before(self, before: Before, indent: int) -> None:
        for note in before:
            if note is None:
                if self.out and self.out[-1] != "":
                    self.out.append("")
            else:
                pad = " " * (indent + note.offset)
                self.out.append(f"{pad}#{note.text}".rstrip())

    def entries(self, entries: list[Entry], indent: int, first_prefix: str | None = None) -> None:
        """Mapping entries at ``indent``; the first line of the first entry
        gets ``first_prefix`` (``"- "`` for a step) in place of its indentation."""
        for i, entry in enumerate(entries):
            prefix = " " * indent
            if i == 0 and first_prefix is not None:
                prefix = " " * (indent - len(first_prefix)) + first_prefix
                self.before(entry.before, indent - len(first_prefix))
            else:
                self.before(entry.before, indent)
            self.entry(entry, indent, prefix)

    def entry(self, entry: Entry, indent: int, prefix: str) -> None:
        head = f"{prefix}{scalar(entry.key, key=True)}:"
        tail = f"  #{entry.trailing}" if entry.trailing is not None else ""
        value = entry.value
        if value is None:
            self.line(head + tail)
            return
        if isinstance(value, YSeq) and not value.items:  # only comments: still a list
            self.line(f"{head} []{tail}")
            self.before(value.end, indent + 2)
            return
        flow = _flow(value)
        scalar_value = not isinstance(value, YMap | YSeq | dict | list)
        if flow is not None and (scalar_value or len(head) + 1 + len(flow) <= WIDTH):
            self.line(f"{head} {flow}{tail}")
            return
        self.line(head + tail)
        self.block(value, indent + 2)

    def block(self, value: Any, indent: int) -> None:
        if isinstance(value, YSeq):
            for item in value.items:
                self.item(item, indent)
            self.before(value.end, indent)
        elif isinstance(value, YMap):
            self.entries(value.entries, indent)
            self.before(value.end, indent)
        elif isinstance(value, dict):
            self.entries([Entry(str(k), v) for k, v in value.items()], indent)
        elif isinstance(value, list):
            for v in value:
                self.item(Item(v), indent)
        else:  # pragma: no cover -- scalars are always flow
            self.line(" " * indent + scalar(value))

    def item(self, item: Item, indent: int) -> None:
        self.before(item.before, indent)
        tail = f"  #{item.trailing}" if item.trailing is not None else ""
        value = item.value
        pad = " " * indent
        if isinstance(value, YMap | dict) and (value.entries if isinstance(value, YMap) else value):
            entries = (
                value.entries
                if isinstance(value, YMap)
                else [Entry(str(k), v) for k, v in value.items()]
            )
            if tail:
                entries = list(entries)
                first = entries[0]
                entries[0] = Entry(first.key, first.value, first.before, item.trailing)
            self.entries(entries, indent + 2, first_prefix="- ")
            if isinstance(value, YMap):
                self.before(value.end, indent + 2)
            return
        flow = _flow(value)
        if flow is None:  # a list of lists: not written by the translator
            self.line(f"{pad}-{tail}")
            self.block(value, indent + 2)
            return
        self.line(f"{pad}- {flow}{tail}")


def emit(doc: YMap) -> str:
    """The YAML text of a definition (top-level mapping ``doc``)."""
    w = _Writer()
    w.entries(doc.entries, 0)
    w.before(doc.end, 0)
    while w.out and w.out[-1] == "":
        w.out.pop()
    while w.out and w.out[0] == "":
        w.out.pop(0)
    return "\n".join(w.out) + "\n"
