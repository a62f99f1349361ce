"""Launchers: event sources that launch processes.

* ``base``: the interface (``RawEvent``, ``NormalisedEvent``, ``Source``,
  ``MalformedEvent``), wfid and Eiffel id derivation;
* ``launcher``: normalised events to launch items (process store, rules),
  published with the source's Eiffel event as their cause;
* ``rules`` (the rules file); the process store they read
  (``<store>/<Project/Path>/<LABEL>.<name>.yaml`` + ``.conf``,
  ``enable_project``) is ``engine.process_store``;
* the sources: ``obs`` (the OBS message bus, legacy BOSS items), ``github``,
  ``gitlab`` (webhooks, served by ``http``), ``gerrit`` (stream-events),
  ``eiffel`` (an adapter over ``engine.trace.triggers``);
* ``traceability``: which Eiffel event each source event is;
* ``settings``: the ``[launchers]`` configuration section.

This is the package's surface: the rest of the code imports from here
(``from engine.launchers import Launcher, RawEvent``), never from the
submodules, which stay private to the package (the tests may use them).
Names are loaded on first use (PEP 562), so ``import engine.launchers``
is cheap.

``docs/launchers.md`` describes them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.launchers.base import MalformedEvent, NormalisedEvent, RawEvent, Source
    from engine.launchers.eiffel import EiffelSource
    from engine.launchers.gerrit import GerritSource, GerritStream
    from engine.launchers.github import GitHubSource
    from engine.launchers.gitlab import GitLabSource
    from engine.launchers.http import create_app
    from engine.launchers.launcher import Launcher, LaunchError
    from engine.launchers.obs import ObsConsumer, ObsSource
    from engine.launchers.rules import RuleError
    from engine.launchers.settings import LauncherSettings

#: name -> (submodule, attribute)
_NAMES = {
    "MalformedEvent": ("base", "MalformedEvent"),
    "NormalisedEvent": ("base", "NormalisedEvent"),
    "RawEvent": ("base", "RawEvent"),
    "Source": ("base", "Source"),
    "EiffelSource": ("eiffel", "EiffelSource"),
    "GerritSource": ("gerrit", "GerritSource"),
    "GerritStream": ("gerrit", "GerritStream"),
    "GitHubSource": ("github", "GitHubSource"),
    "GitLabSource": ("gitlab", "GitLabSource"),
    "create_app": ("http", "create_app"),
    "LaunchError": ("launcher", "LaunchError"),
    "Launcher": ("launcher", "Launcher"),
    "ObsConsumer": ("obs", "ObsConsumer"),
    "ObsSource": ("obs", "ObsSource"),
    "RuleError": ("rules", "RuleError"),
    "LauncherSettings": ("settings", "LauncherSettings"),
}

__all__ = [
    "EiffelSource",
    "GerritSource",
    "GerritStream",
    "GitHubSource",
    "GitLabSource",
    "LaunchError",
    "Launcher",
    "LauncherSettings",
    "MalformedEvent",
    "NormalisedEvent",
    "ObsConsumer",
    "ObsSource",
    "RawEvent",
    "RuleError",
    "Source",
    "create_app",
]


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _NAMES[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
