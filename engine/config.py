"""Configuration: one INI file plus environment variables.

Every ``boss`` process (engine worker, CLI, participant runtime, web UI)
reads the same ``[boss]`` section. Where a value comes from, first match
wins:

1. an explicit argument (``--config``, ``Config.load(path=...)``, keyword
   overrides),
2. the environment (``BOSS_BROKER_URL``, ``BOSS_REDIS_URL``, ... one
   variable per key, upper-cased with a ``BOSS_`` prefix),
3. the file: ``$BOSS_CONFIG``, else ``./boss.ini``, else
   ``~/.config/boss/boss.ini``, else ``/etc/boss/boss.ini`` (the first that
   exists),
4. the defaults below: the embedded Valkey under the state directory as
   both run store and broker (kombu's Redis transport), so a fresh machine
   needs nothing.

A participant's INI file may carry the same ``[boss]`` section, or BOSS's
old ``[amqp]`` section (``host``, ``user``, ``pwd``, ``vhost``), which is
turned into a broker URL.

``docs/configuration.md`` lists every key.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["Config", "ConfigError", "amqp_section_url", "config_paths"]


class ConfigError(ValueError):
    """A configuration value is missing or malformed (``key`` names it)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class Config:
    #: the message broker: ``amqp://user:pass@host:5672/vhost`` (RabbitMQ) or
    #: ``redis://...``/``redis+socket:///path`` (kombu's Redis transport);
    #: empty = the embedded Valkey
    broker_url: str = ""
    #: the run store: ``redis://``, ``unix://``, ``valkey://``; empty = embedded
    redis_url: str = ""
    #: prefix of every Redis key BOSS writes
    key_prefix: str = "boss:"
    #: the engine's queue: replies, launch items and operations
    engine_queue: str = "boss.engine"
    #: malformed messages are moved here (never dropped)
    deadletter_queue: str = "boss.deadletter"
    #: topic exchange for cancel items (routing key: the participant's queue)
    control_exchange: str = "boss.control"
    #: where ``process`` names in launch items are looked up
    process_dir: str = ""
    #: the embedded Valkey's state directory (``$BOSS_STATE_DIR``)
    state_dir: str = ""
    #: seconds a participant may hold a delivery before it takes a lease
    #: instead (acknowledges it, tells the engine, and sends heartbeats)
    lease_after: float = 2.0
    #: seconds without a heartbeat after which the engine dispatches a
    #: leased workitem again (the instance that had it is presumed dead)
    lease: float = 60.0
    #: seconds after a dispatch with neither a reply nor a ``started``
    #: notice before the workitem is dispatched again; -1 (the default):
    #: ``lease_after + lease`` on kombu's Redis transport, which can lose a
    #: delivery to a consumer killed mid-read, and 0 (never) on RabbitMQ
    dispatch_lease: float = -1.0
    #: kombu Redis transport: seconds before an unacknowledged delivery is
    #: given to another consumer (must exceed ``lease_after``)
    visibility_timeout: float = 30.0
    #: seconds between an engine worker's heartbeats (liveness in Redis)
    heartbeat: float = 2.0
    #: wait for the broker to confirm each publish (RabbitMQ)
    confirm_publish: bool = True
    #: consumer threads per engine worker
    engine_threads: int = 1
    #: traceability: the topic exchange Eiffel events are published on
    #: (routing key ``eiffel._.<EventType>._.<domain>``; the engine's
    #: activity events of one message go as one batch, ``eiffel._.batch._._``)
    event_exchange: str = "boss.eiffel"
    #: the durable queue the aggregators consume (bound to every event)
    trace_queue: str = "boss.trace"
    #: invalid events are moved here with the reason
    trace_deadletter_queue: str = "boss.trace.deadletter"
    #: whether engine workers publish an Eiffel event for every transition
    events: bool = True
    #: aggregator threads per engine worker (``boss aggregator`` runs more
    #: anywhere); 0: this worker does not write the traceability graph
    trace_threads: int = 1
    #: the Eiffel ``meta.source.domainId`` and routing-key domain
    eiffel_domain: str = "boss"
    #: extra Eiffel protocol definition directories (``:``-separated), for
    #: event versions newer than the schemas eiffellib ships
    eiffel_definitions: str = ""
    #: the file this was read from, if any
    source: str = ""

    # -- loading -------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: dict[str, str] | None = None,
        **overrides: Any,
    ) -> Config:
        """The configuration (see the module docstring for the order)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        source = ""
        if path is None:
            path = next((p for p in config_paths(env) if p.is_file()), None)
        elif not Path(path).is_file():
            raise ConfigError(f"{path}: no such configuration file")
        if path is not None:
            from_file = _read_file(Path(path))
            values.update(from_file)
            source = str(path)
            origin.update(dict.fromkeys(from_file, f"{path}: [boss]"))
        for f in fields(cls):
            var = "BOSS_" + f.name.upper()
            if var in env and f.name != "source":
                values[f.name] = env[var]
                origin[f.name] = f"environment {var}"
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["source"] = source
        try:
            return cls.from_mapping(values)
        except ConfigError as exc:
            where = origin.get(exc.key or "", source or "configuration")
            raise ConfigError(f"{where}: {exc}", exc.key) from None

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Config:
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            f = known.get(key)
            if f is None:
                raise ConfigError(
                    f"unknown configuration key {key!r}; known: "
                    + ", ".join(sorted(k for k in known if k != "source")),
                    key,
                )
            kwargs[key] = _coerce(key, f.type, raw)
        return cls(**kwargs)

    @classmethod
    def from_parser(cls, parser: configparser.ConfigParser, source: str = "") -> Config:
        """From an already-read INI (a participant's): ``[boss]`` or ``[amqp]``."""
        values: dict[str, Any] = {}
        if parser.has_section("amqp"):
            values["broker_url"] = amqp_section_url(parser["amqp"])
        if parser.has_section("boss"):
            values.update(parser["boss"])
        env = os.environ
        for f in fields(cls):
            var = "BOSS_" + f.name.upper()
            if var in env and f.name != "source":
                values[f.name] = env[var]
        values["source"] = source
        return cls.from_mapping(values)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)

    # -- derived -------------------------------------------------------------

    @property
    def embedded(self) -> bool:
        """Whether the embedded Valkey serves as store or broker."""
        return not self.redis_url or not self.broker_url

    def resolved_redis_url(self) -> str:
        """The run store's URL, starting the embedded Valkey if needed."""
        if self.redis_url:
            return self.redis_url
        from engine.embedded import ensure_embedded

        return ensure_embedded(self.state_dir or None)

    def resolved_dispatch_lease(self) -> float:
        """``dispatch_lease`` with -1 resolved for the configured broker."""
        if self.dispatch_lease >= 0:
            return self.dispatch_lease
        redis_broker = not self.broker_url or self.broker_url.startswith(("redis", "bossredis"))
        return self.lease_after + self.lease if redis_broker else 0.0

    def resolved_broker_url(self) -> str:
        """The broker's URL, starting the embedded Valkey if needed."""
        if self.broker_url:
            return self.broker_url
        from engine.embedded import ensure_embedded

        url = ensure_embedded(self.state_dir or None)
        return "redis+socket://" + url.removeprefix("unix://")


