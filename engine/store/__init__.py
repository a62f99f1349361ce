"""Run stores: the interface (``engine.store.base``), its two implementations
and ``open_store``, which picks one by URL scheme.

=================================================  ===========================
URL                                                store
=================================================  ===========================
``memory://``                                      ``MemoryStore``
``redis://``, ``rediss://``, ``unix://``,          ``RedisStore`` on that server
``valkey://``, ``valkeys://``, ``valkey+unix://``
``redis+sentinel://HOST:PORT[,...]/SERVICE[/DB]``  ``RedisStore`` on the primary
(``rediss+sentinel``, ``valkey[s]+sentinel``)      the Sentinels name
                                                   (``engine.store.connection``)
None, ``embedded://`` or ``embedded:///state/dir``  ``RedisStore`` on the embedded
                                                   Valkey (``engine.embedded``),
                                                   started if not running
=================================================  ===========================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.store.base import (
    ConflictError,
    Registration,
    RunExists,
    RunStore,
    RunSummary,
    StoreError,
    Written,
)
from engine.store.memory import MemoryStore

if TYPE_CHECKING:
    from engine.store.redis_store import RedisStore

__all__ = [
    "ConflictError",
    "MemoryStore",
    "RedisStore",
    "Registration",
    "RunExists",
    "RunStore",
    "RunSummary",
    "StoreError",
    "Written",
    "open_store",
]

_REDIS_SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "valkey",
    "valkeys",
    "valkey+unix",
    "redis+sentinel",
    "rediss+sentinel",
    "valkey+sentinel",
    "valkeys+sentinel",
)


def __getattr__(name: str) -> Any:
    # the Redis store (and redis itself) loads when first asked for, so that
    # what needs only the interface or the memory store does not pay for it
    if name == "RedisStore":
        from engine.store.redis_store import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(
    url: str | None,
    prefix: str = "boss:",
    *,
    ca: str = "",
    cert: str = "",
    key: str = "",
    wait_replicas: int | None = None,
) -> RunStore:
    """The store a URL names (see the module docstring). ``ca``, ``cert``,
    ``key``: TLS files (PEM) for a TLS URL; ``wait_replicas``: see
    ``RedisStore`` (None: 1 on Sentinel, else 0, unless the URL says)."""
    scheme, sep, rest = (url or "embedded://").partition("://")
    if not sep:
        raise StoreError(f"not a store URL (no scheme): {url!r}")
    scheme = scheme.lower()
    if scheme == "memory":
        return MemoryStore()
    from engine.store.redis_store import RedisStore

    if scheme in _REDIS_SCHEMES:
        return RedisStore(
            url, prefix=prefix, ca=ca, cert=cert, key=key, wait_replicas=wait_replicas
        )
    if scheme == "embedded":
        from engine.embedded import ensure_embedded

        return RedisStore(ensure_embedded(rest or None), prefix=prefix)
    raise StoreError(f"unknown store URL scheme {scheme!r} in {url!r}")
