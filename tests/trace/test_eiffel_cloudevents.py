"""CloudEvents 1.0 structured-mode envelopes of Eiffel events and CDEvents."""

from __future__ import annotations

import json

import pytest

from engine.trace import cdevents as C
from engine.trace import eiffel as E
from engine.trace.cloudevents import EnvelopeError, is_envelope, unwrap, wrap, wrap_eiffel
from engine.trace.validate import validate
from tests.trace.conformance import CONFORMANCE

CDEVENTS = CONFORMANCE / "cdevents-0.5.1" / "conformance"


def test_eiffel_envelope() -> None:
    ev = E.activity_finished(
        "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeee0",
        "SUCCESSFUL",
        time_ms=1679322425315,
        source={"name": "boss", "host": "ci1"},
    )
    env = wrap(ev)
    assert env == {
        "specversion": "1.0",
        "id": ev["meta"]["id"],
        "source": "/boss/ci1",
        "type": "eiffel.EiffelActivityFinishedEvent",
        "time": "2023-03-20T14:27:05.315Z",
        "datacontenttype": "application/json",
        "eiffelversion": "3.3.0",
        "data": ev,
    }
    assert is_envelope(env)
    assert wrap_eiffel(ev, source="https://boss.example")["source"] == "https://boss.example"


def test_eiffel_round_trip_through_json_text() -> None:
    ev = E.artifact_created("pkg:generic/x@1", source={"name": "b", "uri": "https://b/"})
    text = json.dumps(wrap(ev))
    back = unwrap(text)
    assert back == ev
    validate(back)
    assert wrap(ev)["source"] == "https://b/"


def test_data_as_json_string_is_read() -> None:
    ev = E.activity_triggered("x")
    env = wrap(ev) | {"data": json.dumps(ev)}
    assert unwrap(env) == ev


@pytest.mark.skipif(not CDEVENTS.is_dir(), reason=f"CDEvents examples not found at {CDEVENTS}")
def test_cdevent_round_trip() -> None:
    for path in sorted(CDEVENTS.glob("*.json")):
        ce = json.loads(path.read_text(encoding="utf-8"))
        env = wrap(ce)
        ctx = ce["context"]
        assert (env["id"], env["source"], env["type"], env["time"]) == (
            ctx["id"],
            ctx["source"],
            ctx["type"],
            ctx["timestamp"],
        )
        assert env["dataschema"] == ctx["schemaUri"]
        assert unwrap(json.dumps(env)) == ce


def test_exported_cdevent_envelope() -> None:
    ce = C.to_cdevent(E.activity_triggered("x"))
    assert unwrap(wrap(ce)) == ce
    assert "dataschema" not in wrap(ce)


@pytest.mark.parametrize(
    "bad, match",
    [
        ("not json", "not JSON"),
        ([1], "not a JSON object"),
        ({"specversion": "1.0", "id": "1", "source": "s"}, "missing type"),
        ({"specversion": "0.3", "id": "1", "source": "s", "type": "t", "data": {}}, "specversion"),
        (
            {
                "specversion": "1.0",
                "id": "1",
                "source": "s",
                "type": "t",
                "datacontenttype": "text/plain",
                "data": "x",
            },
            "not JSON",
        ),
        (
            {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data_base64": "eA=="},
            "binary",
        ),
        (
            {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": "{"},
            "data is not JSON",
        ),
        (
            {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": [1]},
            "not a JSON object",
        ),
    ],
)
def test_unwrap_rejects(bad: object, match: str) -> None:
    with pytest.raises(EnvelopeError, match=match):
        unwrap(bad)  # type: ignore[arg-type]


def test_unwrap_checks_attributes_agree() -> None:
    ev = E.activity_triggered("x")
    env = wrap(ev)
    with pytest.raises(EnvelopeError, match="disagree"):
        unwrap(env | {"id": "other"})
    with pytest.raises(EnvelopeError, match="disagree"):
        unwrap(env | {"type": "eiffel.EiffelActivityStartedEvent"})
    ce = C.to_cdevent(ev)
    with pytest.raises(EnvelopeError, match="disagree"):
        unwrap(wrap(ce) | {"id": "other"})


def test_wrap_rejects_other_objects() -> None:
    with pytest.raises(EnvelopeError):
        wrap({"x": 1})
