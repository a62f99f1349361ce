"""The radar: how every CI system that reports on a project's changes
performs (issue 17), relative to the others and to the project's gate.

* ``model``: the records (a patch set appeared, a CI system reported, a
  recheck, a merge);
* ``collect``: deliveries (Gerrit stream-events, GitHub and GitLab
  webhooks) and BOSS's runs to records; which accounts are CI systems;
* ``store``: the records in the run store's Redis, indexed per system and
  per time, bounded, idempotent;
* ``rows``: what the figures need of the records, kept by the same script
  in fixed-width binary rows per day, and the figures computed over them
  (numpy), with a per-process cache;
* ``stats``: the window figures (exact percentiles, rates) and the health
  verdict with its reasons;
* ``feed``: the launchers' listener, the imports, the runs' sync;
* ``alerts``: a process launched when a system's health changes;
* ``settings``: the ``[radar]`` section.

``docs/radar.md`` describes it. Import from here.
"""

from __future__ import annotations

from engine.radar.alerts import Alert, launch_item, watch
from engine.radar.collect import Classifier, Unreadable, from_delivery, from_run
from engine.radar.feed import ImportResult, RadarFeed
from engine.radar.model import Record, parse_instant, patchset_id
from engine.radar.settings import RadarSettings
from engine.radar.stats import duration_text, health, percentile, system_figures, window
from engine.radar.store import PatchSet, RadarStore

__all__ = [
    "Alert",
    "Classifier",
    "ImportResult",
    "PatchSet",
    "RadarFeed",
    "RadarSettings",
    "RadarStore",
    "Record",
    "Unreadable",
    "duration_text",
    "from_delivery",
    "from_run",
    "health",
    "launch_item",
    "parse_instant",
    "patchset_id",
    "percentile",
    "system_figures",
    "watch",
    "window",
]
