"""Reporters: runs launched by a change, told back to where it lives.

* ``settings``: the ``[reporters]`` configuration section (and a process's
  own ``reporters:`` launch field);
* ``forges``: a change's identity (``Change``), which reports a transition
  makes (``plan``) and the calls (GitHub statuses, check runs and comments;
  GitLab statuses and merge request notes; Gerrit reviews over REST or
  ``gerrit review`` over SSH);
* ``jobs``: the reports in Redis (idempotent, leased, retried, listed when
  they fail for good);
* ``service``: ``boss reporter``: the consumer of the run transitions on
  the event exchange and the senders.

The package's surface, loaded on first use (PEP 562) as
``engine.launchers``'s: ``import engine.reporters`` loads neither kombu nor
redis. ``docs/reporters.md`` describes them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.reporters.forges import Change, ReportError
    from engine.reporters.jobs import Jobs
    from engine.reporters.service import Reporter, ReporterService, make_jobs
    from engine.reporters.settings import ReporterSettings

#: name -> (submodule, attribute)
_NAMES = {
    "Change": ("forges", "Change"),
    "ReportError": ("forges", "ReportError"),
    "Jobs": ("jobs", "Jobs"),
    "Reporter": ("service", "Reporter"),
    "ReporterService": ("service", "ReporterService"),
    "make_jobs": ("service", "make_jobs"),
    "ReporterSettings": ("settings", "ReporterSettings"),
}

__all__ = [
    "Change",
    "Jobs",
    "ReportError",
    "Reporter",
    "ReporterService",
    "ReporterSettings",
    "make_jobs",
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
