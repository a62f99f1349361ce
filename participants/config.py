"""A participant's INI file: who it is, where its code is, which broker.

::

    [participant]
    name = build                 ; required
    queue = build                ; default: the name
    regexp = build_.*            ; optional: registered instead of the name
    code = /usr/share/boss/build.py   ; a .py file (relative: to this file) or a module
    class = ParticipantHandler   ; default
    register = false             ; publish a "register" notice at start-up
    lease_after = 2              ; override [boss] lease_after
    lease = 60                   ; override [boss] lease
    debug_trace = false          ; one log line per workitem received / replied
    debug_dump = false           ; the whole workitem as JSON on receive / reply

    [boss]                       ; or SkyNET's amqp_host/amqp_user/amqp_pwd/amqp_vhost
    broker_url = amqp://guest:guest@rabbit:5672/boss

    [build]                      ; anything else: the participant's own config
    worker_dir = /srv/build

As SkyNET's Exo did, the file is read over ``<skynet dir>/skynet.conf`` and
is followed by ``<include_dir>/*.conf`` (``[skynet] include_dir``, default
``<skynet dir>/conf.d``; in name order) and ``<skynet dir>/<name>.conf``: a
later file's keys win, missing files are skipped. The SkyNET directory is
``/etc/skynet`` unless ``$BOSS_SKYNET_CONFIG_DIR`` says otherwise. Values
are interpolated as SkyNET's ``SafeConfigParser`` did (``%(key)s``, ``%%``
for ``%``); a value that is not valid interpolation (``p%40ss``, or
supervisor's ``%(program_name)s``) is taken as written.

Every problem is a ``ParticipantConfigError`` whose message is one line
naming the file and the key, because a participant is usually started by
supervisor and its first line of stderr is all an operator sees.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from engine.config import SKYNET_AMQP_KEYS, Config
from engine.settings import ConfigError, Section, checked, read_ini, setting

__all__ = [
    "KNOWN_KEYS",
    "ParticipantConfig",
    "ParticipantConfigError",
    "SkynetFiles",
    "load_config",
    "read_merged",
]


class ParticipantConfigError(ConfigError):
    """The participant's configuration (or its handler code) is unusable."""


class LenientInterpolation(configparser.BasicInterpolation):
    """``%(key)s`` and ``%%`` as SkyNET's ``SafeConfigParser`` read them; a
    value that is not valid interpolation (a stray ``%``, as in a
    percent-encoded password, or supervisor's own ``%(program_name)s`` in a
    program file that is also the participant's file) is taken as written
    instead of failing."""

    def before_get(self, parser, section, option, value, defaults):  # type: ignore[no-untyped-def]
        try:
            return super().before_get(parser, section, option, value, defaults)
        except (
            configparser.InterpolationSyntaxError,
            configparser.InterpolationMissingOptionError,
        ):
            return value


@dataclass(frozen=True)
class SkynetFiles(Section):
    """Where SkyNET's shared files are: ``[skynet]`` of the merged files, and
    ``$BOSS_SKYNET_CONFIG_DIR`` / ``$BOSS_SKYNET_INCLUDE_DIR``."""

    SECTION: ClassVar[str] = "skynet"
    ENV_PREFIX: ClassVar[str] = "BOSS_SKYNET_"

    #: holds ``skynet.conf`` and ``<name>.conf``
    config_dir: str = "/etc/skynet"
    #: ``*.conf`` read after the participant's file; empty: ``<config_dir>/conf.d``
    include_dir: str = ""
    #: the handler logger's level (``DEBUG``, ``INFO``, ...), as SkyNET's
    log_level: str = setting("", coerce=lambda v: v.upper())

    @classmethod
    def file_values(cls, parser: configparser.ConfigParser) -> dict[str, str]:
        keys = cls.known_keys()
        return {k: v for k, v in super().file_values(parser).items() if k in keys}


def _participant_name(path: str) -> str:
    """``[participant] name`` of the file alone (to find ``<name>.conf``)."""
    try:
        return read_ini(path).get("participant", "name", fallback="").strip()
    except ConfigError:
        return ""


def read_merged(
    path: str, environ: Mapping[str, str] | None = None
) -> tuple[configparser.ConfigParser, dict[tuple[str, str], str], SkynetFiles]:
    """The participant's file merged with SkyNET's (see the module
    docstring), which file set each ``(section, key)``, and where the SkyNET
    files are. A missing ``path`` is an error; the others are optional."""
    env = os.environ if environ is None else environ
    parser = configparser.ConfigParser(
        interpolation=LenientInterpolation(), inline_comment_prefixes=(";",)
    )
    origin: dict[tuple[str, str], str] = {}

    def read(file: str) -> None:
        read_ini(file, parser)
        for section, keys in read_ini(file).items():
            for key in keys:
                origin[(section, key)] = file

    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such configuration file")
    first = SkynetFiles.from_parser(None, environ=env)
    skynet_conf = Path(first.config_dir) / "skynet.conf"
    if skynet_conf.is_file():
        read(str(skynet_conf))
    read(path)
    files = SkynetFiles.from_parser(parser, environ=env)
    include = Path(files.include_dir or Path(files.config_dir) / "conf.d")
    if include.is_dir():
        for extra in sorted(include.glob("*.conf")):
            if extra.is_file() and extra.resolve() != Path(path).resolve():
                read(str(extra))
    name = parser.get("participant", "name", fallback="").strip() or _participant_name(path)
    if name:
        own = Path(files.config_dir) / f"{name}.conf"
        if own.is_file() and own.resolve() != Path(path).resolve():
            read(str(own))
    return parser, origin, SkynetFiles.from_parser(parser, environ=env)


