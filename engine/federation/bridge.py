"""The federation bridge: this site's Eiffel events out to its peers as
CloudEvents over HTTP, and the peers' events in (``boss federate serve``).

Out (one :class:`Sender` thread per peer with a ``url``): a durable queue
of its own, ``<queue_prefix>.<peer>``, bound to the trace exchange like the
aggregators' queue, so while the peer (or this bridge) is down its events
wait there. A batch of messages is read (``batch`` events or ``linger``
seconds), its events kept if they are this site's own (``meta.source.domainId``
this site's name; an event without one is stamped with it: events of other
domains, the peers' among them, are never passed on) and pass the peer's
``publish`` filter, then POSTed as CloudEvents (structured batch, or one
binary-mode request per event); the messages are acknowledged only after
the peer answered 2xx (or 400: it refused the request and dead-lettered it
on its side). Anything else (no answer, 401, 5xx) is tried again with
back-off (``retry_initial`` doubling up to ``retry_max``): a peer that is
unreachable delays delivery, never loses it.

In (:func:`create_app`, ``POST /federation/v1/events``): the sender names
itself (``X-Boss-Site``) and proves it (``X-Boss-Signature: sha256=<HMAC
of the body>`` with the peer's ``secret``, and/or ``Authorization: Bearer
<token>``); then each event must claim the peer's domain (a peer cannot
forge another site's events), pass the peer's ``accept`` filter, the
Eiffel schema and the link rules (strict: the link targets' types looked
up in the request, then in this site's graph). Accepted events are
published as one batch on this site's trace exchange (routing key domain:
the peer's) for the aggregators, which store them idempotently: a
redelivered event is stored once. Each refused event (or a whole request
from an unknown site or with a bad signature) goes to the trace
dead-letter queue with ``<rule>: <reason>``; the rules are
``federation-site``, ``federation-auth``, ``federation-json``,
``federation-envelope``, ``federation-cdevent``, ``federation-domain``,
``federation-accept``, ``federation-overwrite`` (an id this site already
holds as another domain's event), ``federation-signature`` and the
validator's own (``schema``, ``link-*``, ...).

Signatures (Eiffel's own ``meta.security.integrityProtection``,
``engine/trace/signing.py``): with a ``signing_key``, the sender signs
each Eiffel event it sends (after stamping its domain, before wrapping it
in a CloudEvent), so the signature travels with the event into the peer's
graph. A peer with a ``public_key`` has its events verified on arrival,
each on its own: one that is not signed (when ``require_signature``), is
signed with another key (its ``publicKey`` is not the configured one) or
was changed after signing is refused (``federation-signature: <what
failed>``) and the rest of the request is taken. A CDEvent is not an
Eiffel event and carries no ``meta.security``: it is sent as it came, and
refused from a peer that requires signatures.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kombu
from flask import Flask, Response, jsonify, request
from kombu import Exchange, Queue

from engine import wire
from engine.broker import Publisher, connect
from engine.config import Config
from engine.federation.settings import FederationSettings, PeerFilter, PeerSettings

__all__ = [
    "BATCH_CONTENT_TYPE",
    "STRUCTURED_CONTENT_TYPE",
    "FederationBridge",
    "Inbound",
    "Receiver",
    "Sender",
    "SenderStats",
    "create_app",
    "event_domain",
    "sign",
    "verify",
]

log = logging.getLogger("boss.federation")

PATH = "/federation/v1/events"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
SITE_HEADER = "X-Boss-Site"
SIGNATURE_HEADER = "X-Boss-Signature"
#: the CloudEvents attributes carried as ``ce-*`` headers in binary mode
_BINARY_ATTRS = ("specversion", "id", "source", "type", "time", "eiffelversion", "dataschema")


def sign(secret: str, body: bytes) -> str:
    """The ``X-Boss-Signature`` value of ``body``: ``sha256=<hex HMAC>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` is ``body``'s under ``secret`` (constant time)."""
    return bool(signature) and hmac.compare_digest(sign(secret, body), str(signature))


def event_domain(event: Any) -> str | None:
    """An Eiffel event's ``meta.source.domainId`` (None when it has none)."""
    if not isinstance(event, dict):
        return None
    meta = event.get("meta")
    source = meta.get("source") if isinstance(meta, dict) else None
    domain = source.get("domainId") if isinstance(source, dict) else None
    return domain if isinstance(domain, str) else None


def _stamp(event: dict[str, Any], domain: str) -> dict[str, Any]:
    """``event`` with ``meta.source.domainId`` set to ``domain`` if it had none."""
    if event_domain(event) is not None:
        return event
    meta = dict(event.get("meta") or {})
    meta["source"] = {**(meta.get("source") or {}), "domainId": domain}
    return {**event, "meta": meta}


def _matcher(flt: PeerFilter, name: str) -> Callable[[dict[str, Any]], bool]:
    """The predicate of a filter (always true when it is empty)."""
    if flt.empty:
        return lambda _ev: True
    from engine.trace import Trigger, trigger_matches

    trigger = Trigger(
        id=name[:64],
        process="-",
        type=list(flt.type),
        data=dict(flt.data),
        links=dict(flt.links),
    )
    return lambda ev: trigger_matches(trigger, ev)


class _Deadletters:
    """Dead-letters to the trace dead-letter queue (thread-safe)."""

    def __init__(self, config: Config, by: str) -> None:
        from engine.trace import TraceTopology

        self.config = config
        self.topology = TraceTopology(config)
        self.by = by
        self._publisher: Publisher | None = None
        self._lock = threading.Lock()

    def __call__(self, body: bytes | str, reason: str) -> None:
        log.warning("federation: dead-lettered: %s", reason.splitlines()[0])
        record = wire.deadletter(
            body,
            reason,
            self.config.trace_queue,
            by=self.by,
            content_type="application/json",
        )
        with self._lock:
            if self._publisher is None:
                self._publisher = Publisher(self.topology.deadletter_config)
            self._publisher.deadletter(record)

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()


# -- in -----------------------------------------------------------------------------------


@dataclass
class InboundStats:
    requests: int = 0
    accepted: int = 0
    rejected: int = 0
    refused_requests: int = 0


class Inbound:
    """What the endpoint does with one request (no Flask in here: the
    headers as a case-insensitive mapping, the body as bytes)."""

    def __init__(
        self,
        config: Config,
        settings: FederationSettings,
        *,
        graph: Any = None,
        bus: Any = None,
    ) -> None:
        from engine.trace import validator_for

        self.config = config
        self.settings = settings
        self.site = settings.site_name(config)
        self.validator = validator_for(config)
        self._graph = graph
        self._bus = bus
        self._bus_lock = threading.Lock()
        self.deadletter = _Deadletters(config, f"federation bridge of {self.site}")
        self.stats = InboundStats()
        self._accept = {
            p.name: _matcher(p.accept, f"federation-accept-{p.name}")
            for p in settings.peer_settings
        }
        self._verifiers = {p.name: p.verifier() for p in settings.peer_settings}

    @property
    def graph(self) -> Any:
        if self._graph is None:
            from engine.store.connection import client_for
            from engine.trace import Graph, graph_prefix

            client = client_for(self.config.resolved_redis_url())[0]
            self._graph = Graph(client, prefix=graph_prefix(self.config))
        return self._graph

    @property
    def bus(self) -> Any:
        if self._bus is None:
            from engine.trace import EventBus

            self._bus = EventBus(self.config)
        return self._bus

    def close(self) -> None:
        self.deadletter.close()
        if self._bus is not None:
            self._bus.close()

    # -- the request ---------------------------------------------------------------
    def _refuse(self, status: int, body: bytes, rule: str, message: str) -> tuple[int, dict]:
        self.stats.refused_requests += 1
        self.deadletter(body, f"{rule}: {message}")
        return status, {"error": message, "rule": rule}

    def handle(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        """``(status, answer)`` for one request (see the module docstring)."""
        self.stats.requests += 1
        name = headers.get(SITE_HEADER) or ""
        peer = self.settings.peer(name)
        if peer is None:
            return self._refuse(
                403,
                body,
                "federation-site",
                f"{name or 'a request without ' + SITE_HEADER}: not a peer of site {self.site}",
            )
        why = self._authenticate(peer, headers, body)
        if why:
            return self._refuse(401, body, "federation-auth", f"from peer {peer.name}: {why}")
        try:
            items = self._items(headers, body)
        except ValueError as exc:
            return self._refuse(400, body, "federation-json", f"from peer {peer.name}: {exc}")
        accepted, rejected = self.admit(peer, items)
        if accepted:
            from engine.trace import routing_key

            with self._bus_lock:
                try:
                    self.bus.publish_raw(
                        wire.dumps(accepted), routing_key("batch", peer.site_domain)
                    )
                except Exception as exc:  # the broker: the sender tries again
                    log.exception("federation: could not publish %d event(s)", len(accepted))
                    return 503, {"error": f"could not publish on this site's bus: {exc}"}
        self.stats.accepted += len(accepted)
        self.stats.rejected += len(rejected)
        return 200, {
            "site": self.site,
            "accepted": [e["meta"]["id"] for e in accepted],
            "rejected": rejected,
        }

    def _authenticate(self, peer: PeerSettings, headers: Any, body: bytes) -> str | None:
        if peer.secret and not verify(peer.secret, body, headers.get(SIGNATURE_HEADER)):
            return f"bad or missing {SIGNATURE_HEADER} (HMAC-SHA256 of the body)"
        if peer.token:
            given = headers.get("Authorization") or ""
            if not hmac.compare_digest(given.encode(), f"Bearer {peer.token}".encode()):
                return "bad or missing bearer token"
        return None

    def _items(self, headers: Any, body: bytes) -> list[Any]:
        """The request's events or envelopes (binary mode: one envelope from
        the ``ce-*`` headers)."""
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            raise ValueError(f"the body is not JSON: {exc}") from None
        if headers.get("ce-specversion"):
            envelope = {a: headers.get(f"ce-{a}") for a in _BINARY_ATTRS if headers.get(f"ce-{a}")}
            envelope["datacontenttype"] = "application/json"
            envelope["data"] = parsed
            return [envelope]
        return parsed if isinstance(parsed, list) else [parsed]

    def admit(
        self, peer: PeerSettings, items: list[Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
        """The events of ``items`` this site accepts from ``peer``, and the
        refused ones (``{"id", "reason"}``, each dead-lettered)."""
        from engine.trace import InvalidEvent, cdevents, cloudevents, signing

        rejected: list[dict[str, str]] = []

        def reject(item: Any, rule: str, message: str) -> None:
            eid = ""
            if isinstance(item, dict):
                meta = item.get("meta")
                eid = str(meta.get("id", "")) if isinstance(meta, dict) else str(item.get("id", ""))
            reason = f"{rule}: from peer {peer.name}: {message}"
            rejected.append({"id": eid, "reason": reason})
            self.deadletter(wire.dumps(item), reason)

        verifier = self._verifiers.get(peer.name)
        candidates: list[dict[str, Any]] = []
        for item in items:
            event = item
            from_cdevent = False
            try:
                if cloudevents.is_envelope(item):
                    event = cloudevents.unwrap(item)
            except cloudevents.EnvelopeError as exc:
                reject(item, "federation-envelope", str(exc))
                continue
            if isinstance(event, dict) and "context" in event and "subject" in event:
                try:
                    converted = cdevents.from_cdevent(event)
                except cdevents.UnmappedEvent as exc:
                    reject(item, "federation-cdevent", str(exc))
                    continue
                if converted is None:
                    reject(
                        item, "federation-cdevent", "this CDEvent type has no Eiffel counterpart"
                    )
                    continue
                event = _stamp(converted, peer.site_domain)
                from_cdevent = True
            if not isinstance(event, dict) or not isinstance(event.get("meta"), dict):
                reject(item, "schema", "not an Eiffel event (no meta)")
                continue
            if from_cdevent and peer.signature_required:
                reject(
                    item,
                    "federation-signature",
                    f"a CDEvent carries no Eiffel signature; peer {peer.name} must sign its "
                    "events (require_signature)",
                )
                continue
            if verifier is not None and (peer.signature_required or signing.is_signed(event)):
                try:
                    verifier.verify(event)
                except signing.SignatureError as exc:
                    reject(event, "federation-signature", str(exc))
                    continue
            domain = event_domain(event)
            if domain != peer.site_domain:
                reject(
                    event,
                    "federation-domain",
                    f"event {event['meta'].get('id')} claims domain {domain!r}; "
                    f"peer {peer.name} speaks for domain {peer.site_domain!r} only",
                )
                continue
            if not self._accept[peer.name](event):
                reject(
                    event,
                    "federation-accept",
                    f"event {event['meta'].get('id')} ({event['meta'].get('type')}) is not "
                    f"in what this site accepts from {peer.name}: {peer.accept.as_dict()}",
                )
                continue
            candidates.append(event)
        in_batch = {
            e["meta"]["id"]: e["meta"].get("type")
            for e in candidates
            if isinstance(e["meta"].get("id"), str)
        }
        targets = sorted(
            {
                link.get("target")
                for e in candidates
                for link in (e.get("links") or ())
                if isinstance(link, dict)
                and isinstance(link.get("target"), str)
                and link.get("target") not in in_batch
            }
        )
        known: dict[str, str] = {}
        if targets:
            for tid, ev in zip(targets, self.graph.get_many(targets), strict=True):
                if ev is not None:
                    known[tid] = ev["meta"]["type"]
        # an id this site already holds from another domain is not the peer's to
        # send again (the graph keeps the first copy of an id: a duplicate would
        # be dropped quietly; refused here, it is seen)
        ids = list(in_batch)
        held = {
            i: ev for i, ev in zip(ids, self.graph.get_many(ids) if ids else [], strict=True) if ev
        }
        accepted: list[dict[str, Any]] = []
        for event in candidates:
            prior = held.get(event["meta"]["id"])
            if prior is not None and event_domain(prior) != peer.site_domain:
                reject(
                    event,
                    "federation-overwrite",
                    f"event {event['meta']['id']} is already stored here as an event of "
                    f"domain {event_domain(prior)!r}",
                )
                continue
            try:
                self.validator.validate(
                    event, target_type=lambda t: in_batch.get(t) or known.get(t), links="strict"
                )
            except InvalidEvent as exc:
                reject(event, exc.rule, str(exc))
                continue
            accepted.append(event)
        return accepted, rejected


def create_app(
    config: Config, settings: FederationSettings, inbound: Inbound | None = None
) -> Flask:
    """The bridge's HTTP side: ``POST /federation/v1/events`` (CloudEvents
    from peers) and ``GET /federation/v1/health``."""
    inbound = inbound if inbound is not None else Inbound(config, settings)
    app = Flask("boss.federation")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body
    app.extensions["boss.federation"] = inbound

    @app.post(PATH)
    def receive() -> tuple[Response, int]:
        if (request.content_length or 0) > settings.max_body:
            return jsonify({"error": f"larger than {settings.max_body} bytes"}), 413
        status, answer = inbound.handle(request.headers, request.get_data(cache=False))
        return jsonify(answer), status

    @app.get("/federation/v1/health")
    def health() -> Response:
        return jsonify(
            {
                "site": inbound.site,
                "peers": [p.name for p in settings.peer_settings],
                "stats": inbound.stats.__dict__,
            }
        )

    return app


# -- out ----------------------------------------------------------------------------------


@dataclass
class SenderStats:
    messages: int = 0
    sent: int = 0
    skipped: int = 0
    requests: int = 0
    failures: int = 0
    #: events sent without a signature although this site signs (could not be signed)
    unsigned: int = 0
    last_error: str = ""
    errors: list[str] = field(default_factory=list)


class Sender:
    """This site's events to one peer (see the module docstring); ``run``
    until ``stop`` is set."""

    def __init__(
        self,
        config: Config,
        settings: FederationSettings,
        peer: PeerSettings,
        stop: threading.Event | None = None,
    ) -> None:
        from engine.trace import TraceTopology

        self.config = config
        self.settings = settings
        self.peer = peer
        self.site = settings.site_name(config)
        if self.site != config.eiffel_domain:
            log.warning(
                "[federation] site = %s but [boss] eiffel_domain = %s: this site's engine "
                "and participants stamp their events %s, and only events of domain %s (or "
                "none) go to peers; set [boss] eiffel_domain = %s",
                self.site,
                config.eiffel_domain,
                config.eiffel_domain,
                self.site,
                self.site,
            )
        self.stop = stop if stop is not None else threading.Event()
        self.topology = TraceTopology(config)
        self.stats = SenderStats()
        self._publish = _matcher(peer.publish, f"federation-publish-{peer.name}")
        self._signer = settings.signer(config)
        #: (type, version) -> whether its schema lets meta.security carry a
        #: signature (the protocol's first meta, before EiffelMetaProperty 3.0.0, does not)
        self._signable: dict[tuple[str, str], bool] = {}
        self._pending: list[kombu.Message] = []
        self._first = 0.0
        self._publisher: Publisher | None = None
        self._validator: Any = None

    @property
    def queue(self) -> Queue:
        return Queue(
            self.settings.queue_name(self.peer),
            exchange=self.topology.exchange,
            routing_key="eiffel.#",
            durable=True,
            auto_delete=False,
        )

    def declare(self) -> None:
        """Declare the exchange, the queue and its binding (events published
        from now on wait for the peer even while this bridge is not running)."""
        with connect(self.config) as conn:
            self.queue(conn.default_channel).declare()
            if self.peer.transport == "shovel":
                ready = Queue(self.settings.ready_queue_name(self.peer), durable=True)
                ready(conn.default_channel).declare()

    def select(self, bodies: list[bytes | str]) -> list[dict[str, Any]]:
        """The events of the message bodies that go to this peer."""
        out = []
        for body in bodies:
            try:
                parsed = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                continue  # the aggregators dead-letter it
            for event in parsed if isinstance(parsed, list) else [parsed]:
                if not isinstance(event, dict) or not isinstance(event.get("meta"), dict):
                    continue
                domain = event_domain(event)
                if domain is not None and domain != self.site:
                    continue  # a peer's event (or another domain's): never passed on
                event = _stamp(event, self.site)
                if self._publish(event):
                    out.append(self._sign(event))
        return out

    def _sign(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` signed with this site's key (as it is without one; an
        event that cannot be signed goes unsigned: a peer that requires
        signatures dead-letters it, with the reason, on its side)."""
        if self._signer is None:
            return event
        from engine.trace import signing

        meta = event["meta"]
        kind = (str(meta.get("type")), str(meta.get("version")))
        if self._signable.get(kind) is False:
            self.stats.unsigned += 1
            return event
        try:
            signed = self._signer.sign(event)
        except signing.SignatureError as exc:
            self.stats.unsigned += 1
            log.error("federation: to %s: sent unsigned: %s", self.peer.name, exc)
            return event
        if kind not in self._signable:
            self._signable[kind] = self._schema_allows(signed)
            if not self._signable[kind]:
                log.warning(
                    "federation: to %s: %s %s events are sent unsigned: that version's "
                    "meta.security has no integrityProtection",
                    self.peer.name,
                    *kind,
                )
                self.stats.unsigned += 1
                return event
        return signed

    def _schema_allows(self, signed: dict[str, Any]) -> bool:
        """Whether ``signed``'s schema takes its ``meta.security`` (checked once a type
        and version; an event that breaks its schema otherwise is the peer's to refuse)."""
        from engine.trace import InvalidEvent, validator_for

        if self._validator is None:
            self._validator = validator_for(self.config)
        try:
            self._validator.validate(signed, links="warn")
        except InvalidEvent as exc:
            return not str(exc.path or "").startswith("meta.security")
        return True

    def requests(self, events: list[dict[str, Any]]) -> list[tuple[bytes, dict[str, str]]]:
        """The HTTP requests (body, headers) that carry ``events``."""
        from engine.trace import cloudevents

        def headers(body: bytes, ctype: str) -> dict[str, str]:
            h = {"Content-Type": ctype, SITE_HEADER: self.site}
            if self.peer.secret:
                h[SIGNATURE_HEADER] = sign(self.peer.secret, body)
            if self.peer.token:
                h["Authorization"] = f"Bearer {self.peer.token}"
            return h

        if self.peer.mode == "binary":
            out = []
            for event in events:
                envelope = cloudevents.wrap_eiffel(event)
                body = json.dumps(envelope.pop("data"), separators=(",", ":")).encode()
                h = headers(body, "application/json")
                for attr in _BINARY_ATTRS:
                    if envelope.get(attr):
                        h[f"ce-{attr}"] = str(envelope[attr])
                out.append((body, h))
            return out
        envelopes = [cloudevents.wrap_eiffel(e) for e in events]
        body = json.dumps(envelopes, separators=(",", ":")).encode()
        return [(body, headers(body, BATCH_CONTENT_TYPE))]

    def post(self, body: bytes, headers: dict[str, str]) -> int:
        """POST one request; the HTTP status (0: no answer)."""
        req = urllib.request.Request(self.peer.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout) as resp:
                resp.read()
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            self.stats.last_error = f"{exc.code}: {detail}"
            return int(exc.code)
        except (OSError, urllib.error.URLError) as exc:
            self.stats.last_error = f"no answer: {exc}"
            return 0

    def _ready(self, events: list[dict[str, Any]]) -> bool:
        """A shovel peer: the selected events, signed, on the ready queue."""
        if self._publisher is None:
            self._publisher = Publisher(self.config)
        body = wire.dumps(events)
        headers = {SITE_HEADER: self.site}
        if self.peer.secret:
            headers[SIGNATURE_HEADER] = sign(self.peer.secret, body)
        self._publisher.publish(
            body, queue=self.settings.ready_queue_name(self.peer), headers=headers
        )
        return True

    def deliver(self, events: list[dict[str, Any]]) -> bool:
        """Send ``events`` until the peer has them (True) or ``stop`` is set
        (False), backing off between attempts. A shovel peer: put them on
        its ready queue (the broker retries; the shovel carries them)."""
        if self.peer.transport == "shovel":
            return self._ready(events)
        delay = self.settings.retry_initial
        pending = self.requests(events)
        while pending:
            body, headers = pending[0]
            self.stats.requests += 1
            status = self.post(body, headers)
            if 200 <= status < 300 or status == 400:
                if status == 400:
                    log.error(
                        "federation: peer %s refused a request (it dead-lettered it): %s",
                        self.peer.name,
                        self.stats.last_error,
                    )
                pending.pop(0)
                delay = self.settings.retry_initial
                continue
            self.stats.failures += 1
            self.stats.errors = [*self.stats.errors[-9:], self.stats.last_error]
            log.warning(
                "federation: peer %s: %s; trying again in %.1fs",
                self.peer.name,
                self.stats.last_error or status,
                delay,
            )
            if self.stop.wait(delay):
                return False
            delay = min(delay * 2, self.settings.retry_max)
        return True

    # -- the queue ------------------------------------------------------------------
    def _on_message(self, message: kombu.Message) -> None:
        if not self._pending:
            self._first = time.monotonic()
        self._pending.append(message)

    def flush(self) -> bool:
        """Deliver the pending messages' events; acknowledge them if they
        reached the peer (False: stopped before, they stay unacknowledged)."""
        pending, self._pending = self._pending, []
        if not pending:
            return True
        events = self.select([m.body for m in pending])
        self.stats.messages += len(pending)
        self.stats.skipped += 0 if events else len(pending)
        if events and not self.deliver(events):
            return False
        self.stats.sent += len(events)
        for m in pending:
            m.ack()
        return True

    def run(self) -> None:
        """Consume the peer's queue until ``stop`` is set (reconnecting
        after broker errors)."""
        try:
            self._run()
        finally:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None

    def _run(self) -> None:
        delay = self.settings.retry_initial
        while not self.stop.is_set():
            try:
                self._consume()
                delay = self.settings.retry_initial
            except Exception as exc:
                self._pending = []
                self.stats.last_error = f"broker: {exc!r}"
                log.warning(
                    "federation: sender to %s: %r; again in %.1fs", self.peer.name, exc, delay
                )
                if self.stop.wait(delay):
                    return
                delay = min(delay * 2, self.settings.retry_max)

    def _consume(self) -> None:
        batch = self.settings.batch
        with connect(self.config) as conn:
            conn.ensure_connection(max_retries=1)
            with conn.Consumer(
                queues=[self.queue], on_message=self._on_message, prefetch_count=batch * 2
            ):
                while not self.stop.is_set():
                    with contextlib.suppress(TimeoutError):  # socket.timeout too
                        conn.drain_events(timeout=self.settings.linger)
                    due = self._pending and (
                        len(self._pending) >= batch
                        or time.monotonic() - self._first >= self.settings.linger
                    )
                    if due and not self.flush():
                        return


