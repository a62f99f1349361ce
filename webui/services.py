"""What the web UI's views share: the configuration, the run store and an
``Engine`` for reads, the traceability graph, a publisher for the engine's
queue (the UI never changes a run in-process: it sends the same messages as
``boss cancel``/``replay``/...), the users, the audit log, the run index and
the health statistics. One ``Services`` per app, in ``app.extensions["boss"]``.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any

import redis
from flask import current_app

from engine.config import Config
from webui.settings import WebConfig

__all__ = ["LockedPublisher", "Services", "services"]


class LockedPublisher:
    """A publisher shared by the request threads (a kombu producer is not
    thread-safe: one send at a time)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._publisher: Any = None

    def send(self, msg: dict[str, Any]) -> None:
        from engine.broker import Publisher

        with self._lock:
            if self._publisher is None:
                self._publisher = Publisher(self.config)
            self._publisher.send(msg)

    def close(self) -> None:
        with self._lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None


class Services:
    def __init__(
        self,
        config: Config,
        web: WebConfig,
        *,
        store: Any = None,
        publisher: Any = None,
        graph: Any = None,
        skynet: Any = None,
    ) -> None:
        self.config = config
        self.web = web
        self._store = store
        self._publisher = publisher
        self._graph = graph
        self._skynet = skynet

    @cached_property
    def store(self) -> Any:
        if self._store is not None:
            return self._store
        from engine.store import open_store

        return open_store(self.config.resolved_redis_url(), prefix=self.config.key_prefix)

    @cached_property
    def client(self) -> redis.Redis:
        client = getattr(self.store, "client", None)
        if client is None:
            from engine.store.connection import client_for

            client = client_for(self.config.resolved_redis_url())[0]
        return client

    @cached_property
    def engine(self) -> Any:
        from engine.engine import Engine

        return Engine(self.store)

    @cached_property
    def publisher(self) -> Any:
        return self._publisher if self._publisher is not None else LockedPublisher(self.config)

    @cached_property
    def graph(self) -> Any:
        if self._graph is not None:
            return self._graph
        from engine.trace import Graph, graph_prefix

        return Graph(self.client, prefix=graph_prefix(self.config))

    @cached_property
    def users(self) -> Any:
        from webui.users import Users

        return Users(self.client, self.config.key_prefix)

    @cached_property
    def sessions(self) -> Any:
        from webui.sessions import SessionStore

        return SessionStore(self.client, self.config.key_prefix, self.web.session_lifetime)

    @cached_property
    def refusals(self) -> Any:
        from webui.users import RefusalCounter

        return RefusalCounter(self.client, self.config.key_prefix)

    @cached_property
    def audit(self) -> Any:
        from webui.users import AuditLog

        return AuditLog(self.client, self.config.key_prefix, self.web.audit_max)

    @cached_property
    def index(self) -> Any:
        from webui.runindex import RunIndex

        return RunIndex(self.client, self.config.key_prefix, indexed=self.web.indexed)

    @cached_property
    def health(self) -> Any:
        from webui.health import Health

        return Health(self.client, self.config.key_prefix, self.graph)

    @cached_property
    def skynet(self) -> Any:
        if self._skynet is not None:
            return self._skynet
        from webui.skynet_client import SkynetClient

        return SkynetClient(self.web.skynet_hosts, self.web.skynet_token, self.web.skynet_timeout)

    def close(self) -> None:
        pub = self.__dict__.get("publisher")
        if pub is not None and hasattr(pub, "close"):
            pub.close()


def services() -> Services:
    return current_app.extensions["boss"]
