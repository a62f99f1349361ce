"""CDEvents (spec v0.5.1) export and import of the Eiffel events that have a
counterpart.

The mapping (``docs/eiffel-events.md`` has the table and what each
direction loses):

========================================  =========================================
Eiffel                                    CDEvents 0.5.1
========================================  =========================================
ActivityTriggered (run)                   ``pipelinerun.queued.0.3.0``
ActivityStarted (run)                     ``pipelinerun.started.0.3.0``
ActivityFinished / ActivityCanceled (run) ``pipelinerun.finished.0.3.0``
ActivityStarted (step)                    ``taskrun.started.0.3.0``
ActivityFinished / ActivityCanceled (step) ``taskrun.finished.0.3.0``
ArtifactCreated                           ``artifact.packaged.0.3.0``
ArtifactPublished                         ``artifact.published.0.3.0``
SourceChangeCreated                       ``change.created.0.4.0``
SourceChangeSubmitted                     ``change.merged.0.3.0``
TestCaseTriggered / Started / Finished    ``testcaserun.queued / started / finished.0.3.0``
TestCaseCanceled                          ``testcaserun.skipped.0.2.0``
TestSuiteStarted / Finished               ``testsuiterun.started / finished.0.3.0``
========================================  =========================================

An activity is a *step* (task run) when its ActivityTriggered (or, when that
is not at hand, the event itself) has a ``CONTEXT`` link: BOSS links a step
to the ActivityTriggered of its run. A step's ActivityTriggered has no
counterpart (CDEvents 0.5.1 has no ``taskrun.queued``).

Identity: the CDEvent ``context.id`` is the Eiffel ``meta.id``; the subject of
an activity, test case or test suite run is the id of its handle event
(ActivityTriggered, TestCaseTriggered, TestSuiteStarted), so all the events
of one run share a subject. Eiffel links travel as CDEvents ``RELATION``
links (``linkKind`` = the Eiffel link type; ``CAUSE`` ↔ ``TRIGGER``).

On import, an id that is not a lowercase UUID v4 becomes a deterministic one
(:func:`uuid_of`), a required Eiffel link with no ``RELATION`` to say where
it points gets such a derived placeholder target (from the subject id), and
whatever has no Eiffel home (environment, repository, sbom, chainId ...)
is kept in ``data.customData`` under ``cdevents.<name>`` keys, from which
export restores it. ``to_cdevent(..., keep_eiffel=True)`` also puts the
whole Eiffel event in the CDEvent's ``customData.eiffel``, and import then
gives it back unchanged.

Export does not validate unless given a directory of the CDEvents JSON
schemas (:class:`Schemas`): the product ships no copy of them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from engine.trace import eiffel as E

__all__ = [
    "EXPORTS",
    "IMPORTS",
    "SPEC_VERSION",
    "Schemas",
    "UnmappedEvent",
    "from_cdevent",
    "from_cdevents",
    "ms_to_rfc3339",
    "rfc3339_to_ms",
    "to_cdevent",
    "to_cdevents",
    "uuid_of",
]

SPEC_VERSION = "0.5.1"

PIPELINERUN_QUEUED = "dev.cdevents.pipelinerun.queued.0.3.0"
PIPELINERUN_STARTED = "dev.cdevents.pipelinerun.started.0.3.0"
PIPELINERUN_FINISHED = "dev.cdevents.pipelinerun.finished.0.3.0"
TASKRUN_STARTED = "dev.cdevents.taskrun.started.0.3.0"
TASKRUN_FINISHED = "dev.cdevents.taskrun.finished.0.3.0"
ARTIFACT_PACKAGED = "dev.cdevents.artifact.packaged.0.3.0"
ARTIFACT_PUBLISHED = "dev.cdevents.artifact.published.0.3.0"
CHANGE_CREATED = "dev.cdevents.change.created.0.4.0"
CHANGE_MERGED = "dev.cdevents.change.merged.0.3.0"
TESTCASERUN_QUEUED = "dev.cdevents.testcaserun.queued.0.3.0"
TESTCASERUN_STARTED = "dev.cdevents.testcaserun.started.0.3.0"
TESTCASERUN_FINISHED = "dev.cdevents.testcaserun.finished.0.3.0"
TESTCASERUN_SKIPPED = "dev.cdevents.testcaserun.skipped.0.2.0"
TESTSUITERUN_STARTED = "dev.cdevents.testsuiterun.started.0.3.0"
TESTSUITERUN_FINISHED = "dev.cdevents.testsuiterun.finished.0.3.0"

#: CDEvents type (without version) → the Eiffel type it is imported as.
IMPORTS: dict[str, str] = {
    "pipelinerun.queued": E.ACTIVITY_TRIGGERED,
    "pipelinerun.started": E.ACTIVITY_STARTED,
    "pipelinerun.finished": E.ACTIVITY_FINISHED,
    "taskrun.started": E.ACTIVITY_STARTED,
    "taskrun.finished": E.ACTIVITY_FINISHED,
    "artifact.packaged": E.ARTIFACT_CREATED,
    "artifact.published": E.ARTIFACT_PUBLISHED,
    "change.created": E.SOURCE_CHANGE_CREATED,
    "change.merged": E.SOURCE_CHANGE_SUBMITTED,
    "testcaserun.queued": E.TEST_CASE_TRIGGERED,
    "testcaserun.started": E.TEST_CASE_STARTED,
    "testcaserun.finished": E.TEST_CASE_FINISHED,
    "testcaserun.skipped": E.TEST_CASE_CANCELED,
    "testsuiterun.started": E.TEST_SUITE_STARTED,
    "testsuiterun.finished": E.TEST_SUITE_FINISHED,
}

#: Eiffel type → the CDEvents types it may be exported as.
EXPORTS: dict[str, tuple[str, ...]] = {
    E.ACTIVITY_TRIGGERED: (PIPELINERUN_QUEUED,),
    E.ACTIVITY_STARTED: (PIPELINERUN_STARTED, TASKRUN_STARTED),
    E.ACTIVITY_FINISHED: (PIPELINERUN_FINISHED, TASKRUN_FINISHED),
    E.ACTIVITY_CANCELED: (PIPELINERUN_FINISHED, TASKRUN_FINISHED),
    E.ARTIFACT_CREATED: (ARTIFACT_PACKAGED,),
    E.ARTIFACT_PUBLISHED: (ARTIFACT_PUBLISHED,),
    E.SOURCE_CHANGE_CREATED: (CHANGE_CREATED,),
    E.SOURCE_CHANGE_SUBMITTED: (CHANGE_MERGED,),
    E.TEST_CASE_TRIGGERED: (TESTCASERUN_QUEUED,),
    E.TEST_CASE_STARTED: (TESTCASERUN_STARTED,),
    E.TEST_CASE_FINISHED: (TESTCASERUN_FINISHED,),
    E.TEST_CASE_CANCELED: (TESTCASERUN_SKIPPED,),
    E.TEST_SUITE_STARTED: (TESTSUITERUN_STARTED,),
    E.TEST_SUITE_FINISHED: (TESTSUITERUN_FINISHED,),
}

#: The content members each exported type allows (from the 0.5.1 schemas).
_CONTENT: dict[str, frozenset[str]] = {
    PIPELINERUN_QUEUED: frozenset({"pipelineName", "uri"}),
    PIPELINERUN_STARTED: frozenset({"pipelineName", "uri"}),
    PIPELINERUN_FINISHED: frozenset({"pipelineName", "uri", "outcome", "errors"}),
    TASKRUN_STARTED: frozenset({"taskName", "uri", "pipelineRun"}),
    TASKRUN_FINISHED: frozenset({"taskName", "uri", "pipelineRun", "outcome", "errors"}),
    ARTIFACT_PACKAGED: frozenset({"change", "sbom"}),
    ARTIFACT_PUBLISHED: frozenset({"sbom", "user"}),
    CHANGE_CREATED: frozenset({"description", "repository"}),
    CHANGE_MERGED: frozenset({"repository"}),
    TESTCASERUN_QUEUED: frozenset({"trigger", "environment", "testSuiteRun", "testCase"}),
    TESTCASERUN_STARTED: frozenset({"trigger", "environment", "testSuiteRun", "testCase"}),
    TESTCASERUN_FINISHED: frozenset(
        {"outcome", "severity", "reason", "environment", "testSuiteRun", "testCase"}
    ),
    TESTCASERUN_SKIPPED: frozenset({"reason", "environment", "testSuiteRun", "testCase"}),
    TESTSUITERUN_STARTED: frozenset({"trigger", "environment", "testSuite"}),
    TESTSUITERUN_FINISHED: frozenset({"environment", "testSuite", "outcome", "severity", "reason"}),
}

_ACT_OUT = {
    "SUCCESSFUL": "success",
    "UNSUCCESSFUL": "failure",
    "FAILED": "error",
    "ABORTED": "cancel",
    "TIMED_OUT": "error",
    "INCONCLUSIVE": "error",
}
_ACT_IN = {
    "success": "SUCCESSFUL",
    "failure": "UNSUCCESSFUL",
    "error": "FAILED",
    "cancel": "ABORTED",
}
_TEST_IN = {
    "success": ("PASSED", "SUCCESSFUL"),
    "failure": ("FAILED", "SUCCESSFUL"),
    "error": ("INCONCLUSIVE", "FAILED"),
    "cancel": ("INCONCLUSIVE", "ABORTED"),
}
_TRIGGER_OUT = {
    "MANUAL": "manual",
    "TIMER": "schedule",
    "EIFFEL_EVENT": "event",
    "SOURCE_CHANGE": "event",
    "OTHER": "other",
}
_TRIGGER_IN = {
    "manual": "MANUAL",
    "schedule": "TIMER",
    "event": "EIFFEL_EVENT",
    "pipeline": "EIFFEL_EVENT",
    "other": "OTHER",
}
_PREFIX = "cdevents."
_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

Resolve = Callable[[str], Mapping[str, Any] | None]


class UnmappedEvent(ValueError):
    """A CDEvent that is not shaped as one (no context/type), raised by
    import. (An event with no counterpart is not an error: None.)"""


# --- small conversions -----------------------------------------------------


def uuid_of(value: str) -> str:
    """``value`` if it is a UUID v4 (lowercased), else a UUID v4 derived
    from it deterministically (the same value always gives the same id)."""
    low = value.lower()
    if _UUID4.match(low):
        return low
    digest = hashlib.sha1(f"boss-cdevents:{value}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def ms_to_rfc3339(ms: int) -> str:
    """Epoch milliseconds as an RFC 3339 UTC timestamp with milliseconds."""
    seconds, millis = divmod(int(ms), 1000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{millis:03d}Z"


def rfc3339_to_ms(stamp: str) -> int:
    """An RFC 3339 timestamp as epoch milliseconds (sub-millisecond digits
    are dropped; a timestamp without offset is taken as UTC)."""
    dt = datetime.fromisoformat(stamp.replace("z", "Z"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def _source_uri(meta: Mapping[str, Any]) -> str:
    src = meta.get("source") or {}
    if src.get("uri"):
        return str(src["uri"])
    parts = [quote(str(src[k]), safe="") for k in ("name", "host") if src.get(k)]
    return "/" + "/".join(parts) if parts else "/boss"


def _link(event: Mapping[str, Any], ltype: str) -> str | None:
    for link in event.get("links") or ():
        if link.get("type") == ltype:
            return link.get("target")
    return None


def _custom(event: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Eiffel customData split into (``cdevents.*`` extras, the rest)."""
    extras: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for item in (event.get("data") or {}).get("customData") or ():
        key = item.get("key")
        if isinstance(key, str) and key.startswith(_PREFIX):
            extras[key[len(_PREFIX) :]] = item.get("value")
        elif isinstance(key, str):
            rest[key] = item.get("value")
    return extras, rest


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