# -- in, from a shovel --------------------------------------------------------------------


class Receiver:
    """A shovel peer's events in: a consumer of ``<in_queue_prefix>.<peer>``
    on this site's broker, where the peer's shovel puts what its bridge
    selected for this site. The queue names the peer (RabbitMQ's
    permissions let only that peer's shovel user write it); a ``secret``
    is checked as over HTTP (``X-Boss-Signature`` header, which shovels
    keep). Then the same checks as the endpoint (``Inbound.admit``); the
    messages are acknowledged after the accepted events are published on
    this site's trace exchange and the refused ones dead-lettered."""

    def __init__(
        self,
        inbound: Inbound,
        peer: PeerSettings,
        stop: threading.Event | None = None,
        batch: int = 200,
    ) -> None:
        self.inbound = inbound
        self.peer = peer
        self.stop = stop if stop is not None else threading.Event()
        self.batch = batch
        name = inbound.settings.in_queue_name(peer)
        # a fanout exchange of its own in front of it: the peer's shovel user
        # is given write permission on this exchange alone (a write permission
        # on the default exchange would let it reach every queue)
        self.queue = Queue(
            name,
            exchange=Exchange(name, type="fanout", durable=True),
            routing_key=name,
            durable=True,
            auto_delete=False,
        )
        self.received = 0
        self._pending: list[kombu.Message] = []

    def declare(self) -> None:
        with connect(self.inbound.config) as conn:
            self.queue(conn.default_channel).declare()

    def _on_message(self, message: kombu.Message) -> None:
        self._pending.append(message)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for m in pending:
            body = m.body if isinstance(m.body, bytes) else str(m.body).encode()
            headers = {str(k).lower(): v for k, v in (m.headers or {}).items()}
            lookup = _Lower(headers)
            if lookup.get(SITE_HEADER) not in (None, self.peer.name):
                self.inbound.deadletter(
                    body,
                    f"federation-site: a message of {lookup.get(SITE_HEADER)!r} on "
                    f"{self.queue.name}, the queue of peer {self.peer.name}",
                )
                m.ack()
                continue
            status, answer = self.inbound.handle(
                _Lower({**headers, SITE_HEADER.lower(): self.peer.name}), body
            )
            if status == 503:
                m.requeue()
                raise ConnectionError(answer.get("error"))
            self.received += len(answer.get("accepted") or ())
            m.ack()

    def run(self) -> None:
        delay = self.inbound.settings.retry_initial
        while not self.stop.is_set():
            try:
                with connect(self.inbound.config) as conn:
                    conn.ensure_connection(max_retries=1)
                    with conn.Consumer(
                        queues=[self.queue], on_message=self._on_message, prefetch_count=self.batch
                    ):
                        while not self.stop.is_set():
                            with contextlib.suppress(TimeoutError):
                                conn.drain_events(timeout=self.inbound.settings.linger)
                            if self._pending:
                                self.flush()
                delay = self.inbound.settings.retry_initial
            except Exception as exc:
                self._pending = []
                log.warning("federation: receiver of %s: %r", self.peer.name, exc)
                if self.stop.wait(delay):
                    return
                delay = min(delay * 2, self.inbound.settings.retry_max)


