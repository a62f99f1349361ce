"""The launcher's small interface: raw events in, normalised events out,
launch items published.

zuul's drivers are the model. A *source* has a connection (the OBS topic
exchange consumer, the webhook endpoints, the Gerrit stream reader) that
hands each raw delivery (:class:`RawEvent`) to its ``normalise``, which
turns it into :class:`NormalisedEvent` s or raises :class:`MalformedEvent`.
The :class:`engine.launchers.launcher.Launcher` maps normalised events to
processes (the process store and/or the rules file) and publishes them.

This module has no IO: it is what every source and the launcher share.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "EVENT_FIELDS",
    "IDENTITY_KEYS",
    "TRIGGER_KEYS",
    "ExplainingSource",
    "Ignored",
    "MalformedEvent",
    "NormalisedEvent",
    "RawEvent",
    "Source",
    "Trigger",
    "change_eiffel_id",
    "commit_files",
    "delivery_digest",
    "eiffel_id_for",
    "explain",
    "json_body",
    "real_sha",
    "sanitise_wfid",
    "text_list",
]

#: the common fields of a ``NormalisedEvent``, beside its payload
EVENT_FIELDS = (
    "source",
    "label",
    "delivery",
    "project",
    "branch",
    "repository",
    "change",
    "commit",
    "author",
    "url",
    "patchset",
    "fork",
)

#: the identity of a change in ``ev``, one type each whatever the payload's
#: version (a source that sets ``NormalisedEvent.identity`` puts them all,
#: ``null`` when unknown): ``project`` the repository's full name (text),
#: ``repository`` its clone URL, ``branch`` the branch the change targets,
#: ``commit`` the commit to build, ``change`` the change number (text),
#: ``patchset`` the change's revision (Gerrit: the patch set number; GitHub,
#: GitLab: the head commit), ``fork`` (``{project, repository, branch}``
#: where the commits come from, when not the base repository; else null),
#: ``author`` (a user name)
IDENTITY_KEYS = (
    "project",
    "repository",
    "branch",
    "commit",
    "change",
    "patchset",
    "fork",
    "author",
)

#: what a rules file's trigger keys match beside the identity, the same
#: for every forge (``Trigger``; ``ev.trigger``): ``event`` the forge's own
#: event name (GitHub's ``X-GitHub-Event``, GitLab's ``object_kind``,
#: Gerrit's ``type``), ``action`` (GitHub's ``action``, GitLab's
#: ``object_attributes.action``), ``ref`` the full ref, ``labels`` the
#: change's labels (Gerrit: hashtags), ``added_labels`` the labels this
#: event added, ``files`` the paths the pushed commits or the patch set
#: touch, ``comment`` a comment's text, ``approvals`` the votes of a
#: comment (Gerrit: ``{label: value}``), ``review`` a review's state,
#: ``draft`` a draft / WIP change, ``association`` GitHub's
#: ``author_association`` of the author, ``from_repository`` the commits are
#: the repository's own (a push, a change from one of its branches: true; a
#: fork or a Gerrit upload: false); null: the delivery does not say
TRIGGER_KEYS = (
    "event",
    "action",
    "ref",
    "labels",
    "added_labels",
    "files",
    "comment",
    "approvals",
    "review",
    "draft",
    "association",
    "from_repository",
)

#: an all-zero SHA-1 / SHA-256: git's "no commit" (a created or deleted ref)
_ZERO_SHA = re.compile(r"^0{40}(0{24})?$")

#: the launch item schema's pattern for a wfid
WFID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_BAD = re.compile(r"[^A-Za-z0-9._:-]+")


class Ignored(Exception):
    """Raised inside a source's normalising: the delivery means nothing to
    launch for (a ping, an event kind no process is launched for, ...);
    ``reason`` says why (logged, and what ``explain`` answers)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedEvent(ValueError):
    """A raw event no source can make sense of; ``reason`` says why (it goes
    into the dead letter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RawEvent:
    """One delivery as it came: its bytes, the transport's headers (HTTP
    headers, AMQP properties), and for AMQP the routing key."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    routing_key: str | None = None

    def header(self, name: str) -> str | None:
        """A header, case-insensitively."""
        low = name.lower()
        for key, value in self.headers.items():
            if key.lower() == low:
                return value
        return None


