"""Log lines as text or as JSON (``[boss] log_format``, ``$BOSS_LOG_FORMAT``).

With ``json``, every line a BOSS process logs is one JSON object::

    {"time": "2026-12-05T18:19:26.123Z", "level": "INFO", "logger": "boss.worker",
     "message": "...", "wfid": "...", "expid": "0_1"}

``time`` is UTC (ISO 8601, milliseconds); every ``extra=`` a log call
passes (``log.info("...", extra={"wfid": wfid, "expid": expid})``) becomes
a field of its own; an exception (``log.exception``, ``exc_info=``) is the
string field ``exception`` (its traceback), a stack (``stack_info=``) the
field ``stack``. The standard ``logging`` module and this one formatter: no
dependency (python-json-logger would do the same in a few more lines of
configuration).

Processes call ``configure_logging`` once at start (it replaces the root
logger's handlers, as ``logging.basicConfig(force=True)``), or
``use_format`` to switch the handlers something else already installed
(Celery's, click's) to the chosen format.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

__all__ = [
    "TEXT_FORMAT",
    "JsonFormatter",
    "configure_logging",
    "formatter",
    "log_format",
    "use_format",
]

#: the text lines' layout (the one every ``boss`` process used before)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: the attributes every ``LogRecord`` has: anything else came from ``extra=``
_STANDARD = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def log_format(configured: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``json`` or ``text``: ``$BOSS_LOG_FORMAT`` when set, else
    ``configured`` (``Config.log_format``), else ``text``."""
    env = os.environ if environ is None else environ
    value = (env.get("BOSS_LOG_FORMAT") or configured or "text").strip().lower()
    return "json" if value == "json" else "text"


def formatter(fmt: str | None = None, text: str = TEXT_FORMAT) -> logging.Formatter:
    """The formatter of ``fmt`` (``log_format(fmt)``): JSON, or ``text``'s layout."""
    return JsonFormatter() if log_format(fmt) == "json" else logging.Formatter(text)


def configure_logging(
    level: str | int = "INFO",
    fmt: str | None = None,
    *,
    stream: IO[str] | None = None,
    text: str = TEXT_FORMAT,
) -> None:
    """One handler on the root logger (replacing any), writing ``stream``
    (stderr) in the format ``log_format(fmt)`` picks."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(fmt, text))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)


def use_format(fmt: str | None = None, logger: logging.Logger | None = None) -> bool:
    """Give the handlers of ``logger`` (the root logger) the JSON formatter
    when ``log_format(fmt)`` is ``json``; True if it did. Text: left alone."""
    if log_format(fmt) != "json":
        return False
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        handler.setFormatter(JsonFormatter())
    return True
