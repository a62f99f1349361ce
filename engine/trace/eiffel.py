"""Eiffel events: the vocabulary and the constructors BOSS emits them with.

An Eiffel event is a plain ``dict`` (``{"meta", "data", "links"}``), the
JSON the protocol defines. :func:`new_event` builds a complete one (a fresh
lowercase UUID v4 id, the time in integer milliseconds, the version BOSS
emits for that type, a ``source`` naming BOSS and its host); the small typed
helpers below build the types BOSS emits, taking the ids of the events they
link to. Nothing here loads a schema: the engine emits one event per
transition, so building one is a few dict operations (``engine.trace.validate``
checks them).

Versions: for each type BOSS emits the newest version whose JSON schema the
``eiffellib`` package ships (:data:`DEFAULT_VERSIONS`), so every event it
emits validates against the official schemas with no extra data.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

__all__ = [
    "ACTIVITY_CANCELED",
    "ACTIVITY_FINISHED",
    "ACTIVITY_STARTED",
    "ACTIVITY_TRIGGERED",
    "ARTIFACT_CREATED",
    "ARTIFACT_PUBLISHED",
    "COMPOSITION_DEFINED",
    "CONFIDENCE_LEVEL_MODIFIED",
    "DEFAULT_VERSIONS",
    "EVENT_TYPES",
    "ISSUE_DEFINED",
    "LINK_TYPES",
    "SOURCE_CHANGE_CREATED",
    "SOURCE_CHANGE_SUBMITTED",
    "TEST_CASE_CANCELED",
    "TEST_CASE_FINISHED",
    "TEST_CASE_STARTED",
    "TEST_CASE_TRIGGERED",
    "TEST_SUITE_FINISHED",
    "TEST_SUITE_STARTED",
    "Links",
    "activity_canceled",
    "activity_finished",
    "activity_started",
    "activity_triggered",
    "artifact_created",
    "artifact_published",
    "composition_defined",
    "confidence_level_modified",
    "default_source",
    "event_type",
    "issue_defined",
    "new_event",
    "new_id",
    "source_change_created",
    "source_change_submitted",
    "test_case_canceled",
    "test_case_finished",
    "test_case_started",
    "test_case_triggered",
    "test_suite_finished",
    "test_suite_started",
]

# --- event types -----------------------------------------------------------

ACTIVITY_TRIGGERED = "EiffelActivityTriggeredEvent"
ACTIVITY_STARTED = "EiffelActivityStartedEvent"
ACTIVITY_FINISHED = "EiffelActivityFinishedEvent"
ACTIVITY_CANCELED = "EiffelActivityCanceledEvent"
ANNOUNCEMENT_PUBLISHED = "EiffelAnnouncementPublishedEvent"
ARTIFACT_CREATED = "EiffelArtifactCreatedEvent"
ARTIFACT_DEPLOYED = "EiffelArtifactDeployedEvent"
ARTIFACT_PUBLISHED = "EiffelArtifactPublishedEvent"
ARTIFACT_REUSED = "EiffelArtifactReusedEvent"
COMPOSITION_DEFINED = "EiffelCompositionDefinedEvent"
CONFIDENCE_LEVEL_MODIFIED = "EiffelConfidenceLevelModifiedEvent"
ENVIRONMENT_DEFINED = "EiffelEnvironmentDefinedEvent"
FLOW_CONTEXT_DEFINED = "EiffelFlowContextDefinedEvent"
ISSUE_DEFINED = "EiffelIssueDefinedEvent"
ISSUE_VERIFIED = "EiffelIssueVerifiedEvent"
SOURCE_CHANGE_CREATED = "EiffelSourceChangeCreatedEvent"
SOURCE_CHANGE_SUBMITTED = "EiffelSourceChangeSubmittedEvent"
TEST_CASE_TRIGGERED = "EiffelTestCaseTriggeredEvent"
TEST_CASE_STARTED = "EiffelTestCaseStartedEvent"
TEST_CASE_FINISHED = "EiffelTestCaseFinishedEvent"
TEST_CASE_CANCELED = "EiffelTestCaseCanceledEvent"
TEST_EXECUTION_RECIPE_COLLECTION_CREATED = "EiffelTestExecutionRecipeCollectionCreatedEvent"
TEST_SUITE_STARTED = "EiffelTestSuiteStartedEvent"
TEST_SUITE_FINISHED = "EiffelTestSuiteFinishedEvent"

#: The version BOSS emits per type: the newest whose schema eiffellib ships
#: (eiffellib 3.0.0; a test checks this against the installed package).
DEFAULT_VERSIONS: dict[str, str] = {
    ACTIVITY_CANCELED: "3.2.0",
    ACTIVITY_FINISHED: "3.3.0",
    ACTIVITY_STARTED: "4.3.0",
    ACTIVITY_TRIGGERED: "4.3.0",
    ANNOUNCEMENT_PUBLISHED: "3.2.0",
    ARTIFACT_CREATED: "3.3.0",
    ARTIFACT_DEPLOYED: "0.1.0",
    ARTIFACT_PUBLISHED: "3.3.0",
    ARTIFACT_REUSED: "3.2.0",
    COMPOSITION_DEFINED: "3.3.0",
    CONFIDENCE_LEVEL_MODIFIED: "3.3.0",
    ENVIRONMENT_DEFINED: "3.3.0",
    FLOW_CONTEXT_DEFINED: "3.2.0",
    ISSUE_DEFINED: "3.2.0",
    ISSUE_VERIFIED: "4.3.0",
    SOURCE_CHANGE_CREATED: "4.2.0",
    SOURCE_CHANGE_SUBMITTED: "3.2.0",
    TEST_CASE_CANCELED: "3.2.0",
    TEST_CASE_FINISHED: "3.3.0",
    TEST_CASE_STARTED: "3.3.0",
    TEST_CASE_TRIGGERED: "3.5.0",
    TEST_EXECUTION_RECIPE_COLLECTION_CREATED: "4.3.0",
    TEST_SUITE_FINISHED: "3.3.0",
    TEST_SUITE_STARTED: "3.4.0",
}

#: Every Eiffel event type.
EVENT_TYPES: frozenset[str] = frozenset(DEFAULT_VERSIONS)

# --- link types ------------------------------------------------------------

ACTIVITY_EXECUTION = "ACTIVITY_EXECUTION"
ARTIFACT = "ARTIFACT"
BASE = "BASE"
CAUSE = "CAUSE"
CHANGE = "CHANGE"
COMPOSITION = "COMPOSITION"
CONFIDENCE_BASIS = "CONFIDENCE_BASIS"
CONFIGURATION = "CONFIGURATION"
CONTEXT = "CONTEXT"
DERESOLVED_ISSUE = "DERESOLVED_ISSUE"
ELEMENT = "ELEMENT"
ENVIRONMENT = "ENVIRONMENT"
FAILED_ISSUE = "FAILED_ISSUE"
FLOW_CONTEXT = "FLOW_CONTEXT"
INCONCLUSIVE_ISSUE = "INCONCLUSIVE_ISSUE"
IUT = "IUT"
MODIFIED_ANNOUNCEMENT = "MODIFIED_ANNOUNCEMENT"
ORIGINAL_TRIGGER = "ORIGINAL_TRIGGER"
PARTIALLY_RESOLVED_ISSUE = "PARTIALLY_RESOLVED_ISSUE"
PRECURSOR = "PRECURSOR"
PREVIOUS_ACTIVITY_EXECUTION = "PREVIOUS_ACTIVITY_EXECUTION"
PREVIOUS_VERSION = "PREVIOUS_VERSION"
RESOLVED_ISSUE = "RESOLVED_ISSUE"
REUSED_ARTIFACT = "REUSED_ARTIFACT"
RUNTIME_ENVIRONMENT = "RUNTIME_ENVIRONMENT"
SUBJECT = "SUBJECT"
SUB_CONFIDENCE_LEVEL = "SUB_CONFIDENCE_LEVEL"
SUCCESSFUL_ISSUE = "SUCCESSFUL_ISSUE"
TERC = "TERC"
TEST_CASE_EXECUTION = "TEST_CASE_EXECUTION"
TEST_SUITE_EXECUTION = "TEST_SUITE_EXECUTION"
VERIFICATION_BASIS = "VERIFICATION_BASIS"

#: Every link type any version of the protocol defines.
LINK_TYPES: frozenset[str] = frozenset(
    {
        ACTIVITY_EXECUTION,
        ARTIFACT,
        BASE,
        CAUSE,
        CHANGE,
        COMPOSITION,
        CONFIDENCE_BASIS,
        CONFIGURATION,
        CONTEXT,
        DERESOLVED_ISSUE,
        ELEMENT,
        ENVIRONMENT,
        FAILED_ISSUE,
        FLOW_CONTEXT,
        INCONCLUSIVE_ISSUE,
        IUT,
        MODIFIED_ANNOUNCEMENT,
        ORIGINAL_TRIGGER,
        PARTIALLY_RESOLVED_ISSUE,
        PRECURSOR,
        PREVIOUS_ACTIVITY_EXECUTION,
        PREVIOUS_VERSION,
        RESOLVED_ISSUE,
        REUSED_ARTIFACT,
        RUNTIME_ENVIRONMENT,
        SUBJECT,
        SUB_CONFIDENCE_LEVEL,
        SUCCESSFUL_ISSUE,
        TERC,
        TEST_CASE_EXECUTION,
        TEST_SUITE_EXECUTION,
        VERIFICATION_BASIS,
    }
)

#: Links as given to the constructors: ``(type, target)`` pairs or link dicts
#: (``{"type", "target"[, "domainId"]}``).
Links = Iterable[tuple[str, str] | Mapping[str, str]]

_SHORT = {t[len("Eiffel") : -len("Event")]: t for t in DEFAULT_VERSIONS}


def event_type(name: str) -> str:
    """The full type name for ``name``, which may be short:
    ``"ActivityFinished"`` → ``"EiffelActivityFinishedEvent"``. A name that
    is neither is returned unchanged (validation names it)."""
    if name in EVENT_TYPES:
        return name
    return _SHORT.get(name, name)


def new_id() -> str:
    """A fresh event id: a lowercase UUID v4."""
    return str(uuid.uuid4())


@cache
def default_source() -> dict[str, str]:
    """``meta.source`` of the events BOSS emits (a copy is used per event)."""
    return {"name": "boss", "host": socket.gethostname() or "localhost"}


def _links(links: Links) -> list[dict[str, str]]:
    out = []
    for link in links:
        if isinstance(link, Mapping):
            out.append(dict(link))
        else:
            ltype, target = link
            out.append({"type": ltype, "target": target})
    return out


def new_event(
    type: str,
    data: Mapping[str, Any],
    links: Links = (),
    *,
    source: Mapping[str, str] | None = None,
    time_ms: int | None = None,
    event_id: str | None = None,
    version: str | None = None,
    tags: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A complete Eiffel event of ``type`` (full or short name).

    ``meta.id`` is ``event_id`` or a fresh lowercase UUID v4, ``meta.time``
    ``time_ms`` or now (integer milliseconds), ``meta.version`` ``version``
    or the default for the type (:data:`DEFAULT_VERSIONS`), ``meta.source``
    ``source`` or :func:`default_source`. Not validated here."""
    etype = event_type(type)
    meta: dict[str, Any] = {
        "id": event_id if event_id is not None else str(uuid.uuid4()),
        "type": etype,
        "version": version if version is not None else DEFAULT_VERSIONS.get(etype, "1.0.0"),
        "time": time_ms if time_ms is not None else time.time_ns() // 1_000_000,
        "source": dict(source if source is not None else default_source()),
    }
    if tags:
        meta["tags"] = list(tags)
    return {"meta": meta, "data": dict(data), "links": _links(links)}


