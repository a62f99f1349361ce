"""The traceability bus: Eiffel events on a topic exchange of the broker.

Producers (engine workers, participants, ``boss event``, the HTTP endpoint)
publish; the aggregators (``engine/trace/aggregator.py``) consume the
durable ``trace_queue`` and write the graph. Routing keys follow Eiffel's
convention ``eiffel.<family>.<type>.<tag>.<domain>`` with ``_`` for the
parts BOSS does not use: ``eiffel._.EiffelArtifactCreatedEvent._.boss``.
A body is one event (a JSON object) or a batch (a JSON array, routing key
``eiffel._.batch._.<domain>``): an engine worker publishes the events of
one handled message as one batch, so one broker confirmation covers them.

A message may carry the header ``x-boss-links: warn`` (``LINKS_HEADER``):
its events were imported (``boss event import``, whose default link
policy is ``warn``), and the aggregator stores those that break only a link
rule, recording the broken rules in the graph; without it every rule is
strict, which is what BOSS's own events get.

The queue and its binding are declared by every publisher, so events
published before any aggregator ever ran wait on the queue instead of
being dropped by an exchange without bindings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kombu import Exchange, Queue

from engine import wire
from engine.broker import Publisher
from engine.config import Config

__all__ = ["LINKS_HEADER", "EventBus", "TraceTopology", "link_policy", "routing_key"]

#: the message header naming a link policy other than ``strict``
LINKS_HEADER = "x-boss-links"


def link_policy(headers: dict[str, Any] | None) -> str:
    """The link policy a message's headers ask for: ``warn`` or ``strict``
    (anything else, or none, is strict)."""
    value = (headers or {}).get(LINKS_HEADER)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return "warn" if value == "warn" else "strict"


def routing_key(event_type: str, domain: str = "_") -> str:
    return f"eiffel._.{event_type}._.{domain or '_'}"


@dataclass(frozen=True)
class TraceTopology:
    config: Config

    @property
    def exchange(self) -> Exchange:
        return Exchange(self.config.event_exchange, type="topic", durable=True)

    @property
    def queue(self) -> Queue:
        return Queue(
            self.config.trace_queue,
            exchange=self.exchange,
            routing_key="eiffel.#",
            durable=True,
            auto_delete=False,
        )

    @property
    def deadletter_config(self) -> Config:
        """A configuration whose dead-letter queue is the trace one (for the
        dead-letter browse, reinject and drop of ``engine.broker``)."""
        return self.config.replace(deadletter_queue=self.config.trace_deadletter_queue)


class EventBus:
    """Publishes Eiffel events (on its own ``Publisher`` unless given one)."""

    def __init__(self, config: Config, publisher: Publisher | None = None) -> None:
        self.config = config
        self.topology = TraceTopology(config)
        self._own = publisher is None
        self.publisher = publisher if publisher is not None else Publisher(config)
        self._bound = False

    def close(self) -> None:
        if self._own:
            self.publisher.close()

    def _ensure_bound(self) -> None:
        if self._bound:
            return
        producer = self.publisher.producer
        self.topology.queue(producer.channel).declare()
        self._bound = True

    def publish(
        self, events: list[dict[str, Any]] | dict[str, Any], *, links: str = "strict"
    ) -> None:
        """Publish one event, or several as one batch message. ``links="warn"``
        marks them imported: a broken link rule is recorded, not refused."""
        if isinstance(events, dict):
            events = [events]
        if not events:
            return
        self._ensure_bound()
        domain = self.config.eiffel_domain
        if len(events) == 1:
            body: Any = events[0]
            key = routing_key(str(events[0].get("meta", {}).get("type", "_")), domain)
        else:
            body, key = events, routing_key("batch", domain)
        try:
            self.publisher.publish(
                wire.dumps(body),
                exchange=self.topology.exchange,
                routing_key=key,
                headers={LINKS_HEADER: "warn"} if links == "warn" else None,
            )
        except Exception:
            self._bound = False  # a new connection may need the binding again
            raise

    def publish_raw(self, body: bytes, routing_key_: str = "eiffel._.raw._._") -> None:
        """Publish a body as it is (the HTTP endpoint and ``boss event``
        hand on what they were given; the aggregator validates it)."""
        self._ensure_bound()
        self.publisher.publish(body, exchange=self.topology.exchange, routing_key=routing_key_)
