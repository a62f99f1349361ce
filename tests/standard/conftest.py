"""Helpers of the standard participants' tests: a workitem from a dict and a
handler started with an INI given as a dict, as the runtime would."""

from __future__ import annotations

import configparser
import uuid
from typing import Any

from participants.handler import LifecycleControl
from participants.workitem import Workitem


def workitem(
    fields: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    name: str = "step",
    wfid: str | None = None,
) -> Workitem:
    data = {
        "fei": {
            "wfid": wfid or f"t-{uuid.uuid4().hex[:8]}",
            "expid": "0_1",
            "subid": uuid.uuid4().hex,
            "engine_id": "engine",
        },
        "fields": {**(fields or {}), "params": params or {}},
        "participant_name": name,
        "wf_name": "test",
        "wf_revision": "1",
    }
    return Workitem(data)


def started(handler: Any, sections: dict[str, dict[str, Any]]) -> Any:
    config = configparser.ConfigParser(interpolation=None)
    for name, values in sections.items():
        config[name] = {k: str(v) for k, v in values.items()}
    handler.handle_lifecycle_control(LifecycleControl("start", config))
    return handler


def stopped(handler: Any) -> None:
    handler.handle_lifecycle_control(LifecycleControl("stop"))


# -- end to end: the System harness of tests/e2e on the embedded broker only ------

import sys  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.e2e.conftest import System, running_system  # noqa: E402

HANDLERS = Path(__file__).with_name("handlers.py")


def standard_participant(
    system: System,
    name: str,
    code: str,
    cls: str,
    *,
    regexp: str | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
) -> None:
    """One ``boss-participant`` process running a standard participant (or
    a stand-in from handlers.py), registered by name or by ``regexp``."""
    queue = f"{system.prefix}.{name}"
    ini = system.tmp / f"{name}.ini"
    text = f"[participant]\nname = {name}\nqueue = {queue}\ncode = {code}\nclass = {cls}\n"
    if regexp:
        text += f"regexp = {regexp}\n"
    text += "\n" + system._boss_section()
    for section, values in (sections or {}).items():
        text += f"\n[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())
    ini.write_text(text)
    system.engine.register(regexp or name, queue, regex=bool(regexp))
    system._spawn(f"{name}-0", [sys.executable, "-m", "participants.runtime", str(ini)])
    system.wait_consumers(queue, 1)


@pytest.fixture
def standard_system(
    embedded_broker_url: str, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[System]:
    """A ``System`` (tests/e2e/conftest.py) on the embedded broker; at the
    end, every Eiffel event published passed the aggregator's validation."""
    yield from running_system(
        tmp_path, embedded_broker_url, redis_url, f"std{uuid.uuid4().hex[:10]}", request
    )
