"""The radar's settings: a ``[radar]`` section of the same INI file as
``[boss]``, with ``BOSS_RADAR_<KEY>`` environment variables over it (as
``[launchers]``: ``engine/launchers/settings.py``). ``docs/radar.md`` lists
the keys."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from engine.settings import (
    ConfigSection,
    at_least,
    checked,
    not_negative,
    positive,
    setting,
    to_duration,
)

__all__ = ["DEFAULT_CI_PATTERN", "RadarSettings", "names"]

#: the issue's default: an account whose name or username says it is a CI
DEFAULT_CI_PATTERN = r"(?i)(\bci\b|zuul|jenkins)"


def names(raw: str) -> tuple[str, ...]:
    """Comma-separated names (an account's display name may hold spaces:
    ``Vendor X CI, jenkins``)."""
    return tuple(n.strip() for n in raw.split(",") if n.strip())


def _regex(value: str) -> bool:
    try:
        re.compile(value)
    except re.error:
        return False
    return True


@dataclass(frozen=True, slots=True)
class RadarSettings(ConfigSection):
    SECTION: ClassVar[str] = "radar"
    ENV_PREFIX: ClassVar[str] = "BOSS_RADAR_"
    MISSING_OK: ClassVar[bool] = True

    #: feed the radar from the deliveries the launchers receive
    enabled: bool = False
    #: a Gerrit account whose name or username matches is a CI system
    #: (GitHub apps and commit-status contexts, GitLab pipelines are CI by nature)
    ci_pattern: str = setting(DEFAULT_CI_PATTERN, check=checked(_regex, "not a regular expression"))
    #: accounts that are CI systems whatever their names (name, username or e-mail)
    systems: tuple[str, ...] = setting((), coerce=names)
    #: accounts that are never CI systems (a human called "Jenkins")
    ignore: tuple[str, ...] = setting((), coerce=names)
    #: the project's own gate: a CI system's name (or account username)
    gate: str = ""
    #: BOSS's own runs, as one more CI system
    boss_name: str = "BOSS"
    #: GitLab's own pipelines (a pipeline hook names no app)
    gitlab_name: str = "GitLab CI"
    #: a comment from a human that asks for a new test run
    recheck_pattern: str = setting(
        r"(?im)^\s*(recheck|retest|reverify)\b", check=checked(_regex, "not a regular expression")
    )
    #: how long records are kept (older ones are not stored and are pruned)
    retention: float = setting(90 * 86400.0, coerce=to_duration, check=positive())
    #: health: no report for longer than this while patch sets arrived
    silence: float = setting(2 * 3600.0, coerce=to_duration, check=positive())
    #: health: the least share of patch sets reported on
    min_coverage: float = setting(0.5, check=checked(lambda v: 0 <= v <= 1, "must be 0..1"))
    #: health: the largest failure rate on patch sets the gate passed
    max_gate_pass_failure: float = setting(
        0.3, check=checked(lambda v: 0 <= v <= 1, "must be 0..1")
    )
    #: health: this many failures in a row (the newest patch sets) is unhealthy
    max_fail_streak: int = setting(5, check=at_least(1))
    #: health: the largest p90 response time (0: not checked)
    max_response_p90: float = setting(12 * 3600.0, coerce=to_duration, check=not_negative())
    #: alerts (``boss ci watch``): the process launched when a system's
    #: health changes (empty: no alerts)
    alert_process: str = ""
    #: alerts: the window each look judges (the last this long)
    alert_window: float = setting(86400.0, coerce=to_duration, check=positive())
    #: alerts: seconds between two looks of ``boss ci watch``
    alert_every: float = setting(300.0, coerce=to_duration, check=positive())
    #: health: the rates are judged only over at least this many patch sets
    min_patch_sets: int = setting(5, check=at_least(1))
