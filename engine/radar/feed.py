"""Feeding the radar: the launchers' deliveries (live), captures and
recorded deliveries (import), and BOSS's own runs (the run store's
transitions stream).

* :meth:`RadarFeed.event`: a launcher's listener (``Launcher.listeners``):
  every event a launcher normalised goes through it too; it never raises
  (a radar problem must not change what is launched) and sets an event it
  cannot read aside in ``radar:deadletters`` with the reason;
* :meth:`RadarFeed.import_gerrit`: a ``stream-events`` capture (JSON lines);
* :meth:`RadarFeed.import_deliveries`: a directory (or files) of webhook
  bodies: GitHub's named ``<X-GitHub-Event>__<anything>.json`` (as
  ``shared/payloads/github``), GitLab's with their ``object_kind``, or
  either wrapped as ``{"headers": {...}, "body": {...}}``;
* :meth:`RadarFeed.sync_runs`: the runs that ended since the last call,
  each a report of the system ``[radar] boss_name`` on the patch set its
  event named (``engine.core.outcome.run_outcome`` says pass or fail).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.radar.collect import (
    Classifier,
    Unreadable,
    from_delivery,
    from_run,
    gerrit_lines,
)
from engine.radar.model import Record
from engine.radar.settings import RadarSettings
from engine.radar.store import RadarStore

__all__ = ["ImportResult", "RadarFeed"]

log = logging.getLogger("boss.radar")

DEADLETTERS_KEPT = 1000


@dataclass
class ImportResult:
    """What an import read: events, records stored, unreadable events (with why)."""

    events: int = 0
    records: int = 0
    stored: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "records": self.records,
            "stored": self.stored,
            "errors": [{"where": w, "reason": r} for w, r in self.errors],
        }


class RadarFeed:
    """Records into a :class:`RadarStore`, classified by ``settings``."""

    def __init__(self, store: RadarStore, settings: RadarSettings | None = None) -> None:
        self.settings = settings if settings is not None else RadarSettings()
        self.store = store
        self.classifier = Classifier(self.settings)

    @classmethod
    def from_config(cls, config: Any, settings: RadarSettings | None = None) -> RadarFeed:
        """The feed on the run store's Redis (``[boss] redis_url``, ``key_prefix``)."""
        settings = settings if settings is not None else RadarSettings.load(config)
        store = RadarStore.from_url(
            config.resolved_redis_url(), config.key_prefix, settings.retention
        )
        return cls(store, settings)

    def deadletter(self, forge: str, body: Any, reason: str) -> None:
        """Set an unreadable event aside (the newest ``DEADLETTERS_KEPT``)."""
        letter = json.dumps(
            {"forge": forge, "reason": reason, "at": time.time(), "body": body}, default=str
        )
        key = self.store.k("deadletters")
        pipe = self.store.client.pipeline(transaction=False)
        pipe.lpush(key, letter)
        pipe.ltrim(key, 0, DEADLETTERS_KEPT - 1)
        pipe.execute()

    def records(
        self, forge: str, kind: str | None, body: Any, received: float | None = None
    ) -> list[Record]:
        """The records of one delivery (raises ``Unreadable``)."""
        return from_delivery(
            forge, kind, body, self.classifier, time.time() if received is None else received
        )

    # -- live ------------------------------------------------------------------------

    def event(self, event: Any) -> None:
        """A launcher's listener: one normalised event (``NormalisedEvent``:
        its ``source``, its forge's event name ``trigger.event``, its
        ``payload``, the delivery as the forge sent it). Never raises."""
        forge = getattr(event, "source", None)
        if forge not in ("gerrit", "github", "gitlab"):
            return
        body = getattr(event, "payload", None)
        trigger = getattr(event, "trigger", None)
        kind = getattr(trigger, "event", None)
        if forge == "gitlab" and isinstance(body, dict):
            kind = body.get("object_kind") or kind
        try:
            self.store.add(self.records(forge, kind, body))
        except Unreadable as exc:
            self._deadletter_quietly(forge, body, exc.reason)
        except Exception as exc:  # the radar must never stop a launch
            log.exception("radar: recording a %s event failed", forge)
            self._deadletter_quietly(forge, body, f"recording failed: {exc}")

    def _deadletter_quietly(self, forge: str, body: Any, reason: str) -> None:
        try:
            self.deadletter(forge, body, reason)
        except Exception:
            log.exception("radar: could not set an event aside (%s)", reason)

    # -- import ----------------------------------------------------------------------

    def _add(self, result: ImportResult, batch: list[Record], now: float, flush: bool) -> None:
        if batch and (flush or len(batch) >= 500):
            result.stored += self.store.add(batch, now)
            batch.clear()

    def import_gerrit(self, lines: Iterable[bytes | str], where: str = "") -> ImportResult:
        """A ``stream-events`` capture (banner lines skipped)."""
        result, batch, now = ImportResult(), [], time.time()
        for n, body, error in gerrit_lines(lines):
            result.events += 1
            if body is None:
                result.errors.append((f"{where}:{n}", error))
                self.deadletter("gerrit", None, f"{where}:{n}: {error}")
                continue
            try:
                records = self.records("gerrit", None, body, now)
            except Unreadable as exc:
                result.errors.append((f"{where}:{n}", exc.reason))
                self.deadletter("gerrit", body, exc.reason)
                continue
            result.records += len(records)
            batch.extend(records)
            self._add(result, batch, now, False)
        self._add(result, batch, now, True)
        return result

    def import_deliveries(self, paths: Iterable[Path], forge: str | None = None) -> ImportResult:
        """Recorded webhook deliveries (see the module docstring); a file
        that is not one is an error of the result, the rest go on."""
        result, batch, now = ImportResult(), [], time.time()
        files: list[Path] = []
        for path in paths:
            files.extend(sorted(p for p in path.rglob("*.json")) if path.is_dir() else [path])
        for path in files:
            result.events += 1
            try:
                which, kind, body = _delivery(path, forge)
                records = self.records(which, kind, body, now)
            except (OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or str(exc)
                result.errors.append((str(path), reason))
                continue
            result.records += len(records)
            batch.extend(records)
            self._add(result, batch, now, False)
        self._add(result, batch, now, True)
        return result

    # -- BOSS's runs -----------------------------------------------------------------

    def sync_runs(self, run_store: Any, batch: int = 1000) -> int:
        """The runs that ended since the last call (the transitions stream
        after the stored cursor), as reports; returns how many were stored."""
        cursor, stored = self.store.runs_cursor(), 0
        while True:
            rows = run_store.transitions(cursor, batch)
            if not rows:
                break
            records: list[Record] = []
            for _id, kind, summary in rows:
                if kind != "run" or summary.get("outcome") in (None, "pending"):
                    continue
                loaded = run_store.load_run(summary["wfid"])
                fields = (loaded[0].get("fields") or {}) if loaded else {}
                records.extend(from_run(summary, fields, self.settings.boss_name))
            stored += self.store.add(records)
            cursor = rows[-1][0]
            self.store.set_runs_cursor(cursor)
            if len(rows) < batch:
                break
        return stored


def _delivery(path: Path, forge: str | None) -> tuple[str, str | None, Any]:
    """``(forge, event, body)`` of a recorded delivery file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    headers: dict[str, str] = {}
    if isinstance(data, dict) and isinstance(data.get("body"), dict) and "headers" in data:
        headers = {k.lower(): v for k, v in (data.get("headers") or {}).items()}
        data = data["body"]
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if "x-github-event" in headers:
        return "github", headers["x-github-event"], data
    if "x-gitlab-event" in headers:
        return "gitlab", headers["x-gitlab-event"], data
    if forge == "gerrit" or (
        forge is None and isinstance(data.get("type"), str) and "change" in data
    ):
        return "gerrit", None, data
    if forge == "gitlab" or (forge is None and "object_kind" in data):
        return "gitlab", None, data
    event = path.name.split("__", 1)[0] if "__" in path.name else None
    if forge in (None, "github") and event:
        return "github", event, data
    raise ValueError("cannot tell the forge or the event (name the file <event>__*.json)")
