"""The Gerrit source: ``stream-events`` JSON lines.

``ssh -p 29418 boss@review.example.org gerrit stream-events`` writes one
JSON object per line for every event of the server. ``boss launcher
gerrit --command "..."`` runs such a command and reads its output,
starting it again (with a back-off) whenever it ends; ``--file F`` reads
the lines of a file (a recording, or a test) instead.

* ``patchset-created``: ``GERRIT_PATCHSET_CREATED``; project ``change.project``,
  branch ``change.branch``, commit ``patchSet.revision``, change
  ``change.number``, patch set ``patchSet.number``;
* ``change-merged``: ``GERRIT_CHANGE_MERGED``; the same, commit ``newRev``
  (what landed on the branch); the change is merged (a SourceChangeSubmitted
  linked to its patch set's SourceChangeCreated);
* ``ref-updated`` of a branch or a tag: ``GERRIT_REF_UPDATED``; project
  ``refUpdate.project``, branch ``refUpdate.refName`` (without
  ``refs/heads/``; a tag: branch null, ``ev.tag``), commit ``newRev``;
* ``ref-updated`` of Gerrit's own refs (``refs/changes/*``: patch sets and
  the NoteDb ``meta`` ref every upload, vote and comment updates;
  ``refs/meta/*``: the project's configuration): ``GERRIT_INTERNAL_REF_UPDATED``,
  launched only by a rule with ``internal_refs: true``;
* ``ref-updated`` deleting a ref (``newRev`` all zeros): ``GERRIT_REF_DELETED``
  (commit null), launched only by a rule with ``deletes: true``;
* any other ``t``: ``GERRIT_<T>`` (``comment-added``: ``GERRIT_COMMENT_ADDED``),
  the change's identity when it names one;
* a line that is not a JSON object (an SSH banner or warning on the
  stream) is ignored; one that starts with ``{`` but does not parse is
  malformed (dead-lettered).

``project`` is text in some Gerrit versions and ``{"name": ...}`` in others,
``change.number`` and ``patchSet.number`` numbers or text: the identity in
``ev`` is always text (``base.IDENTITY_KEYS``).

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
    ExplainingSource,
    Ignored,
    MalformedEvent,
    NormalisedEvent,
    RawEvent,
    delivery_digest,
    json_body,
    real_sha,
)
from engine.launchers.launcher import Launcher

__all__ = ["GerritSource", "GerritStream"]

log = logging.getLogger("boss.launchers.gerrit")


def _dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}


def _who(obj: Any) -> str | None:
    if isinstance(obj, str):
        return obj or None
    d = _dict(obj)
    return d.get("username") or d.get("name") or d.get("email")


def _text(obj: Any) -> str | None:
    """A name or number as text (``{"name": ...}`` gives its name)."""
    if isinstance(obj, dict):
        obj = obj.get("name")
    if isinstance(obj, bool) or obj is None or obj == "":
        return None
    return str(obj) if isinstance(obj, str | int) else None


_INTERNAL = ("refs/changes/", "refs/meta/")


class GerritSource(ExplainingSource):
    """Normalises Gerrit stream-events lines (see the module docstring)."""

    name = "gerrit"
    log = log

    def __init__(self, queue: str = "boss.launchers.gerrit", url: str = "") -> None:
        self.queue = queue
        self.url = url.rstrip("/")

    def _repository(self, project: str | None) -> str | None:
        return f"{self.url}/{project}" if self.url and project else None

    def _normalise(self, raw: RawEvent) -> list[NormalisedEvent]:
        if not raw.body.lstrip().startswith(b"{"):
            raise Ignored("not a JSON event: a banner or warning line of the stream")
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
            facts.setdefault("payload", body)
            return [
                NormalisedEvent(
                    "gerrit",
                    facts.pop("label", label),
                    delivery,
                    project=project,
                    repository=self._repository(project),
                    identity=True,
                    **facts,
                )
            ]

        if kind == "ref-updated":
            ref = _dict(body.get("refUpdate"))
            project, name = _text(ref.get("project")), ref.get("refName")
            new = ref.get("newRev")
            if not project or not isinstance(name, str) or not name or not new:
                raise MalformedEvent("ref-updated: no refUpdate.project, refName or newRev")
            payload = dict(body) | {"ref": name}
            commit, branch, opt_in = real_sha(new), None, None
            if name.startswith(_INTERNAL):
                label_, opt_in = "GERRIT_INTERNAL_REF_UPDATED", "internal_refs"
            elif commit is None:
                label_, opt_in = "GERRIT_REF_DELETED", "deletes"
                payload["deleted"] = True
            else:
                label_ = label
            if name.startswith("refs/tags/"):
                payload["tag"] = name.removeprefix("refs/tags/")
            elif not name.startswith(_INTERNAL):
                branch = name.removeprefix("refs/heads/")
            return event(
                project,
                label=label_,
                branch=branch,
                commit=commit,
                author=_who(body.get("submitter")),
                payload=payload,
                opt_in=opt_in,
            )
        project = _text(change.get("project")) or _text(body.get("project"))
        number = _text(change.get("number"))
        ps_number = _text(patchset.get("number"))
        revision = real_sha(patchset.get("revision"))
        if kind in ("patchset-created", "change-merged"):
            merged = kind == "change-merged"
            commit = (real_sha(body.get("newRev")) if merged else None) or revision
            if not project or number is None or (not commit and not merged):
                raise MalformedEvent(f"{kind}: no change.project, change.number or revision")
            who = _who(
                body.get("submitter")
                if merged
                else body.get("uploader") or patchset.get("uploader")
            )
            return event(
                project,
                branch=change.get("branch"),
                change=number,
                commit=commit,
                patchset=ps_number,
                author=who,
                url=change.get("url"),
                merged=merged,
                unknown=("commit",) if commit is None else (),
            )
        who = next(
            (
                _who(body[k])
                for k in ("author", "changer", "submitter", "uploader", "abandoner", "restorer")
                if k in body
            ),
            None,
        )
        return event(
            project,
            branch=change.get("branch"),
            change=number,
            commit=revision,
            patchset=ps_number,
            author=who,
            url=change.get("url"),
            unknown=("commit",) if patchset and revision is None else (),
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
