"""Alerts: when a CI system's health changes, launch a process.

The radar computes health on request (the API, ``boss ci systems``); an
alert needs someone to look now and then and to remember what it saw.
``watch`` evaluates every system over the last ``alert_window`` (the
``[radar]`` section), compares each verdict with the one stored at the
previous look (``<prefix>radar:alerted``, a hash: system -> "1" healthy,
"0" unhealthy) and, for each system whose verdict changed (or that is
unhealthy at its first look), hands a launch item of ``alert_process`` to
``launch``. The process does the telling with the participants BOSS
already has (``notify_irc``, ``notify`` mail, a report): nothing here
speaks IRC or SMTP. A system that stays unhealthy is told once, and again
when it recovers.

The launch item's wfid is derived from the system and the look's time, so
a look repeated after a crash launches nothing twice; its fields carry
``radar: {system, healthy, was, reasons, since, until, figures}`` and
``msg`` (one line, for ``notify_irc``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.radar.settings import RadarSettings
from engine.radar.stats import window

log = logging.getLogger("boss.radar")

__all__ = ["Alert", "launch_item", "watch"]

#: the figures an alert's fields carry (the rest is in the dashboard)
FIGURES = (
    "coverage",
    "success_rate",
    "gate_pass_failure_rate",
    "response_p90_s",
    "since_last_s",
    "arrived_since_last",
    "fail_run",
)


@dataclass(frozen=True, slots=True)
class Alert:
    """A system whose health changed at a look."""

    system: str
    healthy: bool
    #: its verdict at the previous look (None: the first look at it)
    was: bool | None
    reasons: tuple[str, ...]
    since: float
    until: float
    figures: dict[str, Any]

    @property
    def message(self) -> str:
        if self.healthy:
            return f"CI system {self.system} is healthy again"
        return f"CI system {self.system} is unhealthy: " + "; ".join(self.reasons)


def watch(
    store: Any,
    settings: RadarSettings,
    *,
    now: float,
    launch: Callable[[dict[str, Any]], None] | None = None,
) -> list[Alert]:
    """Look once (see the module docstring): the alerts of this look,
    each launched (``launch(item)``) when ``alert_process`` is set, before
    the verdict is remembered (a crash in between launches it again, under
    the same wfid: the engine takes it once)."""
    since = now - settings.alert_window
    key = store.k("alerted")
    before = {
        (k.decode() if isinstance(k, bytes) else k): (v in (b"1", "1"))
        for k, v in store.client.hgetall(key).items()
    }
    alerts = []
    for figures in window(store, settings, since=since, until=now):
        healthy = figures.get("healthy")
        if healthy is None:  # not classified as a CI system: not judged
            continue
        name = figures["name"]
        was = before.get(name)
        if was is healthy:
            continue
        if was is None and healthy:  # first seen, healthy: nothing to tell
            store.client.hset(key, name, "1")
            continue
        alert = Alert(
            system=name,
            healthy=bool(healthy),
            was=was,
            reasons=tuple(figures.get("reasons") or ()),
            since=since,
            until=now,
            figures={k: figures.get(k) for k in FIGURES},
        )
        alerts.append(alert)
        if launch is not None and settings.alert_process:
            launch(launch_item(alert, settings.alert_process))
        store.client.hset(key, name, "1" if healthy else "0")
        log.info("radar: %s", alert.message)
    return alerts


def launch_item(alert: Alert, process: str) -> dict[str, Any]:
    """The launch item of ``process`` for ``alert`` (its wfid derived from
    the system and the look's time: launched once however often it is
    sent)."""
    digest = hashlib.sha256(f"{alert.system}\0{alert.until:.3f}".encode()).hexdigest()[:12]
    return {
        "process": process,
        "wfid": f"radar-{digest}",
        "fields": {
            "msg": alert.message,
            "radar": {
                "system": alert.system,
                "healthy": alert.healthy,
                "was": alert.was,
                "reasons": list(alert.reasons),
                "since": alert.since,
                "until": alert.until,
                "figures": alert.figures,
            },
        },
    }
