"""``boss trace``: questions to the traceability graph.

``get``, ``upstream``/``downstream`` (the event repository's search: link
types, levels, limit), ``up`` (which artifacts and confidence levels
contain this change), ``down`` (what went into this artifact or baseline),
``find`` (by commit, artifact identity, baseline name, ...), ``run`` (a
run's events), ``export`` (Eiffel JSON, JSON lines or CDEvents, optionally
in CloudEvents envelopes), ``lead-time``, ``dora`` and ``stats``; plus
``deadletters`` for the events the aggregators set aside, and ``show`` /
``warnings`` for an event's links and the link rules an imported event
breaks (stored under ``boss event import --links warn``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import click

from engine.commandline import Context, emit_json, fail, json_option, pass_context, table

__all__ = ["register"]


def register(main: click.Group) -> None:
    main.add_command(trace)


def _graph(ctx: Context) -> Any:
    from engine.trace import Graph, graph_prefix

    return Graph(ctx.store.client, prefix=graph_prefix(ctx.config))


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _summary(ev: dict[str, Any]) -> str:
    """A few words on what an event is about."""
    data = ev.get("data") or {}
    for key in ("name", "identity"):
        if isinstance(data.get(key), str):
            extra = f"={data['value']}" if key == "name" and "value" in data else ""
            return f"{data[key]}{extra}"
    git = data.get("gitIdentifier")
    if isinstance(git, dict):
        return f"{git.get('repoName') or git.get('repoUri', '')}@{str(git.get('commitId'))[:12]}"
    outcome = data.get("outcome")
    if isinstance(outcome, dict):
        return str(outcome.get("conclusion") or outcome.get("verdict") or "")
    return ""


def _short(etype: str) -> str:
    return etype.removeprefix("Eiffel").removesuffix("Event")


def _site(ev: dict[str, Any]) -> str:
    """The site (``meta.source.domainId``) an event came from."""
    from engine.trace import site_of

    return site_of(ev) or ""


def _not_shared_note(graph: Any, event_id: str) -> str | None:
    """What to say of an event linked to but never received (a peer's
    event not shared with this site), or None."""
    from engine.trace import unshared_event

    info = unshared_event(graph, event_id)
    if info is None:
        return None
    froms = ", ".join(f"{x['source']} ({x['type']})" for x in info["linked_from"][:5])
    return (
        f"{event_id}: an event of site {info['domain'] or '(unknown)'} that was not shared "
        f"with this site; linked from {froms}"
    )


def _print_events(rows: list[tuple[dict[str, Any], Any, Any]], as_json: bool) -> None:
    if as_json:
        emit_json([{"event": e, "depth": d, "via": v} if d is not None else e for e, d, v in rows])
        return
    table(
        [
            [
                e["meta"]["id"],
                _short(e["meta"]["type"]),
                _when(e["meta"]["time"]),
                _site(e),
                "" if d is None else d,
                v or "",
                _summary(e),
            ]
            for e, d, v in rows
        ],
        ["id", "type", "time (utc)", "site", "depth", "via", "about"],
    )


def _window(since: str | None, until: str | None) -> tuple[int, int]:
    """``--since 7d``/``--until 2026-11-20``: a window in epoch ms."""
    from engine.core.durations import parse_duration

    now = int(time.time() * 1000)

    def point(value: str | None, default: int) -> int:
        if not value:
            return default
        try:
            return int(
                datetime.fromisoformat(value)
                .replace(tzinfo=datetime.fromisoformat(value).tzinfo or UTC)
                .timestamp()
                * 1000
            )
        except ValueError:
            pass
        try:
            return now - int(parse_duration(value) * 1000)
        except Exception:
            raise click.BadParameter(
                f"{value!r}: a date (2026-11-20T10:00) or an age (7d, 12h)"
            ) from None

    return point(since, now - 30 * 86_400_000), point(until, now)


@click.group()
def trace() -> None:
    """Ask the traceability graph."""


@trace.command()
@click.argument("event_id")
@pass_context
def get(ctx: Context, event_id: str) -> None:
    """Print one event as JSON."""
    graph = _graph(ctx)
    ev = graph.get(event_id)
    if ev is None:
        fail(_not_shared_note(graph, event_id) or f"no event {event_id} in the graph")
    emit_json(ev)


def _print_warnings(warnings: list[dict[str, Any]], indent: str = "") -> None:
    for w in warnings:
        where = f" at {w['path']}" if w.get("path") else ""
        click.echo(f"{indent}warning: {w.get('rule')}{where}: {w.get('message')}")


@trace.command()
@click.argument("event_id")
@json_option
@pass_context
def show(ctx: Context, event_id: str, as_json: bool) -> None:
    """One event: what it is, its links both ways, and the link rules it
    breaks when it was imported with them (its warnings)."""
    graph = _graph(ctx)
    ev = graph.get(event_id)
    links_in = graph.links_in(event_id)
    if ev is None and not links_in:
        fail(f"no event {event_id} in the graph")
    warnings = graph.warnings(event_id)
    if as_json:
        emit_json({"event": ev, "links_in": [list(p) for p in links_in], "warnings": warnings})
        return
    if ev is None:
        click.echo(f"{event_id}: not stored yet (a placeholder: events link to it)")
    else:
        meta = ev["meta"]
        click.echo(f"{event_id}  {_short(meta['type'])} {meta.get('version', '')}")
        click.echo(f"  time: {_when(meta['time'])} UTC")
        about = _summary(ev)
        if about:
            click.echo(f"  about: {about}")
    targets = [link["target"] for link in (ev or {}).get("links") or ()]
    types = {
        i: e["meta"]["type"]
        for i, e in zip(targets, graph.get_many(targets), strict=True)
        if e is not None
    }
    for link in (ev or {}).get("links") or ():
        t = link["target"]
        click.echo(f"  -> {link['type']} {t} ({_short(types[t]) if t in types else 'not stored'})")
    for ltype, source in links_in:
        click.echo(f"  <- {ltype} {source}")
    _print_warnings(warnings, "  ")


@trace.command("warnings")
@click.option("--limit", default=1000, show_default=True)
@json_option
@pass_context
def warnings_(ctx: Context, limit: int, as_json: bool) -> None:
    """The imported events stored with broken link rules, and the rules."""
    warned = _graph(ctx).warned(limit)
    if as_json:
        emit_json(warned)
        return
    table(
        [
            [eid, w.get("rule"), w.get("path") or "", str(w.get("message"))[:100]]
            for eid, ws in sorted(warned.items())
            for w in ws
        ],
        ["id", "rule", "at", "message"],
    )


def _walk_command(direction: str) -> Any:
    @click.argument("event_id")
    @click.option(
        "--link-type",
        "-l",
        "link_types",
        multiple=True,
        help="Follow only links of this type (repeatable).",
    )
    @click.option(
        "--event-type",
        "-t",
        "event_types",
        multiple=True,
        help="Show only events of this type (repeatable; the walk passes through others).",
    )
    @click.option("--depth", "--levels", default=10, show_default=True)
    @click.option("--limit", default=100, show_default=True)
    @json_option
    @pass_context
    def command(
        ctx: Context,
        event_id: str,
        link_types: tuple[str, ...],
        event_types: tuple[str, ...],
        depth: int,
        limit: int,
        as_json: bool,
    ) -> None:
        graph = _graph(ctx)
        if graph.get(event_id) is None:
            note = _not_shared_note(graph, event_id)
            if note is None:
                fail(f"no event {event_id} in the graph")
            click.echo(note, err=True)
        walk = graph.upstream if direction == "up" else graph.downstream
        hits = walk(
            event_id,
            [t.upper() for t in link_types] or None,
            depth,
            limit,
            event_types=list(event_types) or None,
        )
        _print_events([(h.event, h.depth, h.via) for h in hits], as_json)

    command.__doc__ = (
        "What EVENT_ID links to, transitively (its causes, what it was made from)."
        if direction == "up"
        else "What links to EVENT_ID, transitively (what was made from it, what judged it)."
    )
    return command


trace.command("upstream")(_walk_command("up"))
trace.command("downstream")(_walk_command("down"))


@trace.command()
@click.argument("event_type")
@click.argument("field")
@click.argument("value")
@json_option
@pass_context
def find(ctx: Context, event_type: str, field: str, value: str, as_json: bool) -> None:
    """Events of EVENT_TYPE whose data FIELD is VALUE, e.g.
    ``find SourceChangeSubmitted gitIdentifier.commitId 1a2b...``,
    ``find ArtifactCreated identity pkg:rpm/...``, ``find CompositionDefined name rc-7``."""
    try:
        found = _graph(ctx).find(event_type, field, value)
    except KeyError as exc:
        fail(str(exc.args[0]))
    _print_events([(e, None, None) for e in found], as_json)


def _change_id(ctx: Context, ident: str) -> str:
    """An event id, or a commit sha of a stored source change."""
    graph = _graph(ctx)
    if graph.get(ident) is not None:
        return ident
    for etype in ("EiffelSourceChangeSubmittedEvent", "EiffelSourceChangeCreatedEvent"):
        found = graph.find(etype, "gitIdentifier.commitId", ident)
        if found:
            return found[-1]["meta"]["id"]
    fail(f"{ident}: neither an event id nor the commit of a stored source change")
    raise AssertionError  # unreachable


@trace.command()
@click.argument("change")
@json_option
@pass_context
def up(ctx: Context, change: str, as_json: bool) -> None:
    """Which artifacts, baselines and confidence levels contain CHANGE (a
    source change's event id, or its commit sha)."""
    from engine.trace import trace_up

    result = trace_up(_graph(ctx), _change_id(ctx, change))
    _print_grouped(result, as_json)


@trace.command()
@click.argument("subject")
@json_option
@pass_context
def down(ctx: Context, subject: str, as_json: bool) -> None:
    """Which source changes, issues and components went into SUBJECT (an
    artifact or baseline event id, an artifact identity, or a baseline name)."""
    from engine.trace import trace_down

    graph = _graph(ctx)
    sid = subject
    if graph.get(subject) is None:
        found = graph.find("ArtifactCreated", "identity", subject) or graph.find(
            "CompositionDefined", "name", subject
        )
        if not found:
            fail(
                _not_shared_note(graph, subject)
                or f"{subject}: no such event, artifact identity or baseline name"
            )
        sid = found[-1]["meta"]["id"]
    _print_grouped(trace_down(graph, sid, placeholders=True), as_json)


def _print_grouped(result: Any, as_json: bool) -> None:
    groups = result if isinstance(result, dict) else result.as_dict()
    if as_json:
        emit_json(groups)
        return
    for name, events in groups.items():
        if not isinstance(events, list):
            continue
        click.echo(f"{name} ({len(events)}):")
        for e in events:
            if isinstance(e, dict) and "meta" in e:
                site = _site(e)
                click.echo(
                    f"  {e['meta']['id']}  {_short(e['meta']['type'])}  "
                    f"{_when(e['meta']['time'])}  {'[' + site + ']  ' if site else ''}{_summary(e)}"
                )
            elif isinstance(e, dict) and "domain" in e and "via" in e:
                click.echo(
                    f"  {e['id']}  not shared with this site (site {e['domain'] or 'unknown'}; "
                    f"{e['via']} from {e['from']})"
                )
            else:
                click.echo(f"  {e}")


@trace.command()
@click.argument("wfid")
@json_option
@pass_context
def run(ctx: Context, wfid: str, as_json: bool) -> None:
    """A run's events (its activity and every step's), by time."""
    from engine.trace import activity_id

    events = _graph(ctx).chain(activity_id(wfid, None, "triggered"))
    if not events:
        fail(f"no events of run {wfid} in the graph")
    _print_events([(e, None, None) for e in events], as_json)


@trace.command()
@click.option("--run", "wfid", help="A run's events.")
@click.option(
    "--event",
    "event_id",
    help="An event and what is downstream of it (a change: everything it went into).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["eiffel", "jsonl", "cdevents"]),
    default="eiffel",
    show_default=True,
)
@click.option("--cloudevents", is_flag=True, help="Wrap each event in a CloudEvents envelope.")
@click.option("--limit", default=10_000, show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write to a file.")
@pass_context
def export(
    ctx: Context,
    wfid: str | None,
    event_id: str | None,
    fmt: str,
    cloudevents: bool,
    limit: int,
    output: str | None,
) -> None:
    """Export a run's or a change's subgraph."""
    from engine.trace import activity_id, write_json, write_jsonl
    from engine.trace import cdevents as cde
    from engine.trace import cloudevents as ce

    if bool(wfid) == bool(event_id):
        fail("give exactly one of --run and --event")
    graph = _graph(ctx)
    if wfid:
        events = graph.chain(activity_id(wfid, None, "triggered"))
    else:
        start = graph.get(event_id)
        if start is None:
            fail(f"no event {event_id} in the graph")
        events = [start, *[h.event for h in graph.downstream(event_id, depth=50, limit=limit)]]
    if not events:
        fail("nothing to export")
    out: list[dict[str, Any]] = list(events)
    if fmt == "cdevents":
        types = {e["meta"]["id"]: e for e in events}

        def resolve(i: str) -> dict[str, Any] | None:
            return types.get(i) or graph.get(i)

        out = cde.to_cdevents(events, resolve=resolve)
    if cloudevents:
        out = [ce.wrap(e) for e in out]
    text = write_jsonl(out) if fmt == "jsonl" else write_json(out)
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"{len(out)} events written to {output}", err=True)
    else:
        click.echo(text.rstrip("\n"))


@trace.command("lead-time")
@click.argument("change", required=False)
@click.option("--level", required=True, help="The confidence level's name (e.g. released).")
@click.option("--value", default="SUCCESS", show_default=True)
@click.option("--since", help="Window start: a date or an age (7d). Default: 30 days ago.")
@click.option("--until", help="Window end (default: now).")
@json_option
@pass_context
def lead_time(
    ctx: Context,
    change: str | None,
    level: str,
    value: str,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """From a source change to its first confidence level LEVEL=VALUE: for
    one CHANGE, or percentiles over every change in a window."""
    from engine.trace import metrics

    graph = _graph(ctx)
    if change:
        seconds = metrics.lead_time(graph, _change_id(ctx, change), level, value)
        if as_json:
            emit_json({"change": change, "level": level, "value": value, "seconds": seconds})
        elif seconds is None:
            click.echo(f"{change} has not reached {level}={value}")
        else:
            click.echo(f"{seconds:.1f}s ({seconds / 3600:.2f}h) to {level}={value}")
        return
    lo, hi = _window(since, until)
    result = metrics.lead_times(graph, lo, hi, level, value)
    emit_json(
        result if isinstance(result, dict) else result.as_dict()
    ) if as_json else _print_summary(result)


@trace.command()
@click.option("--since", help="Window start (default: 30 days ago).")
@click.option("--until", help="Window end (default: now).")
@click.option(
    "--deploy-level",
    default=None,
    help="The confidence level that counts as a deployment (see docs).",
)
@json_option
@pass_context
def dora(
    ctx: Context, since: str | None, until: str | None, deploy_level: str | None, as_json: bool
) -> None:
    """The four DORA metrics over a window."""
    from engine.trace import metrics

    lo, hi = _window(since, until)
    kwargs = {"deploy_level": deploy_level} if deploy_level else {}
    result = metrics.dora(_graph(ctx), lo, hi, **kwargs)
    emit_json(
        result if isinstance(result, dict) else result.as_dict()
    ) if as_json else _print_summary(result)


def _print_summary(result: Any) -> None:
    data = result if isinstance(result, dict) else result.as_dict()
    for key, value in data.items():
        if isinstance(value, dict | list):
            continue
        click.echo(f"{key}: {value}")


@trace.command()
@json_option
@pass_context
def stats(ctx: Context, as_json: bool) -> None:
    """How many events the graph holds, how many wait for a link target,
    how many were imported with link-rule warnings."""
    graph = _graph(ctx)
    s = {**graph.stats(), "warned": graph.warned_count()}
    if as_json:
        emit_json(s)
    else:
        for k, v in s.items():
            click.echo(f"{k}: {v}")


@trace.command()
@click.argument("action", type=click.Choice(["list", "reinject", "drop"]), default="list")
@click.argument("letter_id", required=False)
@json_option
@pass_context
def deadletters(ctx: Context, action: str, letter_id: str | None, as_json: bool) -> None:
    """The events the aggregators set aside (with the broken rule), and
    putting one back on the trace queue or dropping it."""
    from engine.broker import drop_deadletter, list_deadletters, reinject_deadletter
    from engine.trace import TraceTopology

    config = TraceTopology(ctx.config).deadletter_config
    with ctx.connection.clone() as conn:
        if action == "list":
            letters = list_deadletters(config, conn)
            if as_json:
                emit_json(letters)
            else:
                table(
                    [[x["id"], x.get("at"), x["reason"].splitlines()[0][:100]] for x in letters],
                    ["id", "at", "reason"],
                )
            return
        if not letter_id:
            fail(f"{action}: which dead letter? (an id from `boss trace deadletters`)")
        try:
            if action == "reinject":
                reinject_deadletter(config, conn, letter_id)
            else:
                drop_deadletter(config, conn, letter_id)
        except KeyError:
            fail(f"no dead letter {letter_id}")
        click.echo(f"{letter_id}: {'reinjected' if action == 'reinject' else 'dropped'}")
