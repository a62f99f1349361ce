"""The Eiffel event constructors: complete, valid events of the versions we
emit."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import pytest

from engine.trace import eiffel as E
from engine.trace.validate import Validator

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
STRICT = Validator(require_uuid4=True)


def _newest_in_eiffellib() -> dict[str, str]:
    root = resources.files("eiffellib") / "schemas"
    out = {}
    for type_dir in root.iterdir():
        versions = [f.name[:-5] for f in type_dir.iterdir() if f.name.endswith(".json")]
        if versions:
            out[type_dir.name] = max(versions, key=lambda v: tuple(map(int, v.split("."))))
    return out


def test_default_versions_are_the_newest_eiffellib_ships() -> None:
    assert _newest_in_eiffellib() == E.DEFAULT_VERSIONS


def test_new_event_is_complete() -> None:
    ev = E.new_event("ActivityTriggered", {"name": "x"}, tags=["a"])
    meta = ev["meta"]
    assert meta["type"] == E.ACTIVITY_TRIGGERED
    assert meta["version"] == E.DEFAULT_VERSIONS[E.ACTIVITY_TRIGGERED]
    assert UUID4.match(meta["id"])
    assert type(meta["time"]) is int and meta["time"] > 1_600_000_000_000
    assert meta["source"]["name"] == "boss" and meta["source"]["host"]
    assert meta["tags"] == ["a"]
    assert ev["links"] == []
    STRICT.validate(ev)


def test_new_event_takes_overrides_and_both_link_shapes() -> None:
    t = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeee0"
    ev = E.new_event(
        E.ACTIVITY_STARTED,
        {},
        [("ACTIVITY_EXECUTION", t), {"type": "CAUSE", "target": t}],
        source={"name": "me"},
        time_ms=5,
        event_id=t,
        version="4.0.0",
    )
    assert ev["meta"] == {
        "id": t,
        "type": E.ACTIVITY_STARTED,
        "version": "4.0.0",
        "time": 5,
        "source": {"name": "me"},
    }
    assert ev["links"] == [
        {"type": "ACTIVITY_EXECUTION", "target": t},
        {"type": "CAUSE", "target": t},
    ]


def test_source_is_not_shared_between_events() -> None:
    a = E.new_event(E.ACTIVITY_TRIGGERED, {"name": "x"})
    a["meta"]["source"]["name"] = "changed"
    assert E.new_event(E.ACTIVITY_TRIGGERED, {"name": "x"})["meta"]["source"]["name"] == "boss"


def _flow() -> list[dict[str, Any]]:
    run = E.activity_triggered(
        "build",
        categories=["boss"],
        triggers=[{"type": "SOURCE_CHANGE"}],
        custom_data={"process": "build.yaml"},
    )
    rid = run["meta"]["id"]
    step = E.activity_triggered("compile", context=rid)
    sid = step["meta"]["id"]
    scc = E.source_change_created(
        commit="abc",
        repo_uri="https://git/x",
        branch="main",
        change_id="42",
        tracker="gerrit",
        author={"name": "A"},
    )
    scs = E.source_change_submitted(
        scc["meta"]["id"], commit="abc", repo_uri="https://git/x", submitter={"name": "B"}
    )
    comp = E.composition_defined("release", [scs["meta"]["id"]], version="1")
    art = E.artifact_created(
        "pkg:rpm/x@1",
        name="x",
        composition=comp["meta"]["id"],
        cause=scs["meta"]["id"],
        context=rid,
        file_information=[{"name": "x.rpm"}],
    )
    tct = E.test_case_triggered(
        "tc1", art["meta"]["id"], tracker="t", parameters={"a": "b"}, context=rid
    )
    tcid = tct["meta"]["id"]
    suite = E.test_suite_started("smoke", types=["FUNCTIONAL"], context=rid)
    return [
        run,
        step,
        E.activity_started(
            rid,
            execution_uri="https://boss/run/1",
            live_logs=[{"name": "log", "uri": "https://boss/log"}],
        ),
        E.activity_started(sid, context=rid),
        E.activity_finished(
            sid,
            "SUCCESSFUL",
            description="ok",
            context=rid,
            persistent_logs=[{"name": "log", "uri": "https://boss/log"}],
        ),
        E.activity_canceled(rid, reason="cancelled by user"),
        E.activity_finished(rid, "ABORTED"),
        scc,
        scs,
        comp,
        art,
        E.artifact_published(art["meta"]["id"], [{"type": "PLAIN", "uri": "https://d/x.rpm"}]),
        E.confidence_level_modified(
            "stable", "SUCCESS", [art["meta"]["id"]], issuer={"name": "boss"}
        ),
        tct,
        E.test_case_started(tcid, executor="boss", context=suite["meta"]["id"]),
        E.test_case_finished(tcid, "PASSED", description="fine"),
        E.test_case_canceled(tcid, reason="skipped"),
        suite,
        E.test_suite_finished(suite["meta"]["id"], "PASSED", "SUCCESSFUL"),
        E.test_suite_finished(suite["meta"]["id"]),
        E.issue_defined("BUG", "bugzilla", "123", "https://bugs/123", title="t"),
    ]


@pytest.mark.parametrize("event", _flow(), ids=lambda e: e["meta"]["type"])
def test_every_constructor_output_validates(event: dict[str, Any]) -> None:
    STRICT.validate(event)


def test_constructor_flow_validates_as_a_batch_with_link_targets() -> None:
    assert STRICT.validate_many(_flow()) == []


def test_helpers_link_what_they_are_given() -> None:
    t = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeee0"
    ev = E.activity_finished(t, "FAILED", context=t, flow_context=[t, t])
    assert [(link["type"], link["target"]) for link in ev["links"]] == [
        ("ACTIVITY_EXECUTION", t),
        ("CONTEXT", t),
        ("FLOW_CONTEXT", t),
        ("FLOW_CONTEXT", t),
    ]
    assert ev["data"] == {"outcome": {"conclusion": "FAILED"}}


def test_short_type_names() -> None:
    assert E.event_type("TestCaseFinished") == E.TEST_CASE_FINISHED
    assert E.event_type(E.TEST_CASE_FINISHED) == E.TEST_CASE_FINISHED
    assert E.event_type("Nope") == "Nope"
