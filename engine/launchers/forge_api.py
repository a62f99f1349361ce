"""What a delivery lacks, looked up through the forge's REST API.

Three facts are not in every GitHub / GitLab delivery:

* the **head** of a change a comment names (GitHub's ``issue_comment`` on a
  pull request; a GitLab note whose ``merge_request`` has no
  ``last_commit``): ``GET /repos/{o}/{r}/pulls/{n}`` (``head.sha``,
  ``head.ref``, ``head.repo``, ``base.ref``), GitLab's ``GET
  /projects/{id}/merge_requests/{iid}`` (``sha``, ``source_branch``,
  ``source_project_id``, ``target_branch``; a fork's path: ``GET
  /projects/{source_project_id}``);
* the **files** of a pull or merge request (a ``files:`` rule):
  ``GET /repos/{o}/{r}/pulls/{n}/files`` (paginated, 100 a page, GitHub
  lists at most 3000), GitLab's ``GET .../merge_requests/{iid}/diffs``
  (paginated; ``/changes`` on a GitLab older than 15.7);
* the author's **permission** on the repository (``trusted:`` when the
  configured lists do not decide): ``GET
  /repos/{o}/{r}/collaborators/{user}/permission`` (``admin``, ``maintain``,
  ``write``: trusted), GitLab's ``GET /projects/{id}/members/all/{user_id}``
  (``access_level`` >= 30, developer: trusted; 404: not a member).

:class:`ForgeAPI` makes the calls (``engine.forge_http``, as the reporters do; one per
launcher, its permission answers cached ``api_permission_ttl`` seconds);
:class:`Lookups` is one delivery's view of it: each kind of fact is asked
at most once per delivery, and only when the launcher needs it (a
``files:`` rule reached, a ``trusted:`` rule the lists do not decide, a
comment that something may launch for). Without a token for the forge
nothing is looked up: the facts stay unknown, as before.

A call is retried (``api_attempts``, ``api_retry_delay`` doubling) when the
API answers 5xx or 429 or not at all (``api_timeout``); then it is a
:class:`ForgeError` with ``transient`` true: the launcher lets it through,
so the webhook answers 503 (the delivery's claim released: the forge's
retry launches) and a stream dead-letters the delivery with the reason.
Any other answer (401, 403, a 404 of the change) is ``transient`` false:
the delivery is dead-lettered at once with the reason (a webhook: 400 and
the letter's id), as a malformed one is.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from engine import forge_http
from engine.launchers.base import NormalisedEvent, real_sha

__all__ = ["TRUSTED_GITHUB", "TRUSTED_GITLAB_LEVEL", "ForgeAPI", "ForgeError", "Lookups"]

log = logging.getLogger("boss.launchers.forge_api")

#: GitHub roles (``role_name``, else ``permission``) that are trusted
TRUSTED_GITHUB = frozenset({"admin", "maintain", "write"})
#: GitLab's developer access level: it and above are trusted
TRUSTED_GITLAB_LEVEL = 30
#: the most files GitHub lists for a pull request
GITHUB_MAX_FILES = 3000
#: the most pages of a paginated answer read
MAX_PAGES = 50


class ForgeError(Exception):
    """A lookup that failed: ``reason`` (for the dead letter and the log),
    ``transient`` (worth retrying later: 5xx, 429, no answer)."""

    def __init__(self, reason: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.status = status


class _NotFound(Exception):
    pass


def _next_link(header: str | None) -> str | None:
    """The ``rel="next"`` URL of GitHub's ``Link`` header."""
    for part in (header or "").split(","):
        url, _, params = part.partition(";")
        if 'rel="next"' in params.replace(" ", ""):
            return url.strip().strip("<>")
    return None


