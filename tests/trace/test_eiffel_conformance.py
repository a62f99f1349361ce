"""The Eiffel protocol's own examples out of the box: the definitions BOSS
ships (``engine/schemas/eiffel``, pinned by its manifest) validate every
example event with the default configuration, and every example flow
imports with ``boss event import`` (link policy ``warn``) into a real graph,
where ``boss trace`` shows the link rules the flows break; ``--links
strict`` refuses them, naming the rule. The examples are read in place from
the shared conformance tree."""

from __future__ import annotations

import contextlib
import filecmp
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import threading
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kombu
import pytest
import redis
from click.testing import CliRunner, Result

from bossapp.cli import main
from engine.config import Config
from engine.trace import linkrules_gen
from engine.trace.aggregator import EventAggregator, graph_prefix, validator_for
from engine.trace.graph import Graph
from engine.trace.linkrules import expanded_table
from engine.trace.validate import (
    VENDORED_DEFINITIONS,
    InvalidEvent,
    Validator,
    default_validator,
)
from tests.conftest import delete_keys
from tests.trace.conformance import CONFORMANCE
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "vendor_eiffel.py"
VENDORED = VENDORED_DEFINITIONS.parent
EIFFEL = CONFORMANCE / "eiffel"
EXAMPLES = sorted((EIFFEL / "examples" / "events").glob("*/*.json"))
FLOWS = sorted((EIFFEL / "examples" / "flows").glob("*/events.json"))

needs_conformance = pytest.mark.skipif(
    not EIFFEL.is_dir(),
    reason=f"Eiffel conformance data not found at {EIFFEL} (shared conformance data)",
)


def n(tail: str) -> str:
    """The flows' ids: ``n("13")`` is ``aaaaaaaa-bbbb-5ccc-8ddd-eeeeeeeeee13``."""
    return "aaaaaaaa-bbbb-5ccc-8ddd-" + tail.rjust(12, "e")


#: the link rules each example flow breaks (worked out by hand from the
#: flows' events.json and the definitions' _links): event id -> [(rule, path)]
FLOW_WARNINGS: dict[str, dict[str, list[tuple[str, str]]]] = {
    # CompositionDefined 3.0.0 "12": ELEMENT links to three ArtifactReused
    "build-avoidance": {
        n("12"): [
            ("link-target-type", "links[1]"),
            ("link-target-type", "links[2]"),
            ("link-target-type", "links[3]"),
        ]
    },
    "confidence-level-joining": {},
    # TestCaseFinished "13"/"14": TEST_CASE_EXECUTION at the TestCaseStarted
    "delivery-interface": {
        n("13"): [("link-target-type", "links[0]")],
        n("14"): [("link-target-type", "links[0]")],
    },
}


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def _vendor_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("vendor_eiffel", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- every example event, out of the box ---------------------------------------


@needs_conformance
def test_there_are_36_examples_and_eiffellib_alone_knows_2() -> None:
    assert len(EXAMPLES) == 36
    old = Validator(vendored=False)
    ok = 0
    for path in EXAMPLES:
        with contextlib.suppress(InvalidEvent):
            old.validate(_load(path))
            ok += 1
    assert ok == 2  # what `boss event import` accepted before the shipped definitions


@needs_conformance
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_example_event_validates_with_the_default_configuration(path: Path) -> None:
    event = _load(path)
    assert default_validator().validate(event) == []
    # as `boss event import` and the aggregators build theirs, with no eiffel_definitions
    config = Config.load(None, environ={})
    assert config.eiffel_definitions == ""
    assert validator_for(config).validate(event) == []


@needs_conformance
@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.parent.name)
def test_flows_break_link_rules_warn_returns_them_strict_raises(path: Path) -> None:
    events = _load(path)
    types = {e["meta"]["id"]: e["meta"]["type"] for e in events}
    validator = Validator()
    found = {}
    for event in events:
        warnings = validator.validate(event, target_type=types.get, links="warn")
        if warnings:
            found[event["meta"]["id"]] = [(w.rule, w.path) for w in warnings]
            with pytest.raises(InvalidEvent) as info:
                validator.validate(event, target_type=types.get)
            assert info.value.rule == "link-target-type"
    assert found == FLOW_WARNINGS[path.parent.name]


def test_an_unknown_link_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="strict, warn"):
        Validator().validate({}, links="lenient")