class _Lower(dict):  # type: ignore[type-arg]
    """Message headers looked up without regard to case."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


# -- both ---------------------------------------------------------------------------------


class FederationBridge:
    """``boss federate serve``: the endpoint and a sender per peer with a
    ``url``, in threads of this process. ``start``/``stop`` or ``with``."""

    def __init__(
        self,
        config: Config,
        settings: FederationSettings,
        *,
        bind: str | None = None,
        graph: Any = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.inbound = Inbound(config, settings, graph=graph)
        self.stop_event = threading.Event()
        self.senders = [
            Sender(config, settings, p, self.stop_event)
            for p in settings.peer_settings
            if p.url or p.transport == "shovel"
        ]
        self.receivers = [
            Receiver(self.inbound, p, self.stop_event, settings.batch)
            for p in settings.peer_settings
            if p.transport == "shovel"
        ]
        host, _, port = (bind or settings.bind).rpartition(":")
        self._host, self._port = host or "127.0.0.1", int(port)
        self._server: Any = None
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        """This bridge's endpoint (after ``start``)."""
        return f"http://{self._host}:{self._server.server_port}{PATH}"

    def start(self) -> FederationBridge:
        from werkzeug.serving import make_server

        for sender in self.senders:
            sender.declare()
        for receiver in self.receivers:
            receiver.declare()
        app = create_app(self.config, self.settings, self.inbound)
        self._server = make_server(self._host, self._port, app, threaded=True)
        self._threads = (
            [threading.Thread(target=self._server.serve_forever, name="federation-in", daemon=True)]
            + [
                threading.Thread(target=s.run, name=f"federation-out-{s.peer.name}", daemon=True)
                for s in self.senders
            ]
            + [
                threading.Thread(target=r.run, name=f"federation-in-{r.peer.name}", daemon=True)
                for r in self.receivers
            ]
        )
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for t in self._threads:
            t.join(15)
        self.inbound.close()

    def __enter__(self) -> FederationBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
