"""The servers of the broker+store host: a private RabbitMQ node and a
Valkey, each started inside the host's namespace and listening on the
host's address.

RabbitMQ as in ``tests/security/test_broker_tls.py``: its own node name,
data and log directories, configuration and ``HOME`` (so its own Erlang
cookie) under a temp dir, started as root from ``/usr/lib/rabbitmq/bin``.
Inside a namespace the node is ``boss<rand>@localhost``: the namespace has
its own loopback, so its epmd (which ``rabbitmq-server`` starts there) and
the distribution port are private to it, and ``rabbitmqctl`` is run inside
the same namespace. ``heartbeat = 2`` in its ``rabbitmq.conf``: the broker
proposes two-second AMQP heartbeats, so a client whose link is cut is
declared dead (and its unacknowledged deliveries requeued) within a few
seconds instead of RabbitMQ's default minute.

Valkey is the binary the embedded store uses (``engine.embedded``), on
``<address>:6379``, without persistence (the tests do not restart it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from engine.embedded import _binary as valkey_binary
from tests.netns.harness import Host, Proc
from tests.waiting import wait_for

__all__ = ["AMQP_PORT", "RABBIT_BIN", "VALKEY_PORT", "Rabbit", "start_rabbitmq", "start_valkey"]

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
AMQP_PORT = 5672
VALKEY_PORT = 6379
#: seconds between AMQP heartbeats the broker proposes (clients take the smaller)
BROKER_HEARTBEAT = 2


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class Rabbit:
    host: Host
    node: str
    env: dict[str, str]
    proc: Proc
    vhost: str = "boss"
    user: str = "boss"
    password: str = "boss-netns-password"

    @property
    def url(self) -> str:
        return f"amqp://{self.user}:{self.password}@{self.host.address}:{AMQP_PORT}/{self.vhost}"

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = self.host.exec(
            [str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", self.node, *args], self.env
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"rabbitmqctl {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc

    def connections(self) -> list[tuple[str, int]]:
        """(peer address, negotiated heartbeat in seconds) of every client
        connection (0: the client asked for no heartbeats)."""
        out = self.ctl("list_connections", "--no-table-headers", "peer_host", "timeout").stdout
        rows = [line.split() for line in out.splitlines()]
        return [(r[0], int(r[1])) for r in rows if len(r) == 2 and r[1].isdigit()]

    def watched_from(self, address: str) -> int:
        """How many connections from ``address`` the broker watches with
        heartbeats (the ones it drops, and whose deliveries it requeues,
        when the peer falls silent)."""
        return sum(1 for peer, beat in self.connections() if peer == address and beat > 0)

    def consumers(self, queue: str) -> int:
        out = self.ctl(
            "list_queues", "-p", self.vhost, "--no-table-headers", "name", "consumers"
        ).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == queue:
                return int(parts[1])
        return 0

    def stop(self) -> None:
        self.ctl("stop", check=False)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.popen.wait(20)  # else the host's stop() kills what is left


def start_rabbitmq(host: Host, base: Path) -> Rabbit:
    """A RabbitMQ node inside ``host``, listening on ``host.address:5672``,
    with a vhost and a user for BOSS; waits until it accepts connections
    and answers ``rabbitmqctl``."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "home").mkdir(exist_ok=True)
    (base / "rabbitmq-env.conf").write_text("")  # not the machine's (/etc/rabbitmq)
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.1 = {host.address}:{AMQP_PORT}\n"
        f"heartbeat = {BROKER_HEARTBEAT}\n"
        "loopback_users = none\n"
        "management_agent.disable_metrics_collector = true\n"
    )
    node = f"boss{secrets.token_hex(3)}@localhost"
    env = {
        **os.environ,
        "HOME": str(base / "home"),  # its own Erlang cookie, made on first start
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",  # the namespace's own loopback
    }
    proc = host.run([str(RABBIT_BIN / "rabbitmq-server")], env, name="rabbitmq", cwd=base)
    rabbit = Rabbit(host, node, env, proc)

    def up() -> bool:
        if not proc.alive():
            raise AssertionError(f"rabbitmq-server exited:\n{proc.output()[-3000:]}")
        return _accepts(host.address, AMQP_PORT)

    wait_for(up, 90, f"RabbitMQ {node} on {host.address}:{AMQP_PORT}", interval=0.2)
    rabbit.ctl("add_vhost", rabbit.vhost)
    rabbit.ctl("add_user", rabbit.user, rabbit.password)
    rabbit.ctl("set_permissions", "-p", rabbit.vhost, rabbit.user, ".*", ".*", ".*")
    return rabbit


def start_valkey(host: Host, base: Path) -> str:
    """A Valkey inside ``host`` on ``host.address:6379``; its URL."""
    base.mkdir(parents=True, exist_ok=True)
    proc = host.run(
        [
            valkey_binary(),
            "--bind",
            host.address,
            "--port",
            str(VALKEY_PORT),
            "--protected-mode",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(base),
        ],
        name="valkey",
    )

    def up() -> bool:
        if not proc.alive():
            raise AssertionError(f"valkey-server exited:\n{proc.output()[-3000:]}")
        return _accepts(host.address, VALKEY_PORT)

    wait_for(up, 30, f"Valkey on {host.address}:{VALKEY_PORT}")
    return f"redis://{host.address}:{VALKEY_PORT}/0"
