"""The GitLab source: webhook deliveries (``POST /hooks/gitlab``).

A delivery is trusted when ``X-Gitlab-Token`` equals the webhook's secret
token (``gitlab_token``, compared in constant time). The delivery id is
``Idempotency-Key`` (the same on GitLab's retries), else
``X-Gitlab-Event-UUID``, else a digest of the body. The event is
``X-Gitlab-Event``, else the body's ``object_kind``, else its
``event_name`` (system hooks).

* ``Push Hook``: ``GITLAB_PUSH``; project ``project.path_with_namespace``,
  the branch, commit ``checkout_sha`` (else ``after``);
* ``Tag Push Hook``: ``GITLAB_TAG_PUSH`` (``payload.tag``);
* a push that deletes the branch or tag (``after`` all zeros):
  ``GITLAB_REF_DELETED`` (commit null, ``ev.deleted``), launched only by a
  rule with ``deletes: true`` (or a store file named with that label);
* ``Merge Request Hook``: ``GITLAB_MERGE_REQUEST``; the target project and
  branch, commit and patch set ``last_commit.id``, change the ``iid``,
  ``fork`` the source project when it is not the target
  (``object_attributes.action``: open, update, merge ...); ``merge``: the
  change is merged (commit ``merge_commit_sha``; a SourceChangeSubmitted);
* ``Note Hook`` on a merge request: ``GITLAB_NOTE``, the merge request's
  identity (a ``merge_request`` without ``last_commit``: commit and patch
  set unknown, looked up through the API when a token is configured:
  ``forge_api.py``); a note on an issue, a commit or a snippet is ignored;
* any other ``X Hook``: ``GITLAB_<X>``, the project's identity
  (``Pipeline Hook``, ``Job Hook``: their SHA and ref too). Without the
  header the body's ``object_kind`` names the hook (``build``: ``Job``),
  else its ``event_name`` (``user_add_to_group``: ``Member``).

``project``, ``user``, ... are objects in some hooks and versions, strings
in others: the identity in ``ev`` is always text (``base.IDENTITY_KEYS``).

What the rules' trigger keys match (``ev.trigger``, ``base.Trigger``):
``event`` the hook's ``object_kind`` (``push``, ``tag_push``,
``merge_request``, ``note``, ``pipeline``, ...), ``action``
``object_attributes.action`` (a merge request: ``open``, ``update``,
``reopen``, ``close``, ``merge``, ``approved``, ``unapproved`` ...; a note:
``create``, ``update``); ``ref`` (a merge request's
``refs/merge-requests/N/head``); ``labels`` the merge request's titles,
``added_labels`` those an update added (``changes.labels``); ``files`` a
push's commits' paths (unknown when the hook lists fewer commits than
``total_commits_count``, and for a merge request: they need the API);
``comment`` a note's text; ``review`` ``approved`` / ``unapproved`` (an
approval action); ``draft`` ``draft`` (older: ``work_in_progress``);
``from_repository`` a push, or a merge request from a branch of the target
project. GitLab's hooks say nothing of the author's role: ``association``
is null.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from engine.launchers.base import (
    ExplainingSource,
    Ignored,
    MalformedEvent,
    NormalisedEvent,
    RawEvent,
    Trigger,
    commit_files,
    delivery_digest,
    json_body,
    real_sha,
    text_list,
)

__all__ = ["GitLabSource", "verify_token"]

log = logging.getLogger("boss.launchers.gitlab")


def verify_token(secret: str, header: str | None) -> bool:
    """Whether ``header`` is the configured token (an empty one verifies nothing)."""
    if not secret or header is None:
        return False
    return hmac.compare_digest(secret.encode(), header.encode())


def _dict(obj: Any) -> dict[str, Any]:
    """``obj`` if a mapping (its keys stripped: go-gitlab's recorded group
    hook has ``"iid "``), else empty."""
    if not isinstance(obj, dict):
        return {}
    return {k.strip() if isinstance(k, str) else k: v for k, v in obj.items()}


def _text(obj: Any, *keys: str) -> str | None:
    """``obj`` as text: a string as it is, a mapping's first of ``keys``."""
    if isinstance(obj, str):
        return obj or None
    if isinstance(obj, int) and not isinstance(obj, bool):
        return str(obj)
    for key in keys:
        value = _dict(obj).get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _merge_request(
    attrs: dict[str, Any], project: dict[str, Any], what: str, *, need_commit: bool = True
) -> dict[str, Any]:
    """The identity of a merge request (``object_attributes`` of a merge
    request hook, ``merge_request`` of a note); without ``need_commit`` a
    missing ``last_commit`` is unknown (the API may give it), not malformed."""
    iid = attrs.get("iid")
    commit = real_sha(_dict(attrs.get("last_commit")).get("id"))
    if iid is None or (need_commit and not commit):
        raise MalformedEvent(f"{what}: no iid or last_commit.id")
    source, target = _dict(attrs.get("source")), _dict(attrs.get("target"))
    fork = None
    source_id, target_id = attrs.get("source_project_id"), attrs.get("target_project_id")
    if source_id is not None and target_id is not None and source_id != target_id:
        fork = {
            "project": source.get("path_with_namespace"),
            "repository": source.get("git_http_url"),
            "branch": attrs.get("source_branch"),
        }
    return {
        "project": target.get("path_with_namespace") or project.get("path_with_namespace"),
        "repository": target.get("git_http_url") or project.get("git_http_url"),
        "branch": attrs.get("target_branch"),
        "change": str(iid),
        "commit": commit,
        "patchset": commit,
        "fork": fork,
        "url": attrs.get("url"),
        "unknown": () if commit else ("commit", "patchset"),
    }


