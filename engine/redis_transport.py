"""kombu's Redis transport, with one client object per channel.

kombu's Redis channel builds a new ``redis.Redis`` client object for every
publish, acknowledgement and bookkeeping write (``conn_or_acquire``), each
building its response-callback tables again; in the engine and participant
profiles that was an eighth of all the work done per message on the
embedded broker (``Redis.__init__``, ``CaseInsensitiveDict``). The client
object is only a front to the channel's connection pool, so one per channel
serves them all; this transport keeps it. Everything else is kombu's.

``engine.broker.connect`` and the participant runtime use it for
``redis://`` and ``redis+socket://`` broker URLs.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

__all__ = ["SCHEME", "Channel", "Transport"]

#: the short name it is registered under (``bossredis+socket:///path``)
SCHEME = "bossredis"


class Channel(kombu_redis.Channel):
    _sync_client: Any = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._sync_client
        if client is None or client.connection_pool is not self.pool:
            client = self._sync_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel


TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
