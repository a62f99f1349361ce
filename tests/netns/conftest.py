"""Fixtures of the several-hosts tests (``tests/netns/harness.py``).

* ``hosts`` (module): a ``Network`` with five hosts: ``broker`` (a private
  RabbitMQ node and a Valkey, both on the host's address), ``worker1``,
  ``worker2``, ``participant`` and ``web``. Skips, saying why, when not root,
  without ``ip netns`` or without RabbitMQ installed. Torn down (every
  process stopped, namespaces, veths and the bridge deleted) whatever
  happens.
* ``netsys`` (per test): a ``NetSystem``: ``tests/e2e``'s ``System`` (one
  ``boss.ini``, ``boss worker`` and ``boss-participant`` processes, a
  publisher and a store to launch and watch runs) whose processes are
  started on the hosts: workers named ``w1``/``w2`` on ``worker1``/``worker2``,
  participants on ``participant``, ``boss web`` on ``web``. The test process
  itself sits in the root namespace on the bridge (an operator's machine on
  the same LAN), so its own connections are not cut with a host's link.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Proc, System
from tests.netns.harness import Host, Network, netns_unavailable
from tests.netns.servers import RABBIT_BIN, Rabbit, start_rabbitmq, start_valkey
from tests.waiting import wait_for

WEB_PORT = 8080


@dataclass
class Hosts:
    network: Network
    rabbit: Rabbit
    redis_url: str

    @property
    def valkey_broker_url(self) -> str:
        """The Valkey as broker (kombu's Redis transport), its own database."""
        return self.redis_url.rsplit("/", 1)[0] + "/1"

    def __getitem__(self, name: str) -> Host:
        return self.network.hosts[name]

    def plug_all(self) -> None:
        for host in self.network.hosts.values():
            if not host.up:
                host.link(True)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        pytest.skip(f"no RabbitMQ installed ({RABBIT_BIN / 'rabbitmq-server'})")
    base = tmp_path_factory.mktemp("netns")
    net = Network(base / "logs")
    try:
        broker = net.add_host("broker")
        for name in ("worker1", "worker2", "participant", "web"):
            net.add_host(name)
        rabbit = start_rabbitmq(broker, base / "rabbit")
        redis_url = start_valkey(broker, base / "valkey")
        yield Hosts(net, rabbit, redis_url)
        for host in net.hosts.values():
            if not host.up:
                host.link(True)
        rabbit.stop()
    finally:
        net.close()
    left = net.leftovers()
    assert not left, f"left behind: {left}"


@dataclass
class NetSystem(System):
    """``System`` with its processes on the hosts (see the module docstring)."""

    hosts: Hosts | None = None
    placement: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        # what a real installation's boss.ini would say for the web host
        with self.ini.open("a") as fh:
            fh.write(f"\n[web]\nbind = {self.hosts_['web'].address}:{WEB_PORT}\nanonymous = true\n")

    @property
    def hosts_(self) -> Hosts:
        assert self.hosts is not None
        return self.hosts

    def host_of(self, name: str) -> Host:
        base = name.rsplit("-", 1)[0] if name not in self.placement else name
        return self.hosts_[self.placement.get(name, self.placement.get(base, "participant"))]

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOSS_")}
        env["PYTHONPATH"] = str(ROOT)
        started = self.host_of(name).run(argv, env, name=name, cwd=ROOT)
        proc = Proc(name, started.popen, started.log)
        self.procs.append(proc)
        return proc

    def web(self, ini: Path | None = None) -> Proc:
        """``boss web`` on the web host (with ``ini``, else the system's
        ``boss.ini``); returns once it answers."""
        import urllib.request

        proc = self._spawn(
            "web", [sys.executable, "-m", "bossapp.cli", "-c", str(ini or self.ini), "web"]
        )

        def up() -> bool:
            assert proc.alive(), self.logs()
            try:
                with urllib.request.urlopen(self.web_url + "/", timeout=2):
                    return True
            except OSError:
                return False

        wait_for(up, 30, "boss web to answer", interval=0.2)
        return proc

    @property
    def web_url(self) -> str:
        return f"http://{self.hosts_['web'].address}:{WEB_PORT}"

    def cleanup(self) -> None:
        self.hosts_.plug_all()
        super().cleanup()


def _system(
    hosts: Hosts,
    broker_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[NetSystem]:
    (tmp_path / "processes").mkdir()
    system = NetSystem(
        tmp_path,
        broker_url,
        hosts.redis_url,
        f"ns{uuid.uuid4().hex[:10]}",
        hosts=hosts,
        placement={"w1": "worker1", "w2": "worker2", "web": "web"},
    )
    try:
        yield system
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(system.logs())
        system.cleanup()


@pytest.fixture(params=["rabbitmq", "valkey"])
def netsys(
    hosts: Hosts,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[NetSystem]:
    """A ``NetSystem`` on the broker host's RabbitMQ, then on its Valkey as
    the broker too (kombu's Redis transport, database 1)."""
    url = hosts.rabbit.url if request.param == "rabbitmq" else hosts.valkey_broker_url
    yield from _system(hosts, url, tmp_path, request)


@pytest.fixture
def rabbit_netsys(
    hosts: Hosts, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[NetSystem]:
    """A ``NetSystem`` on the broker host's RabbitMQ only (the web UI's test:
    which broker does not matter to it)."""
    yield from _system(hosts, hosts.rabbit.url, tmp_path, request)
