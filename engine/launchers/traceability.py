"""The Eiffel event a launcher publishes for a source event, before the
launches it causes (each run's ActivityTriggered links it as CAUSE).

* SourceChangeSubmitted: a push (``GITHUB_PUSH``, ``GITHUB_TAG_PUSH``,
  ``GITLAB_PUSH``, ``GITLAB_TAG_PUSH``), a merged change
  (``GERRIT_CHANGE_MERGED``, a GitHub pull request closed merged, a GitLab
  merge request's ``merge``: ``NormalisedEvent.merged``; linked as CHANGE
  to the SourceChangeCreated of the revision merged), a branch or tag
  updated (``GERRIT_REF_UPDATED``), an OBS commit (``OBS_SRCSRV_COMMIT``);
* SourceChangeCreated: a proposed change (``GITHUB_PULL_REQUEST``,
  ``GITLAB_MERGE_REQUEST``, ``GERRIT_PATCHSET_CREATED``), an OBS request
  (``OBS_SRCSRV_REQUEST_CREATE``); a change's id is derived from its
  revision (:func:`engine.launchers.base.change_eiffel_id`: source,
  project, change, patch set), so the events of one revision are one
  event, and its merge can link it;
* ArtifactCreated (identity: a purl): a built package (``OBS_BUILD_SUCCESS``),
  a published repository (``OBS_REPO_PUBLISHED``);
* AnnouncementPublished (heading: the label, severity MINOR): anything else
  (a failed build, a request's state change, a review, a comment, a ref
  deletion or a Gerrit internal ref that a rule opted in to).

Other events' ids are derived from the source, the delivery and the label
(:func:`engine.launchers.base.eiffel_id_for`), so a delivery seen twice
gives the same event (the graph stores it once). Every event carries
``customData`` ``source``, ``label``, ``delivery`` and ``project``.
"""

from __future__ import annotations

import socket
from functools import cache
from typing import Any
from urllib.parse import quote

from engine.launchers.base import NormalisedEvent, change_eiffel_id, eiffel_id_for
from engine.trace import eiffel

__all__ = [
    "ARTIFACT",
    "CREATED",
    "SUBMITTED",
    "change_event_id",
    "event_type_for",
    "event_type_of",
    "source_event",
]

SUBMITTED = frozenset(
    {
        "GITHUB_PUSH",
        "GITHUB_TAG_PUSH",
        "GITLAB_PUSH",
        "GITLAB_TAG_PUSH",
        "GERRIT_CHANGE_MERGED",
        "GERRIT_REF_UPDATED",
        "OBS_SRCSRV_COMMIT",
    }
)
CREATED = frozenset(
    {
        "GITHUB_PULL_REQUEST",
        "GITLAB_MERGE_REQUEST",
        "GERRIT_PATCHSET_CREATED",
        "OBS_SRCSRV_REQUEST_CREATE",
    }
)
ARTIFACT = frozenset({"OBS_BUILD_SUCCESS", "OBS_REPO_PUBLISHED"})

_TRACKERS = {"github": "GitHub", "gitlab": "GitLab", "gerrit": "Gerrit", "obs": "OBS"}


@cache
def _meta_source() -> dict[str, str]:
    return {"name": "boss-launcher", "host": socket.gethostname() or "localhost"}


def event_type_for(label: str) -> str:
    """The Eiffel event type published for ``label``."""
    if label in SUBMITTED:
        return eiffel.SOURCE_CHANGE_SUBMITTED
    if label in CREATED:
        return eiffel.SOURCE_CHANGE_CREATED
    if label in ARTIFACT:
        return eiffel.ARTIFACT_CREATED
    return eiffel.ANNOUNCEMENT_PUBLISHED


def event_type_of(event: NormalisedEvent) -> str:
    """The Eiffel event type published for ``event``: a merged change is a
    SourceChangeSubmitted whatever its label, an opted-in event (a ref
    deletion, an internal ref) an AnnouncementPublished, else by label."""
    if event.opt_in:
        return eiffel.ANNOUNCEMENT_PUBLISHED
    if event.merged:
        return eiffel.SOURCE_CHANGE_SUBMITTED
    return event_type_for(event.label)


def change_event_id(event: NormalisedEvent) -> str | None:
    """The id of the SourceChangeCreated of ``event``'s change revision (an
    event of a source that normalises the identity, naming a change and its
    patch set: the forges), else None."""
    if not event.identity or not event.change or not event.patchset:
        return None
    return change_eiffel_id(event.source, event.project, event.change, event.patchset)


def _purl(event: NormalisedEvent) -> str:
    p = event.payload
    project = quote(str(event.project or p.get("project") or "unknown"), safe="")
    if event.label == "OBS_REPO_PUBLISHED":
        repo = quote(str(p.get("repo") or p.get("repository") or "unknown"), safe="")
        version = p.get("buildid")
        return f"pkg:generic/{project}/{repo}" + (
            f"@{quote(str(version), safe='')}" if version else ""
        )
    package = quote(str(p.get("package") or "unknown"), safe="")
    version = p.get("versrel") or p.get("srcmd5")
    qualifiers = [
        f"{k}={quote(str(p[key]), safe='')}"
        for k, key in (("arch", "arch"), ("repository", "repository"))
        if p.get(key)
    ]
    return (
        f"pkg:rpm/{project}/{package}"
        + (f"@{quote(str(version), safe='')}" if version else "")
        + ("?" + "&".join(qualifiers) if qualifiers else "")
    )


def source_event(event: NormalisedEvent) -> dict[str, Any]:
    """The Eiffel event for ``event`` (see the module docstring)."""
    etype = event_type_of(event)
    custom = {
        k: v
        for k, v in (
            ("source", event.source),
            ("label", event.label),
            ("delivery", event.delivery),
            ("project", event.project),
        )
        if v is not None
    }
    if event.targets:
        custom["targets"] = list(event.targets)
    change_id = change_event_id(event)
    own_id = (
        change_id
        if etype == eiffel.SOURCE_CHANGE_CREATED and change_id
        else eiffel_id_for(event.source, event.delivery, event.label)
    )
    meta = {"event_id": own_id, "source": _meta_source()}
    git = event.commit and event.repository and event.source != "obs"
    repo_name = event.project if event.source != "obs" else None
    source = {
        "commit": event.commit if git else None,
        "repo_uri": event.repository if git else None,
        "branch": event.branch if git else None,
        "repo_name": repo_name if git else None,
    }
    if etype == eiffel.SOURCE_CHANGE_SUBMITTED:
        return eiffel.source_change_submitted(
            change_id if event.merged else None,
            **source,
            submitter={"name": event.author} if event.author else None,
            custom_data=custom,
            **meta,
        )
    if etype == eiffel.SOURCE_CHANGE_CREATED:
        return eiffel.source_change_created(
            **source,
            change_id=event.change,
            tracker=_TRACKERS.get(event.source, event.source),
            details=event.url,
            author={"name": event.author} if event.author else None,
            custom_data=custom,
            **meta,
        )
    if etype == eiffel.ARTIFACT_CREATED:
        return eiffel.artifact_created(
            _purl(event), name=event.payload.get("package"), custom_data=custom, **meta
        )
    body = ", ".join(f"{k}={v}" for k, v in event.summary().items() if k != "label")
    data: dict[str, Any] = {
        "heading": event.label,
        "body": body,
        "severity": "MINOR",
        "customData": [{"key": k, "value": v} for k, v in custom.items()],
    }
    if event.url:
        data["uri"] = event.url
    return eiffel.new_event(eiffel.ANNOUNCEMENT_PUBLISHED, data, **meta)
