"""The traceability graph over HTTP: a Flask blueprint (JSON).

Mounted by the web UI (and usable alone: ``create_app``). Reads answer from
the graph; ``POST /events`` is a producer: the events are validated (a bad
one is refused with the rule it breaks, and nothing of that request is
published) and published on the bus, where the aggregators store them.

======================================  ==========================================
``POST /events``                        an event, an array, JSON lines, or
                                        CloudEvents envelopes; 202 with the ids
``GET /events/<id>``                    one event (404 naming the site of an
                                        event linked to but not shared)
``GET /events/<id>/upstream``           ``linkTypes``, ``eventTypes`` (comma
``GET /events/<id>/downstream``         separated), ``levels``, ``limit``
``GET /events?type=&since=&until=``     by type and time (epoch ms), ``limit``
``GET /find?type=&field=&value=``       by an indexed data field
``GET /up/<id>``, ``GET /down/<id>``    trace up from a change, down from an
                                        artifact or baseline; ``sites`` (id ->
                                        site) and, down, ``not_shared``
``GET /runs/<wfid>/events``             a run's events
``GET /export?run=|event=&format=``     eiffel (default) or cdevents;
                                        ``envelope=cloudevents``
``GET /leadtime?level=&value=``         per change (``change=``) or percentiles
                                        over ``since``/``until``
``GET /dora?since=&until=``             the four DORA metrics
``GET /stats``                          events, waiting, placeholders
======================================  ==========================================

Errors are ``{"error": message, "rule": ...}`` with 400/404/503. Across
sites (``docs/federation.md``): each hit of a walk has its ``site`` (the
event's ``meta.source.domainId``); the 404 of an event this site never
received but an event it holds links to says whose it is:
``{"error": "<id>: an event of site opnfv that was not shared with this
site", "not_shared": {"id", "domain", "linked_from": [...]}}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from engine.config import Config

__all__ = ["create_app", "trace_blueprint"]

_DAY_MS = 86_400_000


def _list(name: str) -> list[str] | None:
    raw = request.args.get(name)
    return [x for x in raw.split(",") if x] if raw else None


def _int(name: str, default: int, lo: int = 0, hi: int = 1 << 62) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _Bad(f"{name}={raw!r}: not an integer") from None
    if not lo <= value <= hi:
        raise _Bad(f"{name}={value}: between {lo} and {hi}")
    return value


class _Bad(ValueError):
    def __init__(
        self,
        message: str,
        rule: str | None = None,
        status: int = 400,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.status = status
        self.extra = extra or {}


def _sites(result: dict[str, Any]) -> dict[str, str | None]:
    """id -> site of every event in a grouped trace result."""
    from engine.trace.queries import site_of

    return {
        e["meta"]["id"]: site_of(e)
        for name, events in result.items()
        if name != "not_shared"
        for e in events
        if isinstance(e, dict) and isinstance(e.get("meta"), dict)
    }


def trace_blueprint(
    config: Config,
    *,
    graph: Callable[[], Any] | None = None,
    bus: Callable[[], Any] | None = None,
    authorize: Callable[[str], str | None] | None = None,
) -> Blueprint:
    """The blueprint. ``graph``/``bus`` make the graph and the event bus
    (default: from ``config``); ``authorize(action)`` returns why an action
    (``"publish"``) is refused, or None (default: allowed)."""
    bp = Blueprint("trace_api", __name__)
    cache: dict[str, Any] = {}

    def get_graph() -> Any:
        if graph is not None:
            return graph()
        if "graph" not in cache:
            from engine.store.connection import client_for
            from engine.trace.aggregator import graph_prefix
            from engine.trace.graph import Graph

            client = client_for(config.resolved_redis_url())[0]
            cache["graph"] = Graph(client, prefix=graph_prefix(config))
        return cache["graph"]

    def get_bus() -> Any:
        if bus is not None:
            return bus()
        if "bus" not in cache:
            from engine.trace.bus import EventBus

            cache["bus"] = EventBus(config)
        return cache["bus"]

    def validator() -> Any:
        if "validator" not in cache:
            from engine.trace.aggregator import validator_for

            cache["validator"] = validator_for(config)
        return cache["validator"]

    @bp.errorhandler(_Bad)
    def bad(exc: _Bad) -> tuple[Response, int]:
        body: dict[str, Any] = {"error": str(exc)}
        if exc.rule:
            body["rule"] = exc.rule
        body.update(exc.extra)
        return jsonify(body), exc.status

    def missing(eid: str) -> _Bad:
        """The 404 of ``eid``: whose event it is when an event this site
        holds links to it (an event of a peer that was not shared)."""
        from engine.trace.queries import unshared_event

        info = unshared_event(get_graph(), eid)
        if info is None:
            return _Bad(f"no event {eid}", status=404)
        return _Bad(
            f"{eid}: an event of site {info['domain'] or '(unknown)'} that was not shared "
            "with this site",
            rule="not_shared",
            status=404,
            extra={"not_shared": info},
        )

    def event_or_404(eid: str) -> dict[str, Any]:
        ev = get_graph().get(eid)
        if ev is None:
            raise missing(eid)
        return ev

    def hits(items: list[Any]) -> list[dict[str, Any]]:
        from engine.trace.queries import site_of

        return [
            {"event": h.event, "depth": h.depth, "via": h.via, "site": site_of(h.event)}
            for h in items
        ]

    # -- producing --------------------------------------------------------------
    @bp.post("/events")
    def post_events() -> tuple[Response, int]:
        if authorize is not None:
            why = authorize("publish")
            if why:
                raise _Bad(why, status=403)
        from engine.trace import cloudevents
        from engine.trace.formats import EventFileError, read_events
        from engine.trace.validate import InvalidEvent

        try:
            events = read_events(request.get_data(), name="request body")
        except EventFileError as exc:
            raise _Bad(str(exc), rule="json") from None
        out = []
        for ev in events:
            if cloudevents.is_envelope(ev):
                try:
                    ev = cloudevents.unwrap(ev)
                except cloudevents.EnvelopeError as exc:
                    raise _Bad(str(exc), rule="envelope") from None
            out.append(ev)
        known = {
            e.get("meta", {}).get("id"): e.get("meta", {}).get("type")
            for e in out
            if isinstance(e, dict) and isinstance(e.get("meta"), dict)
        }
        stored_types: dict[str, str] = {}
        targets = [
            x.get("target")
            for e in out
            if isinstance(e, dict)
            for x in e.get("links") or ()
            if isinstance(x, dict)
        ]
        unknown = [t for t in targets if isinstance(t, str) and t not in known]
        if unknown:
            from engine.trace.aggregator import stored_types as lookup

            stored_types = lookup(get_graph(), unknown)
        for i, ev in enumerate(out):
            try:
                validator().validate(ev, target_type=lambda t: known.get(t) or stored_types.get(t))
            except InvalidEvent as exc:
                raise _Bad(f"event {i + 1}: {exc}", rule=exc.rule) from None
        try:
            get_bus().publish(out)
        except Exception as exc:
            raise _Bad(f"the broker did not take the events: {exc}", status=503) from None
        return jsonify({"accepted": len(out), "ids": [e["meta"]["id"] for e in out]}), 202

    # -- reading -----------------------------------------------------------------
    @bp.get("/events/<eid>")
    def get_event(eid: str) -> Response:
        return jsonify(event_or_404(eid))

    def walk(eid: str, direction: str) -> Response:
        g = get_graph()
        if g.get(eid) is None and not g.links_in(eid):
            raise _Bad(f"no event {eid}", status=404)
        fn = g.upstream if direction == "up" else g.downstream
        found = fn(
            eid,
            _list("linkTypes"),
            _int("levels", 10, 1, 100),
            _int("limit", 100, 1, 10_000),
            event_types=_list("eventTypes"),
        )
        return jsonify({"id": eid, "direction": direction, "hits": hits(found)})

    @bp.get("/events/<eid>/upstream")
    def upstream(eid: str) -> Response:
        return walk(eid, "up")

    @bp.get("/events/<eid>/downstream")
    def downstream(eid: str) -> Response:
        return walk(eid, "down")

    @bp.get("/events")
    def events_by_type() -> Response:
        etype = request.args.get("type")
        if not etype:
            raise _Bad("type= is required (e.g. ArtifactCreated)")
        since = request.args.get("since")
        until = request.args.get("until")
        found = get_graph().by_type(
            etype,
            int(since) if since else None,
            int(until) if until else None,
            _int("limit", 100, 1, 10_000),
            newest_first=True,
        )
        return jsonify({"type": etype, "events": found})

    @bp.get("/find")
    def find() -> Response:
        args = {k: request.args.get(k) for k in ("type", "field", "value")}
        missing = [k for k, v in args.items() if not v]
        if missing:
            raise _Bad(f"missing {', '.join(missing)}")
        try:
            found = get_graph().find(
                args["type"], args["field"], args["value"], _int("limit", 100, 1, 10_000)
            )
        except KeyError as exc:
            raise _Bad(str(exc.args[0])) from None
        return jsonify({"events": found})

    @bp.get("/up/<eid>")
    def up(eid: str) -> Response:
        from engine.trace.queries import trace_up

        event_or_404(eid)
        result = dict(trace_up(get_graph(), eid))
        result["sites"] = _sites(result)
        return jsonify(result)

    @bp.get("/down/<eid>")
    def down(eid: str) -> Response:
        from engine.trace.queries import trace_down

        event_or_404(eid)
        result = dict(trace_down(get_graph(), eid, placeholders=True))
        result["sites"] = _sites(result)
        return jsonify(result)

    @bp.get("/runs/<wfid>/events")
    def run_events(wfid: str) -> Response:
        from engine.trace.activity import activity_id

        events = get_graph().chain(activity_id(wfid, None, "triggered"))
        if not events:
            raise _Bad(f"no events of run {wfid}", status=404)
        return jsonify({"wfid": wfid, "events": events})

    @bp.get("/export")
    def export() -> Response:
        from engine.trace import cdevents, cloudevents
        from engine.trace.activity import activity_id

        g = get_graph()
        wfid, eid = request.args.get("run"), request.args.get("event")
        if bool(wfid) == bool(eid):
            raise _Bad("give exactly one of run= and event=")
        if wfid:
            events = g.chain(activity_id(wfid, None, "triggered"))
        else:
            events = [
                event_or_404(eid),
                *[
                    h.event
                    for h in g.downstream(eid, depth=50, limit=_int("limit", 10_000, 1, 100_000))
                ],
            ]
        fmt = request.args.get("format", "eiffel")
        if fmt == "cdevents":
            by_id = {e["meta"]["id"]: e for e in events}
            out = cdevents.to_cdevents(events, resolve=lambda i: by_id.get(i) or g.get(i))
        elif fmt == "eiffel":
            out = events
        else:
            raise _Bad(f"format={fmt!r}: eiffel or cdevents")
        if request.args.get("envelope") == "cloudevents":
            out = [cloudevents.wrap(e) for e in out]
        return Response(json.dumps(out), mimetype="application/json")

    def window() -> tuple[int, int]:
        now = int(time.time() * 1000)
        return _int("since", now - 30 * _DAY_MS), _int("until", now)

    @bp.get("/leadtime")
    def leadtime() -> Response:
        from engine.trace import metrics

        level = request.args.get("level")
        if not level:
            raise _Bad("level= is required (a confidence level's name)")
        value = request.args.get("value", "SUCCESS")
        change = request.args.get("change")
        if change:
            event_or_404(change)
            return jsonify(
                {
                    "change": change,
                    "level": level,
                    "value": value,
                    "seconds": metrics.lead_time(get_graph(), change, level, value),
                }
            )
        lo, hi = window()
        result = metrics.lead_times(get_graph(), lo, hi, level, value)
        return jsonify(result if isinstance(result, dict) else result.as_dict())

    @bp.get("/dora")
    def dora() -> Response:
        from engine.trace import metrics

        lo, hi = window()
        kwargs = {}
        if request.args.get("deploy_level"):
            kwargs["deploy_level"] = request.args["deploy_level"]
        result = metrics.dora(get_graph(), lo, hi, **kwargs)
        return jsonify(result if isinstance(result, dict) else result.as_dict())

    @bp.get("/stats")
    def stats() -> Response:
        return jsonify(get_graph().stats())

    return bp


def create_app(config: Config, **kwargs: Any) -> Flask:
    """A Flask app serving the blueprint under ``/api/trace``."""
    app = Flask("boss.trace")
    app.register_blueprint(trace_blueprint(config, **kwargs), url_prefix="/api/trace")
    return app
