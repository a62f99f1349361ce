"""The program file: one per participant, in supervisord's include directory.

It is at once supervisor's configuration of the participant's instances and
the participant's own INI file (``participants.config``), so there is one
file to read when something is wrong::

    ; written by skynet
    [participant]
    name = build
    queue = build
    code = /usr/share/boss/build.py
    class = ParticipantHandler

    [boss]                                 ; what the instances connect to
    broker_url = amqp://boss:...@rabbit/boss

    [build]                                ; the participant's own sections
    worker_dir = /srv/build

    [skynet]                               ; how skynet installed it
    instances = 2
    enabled = true
    user = build

    [program:build@00]                     ; one section per instance
    command = /usr/bin/python3 -m participants.runtime /etc/supervisor/conf.d/build.conf
    autostart = true
    ...
    [program:build@01]
    ...

Each instance is its own supervisor program (and so its own process group)
named ``<participant>@<NN>``: scaling adds or removes whole programs, which
``supervisorctl update`` semantics (``reloadConfig``, then add/remove only
the groups that changed) apply without touching the instances that stay. A
``numprocs`` change would change the group and restart every instance.

Every program carries ``SKYNET_CONFIG=<digest>`` of the participant's
sections in its environment, so an edit of ``[participant]``, ``[boss]`` or
the own sections makes supervisor see every instance as changed (and
restart it on ``apply``), while the instance count does not.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from skynet.errors import Invalid

__all__ = ["SEPARATOR", "ProgramSpec", "instance_names", "parse", "participant_of", "render"]

#: between a participant's name and its instance number in program names
SEPARATOR = "@"
#: what a participant name may look like (also a file name and a queue name)
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
#: sections skynet writes itself (a participant's own sections may not use them)
RESERVED = ("participant", "boss", "skynet", "amqp")


def instance_name(name: str, index: int) -> str:
    return f"{name}{SEPARATOR}{index:02d}"


def instance_names(name: str, count: int) -> list[str]:
    return [instance_name(name, i) for i in range(count)]


def participant_of(program: str) -> str | None:
    """``build@01`` -> ``build``; None for a program that is not an instance."""
    name, sep, num = program.rpartition(SEPARATOR)
    return name if sep and num.isdigit() and NAME_RE.match(name) else None


@dataclass(frozen=True)
class ProgramSpec:
    """Everything a program file says (what ``install`` was given)."""

    name: str
    code: str
    queue: str = ""
    class_name: str = "ParticipantHandler"
    regexp: str | None = None
    user: str | None = None
    instances: int = 1
    enabled: bool = True
    #: further ``[participant]`` keys (register, lease_after, debug_trace...)
    participant: dict[str, str] = field(default_factory=dict)
    #: the ``[boss]`` section
    boss: dict[str, str] = field(default_factory=dict)
    #: the participant's own sections
    sections: dict[str, dict[str, str]] = field(default_factory=dict)
    #: supervisor settings
    python: str = "python3"
    startsecs: int = 1
    startretries: int = 3
    stopwaitsecs: int = 60
    log_dir: str = "/var/log/boss"
    #: the file (set by ``parse``, needed by ``render`` for the command line)
    path: str = ""

    def __post_init__(self) -> None:
        if not self.queue:
            object.__setattr__(self, "queue", self.name)

    def replace(self, **changes: Any) -> ProgramSpec:
        return replace(self, **changes)

    @property
    def programs(self) -> list[str]:
        """The instances' program (and group) names."""
        return instance_names(self.name, self.instances)

    def digest(self) -> str:
        """A hash of what the instances run with (not how many there are)."""
        text = _render_sections(self) + f"user={self.user or ''}\n"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _ini(sections: list[tuple[str, dict[str, str]]]) -> str:
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    for name, values in sections:
        parser.add_section(name)
        for k, v in values.items():
            parser.set(name, k, str(v))
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def _render_sections(spec: ProgramSpec) -> str:
    participant = {
        "name": spec.name,
        "queue": spec.queue,
        "code": spec.code,
        "class": spec.class_name,
    }
    if spec.regexp:
        participant["regexp"] = spec.regexp
    participant.update(spec.participant)
    sections = [("participant", participant)]
    if spec.boss:
        sections.append(("boss", dict(spec.boss)))
    sections.extend((k, dict(v)) for k, v in spec.sections.items())
    return _ini(sections)


