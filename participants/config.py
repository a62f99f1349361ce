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

from engine.config import Config, ConfigError

__all__ = ["KNOWN_KEYS", "ParticipantConfig", "ParticipantConfigError", "load_config"]

#: the keys of ``[participant]`` this runtime reads
KNOWN_KEYS = frozenset(
    {
        "name",
        "queue",
        "regexp",
        "code",
        "class",
        "register",
        "lease_after",
        "lease",
        "debug_trace",
        "debug_dump",
    }
)


class ParticipantConfigError(ValueError):
    """The participant's configuration (or its handler code) is unusable."""


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


def _bool(path: str, section: configparser.SectionProxy, key: str, default: bool) -> bool:
    try:
        return section.getboolean(key, fallback=default)
    except ValueError:
        raise ParticipantConfigError(
            f"{path}: [participant] {key} = {section[key]!r}: not a boolean (true/false)"
        )


def _seconds(
    path: str, section: configparser.SectionProxy, key: str, *, positive: bool
) -> float | None:
    if key not in section:
        return None
    raw = section[key].strip()
    try:
        value = float(raw)
    except ValueError:
        raise ParticipantConfigError(f"{path}: [participant] {key} = {raw!r}: not a number")
    if value < 0 or (positive and value == 0):
        need = "greater than 0" if positive else "0 or more"
        raise ParticipantConfigError(f"{path}: [participant] {key} = {raw!r}: must be {need}")
    return value


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
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        raise ParticipantConfigError(f"{path}: no such configuration file")
    except OSError as exc:
        raise ParticipantConfigError(f"{path}: cannot read: {exc.strerror or exc}")
    except configparser.Error as exc:
        raise ParticipantConfigError(f"{path}: {' '.join(str(exc).split())}")
    if not parser.has_section("participant"):
        raise ParticipantConfigError(f"{path}: no [participant] section")
    section = parser["participant"]
    name = section.get("name", "").strip()
    if not name:
        raise ParticipantConfigError(f"{path}: [participant] name is missing")
    queue = section.get("queue", "").strip() or name
    regexp = section.get("regexp", "").strip() or None
    code = section.get("code", "").strip()
    if not code and need_code:
        raise ParticipantConfigError(
            f"{path}: [participant] code is missing (a .py file or a module name)"
        )
    if code:
        code = resolve_code(code, Path(path).resolve().parent)
    class_name = section.get("class", "").strip() or "ParticipantHandler"
    if not class_name.isidentifier():
        raise ParticipantConfigError(
            f"{path}: [participant] class = {class_name!r}: not a Python class name"
        )
    try:
        boss = Config.from_parser(parser, source=path)
    except ConfigError as exc:
        raise ParticipantConfigError(f"{path}: [boss] {exc}")
    lease_after = _seconds(path, section, "lease_after", positive=False)
    lease = _seconds(path, section, "lease", positive=True)
    if lease_after is not None:
        boss = boss.replace(lease_after=lease_after)
    if lease is not None:
        boss = boss.replace(lease=lease)
    if boss.lease <= 0:
        raise ParticipantConfigError(f"{path}: [boss] lease = {boss.lease}: must be greater than 0")
    return ParticipantConfig(
        name=name,
        queue=queue,
        code=code,
        class_name=class_name,
        regexp=regexp,
        register=_bool(path, section, "register", False),
        debug_trace=_bool(path, section, "debug_trace", False),
        debug_dump=_bool(path, section, "debug_dump", False),
        boss=boss,
        parser=parser,
        path=path,
        unknown_keys=tuple(sorted(set(section) - KNOWN_KEYS)),
    )
