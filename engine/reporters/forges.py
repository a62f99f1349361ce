"""Where a change lives, and how each forge is told about a run of it.

``Change.from_fields`` reads a run's identity from its launch fields (``ev``
with ``source`` github, gitlab or gerrit, as the launchers put it: see
docs/launchers.md, "A change's identity"). ``plan`` says which reports a
transition makes (``Report``: one call each, done and remembered apart),
``send`` makes one call: over HTTP (``engine.forge_http``; GitHub, GitLab, Gerrit's
REST API) or, for Gerrit, the ``gerrit review`` command over SSH.

A call that fails is a ``ReportError``: ``transient`` (a 5xx, 429, a
connection error or timeout, ``ssh`` exiting 255) is retried with back-off
by the sender; anything else (a 4xx: bad token, no such commit) is not.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from engine import forge_http
from engine.core import outcome as oc

__all__ = ["FORGES", "Change", "Report", "ReportError", "plan", "send"]

log = logging.getLogger("boss.reporters")

FORGES = ("github", "gitlab", "gerrit")


class ReportError(Exception):
    """A report that could not be made; ``transient``: worth retrying."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


@dataclass(frozen=True)
class Change:
    """A change's identity, from a run's ``ev``."""

    source: str
    project: str
    commit: str | None = None
    change: str | None = None
    patchset: str | None = None
    branch: str | None = None

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any] | None) -> Change | None:
        """The change a run reports on; None for a run no forge launched
        (or without a project, or without the commit or change its forge needs)."""
        ev = (fields or {}).get("ev")
        if not isinstance(ev, Mapping):
            return None
        source, project = ev.get("source"), ev.get("project")
        if source not in FORGES or not isinstance(project, str) or not project:
            return None

        def text(key: str) -> str | None:
            value = ev.get(key)
            return None if value is None or isinstance(value, (dict, list)) else str(value)

        change = cls(
            source, project, text("commit"), text("change"), text("patchset"), text("branch")
        )
        if source == "gerrit" and not change.change:
            return None
        if source in ("github", "gitlab") and not change.commit:
            return None
        return change

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    """One call to make: ``action`` (``status``, ``check``, ``comment``,
    ``note``, ``review``) for ``transition`` (``start``, ``end``, ``step:...``)."""

    action: str
    transition: str


# -- what a transition reports -------------------------------------------------


def plan(change: Change, transition: str, outcome: str, options: Mapping[str, Any]) -> list[Report]:
    """The reports of ``transition`` (``start``, ``end``, or a participant's
    ``step:<id>``) of a run of ``change`` that came to ``outcome``."""
    if not options.get("enabled", True):
        return []
    start = transition == "start"
    if start and not options.get("report_start", True):
        return []
    failed = outcome in (oc.FAILURE, oc.ERROR)
    comment = (
        transition == "end" and failed and bool(options.get("comment_on_failure")) and change.change
    )
    out: list[str] = []
    if change.source == "github":
        if options.get("github_statuses", True):
            out.append("status")
        if options.get("github_checks") and not transition.startswith("step:"):
            out.append("check")
        if comment:
            out.append("comment")
    elif change.source == "gitlab":
        out.append("status")
        if comment:
            out.append("note")
    elif change.source == "gerrit" and (not start or options.get("gerrit_start_message", True)):
        out.append("review")
    return [Report(a, transition) for a in out]


# -- making one call -----------------------------------------------------------


def _state(outcome: str, options: Mapping[str, Any]) -> str:
    if outcome == oc.ERROR and options.get("error_as") == "failure":
        return oc.FAILURE
    return outcome