# --- export ----------------------------------------------------------------


class _Export:
    def __init__(self, event: Mapping[str, Any], resolve: Resolve | None) -> None:
        self.event = event
        self.meta = event["meta"]
        self.data = event.get("data") or {}
        self.resolve = resolve or (lambda _id: None)
        self.extras, self.custom = _custom(event)

    def get(self, event_id: str | None) -> Mapping[str, Any]:
        if not event_id:
            return {}
        return self.resolve(event_id) or {}

    def execution(self, triggered_type: str, link_type: str) -> tuple[str, Mapping[str, Any]]:
        """``(handle, triggered event)`` of the execution this event is part
        of. An execution (an activity's, a test case's) is named by its
        ``*Triggered`` event: that is this event, or the one it links to with
        ``link_type`` (looked up with :meth:`get`; this event's own id serves
        as the handle when the link is missing)."""
        if self.meta["type"] == triggered_type:
            return self.meta["id"], self.event
        handle = _link(self.event, link_type) or self.meta["id"]
        return handle, self.get(handle)

    def environment(self) -> dict[str, Any]:
        env = self.extras.get("environment")
        if isinstance(env, dict):
            return env
        target = _link(self.event, E.ENVIRONMENT)
        src = self.meta.get("source") or {}
        return {"id": target or src.get("host") or src.get("name") or "unknown"}