def test_configured_definitions_come_first(tmp_path: Path) -> None:
    """``eiffel_definitions`` adds and overrides: a directory with its own
    ActivityFinished 4.1.1 wins over the shipped one."""
    own = tmp_path / "EiffelActivityFinishedEvent"
    own.mkdir()
    (own / "4.1.1.yml").write_text(
        "$schema: https://json-schema.org/draft/2020-12/schema#\n"
        "type: object\nrequired: [colour]\n",
        encoding="utf-8",
    )
    (own / "9.0.0.yml").write_text("type: object\n", encoding="utf-8")
    from engine.trace import eiffel as E

    ev = E.activity_finished("aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeee0", "SUCCESSFUL")
    ev["meta"]["version"] = "4.1.1"
    Validator().validate(ev)
    with pytest.raises(InvalidEvent) as info:
        Validator([tmp_path]).validate(ev)
    assert info.value.rule == "schema" and "colour" in info.value.message
    assert "9.0.0" in Validator([tmp_path]).known()[E.ACTIVITY_FINISHED]


# --- the vendored copy and its manifest ----------------------------------------


def test_the_vendored_files_match_the_manifest() -> None:
    assert _vendor_module().check(VENDORED) == []
    done = _script("--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "c177dfa5047f25a870095aa8b8c4cf747e15052b" in done.stdout


def test_the_manifest_pins_the_upstream_source() -> None:
    manifest = _load(VENDORED / "manifest.json")
    source = manifest["source"]
    assert source["repository"] == "https://github.com/eiffel-community/eiffel"
    assert len(source["commit"]) == 40 and source["commit"].startswith(source["ref"])
    assert source["newest_edition"] == "edition-orizaba"
    assert manifest["license"] == "Apache-2.0"
    assert "Apache License" in (VENDORED / "LICENSE").read_text(encoding="utf-8")
    assert (manifest["event_types"], manifest["event_versions"]) == (24, 222)
    events = {p.parent.name for p in VENDORED_DEFINITIONS.glob("Eiffel*Event/*.yml")}
    assert len(events) == 24


@pytest.mark.parametrize(
    "tamper",
    ["edit", "remove", "add"],
)
def test_a_tampered_copy_fails_the_check(tmp_path: Path, tamper: str) -> None:
    copy = tmp_path / "eiffel"
    shutil.copytree(VENDORED, copy)
    victim = copy / "definitions" / "EiffelActivityFinishedEvent" / "4.1.1.yml"
    if tamper == "edit":
        victim.write_bytes(victim.read_bytes().replace(b"- SUCCESSFUL", b"- SUCCESFUL", 1))
        expected = "MISMATCH definitions/EiffelActivityFinishedEvent/4.1.1.yml"
    elif tamper == "remove":
        victim.unlink()
        expected = "MISSING definitions/EiffelActivityFinishedEvent/4.1.1.yml"
    else:
        (victim.parent / "9.9.9.yml").write_text("type: object\n", encoding="utf-8")
        expected = "UNLISTED definitions/EiffelActivityFinishedEvent/9.9.9.yml"
    assert _vendor_module().check(copy) == [expected]
    done = _script("--check", "--target", str(copy))
    assert done.returncode == 1 and expected in done.stdout


def test_refresh_from_a_local_copy_writes_the_same_manifest(tmp_path: Path) -> None:
    """The refresh (``--from``, as the copy was made) reproduces the
    committed copy byte for byte; from git it differs only in fetching."""
    if not EIFFEL.is_dir():
        pytest.skip(f"no conformance copy at {EIFFEL}")
    manifest = _load(VENDORED / "manifest.json")
    out = tmp_path / "eiffel"
    done = _script(
        "--from",
        str(EIFFEL),
        "--ref",
        manifest["source"]["ref"],
        "--commit",
        manifest["source"]["commit"],
        "--target",
        str(out),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "manifest.json").read_bytes() == (VENDORED / "manifest.json").read_bytes()
    cmp = filecmp.dircmp(out, VENDORED)
    assert not cmp.left_only and not cmp.right_only


@needs_conformance
def test_the_vendored_definitions_are_the_protocols() -> None:
    shared = sorted(p.relative_to(EIFFEL).as_posix() for p in EIFFEL.glob("definitions/*/*.yml"))
    ours = sorted(p.relative_to(VENDORED).as_posix() for p in VENDORED.glob("definitions/*/*.yml"))
    assert ours == shared
    for name in [*ours, "LICENSE"]:
        assert (VENDORED / name).read_bytes() == (EIFFEL / name).read_bytes(), name


def test_links_json_is_derived_from_the_vendored_definitions() -> None:
    assert linkrules_gen.derive(VENDORED_DEFINITIONS) == expanded_table()


def test_the_package_data_ships_every_vendored_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["engine"]
    engine = ROOT / "engine"
    for path in VENDORED.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            name = path.relative_to(engine).as_posix()
            assert any(
                fnmatch.fnmatch(name, p) and name.count("/") == p.count("/") for p in patterns
            ), name


# --- importing the example flows -------------------------------------------------


@pytest.fixture(
    params=[
        pytest.param("valkey", marks=pytest.mark.redis),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def graph_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(
        "embedded_url" if request.param == "valkey" else "machine_redis_url"
    )


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> str:
    """The embedded broker, unless a test asks for RabbitMQ (indirect)."""
    name = getattr(request, "param", "embedded")
    return request.getfixturevalue("rabbitmq_url" if name == "rabbitmq" else "embedded_broker_url")


@pytest.fixture
def config(broker: str, graph_url: str) -> Iterator[Config]:
    """Queues, exchange and keys of this test alone, on the broker and the
    graph server; everything deleted afterwards."""
    p = f"eic{uuid.uuid4().hex[:8]}"
    cfg = Config.load(
        None,
        environ={},
        broker_url=broker,
        redis_url=graph_url,
        key_prefix=f"boss-test:{p}:",
        engine_queue=f"{p}.engine",
        deadletter_queue=f"{p}.deadletter",
        event_exchange=f"{p}.eiffel",
        trace_queue=f"{p}.trace",
        trace_deadletter_queue=f"{p}.trace.dead",
    )
    yield cfg
    client = redis.Redis.from_url(graph_url)
    delete_keys(client, cfg.key_prefix)
    client.close()
    with kombu.Connection(broker) as conn:
        channel = conn.channel()
        for q in (cfg.engine_queue, cfg.trace_queue, cfg.trace_deadletter_queue):
            with contextlib.suppress(Exception):
                channel.queue_delete(q)
        with contextlib.suppress(Exception):
            channel.exchange_delete(cfg.event_exchange)


@pytest.fixture
def ini(config: Config, tmp_path: Path) -> Path:
    path = tmp_path / "boss.ini"
    keys = (
        "broker_url",
        "redis_url",
        "key_prefix",
        "engine_queue",
        "deadletter_queue",
        "event_exchange",
        "trace_queue",
        "trace_deadletter_queue",
    )
    path.write_text(
        "[boss]\n" + "".join(f"{k} = {getattr(config, k)}\n" for k in keys), encoding="utf-8"
    )
    return path


@pytest.fixture
def graph(config: Config) -> Iterator[Graph]:
    client = redis.Redis.from_url(config.redis_url)
    yield Graph(client, prefix=graph_prefix(config))
    client.close()


@pytest.fixture
def aggregator(config: Config, graph: Graph) -> Iterator[EventAggregator]:
    agg = EventAggregator(config, graph, batch_size=50, linger=0.02)
    t = threading.Thread(target=agg.run_forever, daemon=True)
    t.start()
    yield agg
    agg.should_stop = True
    t.join(10)
    agg.close()


def boss(ini: Path, *args: str) -> Result:
    """``boss -c INI ARGS`` in this process, with no BOSS_* variable of the
    environment getting in the way."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BOSS_")}
    return CliRunner().invoke(main, ["-c", str(ini), *args], env=unset)


@needs_conformance
@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.parent.name)
def test_every_flow_imports_and_boss_trace_shows_the_warnings(
    path: Path, ini: Path, graph: Graph, aggregator: EventAggregator
) -> None:
    flow = path.parent.name
    expected = FLOW_WARNINGS[flow]
    events = _load(path)
    done = boss(ini, "event", "import", str(path))
    assert done.exit_code == 0, done.output
    assert f"{len(events)} events published" in done.output
    for eid in expected:
        assert f"({eid}): warning: link-target-type" in done.output
    ids = [e["meta"]["id"] for e in events]
    wait_for(lambda: graph.count() == len(events), 20, f"the {len(events)} events of {flow}")
    assert all(graph.exists(i) for i in ids)
    wait_for(lambda: graph.warned_count() == len(expected), 10, "the warnings recorded")
    # counted once the warnings are stored, on the aggregator's thread
    wait_for(lambda: aggregator.stats.warned == len(expected), 10, "the warnings counted")
    assert aggregator.stats.invalid == 0

    listed = boss(ini, "trace", "warnings", "--json")
    assert listed.exit_code == 0, listed.output
    got = {
        eid: [(w["rule"], w["path"]) for w in ws] for eid, ws in json.loads(listed.output).items()
    }
    assert got == expected
    for eid, rules in expected.items():
        shown = boss(ini, "trace", "show", eid)
        assert shown.exit_code == 0, shown.output
        assert shown.output.count("warning: link-target-type at links[") == len(rules)
        as_json = json.loads(boss(ini, "trace", "show", eid, "--json").output)
        assert as_json["event"] == next(e for e in events if e["meta"]["id"] == eid)
        assert [w["rule"] for w in as_json["warnings"]] == ["link-target-type"] * len(rules)
        # the event itself stays the protocol's: no warnings in it
        assert json.loads(boss(ini, "trace", "get", eid).output) == as_json["event"]
    clean = next(i for i in ids if i not in expected)
    assert "warning" not in boss(ini, "trace", "show", clean).output
    stats = json.loads(boss(ini, "trace", "stats", "--json").output)
    assert stats["events"] == len(events) and stats["warned"] == len(expected)


@needs_conformance
@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.parent.name)
def test_links_strict_refuses_the_offending_flows_naming_the_rule(
    path: Path, ini: Path, graph: Graph
) -> None:
    flow = path.parent.name
    done = boss(ini, "event", "import", "--links", "strict", str(path))
    if not FLOW_WARNINGS[flow]:
        assert done.exit_code == 0, done.output
        return
    assert done.exit_code == 1
    assert "link-target-type" in done.output
    first = next(iter(FLOW_WARNINGS[flow]))
    assert f"({first}): link-target-type" in done.output
    assert "published" not in done.output


@needs_conformance
@pytest.mark.parametrize(
    "broker", ["embedded", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)], indirect=True
)
def test_the_aggregator_applies_the_policy_to_targets_already_in_the_graph(
    tmp_path: Path, ini: Path, graph: Graph, aggregator: EventAggregator
) -> None:
    """Split so that the offending TestCaseFinished events come in a later
    file than the TestCaseStarted they point at: the command cannot see the
    target's type, the aggregator looks it up in the graph. Imported (warn:
    the message's header says so, on both brokers), one is stored with the
    warning; the other published strictly (as BOSS's own producers publish)
    is dead-lettered naming the rule."""
    events = _load(EIFFEL / "examples" / "flows" / "delivery-interface" / "events.json")
    late = [n("13"), n("14")]
    first = tmp_path / "first.json"
    first.write_text(json.dumps([e for e in events if e["meta"]["id"] not in late]))
    second = tmp_path / "second.json"
    second.write_text(json.dumps([e for e in events if e["meta"]["id"] == late[0]]))
    assert boss(ini, "event", "import", str(first)).exit_code == 0
    wait_for(lambda: graph.count() == len(events) - 2, 20, "the first file stored")
    done = boss(ini, "event", "import", str(second))
    assert done.exit_code == 0 and "warning" not in done.output  # not known to the command
    wait_for(lambda: graph.exists(late[0]), 20, "the imported TestCaseFinished stored")
    wait_for(lambda: graph.warnings(late[0]), 10, "its warning recorded")
    assert [w["rule"] for w in graph.warnings(late[0])] == ["link-target-type"]

    from engine.broker import list_deadletters
    from engine.trace.bus import EventBus, TraceTopology

    config = aggregator.config
    bus = EventBus(config)
    try:
        bus.publish(next(e for e in events if e["meta"]["id"] == late[1]))  # strict
    finally:
        bus.close()
    with kombu.Connection(config.broker_url) as conn:
        letters = wait_for(
            lambda: list_deadletters(TraceTopology(config).deadletter_config, conn),
            20,
            "the strict one dead-lettered",
        )
    assert letters[0]["reason"].startswith("link-target-type:")
    assert not graph.exists(late[1])
