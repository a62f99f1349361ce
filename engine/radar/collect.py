"""Deliveries to radar records (:class:`~engine.radar.model.Record`).

One function per forge, each taking the event as the forge sent it (a
Gerrit ``stream-events`` object; a GitHub webhook body with its
``X-GitHub-Event``; a GitLab hook body with its event) and returning the
records it means (none: nothing a CI dashboard cares about):

* Gerrit: ``patchset-created`` (appeared), ``comment-added`` by a CI
  account (a report: its verdict from the ``Verified`` vote, else a
  ``Code-Review`` vote, else the message: "Build succeeded", "Build
  failed", ...), by another account voting ``Verified`` (a report of an
  *unclassified* system: stored, shown, never dropped), by a human whose
  comment is "recheck" (a recheck of the patch set), ``change-merged``;
* GitHub: ``pull_request`` opened, reopened, synchronize (appeared; closed
  and merged: merged), ``check_run`` / ``check_suite`` completed (a report
  of the app), ``status`` (a report of its context; pending is not a
  verdict), ``check_run`` / ``check_suite`` rerequested and an
  ``issue_comment`` "recheck" (a recheck);
* GitLab: ``merge_request`` open, reopen, update with new commits
  (appeared; merge: merged), ``pipeline`` in a final status (a report of
  GitLab's CI), a ``build`` (job) of an external status (stage
  ``external``: a report of its name), a ``note`` "recheck" on a merge
  request (a recheck).

Which accounts are CI systems and which is the gate is the
:class:`Classifier`'s (``[radar]``: ``ci_pattern``, ``systems``,
``ignore``, ``gate``). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.radar.model import (
    APPEARED,
    ERROR,
    FAIL,
    MERGED,
    PASS,
    RECHECK,
    REPORT,
    SKIPPED,
    Record,
)
from engine.radar.settings import DEFAULT_CI_PATTERN, RadarSettings

__all__ = [
    "Classifier",
    "Unreadable",
    "from_delivery",
    "from_gerrit",
    "from_github",
    "from_gitlab",
    "from_run",
    "gerrit_lines",
]


class Unreadable(ValueError):
    """An event the radar cannot read (``reason`` says why): dead-lettered
    by the caller, never silently dropped."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}


def _text(obj: Any) -> str | None:
    if isinstance(obj, dict):
        obj = obj.get("name")
    if isinstance(obj, bool) or obj is None or obj == "":
        return None
    return str(obj) if isinstance(obj, str | int) else None


def digest(*parts: Any) -> str:
    """A record id from what makes the event what it is (24 hex digits)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def _time(value: Any) -> float | None:
    """Epoch seconds from a number or an ISO 8601 / GitLab time
    (``2019-05-15T15:21:12Z``, ``2016-08-12 15:23:28 UTC``)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace(" UTC", "+00:00").replace("Z", "+00:00")
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        try:
            t = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S %z")
        except ValueError:
            return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


@dataclass(frozen=True)
class Account:
    """Who wrote a Gerrit comment: the system's name, whether it is a CI
    system (configured or matching), whether it is the gate."""

    name: str
    ci: bool
    gate: bool


class Classifier:
    """Which accounts and apps are CI systems, and which is the gate."""

    def __init__(self, settings: RadarSettings | None = None) -> None:
        s = settings if settings is not None else RadarSettings()
        self.settings = s
        self.pattern = re.compile(s.ci_pattern or DEFAULT_CI_PATTERN)
        self.recheck = re.compile(s.recheck_pattern)
        self.systems = {n.lower() for n in s.systems}
        self.ignore = {n.lower() for n in s.ignore}
        self.gate = s.gate.lower()

    def account(self, obj: Any) -> Account | None:
        """A Gerrit account (``{name, username, email}`` or a bare name)."""
        d = _dict(obj) if not isinstance(obj, str) else {"name": obj}
        keys = [d.get(k) for k in ("name", "username", "email")]
        keys = [k for k in keys if isinstance(k, str) and k]
        if not keys:
            return None
        low = {k.lower() for k in keys}
        name = keys[0]
        if low & self.ignore:
            ci = False
        else:
            ci = bool(low & self.systems) or any(
                self.pattern.search(k) for k in keys[:2] if "@" not in k
            )
        return Account(name, ci, bool(self.gate) and self.gate in low)

    def app(self, name: str) -> Account | None:
        """A GitHub app, a commit status's context, GitLab's CI: CI by nature."""
        if not name or name.lower() in self.ignore:
            return None
        return Account(name, True, bool(self.gate) and self.gate == name.lower())

    def is_recheck(self, text: Any) -> bool:
        return isinstance(text, str) and bool(self.recheck.search(text))


