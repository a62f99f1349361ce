"""A Valkey primary, replicas and a Sentinel on free ports in a temp dir,
from the embedded Valkey's own ``valkey-server`` binary (which runs as all
three), for the store's high-availability tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from engine.embedded import _binary
from tests.waiting import wait_for

SERVICE = "boss"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=1)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(5)


@dataclass
class Cluster:
    """``primary``, ``replicas`` and one ``sentinel`` (quorum 1) watching
    service ``SERVICE``; ``url`` names it for ``open_store``."""

    base: Path
    binary: str = field(default_factory=_binary)
    primary: Node | None = None
    replicas: list[Node] = field(default_factory=list)
    sentinel: Node | None = None

    def _server(self, name: str, port: int, *extra: str) -> Node:
        d = self.base / name
        d.mkdir()
        log = d / "log"
        args = [
            self.binary,
            "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
            "--save", "", "--appendonly", "no", "--logfile", str(log),
            "--repl-diskless-sync-delay", "0",
            *extra,
        ]  # fmt: skip
        return Node(port, subprocess.Popen(args, stdin=subprocess.DEVNULL), log)

    def _sentinel(self, name: str, port: int) -> Node:
        assert self.primary is not None
        d = self.base / name
        d.mkdir()
        conf = d / "sentinel.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {d}\nlogfile {d / 'log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 3000\n"
            f"sentinel parallel-syncs {SERVICE} 2\n"
            + "".join(
                f"sentinel known-replica {SERVICE} 127.0.0.1 {r.port}\n" for r in self.replicas
            )
        )
        process = subprocess.Popen([self.binary, str(conf), "--sentinel"], stdin=subprocess.DEVNULL)
        return Node(port, process, d / "log")

    def _launch(self, name: str, start: Callable[[str, int], Node]) -> Node:
        """``start(dir name, port)`` on a free port, until the server that
        answers there is the one started: the tests run in parallel, and
        another one's server may take the port between ``free_port`` and
        the bind (this one then exits, and the other answers its pings)."""
        for attempt in range(5):
            node = start(name if attempt == 0 else f"{name}.{attempt}", free_port())
            answer = wait_for(
                lambda node=node: _answering(node), 10, f"the server on port {node.port}"
            )
            if answer == "ours":
                return node
        raise AssertionError(f"{name}: no free port in 5 tries: {_tail(node.log)}")

    def start(self, replicas: int = 1) -> Cluster:
        self.primary = self._launch("primary", self._server)
        replicaof = ("--replicaof", "127.0.0.1", str(self.primary.port))
        for i in range(replicas):
            self.replicas.append(
                self._launch(f"replica{i}", lambda d, port: self._server(d, port, *replicaof))
            )
        for r in self.replicas:
            wait_for(lambda r=r: _link_up(r), 10, f"replica {r.port} in sync")
        self.sentinel = self._launch("sentinel", self._sentinel)
        wait_for(
            lambda: len(self.sentinel_replicas()) == replicas,
            15,
            f"the sentinel to know the {replicas} replicas",
        )
        return self

    @property
    def url(self) -> str:
        assert self.sentinel is not None
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{SERVICE}/0"

    def sentinel_replicas(self) -> list[dict[str, str]]:
        assert self.sentinel is not None
        with self.sentinel.client() as c:
            rows = c.execute_command("SENTINEL", "REPLICAS", SERVICE)
        out = []
        for row in rows:
            if isinstance(row, dict):
                out.append({_s(k): _s(v) for k, v in row.items()})
            else:
                out.append({_s(row[i]): _s(row[i + 1]) for i in range(0, len(row), 2)})
        return out

    def primary_port(self) -> int:
        assert self.sentinel is not None
        with self.sentinel.client() as c:
            _host, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(port)

    def node(self, port: int) -> Node:
        return next(n for n in [self.primary, *self.replicas] if n is not None and n.port == port)

    def kill_primary(self) -> Node:
        """SIGKILL the current primary; return the node it was."""
        node = self.node(self.primary_port())
        node.kill()
        return node

    def wait_failover(self, old: Node, timeout: float = 20) -> Node:
        """Until the Sentinel names a new primary that says it is one."""

        def promoted() -> Node | None:
            try:
                port = self.primary_port()
            except redis.RedisError:
                return None
            if port == old.port:
                return None
            node = self.node(port)
            try:
                with node.client() as c:
                    return node if c.info("replication")["role"] == "master" else None
            except redis.RedisError:
                return None

        return wait_for(promoted, timeout, "Sentinel to promote a replica", interval=0.02)

    def stop(self) -> None:
        for node in [self.sentinel, *self.replicas, self.primary]:
            if node is not None and node.alive():
                node.process.terminate()
                try:
                    node.process.wait(5)
                except subprocess.TimeoutExpired:
                    node.kill()


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _answering(node: Node) -> str | None:
    """ "ours" when the node's own process answers on its port, "taken"
    when it exited (its port was taken: the pings would reach another
    process), None while it starts."""
    if not node.alive():
        return "taken"
    try:
        with node.client() as c:
            pid = int(c.info("server")["process_id"])
    except redis.RedisError:
        return None
    return "ours" if pid == node.process.pid else None


def _link_up(node: Node) -> bool:
    with node.client() as c:
        return c.info("replication").get("master_link_status") == "up"


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def monotonic_ms() -> float:
    return time.monotonic() * 1000