def _is_step(ex: _Export, triggered: Mapping[str, Any]) -> bool:
    if triggered:
        return _link(triggered, E.CONTEXT) is not None
    return _link(ex.event, E.CONTEXT) is not None or "pipelineRun" in ex.extras


def _activity(ex: _Export) -> tuple[str, str, dict[str, Any]] | None:
    etype = ex.meta["type"]
    handle, triggered = ex.execution(E.ACTIVITY_TRIGGERED, E.ACTIVITY_EXECUTION)
    step = _is_step(ex, triggered)
    name = (triggered.get("data") or {}).get("name") if triggered else None
    content: dict[str, Any] = {}
    if etype == E.ACTIVITY_TRIGGERED:
        if step:
            return None
        ctype = PIPELINERUN_QUEUED
    elif etype == E.ACTIVITY_STARTED:
        ctype = TASKRUN_STARTED if step else PIPELINERUN_STARTED
        content["uri"] = ex.data.get("executionUri") or ex.extras.get("uri") or f"urn:uuid:{handle}"
    else:
        ctype = TASKRUN_FINISHED if step else PIPELINERUN_FINISHED
        if etype == E.ACTIVITY_CANCELED:
            content["outcome"] = "cancel"
            if ex.data.get("reason"):
                content["errors"] = ex.data["reason"]
        else:
            outcome = ex.data.get("outcome") or {}
            content["outcome"] = _ACT_OUT.get(outcome.get("conclusion", ""), "error")
            if outcome.get("description"):
                content["errors"] = outcome["description"]
    if step:
        content["taskName"] = name or ex.extras.get("taskName") or handle
        parent = _link(triggered or ex.event, E.CONTEXT)
        if parent:
            content["pipelineRun"] = {"id": parent}
    else:
        content["pipelineName"] = name or ex.extras.get("pipelineName") or handle
    return ctype, handle, content


