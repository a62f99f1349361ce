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

What the rules' trigger keys match (``ev.trigger``, ``base.Trigger``):
``event`` the ``type`` (``patchset-created``, ``comment-added`` ...;
``action`` is null: the type is the action); ``ref`` ``refUpdate.refName``
or the patch set's ``refs/changes/..``; ``labels`` the change's hashtags
(``hashtags-changed``: ``hashtags``, ``added_labels`` its ``added``);
``files`` the patch set's ``files`` when the event carries them (a
stream-events line usually does not: unknown; Gerrit's ``/COMMIT_MSG``
and ``/MERGE_LIST`` are left out); ``comment`` a comment's text without
Gerrit's header (``Patch Set N: <votes>``, ``(N comments)``); ``approvals`` a
comment's votes ``{label: value}`` (``Code-Review: 2``); ``draft`` the
change is work in progress (``change.wip``) or a draft; ``from_repository``
false for a change (anyone may upload one), true for a ref update.
"""

from __future__ import annotations

import json
import logging
import re
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
    Trigger,
    delivery_digest,
    json_body,
    real_sha,
    text_list,
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
#: the header Gerrit puts before a comment's text ("Patch Set 2:",
#: "Patch Set 2: Code-Review+2 Verified+1", then "(3 comments)" when there
#: are inline comments) and the blank line after it
_COMMENT_HEADER = re.compile(
    r"\APatch Set \d+:[^\n]*(?:\n\n\(\d+ (?:inline )?comments?\))?(?:\n\n|\n|\Z)"
)


def _comment(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    return _COMMENT_HEADER.sub("", text, count=1)


def _approvals(approvals: Any) -> dict[str, int] | None:
    """A comment's votes (``[{type, value, oldValue}]``) as ``{label: value}``."""
    if not isinstance(approvals, list):
        return None
    out: dict[str, int] = {}
    for vote in approvals:
        vote = _dict(vote)
        name = vote.get("type") or vote.get("description")
        try:
            value = int(vote.get("value"))
        except (TypeError, ValueError):
            continue
        if isinstance(name, str) and name:
            out[name] = value
    return out


def _files(patchset: dict[str, Any]) -> tuple[str, ...] | None:
    """The patch set's paths (``patchSet.files``, as ``gerrit query --files``
    gives them), without Gerrit's magic ``/COMMIT_MSG`` and ``/MERGE_LIST``."""
    files = text_list(patchset.get("files"), "file")
    return None if files is None else tuple(f for f in files if not f.startswith("/"))


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
            trigger = Trigger(event=kind, ref=name, from_repository=True if commit else None)
            return event(
                project,
                label=label_,
                branch=branch,
                commit=commit,
                author=_who(body.get("submitter")),
                payload=payload,
                opt_in=opt_in,
                trigger=trigger,
            )
        project = _text(change.get("project")) or _text(body.get("project"))
        hashtags = body.get("hashtags") if "hashtags" in body else change.get("hashtags")
        ps_ref = patchset.get("ref")
        trigger = Trigger(
            event=kind,
            ref=ps_ref if isinstance(ps_ref, str) and ps_ref else None,
            labels=text_list(hashtags),
            added_labels=text_list(body.get("added")) or () if kind == "hashtags-changed" else (),
            files=_files(patchset),
            comment=_comment(body.get("comment")),
            approvals=_approvals(body.get("approvals")),
            draft=(change.get("wip") is True or change.get("status") == "DRAFT")
            if change
            else None,
            from_repository=False if change else None,
        )
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
                trigger=trigger,
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
            trigger=trigger,
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