_GITHUB_STATUS = {
    oc.PENDING: "pending",
    oc.SUCCESS: "success",
    oc.FAILURE: "failure",
    oc.ERROR: "error",
    oc.CANCELLED: "error",
}
_GITHUB_CONCLUSION = {
    oc.SUCCESS: "success",
    oc.FAILURE: "failure",
    oc.ERROR: "failure",
    oc.CANCELLED: "cancelled",
}
_GITLAB_STATUS = {
    oc.PENDING: "running",
    oc.SUCCESS: "success",
    oc.FAILURE: "failed",
    oc.ERROR: "failed",
    oc.CANCELLED: "canceled",
}


def send(job: Mapping[str, Any], settings: Any, prior: Mapping[str, Any] | None = None) -> Any:
    """Make the call of ``job`` (a job record: ``action``, ``change``,
    ``outcome``, ``options``, ``context``, ``description``, ``target_url``,
    ``message``); ``prior``: what the same action of the run's start
    returned (a check run's id). Returns what is kept of the answer."""
    change = Change(**job["change"])
    action = job["action"]
    options = job.get("options") or {}
    state = _state(job["outcome"], options)
    if change.source == "github":
        return _github(settings, change, action, state, job, prior or {})
    if change.source == "gitlab":
        return _gitlab(settings, change, action, state, job)
    if change.source == "gerrit":
        return _gerrit(settings, change, state, job, options)
    raise ReportError(f"no reporter for {change.source}", transient=False)


def _github(
    settings: Any,
    change: Change,
    action: str,
    state: str,
    job: Mapping[str, Any],
    prior: Mapping[str, Any],
) -> Any:
    if not settings.github_token:
        raise ReportError("no [reporters] github_token", transient=False)
    base = f"{settings.github_url.rstrip('/')}/repos/{change.project}"
    headers = forge_http.github_headers(settings.github_token)
    target = job.get("target_url") or None
    if action == "status":
        body = {
            "state": _GITHUB_STATUS[state],
            "context": job["context"],
            "description": job["description"][:140],
        }
        if target:
            body["target_url"] = target
        answer = http(settings, "POST", f"{base}/statuses/{change.commit}", body, headers)
        return {"id": (answer or {}).get("id")}
    if action == "check":
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {"name": job["context"], "external_id": job["wfid"]}
        if target:
            body["details_url"] = target
        if state == oc.PENDING:
            body.update(head_sha=change.commit, status="in_progress", started_at=now)
            answer = http(settings, "POST", f"{base}/check-runs", body, headers)
            return {"id": (answer or {}).get("id")}
        body.update(
            status="completed",
            conclusion=_GITHUB_CONCLUSION[state],
            completed_at=now,
            output={"title": job["description"][:255], "summary": job["message"]},
        )
        if prior.get("id"):
            answer = http(settings, "PATCH", f"{base}/check-runs/{prior['id']}", body, headers)
        else:
            body["head_sha"] = change.commit
            answer = http(settings, "POST", f"{base}/check-runs", body, headers)
        return {"id": (answer or {}).get("id")}
    if action == "comment":
        answer = http(
            settings,
            "POST",
            f"{base}/issues/{change.change}/comments",
            {"body": job["message"]},
            headers,
        )
        return {"id": (answer or {}).get("id")}
    raise ReportError(f"github: no action {action}", transient=False)


def _gitlab(settings: Any, change: Change, action: str, state: str, job: Mapping[str, Any]) -> Any:
    if not settings.gitlab_token:
        raise ReportError("no [reporters] gitlab_token", transient=False)
    project = urllib.parse.quote(change.project, safe="")
    base = f"{settings.gitlab_url.rstrip('/')}/api/v4/projects/{project}"
    headers = forge_http.gitlab_headers(settings.gitlab_token)
    if action == "status":
        body = {
            "state": _GITLAB_STATUS[state],
            "name": job["context"],
            "description": job["description"][:255],
        }
        if job.get("target_url"):
            body["target_url"] = job["target_url"]
        answer = http(settings, "POST", f"{base}/statuses/{change.commit}", body, headers)
        return {"id": (answer or {}).get("id")}
    if action == "note":
        answer = http(
            settings,
            "POST",
            f"{base}/merge_requests/{change.change}/notes",
            {"body": job["message"]},
            headers,
        )
        return {"id": (answer or {}).get("id")}
    raise ReportError(f"gitlab: no action {action}", transient=False)


