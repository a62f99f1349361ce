"""Reading and writing files of Eiffel events."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.trace import eiffel as E
from engine.trace.formats import EventFileError, read_events, read_file, write_json, write_jsonl
from tests.trace.conformance import CONFORMANCE

EIFFEL = CONFORMANCE / "eiffel" / "examples"


def _events(n: int = 3) -> list[dict]:
    return [E.activity_triggered(f"run{i}") for i in range(n)]


def test_single_object() -> None:
    ev = _events(1)[0]
    assert read_events(json.dumps(ev, indent=2)) == [ev]


def test_array_and_jsonl_round_trip(tmp_path: Path) -> None:
    evs = _events()
    assert read_events(write_json(evs)) == evs
    assert read_events(write_jsonl(evs)) == evs
    write_jsonl(evs, tmp_path / "e.jsonl")
    write_json(evs, tmp_path / "e.json")
    assert read_file(tmp_path / "e.jsonl") == evs
    assert read_file(tmp_path / "e.json") == evs
    assert len(write_jsonl(evs).splitlines()) == 3


def test_jsonl_skips_blank_lines_and_bom() -> None:
    evs = _events(2)
    text = "\ufeff" + json.dumps(evs[0]) + "\n\n  \n" + json.dumps(evs[1]) + "\n"
    assert read_events(text.encode()) == evs


def test_empty() -> None:
    assert read_events("") == []
    assert read_events("  \n") == []
    assert read_events("[]") == []


def test_jsonl_error_names_line_and_column(tmp_path: Path) -> None:
    evs = _events(2)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(evs[0]) + "\n" + json.dumps(evs[1]) + "\n" + '{"meta": ,}\n')
    with pytest.raises(EventFileError) as info:
        read_file(path)
    err = info.value
    assert (err.name, err.line, err.column) == (str(path), 3, 10)
    assert str(err).startswith(f"{path}:3:10: not JSON")


def test_jsonl_non_object_line() -> None:
    with pytest.raises(EventFileError) as info:
        read_events('{"a": 1}\n[1]\n', name="x.jsonl")
    assert info.value.line == 2 and "not an event" in str(info.value)


def test_array_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n  {"a": 1},\n  {"b": }\n]\n')
    with pytest.raises(EventFileError) as info:
        read_file(path)
    assert (info.value.line, info.value.column) == (3, 9)


def test_array_of_non_objects() -> None:
    with pytest.raises(EventFileError, match="item 1"):
        read_events('[{"a": 1}, 2]')


def test_not_json_at_all() -> None:
    with pytest.raises(EventFileError) as info:
        read_events("\n  hello", name="t")
    assert (info.value.line, info.value.column) == (2, 3)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(EventFileError, match="cannot read"):
        read_file(tmp_path / "missing.json")


def test_not_utf8() -> None:
    with pytest.raises(EventFileError, match="UTF-8"):
        read_events(b'{"a": "\xff"}')


@pytest.mark.skipif(not EIFFEL.is_dir(), reason=f"Eiffel examples not found at {EIFFEL}")
def test_reads_the_protocol_examples() -> None:
    flow = read_file(EIFFEL / "flows" / "build-avoidance" / "events.json")
    assert len(flow) == 16
    single = read_file(EIFFEL / "events" / "EiffelActivityFinishedEvent" / "simple.json")
    assert single[0]["meta"]["type"] == E.ACTIVITY_FINISHED
