"""The GitLab source: webhook deliveries (``POST /hooks/gitlab``).

A delivery is trusted when ``X-Gitlab-Token`` equals the webhook's secret
token (``gitlab_token``, compared in constant time). The delivery id is
``Idempotency-Key`` (the same on GitLab's retries), else
``X-Gitlab-Event-UUID``, else a digest of the body.

* ``Push Hook``: ``GITLAB_PUSH``; project ``project.path_with_namespace``,
  the branch, commit ``checkout_sha`` (else ``after``);
* ``Tag Push Hook``: ``GITLAB_TAG_PUSH`` (``payload.tag``);
* ``Merge Request Hook``: ``GITLAB_MERGE_REQUEST``; the target branch, commit
  ``last_commit.id``, change the ``iid`` (``object_attributes.action``: open,
  update, merge ...);
* any other ``X Hook``: ``GITLAB_<X>`` (``Note Hook``: ``GITLAB_NOTE``).
"""

from __future__ import annotations

import hmac
from typing import Any

from engine.launchers.base import (
    MalformedEvent,
    NormalisedEvent,
    RawEvent,
    delivery_digest,
    json_body,
)

__all__ = ["GitLabSource", "verify_token"]


def verify_token(secret: str, header: str | None) -> bool:
    """Whether ``header`` is the configured token (an empty one verifies nothing)."""
    if not secret or header is None:
        return False
    return hmac.compare_digest(secret.encode(), header.encode())


def _dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}


class GitLabSource:
    """Normalises GitLab webhook deliveries (see the module docstring)."""

    name = "gitlab"

    def __init__(self, queue: str = "boss.launchers.gitlab") -> None:
        self.queue = queue

    def normalise(self, raw: RawEvent) -> list[NormalisedEvent]:
        body = json_body(raw)
        hook = raw.header("X-Gitlab-Event") or ""
        kind = (
            hook.removesuffix(" Hook").strip()
            if hook
            else str(body.get("object_kind") or "").replace("_", " ")
        )
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
        if label in ("GITLAB_PUSH", "GITLAB_TAG_PUSH"):
            ref = body.get("ref")
            commit = body.get("checkout_sha") or body.get("after")
            if not isinstance(ref, str) or not isinstance(commit, str):
                raise MalformedEvent(f"{label}: no 'ref' or 'after'")
            payload = dict(body)
            branch = None
            if ref.startswith("refs/tags/"):
                payload["tag"] = ref.removeprefix("refs/tags/")
            else:
                branch = ref.removeprefix("refs/heads/")
            return [
                NormalisedEvent(
                    "gitlab",
                    label,
                    delivery,
                    project=path,
                    branch=branch,
                    repository=project.get("git_http_url"),
                    commit=commit,
                    author=body.get("user_username") or body.get("user_name"),
                    url=project.get("web_url"),
                    payload=payload,
                )
            ]
        if label == "GITLAB_MERGE_REQUEST":
            attrs = _dict(body.get("object_attributes"))
            iid = attrs.get("iid")
            commit = _dict(attrs.get("last_commit")).get("id")
            if iid is None or not commit:
                raise MalformedEvent(
                    "GITLAB_MERGE_REQUEST: no object_attributes.iid or last_commit.id"
                )
            source = _dict(attrs.get("source"))
            return [
                NormalisedEvent(
                    "gitlab",
                    label,
                    delivery,
                    project=path,
                    branch=attrs.get("target_branch"),
                    repository=source.get("git_http_url") or project.get("git_http_url"),
                    change=str(iid),
                    commit=commit,
                    author=_dict(body.get("user")).get("username"),
                    url=attrs.get("url"),
                    payload=body,
                )
            ]
        return [
            NormalisedEvent(
                "gitlab",
                label,
                delivery,
                project=path if isinstance(path, str) else None,
                repository=project.get("git_http_url"),
                author=_dict(body.get("user")).get("username"),
                url=project.get("web_url"),
                payload=body,
            )
        ]