class ForgeAPI:
    """The calls (see the module docstring); thread-safe."""

    def __init__(
        self,
        *,
        github_url: str = "https://api.github.com",
        github_token: str = "",
        gitlab_url: str = "https://gitlab.com",
        gitlab_token: str = "",
        timeout: float = 4.0,
        attempts: int = 2,
        retry_delay: float = 0.5,
        permission_ttl: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.github_url = github_url.rstrip("/")
        self.github_token = github_token
        self.gitlab_url = gitlab_url.rstrip("/")
        self.gitlab_token = gitlab_token
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.retry_delay = retry_delay
        self.permission_ttl = permission_ttl
        self._sleep = sleep
        self._lock = threading.Lock()
        self._permissions: dict[tuple[str, str, str], tuple[float, Any]] = {}

    @classmethod
    def from_settings(cls, settings: Any) -> ForgeAPI:
        """From ``[launchers]``'s ``github_api_*``, ``gitlab_api_*``, ``api_*`` keys."""
        return cls(
            github_url=settings.github_api_url,
            github_token=settings.github_api_token,
            gitlab_url=settings.gitlab_api_url,
            gitlab_token=settings.gitlab_api_token,
            timeout=settings.api_timeout,
            attempts=settings.api_attempts,
            retry_delay=settings.api_retry_delay,
            permission_ttl=settings.api_permission_ttl,
        )

    def enabled(self, source: str) -> bool:
        """Whether lookups are configured for ``source`` (a token is)."""
        return bool(
            (source == "github" and self.github_token) or (source == "gitlab" and self.gitlab_token)
        )

    # -- HTTP ------------------------------------------------------------------------

    def _headers(self, source: str) -> dict[str, str]:
        if source == "github":
            return forge_http.github_headers(self.github_token)
        return forge_http.gitlab_headers(self.gitlab_token)

    def _once(self, source: str, url: str) -> tuple[Any, Mapping[str, str]]:
        try:
            return forge_http.call(
                "GET",
                url,
                headers=self._headers(source),
                timeout=self.timeout,
                agent="boss-launcher",
                strict=True,
            )
        except forge_http.ForgeHTTPError as exc:
            if exc.status == 404:
                raise _NotFound(url) from None
            raise ForgeError(
                f"{source} API: {exc.reason}", transient=exc.transient, status=exc.status
            ) from None

    def get(self, source: str, url: str) -> tuple[Any, Mapping[str, str]]:
        """One GET (retried while transient); raises :class:`ForgeError`,
        or ``_NotFound`` for a 404."""
        delay = self.retry_delay
        for attempt in range(1, self.attempts + 1):
            try:
                return self._once(source, url)
            except ForgeError as exc:
                if not exc.transient or attempt == self.attempts:
                    if exc.transient:
                        exc.reason += f" (after {attempt} attempts)"
                        exc.args = (exc.reason,)
                    raise
                log.warning("%s (attempt %d, retrying in %.1fs)", exc.reason, attempt, delay)
                self._sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def _required(self, source: str, url: str, what: str) -> Any:
        try:
            return self.get(source, url)[0]
        except _NotFound:
            raise ForgeError(
                f"{source} API: GET {url}: 404 ({what})", transient=False, status=404
            ) from None

    def _gitlab_project(self, project: str | int) -> str:
        quoted = urllib.parse.quote(str(project), safe="")
        return f"{self.gitlab_url}/api/v4/projects/{quoted}"

    # -- the lookups -------------------------------------------------------------------

    def github_pull(self, project: str, number: str) -> dict[str, Any]:
        """``GET /repos/{project}/pulls/{number}``."""
        url = f"{self.github_url}/repos/{project}/pulls/{number}"
        pull = self._required("github", url, f"no pull request {project}#{number}")
        if not isinstance(pull, dict):
            raise ForgeError(f"github API: GET {url}: not an object", transient=False)
        return pull

    def github_files(self, project: str, number: str) -> tuple[str, ...]:
        """Every path ``GET /repos/{project}/pulls/{number}/files`` lists
        (each page, ``Link: rel="next"``); a rename's old path too."""
        url: str | None = f"{self.github_url}/repos/{project}/pulls/{number}/files?per_page=100"
        out: dict[str, None] = {}
        pages = 0
        while url and pages < MAX_PAGES and len(out) < GITHUB_MAX_FILES:
            what = f"no pull request {project}#{number}"
            try:
                page, headers = self.get("github", url)
            except _NotFound:
                raise ForgeError(f"github API: GET {url}: 404 ({what})", transient=False) from None
            pages += 1
            for entry in page if isinstance(page, list) else []:
                for key in ("filename", "previous_filename"):
                    path = entry.get(key) if isinstance(entry, dict) else None
                    if isinstance(path, str) and path:
                        out[path] = None
            url = _next_link(headers.get("Link"))
        return tuple(out)

    def github_permission(self, project: str, user: str) -> str:
        """The user's role on the repository (``admin``, ``maintain``,
        ``write``, ``triage``, ``read``, ``none``), cached."""

        def ask() -> str:
            quoted = urllib.parse.quote(user, safe="")
            url = f"{self.github_url}/repos/{project}/collaborators/{quoted}/permission"
            try:
                answer = self.get("github", url)[0]
            except _NotFound:
                return "none"
            answer = answer if isinstance(answer, dict) else {}
            return str(answer.get("role_name") or answer.get("permission") or "none").lower()

        return self._cached(("github", project, user), ask)

    def gitlab_merge_request(self, project: str, iid: str) -> dict[str, Any]:
        """``GET /projects/{project}/merge_requests/{iid}``."""
        url = f"{self._gitlab_project(project)}/merge_requests/{iid}"
        mr = self._required("gitlab", url, f"no merge request {project}!{iid}")
        if not isinstance(mr, dict):
            raise ForgeError(f"gitlab API: GET {url}: not an object", transient=False)
        return mr

    def gitlab_project(self, project: str | int) -> dict[str, Any]:
        """``GET /projects/{id}``."""
        url = self._gitlab_project(project)
        answer = self._required("gitlab", url, f"no project {project}")
        return answer if isinstance(answer, dict) else {}

    def gitlab_files(self, project: str, iid: str) -> tuple[str, ...]:
        """The paths of ``.../merge_requests/{iid}/diffs`` (each page,
        ``X-Next-Page``), else of ``/changes`` (GitLab < 15.7): old and new."""
        base = f"{self._gitlab_project(project)}/merge_requests/{iid}"
        out: dict[str, None] = {}

        def add(entries: Any) -> None:
            for entry in entries if isinstance(entries, list) else []:
                for key in ("old_path", "new_path"):
                    path = entry.get(key) if isinstance(entry, dict) else None
                    if isinstance(path, str) and path:
                        out[path] = None

        page: str | None = "1"
        pages = 0
        while page and pages < MAX_PAGES:
            try:
                entries, headers = self.get("gitlab", f"{base}/diffs?per_page=100&page={page}")
            except _NotFound:
                if pages:
                    raise ForgeError(
                        f"gitlab API: {base}/diffs page {page}: 404", transient=False
                    ) from None
                changes = self._required("gitlab", f"{base}/changes", f"no merge request {iid}")
                add((changes or {}).get("changes") if isinstance(changes, dict) else None)
                return tuple(out)
            pages += 1
            add(entries)
            page = (headers.get("X-Next-Page") or "").strip() or None
        return tuple(out)

    def gitlab_access_level(self, project: str, user_id: int) -> int:
        """The user's access level on the project (0: not a member), cached."""

        def ask() -> int:
            url = f"{self._gitlab_project(project)}/members/all/{int(user_id)}"
            try:
                answer = self.get("gitlab", url)[0]
            except _NotFound:
                return 0
            level = answer.get("access_level") if isinstance(answer, dict) else None
            return level if isinstance(level, int) else 0

        return self._cached(("gitlab", project, str(user_id)), ask)

    def _cached(self, key: tuple[str, str, str], ask: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._permissions.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = ask()
        with self._lock:
            if len(self._permissions) > 10_000:
                self._permissions = {k: v for k, v in self._permissions.items() if v[0] > now}
            self._permissions[key] = (now + self.permission_ttl, value)
        return value


def _dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}


class Lookups:
    """One delivery's lookups: each kind (``change``, ``files``,
    ``permission``) asked at most once per change (``calls`` counts what was
    asked). ``api`` None, or no token for the event's forge: nothing is
    looked up (every method answers None)."""

    def __init__(self, api: ForgeAPI | None) -> None:
        self.api = api
        self.calls: list[tuple[str, str]] = []
        self._cache: dict[tuple[str, str, str | None, str | None], Any] = {}

    def enabled(self, event: NormalisedEvent) -> bool:
        return self.api is not None and self.api.enabled(event.source)

    def _once(self, kind: str, event: NormalisedEvent, ask: Callable[[], Any]) -> Any:
        key = (kind, event.source, event.project, event.change)
        if key not in self._cache:
            self.calls.append((kind, event.source))
            self._cache[key] = ask()
        return self._cache[key]

    # -- a comment's change ------------------------------------------------------------

    def needs_change(self, event: NormalisedEvent) -> bool:
        """Whether ``event`` names a change without its head commit, and the
        forge's API may be asked for it."""
        return (
            "commit" in event.unknown
            and event.source in ("github", "gitlab")
            and bool(event.project and event.change)
            and self.enabled(event)
        )

    def change(self, event: NormalisedEvent) -> NormalisedEvent:
        """``event`` with its change's head commit, branch and fork filled
        in from the API (the same event when nothing is to be looked up)."""
        if not self.needs_change(event):
            return event
        assert self.api is not None and event.project and event.change
        api, project, number = self.api, event.project, event.change
        if event.source == "github":
            facts = self._once("change", event, lambda: _github_change(api, project, number))
        else:
            facts = self._once(
                "change", event, lambda: _gitlab_change(api, project, number, event.payload)
            )
        unknown = tuple(k for k in event.unknown if k not in facts)
        if facts.get("fork_deleted"):  # the head repository is gone: where from is unknown
            unknown += ("fork",)
        known = {k: v for k, v in facts.items() if k != "fork_deleted"}
        return replace(event, unknown=unknown, **known)

    # -- files -------------------------------------------------------------------------

    def files(self, event: NormalisedEvent) -> tuple[str, ...] | None:
        """The paths a pull or merge request touches (None: not looked up)."""
        if not (
            self.enabled(event)
            and event.change
            and event.project
            and event.label
            in (
                "GITHUB_PULL_REQUEST",
                "GITHUB_PULL_REQUEST_REVIEW",
                "GITHUB_ISSUE_COMMENT",
                "GITLAB_MERGE_REQUEST",
                "GITLAB_NOTE",
            )
        ):
            return None
        assert self.api is not None
        api, project, number = self.api, event.project, event.change
        if event.source == "github":
            return self._once("files", event, lambda: api.github_files(project, number))
        return self._once("files", event, lambda: api.gitlab_files(project, number))

    def looked_up_files(self, event: NormalisedEvent) -> tuple[str, ...] | None:
        """The files already looked up for ``event`` (no call)."""
        return self._cache.get(("files", event.source, event.project, event.change))

    # -- permission --------------------------------------------------------------------

    def trusted(self, event: NormalisedEvent) -> str | None:
        """Why the event's author is trusted by their permission on the
        repository (None: not trusted, or not looked up)."""
        if not self.enabled(event) or not event.project:
            return None
        assert self.api is not None
        api, project = self.api, event.project
        if event.source == "github":
            user = event.author
            if not user:
                return None
            role = self._once("permission", event, lambda: api.github_permission(project, user))
            return f"{user} has {role} permission" if role in TRUSTED_GITHUB else None
        user_id = _gitlab_user_id(event.payload)
        if user_id is None:
            return None
        level = self._once("permission", event, lambda: api.gitlab_access_level(project, user_id))
        if level >= TRUSTED_GITLAB_LEVEL:
            return f"{event.author or user_id} has access level {level}"
        return None


def _github_change(api: ForgeAPI, project: str, number: str) -> dict[str, Any]:
    pull = api.github_pull(project, number)
    head, base = _dict(pull.get("head")), _dict(pull.get("base"))
    sha = real_sha(head.get("sha"))
    if not sha:
        raise ForgeError(
            f"github API: pull request {project}#{number}: no head.sha", transient=False
        )
    head_repo, base_repo = _dict(head.get("repo")), _dict(base.get("repo"))
    fork = None
    if head_repo and head_repo.get("full_name") != (base_repo.get("full_name") or project):
        fork = {
            "project": head_repo.get("full_name"),
            "repository": head_repo.get("clone_url"),
            "branch": head.get("ref"),
        }
    facts: dict[str, Any] = {
        "commit": sha,
        "patchset": sha,
        "branch": base.get("ref"),
        "fork": fork,
        "fork_deleted": not head_repo,
    }
    if base_repo.get("clone_url"):
        facts["repository"] = base_repo["clone_url"]
    return facts


def _gitlab_change(
    api: ForgeAPI, project: str, iid: str, payload: Mapping[str, Any]
) -> dict[str, Any]:
    mr = api.gitlab_merge_request(project, iid)
    sha = real_sha(mr.get("sha"))
    if not sha:
        raise ForgeError(f"gitlab API: merge request {project}!{iid}: no sha", transient=False)
    fork = None
    source_id, target_id = mr.get("source_project_id"), mr.get("target_project_id")
    if source_id is not None and target_id is not None and source_id != target_id:
        source = _dict(_dict(payload.get("merge_request")).get("source"))
        if not source.get("path_with_namespace"):
            found = api.gitlab_project(source_id)
            source = {
                "path_with_namespace": found.get("path_with_namespace"),
                "git_http_url": found.get("http_url_to_repo"),
            }
        fork = {
            "project": source.get("path_with_namespace"),
            "repository": source.get("git_http_url"),
            "branch": mr.get("source_branch"),
        }
    return {"commit": sha, "patchset": sha, "branch": mr.get("target_branch"), "fork": fork}


def _gitlab_user_id(payload: Mapping[str, Any]) -> int | None:
    """The id of the user whose event it is (``user.id``, else the
    ``object_attributes.author_id``)."""
    for value in (
        _dict(payload.get("user")).get("id"),
        payload.get("user_id"),
        _dict(payload.get("object_attributes")).get("author_id"),
    ):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
