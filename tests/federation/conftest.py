"""Two BOSS sites on this machine, each with its own broker, graph and
bridge: ``odl`` on the embedded broker, ``opnfv`` on RabbitMQ in a vhost of
its own; the bridges talk CloudEvents over real HTTP on localhost."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kombu
import pytest
import redis

from engine.broker import list_deadletters
from engine.config import Config
from engine.federation import FederationBridge, FederationSettings, load_federation
from engine.trace import EventBus, Graph, TraceTopology, graph_prefix
from engine.trace.aggregator import EventAggregator
from tests.conftest import delete_keys

SECRET = "odl-opnfv-shared-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Site:
    name: str
    ini: Path
    config: Config
    settings: FederationSettings
    graph: Graph
    bus: EventBus
    port: int
    bridge: FederationBridge | None = None
    aggregator: EventAggregator | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    def start_bridge(self) -> FederationBridge:
        self.bridge = FederationBridge(self.config, self.settings).start()
        return self.bridge

    def stop_bridge(self) -> None:
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None

    def start_aggregator(self) -> EventAggregator:
        """This site's engine side: the aggregator from its trace queue to its graph."""
        agg = EventAggregator(self.config, self.graph, batch_size=100, linger=0.02)
        t = threading.Thread(target=agg.run_forever, daemon=True, name=f"agg-{self.name}")
        t.start()
        self.aggregator, self._threads = agg, [t]
        return agg

    def stop_aggregator(self) -> None:
        if self.aggregator is not None:
            self.aggregator.should_stop = True
        for t in self._threads:
            t.join(10)
        if self.aggregator is not None:
            self.aggregator.close()
        self.aggregator, self._threads = None, []

    def deadletters(self) -> list[dict[str, Any]]:
        with kombu.Connection(self.config.resolved_broker_url()) as conn:
            return list_deadletters(TraceTopology(self.config).deadletter_config, conn)


def _ini(
    path: Path,
    name: str,
    broker: str,
    redis_url: str,
    prefix: str,
    port: int,
    peer: str,
    peer_port: int,
    publish: str,
    accept: str,
    transport: str,
    extra: tuple[str, str] = ("", ""),
) -> None:
    """``extra``: lines added to ``[federation]`` and to the peer's section."""
    path.write_text(
        f"""[boss]
broker_url = {broker}
redis_url = {redis_url}
key_prefix = {prefix}:
engine_queue = {prefix}.engine
deadletter_queue = {prefix}.deadletter
event_exchange = {prefix}.eiffel
trace_queue = {prefix}.trace
trace_deadletter_queue = {prefix}.trace.dead
eiffel_domain = {name}

[federation]
bind = 127.0.0.1:{port}
peers = {peer}
queue_prefix = {prefix}.fed
in_queue_prefix = {prefix}.fedin
retry_initial = 0.05
retry_max = 0.2
linger = 0.02
{extra[0]}
[federation.peer.{peer}]
url = http://127.0.0.1:{peer_port}/federation/v1/events
secret = {SECRET}
publish_type = {publish}
accept_type = {accept}
transport = {transport}
{extra[1]}
""",
        encoding="utf-8",
    )


def _cleanup(site: Site) -> None:
    cfg = site.config
    client = redis.Redis.from_url(cfg.resolved_redis_url())
    delete_keys(client, cfg.key_prefix)
    client.close()
    with kombu.Connection(cfg.resolved_broker_url()) as conn:
        channel = conn.channel()
        queues = [cfg.trace_queue, cfg.trace_deadletter_queue, cfg.engine_queue]
        for p in site.settings.peer_settings:
            queues += [
                site.settings.queue_name(p),
                site.settings.ready_queue_name(p),
                site.settings.in_queue_name(p),
            ]
        for q in queues:
            with contextlib.suppress(Exception):
                channel.queue_delete(q)
        exchanges = [cfg.event_exchange]
        exchanges += [site.settings.in_queue_name(p) for p in site.settings.peer_settings]
        for x in exchanges:
            with contextlib.suppress(Exception):
                channel.exchange_delete(x)


@contextlib.contextmanager
def two_sites(
    tmp_path: Path,
    brokers: dict[str, str],
    redis_url: str,
    transport: str = "http",
    extra: Mapping[str, tuple[str, str]] | None = None,
) -> Iterator[tuple[Site, Site]]:
    """``(odl, opnfv)`` on ``brokers`` (site name -> broker URL), their
    aggregators and bridges running. ``extra``: site name -> lines for its
    ``[federation]`` and its peer's section (``_ini``)."""
    tag = uuid.uuid4().hex[:8]
    ports = {"odl": free_port(), "opnfv": free_port()}
    spec = {
        # ODL shares its artifacts, accepts OPNFV's baselines and verdicts
        "odl": ("opnfv", "ArtifactCreated", "CompositionDefined, ConfidenceLevelModified"),
        # OPNFV shares its baselines and verdicts, accepts ODL's artifacts
        "opnfv": ("odl", "CompositionDefined, ConfidenceLevelModified", "ArtifactCreated"),
    }
    made: list[Site] = []
    try:
        for name, (peer, publish, accept) in spec.items():
            ini = tmp_path / f"{name}.ini"
            prefix = f"fed{tag}{name}"
            _ini(
                ini,
                name,
                brokers[name],
                redis_url,
                prefix,
                ports[name],
                peer,
                ports[peer],
                publish,
                accept,
                transport,
                (extra or {}).get(name, ("", "")),
            )
            config = Config.load(ini, environ={})
            settings = load_federation(config, environ={})
            client = redis.Redis.from_url(config.resolved_redis_url())
            graph = Graph(client, prefix=graph_prefix(config))
            site = Site(name, ini, config, settings, graph, EventBus(config), ports[name])
            made.append(site)
            site.start_aggregator()
        for site in made:
            site.start_bridge()
        yield made[0], made[1]
    finally:
        for site in made:
            site.stop_bridge()
            site.stop_aggregator()
            site.bus.close()
            _cleanup(site)


@pytest.fixture
def sites(
    tmp_path: Path, embedded_broker_url: str, rabbitmq_url: str, redis_url: str
) -> Iterator[tuple[Site, Site]]:
    """``(odl, opnfv)``: ODL on the embedded broker, OPNFV on RabbitMQ, the
    bridge between them over HTTP."""
    brokers = {"odl": embedded_broker_url, "opnfv": rabbitmq_url}
    with two_sites(tmp_path, brokers, redis_url) as pair:
        yield pair