@dataclass(frozen=True)
class Trigger:
    """What the rules' trigger keys match (:data:`TRIGGER_KEYS`), extracted
    by each forge's normaliser the same way; ``None``: the delivery does
    not carry it (``files`` then is "unknown": ``unknown`` names it)."""

    event: str | None = None
    action: str | None = None
    ref: str | None = None
    labels: tuple[str, ...] | None = None
    added_labels: tuple[str, ...] = ()
    files: tuple[str, ...] | None = None
    comment: str | None = None
    approvals: dict[str, int] | None = None
    review: str | None = None
    draft: bool | None = None
    association: str | None = None
    from_repository: bool | None = None

    @property
    def unknown(self) -> tuple[str, ...]:
        """The trigger keys a rule may ask about that this delivery does not
        give (today ``files``: a pull or merge request names no files; the
        launcher asks the forge's API for them when a ``files`` rule needs
        them and a token is configured: ``forge_api.py``)."""
        return ("files",) if self.files is None else ()

    def as_dict(self) -> dict[str, Any]:
        """``ev.trigger``: every key (lists for tuples), and ``unknown``."""
        out: dict[str, Any] = {}
        for key in TRIGGER_KEYS:
            value = getattr(self, key)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[key] = value
        out["unknown"] = list(self.unknown)
        return out


def text_list(values: Any, *keys: str) -> tuple[str, ...] | None:
    """Names out of a list of strings or of mappings (their first of
    ``keys`` that is a non-empty string); ``None`` when ``values`` is not a
    list."""
    if not isinstance(values, list):
        return None
    out = []
    for value in values:
        if isinstance(value, dict):
            value = next(
                (value[k] for k in keys if isinstance(value.get(k), str) and value[k]), None
            )
        if isinstance(value, str) and value and value not in out:
            out.append(value)
    return tuple(out)


def commit_files(commits: Any) -> tuple[str, ...] | None:
    """The paths the commits of a push touch (GitHub's and GitLab's
    ``commits[].added/modified/removed``, in order, once each); ``None``
    when there are no commits to read."""
    if not isinstance(commits, list) or not commits:
        return None
    out: dict[str, None] = {}
    for commit in commits:
        if not isinstance(commit, dict):
            return None
        for key in ("added", "modified", "removed"):
            paths = commit.get(key)
            if paths is None:
                continue
            if not isinstance(paths, list):
                return None
            out.update((p, None) for p in paths if isinstance(p, str) and p)
    return tuple(out)


