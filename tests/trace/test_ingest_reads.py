"""What a batch of ``ingest_bodies`` reads besides writing the graph: the
triggers once a batch (not once an event), and no link target whose type
the aggregator already knows (an event it stored: ``known``)."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from engine import wire
from engine.trace import eiffel
from engine.trace.aggregator import KNOWN_TYPES, ingest_bodies
from engine.trace.graph import Graph
from engine.trace.triggers import TriggerStore
from engine.trace.validate import Validator
from tests.conftest import delete_keys


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    prefix = f"ingest{uuid.uuid4().hex[:8]}:"
    c.boss_prefix = prefix  # type: ignore[attr-defined]
    yield c
    delete_keys(c, prefix)
    c.close()


class Counting(Graph):
    """The graph, counting the reads of link targets' types."""

    looked_up: list[list[str]]

    def get_many(self, ids: list[str]) -> list[dict[str, Any] | None]:
        self.looked_up.append(list(ids))
        return super().get_many(ids)


def test_a_batch_reads_the_triggers_once_and_no_target_it_knows(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = client.boss_prefix  # type: ignore[attr-defined]
    graph = Counting(client, prefix=f"{prefix}graph:")
    graph.looked_up = []
    triggers = TriggerStore(client, prefix)
    reads: list[int] = []
    real_all = triggers.all
    monkeypatch.setattr(triggers, "all", lambda: reads.append(1) or real_all())
    known: OrderedDict[str, str] = OrderedDict()
    validator = Validator([])

    def batch(events: list[dict[str, Any]]) -> None:
        ingest_bodies(
            [wire.dumps(events)],
            graph=graph,
            validator=validator,
            deadletter=lambda body, reason: pytest.fail(reason),
            triggers=triggers,
            launch=lambda item: None,
            known=known,
        )

    triggered = eiffel.activity_triggered("step")
    started = eiffel.activity_started(triggered["meta"]["id"])
    batch([triggered, started])  # the target in the same batch
    assert graph.looked_up == [] and len(reads) == 1
    finished = eiffel.activity_finished(triggered["meta"]["id"], "SUCCESSFUL")
    batch([finished])  # a target this aggregator stored: no read
    assert graph.looked_up == [] and len(reads) == 2
    assert known[triggered["meta"]["id"]] == eiffel.ACTIVITY_TRIGGERED

    other = Counting(client, prefix=f"{prefix}graph:")  # another aggregator
    other.looked_up = []
    fresh: OrderedDict[str, str] = OrderedDict()
    ingest_bodies(
        [wire.dumps(eiffel.activity_finished(triggered["meta"]["id"], "FAILED"))],
        graph=other,
        validator=validator,
        deadletter=lambda body, reason: pytest.fail(reason),
        known=fresh,
    )
    assert other.looked_up == [[triggered["meta"]["id"]]]  # read once...
    assert fresh[triggered["meta"]["id"]] == eiffel.ACTIVITY_TRIGGERED  # ...and known since
    assert 3 <= len(known) <= KNOWN_TYPES
