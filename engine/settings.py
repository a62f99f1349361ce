"""One way to declare and load a configuration section.

Every section BOSS reads (``[boss]``, ``[web]``, ``[skynet]``,
``[launchers]``, a participant's ``[participant]``) is a frozen dataclass
that inherits ``Section`` and names its INI section and environment prefix::

    @dataclass(frozen=True)
    class WebConfig(Section):
        SECTION: ClassVar[str] = "web"
        ENV_PREFIX: ClassVar[str] = "BOSS_WEB_"

        bind: str = "127.0.0.1:8080"
        anonymous: bool = True
        page_size: int = setting(50, check=at_least(1))

A field's type picks its coercion (``COERCIONS``: ``str``, ``bool``,
``int``, ``float``, ``tuple[str, ...]``); ``setting(coerce=...)`` gives
another (``to_urls``, ``to_duration``), ``setting(check=...)`` a
validation, ``setting(key="class")`` an INI key that is not a Python name,
``setting(internal=True)`` a field no file or variable sets (``source``,
the file read, is filled in by the loader).

The loader reads the file's section, then the environment (``ENV_PREFIX``
plus the key in upper case), then explicit overrides: the last wins. It
remembers where each value came from, and a bad value is a ``ConfigError``
naming it: ``boss.ini: [boss] lease = 'soon': could not convert string to
float: 'soon'``, ``environment BOSS_HEARTBEAT: heartbeat = 'x': ...``.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING
from pathlib import Path
from typing import Any, ClassVar, Self

from engine.core.durations import parse_duration

__all__ = [
    "COERCIONS",
    "ConfigError",
    "Section",
    "at_least",
    "checked",
    "config_paths",
    "convert",
    "locate",
    "not_negative",
    "positive",
    "read_ini",
    "setting",
    "to_bool",
    "to_duration",
    "to_int",
    "to_list",
    "to_urls",
    "unusable",
]


class ConfigError(ValueError):
    """A configuration value is missing or malformed (``key`` names it)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


# -- coercions: a string from a file or a variable to the field's type ------------------------

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def to_bool(raw: str) -> bool:
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise ValueError("not a boolean (true/false)")


def to_int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("not an integer") from None


def to_list(raw: str) -> tuple[str, ...]:
    """Comma or space separated words."""
    return tuple(word for word in raw.replace(",", " ").split() if word)


def to_urls(raw: str) -> tuple[str, ...]:
    """Comma or space separated URLs, without a trailing ``/``."""
    return tuple(url.rstrip("/") for url in to_list(raw))


def to_duration(raw: str) -> float:
    """Seconds, or a duration of the process language (``500ms``, ``5m``, ``1h30m``)."""
    return parse_duration(raw)


#: the coercion of a field by its declared type (``X | None`` as ``X``)
COERCIONS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "bool": to_bool,
    "int": to_int,
    "float": float,
    "tuple[str, ...]": to_list,
}


def convert(kind: str, raw: str) -> Any:
    """``raw`` (stripped) as a ``kind`` of ``COERCIONS``; ``ValueError`` says why not."""
    return COERCIONS[kind.removesuffix(" | None")](raw.strip())


# -- validations: a coerced value that is still wrong --------------------------------------


def checked(predicate: Callable[[Any], bool], problem: str) -> Callable[[Any], None]:
    """A validation: ``problem`` unless ``predicate(value)``."""

    def check(value: Any) -> None:
        if not predicate(value):
            raise ValueError(problem)

    return check


def positive(unit: str = "") -> Callable[[Any], None]:
    return checked(lambda v: v > 0, "must be more than 0" + (f" {unit}" if unit else ""))


def not_negative() -> Callable[[Any], None]:
    return checked(lambda v: v >= 0, "must not be negative")


def at_least(low: int) -> Callable[[Any], None]:
    return checked(lambda v: v >= low, f"must be at least {low}")


# -- declaring a section ---------------------------------------------------------------------


