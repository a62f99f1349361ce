"""Validation of Eiffel events: the protocol's examples and flows pass,
mutated events are rejected with the broken rule named."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest

from engine.trace import eiffel as E
from engine.trace import validate as V
from engine.trace.validate import InvalidEvent, Validator
from tests.trace.conformance import CONFORMANCE

EIFFEL = CONFORMANCE / "eiffel"
DEFINITIONS = EIFFEL / "definitions"
EXAMPLES = sorted((EIFFEL / "examples" / "events").glob("*/*.json"))
FLOWS = sorted((EIFFEL / "examples" / "flows").glob("*/events.json"))

needs_conformance = pytest.mark.skipif(
    not EIFFEL.is_dir(),
    reason=f"Eiffel conformance data not found at {EIFFEL} (shared conformance data)",
)

TRIGGERED = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeee0"
OTHER = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeee1"


@pytest.fixture(scope="module")
def with_definitions() -> Validator:
    return Validator([DEFINITIONS])


@pytest.fixture(scope="module")
def plain() -> Validator:
    return Validator()


@pytest.fixture(scope="module")
def eiffellib_only() -> Validator:
    return Validator(vendored=False)


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _rule(validator: Validator, event: Any, **kw: Any) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        validator.validate(event, **kw)
    return info.value


def _finished() -> dict[str, Any]:
    return E.activity_finished(TRIGGERED, "SUCCESSFUL", description="done")


# --- the protocol's own examples -------------------------------------------


@needs_conformance
def test_there_are_36_examples() -> None:
    assert len(EXAMPLES) == 36


@needs_conformance
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_single_examples_validate(with_definitions: Validator, path: Path) -> None:
    with_definitions.validate(_load(path))


@needs_conformance
def test_newer_examples_need_more_than_eiffellib(eiffellib_only: Validator) -> None:
    ev = _load(EIFFEL / "examples" / "events" / "EiffelActivityFinishedEvent" / "simple.json")
    err = _rule(eiffellib_only, ev)
    assert err.rule == "schema-unknown" and err.path == "meta.version"
    assert "3.3.0" in err.message and "4.0.0" in err.message


@needs_conformance
@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.parent.name)
def test_flow_events_validate_with_eiffellib_schemas_alone(
    eiffellib_only: Validator, path: Path
) -> None:
    events = _load(path)
    assert {e["meta"]["version"] for e in events} <= {"3.0.0", "4.0.0"}
    for event in events:
        eiffellib_only.validate(event)


#: Link-target violations in the protocol's example flows themselves, found
#: when the flow's events are checked against each other's types: a
#: CompositionDefined 3.0.0 ELEMENT may not point at an ArtifactReused, and
#: a TestCaseFinished's TEST_CASE_EXECUTION must point at the
#: TestCaseTriggered, not the TestCaseStarted.
KNOWN_FLOW_DEFECTS = {
    "build-avoidance": [(12, "link-target-type")],
    "confidence-level-joining": [],
    "delivery-interface": [(15, "link-target-type"), (16, "link-target-type")],
}


@needs_conformance
@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.parent.name)
def test_flows_as_batches_link_targets_resolved(plain: Validator, path: Path) -> None:
    errors = plain.validate_many(_load(path))
    assert [(i, e.rule) for i, e in errors] == KNOWN_FLOW_DEFECTS[path.parent.name]


# --- rejections, one rule each -----------------------------------------------


def test_uppercase_id(plain: Validator) -> None:
    ev = _finished()
    ev["meta"]["id"] = ev["meta"]["id"].upper()
    err = _rule(plain, ev)
    assert (err.rule, err.path) == ("id-format", "meta.id")


def test_uppercase_link_target(plain: Validator) -> None:
    ev = _finished()
    ev["links"][0]["target"] = TRIGGERED.upper()
    err = _rule(plain, ev)
    assert (err.rule, err.path) == ("id-format", "links[0].target")


def test_uuid4_only_when_asked() -> None:
    ev = _finished()
    ev["meta"]["id"] = "aaaaaaaa-bbbb-5ccc-8ddd-eeeeeeeeeee0"
    Validator().validate(ev)
    assert _rule(Validator(require_uuid4=True), ev).rule == "id-format"


@pytest.mark.parametrize("bad", [1.5e12, 1234.0, "1234", True, -1, None])
def test_time_not_integer_ms(plain: Validator, bad: Any) -> None:
    ev = _finished()
    ev["meta"]["time"] = bad
    err = _rule(plain, ev)
    assert (err.rule, err.path) == ("time-format", "meta.time")


def test_activity_finished_without_activity_execution(plain: Validator) -> None:
    ev = _finished()
    ev["links"] = []
    err = _rule(plain, ev)
    assert err.rule == "link-required" and "ACTIVITY_EXECUTION" in err.message


def test_confidence_level_without_subject(plain: Validator) -> None:
    ev = E.confidence_level_modified("stable", "SUCCESS", [OTHER])
    plain.validate(ev)
    ev["links"] = []
    err = _rule(plain, ev)
    assert err.rule == "link-required" and "SUBJECT" in err.message


def test_repeated_single_link(plain: Validator) -> None:
    ev = E.activity_finished(TRIGGERED, "SUCCESSFUL", context=OTHER, links=[("CONTEXT", OTHER)])
    err = _rule(plain, ev)
    assert (err.rule, err.path) == ("link-single", "links[2]")


def test_illegal_target_type(plain: Validator) -> None:
    ev = E.activity_finished(TRIGGERED, "SUCCESSFUL", context=OTHER)
    types = {TRIGGERED: E.ACTIVITY_TRIGGERED, OTHER: E.ARTIFACT_CREATED}
    plain.validate(ev)  # unknown targets: placeholders, not errors
    err = _rule(plain, ev, target_type=types.get)
    assert (err.rule, err.path) == ("link-target-type", "links[1]")
    assert E.ARTIFACT_CREATED in err.message


def test_unknown_link_type(plain: Validator) -> None:
    ev = E.activity_finished(TRIGGERED, "SUCCESSFUL", links=[("ELEMENT", OTHER)])
    assert _rule(plain, ev).rule == "link-unknown-type"


def test_schema_names_path_and_keyword(plain: Validator) -> None:
    ev = _finished()
    ev["data"]["outcome"]["conclusion"] = "DONE"
    err = _rule(plain, ev)
    assert err.rule == "schema"
    assert err.path == "data.outcome.conclusion"
    assert "data.outcome.conclusion" in err.message and "enum" in err.message


def test_schema_missing_member(plain: Validator) -> None:
    ev = _finished()
    del ev["data"]["outcome"]
    err = _rule(plain, ev)
    assert err.rule == "schema" and "required" in err.message and "outcome" in err.message


def test_schema_extra_member(plain: Validator) -> None:
    ev = _finished()
    ev["data"]["colour"] = "blue"
    err = _rule(plain, ev)
    assert err.rule == "schema" and err.path == "data" and "additionalProperties" in err.message


def test_schema_link_index_in_path(plain: Validator) -> None:
    ev = _finished()
    ev["links"][0]["extra"] = 1
    err = _rule(plain, ev)
    assert err.rule == "schema" and err.path == "links[0]"


@pytest.mark.parametrize("bad", [[], "[1]", "not json", 3, None])
def test_not_an_object(plain: Validator, bad: Any) -> None:
    assert _rule(plain, bad).rule == "json"


def test_json_text_is_accepted(plain: Validator) -> None:
    plain.validate(json.dumps(_finished()))


def test_missing_meta(plain: Validator) -> None:
    err = _rule(plain, {"data": {}, "links": []})
    assert (err.rule, err.path) == ("schema", "meta")


def test_unknown_type_and_version(plain: Validator) -> None:
    ev = _finished()
    ev["meta"]["type"] = "EiffelNoSuchEvent"
    err = _rule(plain, ev)
    assert err.rule == "schema-unknown" and E.ACTIVITY_FINISHED in err.message
    ev = _finished()
    ev["meta"]["version"] = "9.9.9"
    err = _rule(plain, ev)
    assert err.rule == "schema-unknown" and "3.3.0" in err.message


# --- the YAML definitions ----------------------------------------------------


@needs_conformance
def test_definitions_extend_known_versions(
    with_definitions: Validator, eiffellib_only: Validator
) -> None:
    assert "4.1.1" in with_definitions.known()[E.ACTIVITY_FINISHED]
    assert "4.1.1" not in eiffellib_only.known()[E.ACTIVITY_FINISHED]


@needs_conformance
def test_definition_schema_rejects_with_path(with_definitions: Validator) -> None:
    ev = _finished()
    ev["meta"]["version"] = "4.1.1"
    with_definitions.validate(ev)
    ev["data"]["outcome"]["conclusion"] = "DONE"
    err = _rule(with_definitions, ev)
    assert (err.rule, err.path) == ("schema", "data.outcome.conclusion")
    bad_meta = _finished()
    bad_meta["meta"]["version"] = "4.1.1"
    bad_meta["meta"]["source"]["colour"] = "blue"
    err = _rule(with_definitions, bad_meta)
    assert err.rule == "schema" and err.path == "meta.source"


@needs_conformance
def test_definition_required_link_enforced_by_schema_too(with_definitions: Validator) -> None:
    # the 4.x definitions say "contains ACTIVITY_EXECUTION" in the schema itself
    ev = _finished()
    ev["meta"]["version"] = "4.1.1"
    ev["links"] = []
    assert _rule(with_definitions, ev).rule in ("schema", "link-required")


def test_missing_definitions_dir_is_ignored(tmp_path: Path) -> None:
    v = Validator([tmp_path / "nope"])
    v.validate(_finished())


# --- batches, module-level API, speed ----------------------------------------


def test_validate_many_resolves_targets_in_the_batch(plain: Validator) -> None:
    art = E.artifact_created("pkg:generic/x")
    bad = E.activity_finished(TRIGGERED, "SUCCESSFUL", context=art["meta"]["id"])
    bad_id = copy.deepcopy(_finished())
    bad_id["meta"]["id"] = "X"
    errors = plain.validate_many([art, bad, bad_id])
    assert [(i, e.rule) for i, e in errors] == [(1, "link-target-type"), (2, "id-format")]


def test_module_level_validator(tmp_path: Path) -> None:
    V.validate(_finished())
    assert V.validate_many([_finished(), {}])[0][0] == 1
    try:
        v = V.configure([tmp_path])
        assert V.default_validator() is v
    finally:
        V.configure()


def test_validation_is_fast(plain: Validator) -> None:
    ev = _finished()
    plain.validate(ev)  # compile once
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        plain.validate(ev)
    per_event = (time.perf_counter() - start) / n
    assert per_event < 500e-6  # measured about 20 µs; generous for slow CI