def config_paths(environ: dict[str, str] | os._Environ[str] | None = None) -> list[Path]:
    """Where the configuration file is looked for, in order."""
    env = os.environ if environ is None else environ
    if env.get("BOSS_CONFIG"):
        return [Path(env["BOSS_CONFIG"])]
    return [
        Path("boss.ini"),
        Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "boss" / "boss.ini",
        Path("/etc/boss/boss.ini"),
    ]


def amqp_section_url(section: configparser.SectionProxy | dict[str, str]) -> str:
    """BOSS's ``[amqp]`` section (host, user, pwd, vhost) as a broker URL."""
    host = section.get("host", "127.0.0.1")
    user = quote(section.get("user", "guest"), safe="")
    pwd = quote(section.get("pwd", section.get("password", "guest")), safe="")
    vhost = quote(section.get("vhost", "/"), safe="")
    if ":" not in host:
        host += ":5672"
    return f"amqp://{user}:{pwd}@{host}/{vhost}"


def _read_file(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except configparser.Error as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    values: dict[str, str] = {}
    if parser.has_section("amqp"):
        values["broker_url"] = amqp_section_url(parser["amqp"])
    if parser.has_section("boss"):
        values.update(parser["boss"])
    elif not parser.has_section("amqp"):
        raise ConfigError(f"{path}: no [boss] section")
    return values


_POSITIVE = frozenset({"lease", "heartbeat", "visibility_timeout"})
#: integer keys for which 0 means "none" (no aggregator threads)
_MAY_BE_ZERO = frozenset({"trace_threads"})
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(key: str, kind: Any, raw: Any) -> Any:
    name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if not isinstance(raw, str):
        return raw
    raw = raw.strip()
    try:
        if name == "float":
            value = float(raw)
            if key in _POSITIVE and value <= 0:
                raise ValueError("must be more than 0 seconds")
            if value < 0 and key != "dispatch_lease":  # there, negative means "auto"
                raise ValueError("must not be negative")
            return value
        if name == "int":
            value = int(raw)
            if value < (0 if key in _MAY_BE_ZERO else 1):
                raise ValueError("must be at least " + ("0" if key in _MAY_BE_ZERO else "1"))
            return value
    except ValueError as exc:
        raise ConfigError(f"{key} = {raw!r}: {exc}", key) from None
    if name == "bool":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(f"{key} = {raw!r}: not a boolean (true/false)", key)
    return raw
