"""Traceability end to end: engine workers and participants as processes
on a real broker; the workers' aggregators write every transition and every
event the participants produce into the graph, and the graph answers."""

from __future__ import annotations

import itertools
from typing import Any

from engine.trace import eiffel
from engine.trace.activity import activity_id
from engine.trace.aggregator import graph_prefix
from engine.trace.bus import EventBus
from engine.trace.graph import Graph
from engine.trace.metrics import lead_time
from engine.trace.queries import trace_up
from tests.e2e.conftest import System
from tests.waiting import wait_for

PIPELINE = """
name: change-to-rc
steps:
  - build
  - verify:
      level: tested
  - soak:
      seconds: "${soak}"
  - verify:
      level: released
"""


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["meta"]["type"].removeprefix("Eiffel").removesuffix("Event") for e in events]


def test_one_change_two_runs_traced_to_both_confidence_levels_one_cancelled(system: System):
    system.worker()
    system.participant("build", "Build")
    system.participant("verify", "Verify")
    system.participant("soak", "Sleeper", instances=2)
    graph = Graph(system.store.client, prefix=graph_prefix(system.config))
    # the change, as a VCS launcher or `boss event` would publish it
    scc = eiffel.source_change_created(
        commit="c0ffee" * 6 + "abcd", repo_uri="https://git.example/app.git"
    )
    scs = eiffel.source_change_submitted(
        scc["meta"]["id"], commit="c0ffee" * 6 + "abcd", repo_uri="https://git.example/app.git"
    )
    bus = EventBus(system.config)
    bus.publish([scc, scs])
    bus.close()
    change = scs["meta"]["id"]
    wait_for(lambda: graph.exists(change), 20, "the change in the graph")

    # the launch items name the change as their cause
    quick = f"{system.prefix}-quick"
    slow = f"{system.prefix}-slow"
    for wfid, soak in ((quick, 0.2), (slow, 60)):
        system.publisher.send(
            {
                "definition": PIPELINE,
                "wfid": wfid,
                "cause": [change],
                "fields": {"change": change, "soak": soak},
            }
        )
    system.wait_status(quick)
    # the slow one is soaking (its participant took a lease: the step has
    # started): cancel it mid-way
    slow_act = activity_id(slow, None, "triggered")

    def soak_started() -> bool:
        events = graph.chain(slow_act)
        soaks = {e["meta"]["id"] for e in events if e["data"].get("name") == "soak"}
        return any(
            e["meta"]["type"] == "EiffelActivityStartedEvent" and e["links"][0]["target"] in soaks
            for e in events
        )

    wait_for(soak_started, 30, "the slow run's soak step started")
    system.publisher.send({"type": "cancel", "wfid": slow})  # as `boss cancel` does
    system.wait_status(slow, "cancelled")

    quick_act = activity_id(quick, None, "triggered")
    try:
        wait_for(
            lambda: (
                graph.exists(activity_id(slow, None, "finished"))
                and graph.exists(activity_id(quick, None, "finished"))
            ),
            20,
            "both runs' ends in the graph",
        )
    except AssertionError:
        raise AssertionError(
            f"graph: {graph.stats()}; slow: {_types(graph.chain(slow_act))}"
            f"; quick: {_types(graph.chain(quick_act))}"
        ) from None
    # each run's activity was caused by the change
    for act in (quick_act, slow_act):
        assert ("CAUSE", change) in graph.links_out(act)

    # trace up from the change: both runs' artifacts, the confidence levels
    up = trace_up(graph, change)
    groups = up if isinstance(up, dict) else up.as_dict()
    levels = sorted((e["data"]["name"], e["data"]["value"]) for e in groups["confidence_levels"])
    assert levels == [("released", "SUCCESS"), ("tested", "SUCCESS"), ("tested", "SUCCESS")]
    identities = sorted(e["data"]["identity"] for e in groups["artifacts"])
    assert identities == sorted(f"pkg:generic/change-to-rc@{w}" for w in (quick, slow))

    # the cancelled run: its soak step had started (the participant took a
    # lease), so it finished ABORTED; so did the run
    slow_events = graph.chain(slow_act)
    finished = {
        e["links"][0]["target"]: e["data"]["outcome"]["conclusion"]
        for e in slow_events
        if e["meta"]["type"] == "EiffelActivityFinishedEvent"
    }
    assert finished[slow_act] == "ABORTED"
    soak_acts = [
        e["meta"]["id"]
        for e in slow_events
        if e["meta"]["type"] == "EiffelActivityTriggeredEvent" and e["data"]["name"] == "soak"
    ]
    assert [finished[a] for a in soak_acts] == ["ABORTED"]
    # and the quick run went all the way, its steps in order
    quick_events = graph.chain(quick_act)
    steps = [
        e
        for e in quick_events
        if e["meta"]["type"] == "EiffelActivityTriggeredEvent" and e["meta"]["id"] != quick_act
    ]
    assert [e["data"]["name"] for e in steps] == ["build", "verify", "soak", "verify"]
    # each linked to the one before it
    for before, after in itertools.pairwise(steps):
        assert ("PRECURSOR", before["meta"]["id"]) in [
            (x["type"], x["target"]) for x in after["links"]
        ]
    assert set(_types(quick_events)) >= {
        "ActivityTriggered",
        "ActivityStarted",
        "ActivityFinished",
        "CompositionDefined",
        "ArtifactCreated",
        "ConfidenceLevelModified",
    }
    # lead time from the change to "released": from the graph's own times
    released = next(e for e in groups["confidence_levels"] if e["data"]["name"] == "released")
    expected = (released["meta"]["time"] - scs["meta"]["time"]) / 1000
    assert lead_time(graph, change, "released") == expected
    assert lead_time(graph, change, "no-such-level") is None


