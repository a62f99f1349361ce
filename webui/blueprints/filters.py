"""Jinja filters: times, durations, JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Flask


def when(t: float | None) -> str:
    if not t:
        return "-"
    if isinstance(t, str):
        try:
            t = float(t)
        except ValueError:  # an ISO 8601 time (an error's "at")
            return t.replace("T", " ").rstrip("Z")[:19]
    return datetime.fromtimestamp(float(t), UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def install(app: Flask) -> None:
    app.jinja_env.filters.update(when=when, duration=duration, pretty=pretty, percent=percent)