_REVIEW = {
    "approved": "approved",
    "approval": "approved",
    "unapproved": "unapproved",
    "unapproval": "unapproved",
}


def _mr_trigger(attrs: dict[str, Any], labels: Any = None) -> dict[str, Any]:
    """The trigger facts of a merge request (``object_attributes`` of a merge
    request hook, ``merge_request`` of a note); ``labels``: the hook's own
    list, when it has one."""
    iid = attrs.get("iid")
    draft = attrs.get("draft")
    if not isinstance(draft, bool):
        draft = attrs.get("work_in_progress")
    source_id, target_id = attrs.get("source_project_id"), attrs.get("target_project_id")
    return {
        "ref": f"refs/merge-requests/{iid}/head" if iid is not None else None,
        "labels": text_list(labels if isinstance(labels, list) else attrs.get("labels"), "title"),
        "draft": draft if isinstance(draft, bool) else None,
        "from_repository": None
        if source_id is None or target_id is None
        else source_id == target_id,
    }


def _added_labels(changes: Any) -> tuple[str, ...]:
    """The labels an update added (``changes.labels.previous/current``)."""
    labels = _dict(_dict(changes).get("labels"))
    before = text_list(labels.get("previous"), "title") or ()
    return tuple(x for x in text_list(labels.get("current"), "title") or () if x not in before)


#: ``object_kind`` -> the hook's name, where they differ
_KINDS = {"build": "Job", "access_token": "Resource Access Token"}


def _kind(body: dict[str, Any]) -> str:
    """The hook's name (``X-Gitlab-Event`` without `` Hook``) from the body,
    for a delivery without the header (a recording)."""
    kind = body.get("object_kind")
    if isinstance(kind, str) and kind:
        return _KINDS.get(kind, kind.replace("_", " "))
    name = str(body.get("event_name") or "")
    if name.startswith("user_") and "group" in name:
        return "Member"
    if name.startswith("subgroup_"):
        return "Subgroup"
    return name.replace("_", " ")


