"""The GitHub source: webhook deliveries (``POST /hooks/github``).

A delivery is trusted when ``X-Hub-Signature-256`` is ``sha256=`` and the
HMAC-SHA256 of the raw body with the webhook's secret (``github_secret``);
``X-GitHub-Delivery`` (a GUID, the same when GitHub redelivers) is the
delivery id; ``X-GitHub-Event`` says what happened:

* ``push`` to ``refs/heads/B``: ``GITHUB_PUSH``; project
  ``repository.full_name``, branch B, commit ``after``;
* ``push`` to ``refs/tags/T``: ``GITHUB_TAG_PUSH`` (``payload.tag`` = T);
* ``pull_request``: ``GITHUB_PULL_REQUEST``; branch: the base branch, commit:
  the head's, change: the number (``payload.action``: opened, synchronize ...);
* ``ping``: nothing is launched;
* any other ``E``: ``GITHUB_<E>`` (upper case).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from engine.launchers.base import (
    MalformedEvent,
    NormalisedEvent,
    RawEvent,
    delivery_digest,
    json_body,
)

__all__ = ["GitHubSource", "sign", "verify_signature"]


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` with ``secret`` (an
    empty secret verifies nothing)."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())


def _repo(body: dict[str, Any], what: str) -> dict[str, Any]:
    repo = body.get("repository")
    if not isinstance(repo, dict) or not isinstance(repo.get("full_name"), str):
        raise MalformedEvent(f"{what}: no repository.full_name")
    return repo


class GitHubSource:
    """Normalises GitHub webhook deliveries (see the module docstring)."""

    name = "github"

    def __init__(self, queue: str = "boss.launchers.github") -> None:
        self.queue = queue

    def normalise(self, raw: RawEvent) -> list[NormalisedEvent]:
        kind = raw.header("X-GitHub-Event")
        if not kind:
            raise MalformedEvent("no X-GitHub-Event header")
        body = json_body(raw)
        delivery = raw.header("X-GitHub-Delivery") or delivery_digest(kind, raw.body)
        if kind == "ping":
            return []
        if kind == "push":
            return [self._push(body, delivery)]
        if kind == "pull_request":
            return [self._pull_request(body, delivery)]
        repo = body.get("repository") if isinstance(body.get("repository"), dict) else {}
        sender = body.get("sender") if isinstance(body.get("sender"), dict) else {}
        return [
            NormalisedEvent(
                "github",
                "GITHUB_" + kind.upper().replace("-", "_"),
                delivery,
                project=repo.get("full_name"),
                repository=repo.get("clone_url"),
                author=sender.get("login"),
                url=repo.get("html_url"),
                payload=body,
            )
        ]

    def _push(self, body: dict[str, Any], delivery: str) -> NormalisedEvent:
        repo = _repo(body, "push")
        ref = body.get("ref")
        after = body.get("after")
        if not isinstance(ref, str) or not isinstance(after, str):
            raise MalformedEvent("push: no 'ref' or 'after'")
        pusher = body.get("pusher") if isinstance(body.get("pusher"), dict) else {}
        payload = dict(body)
        if ref.startswith("refs/tags/"):
            label, branch = "GITHUB_TAG_PUSH", None
            payload["tag"] = ref.removeprefix("refs/tags/")
        else:
            label, branch = "GITHUB_PUSH", ref.removeprefix("refs/heads/")
        return NormalisedEvent(
            "github",
            label,
            delivery,
            project=repo["full_name"],
            branch=branch,
            repository=repo.get("clone_url"),
            commit=after,
            author=pusher.get("name"),
            url=body.get("compare") or repo.get("html_url"),
            payload=payload,
        )

    def _pull_request(self, body: dict[str, Any], delivery: str) -> NormalisedEvent:
        repo = _repo(body, "pull_request")
        pr = body.get("pull_request")
        if not isinstance(pr, dict):
            raise MalformedEvent("pull_request: no 'pull_request' object")
        head = pr.get("head") if isinstance(pr.get("head"), dict) else {}
        base = pr.get("base") if isinstance(pr.get("base"), dict) else {}
        user = pr.get("user") if isinstance(pr.get("user"), dict) else {}
        number = body.get("number", pr.get("number"))
        if number is None or not head.get("sha"):
            raise MalformedEvent("pull_request: no number or head.sha")
        head_repo = head.get("repo") if isinstance(head.get("repo"), dict) else {}
        return NormalisedEvent(
            "github",
            "GITHUB_PULL_REQUEST",
            delivery,
            project=repo["full_name"],
            branch=base.get("ref"),
            repository=head_repo.get("clone_url") or repo.get("clone_url"),
            change=str(number),
            commit=head["sha"],
            author=user.get("login"),
            url=pr.get("html_url"),
            payload=body,
        )
