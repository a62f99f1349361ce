"""``boss event`` (publish and import Eiffel events), ``boss aggregator``
(a pool of trace-queue consumers) and ``boss triggers``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from engine.commandline import (
    Context,
    emit_json,
    fail,
    json_option,
    pairs_option,
    parse_fields,
    pass_context,
)
from engine.commandline import table as print_table

__all__ = ["register"]


def register(main: click.Group) -> None:
    for command in (event, aggregator, triggers):
        main.add_command(command)


def _bus(ctx: Context) -> Any:
    from engine.trace import EventBus

    return EventBus(ctx.config, ctx.publisher)


def _validator(ctx: Context) -> Any:
    from engine.trace import validator_for

    return validator_for(ctx.config)


def _check(
    ctx: Context, events: list[dict[str, Any]], where: str, links: str = "strict"
) -> list[tuple[int, Any]]:
    """Validate before publishing (the aggregator checks again: this is so
    the user hears about a mistake at once); link targets are looked up
    among ``events`` only. A broken rule fails, naming it; with
    ``links="warn"`` broken link rules are returned as ``(index, warning)``
    instead."""
    from engine.trace import InvalidEvent

    validator = _validator(ctx)
    known = {
        e.get("meta", {}).get("id"): e.get("meta", {}).get("type")
        for e in events
        if isinstance(e, dict) and isinstance(e.get("meta"), dict)
    }
    warnings = []
    for i, ev in enumerate(events):
        try:
            warnings += [(i, w) for w in validator.validate(ev, target_type=known.get, links=links)]
        except InvalidEvent as exc:
            fail(f"{where}: event {i + 1} ({_event_id(ev)}): {exc}")  # "<rule>: <message>"
    return warnings


def _event_id(ev: Any) -> str:
    meta = ev.get("meta") if isinstance(ev, dict) else None
    return str(meta.get("id", "?")) if isinstance(meta, dict) else "?"


def _links(pairs: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for pair in pairs:
        ltype, sep, target = pair.partition("=")
        if not sep or not ltype or not target:
            raise click.BadParameter(f"{pair!r} is not TYPE=EVENT_ID", param_hint="--link")
        out.append((ltype.upper(), target.strip()))
    return out


@click.group(invoke_without_command=False)
def event() -> None:
    """Publish Eiffel events on the traceability bus, or import them."""


@event.command("publish")
@click.argument("event_type")
@pairs_option(
    "--data",
    "-d",
    "data_pairs",
    metavar="KEY=VALUE",
    help="A data member (dotted keys nest; values are YAML scalars). Repeatable.",
)
@click.option("--data-json", help="The whole data object as JSON.")
@pairs_option(
    "--link",
    "-l",
    "links",
    metavar="TYPE=ID",
    help="A link (CAUSE=<id>, CONTEXT=<id>, ...). Repeatable.",
)
@click.option("--version", "version", default=None, help="meta.version (default: ours).")
@click.option("--dry-run", is_flag=True, help="Print the event, do not publish it.")
@pass_context
def publish(
    ctx: Context,
    event_type: str,
    data_pairs: tuple[str, ...],
    data_json: str | None,
    links: tuple[str, ...],
    version: str | None,
    dry_run: bool,
) -> None:
    """Publish one event: TYPE is e.g. SourceChangeCreated or
    EiffelArtifactCreatedEvent. Prints the event's id."""
    from engine.trace import new_event

    data: dict[str, Any] = {}
    if data_json:
        try:
            data = json.loads(data_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(str(exc), param_hint="--data-json") from None
        if not isinstance(data, dict):
            raise click.BadParameter("not a JSON object", param_hint="--data-json")
    data.update(parse_fields(data_pairs))
    ev = new_event(
        event_type,
        data,
        _links(links),
        version=version,
        source={"name": "boss event", "domainId": ctx.config.eiffel_domain},
    )
    _check(ctx, [ev], "boss event publish")
    if dry_run:
        emit_json(ev)
        return
    _bus(ctx).publish(ev)
    click.echo(ev["meta"]["id"])


@event.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "eiffel", "cdevents"]),
    default="auto",
    show_default=True,
    help="auto: Eiffel, CDEvents and CloudEvents envelopes are told apart.",
)
@click.option("--batch", type=int, default=500, show_default=True)
@click.option(
    "--links",
    type=click.Choice(["strict", "warn"]),
    default="warn",
    show_default=True,
    help="The protocol's link rules (required links, legal target types, ...): "
    "warn stores an event that breaks one and records the broken rule in the "
    "graph (boss trace warnings, boss trace show ID); strict refuses it.",
)
@pass_context
def import_(ctx: Context, files: tuple[str, ...], fmt: str, batch: int, links: str) -> None:
    """Import events from files: a single JSON event, a JSON array, or JSON
    lines; Eiffel, CDEvents v0.5.1 or either in a CloudEvents envelope.
    Every event is validated first: one bad event stops the import, naming
    the file, the event and the broken rule, and nothing of that file is
    published. A broken link rule is only a warning unless ``--links
    strict``: the event is stored and the rule recorded beside it."""
    from engine.trace import EventFileError

    bus = _bus(ctx)
    total = warned = 0
    for name in files:
        try:
            events = _eiffel_events(Path(name), fmt)
        except (EventFileError, ValueError) as exc:
            fail(f"{name}: {exc}")
        warnings = _check(ctx, events, name, links)
        for i, w in warnings:
            click.echo(
                f"{name}: event {i + 1} ({_event_id(events[i])}): warning: {w.rule}: {w.message}",
                err=True,
            )
        for i in range(0, len(events), batch):
            bus.publish(events[i : i + batch], links=links)
        total += len(events)
        n_warned = len({i for i, _ in warnings})
        warned += n_warned
        click.echo(
            f"{name}: {len(events)} events published"
            + (f", {n_warned} with link-rule warnings (boss trace warnings)" if n_warned else "")
        )
    if len(files) > 1:
        click.echo(
            f"{total} events published" + (f", {warned} with link-rule warnings" if warned else "")
        )


