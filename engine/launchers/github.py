"""The GitHub source: webhook deliveries (``POST /hooks/github``).

A delivery is trusted when ``X-Hub-Signature-256`` is ``sha256=`` and the
HMAC-SHA256 of the raw body with the webhook's secret (``github_secret``);
``X-GitHub-Delivery`` (a GUID, the same when GitHub redelivers) is the
delivery id; ``X-GitHub-Event`` says what happened (as zuul's GitHub driver
reads it):

* ``push`` to ``refs/heads/B``: ``GITHUB_PUSH``; project
  ``repository.full_name``, branch B, commit ``after``;
* ``push`` to ``refs/tags/T``: ``GITHUB_TAG_PUSH`` (``payload.tag`` = T);
* a ``push`` that deletes the ref (``deleted``, ``after`` all zeros):
  ``GITHUB_REF_DELETED`` (commit null, ``ev.deleted``, ``ev.tag`` for a
  tag), launched only by a rule with ``deletes: true`` (or a store file
  named ``GITHUB_REF_DELETED.*``);
* ``pull_request``: ``GITHUB_PULL_REQUEST``; the base repository and branch,
  commit and patch set the head's SHA, change the number, ``fork`` the head
  repository when it is not the base; closed with ``merged``: the change is
  merged (commit ``merge_commit_sha``; a SourceChangeSubmitted);
* ``pull_request_review``: ``GITHUB_PULL_REQUEST_REVIEW``, the same identity;
* ``issue_comment`` ``created`` on a pull request (the issue has a
  ``pull_request`` key): ``GITHUB_ISSUE_COMMENT``, change the number; the
  branch, head commit and fork need the API: ``ev.unknown`` names them
  (the launcher looks them up when a token is configured: ``forge_api.py``);
* ignored: ``ping``, ``delete`` (the ``push`` with ``deleted`` is the same
  deletion), a comment on an issue, an edited or deleted comment;
* any other ``E``: ``GITHUB_<E>`` (upper case), the repository's identity
  (``check_run``/``check_suite``: the head commit checked too).

What the rules' trigger keys match (``ev.trigger``, ``base.Trigger``):
``event`` the ``X-GitHub-Event``, ``action`` the body's; ``ref`` (a pull
request's ``refs/pull/N/head``); ``labels`` the pull request's (an issue
comment's: the issue's), ``added_labels`` a ``labeled`` action's label;
``files`` a push's commits' added, modified and removed paths (unknown for
a pull request: its files need the API); ``comment`` an issue comment's or
a review's body, ``review`` a review's state (``approved``,
``changes_requested``, ``commented``, ``dismissed``); ``draft`` the pull
request's; ``association`` the author's ``author_association`` (``OWNER``,
``MEMBER``, ``COLLABORATOR``, ``CONTRIBUTOR``, ``FIRST_TIME_CONTRIBUTOR``,
``FIRST_TIMER``, ``NONE``); ``from_repository`` a push, or a pull request
from a branch of the base repository.
"""

from __future__ import annotations

import hashlib
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

__all__ = ["GitHubSource", "sign", "verify_signature"]

log = logging.getLogger("boss.launchers.github")


