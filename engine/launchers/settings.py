"""The launchers' settings: a ``[launchers]`` section of the same INI file
as ``[boss]`` (``engine/config.py`` reads only ``[boss]``), with
``BOSS_LAUNCHERS_<KEY>`` environment variables over it.

Where a value comes from, first match wins: keyword overrides, the
environment, the file (the one ``Config`` was read from, else the first of
``config_paths()`` that exists), the defaults below. ``docs/launchers.md``
lists the keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from engine.config import Config
from engine.settings import ConfigSection, at_least, not_negative, positive, setting

__all__ = ["LauncherSettings"]


@dataclass(frozen=True, slots=True)
class LauncherSettings(ConfigSection):
    SECTION: ClassVar[str] = "launchers"
    ENV_PREFIX: ClassVar[str] = "BOSS_LAUNCHERS_"
    #: ``load(path=...)`` of a path that is not a file: the environment and defaults
    MISSING_OK: ClassVar[bool] = True

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
    delivery_ttl: float = setting(7 * 24 * 3600.0, check=positive())
    #: the largest webhook body accepted, in bytes (GitHub caps its payloads
    #: at 25 MB): a larger ``Content-Length`` is answered 413 before any of
    #: the body is read, a chunked body is cut (413) when it passes it
    max_body: int = setting(25 * 1024 * 1024, check=positive())
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
    #: the forges' REST APIs, asked for what a delivery lacks (a comment's
    #: head commit, a change's files, the author's permission:
    #: ``engine/launchers/forge_api.py``); an empty token: nothing is looked
    #: up for that forge (the facts stay unknown)
    github_api_url: str = "https://api.github.com"
    github_api_token: str = ""
    #: GitLab's base URL (``/api/v4`` is added)
    gitlab_api_url: str = "https://gitlab.com"
    gitlab_api_token: str = ""
    #: an API call's timeout (seconds; GitHub waits 10 s for a webhook's answer)
    api_timeout: float = setting(4.0, check=positive())
    #: attempts of a call the API answers 5xx/429 or not at all
    api_attempts: int = setting(2, check=at_least(1))
    #: the first retry's delay (seconds; doubles each time)
    api_retry_delay: float = setting(0.5, check=not_negative())
    #: seconds a user's repository permission is remembered
    api_permission_ttl: float = setting(300.0, check=not_negative())

    def store_dir(self, config: Config) -> Path:
        """The process store's root."""
        return Path(self.process_store or config.process_dir or "processes")

    def bindings(self) -> list[str]:
        keys = [k.strip() for k in self.obs_bindings.split(",") if k.strip()]
        return keys or [f"{self.obs_namespace}.#"]