def _eiffel_events(path: Path, fmt: str) -> list[dict[str, Any]]:
    """The file's events as Eiffel events (converted where they are not)."""
    from engine.trace import cdevents, cloudevents, read_file

    out = []
    for i, item in enumerate(read_file(path), 1):
        try:
            if cloudevents.is_envelope(item):
                item = cloudevents.unwrap(item)
            if fmt == "cdevents" or (
                fmt == "auto" and isinstance(item, dict) and "context" in item and "subject" in item
            ):
                converted = cdevents.from_cdevent(item)
                if converted is None:
                    click.echo(
                        f"{path}: event {i}: CDEvent type "
                        f"{item['context'].get('type')} has no Eiffel counterpart: "
                        "skipped",
                        err=True,
                    )
                    continue
                item = converted
        except (cloudevents.EnvelopeError, cdevents.UnmappedEvent) as exc:
            raise ValueError(f"event {i}: {exc}") from None
        out.append(item)
    return out


@click.command()
@click.option(
    "--threads",
    type=int,
    default=1,
    show_default=True,
    help="Consumers in this process (each with its own connection).",
)
@click.option(
    "--batch",
    type=int,
    default=500,
    show_default=True,
    help="Events written to the graph per batch at most.",
)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option(
    "--metrics-port",
    type=int,
    default=0,
    help="Serve its Prometheus metrics on this port (0: none; [boss] metrics_address).",
)
@pass_context
def aggregator(ctx: Context, threads: int, batch: int, loglevel: str, metrics_port: int) -> None:
    """Consume the trace queue into the traceability graph (run as many as
    you like, anywhere; engine workers also run ``trace_threads`` of them),
    and, with ``step_logs`` on, the participants' step logs into the store."""

    from engine.trace import run_aggregators

    ctx.start_logging(loglevel)
    config = ctx.config
    if metrics_port:
        from engine import telemetry

        telemetry.serve(telemetry.TRACE, metrics_port, config.metrics_address)
    click.echo(
        f"aggregating {config.trace_queue} with {threads} consumer(s)"
        + (f"; step logs from {config.step_log_queue}" if config.step_logs else ""),
        err=True,
    )
    stats = run_aggregators(config, ctx.store.client, threads=threads, batch=batch)
    click.echo(
        f"stopped: {sum(s.stored for s in stats)} stored, "
        f"{sum(s.duplicates for s in stats)} duplicates, "
        f"{sum(s.invalid for s in stats)} dead-lettered",
        err=True,
    )


@click.group()
def triggers() -> None:
    """Subscriptions that launch a process when a matching event arrives."""


def _trigger_store(ctx: Context) -> Any:
    from engine.trace import TriggerStore

    return TriggerStore(ctx.store.client, ctx.config.key_prefix)


@triggers.command("add")
@click.argument("trigger_id")
@click.option("--process", "-p", required=True, help="The process (store name) to launch.")
@click.option("--type", "-t", "types", multiple=True, help="Event type(s) to match.")
@pairs_option(
    "--data",
    "-d",
    "data_pairs",
    metavar="PATH=VALUE",
    help="data.PATH must equal VALUE (~REGEX: must match). Repeatable.",
)
@pairs_option(
    "--link",
    "-l",
    "links",
    metavar="TYPE=ID",
    help="A link of TYPE to ID (* for any). Repeatable.",
)
@pairs_option(
    "--field",
    "-f",
    "fields",
    metavar="KEY=VALUE",
    help="A launch field. Repeatable.",
)
@pass_context
def trigger_add(
    ctx: Context,
    trigger_id: str,
    process: str,
    types: tuple[str, ...],
    data_pairs: tuple[str, ...],
    links: tuple[str, ...],
    fields: tuple[str, ...],
) -> None:
    """Add (or replace) a trigger."""
    from engine.trace import Trigger, TriggerError

    data = {}
    for pair in data_pairs:
        path, sep, value = pair.partition("=")
        if not sep or not path:
            raise click.BadParameter(f"{pair!r} is not PATH=VALUE", param_hint="--data")
        data[path] = value
    try:
        trig = Trigger(
            trigger_id, process, list(types), data, dict(_links(links)), parse_fields(fields)
        )
    except TriggerError as exc:
        fail(str(exc))
    _trigger_store(ctx).put(trig)
    click.echo(f"trigger {trigger_id}: launches {process}")


@triggers.command("list")
@json_option
@pass_context
def trigger_list(ctx: Context, as_json: bool) -> None:
    """List the triggers."""
    rows = [t.as_dict() for t in _trigger_store(ctx).all()]
    if as_json:
        emit_json(rows)
        return
    print_table(
        [
            [
                r["id"],
                r["process"],
                ",".join(r["type"]) or "*",
                json.dumps(r["data"]) if r["data"] else "",
                json.dumps(r["links"]) if r["links"] else "",
            ]
            for r in rows
        ],
        ["id", "process", "types", "data", "links"],
    )


@triggers.command("remove")
@click.argument("trigger_id")
@pass_context
def trigger_remove(ctx: Context, trigger_id: str) -> None:
    """Remove a trigger."""
    if not _trigger_store(ctx).remove(trigger_id):
        fail(f"no trigger {trigger_id!r}")
    click.echo(f"trigger {trigger_id} removed")
