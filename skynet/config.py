"""SkyNET's settings: the ``[skynet]`` section of the BOSS configuration file
plus ``SKYNET_*`` environment variables, in the style of ``engine.config``.

Where a value comes from, first match wins: an explicit argument, the
environment (``SKYNET_SUPERVISOR_URL``, ``SKYNET_TOKEN``, ... one variable per
key), the file's ``[skynet]`` section (the same file ``boss`` reads:
``$BOSS_CONFIG``, ``./boss.ini``, ``~/.config/boss/boss.ini``,
``/etc/boss/boss.ini``), then the defaults below. The same file's ``[boss]``
section (and the ``BOSS_*`` variables) is what installed participants are
given: their broker, engine queue, leases.

::

    [skynet]
    supervisor_url = unix:///run/supervisor.sock   ; empty: a private supervisord
    include_dir = /etc/supervisor/conf.d            ; where program files go
    state_dir = ~/.local/state/boss/skynet          ; private supervisord, logs
    token = s3cret                                  ; REST API writes
    hosts = http://build2:8765 http://build3:8765   ; cluster peers
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import socket
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from engine.config import Config, ConfigError, config_paths

__all__ = ["SkynetConfig", "default_state_dir"]

_INTS = {"startsecs", "startretries", "stopwaitsecs"}
_FLOATS = {"wait_timeout", "peer_timeout"}


def default_state_dir(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """``$XDG_STATE_HOME/boss/skynet``, else ``~/.local/state/boss/skynet``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "boss" / "skynet"


@dataclass(frozen=True)
class SkynetConfig:
    #: supervisord's XML-RPC endpoint: ``unix:///path/to/supervisor.sock`` or
    #: ``http://host:9001``; empty = the private supervisord under ``state_dir``
    supervisor_url: str = ""
    #: HTTP basic credentials of supervisord's ``[unix_http_server]``, if any
    supervisor_username: str = ""
    supervisor_password: str = ""
    #: where one program file per participant is written (supervisord's
    #: ``[include] files = <include_dir>/*.conf``); default: ``<state_dir>/programs``
    #: with a private supervisord, ``/etc/supervisor/conf.d`` with a system one
    include_dir: str = ""
    #: the private supervisord's home (config, socket, pid file, logs)
    state_dir: str = ""
    #: instances' log files (default ``<state_dir>/logs``, or
    #: ``/var/log/boss`` with a system supervisord)
    log_dir: str = ""
    #: bearer token of the REST API's writes; empty = writes are refused
    token: str = ""
    #: cluster peers: base URLs of other SkyNET APIs (space or comma separated)
    hosts: tuple[str, ...] = ()
    #: this host's name in cluster views
    host_name: str = field(default_factory=socket.gethostname)
    #: the unix group whose members may manage participants run as users
    group: str = "skynet"
    #: the interpreter instances run under
    python: str = sys.executable
    #: supervisor program settings written into new program files
    startsecs: int = 1
    startretries: int = 3
    stopwaitsecs: int = 60
    #: seconds ``start``/``stop`` wait for RUNNING/STOPPED beyond supervisor's own delays
    wait_timeout: float = 30.0
    #: seconds a cluster view waits for each peer
    peer_timeout: float = 3.0
    #: where ``skynet serve`` listens
    api_bind: str = "127.0.0.1:8765"
    #: the ``[boss]`` settings handed to participants
    boss: Config = field(default_factory=Config)
    #: the file this was read from, if any
    source: str = ""

    # -- loading ---------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: dict[str, str] | None = None,
        **overrides: Any,
    ) -> SkynetConfig:
        """The settings (see the module docstring for the order)."""
        env = os.environ if environ is None else environ
        if path is None:
            path = next((p for p in config_paths(env) if p.is_file()), None)
        elif not Path(path).is_file():
            raise ConfigError(f"{path}: no such configuration file")
        values: dict[str, Any] = {}
        boss: Config | None = None
        if path is not None:
            parser = configparser.ConfigParser(interpolation=None)
            try:
                with open(path, encoding="utf-8") as fh:
                    parser.read_file(fh)
            except (OSError, configparser.Error) as exc:
                raise ConfigError(f"{path}: {exc}") from None
            if parser.has_section("skynet"):
                values.update(parser["skynet"])
            if parser.has_section("boss") or parser.has_section("amqp"):
                boss = Config.load(path, environ=dict(env))
        if boss is None:  # no [boss] in the file: the environment and defaults
            boss = Config.load(None, environ={**env, "BOSS_CONFIG": os.devnull + "/none"})
        for f in fields(cls):
            var = "SKYNET_" + f.name.upper()
            if var in env and f.name not in ("boss", "source"):
                values[f.name] = env[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        values.setdefault("boss", boss)
        values["source"] = str(path or "")
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> SkynetConfig:
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            if key not in known:
                raise ConfigError(
                    f"[skynet] unknown key {key!r}; known: "
                    + ", ".join(sorted(known - {"boss", "source"})),
                    key,
                )
            kwargs[key] = _coerce(key, raw)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> SkynetConfig:
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items()})

    # -- derived -----------------------------------------------------------------

    @property
    def private(self) -> bool:
        """Whether SkyNET runs (and owns) its own supervisord."""
        return not self.supervisor_url

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser() if self.state_dir else default_state_dir()

    @property
    def socket_path(self) -> Path:
        """The private supervisord's socket."""
        return self.state_path / "supervisor.sock"

    @property
    def server_url(self) -> str:
        """The XML-RPC endpoint actually used."""
        return self.supervisor_url or f"unix://{self.socket_path}"

    @property
    def include_path(self) -> Path:
        if self.include_dir:
            return Path(self.include_dir).expanduser()
        if self.private:
            return self.state_path / "programs"
        return Path("/etc/supervisor/conf.d")

    @property
    def log_path(self) -> Path:
        if self.log_dir:
            return Path(self.log_dir).expanduser()
        if self.private:
            return self.state_path / "logs"
        return Path("/var/log/boss")


def _coerce(key: str, raw: Any) -> Any:
    if not isinstance(raw, str):
        return tuple(raw) if key == "hosts" and isinstance(raw, list) else raw
    raw = raw.strip()
    if key == "hosts":
        return tuple(h.rstrip("/") for h in raw.replace(",", " ").split() if h)
    try:
        if key in _INTS:
            value = int(raw)
            if value < 0:
                raise ValueError("must not be negative")
            return value
        if key in _FLOATS:
            value = float(raw)
            if value <= 0:
                raise ValueError("must be more than 0")
            return value
    except ValueError as exc:
        raise ConfigError(f"[skynet] {key} = {raw!r}: {exc}", key) from None
    return raw
