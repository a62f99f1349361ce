"""The reporters' settings: a ``[reporters]`` section of the same INI file
as ``[boss]``, with ``BOSS_REPORTERS_<KEY>`` environment variables over it
(keyword overrides over both). ``docs/reporters.md`` lists the keys; a
process overrides some of them for its own runs with a ``reporters:``
mapping in its launch fields (its ``.conf``), see ``options``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from engine.settings import ConfigSection, at_least, not_negative, positive, setting

__all__ = ["PROCESS_KEYS", "ReporterSettings"]

#: the keys a process may set in its ``reporters:`` launch field
PROCESS_KEYS = frozenset(
    {
        "enabled",
        "context",
        "description",
        "report_start",
        "comment_on_failure",
        "github_statuses",
        "github_checks",
        "gerrit_label",
        "gerrit_success",
        "gerrit_failure",
        "gerrit_error",
        "gerrit_cancelled",
        "gerrit_start_message",
        "error_as",
    }
)


@dataclass(frozen=True, slots=True)
class ReporterSettings(ConfigSection):
    SECTION: ClassVar[str] = "reporters"
    ENV_PREFIX: ClassVar[str] = "BOSS_REPORTERS_"
    MISSING_OK: ClassVar[bool] = True

    #: report at all (a process may say ``reporters: {enabled: false}``)
    enabled: bool = True
    #: the durable queue ``boss reporter`` binds to the event exchange
    queue: str = "boss.reporters"
    #: the web UI's URL: a report links ``<web_url>/runs/<wfid>`` (empty: no link)
    web_url: str = ""
    #: the status's context / check run's name / GitLab status's name;
    #: ``{name}`` is the process's name, ``{project}`` the change's project
    context: str = "boss/{name}"
    #: the description of a report; ``{outcome}`` and ``{name}`` are filled in
    description: str = "BOSS: {name} {outcome}"
    #: report a run's start (pending/running), not only its end
    report_start: bool = True
    #: comment on the pull/merge request when a run fails
    comment_on_failure: bool = True
    #: how an ``error`` outcome is reported: ``error`` or ``failure``
    error_as: str = "error"

    # -- GitHub ----------------------------------------------------------
    github_url: str = "https://api.github.com"
    #: a token (personal, fine-grained, or an installation token); empty: no GitHub reports
    github_token: str = ""
    github_statuses: bool = True
    github_checks: bool = False

    # -- GitLab ----------------------------------------------------------
    gitlab_url: str = "https://gitlab.com"
    #: a project or personal access token (``PRIVATE-TOKEN``); empty: no GitLab reports
    gitlab_token: str = ""

    # -- Gerrit ----------------------------------------------------------
    #: the REST API's base (``https://review.example.org``; the ``/a/``
    #: authenticated prefix is added); empty: the SSH command, if any
    gerrit_url: str = ""
    gerrit_user: str = ""
    gerrit_password: str = ""
    #: ``basic`` or ``digest``
    gerrit_auth: str = "basic"
    #: or ``gerrit review`` over SSH: the command's start
    #: (``ssh -p 29418 boss@review.example.org gerrit review``)
    gerrit_command: str = ""
    gerrit_label: str = "Verified"
    gerrit_success: int = 1
    gerrit_failure: int = -1
    gerrit_error: int = -1
    #: the vote of a cancelled run (0: none)
    gerrit_cancelled: int = 0
    #: leave a "started" message on the change when a run starts
    gerrit_start_message: bool = True

    # -- delivery --------------------------------------------------------
    #: threads sending reports
    threads: int = setting(4, check=at_least(1))
    #: attempts of a report whose API answers 5xx/429 or not at all
    retry_attempts: int = setting(8, check=at_least(1))
    #: the first retry's delay (seconds); doubles each time, up to ``retry_max_delay``
    retry_delay: float = setting(2.0, check=positive())
    retry_max_delay: float = setting(300.0, check=positive())
    #: an HTTP call's timeout (seconds)
    timeout: float = setting(20.0, check=positive())
    #: a report being sent is handed to another thread after this (a crashed sender)
    lease: float = setting(120.0, check=positive())
    #: how long what was reported is remembered (seconds)
    remember: float = setting(30 * 86400.0, check=positive())
    #: the errors kept for ``boss reporter errors``
    errors_max: int = setting(1000, check=not_negative())

    def options(self, fields: Mapping[str, Any] | None) -> dict[str, Any]:
        """The settings a run is reported with: these, under the run's own
        ``reporters:`` launch field (only ``PROCESS_KEYS``; others ignored)."""
        out = {k: getattr(self, k) for k in PROCESS_KEYS}
        own = (fields or {}).get("reporters")
        if isinstance(own, Mapping):
            out.update({k: v for k, v in own.items() if k in PROCESS_KEYS})
        return out
