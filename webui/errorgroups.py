"""Errors grouped by cause: the error class and a *normalised* message.

One root cause fails many runs with messages that differ only by what they
name: a run id, a request number, a host and port, a path, a quoted name.
``normalise`` replaces those by placeholders (``<wfid>``, ``<n>``,
``<host:port>``, ``<path>``, ``'<str>'``, ...) so such messages share one
*template*; ``group_errors`` groups error records (as ``Engine.list_errors``
gives them) by class and template, newest group first, with a few real
messages as examples, the participants and processes involved and a
preview of the traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["group_errors", "normalise", "traceback_preview"]

#: how long a template may be (the rest of a long message is not compared)
MAX_TEMPLATE = 300

_RULES: list[tuple[re.Pattern[str], str]] = [
    # quoted strings first: what is inside is a name, whatever it looks like
    (re.compile(r"'[^'\n]{0,200}'"), "'<str>'"),
    (re.compile(r'"[^"\n]{0,200}"'), '"<str>"'),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>)]+", re.I), "<url>"),
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I),
        "<uuid>",
    ),
    # absolute paths (two parts at least: "/" alone or "a/b" are words)
    (re.compile(r"(?<![\w.~])(?:~|\.{1,2})?(?:/[\w.@%+~-]+){2,}/?"), "<path>"),
    # a run id (``engine.new_wfid``: 20261121-abcd1234ef01), maybe with a step
    (re.compile(r"\b\d{8}-[0-9a-f]{6,32}(?::[\w.-]+)*", re.I), "<wfid>"),
    # an e-mail address
    (re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"), "<email>"),
    # host:port (a name or an address), IPv4 addresses
    (
        re.compile(
            r"\b(?:\d{1,3}(?:\.\d{1,3}){3}|localhost|[a-z0-9-]+(?:\.[a-z0-9-]+)+):\d{1,5}\b",
            re.I,
        ),
        "<host:port>",
    ),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<ip>"),
    # hex ids: commit shas, digests, object ids (with a digit: not a word)
    (re.compile(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,64}\b", re.I), "<hex>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    # numbers last: what is left of counts, ids, sizes, durations, versions
    (re.compile(r"(?<![\w<.])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?"), "<n>"),
]
_SPACE = re.compile(r"\s+")


def normalise(message: str) -> str:
    """The message's template: its first non-empty line with ids, numbers,
    quoted strings, paths, URLs and host:port replaced by placeholders."""
    line = next((x for x in str(message or "").splitlines() if x.strip()), "")
    for pattern, placeholder in _RULES:
        line = pattern.sub(placeholder, line)
    line = _SPACE.sub(" ", line).strip()
    return line[:MAX_TEMPLATE]


def traceback_preview(text: str | None, head: int = 2, tail: int = 3) -> dict[str, Any] | None:
    """The first ``head`` and last ``tail`` lines of a traceback, and
    whether lines were left out between them (None without a traceback)."""
    if not text:
        return None
    lines = [x for x in str(text).rstrip().splitlines() if x.strip()]
    if len(lines) <= head + tail:
        return {"head": lines, "tail": [], "omitted": 0, "full": str(text).rstrip()}
    return {
        "head": lines[:head],
        "tail": lines[-tail:],
        "omitted": len(lines) - head - tail,
        "full": str(text).rstrip(),
    }


def group_errors(
    errors: Iterable[dict[str, Any]],
    *,
    process_of: Callable[[str], str | None] | None = None,
    examples: int = 3,
) -> list[dict[str, Any]]:
    """Error records grouped by ``(class, normalise(message))``: biggest
    group first (then newest). Each group: ``key`` (a stable id for the
    page), ``cls``, ``template``, ``message`` (``class: template``),
    ``examples`` (distinct real messages), ``count``, ``newest``,
    ``participants``, ``processes`` (by ``process_of(wfid)``), ``traceback``
    (a preview of the newest error's) and ``errors`` (``wfid``, ``error_id``,
    ``expid``, ``participant``, ``message``, ``at``)."""
    import hashlib

    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for e in errors:
        cls = str(e.get("class") or "Error")
        message = str(e.get("message") or "")
        template = normalise(message)
        g = groups.get((cls, template))
        if g is None:
            digest = hashlib.sha1(f"{cls}\0{template}".encode()).hexdigest()[:12]
            g = groups[(cls, template)] = {
                "key": f"g{digest}",
                "cls": cls,
                "template": template,
                "message": f"{cls}: {template}",
                "examples": [],
                "count": 0,
                "newest": "",
                "participants": [],
                "processes": [],
                "traceback": None,
                "errors": [],
            }
        who = e.get("participant") or e.get("name") or e.get("expid") or "?"
        at = str(e.get("at") or "")
        g["count"] += 1
        if message not in g["examples"] and len(g["examples"]) < examples:
            g["examples"].append(message)
        if who not in g["participants"]:
            g["participants"].append(who)
        if process_of is not None:
            name = process_of(str(e.get("wfid")))
            if name and name not in g["processes"]:
                g["processes"].append(name)
        if at >= g["newest"]:
            g["newest"] = at
            tb = traceback_preview(e.get("traceback"))
            if tb is not None or g["traceback"] is None:
                g["traceback"] = tb
        g["errors"].append(
            {
                "wfid": e.get("wfid"),
                "error_id": e.get("id"),
                "expid": e.get("expid"),
                "participant": who,
                "message": message,
                "at": e.get("at"),
            }
        )
    for g in groups.values():
        g["errors"].sort(key=lambda x: str(x["at"] or ""), reverse=True)
    return sorted(groups.values(), key=lambda g: (-g["count"], _neg(g["newest"])))


def _neg(iso: str) -> tuple[int, ...]:
    """A sort key putting newer ISO times first."""
    return tuple(-ord(c) for c in iso)
