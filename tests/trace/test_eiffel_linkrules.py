"""The encoded Eiffel link-rule table and ``check_links``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.trace import eiffel as E
from engine.trace.linkrules import check_links, expanded_table, rules_for
from tests.trace.conformance import CONFORMANCE

DEFINITIONS = CONFORMANCE / "eiffel" / "definitions"

needs_definitions = pytest.mark.skipif(
    not DEFINITIONS.is_dir(),
    reason=f"Eiffel definitions not found at {DEFINITIONS} (shared conformance data)",
)

TRIGGERED = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeee0"
OTHER = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeee1"


@pytest.fixture(scope="module")
def derived() -> dict[str, Any]:
    from engine.trace.linkrules_gen import derive

    return derive(DEFINITIONS)


@needs_definitions
def test_table_equals_the_protocol_definitions(derived: dict[str, Any]) -> None:
    assert expanded_table() == derived


@needs_definitions
def test_shipped_file_is_the_generators_output(derived: dict[str, Any]) -> None:
    from engine.trace.linkrules_gen import compact

    shipped = Path(__file__).resolve().parents[2] / "engine" / "trace" / "links.json"
    assert json.loads(shipped.read_text())["types"] == compact(derived)


def test_generator_main(tmp_path: Path) -> None:
    from engine.trace.linkrules_gen import main

    (tmp_path / "defs" / "EiffelFooEvent").mkdir(parents=True)
    (tmp_path / "defs" / "EiffelFooEvent" / "1.0.0.yml").write_text(
        "_version: 1.0.0\n_links:\n  CAUSE:\n    required: false\n    multiple: true\n"
        "    targets:\n      any_type: true\n      types: []\n"
    )
    out = tmp_path / "links.json"
    assert main([str(tmp_path / "defs"), str(out)]) == 0
    assert json.loads(out.read_text())["types"] == {
        "EiffelFooEvent": [
            {
                "versions": ["1.0.0"],
                "links": {"CAUSE": {"targets": "any", "required": False, "multiple": True}},
            }
        ]
    }
    assert main([]) == 2


def test_every_type_has_rules_for_the_version_we_emit() -> None:
    for etype, version in E.DEFAULT_VERSIONS.items():
        assert rules_for(etype, version), etype


def test_unlisted_version_falls_back_within_its_major() -> None:
    assert rules_for(E.ACTIVITY_FINISHED, "4.9.9") == rules_for(E.ACTIVITY_FINISHED, "4.1.1")
    assert rules_for(E.ACTIVITY_FINISHED, "99.0.0") is None
    assert rules_for("EiffelNoSuchEvent", "1.0.0") is None


def test_activity_finished_without_activity_execution() -> None:
    ev = E.new_event(E.ACTIVITY_FINISHED, {"outcome": {"conclusion": "SUCCESSFUL"}})
    [v] = check_links(ev)
    assert (v.rule, v.link_type, v.path) == ("link-required", "ACTIVITY_EXECUTION", "links")


def test_confidence_level_without_subject() -> None:
    ev = E.new_event(E.CONFIDENCE_LEVEL_MODIFIED, {"name": "stable", "value": "SUCCESS"})
    assert [v.rule for v in check_links(ev)] == ["link-required"]


def test_repeated_single_link() -> None:
    ev = E.activity_finished(TRIGGERED, "SUCCESSFUL", links=[("ACTIVITY_EXECUTION", OTHER)])
    [v] = check_links(ev)
    assert (v.rule, v.index, v.target, v.path) == ("link-single", 1, OTHER, "links[1]")


def test_unknown_link_type() -> None:
    ev = E.activity_finished(TRIGGERED, "SUCCESSFUL", links=[("SUBJECT", OTHER)])
    [v] = check_links(ev)
    assert v.rule == "link-unknown-type" and v.link_type == "SUBJECT"


def test_target_type_checked_only_when_known() -> None:
    ev = E.activity_finished(TRIGGERED, "SUCCESSFUL", context=OTHER)
    assert check_links(ev) == []
    assert check_links(ev, target_type=lambda _id: None) == []
    types = {TRIGGERED: E.ACTIVITY_TRIGGERED, OTHER: E.ARTIFACT_CREATED}
    [v] = check_links(ev, target_type=types.get)
    assert (v.rule, v.link_type, v.target) == ("link-target-type", "CONTEXT", OTHER)
    types[OTHER] = E.TEST_SUITE_STARTED
    assert check_links(ev, target_type=types.get) == []


def test_any_target_link_accepts_every_type() -> None:
    ev = E.activity_triggered("run", cause=OTHER)
    assert check_links(ev, target_type=lambda _id: E.ISSUE_DEFINED) == []


def test_versions_without_recorded_rules_are_not_checked() -> None:
    ev = E.new_event(E.TEST_CASE_FINISHED, {}, [("WHATEVER", OTHER)], version="1.0.0")
    assert check_links(ev) == []


def test_malformed_events_yield_no_link_violations() -> None:
    assert check_links({}) == []
    assert check_links({"meta": {"type": 1}, "links": []}) == []