def _outcome_of_test(outcome: Mapping[str, Any]) -> str:
    verdict, conclusion = outcome.get("verdict"), outcome.get("conclusion")
    if verdict == "PASSED":
        return "success"
    if verdict == "FAILED":
        return "failure"
    if conclusion in ("ABORTED",):
        return "cancel"
    return "error"


def _test_case(ex: _Export) -> tuple[str, str, dict[str, Any]]:
    etype = ex.meta["type"]
    handle, triggered = ex.execution(E.TEST_CASE_TRIGGERED, E.TEST_CASE_EXECUTION)
    content: dict[str, Any] = {"environment": ex.environment()}
    tdata = (triggered.get("data") or {}) if triggered else {}
    if tdata.get("testCase"):
        tc = tdata["testCase"]
        content["testCase"] = _drop_none(
            {"id": tc.get("id"), "version": tc.get("version"), "uri": tc.get("uri")}
        )
    suite = _link(triggered or ex.event, E.CONTEXT)
    if suite:
        content["testSuiteRun"] = {"id": suite}
    if etype == E.TEST_CASE_TRIGGERED:
        ctype = TESTCASERUN_QUEUED
        triggers = ex.data.get("triggers") or []
        if triggers:
            content["trigger"] = {"type": _TRIGGER_OUT.get(triggers[0].get("type"), "other")}
    elif etype == E.TEST_CASE_STARTED:
        ctype = TESTCASERUN_STARTED
    elif etype == E.TEST_CASE_FINISHED:
        ctype = TESTCASERUN_FINISHED
        outcome = ex.data.get("outcome") or {}
        content["outcome"] = _outcome_of_test(outcome)
        if outcome.get("description"):
            content["reason"] = outcome["description"]
    else:
        ctype = TESTCASERUN_SKIPPED
        if ex.data.get("reason"):
            content["reason"] = ex.data["reason"]
    return ctype, handle, content


