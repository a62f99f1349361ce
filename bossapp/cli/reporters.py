"""``boss reporter serve|errors|show|retry``: report runs' starts and ends
to the forge of their change (GitHub, GitLab, Gerrit), and see what failed.
``docs/reporters.md`` describes them."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from engine.commandline import Context, emit_json, fail, json_option, pass_context, table, when

__all__ = ["register"]


def register(main: click.Group) -> None:
    main.add_command(reporter)


def _settings(ctx: Context, **overrides: Any) -> Any:
    from engine.config import ConfigError
    from engine.reporters import ReporterSettings

    try:
        return ReporterSettings.load(ctx.config, **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _jobs(ctx: Context) -> Any:
    from engine.reporters import Jobs

    return Jobs(ctx.store.client, ctx.config.key_prefix, remember=_settings(ctx).remember)


@click.group()
def reporter() -> None:
    """Report runs to the forge of their change (statuses, checks, votes)."""


@reporter.command("serve")
@click.option("--threads", type=int, help="Threads sending reports (default: [reporters] threads).")
@click.option("--loglevel", default="INFO", show_default=True)
@pass_context
def serve(ctx: Context, threads: int | None, loglevel: str) -> None:
    """Consume the run transitions and report them until SIGTERM."""
    from engine.reporters import ReporterService

    ctx.start_logging(loglevel)
    overrides = {"threads": threads} if threads else {}
    settings = _settings(ctx, **overrides)
    service = ReporterService(ctx.config, settings, ctx.store.client, ctx.store)
    done = threading.Event()

    def stop(*_: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    service.start()
    click.echo(f"reporter: consuming {settings.queue}", err=True)
    done.wait()
    service.stop()
    r = service.reporter
    click.echo(f"reporter: stopped; {r.sent} reports sent, {r.failed} failed", err=True)


@reporter.command("errors")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
@pass_context
def errors(ctx: Context, limit: int, as_json: bool) -> None:
    """The reports that failed for good, newest first."""
    rows = _jobs(ctx).errors(limit)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no reporter errors")
        return
    table(
        [[when(r.get("at")), r.get("id"), r.get("forge"), r.get("error")] for r in rows],
        ["at", "job", "forge", "error"],
    )


@reporter.command("show")
@click.argument("wfid")
@json_option
@pass_context
def show(ctx: Context, wfid: str, as_json: bool) -> None:
    """What was (or is being) reported for a run."""
    rows = _jobs(ctx).of_run(wfid)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"nothing reported for {wfid}")
        return
    table(
        [
            [
                r["spec"]["transition"],
                r["spec"]["action"],
                r["spec"]["outcome"],
                r.get("state"),
                r.get("attempts"),
                r.get("error") or "",
            ]
            for r in rows
        ],
        ["transition", "action", "outcome", "state", "attempts", "error"],
    )


@reporter.command("retry")
@click.argument("job_ids", nargs=-1, required=True)
@pass_context
def retry(ctx: Context, job_ids: tuple[str, ...]) -> None:
    """Send failed reports again (ids from ``boss reporter errors``)."""
    jobs = _jobs(ctx)
    missing = [j for j in job_ids if not jobs.retry(j)]
    for j in job_ids:
        if j not in missing:
            click.echo(f"scheduled {j}")
    if missing:
        fail(f"no such report: {', '.join(missing)}")
