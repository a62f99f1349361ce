"""``boss ci import|rebuild|systems|system``: the CI systems that report on the
projects' changes (issue 17; ``docs/radar.md``). Scripts rely on these names
and on ``systems --json``'s fields."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from engine.commandline import Context, emit_json, json_option, pass_context, table, when

__all__ = ["register"]


def register(main: click.Group) -> None:
    main.add_command(radar)


def _feed(ctx: Context) -> Any:
    from engine.config import ConfigError
    from engine.radar import RadarFeed, RadarSettings

    try:
        settings = RadarSettings.load(ctx.config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return RadarFeed.from_config(ctx.config, settings)


def _instant(value: str | None) -> float:
    """``now``, epoch seconds or an ISO 8601 time."""
    from engine.radar import parse_instant

    try:
        return parse_instant(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from None


def _window(since: str, until: float) -> float:
    from engine.core.durations import DurationError, parse_duration

    if since == "all":
        return 0.0
    try:
        return until - parse_duration(since)
    except (DurationError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@click.group("ci")
def radar() -> None:
    """How every CI system reporting on the projects' changes performs."""


@radar.command("import")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--gerrit", "gerrit", is_flag=True, help="The files are stream-events captures (JSON lines)."
)
@click.option(
    "--forge",
    type=click.Choice(["github", "gitlab"]),
    help="The deliveries' forge when their names and bodies do not say.",
)
@click.option("--runs", is_flag=True, help="Also BOSS's own runs that ended (the run store).")
@json_option
@pass_context
def import_cmd(
    ctx: Context,
    paths: tuple[Path, ...],
    gerrit: bool,
    forge: str | None,
    runs: bool,
    as_json: bool,
) -> None:
    """Import history: Gerrit stream-events captures (``*.jsonl``, or
    --gerrit), directories or files of recorded GitHub/GitLab deliveries,
    and with --runs BOSS's runs."""
    if not paths and not runs:
        raise click.UsageError("give files or directories to import, or --runs")
    feed = _feed(ctx)
    started = time.perf_counter()
    out: dict[str, Any] = {"files": [], "runs": None}
    failed = False
    for path in paths:
        if gerrit or path.suffix == ".jsonl":
            with path.open("rb") as fh:
                result = feed.import_gerrit(fh, str(path))
        else:
            result = feed.import_deliveries([path], forge)
        failed |= bool(result.errors)
        out["files"].append({"path": str(path), **result.as_dict()})
    if runs:
        out["runs"] = feed.sync_runs(ctx.store)
    feed.store.prune()
    out["seconds"] = round(time.perf_counter() - started, 3)
    if as_json:
        emit_json(out)
    else:
        for f in out["files"]:
            click.echo(
                f"{f['path']}: {f['events']} events, {f['records']} records, "
                f"{f['stored']} stored (the rest older than the retention)"
                if f["stored"] < f["records"]
                else f"{f['path']}: {f['events']} events, {f['stored']} records stored"
            )
            for e in f["errors"]:
                click.echo(f"  unreadable: {e['where']}: {e['reason']}", err=True)
        if runs:
            click.echo(f"BOSS runs: {out['runs']} reports stored")
    if failed:
        sys.exit(1)


@radar.command("rebuild")
@json_option
@pass_context
def rebuild_cmd(ctx: Context, as_json: bool) -> None:
    """Lay out the rows the figures are read from again, from every stored
    record (a store filled by a version before the rows; stop the
    collector first)."""
    from engine.radar import rows

    feed = _feed(ctx)
    started = time.perf_counter()
    done = rows.rebuild(feed.store)
    out = {"patch_sets": done, "seconds": round(time.perf_counter() - started, 3)}
    if as_json:
        emit_json(out)
    else:
        click.echo(f"rows of {done} patch sets laid out in {out['seconds']:.1f} s")


