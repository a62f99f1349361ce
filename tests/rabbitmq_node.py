"""A private RabbitMQ node for tests and benchmarks.

Its own node name, ports (AMQP, TLS, distribution), epmd, HOME (Erlang
cookie), data and log directories, ``enabled_plugins`` and ``rabbitmq.conf``
under ``base``: the machine's RabbitMQ (and its epmd) is neither touched nor
needed, so plugins that the shared node does not run (the shovel) and
listeners it does not have (TLS) can be tried. Used by
``tests/security/test_broker_tls.py`` (TLS), ``tests/federation/test_real_shovel.py``
(``rabbitmq_shovel``) and ``bench/bench_runtime.py --security``,
``bench/bench_federation.py``.

``RabbitNode(base, plugins=[...], tls=pki, tcp=True, conf="...").start()``;
``ctl(...)`` runs ``rabbitmqctl -n <node>``; ``stop()`` stops the node and
its epmd and removes its directories. ``missing(plugins)`` says why a node
cannot be started here (no ``rabbitmq-server``, a plugin not installed), or
``""``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RABBIT_BIN", "RabbitNode", "accepts_tls", "free_port", "missing"]

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")
RABBIT_LIB = Path("/usr/lib/rabbitmq/lib")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts_tls(port: int, ca: Path | str) -> bool:
    """Whether ``port`` completes a TLS handshake, the server's certificate
    verified against ``ca`` for the name ``localhost``."""
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
            context.wrap_socket(sock, server_hostname="localhost"),
        ):
            return True
    except OSError:
        return False


def accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def missing(plugins: Sequence[str] = ()) -> str:
    """Why a private node with ``plugins`` cannot run on this machine, or ``""``."""
    if not (RABBIT_BIN / "rabbitmq-server").exists():
        return f"no RabbitMQ installed ({RABBIT_BIN / 'rabbitmq-server'})"
    installed = {p.name.rsplit("-", 1)[0] for p in RABBIT_LIB.glob("*/plugins/*")}
    absent = [p for p in plugins if p not in installed]
    if absent:
        return f"RabbitMQ plugin(s) not installed: {', '.join(absent)} (under {RABBIT_LIB})"
    return ""


@dataclass
class RabbitNode:
    """A private RabbitMQ node under ``base`` (made by ``start``).

    ``plugins``: its ``enabled_plugins``; ``tcp``: a plain AMQP listener on
    ``port``; ``tls``: an object with ``ca``, ``server_cert`` and
    ``server_key`` paths (``tests/security``'s ``Pki``) for a TLS listener
    on ``tls_port``, client certificates verified when presented; ``conf``:
    more ``rabbitmq.conf`` lines. ``user``/``password``: an administrator
    made at start (no vhost: ``add_vhost`` gives it one)."""

    base: Path
    plugins: Sequence[str] = ()
    tcp: bool = True
    tls: Any = None
    conf: str = ""
    node: str = field(default_factory=lambda: f"bosstest{uuid.uuid4().hex[:8]}@localhost")
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    user: str = "boss"
    password: str = field(default_factory=lambda: uuid.uuid4().hex)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def _conf(self) -> str:
        lines = [f"listeners.tcp.default = {self.port}" if self.tcp else "listeners.tcp = none"]
        if self.tls is not None:
            lines += [
                f"listeners.ssl.default = {self.tls_port}",
                f"ssl_options.cacertfile = {self.tls.ca}",
                f"ssl_options.certfile = {self.tls.server_cert}",
                f"ssl_options.keyfile = {self.tls.server_key}",
                "ssl_options.verify = verify_peer",
                "ssl_options.fail_if_no_peer_cert = false",
            ]
        lines += ["loopback_users = none", "management_agent.disable_metrics_collector = true"]
        return "\n".join(lines) + "\n" + self.conf

    def start(self, timeout: float = 90.0) -> RabbitNode:
        why = missing(self.plugins)
        if why:
            raise RuntimeError(why)
        base = self.base
        base.mkdir(parents=True, exist_ok=True)
        (base / "home").mkdir(exist_ok=True)
        (base / "rabbitmq-env.conf").write_text("")  # not the machine's (/etc/rabbitmq)
        (base / "enabled_plugins").write_text(f"[{','.join(self.plugins)}].\n")
        (base / "rabbitmq.conf").write_text(self._conf())
        self.env = {
            **os.environ,
            "HOME": str(base / "home"),  # its own Erlang cookie, made on first start
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port if self.tcp else free_port()),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            # an epmd of its own, stopped with the node (not the machine's)
            "ERL_EPMD_PORT": str(self.epmd_port),
        }
        with (base / "server.out").open("wb") as log:
            self.proc = subprocess.Popen(
                [str(RABBIT_BIN / "rabbitmq-server")],
                env=self.env,
                cwd=base,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self._up():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the private RabbitMQ node {self.node} did not start")
            time.sleep(0.2)
        # the listeners are up; the boot (plugins included) finished too
        self.ctl("await_startup")
        self.ctl("add_user", self.user, self.password)
        self.ctl("set_user_tags", self.user, "administrator")
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            out = (self.base / "server.out").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"rabbitmq-server exited ({self.proc.returncode}):\n{out}")
        if self.tls is not None:
            return accepts_tls(self.tls_port, self.tls.ca)
        return accepts_tcp(self.port)

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``rabbitmqctl -q -n <node> ARGS`` (AssertionError on failure with ``check``)."""
        done = subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"rabbitmqctl {' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}"
            )
        return done

    def add_vhost(self, vhost: str, *users: str) -> str:
        """Make ``vhost``, give ``users`` (default: the administrator) all
        permissions on it; its URL as the administrator (plain TCP)."""
        self.ctl("add_vhost", vhost)
        for user in users or (self.user,):
            self.ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        return self.url(vhost)

    def url(self, vhost: str = "", user: str | None = None, password: str = "") -> str:
        """``amqp://`` to the TCP listener (the administrator by default)."""
        if user is None:
            user, password = self.user, self.password
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/{vhost}"

    def pids(self) -> list[int]:
        """The node's ``beam.smp`` processes."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        out, todo = [], [self.proc.pid]
        while todo:
            p = todo.pop()
            with contextlib.suppress(OSError):
                if Path(f"/proc/{p}/comm").read_text().strip() == "beam.smp":
                    out.append(p)
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{p}/task").iterdir():
                    with contextlib.suppress(OSError):
                        todo += [int(x) for x in (task / "children").read_text().split()]
        return out

    def stop(self) -> None:
        """Stop the node and its epmd, remove its data."""
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(Exception):
                    self.ctl("stop", check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # anything of it left
            self.proc.wait(timeout=10)
            self.proc = None
        if self.env:
            epmd = shutil.which("epmd") or "/usr/lib/erlang/bin/epmd"
            # its own epmd (ERL_EPMD_PORT); it refuses while a node is
            # registered with it: none is now
            with contextlib.suppress(Exception):
                subprocess.run(
                    [epmd, "-port", str(self.epmd_port), "-kill"],
                    env=self.env,
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
        shutil.rmtree(self.base / "mnesia", ignore_errors=True)
