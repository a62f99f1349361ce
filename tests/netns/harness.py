"""Several hosts on one machine: Linux network namespaces on a bridge.

``Network`` makes a bridge ``bossbr<rand>`` in the root namespace with the
address ``10.<x>.<y>.1/24`` (so the test process, in the root namespace,
reaches every host like an operator's machine on the same LAN), and
``add_host(name)`` makes a namespace ``boss-<rand>-<name>`` with its
loopback up and one veth, ``eth0`` inside at ``10.<x>.<y>.<n>/24``, whose
peer is a port of the bridge. Hosts talk to each other and to the root
namespace over the bridge, and to nothing else.

``Host.run(argv, env)`` starts a process inside the namespace (``ip netns
exec``: it sees the same files, users and programs as the test, only the
network differs), ``Host.link(False)`` takes the bridge end of its veth down
(the cable pulled at the switch: the host and its peers see silence, no
resets), ``Host.link(True)`` plugs it back.

``Network.close()`` (also on ``with`` exit) stops every process it started
and any other process still inside its namespaces (SIGTERM, then SIGKILL),
deletes the namespaces (their veths go with them) and the bridge. Nothing
is left behind even when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Host", "NetnsError", "Network", "netns_unavailable"]


class NetnsError(RuntimeError):
    """An ``ip`` command failed."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (run the tests as root, as CI does)"
    if shutil.which("ip") is None:
        return "no `ip` command (apt-get install iproute2)"
    probe = f"boss-probe-{secrets.token_hex(3)}"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return None


@dataclass
class Proc:
    """A process started on a host, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Host:
    network: Network
    name: str
    netns: str
    address: str
    #: the bridge end of the host's veth (in the root namespace)
    port: str
    procs: list[Proc] = field(default_factory=list)
    up: bool = True

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        name: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> Proc:
        """Start ``argv`` inside this host's namespace (its own session, its
        output to ``<logs>/<host>-<name>.log``)."""
        label = name or Path(argv[0]).name
        log = self.network.logs / f"{self.name}-{label}.log"
        with log.open("ab") as fh:
            popen = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, *argv],
                env=dict(env if env is not None else os.environ),
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
            )
        proc = Proc(f"{self.name}/{label}", popen, log)
        self.procs.append(proc)
        return proc

    def exec(
        self, argv: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the namespace to its end."""
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            env=dict(env if env is not None else os.environ),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def link(self, up: bool) -> None:
        """Plug (True) or pull (False) the host's cable: the bridge end of
        its veth up or down."""
        ip("link", "set", self.port, "up" if up else "down")
        self.up = up

    def pids(self) -> list[int]:
        """Every process inside the namespace."""
        out = ip("netns", "pids", self.netns, check=False).stdout
        return [int(x) for x in out.split()]

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the processes started here, then whatever else runs in
        the namespace (daemons they forked: epmd...); SIGKILL what is left
        after ``timeout``."""
        for proc in self.procs:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(10)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = self.pids()
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            end = time.monotonic() + 5
            while self.pids() and time.monotonic() < end:
                time.sleep(0.05)


class Network:
    """A bridge and namespaces on it; see the module docstring."""

    def __init__(self, logs: Path) -> None:
        self.tag = secrets.token_hex(3)
        self.bridge = f"bossbr{self.tag}"
        self.logs = logs
        self.hosts: dict[str, Host] = {}
        self.subnet = _free_subnet()
        self.gateway = f"{self.subnet}.1"
        logs.mkdir(parents=True, exist_ok=True)
        try:
            ip("link", "add", self.bridge, "type", "bridge")
            ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
            ip("link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    def add_host(self, name: str) -> Host:
        n = len(self.hosts) + 2
        netns = f"boss-{self.tag}-{name}"
        port = f"bv{self.tag}{n}"
        inside = f"bn{self.tag}{n}"
        host = Host(self, name, netns, f"{self.subnet}.{n}", port)
        self.hosts[name] = host  # before anything is made: close() removes what was
        ip("netns", "add", netns)
        ip("-n", netns, "link", "set", "lo", "up")
        ip("link", "add", port, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", netns)
        ip("-n", netns, "link", "set", inside, "name", "eth0")
        ip("-n", netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
        ip("-n", netns, "link", "set", "eth0", "up")
        ip("link", "set", port, "master", self.bridge)
        ip("link", "set", port, "up")
        return host

    def close(self) -> None:
        """Stop every process, delete the namespaces and the bridge."""
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                host.stop()
        for host in self.hosts.values():
            ip("link", "del", host.port, check=False)
            ip("netns", "del", host.netns, check=False)
        ip("link", "del", self.bridge, check=False)

    def leftovers(self) -> list[str]:
        """Namespaces and links of this network that still exist."""
        names = [h.netns for h in self.hosts.values()]
        netns = ip("netns", "list", check=False).stdout
        links = ip("-o", "link", check=False).stdout
        return [n for n in names if n in netns] + [
            x for x in (self.bridge, *(h.port for h in self.hosts.values())) if x in links
        ]

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _free_subnet() -> str:
    """``10.<x>.<y>``: a /24 no route of this machine covers."""
    routes = ip("-4", "route", "show", "table", "all", check=False).stdout
    addrs = ip("-4", "-o", "addr", check=False).stdout
    for _ in range(100):
        x, y = 100 + secrets.randbelow(150), secrets.randbelow(250)
        prefix = f"10.{x}.{y}"
        if f"{prefix}." not in routes and f"{prefix}." not in addrs and " 10.0.0.0/8" not in routes:
            return prefix
    raise NetnsError("no free 10.x.y.0/24 subnet")
