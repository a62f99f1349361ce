"""The launchers' settings: a ``[launchers]`` section of the same INI file
as ``[boss]`` (``engine/config.py`` reads only ``[boss]``), with
``BOSS_LAUNCHERS_<KEY>`` environment variables over it.

Where a value comes from, first match wins: keyword overrides, the
environment, the file (the one ``Config`` was read from, else the first of
``config_paths()`` that exists), the defaults below. ``docs/launchers.md``
lists the keys.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from engine.config import Config, ConfigError, config_paths

__all__ = ["LauncherSettings"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class LauncherSettings:
    #: the GitHub webhook's secret (HMAC-SHA256 of the body); empty: the
    #: GitHub endpoint refuses every delivery
    github_secret: str = ""
    #: the GitLab webhook's secret token (``X-Gitlab-Token``); empty: the
    #: GitLab endpoint refuses every delivery
    gitlab_token: str = ""
    #: where ``boss launcher serve`` listens (``host:port``)
    bind: str = "127.0.0.1:8081"
    #: seconds a webhook delivery id is remembered (a repeat within it is
    #: answered "already launched")
    delivery_ttl: float = 7 * 24 * 3600.0
    #: the OBS message bus: broker URL (empty: BOSS's own broker), topic
    #: exchange, routing-key namespace, and BOSS's durable queue on it
    obs_url: str = ""
    obs_exchange: str = "pubsub"
    obs_namespace: str = "opensuse.obs"
    obs_queue: str = "boss.launchers.obs"
    #: ``,``-separated binding keys (default ``<obs_namespace>.#``)
    obs_bindings: str = ""
    #: the process store (``<store>/<Project/Path>/<LABEL>.<name>.yaml``);
    #: empty: ``[boss] process_dir``
    process_store: str = ""
    #: a rules file (YAML) mapping event filters to processes; empty: none
    rules_file: str = ""
    #: where ``boss enable-project`` finds the standard processes
    standard_dir: str = "processes/StandardWorkflow"
    #: the Gerrit stream: a command (``ssh -p 29418 boss@review gerrit
    #: stream-events``) or a file of JSON lines
    gerrit_command: str = ""
    gerrit_file: str = ""
    #: the Gerrit server's web URL (for change links and repository URLs)
    gerrit_url: str = ""
    #: publish the source's Eiffel event (and link it as the run's CAUSE)
    events: bool = True

    @classmethod
    def load(
        cls,
        config: Config | None = None,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: dict[str, str] | None = None,
        **overrides: Any,
    ) -> LauncherSettings:
        """The settings (see the module docstring for the order)."""
        env = os.environ if environ is None else environ
        if path is None and config is not None and config.source:
            path = config.source
        if path is None:
            path = next((p for p in config_paths(env) if p.is_file()), None)
        values: dict[str, Any] = {}
        if path is not None and Path(path).is_file():
            parser = configparser.ConfigParser(interpolation=None)
            try:
                parser.read(path, encoding="utf-8")
            except configparser.Error as exc:
                raise ConfigError(f"{path}: {exc}") from None
            if parser.has_section("launchers"):
                values.update(parser["launchers"])
        for f in fields(cls):
            var = "BOSS_LAUNCHERS_" + f.name.upper()
            if var in env:
                values[f.name] = env[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(values, where=str(path or "configuration"))

    @classmethod
    def from_mapping(cls, values: dict[str, Any], where: str = "configuration") -> LauncherSettings:
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            f = known.get(key)
            if f is None:
                raise ConfigError(
                    f"{where}: [launchers]: unknown key {key!r}; known: "
                    + ", ".join(sorted(known)),
                    key,
                )
            kwargs[key] = _coerce(where, key, f.type, raw)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> LauncherSettings:
        return dataclasses.replace(self, **changes)

    def store_dir(self, config: Config) -> Path:
        """The process store's root."""
        return Path(self.process_store or config.process_dir or "processes")

    def bindings(self) -> list[str]:
        keys = [k.strip() for k in self.obs_bindings.split(",") if k.strip()]
        return keys or [f"{self.obs_namespace}.#"]


def _coerce(where: str, key: str, kind: Any, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    raw = raw.strip()
    name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if name == "float":
        try:
            value = float(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: [launchers]: {key} = {raw!r}: {exc}", key) from None
        if value <= 0:
            raise ConfigError(f"{where}: [launchers]: {key} = {raw!r}: must be more than 0", key)
        return value
    if name == "bool":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(f"{where}: [launchers]: {key} = {raw!r}: not a boolean", key)
    return raw
