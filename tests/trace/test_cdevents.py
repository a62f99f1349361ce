"""CDEvents 0.5.1 export and import, checked against the spec's schemas and
conformance examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.trace import cdevents as C
from engine.trace import eiffel as E
from engine.trace.validate import Validator
from tests.trace.conformance import CONFORMANCE

CDEVENTS = CONFORMANCE / "cdevents-0.5.1"
EXAMPLES = sorted((CDEVENTS / "conformance").glob("*.json"))

pytestmark = pytest.mark.skipif(
    not CDEVENTS.is_dir(),
    reason=f"CDEvents 0.5.1 data not found at {CDEVENTS} (shared conformance data)",
)

STRICT = Validator(require_uuid4=True)


@pytest.fixture(scope="module")
def schemas() -> C.Schemas:
    return C.Schemas(CDEVENTS / "schemas")


def _flow() -> list[dict[str, Any]]:
    run = E.activity_triggered(
        "build", triggers=[{"type": "MANUAL"}], custom_data={"process": "build"}
    )
    rid = run["meta"]["id"]
    step = E.activity_triggered("compile", context=rid)
    sid = step["meta"]["id"]
    scc = E.source_change_created(
        commit="abc", repo_uri="https://git.example/x", repo_name="x", change_id="42"
    )
    scs = E.source_change_submitted(
        scc["meta"]["id"], commit="abc", repo_uri="https://git.example/x"
    )
    art = E.artifact_created("pkg:rpm/x@1", cause=scs["meta"]["id"])
    suite = E.test_suite_started("smoke", context=rid)
    tct = E.test_case_triggered(
        "tc1", art["meta"]["id"], context=suite["meta"]["id"], triggers=None
    )
    tcid = tct["meta"]["id"]
    return [
        run,
        step,
        E.activity_started(rid, execution_uri="https://boss.example/run/1"),
        E.activity_started(sid, context=rid),
        E.activity_finished(sid, "UNSUCCESSFUL", description="1 error", context=rid),
        E.activity_canceled(sid, reason="stop", context=rid),
        E.activity_finished(rid, "SUCCESSFUL"),
        E.activity_canceled(rid, reason="stop"),
        scc,
        scs,
        art,
        E.artifact_published(art["meta"]["id"], [{"type": "PLAIN", "uri": "https://d/x"}]),
        suite,
        tct,
        E.test_case_started(tcid, environment="aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeee0"),
        E.test_case_finished(tcid, "FAILED", description="assertion"),
        E.test_case_canceled(tcid, reason="no time"),
        E.test_suite_finished(suite["meta"]["id"], "PASSED", "SUCCESSFUL"),
        E.composition_defined("c", []),
    ]


def test_the_mapped_types_are_the_0_5_1_versions(schemas: C.Schemas) -> None:
    exported = {t for ts in C.EXPORTS.values() for t in ts}
    assert exported <= set(schemas.types())
    for ctype in exported:
        kind = ".".join(ctype.split(".")[2:4])
        assert kind in C.IMPORTS


def test_exports_validate_against_the_schemas(schemas: C.Schemas) -> None:
    flow = _flow()
    out = C.to_cdevents(flow, schemas=schemas)
    types = [ce["context"]["type"] for ce in out]
    assert types == [
        C.PIPELINERUN_QUEUED,
        C.PIPELINERUN_STARTED,
        C.TASKRUN_STARTED,
        C.TASKRUN_FINISHED,
        C.TASKRUN_FINISHED,
        C.PIPELINERUN_FINISHED,
        C.PIPELINERUN_FINISHED,
        C.CHANGE_CREATED,
        C.CHANGE_MERGED,
        C.ARTIFACT_PACKAGED,
        C.ARTIFACT_PUBLISHED,
        C.TESTSUITERUN_STARTED,
        C.TESTCASERUN_QUEUED,
        C.TESTCASERUN_STARTED,
        C.TESTCASERUN_FINISHED,
        C.TESTCASERUN_SKIPPED,
        C.TESTSUITERUN_FINISHED,
    ]
    for ce in out:
        schemas.validate(ce)
        schemas.validate(
            C.to_cdevent(ce["customData"]["eiffel"], keep_eiffel=True)
            if "eiffel" in ce.get("customData", {})
            else ce
        )


def test_export_content(schemas: C.Schemas) -> None:
    flow = _flow()
    by_id = {e["meta"]["id"]: e for e in flow}
    out = {ce["context"]["id"]: ce for ce in C.to_cdevents(flow)}
    run, step = flow[0], flow[1]
    queued = out[run["meta"]["id"]]
    assert queued["subject"]["id"] == run["meta"]["id"]
    assert queued["subject"]["content"] == {"pipelineName": "build"}
    assert queued["customData"] == {"process": "build"}
    started = out[flow[2]["meta"]["id"]]
    assert started["subject"] == {
        "id": run["meta"]["id"],
        "source": started["context"]["source"],
        "content": {"pipelineName": "build", "uri": "https://boss.example/run/1"},
    }
    task_finished = out[flow[4]["meta"]["id"]]["subject"]["content"]
    assert task_finished == {
        "taskName": "compile",
        "pipelineRun": {"id": run["meta"]["id"]},
        "outcome": "failure",
        "errors": "1 error",
    }
    assert step["meta"]["id"] not in out  # a step's ActivityTriggered: no taskrun.queued
    packaged = out[flow[10]["meta"]["id"]]
    assert packaged["subject"]["id"] == "pkg:rpm/x@1"
    assert packaged["subject"]["content"] == {"change": {"id": "42"}}
    merged = out[flow[9]["meta"]["id"]]
    assert merged["subject"]["id"] == "42"
    assert out[flow[11]["meta"]["id"]]["subject"]["id"] == "pkg:rpm/x@1"
    tc_finished = out[flow[15]["meta"]["id"]]["subject"]["content"]
    assert tc_finished["outcome"] == "failure" and tc_finished["testCase"] == {"id": "tc1"}
    assert tc_finished["testSuiteRun"] == {"id": flow[12]["meta"]["id"]}
    links = out[flow[2]["meta"]["id"]]["context"]["links"]
    assert links == [
        {
            "linkType": "RELATION",
            "linkKind": "ACTIVITY_EXECUTION",
            "target": {"contextId": run["meta"]["id"]},
        }
    ]
    assert by_id  # resolution among the batch was used above


def test_no_counterpart_is_none() -> None:
    assert C.to_cdevent(E.composition_defined("c", [])) is None
    assert C.to_cdevent(E.issue_defined("BUG", "t", "1", "https://x")) is None


def test_export_without_resolution_still_validates(schemas: C.Schemas) -> None:
    for ev in _flow():
        ce = C.to_cdevent(ev)
        if ce is not None:
            schemas.validate(ce)


def test_export_does_not_validate_without_schemas() -> None:
    ev = E.activity_triggered("x")
    ev["meta"]["time"] = 0
    assert C.to_cdevent(ev)["context"]["timestamp"] == "1970-01-01T00:00:00.000Z"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_import_conformance_examples(schemas: C.Schemas, path: Path) -> None:
    ce = json.loads(path.read_text(encoding="utf-8"))
    schemas.validate(ce)
    kind = ".".join(ce["context"]["type"].split(".")[2:4])
    ev = C.from_cdevent(ce)
    if kind not in C.IMPORTS:
        assert ev is None
        return
    assert ev is not None and ev["meta"]["type"] == C.IMPORTS[kind]
    STRICT.validate(ev)
    assert ev["meta"]["time"] == C.rfc3339_to_ms(ce["context"]["timestamp"])
    # and back: the same CDEvent, but for sub-millisecond time and PATH/END links
    back = C.to_cdevent(ev, schemas=schemas)
    assert back is not None
    assert back["subject"] == ce["subject"]
    for key in ("id", "type", "source", "chainId", "schemaUri", "specversion"):
        assert back["context"].get(key) == ce["context"].get(key), key
    assert C.rfc3339_to_ms(back["context"]["timestamp"]) == ev["meta"]["time"]
    relations = [link for link in ce["context"].get("links", ()) if link["linkType"] == "RELATION"]
    assert [
        link["linkKind"]
        for link in back["context"].get("links", ())
        if link["linkKind"] == "TRIGGER"
    ] == [r["linkKind"] for r in relations]


def test_every_mapped_kind_has_a_conformance_example() -> None:
    kinds = {
        ".".join(json.loads(p.read_text())["context"]["type"].split(".")[2:4]) for p in EXAMPLES
    }
    assert set(C.IMPORTS) <= kinds


def test_eiffel_round_trip_native() -> None:
    flow = [e for e in _flow() if e["meta"]["type"] in C.EXPORTS]
    by_id = {e["meta"]["id"]: e for e in flow}
    for ce in C.to_cdevents(flow):
        back = C.from_cdevent(ce)
        assert back is not None
        STRICT.validate(back)
        orig = by_id[ce["context"]["id"]]
        assert back["meta"]["id"] == orig["meta"]["id"]
        assert back["meta"]["time"] == orig["meta"]["time"]
        expected_type = {E.ACTIVITY_CANCELED: E.ACTIVITY_FINISHED}.get(
            orig["meta"]["type"], orig["meta"]["type"]
        )
        assert back["meta"]["type"] == expected_type
        assert [(link["type"], link["target"]) for link in back["links"]] == [
            (link["type"], link["target"]) for link in orig["links"]
        ]


def test_eiffel_round_trip_kept_is_exact() -> None:
    flow = _flow()
    out = C.to_cdevents(flow, keep_eiffel=True)
    back = C.from_cdevents(out)
    assert back == [
        e
        for e in flow
        if C.to_cdevent(e, resolve={x["meta"]["id"]: x for x in flow}.get) is not None
    ]


def test_outcomes() -> None:
    t = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeee0"
    for conclusion, outcome in [
        ("SUCCESSFUL", "success"),
        ("UNSUCCESSFUL", "failure"),
        ("FAILED", "error"),
        ("ABORTED", "cancel"),
        ("TIMED_OUT", "error"),
        ("INCONCLUSIVE", "error"),
    ]:
        ce = C.to_cdevent(E.activity_finished(t, conclusion))
        assert ce["subject"]["content"]["outcome"] == outcome


def test_uuid_of_is_deterministic_v4() -> None:
    import re

    v4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert C.uuid_of("mySubject123") == C.uuid_of("mySubject123")
    assert v4.match(C.uuid_of("mySubject123"))
    u = "271069A8-FC18-44F1-B38F-9D70A1695819"
    assert C.uuid_of(u) == u.lower()


def test_time_conversions() -> None:
    assert C.ms_to_rfc3339(1679322425315) == "2023-03-20T14:27:05.315Z"
    assert C.rfc3339_to_ms("2023-03-20T14:27:05.315384Z") == 1679322425315
    assert C.rfc3339_to_ms("2023-03-20T16:27:05.315+02:00") == 1679322425315


def test_import_rejects_non_cdevents() -> None:
    with pytest.raises(C.UnmappedEvent):
        C.from_cdevent({"meta": {}})
    with pytest.raises(C.UnmappedEvent):
        C.from_cdevent({"context": {"type": "com.example.x"}, "subject": {}})
    with pytest.raises(C.UnmappedEvent):
        C.from_cdevent(
            {
                "context": {"type": C.PIPELINERUN_QUEUED, "timestamp": "soon"},
                "subject": {"id": "x", "content": {}},
            }
        )


def test_schema_failure_is_named(schemas: C.Schemas) -> None:
    ce = C.to_cdevent(E.activity_triggered("x"))
    ce["subject"]["content"]["colour"] = "blue"
    with pytest.raises(ValueError, match="subject/content"):
        schemas.validate(ce)
