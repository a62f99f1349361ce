"""Fixtures of the SkyNET suite: a real supervisord (skynet's private one,
in a short temporary directory: unix socket paths are limited to 108
bytes), real participant processes under it, and a real broker.

* ``make_host(broker_url, **skynet)``: a ``Host``: one BOSS/SkyNET
  configuration file, a private supervisord started for it (and shut down
  afterwards, killing anything left), a ``Pools`` on it and a ``skynet``
  CLI runner. Several per test make a cluster.
* ``host``: one ``Host`` on the embedded broker.

Supervisor settings are short (startsecs 1, stopwaitsecs 3) to keep the
suite fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engine.config import Config
from skynet import private
from skynet.cli import main as skynet_main
from skynet.config import SkynetConfig
from skynet.pools import Pools

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "skynet"
HANDLERS = FIXTURES / "handlers.py"
MISBEHAVING = FIXTURES / "misbehaving.py"


@dataclass
class Host:
    """One SkyNET host for a test (see the module docstring)."""

    tmp: Path
    broker_url: str
    redis_url: str
    prefix: str
    skynet: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="sk-", dir="/tmp"))
        self.report = self.tmp / "report.jsonl"
        self.boss = {
            "broker_url": self.broker_url,
            "redis_url": self.redis_url,
            "key_prefix": f"{self.prefix}:",
            "engine_queue": f"{self.prefix}.engine",
            "deadletter_queue": f"{self.prefix}.deadletter",
            "control_exchange": f"{self.prefix}.control",
            "process_dir": str(self.tmp / "processes"),
            "heartbeat": 0.5,
            "lease_after": 1.0,
            "lease": 3.0,
            "visibility_timeout": 4.0,
            "engine_threads": 2,
        }
        settings = {
            "state_dir": str(self.state),
            "startsecs": 1,
            "stopwaitsecs": 3,
            "wait_timeout": 20,
            "token": "t0ken",
            "peer_timeout": 2,
            **self.skynet,
        }
        self.ini = self.tmp / f"boss-{self.prefix}.ini"
        self.ini.write_text(
            "[boss]\n"
            + "".join(f"{k} = {v}\n" for k, v in self.boss.items())
            + "\n[skynet]\n"
            + "".join(f"{k} = {v}\n" for k, v in settings.items())
        )
        self.extra = self.tmp / "report.ini"
        self.extra.write_text(f"[report]\npath = {self.report}\n")
        self.config = SkynetConfig.load(self.ini, environ={})
        self.pools = Pools(self.config)

    # -- helpers -------------------------------------------------------------------

    def queue(self, name: str) -> str:
        return f"{self.prefix}.{name}"

    def install(
        self, name: str, cls: str = "ParticipantHandler", code: Path = HANDLERS, **kwargs: Any
    ) -> Any:
        kwargs.setdefault("queue", self.queue(name))
        return self.pools.install(
            code, name, class_name=cls, sections={"report": {"path": str(self.report)}}, **kwargs
        )

    def cli(self, *args: str, code: int | None = 0) -> Result:
        """Run ``skynet -c <ini> ARGS`` in-process; check the exit status."""
        result = CliRunner().invoke(skynet_main, ["-c", str(self.ini), *args])
        if code is not None and result.exit_code != code:
            raise AssertionError(
                f"skynet {' '.join(args)} exited {result.exit_code}, not "
                f"{code}:\n{result.output}\n{result.exception!r}\n" + self.logs()
            )
        return result

    def processes(self) -> dict[str, dict[str, Any]]:
        """supervisord's view, by program name."""
        return {p["name"]: p for p in self.pools.client.supervisor.getAllProcessInfo()}

    def pids(self, name: str) -> dict[str, int]:
        return {p: info["pid"] for p, info in self.processes().items() if p.startswith(f"{name}@")}

    def states(self, name: str) -> dict[str, str]:
        return {
            p: info["statename"] for p, info in self.processes().items() if p.startswith(f"{name}@")
        }

    def events(self, event: str | None = None, **match: Any) -> list[dict[str, Any]]:
        if not self.report.exists():
            return []
        out = [json.loads(x) for x in self.report.read_text().splitlines() if x.strip()]
        return [
            e
            for e in out
            if (event is None or e["event"] == event)
            and all(e.get(k) == v for k, v in match.items())
        ]

    def include_files(self) -> list[str]:
        d = self.config.include_path
        return sorted(p.name for p in d.iterdir() if p.name != ".skynet.lock") if d.is_dir() else []

    def logs(self) -> str:
        out = []
        for path in sorted(self.state.glob("**/*.log")):
            text = path.read_text(errors="replace")
            out.append(f"==== {path.name} ====\n{text[-3000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        self.pools.close()
        leftovers: list[int] = []
        with contextlib.suppress(Exception):
            leftovers = [p["pid"] for p in self.processes().values() if p["pid"]]
        self.pools.close()
        private.stop(self.config, timeout=15)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.state, ignore_errors=True)
        self._delete_keys()

    def _delete_keys(self) -> None:
        import redis

        from engine.broker import is_redis
        from tests.conftest import delete_keys

        urls = [self.redis_url]
        if is_redis(self.broker_url):
            urls.append(
                "unix://" + self.broker_url.split("://", 1)[1]
                if self.broker_url.startswith("redis+socket://")
                else self.broker_url
            )
        for url in urls:
            with contextlib.suppress(Exception):
                client = redis.Redis.from_url(url)
                delete_keys(client, self.prefix)
                client.close()


@pytest.fixture(autouse=True)
def _no_boss_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Participants read BOSS_* over their [boss] section: none may leak in
    from the environment (supervisord hands its own to its programs)."""
    for f in fields(Config):
        monkeypatch.delenv("BOSS_" + f.name.upper(), raising=False)
    monkeypatch.delenv("BOSS_CONFIG", raising=False)
    for key in list(os.environ):
        if key.startswith("SKYNET_"):
            monkeypatch.delenv(key)


@pytest.fixture
def make_host(
    tmp_path: Path, redis_url: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Host]]:
    made: list[Host] = []

    def make(broker_url: str, **skynet: Any) -> Host:
        sub = tmp_path / f"host{len(made)}"
        sub.mkdir()
        (sub / "processes").mkdir()
        h = Host(sub, broker_url, redis_url, f"sk{uuid.uuid4().hex[:10]}", skynet)
        made.append(h)
        return h

    yield make
    failed = getattr(request.node, "rep_call", None)
    for h in made:
        if failed is not None and failed.failed:
            print(h.logs())
        h.stop()


@pytest.fixture
def host(make_host: Callable[..., Host], embedded_broker_url: str) -> Host:
    return make_host(embedded_broker_url)