# --- typed helpers ---------------------------------------------------------
#
# Each takes the ids of the events it links to, the data members BOSS uses,
# ``links`` for any further links, ``custom_data`` (a mapping, emitted as
# the protocol's key/value list) and ``**meta`` passed on to new_event
# (source, time_ms, event_id, version, tags).


def _common(
    links: list[tuple[str, str]],
    *,
    context: str | None = None,
    cause: str | Iterable[str] | None = None,
    flow_context: str | Iterable[str] | None = None,
    extra: Links = (),
) -> list[dict[str, str]]:
    if context:
        links.append((CONTEXT, context))
    for ltype, value in ((CAUSE, cause), (FLOW_CONTEXT, flow_context)):
        if isinstance(value, str):
            links.append((ltype, value))
        elif value:
            links.extend((ltype, v) for v in value)
    return _links(links) + _links(extra)


def _put(
    data: dict[str, Any], custom_data: Mapping[str, Any] | None = None, **members: Any
) -> dict[str, Any]:
    for key, value in members.items():
        if value is not None:
            data[key] = value
    if custom_data:
        data["customData"] = [{"key": k, "value": v} for k, v in custom_data.items()]
    return data


def activity_triggered(
    name: str,
    *,
    categories: Sequence[str] | None = None,
    triggers: Sequence[Mapping[str, str]] | None = None,
    execution_type: str | None = "AUTOMATED",
    context: str | None = None,
    cause: str | Iterable[str] | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelActivityTriggeredEvent: a run or a step was asked for. Its id is
    the handle of the activity execution; ``context`` is the enclosing
    activity (a step's run). ``triggers``: ``[{"type": "SOURCE_CHANGE" |
    "EIFFEL_EVENT" | "MANUAL" | "TIMER" | "OTHER", "description": ...}]``."""
    data = _put(
        {"name": name},
        custom_data,
        categories=list(categories) if categories else None,
        triggers=[dict(t) for t in triggers] if triggers else None,
        executionType=execution_type,
    )
    return new_event(
        ACTIVITY_TRIGGERED,
        data,
        _common([], context=context, cause=cause, flow_context=flow_context, extra=links),
        **meta,
    )


def activity_started(
    activity: str,
    *,
    execution_uri: str | None = None,
    live_logs: Sequence[Mapping[str, Any]] | None = None,
    previous: str | None = None,
    context: str | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelActivityStartedEvent of the activity triggered by event
    ``activity``; ``previous``: the ActivityTriggered of a previous attempt."""
    own = [(ACTIVITY_EXECUTION, activity)]
    if previous:
        own.append((PREVIOUS_ACTIVITY_EXECUTION, previous))
    data = _put(
        {},
        custom_data,
        executionUri=execution_uri,
        liveLogs=[dict(x) for x in live_logs] if live_logs else None,
    )
    return new_event(
        ACTIVITY_STARTED,
        data,
        _common(own, context=context, flow_context=flow_context, extra=links),
        **meta,
    )