def _test_suite(ex: _Export) -> tuple[str, str, dict[str, Any]]:
    if ex.meta["type"] == E.TEST_SUITE_STARTED:
        handle, started = ex.meta["id"], ex.event
    else:
        handle = _link(ex.event, E.TEST_SUITE_EXECUTION) or ex.meta["id"]
        started = ex.get(handle)
    content: dict[str, Any] = {"environment": ex.environment()}
    name = (started.get("data") or {}).get("name") if started else None
    if name:
        content["testSuite"] = {"id": name, "name": name}
    if ex.meta["type"] == E.TEST_SUITE_STARTED:
        return TESTSUITERUN_STARTED, handle, content
    outcome = ex.data.get("outcome") or {}
    content["outcome"] = _outcome_of_test(outcome) if outcome else "error"
    if outcome.get("description"):
        content["reason"] = outcome["description"]
    return TESTSUITERUN_FINISHED, handle, content


def _repository(data: Mapping[str, Any]) -> dict[str, Any] | None:
    git = data.get("gitIdentifier")
    if not git:
        return None
    return _drop_none({"id": git.get("repoName") or git["repoUri"], "source": git["repoUri"]})


def _change_id(event: Mapping[str, Any]) -> str | None:
    data = event.get("data") or {}
    return (data.get("change") or {}).get("id") or (data.get("gitIdentifier") or {}).get("commitId")


def _change(ex: _Export) -> tuple[str, str, dict[str, Any]]:
    content: dict[str, Any] = {}
    repo = _repository(ex.data)
    if ex.meta["type"] == E.SOURCE_CHANGE_CREATED:
        if repo:
            content["repository"] = repo
        return CHANGE_CREATED, _change_id(ex.event) or ex.meta["id"], content
    created = ex.get(_link(ex.event, E.CHANGE))
    repo = repo or _repository(created.get("data") or {})
    if repo:
        content["repository"] = repo
    return CHANGE_MERGED, _merged_change(ex, ex.event), content


def _merged_change(ex: _Export, submitted: Mapping[str, Any]) -> str:
    """The change a SourceChangeSubmitted merged: its SourceChangeCreated's
    change id (or commit), else the CHANGE target, else its own commit/id."""
    created_id = _link(submitted, E.CHANGE)
    created = ex.get(created_id)
    return (
        (_change_id(created) if created else None)
        or created_id
        or _change_id(submitted)
        or submitted["meta"]["id"]
    )


def _artifact(ex: _Export) -> tuple[str, str, dict[str, Any]]:
    if ex.meta["type"] == E.ARTIFACT_CREATED:
        change = None
        for link in ex.event.get("links") or ():
            if link.get("type") in (E.CAUSE, E.CONTEXT):
                cause = ex.get(link["target"])
                if cause and cause["meta"]["type"] == E.SOURCE_CHANGE_SUBMITTED:
                    change = _merged_change(ex, cause)
                    break
                if cause and cause["meta"]["type"] == E.SOURCE_CHANGE_CREATED:
                    change = _change_id(cause) or link["target"]
                    break
        change = change or _link(ex.event, E.CAUSE) or "unknown"
        return ARTIFACT_PACKAGED, ex.data["identity"], {"change": {"id": change}}
    target = _link(ex.event, E.ARTIFACT)
    created = ex.get(target)
    identity = (created.get("data") or {}).get("identity") if created else None
    return ARTIFACT_PUBLISHED, identity or target or ex.meta["id"], {}


