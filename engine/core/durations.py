"""Durations and times of the process language (section 4).

``parse_duration`` reads a ``timeout``, a ``wait`` or a ``retry`` delay:
a number (decimals allowed) with a unit ``ms``, ``s``, ``m``, ``h``, ``d``
or ``w``, or a sum of them (``500ms``, ``0.3s``, ``5m``, ``1h30m``,
``1h 30m``); a bare number is seconds. ``parse_time`` reads the ISO 8601
time of ``wait: {until: ...}``.

Units are lower case only (``5M`` is an error rather than a guess between
minutes and months). Both functions raise ``DurationError`` (a
``ValueError``) naming the bad input and what was expected.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

__all__ = ["UNITS", "DurationError", "parse_duration", "parse_time"]


class DurationError(ValueError):
    """A duration or a time that does not parse."""


#: seconds per unit
UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}

_EXPECTED = (
    "expected a number of seconds, or numbers with a unit ms, s, m, h, d or w "
    "(e.g. '500ms', '0.3s', '5m', '1h30m')"
)
_NUM = r"(?:\d+(?:\.\d*)?|\.\d+)"
# 'ms' before 'm' so that '500ms' is not read as 500 minutes and a stray 's'
_PART = re.compile(rf"\s*({_NUM})\s*(ms|s|m|h|d|w)(?![A-Za-z])", re.ASCII)
_BARE = re.compile(rf"\s*({_NUM})\s*", re.ASCII)
_NUMBER_PREFIX = re.compile(rf"\s*{_NUM}", re.ASCII)


def _error(value: object, detail: str = "") -> DurationError:
    what = f"invalid duration {value!r}"
    if detail:
        what += f" ({detail})"
    return DurationError(f"{what}: {_EXPECTED}")


def _check(value: object, seconds: float) -> float:
    if not math.isfinite(seconds):
        raise _error(value, "not a finite number")
    return seconds


def parse_duration(value: str | int | float) -> float:
    """The duration ``value`` names, in seconds (a float).

    >>> parse_duration("1h30m")
    5400.0
    >>> parse_duration("500ms")
    0.5
    >>> parse_duration(10)
    10.0
    """
    if isinstance(value, bool):
        raise _error(value, "a boolean is not a duration")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise _error(value, "not a finite number")
        if value < 0:
            raise _error(value, "negative")
        return _check(value, float(value))
    if not isinstance(value, str):
        raise _error(value, f"a {type(value).__name__} is not a duration")
    if not value.strip():
        raise _error(value, "empty")
    if value.lstrip().startswith("-"):
        raise _error(value, "negative")

    bare = _BARE.fullmatch(value)
    if bare:
        return _check(value, float(bare.group(1)))

    total = 0.0
    pos = 0
    end = len(value.rstrip())
    while pos < end:
        part = _PART.match(value, pos)
        if part is None:
            rest = value[pos:end].strip()
            number = _NUMBER_PREFIX.match(value, pos)
            if number is not None and number.end() == end:
                detail = f"{rest!r} has no unit"
            elif number is None:
                detail = f"expected a number at {rest!r}"
            else:
                detail = f"unknown unit in {rest!r}"
            raise _error(value, detail)
        total += float(part.group(1)) * UNITS[part.group(2)]
        pos = part.end()
    return _check(value, total)


def parse_time(value: str) -> float:
    """The ISO 8601 time ``value`` names, as epoch seconds.

    A time without an offset is UTC; a date alone is midnight UTC.

    >>> parse_time("2026-11-21T10:00:00Z")
    1795255200.0
    """
    expected = "expected an ISO 8601 time such as '2026-11-21T10:00:00Z'"
    if not isinstance(value, str):
        raise DurationError(f"invalid time {value!r}: {expected}")
    text = value.strip()
    if text[-1:] == "z":
        text = text[:-1] + "Z"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DurationError(f"invalid time {value!r}: {expected}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
