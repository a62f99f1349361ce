"""engine.core.durations: durations (section 4) and ISO 8601 times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.core.durations import DurationError, parse_duration, parse_time


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("1ms", 0.001),
        ("0.3s", 0.3),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("1w2d3h4m5s6ms", 604800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5 + 0.006),
        ("1m500ms", 60.5),
        ("  5m  ", 300.0),
        ("5 m", 300.0),
        ("0s", 0.0),
        ("30m1h", 5400.0),  # any order: a sum
        ("10", 10.0),
        ("2.5", 2.5),
        (" 7 ", 7.0),
        ("0", 0.0),
        (10, 10.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: str | int | float, seconds: float) -> None:
    result = parse_duration(value)
    assert isinstance(result, float)
    assert result == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-1", "negative"),
        ("-5m", "negative"),
        (-1, "negative"),
        (-0.5, "negative"),
        (True, "boolean"),
        (False, "boolean"),
        ("1x", "unknown unit"),
        ("5M", "unknown unit"),  # months or minutes? refuse to guess
        ("5S", "unknown unit"),
        ("1hm", "unknown unit"),
        ("5mins", "unknown unit"),
        ("h", "expected a number"),
        ("ms", "expected a number"),
        ("1h30", "'30' has no unit"),
        ("1h 30", "'30' has no unit"),
        ("1.5.5s", "unknown unit"),
        ("1e3s", "unknown unit"),
        ("abc", "expected a number"),
        ("+5s", "expected a number"),
        (float("inf"), "finite"),
        (float("nan"), "finite"),
        ("9" * 400 + "w", "finite"),
        (None, "NoneType"),
        ([5], "list"),
    ],
)
def test_parse_duration_errors(value: object, detail: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(value)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(value)[:40] in message  # names the bad input
    assert detail in message
    assert "ms, s, m, h, d or w" in message  # says what was expected


def test_duration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_duration("soon")


_EPOCH_1000 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "epoch"),
    [
        ("2026-11-21T10:00:00Z", _EPOCH_1000),
        ("2026-11-21T10:00:00z", _EPOCH_1000),
        ("2026-11-21T10:00:00+00:00", _EPOCH_1000),
        ("2026-11-21T12:00:00+02:00", _EPOCH_1000),
        ("2026-11-21T05:00:00-05:00", _EPOCH_1000),
        ("2026-11-21T10:00:00", _EPOCH_1000),  # naive = UTC
        ("2026-11-21T10:00", _EPOCH_1000),
        ("2026-11-21 10:00:00Z", _EPOCH_1000),
        ("2026-11-21T10:00:00.250Z", _EPOCH_1000 + 0.25),
        ("2026-11-21", _EPOCH_1000 - 10 * 3600),  # date alone = midnight UTC
        ("  2026-11-21T10:00:00Z ", _EPOCH_1000),
        ("1970-01-01T00:00:00Z", 0.0),
    ],
)
def test_parse_time(value: str, epoch: float) -> None:
    assert parse_time(value) == pytest.approx(epoch)


@pytest.mark.parametrize(
    "value",
    ["", "tomorrow", "2026-13-01", "2026-11-21T25:00:00Z", "21/11/2026", "10:00", None, 12, True],
)
def test_parse_time_errors(value: object) -> None:
    with pytest.raises(DurationError) as info:
        parse_time(value)  # type: ignore[arg-type]
    assert "ISO 8601" in str(info.value)
    assert repr(value) in str(info.value)
