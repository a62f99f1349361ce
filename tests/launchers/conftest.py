"""Fixtures of the launcher tests: recorded-shape deliveries (``fixtures/``)
as ``RawEvent`` s, and a process store in a temp directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.launchers.base import RawEvent

FIXTURES = Path(__file__).with_name("fixtures")


def recorded(name: str) -> RawEvent:
    """A recorded delivery: ``{"headers", "body", "routing_key"}``."""
    data = json.loads((FIXTURES / name).read_text())
    return RawEvent(
        json.dumps(data["body"]).encode(), dict(data.get("headers") or {}), data.get("routing_key")
    )


def gerrit_lines() -> list[RawEvent]:
    return [
        RawEvent(line.encode())
        for line in (FIXTURES / "gerrit_stream.jsonl").read_text().splitlines()
        if line.strip()
    ]


STEP = "name: {name}\nsteps:\n  - report\n"


def write_process(
    store: Path, project_path: str, filename: str, name: str = "p", conf: str | None = None
) -> Path:
    where = store / project_path
    where.mkdir(parents=True, exist_ok=True)
    path = where / filename
    path.write_text(STEP.format(name=name))
    if conf is not None:
        path.with_suffix(".conf").write_text(conf)
    return path


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    d = tmp_path / "store"
    d.mkdir()
    return d


class FakePublisher:
    """The broker boundary: what the launcher sends and dead-letters."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.letters: list[dict] = []
        self.events: list[dict] = []

    def send(self, msg: dict) -> None:
        self.sent.append(msg)

    def deadletter(self, record: dict) -> None:
        self.letters.append(record)

    def publish(self, events: dict | list) -> None:  # the bus's
        self.events.extend(events if isinstance(events, list) else [events])

    def close(self) -> None:
        pass


@pytest.fixture
def fake() -> FakePublisher:
    return FakePublisher()
