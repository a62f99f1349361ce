"""The launcher: normalised events to launch items, published.

For each normalised event, :meth:`Launcher.plan` finds what to launch:

* the process store: every ``<LABEL>.<name>.yaml`` in the directory of the
  event's project (of each target project, for a request event), fields
  ``{"project": <that project>, **<.conf>, "ev": ...}`` (BOSS's robogrator
  gave its processes ``project`` too: the real BOSS_handle_SR locks
  ``${project}``);
* the rules file: every rule that matches, fields ``{**<extracted>, "ev": ...}``.

:meth:`Launcher.launch` then publishes the source's Eiffel event (see
``engine/launchers/traceability.py``) and one launch item per plan, with
the event's id as ``cause`` and the wfid
``<source>-<delivery>-<process>[-<target>]``: the same delivery again gives
the same launch items, which the engine ignores. A launch item carries the
definition's text (and its file name), so the engine needs no access to the
store.

:meth:`Launcher.handle` is what every source's connection calls with a raw
delivery: normalise, plan, launch; a delivery that cannot be normalised or
planned is dead-lettered with the reason (set aside, never dropped).

What a delivery lacks is asked of the forge's API while planning
(``engine/launchers/forge_api.py``; only with a token in ``[launchers]``):
a comment's change (its head commit, branch, fork) when a store file or a
rule may launch for it, a change's files when a ``files:`` rule gets that
far, the author's repository permission when a ``trusted:`` rule's lists do
not decide. One :class:`~engine.launchers.forge_api.Lookups` per delivery:
each kind is asked once. A lookup that fails for now (5xx, 429, no answer,
after its retries) is not caught here: like a broker that is away, it goes
to the connection (the webhook answers 503 and releases the delivery's
claim, so the forge's retry launches; a stream dead-letters the delivery
with the reason); one that cannot succeed (401, 403, no such change)
dead-letters the delivery with the reason, as a malformed one is.

Secrets never go further than the connection that checked them: a raw
delivery's headers are redacted (:func:`redact_headers`: tokens,
signatures, credentials, cookies become ``[redacted]``) before it is
normalised, logged, launched or dead-lettered.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine import wire
from engine.config import Config
from engine.core import messages
from engine.launchers.base import (
    MalformedEvent,
    NormalisedEvent,
    RawEvent,
    Source,
    sanitise_wfid,
)
from engine.launchers.forge_api import ForgeAPI, ForgeError, Lookups
from engine.launchers.rules import RuleError, Rules
from engine.launchers.settings import LauncherSettings
from engine.launchers.traceability import source_event
from engine.process_store import ProcessStore, StoreError, resolve_process

__all__ = ["REDACTED", "LaunchError", "Launcher", "Outcome", "PlannedLaunch", "redact_headers"]

log = logging.getLogger("boss.launchers")

REDACTED = "[redacted]"
#: header names whose values are secrets: GitLab's token, GitHub's
#: signatures (an HMAC of the body: with the body, a guessing oracle for a
#: weak secret), credentials and cookies
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-gitlab-token",
        "x-hub-signature",
        "x-hub-signature-256",
        "private-token",
        "job-token",
        "x-api-key",
    }
)
#: and any header whose name says it holds one
_SECRET_NAME = re.compile(
    r"token|secret|signature|passw|authoriz|authent|cookie|api[-_]?key|credential", re.I
)


def redact_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """``headers`` with the values of secret ones (:data:`SECRET_HEADERS`,
    or a name saying token, secret, signature, password, auth, cookie, api
    key, credential) replaced by ``[redacted]``."""
    return {
        k: REDACTED if k.lower() in SECRET_HEADERS or _SECRET_NAME.search(k) else v
        for k, v in headers.items()
    }


def redacted(raw: RawEvent) -> RawEvent:
    """``raw`` with its headers redacted (the same object when there is nothing to hide)."""
    headers = redact_headers(raw.headers)
    if headers == raw.headers:
        return raw
    return RawEvent(raw.body, headers, raw.routing_key)


class LaunchError(ValueError):
    """An event that maps to a process that cannot be launched (missing,
    unreadable .conf): its delivery is dead-lettered with this reason."""


@dataclass(frozen=True)
class PlannedLaunch:
    """One run to launch for an event."""

    process: str
    path: Path
    fields: dict[str, Any]
    wfid: str
    target: str | None = None
    via: str = "store"

    def item(self, cause: str | None, definition: str | None = None) -> dict[str, Any]:
        """The launch item (``engine.core.messages.launch_item``); the
        definition's text is read from ``path`` unless given."""
        return messages.launch_item(
            definition=self.path.read_text(encoding="utf-8") if definition is None else definition,
            filename=str(self.path),
            fields=self.fields,
            wfid=self.wfid,
            cause=[cause] if cause else None,
        )


