"""The aggregator on a real broker (RabbitMQ and the embedded Valkey) and a
real Redis: events published on the bus reach the graph once, invalid ones
are dead-lettered with the rule they break, and triggers launch processes."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import kombu
import pytest
import redis

from engine import wire
from engine.broker import list_deadletters, participant_queue
from engine.config import Config
from engine.trace import eiffel
from engine.trace.aggregator import EventAggregator, graph_prefix
from engine.trace.bus import EventBus, TraceTopology
from engine.trace.graph import Graph
from engine.trace.triggers import Trigger, TriggerStore
from tests.conftest import delete_keys
from tests.waiting import wait_for


@pytest.fixture
def config(broker_url: str, redis_url: str) -> Iterator[Config]:
    p = f"agg{uuid.uuid4().hex[:8]}"
    cfg = Config.load(
        None,
        environ={},
        broker_url=broker_url,
        redis_url=redis_url,
        key_prefix=f"{p}:",
        engine_queue=f"{p}.engine",
        deadletter_queue=f"{p}.deadletter",
        event_exchange=f"{p}.eiffel",
        trace_queue=f"{p}.trace",
        trace_deadletter_queue=f"{p}.trace.dead",
    )
    yield cfg
    client = redis.Redis.from_url(redis_url)
    delete_keys(client, cfg.key_prefix)
    client.close()
    with kombu.Connection(broker_url) as conn:
        channel = conn.channel()
        for q in (cfg.engine_queue, cfg.trace_queue, cfg.trace_deadletter_queue):
            with contextlib.suppress(Exception):
                channel.queue_delete(q)
        with contextlib.suppress(Exception):
            channel.exchange_delete(cfg.event_exchange)


@pytest.fixture
def client(config: Config) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(config.redis_url)
    yield c
    c.close()


@pytest.fixture
def graph(config: Config, client: redis.Redis) -> Graph:
    return Graph(client, prefix=graph_prefix(config))


@pytest.fixture
def running(config: Config, graph: Graph, client: redis.Redis) -> Iterator[EventAggregator]:
    agg = EventAggregator(
        config, graph, triggers=TriggerStore(client, config.key_prefix), batch_size=50, linger=0.02
    )
    t = threading.Thread(target=agg.run_forever, daemon=True)
    t.start()
    yield agg
    agg.should_stop = True
    t.join(10)
    agg.close()


def a_change() -> list[dict[str, Any]]:
    scc = eiffel.source_change_created(commit="0" * 40, repo_uri="https://git.example/a.git")
    scs = eiffel.source_change_submitted(
        scc["meta"]["id"], commit="0" * 40, repo_uri="https://git.example/a.git"
    )
    return [scc, scs]


def test_events_reach_the_graph_once_and_bad_ones_are_set_aside(config, graph, running):
    bus = EventBus(config)
    try:
        change = a_change()
        art = eiffel.artifact_created("pkg:generic/demo@1.0")
        bus.publish(change)  # a batch
        bus.publish(art)  # one
        bus.publish(art)  # the same again
        bad_id = eiffel.artifact_created("pkg:generic/demo@2.0")
        bad_id["meta"]["id"] = bad_id["meta"]["id"].upper()
        bad_link = eiffel.confidence_level_modified("tested", "SUCCESS", [art["meta"]["id"]])
        bad_link["links"] = []  # a confidence level about nothing: SUBJECT is required
        bus.publish([bad_id, bad_link])
        bus.publish_raw(b"{not json")
        ids = [e["meta"]["id"] for e in [*change, art]]
        wait_for(lambda: all(graph.exists(i) for i in ids), 20, "the valid events stored")
        topo = TraceTopology(config)
        with kombu.Connection(config.broker_url) as conn:
            letters = wait_for(
                lambda: (lambda x: len(x) >= 3 and x)(
                    list_deadletters(topo.deadletter_config, conn)
                ),
                20,
                "three dead letters",
            )
        reasons = sorted(x["reason"].split(":", 1)[0] for x in letters)
        assert reasons == ["id-format", "json", "link-required"]
        wait_for(lambda: running.stats.duplicates >= 1, 10, "the duplicate counted")
        assert graph.count("EiffelArtifactCreatedEvent") == 1
        stored = graph.get(art["meta"]["id"])
        assert stored["data"]["identity"] == "pkg:generic/demo@1.0"
        # the CHANGE link of the submitted change points at the created one
        out = graph.links_out(change[1]["meta"]["id"])
        assert ("CHANGE", change[0]["meta"]["id"]) in [tuple(x) for x in out]
    finally:
        bus.close()


def test_a_matching_event_launches_the_triggers_process_once(config, client, running):
    TriggerStore(client, config.key_prefix).put(
        Trigger(
            "rpm-built",
            "test-rpm",
            ["ArtifactCreated"],
            {"identity": "~^pkg:rpm/"},
            fields={"suite": "smoke"},
        )
    )
    bus = EventBus(config)
    try:
        rpm = eiffel.artifact_created("pkg:rpm/mer/bash@5.2")
        other = eiffel.artifact_created("pkg:generic/zip@1")
        bus.publish(other)
        bus.publish(rpm)
        bus.publish(rpm)  # delivered twice: the same launch item, same wfid
        with kombu.Connection(config.broker_url) as conn:
            q = participant_queue(config.engine_queue)(conn.channel())
            q.declare()
            items: list[dict[str, Any]] = []

            def launched() -> bool:
                while (m := q.get(no_ack=True)) is not None:
                    items.append(wire.decode(m.body))
                return len(items) >= 2

            wait_for(launched, 20, "the trigger's launches")
        assert {i["wfid"] for i in items} == {f"rpm-built-{rpm['meta']['id']}"}
        item = items[0]
        assert item["process"] == "test-rpm"
        assert item["cause"] == [rpm["meta"]["id"]]
        assert item["fields"]["suite"] == "smoke"
        assert item["fields"]["event"]["meta"]["id"] == rpm["meta"]["id"]
        wire.validate("launch", item)
    finally:
        bus.close()


def test_the_graph_down_puts_the_batch_back_and_it_is_stored_later(config, client):
    """A batch the graph could not take goes back to the queue (nothing is
    acknowledged before it is stored)."""

    class Flaky(Graph):
        fail = True

        def ingest(self, events):  # type: ignore[override]
            if Flaky.fail:
                Flaky.fail = False
                raise redis.ConnectionError("store is down")
            return super().ingest(events)

    graph = Flaky(client, prefix=graph_prefix(config))
    agg = EventAggregator(config, graph, batch_size=10, linger=0.02)
    t = threading.Thread(target=agg.run_forever, daemon=True)
    t.start()
    bus = EventBus(config)
    try:
        events = a_change()
        bus.publish(events)
        wait_for(
            lambda: all(graph.exists(e["meta"]["id"]) for e in events),
            20,
            "the batch stored on the second try",
        )
        assert agg.stats.retries == 1
    finally:
        agg.should_stop = True
        t.join(10)
        agg.close()
        bus.close()


def test_publisher_declares_the_queue_so_events_wait_for_an_aggregator(config, graph):
    bus = EventBus(config)
    try:
        events = a_change()
        bus.publish(events)  # no aggregator is running yet
    finally:
        bus.close()
    agg = EventAggregator(config, graph, batch_size=10, linger=0.02)
    t = threading.Thread(target=agg.run_forever, daemon=True)
    t.start()
    try:
        wait_for(
            lambda: all(graph.exists(e["meta"]["id"]) for e in events),
            20,
            "the events that waited on the queue",
        )
    finally:
        agg.should_stop = True
        t.join(10)
        agg.close()
