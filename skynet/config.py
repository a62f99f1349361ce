"""SkyNET's settings: the ``[skynet]`` section of the BOSS configuration file
plus ``SKYNET_*`` environment variables, read by ``engine.settings``.

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
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from engine.config import Config
from engine.settings import Section, not_negative, positive, setting, to_urls

__all__ = ["SkynetConfig", "default_state_dir"]


def default_state_dir(environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """``$XDG_STATE_HOME/boss/skynet``, else ``~/.local/state/boss/skynet``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "boss" / "skynet"


@dataclass(frozen=True)
class SkynetConfig(Section):
    SECTION: ClassVar[str] = "skynet"
    ENV_PREFIX: ClassVar[str] = "SKYNET_"

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
    hosts: tuple[str, ...] = setting((), coerce=to_urls)
    #: this host's name in cluster views
    host_name: str = field(default_factory=socket.gethostname)
    #: the unix group whose members may manage participants run as users
    group: str = "skynet"
    #: the interpreter instances run under
    python: str = sys.executable
    #: supervisor program settings written into new program files
    startsecs: int = setting(1, check=not_negative())
    startretries: int = setting(3, check=not_negative())
    stopwaitsecs: int = setting(60, check=not_negative())
    #: seconds ``start``/``stop`` wait for RUNNING/STOPPED beyond supervisor's own delays
    wait_timeout: float = setting(30.0, check=positive())
    #: seconds a cluster view waits for each peer
    peer_timeout: float = setting(3.0, check=positive())
    #: where ``skynet serve`` listens
    api_bind: str = "127.0.0.1:8765"
    #: the ``[boss]`` settings handed to participants
    boss: Config = field(default_factory=Config, metadata={"internal": True})
    #: the file this was read from, if any
    source: str = setting("", internal=True)

    # -- loading (``engine.settings.Section``: file, environment, overrides) ----

    @classmethod
    def loaded_values(
        cls,
        parser: configparser.ConfigParser | None,
        source: str,
        environ: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        """``source``, and the same file's ``[boss]`` (else the
        environment's) as ``boss``."""
        if parser is not None and Config.has_section(parser):
            boss = Config.from_parser(parser, source, environ=environ)
        else:  # no [boss] in the file: the environment and defaults
            boss = Config.from_parser(None, environ=environ)
        return {"source": source, "boss": boss}

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