def _where(origin: dict[tuple[str, str], str], section: str, key: str, default: str) -> str:
    return f"{origin.get((section, key), default)}: [{section}]"


@dataclass(frozen=True)
class ParticipantSection(Section):
    """The ``[participant]`` section as written (no environment variables)."""

    SECTION: ClassVar[str] = "participant"

    name: str = ""
    queue: str = ""
    regexp: str = ""
    code: str = ""
    class_name: str = setting("", key="class")
    register: bool = False
    lease_after: float | None = setting(None, check=checked(lambda v: v >= 0, "must be 0 or more"))
    lease: float | None = setting(None, check=checked(lambda v: v > 0, "must be greater than 0"))
    debug_trace: bool = False
    debug_dump: bool = False


#: the keys of ``[participant]`` this runtime reads
KNOWN_KEYS = frozenset(ParticipantSection.known_keys())


@dataclass(frozen=True)
class ParticipantConfig:
    """Everything the runtime needs, read once at start-up."""

    #: the participant's name (what process definitions call)
    name: str
    #: the durable queue its instances consume
    queue: str
    #: the handler: a ``.py`` path (absolute) or a dotted module name; empty
    #: when a handler object is given to ``Runtime`` directly
    code: str = ""
    #: the handler class in ``code``
    class_name: str = "ParticipantHandler"
    #: ``regexp`` from the file, if any
    regexp: str | None = None
    #: publish ``{"type": "register", ...}`` to the engine queue at start-up
    register: bool = False
    debug_trace: bool = False
    debug_dump: bool = False
    #: the ``[boss]`` settings, with ``lease_after``/``lease`` overridden
    boss: Config = field(default_factory=Config)
    #: the whole INI (handed to the handler's lifecycle "start")
    parser: configparser.ConfigParser | None = None
    #: the file it was read from
    path: str = ""
    #: keys of ``[participant]`` this runtime does not know (logged)
    unknown_keys: tuple[str, ...] = ()
    #: SkyNET's ``[skynet] log_level`` for the handler's logger (empty: unset)
    log_level: str = ""

    @property
    def pattern(self) -> str:
        """What registration announces: the regexp, else the name."""
        return self.regexp or self.name

    def section(self, name: str) -> dict[str, str]:
        """One of the participant's own sections (empty if absent)."""
        if self.parser is None or not self.parser.has_section(name):
            return {}
        return dict(self.parser[name])


def resolve_code(code: str, base_dir: Path) -> str:
    """A ``.py`` path made absolute (relative to the INI file's directory),
    or a dotted module name as is. A value is a path when it ends in ``.py``
    or contains a path separator."""
    if code.endswith(".py") or os.sep in code or "/" in code:
        path = Path(code).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        return str(path)
    return code


def load_config(
    path: str | os.PathLike[str],
    *,
    need_code: bool = True,
    environ: Mapping[str, str] | None = None,
) -> ParticipantConfig:
    """Read and check a participant INI file (see the module docstring).

    ``need_code=False`` is for ``Runtime(config, handler=obj)``, where the
    handler object is given and ``code`` may be absent.
    """
    path = str(path)
    env = os.environ if environ is None else environ
    try:
        parser, files, skynet = read_merged(path, env)
        if not parser.has_section("participant"):
            raise ConfigError(f"{path}: no [participant] section")
        values, origin = ParticipantSection.collect(parser, path, environ=env)
        origin = {k: _where(files, "participant", k, path) for k in origin}
        section = ParticipantSection.from_mapping(
            {k: v for k, v in values.items() if k in KNOWN_KEYS}, origin
        )
        section_keys = set(values)
        values, origin = Config.collect(parser, path, environ=env)
        amqp = next((k for k in SKYNET_AMQP_KEYS if ("boss", k) in files), "")
        origin = {
            k: _where(files, "boss", amqp if k == "broker_url" and amqp else k, path)
            if w.startswith(path)
            else w
            for k, w in origin.items()
        }
        values.update(Config.loaded_values(parser, path, env))
        boss = Config.from_mapping(values, origin)
    except ConfigError as exc:
        raise ParticipantConfigError(str(exc)) from None
    name = section.name
    if not name:
        raise ParticipantConfigError(f"{path}: [participant] name is missing")
    code = section.code
    if not code and need_code:
        raise ParticipantConfigError(
            f"{path}: [participant] code is missing (a .py file or a module name)"
        )
    if code:
        code = resolve_code(code, Path(path).resolve().parent)
    class_name = section.class_name or "ParticipantHandler"
    if not class_name.isidentifier():
        raise ParticipantConfigError(
            f"{path}: [participant] class = {class_name!r}: not a Python class name"
        )
    if section.lease_after is not None:
        boss = boss.replace(lease_after=section.lease_after)
    if section.lease is not None:
        boss = boss.replace(lease=section.lease)
    return ParticipantConfig(
        name=name,
        queue=section.queue or name,
        code=code,
        class_name=class_name,
        regexp=section.regexp or None,
        register=section.register,
        debug_trace=section.debug_trace,
        debug_dump=section.debug_dump,
        boss=boss,
        parser=parser,
        path=path,
        unknown_keys=tuple(sorted(set(section_keys) - KNOWN_KEYS)),
        log_level=skynet.log_level,
    )
