"""Reading and writing files of Eiffel events.

Three layouts are read, told apart by their content:

* a single JSON object (one event),
* a JSON array of events,
* JSON lines: one event per line (blank lines are skipped).

Errors are :class:`EventFileError` naming the file, the line and, where the
JSON parser gives it, the column. Events are returned as parsed; checking
them is ``engine.trace.validate``'s job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["EventFileError", "read_events", "read_file", "write_json", "write_jsonl"]


class EventFileError(ValueError):
    """A file (or text) that is not one of the readable layouts, or holds
    something other than JSON objects."""

    def __init__(self, name: str, line: int | None, column: int | None, reason: str) -> None:
        where = name
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        super().__init__(f"{where}: {reason}")
        self.name = name
        self.line = line
        self.column = column
        self.reason = reason


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _jsonl(text: str, name: str) -> list[dict[str, Any]]:
    events = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EventFileError(name, lineno, exc.colno, f"not JSON: {exc.msg}") from None
        if not isinstance(obj, dict):
            raise EventFileError(
                name, lineno, None, f"not an event (a JSON object) but {type(obj).__name__}"
            )
        events.append(obj)
    return events


def read_events(text: str | bytes, *, name: str = "<text>") -> list[dict[str, Any]]:
    """The events in ``text`` (any of the three layouts); ``name`` is used
    in errors."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise EventFileError(name, None, None, f"not UTF-8 text: {exc}") from None
    text = text.removeprefix("\ufeff")
    stripped = text.lstrip()
    if not stripped:
        return []
    if stripped[0] not in "[{":
        offset = len(text) - len(stripped)
        line = _line_of(text, offset)
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise EventFileError(
            name, line, col, "not JSON events: expected an object, an array or JSON lines"
        )
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if stripped[0] == "{" and exc.msg == "Extra data":
            return _jsonl(text, name)  # several objects: JSON lines
        raise EventFileError(name, exc.lineno, exc.colno, f"not JSON: {exc.msg}") from None
    if isinstance(doc, dict):
        return [doc]
    events = []
    for i, obj in enumerate(doc):
        if not isinstance(obj, dict):
            raise EventFileError(
                name,
                None,
                None,
                f"item {i} of the array is not an event (a JSON object) but {type(obj).__name__}",
            )
        events.append(obj)
    return events


def read_file(path: Path | str) -> list[dict[str, Any]]:
    """The events in the file at ``path`` (any of the three layouts)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise EventFileError(str(p), None, None, f"cannot read: {exc.strerror}") from None
    return read_events(data, name=str(p))


def _write(text: str, path: Path | str | None) -> str:
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def write_json(
    events: Iterable[Mapping[str, Any]], path: Path | str | None = None, *, indent: int | None = 2
) -> str:
    """The events as a JSON array (written to ``path`` too when given)."""
    return _write(json.dumps(list(events), indent=indent, ensure_ascii=False) + "\n", path)


def write_jsonl(events: Iterable[Mapping[str, Any]], path: Path | str | None = None) -> str:
    """The events as JSON lines, compact (written to ``path`` too when
    given)."""
    lines = [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in events]
    return _write("".join(line + "\n" for line in lines), path)