def activity_finished(
    activity: str,
    conclusion: str,
    *,
    description: str | None = None,
    persistent_logs: Sequence[Mapping[str, Any]] | None = None,
    context: str | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelActivityFinishedEvent: ``conclusion`` is SUCCESSFUL,
    UNSUCCESSFUL, FAILED, ABORTED, TIMED_OUT or INCONCLUSIVE."""
    outcome = _put({"conclusion": conclusion}, description=description)
    data = _put(
        {"outcome": outcome},
        custom_data,
        persistentLogs=[dict(x) for x in persistent_logs] if persistent_logs else None,
    )
    return new_event(
        ACTIVITY_FINISHED,
        data,
        _common(
            [(ACTIVITY_EXECUTION, activity)],
            context=context,
            flow_context=flow_context,
            extra=links,
        ),
        **meta,
    )


def activity_canceled(
    activity: str,
    *,
    reason: str | None = None,
    cause: str | Iterable[str] | None = None,
    context: str | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelActivityCanceledEvent: the activity will not run (to the end)."""
    return new_event(
        ACTIVITY_CANCELED,
        _put({}, custom_data, reason=reason),
        _common(
            [(ACTIVITY_EXECUTION, activity)],
            context=context,
            cause=cause,
            flow_context=flow_context,
            extra=links,
        ),
        **meta,
    )


def _repo_identifier(
    commit: str, repo_uri: str, branch: str | None, repo_name: str | None
) -> dict[str, str]:
    return _put({"commitId": commit, "repoUri": repo_uri}, branch=branch, repoName=repo_name)


def source_change_created(
    *,
    commit: str | None = None,
    repo_uri: str | None = None,
    branch: str | None = None,
    repo_name: str | None = None,
    change_id: str | None = None,
    tracker: str | None = None,
    details: str | None = None,
    author: Mapping[str, str] | None = None,
    base: str | None = None,
    previous: str | None = None,
    links: Links = (),
    flow_context: str | Iterable[str] | None = None,
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelSourceChangeCreatedEvent: a change (commit, pull request) was
    proposed. ``commit`` with ``repo_uri`` give ``gitIdentifier``;
    ``change_id``/``tracker``/``details`` give ``change``; ``base``: the
    SourceChangeSubmitted it is based on."""
    change = _put({}, id=change_id, tracker=tracker, details=details)
    data = _put(
        {},
        custom_data,
        author=dict(author) if author else None,
        change=change or None,
        gitIdentifier=_repo_identifier(commit, repo_uri, branch, repo_name)
        if commit and repo_uri
        else None,
    )
    own = []
    if base:
        own.append((BASE, base))
    if previous:
        own.append((PREVIOUS_VERSION, previous))
    return new_event(
        SOURCE_CHANGE_CREATED, data, _common(own, flow_context=flow_context, extra=links), **meta
    )


def source_change_submitted(
    change: str | None = None,
    *,
    commit: str | None = None,
    repo_uri: str | None = None,
    branch: str | None = None,
    repo_name: str | None = None,
    submitter: Mapping[str, str] | None = None,
    previous: str | None = None,
    links: Links = (),
    flow_context: str | Iterable[str] | None = None,
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelSourceChangeSubmittedEvent: a change was merged; ``change``: its
    SourceChangeCreated, ``previous``: the SourceChangeSubmitted before it."""
    data = _put(
        {},
        custom_data,
        submitter=dict(submitter) if submitter else None,
        gitIdentifier=_repo_identifier(commit, repo_uri, branch, repo_name)
        if commit and repo_uri
        else None,
    )
    own = []
    if change:
        own.append((CHANGE, change))
    if previous:
        own.append((PREVIOUS_VERSION, previous))
    return new_event(
        SOURCE_CHANGE_SUBMITTED, data, _common(own, flow_context=flow_context, extra=links), **meta
    )


def composition_defined(
    name: str,
    elements: Iterable[str] = (),
    *,
    version: str | None = None,
    previous: str | None = None,
    context: str | None = None,
    cause: str | Iterable[str] | None = None,
    links: Links = (),
    flow_context: str | Iterable[str] | None = None,
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelCompositionDefinedEvent: ``elements`` are the ids of what it is
    made of (compositions, artifacts, source changes)."""
    own = [(ELEMENT, e) for e in elements]
    if previous:
        own.append((PREVIOUS_VERSION, previous))
    return new_event(
        COMPOSITION_DEFINED,
        _put({"name": name}, custom_data, version=version),
        _common(own, context=context, cause=cause, flow_context=flow_context, extra=links),
        **meta,
    )


def artifact_created(
    identity: str,
    *,
    name: str | None = None,
    file_information: Sequence[Mapping[str, Any]] | None = None,
    build_command: str | None = None,
    composition: str | None = None,
    environment: str | None = None,
    previous: str | None = None,
    context: str | None = None,
    cause: str | Iterable[str] | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelArtifactCreatedEvent: ``identity`` is a purl (``pkg:...``)."""
    data = _put(
        {"identity": identity},
        custom_data,
        name=name,
        buildCommand=build_command,
        fileInformation=[dict(f) for f in file_information] if file_information else None,
    )
    own = []
    for ltype, target in (
        (COMPOSITION, composition),
        (ENVIRONMENT, environment),
        (PREVIOUS_VERSION, previous),
    ):
        if target:
            own.append((ltype, target))
    return new_event(
        ARTIFACT_CREATED,
        data,
        _common(own, context=context, cause=cause, flow_context=flow_context, extra=links),
        **meta,
    )


def artifact_published(
    artifact: str,
    locations: Sequence[Mapping[str, str]],
    *,
    context: str | None = None,
    cause: str | Iterable[str] | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelArtifactPublishedEvent of the ArtifactCreated ``artifact``;
    ``locations``: ``[{"type": "PLAIN" | "ARTIFACTORY" | "NEXUS" | "OTHER",
    "uri": ..., "name": ...}]``."""
    data = _put({"locations": [dict(x) for x in locations]}, custom_data)
    return new_event(
        ARTIFACT_PUBLISHED,
        data,
        _common(
            [(ARTIFACT, artifact)],
            context=context,
            cause=cause,
            flow_context=flow_context,
            extra=links,
        ),
        **meta,
    )


def confidence_level_modified(
    name: str,
    value: str,
    subjects: Iterable[str],
    *,
    issuer: Mapping[str, str] | None = None,
    sub_levels: Iterable[str] = (),
    context: str | None = None,
    cause: str | Iterable[str] | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelConfidenceLevelModifiedEvent: ``value`` is SUCCESS, FAILURE or
    INCONCLUSIVE; ``subjects`` (at least one) the ids it is about."""
    own = [(SUBJECT, s) for s in subjects] + [(SUB_CONFIDENCE_LEVEL, s) for s in sub_levels]
    data = _put(
        {"name": name, "value": value}, custom_data, issuer=dict(issuer) if issuer else None
    )
    return new_event(
        CONFIDENCE_LEVEL_MODIFIED,
        data,
        _common(own, context=context, cause=cause, flow_context=flow_context, extra=links),
        **meta,
    )


def test_case_triggered(
    test_case_id: str,
    iut: str,
    *,
    tracker: str | None = None,
    uri: str | None = None,
    test_case_version: str | None = None,
    parameters: Mapping[str, str] | None = None,
    triggers: Sequence[Mapping[str, str]] | None = None,
    execution_type: str | None = "AUTOMATED",
    context: str | None = None,
    cause: str | Iterable[str] | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelTestCaseTriggeredEvent of test case ``test_case_id`` on the item
    under test ``iut`` (an ArtifactCreated or CompositionDefined id); its
    id is the handle of the test case execution."""
    test_case = _put({"id": test_case_id}, tracker=tracker, uri=uri, version=test_case_version)
    data = _put(
        {"testCase": test_case},
        custom_data,
        executionType=execution_type,
        triggers=[dict(t) for t in triggers] if triggers else None,
        parameters=[{"name": k, "value": v} for k, v in parameters.items()] if parameters else None,
    )
    return new_event(
        TEST_CASE_TRIGGERED,
        data,
        _common([(IUT, iut)], context=context, cause=cause, flow_context=flow_context, extra=links),
        **meta,
    )


test_case_triggered.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def test_case_started(
    test_case: str,
    *,
    executor: str | None = None,
    environment: str | None = None,
    context: str | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelTestCaseStartedEvent of the TestCaseTriggered ``test_case``."""
    own = [(TEST_CASE_EXECUTION, test_case)]
    if environment:
        own.append((ENVIRONMENT, environment))
    return new_event(
        TEST_CASE_STARTED,
        _put({}, custom_data, executor=executor),
        _common(own, context=context, flow_context=flow_context, extra=links),
        **meta,
    )


test_case_started.__test__ = False  # type: ignore[attr-defined]


def test_case_finished(
    test_case: str,
    verdict: str,
    conclusion: str = "SUCCESSFUL",
    *,
    description: str | None = None,
    persistent_logs: Sequence[Mapping[str, Any]] | None = None,
    context: str | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelTestCaseFinishedEvent: ``verdict`` PASSED, FAILED or
    INCONCLUSIVE; ``conclusion`` SUCCESSFUL, FAILED, ABORTED, TIMED_OUT or
    INCONCLUSIVE (whether the test could be run at all)."""
    outcome = _put({"verdict": verdict, "conclusion": conclusion}, description=description)
    data = _put(
        {"outcome": outcome},
        custom_data,
        persistentLogs=[dict(x) for x in persistent_logs] if persistent_logs else None,
    )
    return new_event(
        TEST_CASE_FINISHED,
        data,
        _common(
            [(TEST_CASE_EXECUTION, test_case)],
            context=context,
            flow_context=flow_context,
            extra=links,
        ),
        **meta,
    )


test_case_finished.__test__ = False  # type: ignore[attr-defined]


def test_case_canceled(
    test_case: str,
    *,
    reason: str | None = None,
    cause: str | Iterable[str] | None = None,
    context: str | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelTestCaseCanceledEvent of the TestCaseTriggered ``test_case``."""
    return new_event(
        TEST_CASE_CANCELED,
        _put({}, custom_data, reason=reason),
        _common(
            [(TEST_CASE_EXECUTION, test_case)],
            context=context,
            cause=cause,
            flow_context=flow_context,
            extra=links,
        ),
        **meta,
    )


test_case_canceled.__test__ = False  # type: ignore[attr-defined]


def test_suite_started(
    name: str,
    *,
    categories: Sequence[str] | None = None,
    types: Sequence[str] | None = None,
    context: str | None = None,
    cause: str | Iterable[str] | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelTestSuiteStartedEvent; its id is the handle of the suite's
    execution (``types``: FUNCTIONAL, PERFORMANCE, SECURITY, ...)."""
    data = _put(
        {"name": name},
        custom_data,
        categories=list(categories) if categories else None,
        types=list(types) if types else None,
    )
    return new_event(
        TEST_SUITE_STARTED,
        data,
        _common([], context=context, cause=cause, flow_context=flow_context, extra=links),
        **meta,
    )


test_suite_started.__test__ = False  # type: ignore[attr-defined]


def test_suite_finished(
    test_suite: str,
    verdict: str | None = None,
    conclusion: str | None = None,
    *,
    description: str | None = None,
    persistent_logs: Sequence[Mapping[str, Any]] | None = None,
    context: str | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelTestSuiteFinishedEvent of the TestSuiteStarted ``test_suite``."""
    outcome = _put({}, verdict=verdict, conclusion=conclusion, description=description)
    data = _put(
        {},
        custom_data,
        outcome=outcome or None,
        persistentLogs=[dict(x) for x in persistent_logs] if persistent_logs else None,
    )
    return new_event(
        TEST_SUITE_FINISHED,
        data,
        _common(
            [(TEST_SUITE_EXECUTION, test_suite)],
            context=context,
            flow_context=flow_context,
            extra=links,
        ),
        **meta,
    )


test_suite_finished.__test__ = False  # type: ignore[attr-defined]


def issue_defined(
    issue_type: str,
    tracker: str,
    issue_id: str,
    uri: str,
    *,
    title: str | None = None,
    context: str | None = None,
    cause: str | Iterable[str] | None = None,
    flow_context: str | Iterable[str] | None = None,
    links: Links = (),
    custom_data: Mapping[str, Any] | None = None,
    **meta: Any,
) -> dict[str, Any]:
    """EiffelIssueDefinedEvent: ``issue_type`` BUG, IMPROVEMENT, FEATURE,
    WORK_ITEM, REQUIREMENT or OTHER."""
    data = _put(
        {"type": issue_type, "tracker": tracker, "id": issue_id, "uri": uri},
        custom_data,
        title=title,
    )
    return new_event(
        ISSUE_DEFINED,
        data,
        _common([], context=context, cause=cause, flow_context=flow_context, extra=links),
        **meta,
    )