@radar.command("systems")
@click.option("--since", default="7d", show_default=True, help="The window: a duration, or all.")
@click.option("--until", "until_", default="now", help="The window's end (epoch or ISO time).")
@click.option("--project", help="Only this project.")
@json_option
@pass_context
def systems_cmd(ctx: Context, since: str, until_: str, project: str | None, as_json: bool) -> None:
    """A table of the CI systems with their figures and health."""
    from engine.radar import duration_text, window

    feed = _feed(ctx)
    until = _instant(until_)
    figures = window(
        feed.store, feed.settings, since=_window(since, until), until=until, project=project
    )
    if as_json:
        emit_json(figures)
        return
    rows = []
    for f in figures:
        state = {True: "healthy", False: "UNHEALTHY", None: "unclassified"}[f["healthy"]]
        rows.append(
            [
                f["name"] + (" (gate)" if f["gate"] else ""),
                f["reports"],
                f"{f['reported']}/{f['patch_sets']}",
                _pct(f["coverage"]),
                _pct(f["success_rate"]),
                _pct(f["gate_pass_failure_rate"]),
                _pct(f["agreement"]),
                duration_text(f["response_p50_s"]),
                duration_text(f["response_p90_s"]),
                _pct(f["recheck_rate"]),
                duration_text(f["since_last_s"]),
                duration_text(f["longest_silence_s"]),
                state,
            ]
        )
    table(
        rows,
        [
            "system",
            "reports",
            "patch sets",
            "coverage",
            "success",
            "fail|gate ok",
            "agree",
            "p50",
            "p90",
            "rechecks",
            "last",
            "silence",
            "health",
        ],
    )
    for f in figures:
        for reason in f["reasons"] if f["healthy"] is False else ():
            click.echo(f"{f['name']}: {reason}")


@radar.command("system")
@click.argument("system")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@json_option
@pass_context
def show_cmd(ctx: Context, system: str, limit: int, as_json: bool) -> None:
    """A CI system's newest reports."""
    from engine.radar import duration_text

    feed = _feed(ctx)
    known = feed.store.systems()
    if system not in known:
        match = [n for n in known if n.lower() == system.lower()]
        if not match:
            raise click.ClickException(f"no CI system {system!r} (boss ci systems lists them)")
        system = match[0]
    reports = feed.store.recent(system, limit)
    if as_json:
        emit_json({"name": system, **known[system], "reports": reports})
        return
    table(
        [
            [
                when(r["at"]),
                r["project"],
                r["change"],
                r["patchset"]
                if r["patchset"] and len(r["patchset"]) < 12
                else (r["patchset"] or "")[:10],
                r["verdict"],
                duration_text(r["at"] - r["appeared"]) if r["appeared"] is not None else "-",
                r["detail"],
            ]
            for r in reports
        ],
        ["at", "project", "change", "patch set", "verdict", "response", "detail"],
    )


@radar.command("watch")
@click.option("--once", is_flag=True, help="Look once and exit (a cron job, a test).")
@click.option(
    "--every", type=float, default=None, help="Seconds between looks ([radar] alert_every)."
)
@click.option("--until", "until_", default="now", help="With --once: the look's time.")
@json_option
@pass_context
def watch_cmd(ctx: Context, once: bool, every: float | None, until_: str, as_json: bool) -> None:
    """Launch [radar] alert_process when a CI system's health changes.

    Every look first reads BOSS's own runs that ended since the last look
    (BOSS is one more CI system: as `boss ci import --runs`), then judges
    each system over the last alert_window; a system that turned unhealthy
    (or healthy again) since the previous look gets one launch of
    alert_process, with fields.radar (system, healthy, reasons, figures)
    and fields.msg. Runs until stopped, or once with --once."""
    from engine.broker import Publisher
    from engine.radar import watch

    feed = _feed(ctx)
    settings = feed.settings
    if not settings.alert_process:
        click.echo("[radar] alert_process is not set: changes are reported here only", err=True)
    publisher = Publisher(ctx.config)
    try:
        while True:
            now = _instant(until_) if once else time.time()
            feed.sync_runs(ctx.store)
            alerts = watch(feed.store, settings, now=now, launch=publisher.send)
            if as_json:
                emit_json(
                    [
                        {
                            **a.figures,
                            "system": a.system,
                            "healthy": a.healthy,
                            "was": a.was,
                            "reasons": list(a.reasons),
                        }
                        for a in alerts
                    ]
                )
            else:
                for a in alerts:
                    click.echo(f"{when(now)}  {a.message}")
            if once:
                return
            time.sleep(every or settings.alert_every)
    except KeyboardInterrupt:
        pass
    finally:
        publisher.close()