_EXPORTERS: dict[str, Callable[[_Export], tuple[str, str, dict[str, Any]] | None]] = {
    E.ACTIVITY_TRIGGERED: _activity,
    E.ACTIVITY_STARTED: _activity,
    E.ACTIVITY_FINISHED: _activity,
    E.ACTIVITY_CANCELED: _activity,
    E.TEST_CASE_TRIGGERED: _test_case,
    E.TEST_CASE_STARTED: _test_case,
    E.TEST_CASE_FINISHED: _test_case,
    E.TEST_CASE_CANCELED: _test_case,
    E.TEST_SUITE_STARTED: _test_suite,
    E.TEST_SUITE_FINISHED: _test_suite,
    E.SOURCE_CHANGE_CREATED: _change,
    E.SOURCE_CHANGE_SUBMITTED: _change,
    E.ARTIFACT_CREATED: _artifact,
    E.ARTIFACT_PUBLISHED: _artifact,
}


def to_cdevent(
    event: Mapping[str, Any],
    *,
    resolve: Resolve | None = None,
    source: str | None = None,
    keep_eiffel: bool = False,
    schemas: Schemas | None = None,
) -> dict[str, Any] | None:
    """The CDEvent for Eiffel ``event``, or None when it has no counterpart.

    ``resolve(id)`` gives another Eiffel event by id (or None): the
    ActivityTriggered of a run gives its name and whether it is a step, the
    TestCaseTriggered its test case, the ArtifactCreated its identity.
    ``source`` overrides ``context.source`` (default: ``meta.source.uri``, or
    ``/<name>/<host>``). ``keep_eiffel`` adds the whole Eiffel event as
    ``customData.eiffel``. With ``schemas`` the result is validated."""
    exporter = _EXPORTERS.get(event["meta"]["type"])
    if exporter is None:
        return None
    ex = _Export(event, resolve)
    mapped = exporter(ex)
    if mapped is None:
        return None
    ctype, subject_id, content = mapped
    allowed = _CONTENT[ctype]
    for key, value in ex.extras.items():  # kept by an import: restored as they were
        if key in allowed:
            content[key] = value
    meta = event["meta"]
    context: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": ex.extras.get("contextId") or meta["id"],
        "source": source or _source_uri(meta),
        "type": ctype,
        "timestamp": ms_to_rfc3339(meta["time"]),
    }
    for key in ("chainId", "schemaUri"):
        if isinstance(ex.extras.get(key), str):
            context[key] = ex.extras[key]
    links = []
    for link in event.get("links") or ():
        kind = "TRIGGER" if link["type"] == E.CAUSE else link["type"]
        links.append(
            {"linkType": "RELATION", "linkKind": kind, "target": {"contextId": link["target"]}}
        )
    if links:
        context["links"] = links
    subject: dict[str, Any] = {"id": subject_id, "content": content}
    subj = ex.extras.get("subject")
    if isinstance(subj, dict):
        subject = {**subj, "content": content}
    elif "source" not in subject:
        subject["source"] = context["source"]
    out: dict[str, Any] = {"context": context, "subject": subject}
    custom = dict(ex.custom)
    if keep_eiffel:
        custom["eiffel"] = copy.deepcopy(dict(event))
    if custom:
        out["customData"] = custom
    if schemas is not None:
        schemas.validate(out)
    return out


def to_cdevents(
    events: Iterable[Mapping[str, Any]],
    *,
    resolve: Resolve | None = None,
    source: str | None = None,
    keep_eiffel: bool = False,
    schemas: Schemas | None = None,
) -> list[dict[str, Any]]:
    """Export a batch: events are resolved among the batch first, then with
    ``resolve``; events with no counterpart are left out."""
    events = list(events)
    by_id = {e["meta"]["id"]: e for e in events}

    def lookup(eid: str) -> Mapping[str, Any] | None:
        found = by_id.get(eid)
        return found if found is not None or resolve is None else resolve(eid)

    out = []
    for e in events:
        ce = to_cdevent(e, resolve=lookup, source=source, keep_eiffel=keep_eiffel, schemas=schemas)
        if ce is not None:
            out.append(ce)
    return out