# -- Gerrit -------------------------------------------------------------------------------

_HEADER = re.compile(r"\APatch Set \d+:[^\n]*(?:\n\n\(\d+ (?:inline )?comments?\))?(?:\n\n|\n|\Z)")
_MESSAGE_VERDICTS = (
    (re.compile(r"\bbuild (?:succeeded|successful)\b|\bbuild passed\b", re.I), PASS),
    (re.compile(r"\bbuild (?:failed|failure|unstable)\b", re.I), FAIL),
    (
        re.compile(
            r"\bbuild (?:canceled|cancelled|aborted|error)\b|\bmerge failed\b|\bNOT_REGISTERED\b"
            r"|\bCONFIG_ERROR\b|\binfra(?:structure)? (?:failure|error)\b",
            re.I,
        ),
        ERROR,
    ),
    (re.compile(r"\bbuild skipped\b|\bskipped\b", re.I), SKIPPED),
)


def _votes(approvals: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for vote in approvals if isinstance(approvals, list) else ():
        vote = _dict(vote)
        name = vote.get("type") or vote.get("description")
        try:
            value = int(vote.get("value"))
        except (TypeError, ValueError):
            continue
        if isinstance(name, str) and name:
            out[name] = value
    return out


def _gerrit_verdict(votes: dict[str, int], message: str) -> tuple[str | None, str | None]:
    for label in ("Verified", "Code-Review"):
        value = votes.get(label, 0)
        if value:
            return (PASS if value > 0 else FAIL), f"{label}{value:+d}"
    for pattern, verdict in _MESSAGE_VERDICTS:
        found = pattern.search(message)
        if found:
            return verdict, found.group(0)
    return None, None


def from_gerrit(body: dict[str, Any], classifier: Classifier) -> list[Record]:
    """The records of one ``stream-events`` object."""
    kind = body.get("type")
    if not isinstance(kind, str) or not kind:
        raise Unreadable("gerrit: no 'type'")
    if kind not in ("patchset-created", "comment-added", "change-merged"):
        return []
    change, patchset = _dict(body.get("change")), _dict(body.get("patchSet"))
    project = _text(change.get("project")) or _text(body.get("project"))
    number, ps = _text(change.get("number")), _text(patchset.get("number"))
    at = _time(body.get("eventCreatedOn"))
    if not project or number is None or ps is None or at is None:
        raise Unreadable(f"gerrit {kind}: no project, change.number, patchSet.number or time")
    rid = digest(body)
    base = {"forge": "gerrit", "project": project, "key": f"{number},{ps}", "at": at, "id": rid}
    base |= {"change": number, "patchset": ps}
    if kind == "patchset-created":
        created = _time(patchset.get("createdOn"))
        return [Record(APPEARED, **base | {"at": created if created is not None else at})]
    if kind == "change-merged":
        return [Record(MERGED, **base)]
    author = classifier.account(body.get("author"))
    if author is None:
        return []
    text = body.get("comment") if isinstance(body.get("comment"), str) else ""
    message = _HEADER.sub("", text, count=1)
    votes = _votes(body.get("approvals"))
    if author.ci:
        verdict, detail = _gerrit_verdict(votes, message)
        return [
            Record(
                REPORT,
                **base,
                system=author.name,
                verdict=verdict,
                gate=author.gate,
                detail=detail,
            )
        ]
    if votes.get("Verified"):
        # a vote only a CI system casts, from an account nobody named one
        verdict, detail = _gerrit_verdict({"Verified": votes["Verified"]}, "")
        return [
            Record(
                REPORT, **base, system=author.name, verdict=verdict, classified=False, detail=detail
            )
        ]
    if classifier.is_recheck(message):
        return [Record(RECHECK, **base, system=author.name, detail=message.strip()[:80])]
    return []


def gerrit_lines(lines: Iterable[bytes | str]) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    """``(line number, object, error)`` of a stream-events capture: a line
    that is not a JSON object (an SSH banner) is skipped; one that starts
    with ``{`` but does not parse gives ``None`` and why."""
    for n, line in enumerate(lines, 1):
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        text = text.strip()
        if not text.startswith("{"):
            continue
        try:
            obj = json.loads(text)
        except ValueError as exc:
            yield n, None, f"not JSON: {exc}"
            continue
        if not isinstance(obj, dict):
            yield n, None, "not a JSON object"
            continue
        yield n, obj, ""


# -- GitHub -------------------------------------------------------------------------------

_GITHUB_CONCLUSIONS = {
    "success": PASS,
    "failure": FAIL,
    "timed_out": ERROR,
    "startup_failure": ERROR,
    "cancelled": SKIPPED,
    "neutral": SKIPPED,
    "skipped": SKIPPED,
    "stale": SKIPPED,
    "action_required": SKIPPED,
}
_STATUS_STATES = {"success": PASS, "failure": FAIL, "error": ERROR}


def _pr_number(obj: dict[str, Any]) -> str | None:
    prs = obj.get("pull_requests")
    if isinstance(prs, list) and prs:
        return _text(_dict(prs[0]).get("number"))
    return None


def from_github(
    kind: str, body: dict[str, Any], classifier: Classifier, received: float
) -> list[Record]:
    """The records of one webhook delivery (``kind``: ``X-GitHub-Event``);
    ``received``: when it came (a rerequest carries no time of its own)."""
    repo = _dict(body.get("repository"))
    project = repo.get("full_name")
    if not isinstance(project, str) or not project:
        if kind in ("pull_request", "check_run", "check_suite", "status", "issue_comment"):
            raise Unreadable(f"github {kind}: no repository.full_name")
        return []
    action = body.get("action")
    base: dict[str, Any] = {"forge": "github", "project": project}
    if kind == "pull_request":
        pr = _dict(body.get("pull_request"))
        sha = _dict(pr.get("head")).get("sha")
        number = _text(body.get("number", pr.get("number")))
        if not isinstance(sha, str) or not sha:
            raise Unreadable("github pull_request: no head.sha")
        base |= {"key": sha, "change": number, "patchset": sha}
        if action in ("opened", "reopened", "synchronize", "ready_for_review"):
            at = _time(pr.get("updated_at")) or _time(pr.get("created_at")) or received
            return [Record(APPEARED, **base, at=at, id=digest("appeared", project, sha))]
        if action == "closed" and pr.get("merged"):
            at = _time(pr.get("merged_at")) or received
            return [Record(MERGED, **base, at=at, id=digest("merged", project, sha))]
        return []
    if kind in ("check_run", "check_suite"):
        obj = _dict(body.get(kind))
        sha = obj.get("head_sha")
        app = classifier.app(_dict(obj.get("app")).get("name") or "")
        if not isinstance(sha, str) or not sha or obj.get("id") is None:
            raise Unreadable(f"github {kind}: no {kind}.id or head_sha")
        base |= {"key": sha, "change": _pr_number(obj), "patchset": sha}
        if action == "rerequested":
            return [Record(RECHECK, **base, at=received, id=digest(kind, "rerequested", body))]
        if action != "completed" or app is None:
            return []
        conclusion = obj.get("conclusion")
        at = _time(obj.get("completed_at")) or _time(obj.get("updated_at")) or received
        what = f"{kind} {obj.get('name') or obj['id']}: {conclusion}"
        return [
            Record(
                REPORT,
                **base,
                at=at,
                id=f"{kind}:{obj['id']}",
                system=app.name,
                verdict=_GITHUB_CONCLUSIONS.get(str(conclusion)),
                gate=app.gate,
                detail=what,
            )
        ]
    if kind == "status":
        sha, state = body.get("sha"), body.get("state")
        context = body.get("context") if isinstance(body.get("context"), str) else ""
        app = classifier.app(context)
        if not isinstance(sha, str) or not sha or state not in _STATUS_STATES or app is None:
            return []
        at = _time(body.get("updated_at")) or _time(body.get("created_at")) or received
        return [
            Record(
                REPORT,
                **base,
                key=sha,
                patchset=sha,
                at=at,
                id=f"status:{body.get('id') or digest(body)}",
                system=app.name,
                verdict=_STATUS_STATES[state],
                gate=app.gate,
                detail=f"status {state}",
            )
        ]
    if kind == "issue_comment" and action == "created":
        issue, comment = _dict(body.get("issue")), _dict(body.get("comment"))
        if "pull_request" not in issue or not classifier.is_recheck(comment.get("body")):
            return []
        # the comment names the pull request, not its head: the store
        # resolves "" to the change's newest patch set
        return [
            Record(
                RECHECK,
                **base,
                key="",
                change=_text(issue.get("number")),
                at=_time(comment.get("created_at")) or received,
                id=f"comment:{comment.get('id') or digest(body)}",
                system=_dict(comment.get("user")).get("login"),
            )
        ]
    return []


# -- GitLab -------------------------------------------------------------------------------

_PIPELINE = {"success": PASS, "failed": FAIL, "canceled": SKIPPED, "skipped": SKIPPED}


def _gitlab_project(body: dict[str, Any]) -> str | None:
    project = body.get("project")
    if isinstance(project, dict):
        return project.get("path_with_namespace")
    return body.get("project_name") if isinstance(body.get("project_name"), str) else None


def from_gitlab(
    kind: str, body: dict[str, Any], classifier: Classifier, received: float
) -> list[Record]:
    """The records of one hook (``kind``: ``object_kind``)."""
    project = _gitlab_project(body)
    if not project:
        if kind in ("merge_request", "pipeline", "build", "note"):
            raise Unreadable(f"gitlab {kind}: no project")
        return []
    attrs = _dict(body.get("object_attributes"))
    base: dict[str, Any] = {"forge": "gitlab", "project": project}
    if kind == "merge_request":
        sha = _dict(attrs.get("last_commit")).get("id")
        action = attrs.get("action")
        if not isinstance(sha, str) or not sha:
            raise Unreadable("gitlab merge_request: no last_commit.id")
        base |= {"key": sha, "change": _text(attrs.get("iid")), "patchset": sha}
        if action in ("open", "reopen") or (action == "update" and attrs.get("oldrev")):
            at = _time(attrs.get("updated_at")) or received
            return [Record(APPEARED, **base, at=at, id=digest("appeared", project, sha))]
        if action == "merge":
            at = _time(attrs.get("updated_at")) or received
            return [Record(MERGED, **base, at=at, id=digest("merged", project, sha))]
        return []
    if kind == "pipeline":
        sha, status = attrs.get("sha"), attrs.get("status")
        if not isinstance(sha, str) or not sha or attrs.get("id") is None:
            raise Unreadable("gitlab pipeline: no object_attributes.id or sha")
        app = classifier.app(classifier.settings.gitlab_name)
        if status not in _PIPELINE or app is None:
            return []
        at = _time(attrs.get("finished_at")) or received
        mr = _dict(body.get("merge_request"))
        return [
            Record(
                REPORT,
                **base,
                key=sha,
                change=_text(mr.get("iid")),
                patchset=sha,
                at=at,
                id=f"pipeline:{attrs['id']}:{status}",
                system=app.name,
                verdict=_PIPELINE[status],
                gate=app.gate,
                detail=f"pipeline {attrs['id']}: {status}",
            )
        ]
    if kind == "build":
        sha, status = body.get("sha"), body.get("build_status")
        if body.get("build_stage") != "external" or status not in _PIPELINE:
            return []  # GitLab's own jobs: their pipeline is the report
        app = classifier.app(str(body.get("build_name") or ""))
        if not isinstance(sha, str) or not sha or app is None:
            return []
        at = _time(body.get("build_finished_at")) or received
        return [
            Record(
                REPORT,
                **base,
                key=sha,
                patchset=sha,
                at=at,
                id=f"build:{body.get('build_id')}:{status}",
                system=app.name,
                verdict=_PIPELINE[status],
                gate=app.gate,
                detail=f"status {status}",
            )
        ]
    if kind == "note":
        mr = _dict(body.get("merge_request"))
        if attrs.get("noteable_type") != "MergeRequest" or not classifier.is_recheck(
            attrs.get("note")
        ):
            return []
        sha = _dict(mr.get("last_commit")).get("id")
        return [
            Record(
                RECHECK,
                **base,
                key=sha if isinstance(sha, str) else "",
                change=_text(mr.get("iid")),
                patchset=sha if isinstance(sha, str) else None,
                at=_time(attrs.get("created_at")) or received,
                id=f"note:{attrs.get('id') or digest(body)}",
                system=_dict(body.get("user")).get("username"),
            )
        ]
    return []


_GITLAB_HOOKS = {
    "Merge Request Hook": "merge_request",
    "Pipeline Hook": "pipeline",
    "Job Hook": "build",
    "Note Hook": "note",
}


def from_delivery(
    forge: str,
    kind: str | None,
    body: Any,
    classifier: Classifier,
    received: float,
) -> list[Record]:
    """The records of a delivery of ``forge`` (``gerrit``, ``github``,
    ``gitlab``; ``kind``: GitHub's ``X-GitHub-Event``, GitLab's
    ``X-Gitlab-Event`` or ``object_kind``; Gerrit's is in the body).
    Raises :class:`Unreadable`."""
    if not isinstance(body, dict):
        raise Unreadable(f"{forge}: not a JSON object")
    if forge == "gerrit":
        return from_gerrit(body, classifier)
    if forge == "github":
        if not kind:
            raise Unreadable("github: no event name (X-GitHub-Event)")
        return from_github(kind, body, classifier, received)
    if forge == "gitlab":
        kind = _GITLAB_HOOKS.get(kind or "", kind) or body.get("object_kind")
        if not isinstance(kind, str) or not kind:
            raise Unreadable("gitlab: no event name (X-Gitlab-Event or object_kind)")
        return from_gitlab(kind, body, classifier, received)
    return []


# -- BOSS's own runs ---------------------------------------------------------------------

_OUTCOMES = {"success": PASS, "failure": FAIL, "error": ERROR, "cancelled": SKIPPED}


def from_run(summary: dict[str, Any], fields: dict[str, Any], name: str = "BOSS") -> list[Record]:
    """A run that ended (``summary``: the run store's transition summary,
    ``outcome`` from ``engine.core.outcome.run_outcome``) as a report of
    the system ``name`` on the patch set its event named (``fields.ev``)."""
    verdict = _OUTCOMES.get(str(summary.get("outcome")))
    ev = _dict(fields.get("ev"))
    forge, project = ev.get("source"), _text(ev.get("project"))
    if verdict is None or forge not in ("gerrit", "github", "gitlab") or not project:
        return []
    change, patchset = _text(ev.get("change")), _text(ev.get("patchset"))
    if forge == "gerrit":
        if change is None or patchset is None:
            return []
        key = f"{change},{patchset}"
    else:
        key = patchset or _text(ev.get("commit")) or ""
        if not key:
            return []
    at = _time(summary.get("ended_at")) or _time(summary.get("launched_at"))
    if at is None:
        return []
    return [
        Record(
            REPORT,
            forge=forge,
            project=project,
            key=key,
            at=at,
            id=f"run:{summary.get('wfid')}",
            change=change,
            patchset=patchset,
            system=name,
            verdict=verdict,
            detail=f"{summary.get('name')} {summary.get('outcome')}",
        )
    ]