HELLO = """
name: on-artifact
steps:
  - verify:
      level: smoke
"""


def test_boss_event_trigger_and_trace_commands(system: System):
    """`boss event publish` produces, a trigger launches a process with the
    event as its cause, and `boss trace` answers about what happened."""
    system.worker()
    system.participant("verify", "Verify")
    (system.tmp / "processes" / "on-artifact.yaml").write_text(HELLO)
    system.boss(
        "triggers",
        "add",
        "smoke-rpms",
        "--process",
        "on-artifact",
        "--type",
        "ArtifactCreated",
        "--data",
        "identity=~^pkg:rpm/",
    )
    listed = system.boss("triggers", "list", "--json").stdout
    assert '"smoke-rpms"' in listed
    art = system.boss(
        "event", "publish", "ArtifactCreated", "-d", "identity=pkg:rpm/mer/bash@5.2"
    ).stdout.strip()
    # the trigger's run: its activity names the artifact as its cause
    wfid = f"smoke-rpms-{art}"
    system.wait_status(wfid)
    graph = Graph(system.store.client, prefix=graph_prefix(system.config))
    run_act = activity_id(wfid, None, "triggered")
    wait_for(
        lambda: graph.exists(activity_id(wfid, None, "finished")),
        20,
        "the triggered run's end in the graph",
    )
    assert ("CAUSE", art) in graph.links_out(run_act)
    # the run's verify step gave the artifact a confidence level (it read
    # the artifact's id from the event the trigger passed in the fields)
    down = system.boss("trace", "downstream", art, "--json").stdout
    assert "smoke" in down and "EiffelConfidenceLevelModifiedEvent" in down
    up = system.boss("trace", "upstream", run_act, "-l", "CAUSE").stdout
    assert art in up and "ArtifactCreated" in up
    run_listing = system.boss("trace", "run", wfid).stdout
    assert run_listing.count("ActivityTriggered") == 2  # the run and its step
    # a bad event is refused by the command itself, naming the rule
    bad = system.boss(
        "event",
        "publish",
        "ConfidenceLevelModified",
        "-d",
        "name=x",
        "-d",
        "value=SUCCESS",
        check=False,
    )
    assert bad.returncode == 1 and "link-required" in bad.stderr
    exported = system.boss(
        "trace", "export", "--run", wfid, "--format", "cdevents", "--cloudevents"
    ).stdout
    assert "dev.cdevents.pipelinerun.finished" in exported
    stats = system.boss("trace", "stats", "--json").stdout
    assert '"waiting": 0' in stats