# --- import ----------------------------------------------------------------


def _kind(ctype: str) -> str:
    parts = ctype.split(".")
    if len(parts) < 4 or parts[0] != "dev" or parts[1] != "cdevents":
        raise UnmappedEvent(f"not a CDEvents type: {ctype!r}")
    return f"{parts[2]}.{parts[3]}"


def from_cdevent(cdevent: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Eiffel event for ``cdevent``, or None when its type has no
    counterpart (see :data:`IMPORTS`). Any version of a mapped type is
    read; the result uses the Eiffel versions BOSS emits."""
    context = cdevent.get("context")
    subject = cdevent.get("subject")
    if (
        not isinstance(context, Mapping)
        or not isinstance(subject, Mapping)
        or not isinstance(context.get("type"), str)
    ):
        raise UnmappedEvent("not a CDEvent: needs context.type and subject")
    custom = cdevent.get("customData")
    if isinstance(custom, Mapping) and isinstance(custom.get("eiffel"), Mapping):
        return copy.deepcopy(dict(custom["eiffel"]))
    kind = _kind(context["type"])
    etype = IMPORTS.get(kind)
    if etype is None:
        return None
    content = dict(subject.get("content") or {})
    sid = str(subject.get("id", ""))
    extras: dict[str, Any] = {"subject": {k: v for k, v in subject.items() if k != "content"}}
    for key in ("chainId", "schemaUri"):
        if key in context:
            extras[key] = context[key]
    data: dict[str, Any] = {}
    links: list[tuple[str, str]] = []
    for link in context.get("links") or ():
        if link.get("linkType") != "RELATION":
            continue
        kind_ = link.get("linkKind")
        target = (link.get("target") or {}).get("contextId")
        if isinstance(kind_, str) and isinstance(target, str):
            links.append((E.CAUSE if kind_ == "TRIGGER" else kind_, uuid_of(target)))
    link_types = {t for t, _ in links}

    def need(ltype: str, key: str | None) -> None:
        if ltype not in link_types and key:
            links.append((ltype, uuid_of(key)))
            link_types.add(ltype)

    handle = kind in ("pipelinerun.queued", "testcaserun.queued", "testsuiterun.started")
    event_id = uuid_of(sid) if handle else uuid_of(str(context.get("id", "")))
    if context.get("id") != event_id:
        extras["contextId"] = context.get("id")
    try:
        time_ms = rfc3339_to_ms(str(context.get("timestamp")))
    except ValueError as exc:
        raise UnmappedEvent(f"context.timestamp is not an RFC 3339 time: {exc}") from None

    def take(key: str) -> Any:
        return content.pop(key, None)

    if kind.startswith(("pipelinerun.", "taskrun.")):
        name = take("pipelineName") if kind.startswith("pipelinerun.") else None
        if kind == "pipelinerun.queued":
            data["name"] = name or sid
        else:
            need(E.ACTIVITY_EXECUTION, sid)
            if kind.startswith("taskrun."):
                run = content.get("pipelineRun") or {}
                need(E.CONTEXT, run.get("id"))
            if name:
                extras["pipelineName"] = name
            if kind.endswith(".started"):
                uri = take("uri")
                if uri:
                    data["executionUri"] = uri
            else:
                outcome = take("outcome")
                errors = take("errors")
                data["outcome"] = _drop_none(
                    {
                        "conclusion": _ACT_IN.get(outcome or "", "INCONCLUSIVE"),
                        "description": errors,
                    }
                )
    elif kind == "artifact.packaged":
        data["identity"] = sid if sid.startswith("pkg:") else f"pkg:generic/{quote(sid, safe='')}"
    elif kind == "artifact.published":
        need(E.ARTIFACT, sid)
        data["locations"] = [{"type": "OTHER", "uri": sid}]
    elif kind == "change.created":
        data["change"] = {"id": sid}
    elif kind == "change.merged":
        pass
    elif kind.startswith("testcaserun."):
        tc = content.get("testCase") or {}
        if kind == "testcaserun.queued":
            data["testCase"] = _drop_none(
                {"id": tc.get("id") or sid, "version": tc.get("version"), "uri": tc.get("uri")}
            )
            trigger = (content.get("trigger") or {}).get("type")
            if trigger:
                data["triggers"] = [{"type": _TRIGGER_IN.get(trigger, "OTHER")}]
            need(E.IUT, f"iut:{sid}")
        else:
            need(E.TEST_CASE_EXECUTION, sid)
        if kind == "testcaserun.queued":  # a test case run's context: on its handle
            need(E.CONTEXT, (content.get("testSuiteRun") or {}).get("id"))
        if kind == "testcaserun.finished":
            verdict, conclusion = _TEST_IN.get(
                take("outcome") or "", ("INCONCLUSIVE", "INCONCLUSIVE")
            )
            data["outcome"] = _drop_none(
                {"verdict": verdict, "conclusion": conclusion, "description": take("reason")}
            )
        elif kind == "testcaserun.skipped":
            reason = take("reason")
            if reason:
                data["reason"] = reason
    elif kind.startswith("testsuiterun."):
        suite = content.get("testSuite") or {}
        if kind == "testsuiterun.started":
            data["name"] = suite.get("name") or suite.get("id") or sid
        else:
            need(E.TEST_SUITE_EXECUTION, sid)
            outcome = take("outcome")
            if outcome:
                verdict, conclusion = _TEST_IN.get(outcome, ("INCONCLUSIVE", "INCONCLUSIVE"))
                data["outcome"] = _drop_none(
                    {"verdict": verdict, "conclusion": conclusion, "description": take("reason")}
                )
    for key, value in content.items():
        extras[key] = value
    items = [{"key": _PREFIX + k, "value": v} for k, v in extras.items() if v is not None]
    if isinstance(custom, Mapping):
        items += [{"key": k, "value": v} for k, v in custom.items()]
    elif custom is not None:
        items.append({"key": _PREFIX + "customData", "value": custom})
    if items:
        data["customData"] = items
    src = context.get("source")
    return E.new_event(
        etype,
        data,
        links,
        event_id=event_id,
        time_ms=time_ms,
        source={"uri": str(src)} if src else {"name": "cdevents"},
    )


def from_cdevents(cdevents: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Import a batch; CDEvents with no counterpart are left out."""
    out = []
    for ce in cdevents:
        ev = from_cdevent(ce)
        if ev is not None:
            out.append(ev)
    return out


# --- schemas ---------------------------------------------------------------


class Schemas:
    """The CDEvents JSON schemas of a directory (``<dir>/*.json`` and
    ``<dir>/links/*.json``, as in the spec's ``schemas/``), to validate
    CDEvents with. Not shipped: the directory is given."""

    def __init__(self, schema_dir: Path | str) -> None:
        from referencing import Registry, Resource

        root = Path(schema_dir)
        registry: Registry = Registry()
        self._by_type: dict[str, dict[str, Any]] = {}
        for path in sorted(root.glob("*.json")) + sorted(root.glob("links/*.json")):
            schema = json.loads(path.read_text(encoding="utf-8"))
            registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
            ctx = (schema.get("properties") or {}).get("context") or {}
            for ctype in ((ctx.get("properties") or {}).get("type") or {}).get("enum") or ():
                self._by_type[ctype] = schema
        self._registry = registry
        self._validators: dict[str, Any] = {}

    def types(self) -> list[str]:
        """Every CDEvents type the directory has a schema for."""
        return sorted(self._by_type)

    def validate(self, cdevent: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` naming the path and problem if ``cdevent``
        breaks its type's schema (or its type has none)."""
        import jsonschema

        ctype = (cdevent.get("context") or {}).get("type")
        schema = self._by_type.get(ctype)
        if schema is None:
            raise ValueError(f"no CDEvents schema for type {ctype!r}")
        validator = self._validators.get(ctype)
        if validator is None:
            validator = jsonschema.Draft202012Validator(schema, registry=self._registry)
            self._validators[ctype] = validator
        error = jsonschema.exceptions.best_match(validator.iter_errors(cdevent))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(top)"
            raise ValueError(f"invalid {ctype}: at {where}: {error.message}")