@dataclass(frozen=True)
class NormalisedEvent:
    """What a source event means to BOSS, whatever its source.

    * ``source``: ``obs``, ``github``, ``gitlab``, ``gerrit``, ``eiffel``;
    * ``label``: ``OBS_SRCSRV_REQUEST_CREATE``, ``GITHUB_PUSH``, ... (the
      first part of a process store file's name);
    * ``delivery``: the source's id of this delivery (same delivery, same
      id: that is what makes a launch idempotent);
    * ``project``: the OBS project (``Mer:Tools``) or the repository's path
      (``org/repo``); ``targets``: the target projects of a request event
      (one launch per target);
    * ``branch``, ``repository`` (a clone URL), ``change`` (request, pull
      or merge request, Gerrit change number), ``commit``, ``author``,
      ``url``: what the Eiffel event and the rules use;
    * ``patchset`` (the change's revision), ``fork`` (``{project,
      repository, branch}`` of a change from another repository): the rest
      of a change's identity (:data:`IDENTITY_KEYS`);
    * ``payload``: the event's own fields (``fields.ev`` of the run);
    * ``eiffel_id``: for an event that already is an Eiffel event (the
      ``eiffel`` source): its id, published by nobody again;
    * ``identity``: the source normalised the identity keys: in ``ev`` they
      win over the payload's keys of the same name (whose values move to
      ``ev.raw``) and are all there (``null`` when unknown). The forges set
      it; a source that does not (OBS today) keeps the payload's values;
    * ``unknown``: identity keys the delivery does not give (a comment on a
      pull request names the change, not its head commit): ``ev.unknown``
      (the launcher fills them in from the forge's API when it has a
      token: ``forge_api.Lookups.change``);
    * ``opt_in``: the event is launched only by a rule that asks for this
      kind (``deletes``: a ref deletion; ``internal_refs``: a Gerrit
      ``refs/changes/*`` or ``refs/meta/*`` update), or a process store
      file named with its own label;
    * ``merged``: a change was merged (a SourceChangeSubmitted linked to the
      change's SourceChangeCreated);
    * ``trigger``: what the rules' trigger keys match (:class:`Trigger`;
      ``ev.trigger``); the forges set it.
    """

    source: str
    label: str
    delivery: str
    project: str | None = None
    targets: tuple[str, ...] = ()
    branch: str | None = None
    repository: str | None = None
    change: str | None = None
    commit: str | None = None
    author: str | None = None
    url: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    eiffel_id: str | None = None
    patchset: str | None = None
    fork: dict[str, Any] | None = None
    identity: bool = False
    unknown: tuple[str, ...] = ()
    opt_in: str | None = None
    merged: bool = False
    trigger: Trigger | None = None

    @property
    def projects(self) -> list[str | None]:
        """The projects to look processes up for: each target, else the
        project (None: an event without one; only rules can map it)."""
        return list(self.targets) if self.targets else [self.project]

    def ev(self, target: str | None = None) -> dict[str, Any]:
        """``fields.ev`` of a run it launches: the payload, with the common
        keys beside it (``target_project`` for a request event's target)."""
        out = dict(self.payload)
        if self.identity:
            raw = {}
            for key in IDENTITY_KEYS:
                value = getattr(self, key)
                if key in out and out[key] != value:
                    raw[key] = out[key]
                out[key] = dict(value) if isinstance(value, dict) else value
            if raw:
                out["raw"] = raw
            if self.unknown:
                out["unknown"] = list(self.unknown)
        for key in EVENT_FIELDS:
            value = getattr(self, key)
            if value is not None:
                out.setdefault(key, value)
        if self.trigger is not None:
            if "trigger" in out:  # a payload's own key of that name
                out.setdefault("raw", {})["trigger"] = out["trigger"]
            out["trigger"] = self.trigger.as_dict()
        if self.targets:
            out["targets"] = list(self.targets)
        if target is not None:
            out["target_project"] = target
        return out

    def summary(self) -> dict[str, Any]:
        """A short description for logs and the dry run."""
        return {
            k: v
            for k, v in (
                ("source", self.source),
                ("label", self.label),
                ("delivery", self.delivery),
                ("project", self.project),
                ("targets", list(self.targets) or None),
                ("branch", self.branch),
                ("repository", self.repository),
                ("change", self.change),
                ("patchset", self.patchset),
                ("commit", self.commit),
                ("fork", (self.fork or {}).get("project")),
                ("opt_in", self.opt_in),
            )
            if v is not None
        }


@runtime_checkable
class Source(Protocol):
    """An event source: ``name`` (``obs``, ``github``, ...), ``queue`` (the
    name its dead letters carry as where they came from) and ``normalise``."""

    name: str
    queue: str

    def normalise(self, raw: RawEvent) -> list[NormalisedEvent]:
        """The events a raw delivery means (none: nothing BOSS cares about,
        e.g. a GitHub ping). Raises :class:`MalformedEvent`."""
        ...