def sign(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the signature of ``body`` with ``secret`` (an
    empty secret verifies nothing)."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())


def _dict(obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else {}


def _repo(body: dict[str, Any], what: str) -> dict[str, Any]:
    repo = body.get("repository")
    if not isinstance(repo, dict) or not isinstance(repo.get("full_name"), str):
        raise MalformedEvent(f"{what}: no repository.full_name")
    return repo


def _names(obj: Any) -> tuple[str, ...] | None:
    return text_list(obj, "name")


def _trigger(kind: str, body: dict[str, Any], **facts: Any) -> Trigger:
    """The trigger facts of a delivery of ``kind`` (see the module docstring)."""
    action = body.get("action")
    facts.setdefault("event", kind)
    facts.setdefault("action", action if isinstance(action, str) and action else None)
    if action == "labeled":
        label = _dict(body.get("label")).get("name")
        facts.setdefault("added_labels", (label,) if isinstance(label, str) and label else ())
    if kind in ("create", "delete") and isinstance(body.get("ref"), str):
        where = "tags" if body.get("ref_type") == "tag" else "heads"
        facts.setdefault("ref", f"refs/{where}/{body['ref']}")
    if kind == "release":
        tag = _dict(body.get("release")).get("tag_name")
        facts.setdefault("ref", f"refs/tags/{tag}" if isinstance(tag, str) and tag else None)
    return Trigger(**facts)


class GitHubSource(ExplainingSource):
    """Normalises GitHub webhook deliveries (see the module docstring)."""

    name = "github"
    log = log

    def __init__(self, queue: str = "boss.launchers.github") -> None:
        self.queue = queue

    def _event(
        self, label: str, delivery: str, body: dict[str, Any], **facts: Any
    ) -> NormalisedEvent:
        repo = _dict(body.get("repository"))
        facts.setdefault("project", repo.get("full_name"))
        facts.setdefault("repository", repo.get("clone_url"))
        facts.setdefault("author", _dict(body.get("sender")).get("login"))
        facts.setdefault("url", repo.get("html_url"))
        kind = facts.pop("kind", None)
        if "trigger" not in facts:
            facts["trigger"] = _trigger(kind or label.removeprefix("GITHUB_").lower(), body)
        return NormalisedEvent("github", label, delivery, identity=True, **facts)

    def _normalise(self, raw: RawEvent) -> list[NormalisedEvent]:
        kind = raw.header("X-GitHub-Event")
        if not kind:
            raise MalformedEvent("no X-GitHub-Event header")
        body = json_body(raw)
        delivery = raw.header("X-GitHub-Delivery") or delivery_digest(kind, raw.body)
        if kind == "ping":
            raise Ignored("a ping (the webhook was set up)")
        if kind == "delete":
            raise Ignored(
                "a delete event: the push with deleted: true that GitHub sends for the "
                "same deletion is the one (GITHUB_REF_DELETED)"
            )
        if kind == "push":
            return [self._push(body, delivery)]
        if kind in ("pull_request", "pull_request_review"):
            return [self._pull_request(kind, body, delivery)]
        if kind == "issue_comment":
            return [self._issue_comment(body, delivery)]
        facts: dict[str, Any] = {}
        if kind in ("check_run", "check_suite"):  # the commit checked (its branch is the head's)
            facts = {"commit": real_sha(_dict(body.get(kind)).get("head_sha"))}
        return [
            self._event(
                "GITHUB_" + kind.upper().replace("-", "_"),
                delivery,
                body,
                payload=body,
                kind=kind,
                **facts,
            )
        ]

    def _push(self, body: dict[str, Any], delivery: str) -> NormalisedEvent:
        repo = _repo(body, "push")
        ref = body.get("ref")
        after = body.get("after")
        if not isinstance(ref, str) or not isinstance(after, str):
            raise MalformedEvent("push: no 'ref' or 'after'")
        pusher = _dict(body.get("pusher"))
        payload = dict(body)
        branch = None
        if ref.startswith("refs/tags/"):
            label = "GITHUB_TAG_PUSH"
            payload["tag"] = ref.removeprefix("refs/tags/")
        else:
            label, branch = "GITHUB_PUSH", ref.removeprefix("refs/heads/")
        commit = real_sha(after)
        opt_in = None
        if body.get("deleted") is True or commit is None:
            label, opt_in = "GITHUB_REF_DELETED", "deletes"
            payload["deleted"] = True
        # the pushed commits' paths (GitHub lists at most 2048 commits: more, unknown)
        commits = body.get("commits")
        listed = commits if isinstance(commits, list) else []
        files = commit_files(listed) if commit and len(listed) < 2048 else None
        return self._event(
            label,
            delivery,
            body,
            project=repo["full_name"],
            branch=branch,
            commit=commit,
            author=pusher.get("name"),
            url=body.get("compare") or repo.get("html_url"),
            payload=payload,
            opt_in=opt_in,
            trigger=_trigger(
                "push", body, ref=ref, files=files, from_repository=True if commit else None
            ),
        )

    def _pull_request(self, kind: str, body: dict[str, Any], delivery: str) -> NormalisedEvent:
        repo = _repo(body, kind)
        pr = body.get("pull_request")
        if not isinstance(pr, dict):
            raise MalformedEvent(f"{kind}: no 'pull_request' object")
        head, base = _dict(pr.get("head")), _dict(pr.get("base"))
        number = body.get("number", pr.get("number"))
        sha = real_sha(head.get("sha"))
        if number is None or not sha:
            raise MalformedEvent(f"{kind}: no number or head.sha")
        base_repo = _dict(base.get("repo")) or repo
        head_repo = _dict(head.get("repo"))
        unknown: tuple[str, ...] = ()
        fork = None
        if not head_repo:  # the fork was deleted
            unknown = ("fork",)
        elif head_repo.get("full_name") != base_repo.get("full_name"):
            fork = {
                "project": head_repo.get("full_name"),
                "repository": head_repo.get("clone_url"),
                "branch": head.get("ref"),
            }
        merged = (
            kind == "pull_request" and body.get("action") == "closed" and bool(pr.get("merged"))
        )
        review = _dict(body.get("review")) if kind == "pull_request_review" else {}
        state = review.get("state")
        draft = pr.get("draft")
        association = pr.get("author_association")
        trigger = _trigger(
            kind,
            body,
            ref=f"refs/pull/{number}/head",
            labels=_names(pr.get("labels")),
            comment=review.get("body") if isinstance(review.get("body"), str) else None,
            review=state.lower() if isinstance(state, str) and state else None,
            draft=draft if isinstance(draft, bool) else None,
            association=association if isinstance(association, str) else None,
            from_repository=None if not head_repo else fork is None,
        )
        return self._event(
            "GITHUB_" + kind.upper(),
            delivery,
            body,
            project=base_repo.get("full_name") or repo["full_name"],
            repository=base_repo.get("clone_url") or repo.get("clone_url"),
            branch=base.get("ref"),
            change=str(number),
            commit=(real_sha(pr.get("merge_commit_sha")) if merged else None) or sha,
            patchset=sha,
            fork=fork,
            author=_dict(pr.get("user")).get("login"),
            url=pr.get("html_url"),
            payload=body,
            unknown=unknown,
            merged=merged,
            trigger=trigger,
        )

    def _issue_comment(self, body: dict[str, Any], delivery: str) -> NormalisedEvent:
        repo = _repo(body, "issue_comment")
        issue = _dict(body.get("issue"))
        if "pull_request" not in issue:
            raise Ignored("a comment on an issue, not on a pull request")
        action = body.get("action")
        if action != "created":
            raise Ignored(f"a comment {action} (only a new comment launches)")
        number = issue.get("number")
        if number is None:
            raise MalformedEvent("issue_comment: no issue.number")
        comment = _dict(body.get("comment"))
        text, draft = comment.get("body"), issue.get("draft")
        association = comment.get("author_association")
        trigger = _trigger(
            "issue_comment",
            body,
            ref=f"refs/pull/{number}/head",
            labels=_names(issue.get("labels")),
            comment=text if isinstance(text, str) else None,
            draft=draft if isinstance(draft, bool) else None,
            association=association if isinstance(association, str) else None,
        )
        return self._event(
            "GITHUB_ISSUE_COMMENT",
            delivery,
            body,
            project=repo["full_name"],
            change=str(number),
            author=_dict(comment.get("user")).get("login")
            or _dict(body.get("sender")).get("login"),
            url=comment.get("html_url") or issue.get("html_url"),
            payload=body,
            # the pull request's base branch, head commit and head repository
            # are not in the delivery (the launcher asks the API: forge_api.py)
            unknown=("branch", "commit", "patchset", "fork"),
            trigger=trigger,
        )