def _program(spec: ProgramSpec, index: int) -> dict[str, str]:
    program = instance_name(spec.name, index)
    values = {
        "command": f"{spec.python} -m participants.runtime {spec.path}",
        "directory": str(Path(spec.code).parent) if "/" in spec.code else "/",
        "autostart": "true" if spec.enabled else "false",
        "autorestart": "true",
        "startsecs": str(spec.startsecs),
        "startretries": str(spec.startretries),
        "stopsignal": "TERM",
        "stopwaitsecs": str(spec.stopwaitsecs),
        "killasgroup": "true",
        "redirect_stderr": "true",
        "stdout_logfile": f"{spec.log_dir}/{program}.log",
        "stdout_logfile_maxbytes": "10MB",
        "stdout_logfile_backups": "3",
        "environment": f'SKYNET_PARTICIPANT="{spec.name}",SKYNET_INSTANCE="{index:02d}",'
        f'SKYNET_CONFIG="{spec.digest()}",PYTHONUNBUFFERED="1"',
    }
    if spec.user:
        values["user"] = spec.user
    return values


def render(spec: ProgramSpec) -> str:
    """The program file's text (``spec.path`` must be set)."""
    if not spec.path:
        raise ValueError("ProgramSpec.path is not set")
    meta = {"instances": str(spec.instances), "enabled": "true" if spec.enabled else "false"}
    if spec.user:
        meta["user"] = spec.user
    programs = [
        (f"program:{instance_name(spec.name, i)}", _program(spec, i)) for i in range(spec.instances)
    ]
    # '%' is literal here, but supervisor expands %(...)s in program values
    text = _render_sections(spec) + _ini([("skynet", meta), *programs])
    return (
        f"; written by skynet for participant {spec.name}: change it with skynet "
        "(scale, enable, disable, rebuild)\n" + text
    )


def parse(path: str | Path) -> ProgramSpec:
    """Read a program file back (``Invalid`` if it is not one of ours)."""
    path = Path(path)
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        with path.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except (OSError, configparser.Error) as exc:
        raise Invalid(f"{path}: cannot read: {' '.join(str(exc).split())}") from None
    if not parser.has_section("participant"):
        raise Invalid(f"{path}: no [participant] section: not a skynet program file")
    part = dict(parser["participant"])
    meta = dict(parser["skynet"]) if parser.has_section("skynet") else {}
    programs = [s for s in parser.sections() if s.startswith("program:")]
    first = dict(parser[programs[0]]) if programs else {}
    name = part.pop("name", "")
    command = first.get("command", "")
    instances = int(meta.get("instances", len(programs)) or 0)
    return ProgramSpec(
        name=name,
        code=part.pop("code", ""),
        queue=part.pop("queue", "") or name,
        class_name=part.pop("class", "ParticipantHandler"),
        regexp=part.pop("regexp", None),
        user=meta.get("user") or first.get("user") or None,
        instances=instances,
        enabled=meta.get("enabled", first.get("autostart", "true")).lower() == "true",
        participant=part,
        boss=dict(parser["boss"]) if parser.has_section("boss") else {},
        sections={
            s: dict(parser[s])
            for s in parser.sections()
            if s not in RESERVED and not s.startswith(("program:", "group:"))
        },
        python=command.split(" -m ", 1)[0] if " -m " in command else "python3",
        startsecs=int(first.get("startsecs", 1)),
        startretries=int(first.get("startretries", 3)),
        stopwaitsecs=int(first.get("stopwaitsecs", 60)),
        log_dir=str(Path(first["stdout_logfile"]).parent)
        if "stdout_logfile" in first
        else "/var/log/boss",
        path=str(path),
    )
