"""What the engine side knows about a pool: its queue's depth and consumers
(``engine.broker.queue_info``) and its registrations (the run store).

Failures never raise: a view of pools must not break because the broker or
the store is away; the entry says ``{"error": ...}`` instead.
"""

from __future__ import annotations

from typing import Any

from engine.broker import queue_depths
from engine.config import Config

__all__ = ["open_engine", "queue_depths", "registrations"]


def open_engine(boss: Config) -> Any:
    """An ``Engine`` over the configured run store."""
    from engine.engine import Engine
    from engine.store import open_store

    return Engine(open_store(boss.resolved_redis_url(), prefix=boss.key_prefix))


def registrations(boss: Config) -> list[dict[str, Any]] | dict[str, str]:
    """Every registration (pattern, regex, queue), or ``{"error": ...}``."""
    try:
        engine = open_engine(boss)
        try:
            return [
                {"pattern": r.pattern, "regex": r.regex, "queue": r.queue}
                for r in engine.registrations()
            ]
        finally:
            close = getattr(engine.store, "close", None)
            if close:
                close()
    except Exception as exc:
        return {"error": f"store: {type(exc).__name__}: {exc}"}
