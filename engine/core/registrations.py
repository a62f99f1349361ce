"""Participant registrations and which one a participant name goes to.

A registration is a name or a regular expression (matched against the whole
participant name) and the queue its workitems go to; the first registered
that matches wins. ``Registrations`` indexes a list once (exact names in a
dict, regexes in order), so matching a name costs a dict lookup plus the
regexes registered before the first exact hit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

__all__ = [
    "InvalidPattern",
    "Registration",
    "Registrations",
    "check_pattern",
    "compiled",
    "looks_like_regex",
    "match_registration",
]

_REGEX_CHARS = frozenset("*+?[](){}|^$\\")  # a lone "." is allowed in plain names


@dataclass(frozen=True, slots=True)
class Registration:
    """A participant registration: a name or a regular expression (matched
    against the whole participant name) and the queue its workitems go to.
    ``options`` carries what the runtime may need later (e.g. ``forget``)."""

    pattern: str
    queue: str
    regex: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def looks_like_regex(pattern: str) -> bool:
    """``build_.*`` is a regex registration, ``alpha`` a name."""
    return any(c in _REGEX_CHARS for c in pattern)


class InvalidPattern(ValueError):
    """A registration's regular expression that does not compile: it would
    match nothing, so it is refused rather than stored."""


def check_pattern(pattern: str, regex: bool) -> None:
    """``InvalidPattern`` (with ``re.error``'s reason and position) when
    ``regex`` and ``pattern`` is not a valid regular expression."""
    if not regex:
        return
    try:
        re.compile(pattern)
    except re.error as exc:
        raise InvalidPattern(f"{pattern!r} is not a valid regular expression: {exc}") from None
    except RecursionError:
        raise InvalidPattern(
            f"{pattern!r} is not a valid regular expression: nested too deeply"
        ) from None


@functools.lru_cache(maxsize=4096)
def compiled(pattern: str) -> re.Pattern[str] | None:
    """``pattern`` compiled, or None when it is not a valid regex (such a
    registration or listener matches nothing)."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


class Registrations(Sequence[Registration]):
    """An ordered, indexed, immutable list of registrations."""

    __slots__ = ("_exact", "_items", "_regexes")

    def __init__(self, items: Iterable[Registration] = ()) -> None:
        self._items: tuple[Registration, ...] = tuple(items)
        self._exact: dict[str, int] = {}
        self._regexes: list[tuple[int, re.Pattern[str]]] = []
        for pos, reg in enumerate(self._items):
            if reg.regex:
                rx = compiled(reg.pattern)
                if rx is not None:
                    self._regexes.append((pos, rx))
            else:
                self._exact.setdefault(reg.pattern, pos)

    @overload
    def __getitem__(self, i: int) -> Registration: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[Registration, ...]: ...
    def __getitem__(self, i: int | slice) -> Registration | tuple[Registration, ...]:
        return self._items[i]

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Registrations):
            return self._items == other._items
        if isinstance(other, list | tuple):
            return list(self._items) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Registrations({list(self._items)!r})"

    def match(self, name: str) -> Registration | None:
        """The first registration whose name equals, or whose regex fully
        matches, ``name``."""
        best = self._exact.get(name)
        for pos, rx in self._regexes:
            if best is not None and pos > best:
                break
            if rx.fullmatch(name):
                best = pos
                break
        return None if best is None else self._items[best]


def match_registration(name: str, registrations: Iterable[Registration]) -> Registration | None:
    """The first registration in ``registrations`` that takes ``name``."""
    if not isinstance(registrations, Registrations):
        registrations = Registrations(registrations)
    return registrations.match(name)
