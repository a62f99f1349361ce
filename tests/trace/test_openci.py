"""The OpenCI prototype's three federation events as valid, linked Eiffel
events (``engine.trace.openci``), and the scenario they describe traced."""

from __future__ import annotations

import pytest

from engine.trace.openci import OpenCIError, from_openci, openci_id
from engine.trace.validate import validate_many

ARTIFACT = {
    "type": "ArtifactCreated",
    "id": "cmty-a-art-42",
    "time": "2026-11-20T10:00:00Z",
    "origin": "community-a",
    "artifactUrl": "https://ci.a.example/out/app-1.2.tar.gz",
    "branch": "main",
    "name": "app",
    "version": "1.2",
}
BASELINE = {
    "type": "BaselineDefined",
    "id": "cmty-b-bl-7",
    "time": 1_795_000_000_000,
    "origin": "community-b",
    "name": "b-integration-7",
    "version": "7",
    "url": "https://ci.b.example/baselines/7",
    "consistsOf": ["cmty-a-art-42"],
}
LEVEL = {
    "type": "ConfidenceLevelModified",
    "id": "cmty-b-cl-1",
    "origin": "community-b",
    "level": "integrationTested",
    "value": "success",
    "subject": "cmty-b-bl-7",
}


def test_the_three_events_map_to_valid_linked_eiffel_events():
    art, pub = from_openci(ARTIFACT)
    (bl,) = from_openci(BASELINE)
    (cl,) = from_openci(LEVEL)
    assert validate_many([art, pub, bl, cl]) == []
    assert art["meta"]["type"] == "EiffelArtifactCreatedEvent"
    assert art["data"]["identity"].startswith("pkg:generic/app@1.2?download_url=https%3A")
    assert {"key": "branch", "value": "main"} in art["data"]["customData"]
    assert art["meta"]["time"] == 1_795_168_800_000  # 2026-11-20T10:00Z in ms
    assert pub["links"] == [{"type": "ARTIFACT", "target": art["meta"]["id"]}]
    assert pub["data"]["locations"] == [{"type": "PLAIN", "uri": ARTIFACT["artifactUrl"]}]
    assert bl["data"]["name"] == "b-integration-7"
    assert bl["links"] == [{"type": "ELEMENT", "target": art["meta"]["id"]}]
    assert cl["data"] == {
        "name": "integrationTested",
        "value": "SUCCESS",
        "issuer": {"name": "community-b"},
    }
    assert cl["links"] == [{"type": "SUBJECT", "target": bl["meta"]["id"]}]


def test_ids_are_stable_so_the_same_event_twice_is_one_event():
    assert from_openci(ARTIFACT)[0]["meta"]["id"] == from_openci(ARTIFACT)[0]["meta"]["id"]
    assert openci_id("cmty-a-art-42") != openci_id("cmty-a-art-43")
    uid = "0b3b9bd0-4d0e-4e8f-9b0c-1a2b3c4d5e6f"
    assert openci_id(uid) == uid


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({**ARTIFACT, "branch": ""}, "branch is required"),
        ({**LEVEL, "value": "maybe"}, "value 'MAYBE'"),
        ({**BASELINE, "consistsOf": "x"}, "consistsOf is a list"),
        ({"type": "Whatever", "id": "1"}, "unknown OpenCI event type"),
        ({**ARTIFACT, "time": 1.5}, "time 1.5"),
    ],
)
def test_bad_openci_events_are_refused_with_a_reason(event, message):
    with pytest.raises(OpenCIError, match=message):
        from_openci(event)
