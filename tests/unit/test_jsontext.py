"""``engine.jsontext``: orjson on the hot path, with ``json``'s answers.

The corpus is what users bring: the recorded webhook and stream deliveries
(``shared/payloads``) and the Eiffel and CDEvents examples
(``shared/conformance``), read in place. Each must come out as the very text
``json`` writes, and read back as ``json`` reads it.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

import pytest

from engine import jsontext, wire
from tests.trace.conformance import CONFORMANCE


def _json_text(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _corpus(payloads_dir: Path) -> list[Path]:
    """The recorded deliveries, and the Eiffel and CDEvents examples of
    ``shared/conformance`` when it is there."""
    files = sorted(p for p in payloads_dir.rglob("*.json") if p.is_file())
    assert len(files) >= 50, f"only {len(files)} recorded payloads under {payloads_dir}"
    if CONFORMANCE.is_dir():
        examples = sorted(p for p in CONFORMANCE.rglob("*.json") if p.is_file())
        assert len(examples) >= 50, f"only {len(examples)} examples under {CONFORMANCE}"
        files += examples
    return files


def test_recorded_deliveries_are_written_as_json_writes_them(payloads_dir: Path) -> None:
    floats = 0
    for path in _corpus(payloads_dir):
        text = path.read_bytes()
        value = json.loads(text)
        assert jsontext.loads(text) == value, path
        assert jsontext.loads(text.decode("utf-8")) == value, path
        ours, theirs = jsontext.dumps(value), _json_text(value)
        if ours != theirs:
            # the one allowed difference: a float's shortest text ("1e16"
            # where json writes "1e+16"), the same number
            floats += 1
            assert json.loads(ours) == value, path
        assert jsontext.dumps_text(value) == ours.decode(), path
    assert floats == 0


@pytest.mark.parametrize(
    "text",
    [
        '{"build": 123456789012345678901234567890}',  # beyond 64 bits: orjson makes it a float
        '{"id": -9999999999999999999}',  # below the 64-bit minimum
        '{"id": 18446744073709551615}',  # the 64-bit maximum, unsigned
        '{"size": NaN, "ratio": Infinity}',  # not JSON, but python json (and Python 2) wrote it
        '"\\ud800 lone surrogate"',
        '{"a": 1, "a": 2}',  # the last one wins
        '{"x": 1.5e400}',
    ],
)
def test_what_orjson_reads_otherwise_is_read_as_json_reads_it(text: str) -> None:
    expected = json.loads(text)
    got = jsontext.loads(text)
    assert repr(got) == repr(expected)
    assert repr(jsontext.loads(text.encode())) == repr(expected)


@pytest.mark.parametrize("text", ["{", '{"a": 1,}', "", "nul", b"\xff\xfe{}"])
def test_what_is_not_json_raises_as_json_raises(text: str | bytes) -> None:
    with pytest.raises(ValueError) as theirs:
        json.loads(text)
    with pytest.raises(type(theirs.value)):
        jsontext.loads(text)


@dataclasses.dataclass
class _Data:
    a: int = 1


@pytest.mark.parametrize(
    "value",
    [
        {"n": 2**70, "m": -(2**64)},  # beyond 64 bits: orjson refuses, json writes
        {1: "int key", None: "none key", 2.5: "float key"},
        {"list": [1, 2.5, "é\u2028", True, None], "nested": {"t": (1, 2)}},
    ],
)
def test_what_orjson_refuses_or_reshapes_is_written_as_json_writes_it(value: object) -> None:
    assert jsontext.dumps(value) == _json_text(value)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"when": datetime.datetime(2026, 12, 6)}, TypeError),
        ({"item": _Data()}, TypeError),
        ({"tags": {1, 2}}, TypeError),
        ({"text": "\ud800"}, UnicodeEncodeError),
    ],
)
def test_what_json_refuses_is_still_refused(value: object, error: type[Exception]) -> None:
    """A participant's reply with a value that is not JSON gets an error
    reply (``participants.job``), not a reply the engine cannot read."""
    with pytest.raises(error):
        _json_text(value)
    with pytest.raises(error):
        jsontext.dumps(value)
    with pytest.raises(error):
        wire.dumps(value)


def test_what_refers_to_itself_is_refused_as_json_refuses_it() -> None:
    """A handler that leaves a workitem referring to itself gets an error
    reply (``ValueError``), not a ``RecursionError`` that ends its thread."""
    looped: dict[str, object] = {"fields": {}}
    looped["fields"] = looped
    with pytest.raises(ValueError, match="Circular"):
        jsontext.dumps(looped)
    with pytest.raises(ValueError, match="Circular"):
        wire.dumps(looped)


def test_nan_is_written_as_null() -> None:
    """The documented difference: NaN is not JSON; json writes it anyway."""
    assert jsontext.dumps({"x": float("nan")}) == b'{"x":null}'
    assert _json_text({"x": float("nan")}) == b'{"x":NaN}'


def test_a_workitem_body_is_decoded_as_before() -> None:
    body = b'{"fei": {"wfid": "w", "subid": "0_1-1"}, "fields": {"n": 123456789012345678901}}'
    assert wire.decode(body) == json.loads(body)
    with pytest.raises(wire.Malformed):
        wire.decode(b"[1, 2]")
    with pytest.raises(wire.Malformed):
        wire.decode(b"{not json")