class GitLabSource(ExplainingSource):
    """Normalises GitLab webhook deliveries (see the module docstring)."""

    name = "gitlab"
    log = log

    def __init__(self, queue: str = "boss.launchers.gitlab") -> None:
        self.queue = queue

    def _normalise(self, raw: RawEvent) -> list[NormalisedEvent]:
        body = json_body(raw)
        hook = raw.header("X-Gitlab-Event") or ""
        kind = hook.removesuffix(" Hook").strip() if hook else _kind(body)
        if not kind:
            raise MalformedEvent("no X-Gitlab-Event header and no object_kind")
        label = "GITLAB_" + kind.upper().replace(" ", "_")
        delivery = (
            raw.header("Idempotency-Key")
            or raw.header("X-Gitlab-Event-UUID")
            or delivery_digest(hook, raw.body)
        )
        project = _dict(body.get("project"))
        path = project.get("path_with_namespace")
        if label in ("GITLAB_PUSH", "GITLAB_TAG_PUSH", "GITLAB_MERGE_REQUEST") and not isinstance(
            path, str
        ):
            raise MalformedEvent(f"{label}: no project.path_with_namespace")
        author = _text(body.get("user"), "username", "name") or _text(
            body.get("user_username") or body.get("user_name")
        )

        attrs = _dict(body.get("object_attributes"))
        action = attrs.get("action")
        trigger: dict[str, Any] = {
            "event": kind.lower().replace(" ", "_"),
            "action": action if isinstance(action, str) and action else None,
        }

        def event(label: str, **facts: Any) -> list[NormalisedEvent]:
            facts.setdefault("trigger", Trigger(**trigger))
            facts.setdefault("project", path if isinstance(path, str) else None)
            facts.setdefault("repository", project.get("git_http_url"))
            facts.setdefault("author", author)
            facts.setdefault("url", project.get("web_url"))
            facts.setdefault("payload", body)
            return [NormalisedEvent("gitlab", label, delivery, identity=True, **facts)]

        if label in ("GITLAB_PUSH", "GITLAB_TAG_PUSH"):
            ref = body.get("ref")
            after = body.get("after")
            if not isinstance(ref, str) or not isinstance(after, str):
                raise MalformedEvent(f"{label}: no 'ref' or 'after'")
            payload = dict(body)
            branch = None
            if ref.startswith("refs/tags/"):
                payload["tag"] = ref.removeprefix("refs/tags/")
            else:
                branch = ref.removeprefix("refs/heads/")
            opt_in = None
            commit = real_sha(after) and (real_sha(body.get("checkout_sha")) or real_sha(after))
            if commit is None:
                label, opt_in = "GITLAB_REF_DELETED", "deletes"
                payload["deleted"] = True
            # the pushed commits' paths: GitLab lists at most 20 commits
            # (``total_commits_count`` says how many were pushed)
            commits = body.get("commits")
            total = body.get("total_commits_count")
            listed = commits if isinstance(commits, list) else []
            complete = not isinstance(total, int) or total <= len(listed)
            trigger.update(
                ref=ref,
                files=commit_files(listed) if commit and complete else None,
                from_repository=True if commit else None,
            )
            return event(label, branch=branch, commit=commit, payload=payload, opt_in=opt_in)
        if label == "GITLAB_MERGE_REQUEST":
            facts = _merge_request(attrs, project, label)
            trigger.update(
                _mr_trigger(attrs, body.get("labels")),
                added_labels=_added_labels(body.get("changes")),
                review=_REVIEW.get(str(action)),
            )
            merged = attrs.get("action") == "merge"
            if merged:
                facts["commit"] = real_sha(attrs.get("merge_commit_sha")) or facts["commit"]
            return event(label, merged=merged, **facts)
        if label == "GITLAB_NOTE":
            on = attrs.get("noteable_type")
            if on != "MergeRequest" or "merge_request" not in body:
                what = {"Commit": "a commit", "Issue": "an issue", "Snippet": "a snippet"}
                raise Ignored(f"a note on {what.get(on, on or 'nothing')}, not on a merge request")
            mr = _dict(body.get("merge_request"))
            facts = _merge_request(mr, project, label, need_commit=False)
            facts["url"] = attrs.get("url") or facts["url"]
            note = attrs.get("note")
            trigger.update(_mr_trigger(mr), comment=note if isinstance(note, str) else None)
            return event(label, **facts)
        if label == "GITLAB_PIPELINE":
            ref = attrs.get("ref")
            if isinstance(ref, str) and ref and not ref.startswith("refs/"):
                ref = f"refs/{'tags' if attrs.get('tag') else 'heads'}/{ref}"
            trigger["ref"] = ref if isinstance(ref, str) and ref else None
            return event(
                label,
                commit=real_sha(attrs.get("sha")),
                branch=None if attrs.get("tag") else attrs.get("ref"),
            )
        if label == "GITLAB_JOB":
            return event(
                label,
                repository=project.get("git_http_url")
                or _dict(body.get("repository")).get("git_http_url"),
                commit=real_sha(body.get("sha")),
                branch=None if body.get("tag") else body.get("ref"),
            )
        return event(label)
