"""The Gerrit source: ``stream-events`` JSON lines.

``ssh -p 29418 boss@review.example.org gerrit stream-events`` writes one
JSON object per line for every event of the server. ``boss launcher
gerrit --command "..."`` runs such a command and reads its output,
starting it again (with a back-off) whenever it ends; ``--file F`` reads
the lines of a file (a recording, or a test) instead.

* ``patchset-created``: ``GERRIT_PATCHSET_CREATED``; project ``change.project``,
  branch ``change.branch``, commit ``patchSet.revision``, change ``change.number``;
* ``change-merged``: ``GERRIT_CHANGE_MERGED``; the same, commit ``newRev``;
* ``ref-updated``: ``GERRIT_REF_UPDATED``; project ``refUpdate.project``,
  branch ``refUpdate.refName`` (without ``refs/heads/``), commit ``newRev``;
* any other ``t``: ``GERRIT_<T>`` (``comment-added``: ``GERRIT_COMMENT_ADDED``).

Gerrit's events carry no id: the delivery id is a digest of the event's
JSON (the same line read twice launches once).
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.launchers.base import (
    MalformedEvent,
    NormalisedEvent,
    RawEvent,
    delivery_digest,
    json_body,
)
from engine.launchers.launcher import Launcher

__all__ = ["GerritSource", "GerritStream"]

log = logging.getLogger("boss.launchers.gerrit")


def _dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}


def _who(obj: Any) -> str | None:
    d = _dict(obj)
    return d.get("username") or d.get("name") or d.get("email")


class GerritSource:
    """Normalises Gerrit stream-events lines (see the module docstring)."""

    name = "gerrit"

    def __init__(self, queue: str = "boss.launchers.gerrit", url: str = "") -> None:
        self.queue = queue
        self.url = url.rstrip("/")

    def _repository(self, project: str | None) -> str | None:
        return f"{self.url}/{project}" if self.url and project else None

    def normalise(self, raw: RawEvent) -> list[NormalisedEvent]:
        body = json_body(raw)
        kind = body.get("type")
        if not isinstance(kind, str) or not kind:
            raise MalformedEvent("no 'type'")
        label = "GERRIT_" + kind.upper().replace("-", "_")
        delivery = delivery_digest(json.dumps(body, sort_keys=True, separators=(",", ":")))
        change = _dict(body.get("change"))
        patchset = _dict(body.get("patchSet"))

        def event(project: str | None, **facts: Any) -> list[NormalisedEvent]:
            """The one event of this delivery, in ``project``."""
            return [
                NormalisedEvent(
                    "gerrit",
                    label,
                    delivery,
                    project=project,
                    repository=self._repository(project),
                    payload=body,
                    **facts,
                )
            ]

        if kind == "ref-updated":
            ref = _dict(body.get("refUpdate"))
            project, name, rev = ref.get("project"), ref.get("refName"), ref.get("newRev")
            if not project or not isinstance(name, str) or not rev:
                raise MalformedEvent("ref-updated: no refUpdate.project, refName or newRev")
            return event(
                project,
                branch=name.removeprefix("refs/heads/"),
                commit=rev,
                author=_who(body.get("submitter")),
            )
        if kind in ("patchset-created", "change-merged"):
            project, number = change.get("project"), change.get("number")
            commit = (body.get("newRev") if kind == "change-merged" else None) or patchset.get(
                "revision"
            )
            if not project or number is None or not commit:
                raise MalformedEvent(f"{kind}: no change.project, change.number or revision")
            who = _who(
                body.get("submitter")
                if kind == "change-merged"
                else body.get("uploader") or patchset.get("uploader")
            )
            return event(
                project,
                branch=change.get("branch"),
                change=str(number),
                commit=commit,
                author=who,
                url=change.get("url"),
            )
        project = change.get("project") or body.get("project")
        return event(
            project if isinstance(project, str) else None,
            branch=change.get("branch"),
            change=str(change["number"]) if "number" in change else None,
            commit=patchset.get("revision"),
            author=_who(body.get("author")),
            url=change.get("url"),
        )


class GerritStream:
    """Feeds stream-events lines to the launcher, from a command (started
    again with a back-off of 1, 2, 4 ... up to ``max_backoff`` seconds
    whenever it ends; the back-off resets once it ran a minute) or from a
    file (read once)."""

    def __init__(
        self,
        launcher: Launcher,
        source: GerritSource,
        *,
        command: str | None = None,
        file: str | None = None,
        max_backoff: float = 60.0,
    ) -> None:
        if bool(command) == bool(file):
            raise ValueError("give a command or a file (one of them)")
        self.launcher = launcher
        self.source = source
        self.command = command
        self.file = file
        self.max_backoff = max_backoff
        self.stopping = threading.Event()
        self.handled = 0
        self.starts = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def feed(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            if self.stopping.is_set():
                return
            line = line.strip()
            if not line:
                continue
            try:
                self.launcher.handle(self.source, RawEvent(line))
            except Exception as exc:  # a bug: set the line aside, keep reading
                log.exception("gerrit launcher: handling a line failed")
                self.launcher.deadletter(self.source, RawEvent(line), f"handling failed: {exc}")
            self.handled += 1

    def run(self) -> None:
        """Until the file ends, or (a command) until ``stop()``."""
        if self.file:
            with Path(self.file).open("rb") as fh:
                self.feed(fh)
            return
        backoff = 1.0
        while not self.stopping.is_set():
            started = time.monotonic()
            self.starts += 1
            log.info("gerrit launcher: starting %s", self.command)
            try:
                self._proc = subprocess.Popen(
                    shlex.split(self.command or ""), stdout=subprocess.PIPE
                )
            except OSError as exc:
                log.error("gerrit launcher: cannot start %s: %s", self.command, exc)
            else:
                assert self._proc.stdout is not None
                self.feed(self._proc.stdout)
                code = self._proc.wait()
                log.warning("gerrit launcher: %s ended (exit %s)", self.command, code)
            if time.monotonic() - started > 60:
                backoff = 1.0
            if self.stopping.wait(backoff):
                break
            backoff = min(backoff * 2, self.max_backoff)

    def stop(self) -> None:
        self.stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