def _vote(state: str, options: Mapping[str, Any]) -> int | None:
    vote = {
        oc.SUCCESS: options.get("gerrit_success"),
        oc.FAILURE: options.get("gerrit_failure"),
        oc.ERROR: options.get("gerrit_error"),
        oc.CANCELLED: options.get("gerrit_cancelled"),
    }.get(state)
    return int(vote) if vote not in (None, "") and int(vote) != 0 else None


def _gerrit(
    settings: Any, change: Change, state: str, job: Mapping[str, Any], options: Mapping[str, Any]
) -> Any:
    label = str(options.get("gerrit_label") or "")
    vote = _vote(state, options) if label and state != oc.PENDING else None
    message = job["message"]
    revision = change.commit or change.patchset or "current"
    if settings.gerrit_url:
        body: dict[str, Any] = {"message": message, "tag": "autogenerated:boss"}
        if vote is not None:
            body["labels"] = {label: vote}
        cid = f"{urllib.parse.quote(change.project, safe='')}~{change.change}"
        url = f"{settings.gerrit_url.rstrip('/')}/a/changes/{cid}/revisions/{revision}/review"
        answer = http(settings, "POST", url, body, {}, gerrit=True)
        return {"labels": (answer or {}).get("labels")}
    if settings.gerrit_command:
        return _gerrit_ssh(settings, change, message, label, vote)
    raise ReportError("no [reporters] gerrit_url nor gerrit_command", transient=False)


def _gerrit_ssh(
    settings: Any, change: Change, message: str, label: str, vote: int | None
) -> dict[str, Any]:
    # ssh joins its arguments into one command line that Gerrit splits
    # again: every argument is quoted for that
    argv = [*shlex.split(settings.gerrit_command)]
    argv += ["--project", shlex.quote(change.project), "--message", shlex.quote(message)]
    argv += ["--tag", "autogenerated:boss"]
    if vote is not None:
        argv += ["--label", shlex.quote(f"{label}={vote:+d}")]
    target = f"{change.change},{change.patchset}" if change.patchset else change.commit
    argv.append(shlex.quote(str(target or change.change)))
    try:
        r = subprocess.run(
            argv, capture_output=True, text=True, timeout=settings.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise ReportError("gerrit review: timed out", transient=True) from None
    except OSError as exc:
        raise ReportError(f"gerrit review: {exc}", transient=False) from None
    if r.returncode == 0:
        return {"vote": vote}
    problem = (r.stderr or r.stdout).strip().splitlines()
    text = f"gerrit review exited {r.returncode}: {problem[-1] if problem else ''}"
    # 255: ssh could not connect (or the connection dropped)
    raise ReportError(text, transient=r.returncode == 255, status=r.returncode)


# -- HTTP ----------------------------------------------------------------------


def http(
    settings: Any,
    method: str,
    url: str,
    body: Any,
    headers: Mapping[str, str],
    *,
    gerrit: bool = False,
) -> Any:
    """One JSON call (``engine.forge_http``); its answer's JSON (None when
    empty). Gerrit's calls carry ``[reporters] gerrit_user``'s password."""
    auth = gerrit and bool(settings.gerrit_user)
    try:
        return forge_http.call(
            method,
            url,
            body=body,
            headers=headers,
            timeout=settings.timeout,
            agent="boss-reporter",
            user=settings.gerrit_user if auth else "",
            password=settings.gerrit_password if auth else "",
            digest=settings.gerrit_auth == "digest",
            gerrit=gerrit,
        )[0]
    except forge_http.ForgeHTTPError as exc:
        raise ReportError(exc.reason, transient=exc.transient, status=exc.status) from None
