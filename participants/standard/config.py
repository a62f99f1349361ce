"""Reading a standard participant's own INI section with typed defaults.

Every standard participant keeps its settings in a section named after it
(``[notify_irc]``, ``[obs]``, ...). ``Section`` reads one, falling back to
the defaults the participant documents, and names the file's key in every
error, so a bad value stops the participant at start with a clear message.
"""

from __future__ import annotations

import configparser
from typing import Any

from engine import settings

__all__ = ["ConfigError", "Section", "as_lines", "as_list"]


class ConfigError(settings.ConfigError):
    """A bad value in a participant's INI section."""


class Section:
    """One INI section (which may be missing: every key then has its default)."""

    def __init__(self, config: configparser.ConfigParser | None, name: str) -> None:
        self.name = name
        self._values: dict[str, str] = {}
        if config is not None and config.has_section(name):
            self._values = {k: v for k, v in config.items(name, raw=True)}

    def get(self, key: str, default: str = "") -> str:
        value = self._values.get(key)
        return default if value is None or value.strip() == "" else value.strip()

    def int(self, key: str, default: int) -> int:
        return self._convert("int", key, default)

    def float(self, key: str, default: float) -> float:
        return self._convert("float", key, default)

    def bool(self, key: str, default: bool) -> bool:
        return self._convert("bool", key, str(default).lower())

    def _convert(self, kind: str, key: str, default: Any) -> Any:
        """The shared coercions of ``engine.settings``."""
        raw = self.get(key, str(default))
        try:
            return settings.convert(kind, raw)
        except ValueError as exc:
            raise ConfigError(f"[{self.name}] {key} = {raw!r}: {exc}", key) from None


def as_list(value: Any) -> list[str]:
    """A list of strings from a list, a comma or space separated string, or
    nothing."""
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None and str(v) != ""]
    return [part for part in str(value).replace(",", " ").split() if part]


def as_lines(value: Any) -> list[str]:
    """Text lines from a string (split on newlines) or a list (each item's
    lines)."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [line for item in value for line in as_lines(item)]
    return [line for line in str(value).splitlines() if line.strip()]