def setting(
    default: Any = MISSING,
    *,
    factory: Callable[[], Any] | Any = MISSING,
    coerce: Callable[[str], Any] | None = None,
    check: Callable[[Any], None] | None = None,
    key: str | None = None,
    internal: bool = False,
) -> Any:
    """A field with its own coercion, validation or INI key (see the module docstring)."""
    meta = {"coerce": coerce, "check": check, "key": key, "internal": internal}
    return dataclasses.field(default=default, default_factory=factory, metadata=meta)


class Section:
    """The loader of a frozen dataclass that declares one INI section."""

    __slots__ = ()

    #: the INI section: ``[boss]``, ``[web]``, ...
    SECTION: ClassVar[str] = ""
    #: the environment variables' prefix (``BOSS_WEB_``); empty: none are read
    ENV_PREFIX: ClassVar[str] = ""
    #: how an unknown key is called in errors
    UNKNOWN: ClassVar[str] = "unknown key"
    #: ``load(path)`` of a file that does not exist: quietly the defaults (or an error)
    MISSING_OK: ClassVar[bool] = False
    #: ``load`` refuses a file without this section
    NEEDS_SECTION: ClassVar[bool] = False

    @classmethod
    def known_keys(cls) -> dict[str, dataclasses.Field[Any]]:
        """The fields a file or a variable may set, by INI key."""
        return {
            f.metadata.get("key") or f.name: f
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if not f.metadata.get("internal")
        }

    @classmethod
    def has_section(cls, parser: configparser.ConfigParser) -> bool:
        return parser.has_section(cls.SECTION)

    @classmethod
    def file_values(cls, parser: configparser.ConfigParser) -> dict[str, str]:
        """The file's values of this section (a hook for old spellings)."""
        return dict(parser[cls.SECTION]) if parser.has_section(cls.SECTION) else {}

    @classmethod
    def collect(
        cls,
        parser: configparser.ConfigParser | None = None,
        source: str = "",
        *,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The raw values (file, then environment, then overrides; the last
        wins) and where each came from."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        if parser is not None:
            from_file = cls.file_values(parser)
            values.update(from_file)
            where = f"{source}: [{cls.SECTION}]" if source else f"[{cls.SECTION}]"
            origin.update(dict.fromkeys(from_file, where))
        if cls.ENV_PREFIX:
            for key in cls.known_keys():
                var = cls.ENV_PREFIX + key.upper()
                if var in env:
                    values[key] = env[var]
                    origin[key] = f"environment {var}:"
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = value
                origin.pop(key, None)
        return values, origin

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], origin: Mapping[str, str] | None = None
    ) -> Self:
        """The section from raw values by INI key (strings are coerced and
        checked; other values are taken as they are)."""
        keys = cls.known_keys()
        internal = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("internal")}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        for key, raw in values.items():
            where = (origin or {}).get(key) or f"[{cls.SECTION}]"
            # an internal field: from the loader or an argument, never a file
            f = keys.get(key) or (internal.get(key) if key not in (origin or {}) else None)
            if f is None:
                known = ", ".join(sorted(keys))
                raise ConfigError(f"{where} {cls.UNKNOWN} {key!r}; known: {known}", key)
            try:
                kwargs[f.name] = _coerce(f, raw)
            except ValueError as exc:
                raise ConfigError(f"{where} {key} = {raw.strip()!r}: {exc}", key) from None
        return cls(**kwargs)

    @classmethod
    def from_parser(
        cls,
        parser: configparser.ConfigParser | None,
        source: str = "",
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Self:
        """The section of an already-read INI, with the environment and overrides over it."""
        values, origin = cls.collect(parser, source, environ=environ, overrides=overrides)
        for key, value in cls.loaded_values(parser, source, environ).items():
            if overrides.get(key) is None:
                values[key] = value
        return cls.from_mapping(values, origin)

    @classmethod
    def loaded_values(
        cls,
        parser: configparser.ConfigParser | None,
        source: str,
        environ: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        """The internal fields the loader fills in (unless overridden): ``source``."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return {"source": source} if "source" in names else {}

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Self:
        """The section from ``path`` (else the first of ``config_paths``), the
        environment and overrides."""
        env = os.environ if environ is None else environ
        parser, source = cls.find(path, env)
        return cls.from_parser(parser, source, environ=env, **overrides)

    @classmethod
    def find(
        cls, path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
    ) -> tuple[configparser.ConfigParser | None, str]:
        """The file ``load`` reads, read, and its name; ``(None, "")`` if none."""
        found = locate(path, environ, missing_ok=cls.MISSING_OK)
        if found is None:
            return None, ""
        parser = read_ini(found)
        if cls.NEEDS_SECTION and not cls.has_section(parser):
            raise ConfigError(f"{found}: no [{cls.SECTION}] section")
        return parser, str(found)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Self:
        return cls.from_file(path, environ=environ, **overrides)

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (strings coerced as from a file)."""
        fields = {f.name: f for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return dataclasses.replace(
            self,  # type: ignore[type-var]
            **{k: _coerce(fields[k], v) if k in fields else v for k, v in changes.items()},
        )


def _coerce(f: dataclasses.Field[Any], raw: Any) -> Any:
    kind = str(f.type).removesuffix(" | None")
    if not isinstance(raw, str):
        return tuple(raw) if kind.startswith("tuple") and isinstance(raw, list) else raw
    coerce = f.metadata.get("coerce") or COERCIONS.get(kind, str)
    value = coerce(raw.strip())
    check = f.metadata.get("check")
    if check is not None:
        check(value)
    return value


# -- the file --------------------------------------------------------------------------------


def config_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where the configuration file is looked for, in order."""
    env = os.environ if environ is None else environ
    if env.get("BOSS_CONFIG"):
        return [Path(env["BOSS_CONFIG"])]
    return [
        Path("boss.ini"),
        Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "boss" / "boss.ini",
        Path("/etc/boss/boss.ini"),
    ]


def locate(
    path: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None = None,
    *,
    missing_ok: bool = False,
) -> Path | None:
    """``path`` if given (an error if it is not a file, unless ``missing_ok``),
    else the file ``$BOSS_CONFIG`` names (always an error if it is not a
    readable file: it was asked for, and falling back to no file would run
    on the embedded store unnoticed; ``/dev/null`` says "no file"), else the
    first of ``config_paths`` that exists, else None."""
    if path is None:
        env = os.environ if environ is None else environ
        named = env.get("BOSS_CONFIG")
        if named:
            if named == os.devnull:
                return None
            problem = unusable(named)
            if problem is not None:
                raise ConfigError(f"{named} (named by $BOSS_CONFIG): {problem}")
            return Path(named)
        return next((p for p in config_paths(environ) if p.is_file()), None)
    if Path(path).is_file():
        return Path(path)
    if missing_ok:
        return None
    raise ConfigError(f"{path}: {unusable(path) or 'no such configuration file'}")


def unusable(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as a configuration file, or None."""
    p = Path(path)
    try:
        if p.is_file():
            with open(p, "rb"):
                return None
        if p.is_dir():
            return "a directory, not a configuration file"
        if p.exists():
            return "not a regular file"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not p.parent.is_dir():
        return f"no such configuration file (no directory {p.parent})"
    return "no such configuration file"


def read_ini(
    path: str | os.PathLike[str], into: configparser.ConfigParser | None = None
) -> configparser.ConfigParser:
    """The INI file at ``path`` (``;`` after a blank starts a comment);
    every problem is a one-line ``ConfigError`` naming the file. ``into``:
    read it over an existing parser (a later file's keys win), else a new
    one without interpolation."""
    parser = into or configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    try:
        with open(path, encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except configparser.Error as exc:
        raise ConfigError(f"{path}: {' '.join(str(exc).split())}") from None
    return parser


class ConfigSection(Section):
    """A section of the ``[boss]`` configuration file read beside it: ``load``
    takes the loaded ``engine.config.Config`` and reads the same file (its
    ``source``) unless ``path`` names another; the environment and
    ``overrides`` over it. ``[launchers]``, ``[reporters]``, ``[radar]``."""

    __slots__ = ()

    @classmethod
    def load(  # type: ignore[override]
        cls,
        config: Any = None,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Self:
        if path is None and config is not None and getattr(config, "source", ""):
            path = config.source
        return cls.from_file(path, environ=environ, **overrides)