@dataclass
class Outcome:
    """What handling one raw delivery did."""

    events: list[NormalisedEvent] = field(default_factory=list)
    wfids: list[str] = field(default_factory=list)
    eiffel_ids: list[str] = field(default_factory=list)
    deadletter: str | None = None
    reason: str | None = None


def _store_fields(project: str | None, conf: dict[str, Any], ev: dict[str, Any]) -> dict[str, Any]:
    """A store launch's fields: the project the process was found for (as
    robogrator did), the .conf's keys over it, the event over both."""
    fields: dict[str, Any] = {"project": project} if project else {}
    return {**fields, **conf, "ev": ev}


class Launcher:
    """Maps and launches (one per process; thread-safe: each thread gets
    its own broker connection)."""

    def __init__(
        self,
        config: Config,
        settings: LauncherSettings | None = None,
        *,
        rules: Rules | None = None,
        publisher: Any = None,
        bus: Any = None,
        api: ForgeAPI | None = None,
        listeners: list[Callable[[NormalisedEvent], None]] | None = None,
    ) -> None:
        self.config = config
        self.settings = settings if settings is not None else LauncherSettings.load(config)
        #: called with every event a delivery normalises to, before it is
        #: planned (they must not raise; ``[radar] enabled``: the radar's feed)
        self.listeners = list(listeners or ())
        if listeners is None:
            from engine.radar import RadarFeed, RadarSettings

            radar = RadarSettings.load(config)
            if radar.enabled:
                self.listeners.append(RadarFeed.from_config(config, radar).event)
        self.store = ProcessStore(self.settings.store_dir(config))
        if rules is None and self.settings.rules_file:
            rules = Rules.load(self.settings.rules_file)
        self.rules = rules
        #: the forges' APIs (what a delivery lacks); tokens unset: nothing is asked
        self.api = api if api is not None else ForgeAPI.from_settings(self.settings)
        self.by = f"launcher {socket.gethostname()} {os.getpid()}"
        #: one connection, used under ``_lock`` (a publish takes a millisecond;
        #: the webhook server runs a thread per request, which must not each
        #: open a connection)
        self._lock = threading.RLock()
        self._own = publisher is None
        #: given ones (tests: fakes with ``send``/``deadletter`` and ``publish``)
        self._publisher, self._bus = publisher, bus

    # -- broker ------------------------------------------------------------------------

    @property
    def publisher(self) -> Any:
        with self._lock:
            if self._publisher is None:
                from engine.broker import Publisher

                self._publisher = Publisher(self.config)
            return self._publisher

    @property
    def bus(self) -> Any:
        with self._lock:
            if self._bus is None:
                from engine.trace.bus import EventBus

                self._bus = EventBus(self.config, self.publisher)
            return self._bus

    def close(self) -> None:
        with self._lock:
            if self._own and self._publisher is not None:
                self._publisher.close()
                self._publisher = self._bus = None

    # -- mapping -----------------------------------------------------------------------

    def _resolve(self, name: str) -> Path:
        roots = [self.store.root]
        if self.config.process_dir and Path(self.config.process_dir) != self.store.root:
            roots.append(Path(self.config.process_dir))
        last: Exception | None = None
        for root in roots:
            try:
                return resolve_process(root, name)
            except (FileNotFoundError, ValueError) as exc:
                last = exc
        raise LaunchError(str(last))

    def lookups(self) -> Lookups:
        """A delivery's lookups (each kind asked of the forge's API once)."""
        return Lookups(self.api)

    def _entries(self, event: NormalisedEvent, target: str | None) -> list[Any]:
        try:
            return self.store.lookup(event.label, target)
        except StoreError as exc:
            raise LaunchError(str(exc)) from None

    def complete(self, event: NormalisedEvent, lookups: Lookups | None = None) -> NormalisedEvent:
        """``event`` with what its delivery lacks and the forge's API gives:
        a comment's change (head commit, branch, fork), asked only when a
        store file or a rule may launch for it. Raises ``ForgeError``."""
        lookups = lookups if lookups is not None else self.lookups()
        if not lookups.needs_change(event):
            return event
        may = any(
            self._entries(event, target)
            or (
                self.rules is not None
                and self.rules.may_match(event, target if event.targets else None)
            )
            for target in event.projects
        )
        return lookups.change(event) if may else event

    def plan(self, event: NormalisedEvent, lookups: Lookups | None = None) -> list[PlannedLaunch]:
        """What ``event`` launches (nothing is published). Raises
        :class:`LaunchError` when a process it maps to cannot be read,
        ``ForgeError`` when a lookup fails (see the module docstring)."""
        lookups = lookups if lookups is not None else self.lookups()
        event = self.complete(event, lookups)
        found: list[tuple[str | None, str | None, list[Any], list[Any]]] = []
        for target in event.projects:
            tgt = target if event.targets else None
            rules = self.rules.matching(event, tgt, lookups) if self.rules is not None else []
            found.append((target, tgt, self._entries(event, target), rules))
        # the files the rules had looked up go into ev.trigger
        files = lookups.looked_up_files(event)
        if files is not None and event.trigger is not None and event.trigger.files is None:
            event = replace(event, trigger=replace(event.trigger, files=files))
        plans: dict[str, PlannedLaunch] = {}
        for target, tgt, entries, rules in found:
            for entry in entries:
                wfid = sanitise_wfid(event.source, event.delivery, entry.name, tgt)
                plans.setdefault(
                    wfid,
                    PlannedLaunch(
                        entry.name,
                        entry.path,
                        _store_fields(target, entry.conf, event.ev(tgt)),
                        wfid,
                        tgt,
                        "store",
                    ),
                )
            for rule in rules:
                wfid = sanitise_wfid(event.source, event.delivery, rule.process, tgt)
                if wfid in plans:
                    continue
                try:
                    extracted = rule.fields_for(event, tgt)
                except KeyError as exc:
                    raise LaunchError(f"{rule.where}: unknown name {exc}") from None
                plans[wfid] = PlannedLaunch(
                    rule.process,
                    self._resolve(rule.process),
                    {**extracted, "ev": event.ev(tgt)},
                    wfid,
                    tgt,
                    f"rules ({rule.where})",
                )
        return list(plans.values())

    # -- publishing --------------------------------------------------------------------

    def launch(
        self, event: NormalisedEvent, plans: list[PlannedLaunch] | None = None
    ) -> tuple[list[str], str | None]:
        """Publish the Eiffel event of ``event`` and its launch items;
        returns the wfids and the Eiffel event's id (None: none published)."""
        plans = self.plan(event) if plans is None else plans
        if not plans:
            log.info("%s %s %s: no process to launch", event.source, event.label, event.delivery)
            return [], None
        cause = event.eiffel_id
        # read every definition before anything is published
        sources = [plan.path.read_text(encoding="utf-8") for plan in plans]
        with self._lock:
            if cause is None and self.settings.events:
                eiffel_event = source_event(event)
                self.bus.publish(eiffel_event)
                cause = eiffel_event["meta"]["id"]
            for plan, source in zip(plans, sources, strict=True):
                self.publisher.send(plan.item(cause, source))
        for plan in plans:
            log.info(
                "%s %s %s: launched %s (%s) as %s",
                event.source,
                event.label,
                event.delivery,
                plan.process,
                plan.via,
                plan.wfid,
            )
        return [p.wfid for p in plans], cause

    def deadletter(self, source: Source, raw: RawEvent, reason: str) -> str:
        """Set a raw delivery aside with ``reason`` (its secret headers
        redacted); returns the letter's id."""
        headers = redact_headers(dict(raw.headers))
        if raw.routing_key is not None:
            headers["x-routing-key"] = raw.routing_key
        record = wire.deadletter(
            raw.body,
            f"{source.name} launcher: {reason}",
            source.queue,
            by=self.by,
            content_type="application/json",
            headers=headers,
        )
        with self._lock:
            self.publisher.deadletter(record)
        log.error("%s launcher: dead-lettered %s: %s", source.name, record["id"], reason)
        return record["id"]

    def handle(self, source: Source, raw: RawEvent) -> Outcome:
        """Normalise, plan and launch one raw delivery (dead-lettered when
        it cannot be normalised or planned)."""
        outcome = Outcome()
        raw = redacted(raw)
        lookups = self.lookups()
        try:
            events = source.normalise(raw)
            for listener in self.listeners:
                for ev in events:
                    listener(ev)
            outcome.events = [self.complete(ev, lookups) for ev in events]
            plans = [(ev, self.plan(ev, lookups)) for ev in outcome.events]
        except (MalformedEvent, LaunchError, RuleError, StoreError, ForgeError) as exc:
            if isinstance(exc, ForgeError) and exc.transient:
                raise  # for now: the webhook answers 503, a stream dead-letters it
            reason = getattr(exc, "reason", None) or str(exc)
            outcome.reason = reason
            outcome.deadletter = self.deadletter(source, raw, reason)
            return outcome
        for ev, planned in plans:
            wfids, cause = self.launch(ev, planned)
            outcome.wfids.extend(wfids)
            if cause:
                outcome.eiffel_ids.append(cause)
        return outcome

    def dry_run(self, source: Source, raw: RawEvent) -> list[dict[str, Any]]:
        """What handling ``raw`` would launch (raises MalformedEvent,
        LaunchError): per event, its summary and the planned launches."""
        out = []
        lookups = self.lookups()
        for ev in source.normalise(raw):
            ev = self.complete(ev, lookups)
            out.append(
                {
                    "event": ev.summary(),
                    "eiffel": None if ev.eiffel_id else source_event(ev)["meta"]["type"],
                    "launches": [
                        {
                            "process": p.process,
                            "file": str(p.path),
                            "wfid": p.wfid,
                            "target": p.target,
                            "via": p.via,
                            "fields": p.fields,
                        }
                        for p in self.plan(ev, lookups)
                    ],
                }
            )
        return out