def explain(
    normalise: Any, raw: RawEvent, log: Any = None
) -> tuple[list[NormalisedEvent], str | None]:
    """``normalise(raw)``'s events, and why there are none when it raised
    :class:`Ignored` (logged at debug level on ``log``)."""
    try:
        return normalise(raw), None
    except Ignored as exc:
        if log is not None:
            log.debug("ignored: %s", exc.reason)
        return [], exc.reason


class ExplainingSource:
    """A source whose ``_normalise`` raises :class:`Ignored` for a delivery
    it launches nothing for: ``normalise`` (the events), ``explain`` (the
    events and why there are none), ``ignored`` (only why; None for an
    event or a malformed delivery, as ``ObsSource.ignored``)."""

    log: Any = None

    def _normalise(self, raw: RawEvent) -> list[NormalisedEvent]:
        raise NotImplementedError

    def normalise(self, raw: RawEvent) -> list[NormalisedEvent]:
        return self.explain(raw)[0]

    def explain(self, raw: RawEvent) -> tuple[list[NormalisedEvent], str | None]:
        """The events of ``raw``, and why there are none when it is ignored."""
        return explain(self._normalise, raw, self.log)

    def ignored(self, raw: RawEvent) -> str | None:
        """Why ``raw`` launches nothing (None: it is an event, or malformed)."""
        try:
            return self.explain(raw)[1]
        except MalformedEvent:
            return None


def real_sha(value: Any) -> str | None:
    """``value`` if it names a commit: not empty, not git's all-zero SHA
    (a created ref's ``before``, a deleted ref's ``after``)."""
    if not isinstance(value, str) or not value or _ZERO_SHA.match(value):
        return None
    return value


def json_body(raw: RawEvent, *, allow_list: bool = False) -> Any:
    """The delivery's body as a JSON object (or, with ``allow_list``, an
    array too); ``MalformedEvent`` naming what is wrong otherwise."""
    try:
        body = json.loads(raw.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedEvent(f"not JSON: {exc}") from None
    if not isinstance(body, dict) and not (allow_list and isinstance(body, list)):
        raise MalformedEvent(f"not a JSON object but {type(body).__name__}")
    return body


def delivery_digest(*parts: bytes | str | None) -> str:
    """A delivery id for a source that gives none: a digest of what makes
    the delivery what it is (24 hex digits)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part or "").encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def eiffel_id_for(source: str, delivery: str, label: str) -> str:
    """The id of the Eiffel event a launcher publishes for a source event:
    derived from the delivery, so the same delivery gives the same event
    (a UUID v4 in form, as Eiffel requires)."""
    digest = hashlib.sha256(f"boss-launcher\0{source}\0{delivery}\0{label}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def change_eiffel_id(
    source: str, project: str | None, change: str | None, patchset: str | None
) -> str:
    """The id of the SourceChangeCreated of one revision of a change: derived
    from what identifies the revision (not the delivery), so every event of
    that revision (opened, labelled, commented ...) gives the same event and
    the SourceChangeSubmitted of its merge can link it as CHANGE."""
    return eiffel_id_for(source, f"{project}\0{change}\0{patchset}", "SOURCE_CHANGE")


def sanitise_wfid(*parts: str | None) -> str:
    """``<source>-<delivery>-<process>[-<target>]`` made a valid wfid: other
    characters become ``-``, and a too long one is cut and ends with a
    digest of the whole (so two long ids stay distinct)."""
    raw = "-".join(p for p in parts if p)
    wfid = _BAD.sub("-", raw).strip("-._:") or "launch"
    if not wfid[0].isalnum():
        wfid = "x" + wfid
    if len(wfid) > 128:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
        wfid = wfid[:111].rstrip("-._:") + "-" + digest
    assert WFID_RE.match(wfid), wfid
    return wfid
