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

    [boss]                       ; or BOSS's old [amqp] host/user/pwd/vhost
    broker_url = amqp://guest:guest@rabbit:5672/boss

    [build]                      ; anything else: the participant's own config
    worker_dir = /srv/build

Every problem is a ``ParticipantConfigError`` whose message is one line
naming the file and the key, because a participant is usually started by
supervisor and its first line of stderr is all an operator sees.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from engine.config import Config
from engine.settings import ConfigError, Section, checked, read_ini, setting

__all__ = ["KNOWN_KEYS", "ParticipantConfig", "ParticipantConfigError", "load_config"]


class ParticipantConfigError(ConfigError):
    """The participant's configuration (or its handler code) is unusable."""


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


def load_config(path: str | os.PathLike[str], *, need_code: bool = True) -> ParticipantConfig:
    """Read and check a participant INI file (see the module docstring).

    ``need_code=False`` is for ``Runtime(config, handler=obj)``, where the
    handler object is given and ``code`` may be absent.
    """
    path = str(path)
    try:
        parser = read_ini(path)
        if not parser.has_section("participant"):
            raise ConfigError(f"{path}: no [participant] section")
        values, origin = ParticipantSection.collect(parser, path)
        section = ParticipantSection.from_mapping(
            {k: v for k, v in values.items() if k in KNOWN_KEYS}, origin
        )
        boss = Config.from_parser(parser, source=path)
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
        unknown_keys=tuple(sorted(set(values) - KNOWN_KEYS)),
    )
