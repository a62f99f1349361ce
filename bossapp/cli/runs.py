"""``boss launch``, ``ps``, ``show``, ``errors`` and the operations on a run
(``cancel``, ``kill``, ``pause``, ``resume``, ``replay``, ``reapply``).

Reads go straight to the run store; everything that changes a run is a
message on the engine's queue, applied by the engine workers (so the CLI
never races a worker for a run's state).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from engine.commandline import (
    Context,
    emit_json,
    fail,
    json_option,
    parse_fields,
    pass_context,
    table,
    when,
)
from engine.core import messages, runstate, states
from engine.core.loader import LoadError, load_file
from engine.engine import UnknownRun, new_wfid

field_option = click.option(
    "--field",
    "-f",
    "fields",
    multiple=True,
    metavar="KEY=VALUE",
    help="A launch field (repeatable; VALUE read as YAML: n=3 is a number; a.b=x nests).",
)
fields_json_option = click.option(
    "--fields",
    "fields_json",
    metavar="FILE.json",
    help="Fields from a JSON object file (--field wins).",
)


def register(main: click.Group) -> None:
    """Add this module's commands to the ``boss`` group."""
    for command in (launch, ps, show, errors, cancel, kill, pause, resume, replay, reapply):
        main.add_command(command)


# -- launch ---------------------------------------------------------------------------


@click.command()
@click.argument("process")
@field_option
@fields_json_option
@click.option("--wfid", help="Use this run id (a launch with a taken id is refused).")
@click.option(
    "--wait",
    is_flag=True,
    help="Wait until the run ends (or stops on an error) and exit 0 only if it finished.",
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    metavar="SECONDS",
    help="With --wait: give up after this long (exit 3).",
)
@json_option
@pass_context
def launch(
    ctx: Context,
    process: str,
    fields: tuple[str, ...],
    fields_json: str | None,
    wfid: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Launch PROCESS: a definition file, or a process name in the process store.

    The definition is checked here first, so a mistake is reported with its
    file, line and column before anything is sent."""
    launch_fields = parse_fields(fields, fields_json)
    wfid = wfid or new_wfid()
    path = Path(process)
    if path.is_file():
        try:
            definition = load_file(path)
        except LoadError as exc:
            fail(f"{path} has problems:\n{exc}", 2)
        item = messages.launch_item(
            definition=definition.source, filename=str(path), fields=launch_fields, wfid=wfid
        )
    else:
        from engine.process_store import resolve_process

        try:
            resolved = resolve_process(ctx.config.process_dir, process)
            load_file(resolved)
        except (FileNotFoundError, ValueError) as exc:
            fail(f"{process}: not a file, and {exc}", 2)
        except LoadError as exc:
            fail(f"{process} has problems:\n{exc}", 2)
        item = messages.launch_item(process=process, fields=launch_fields, wfid=wfid)
    ctx.send(item)
    if not wait:
        if as_json:
            emit_json({"wfid": wfid})
        else:
            click.echo(wfid)
        return
    status = _wait(ctx, wfid, timeout, quiet=as_json)
    if as_json:
        emit_json(_info(ctx, wfid))
    else:
        click.echo(f"{wfid}: {status}")
    if status is None:
        raise SystemExit(3)
    if status != states.FINISHED:
        raise SystemExit(1)


def _wait(ctx: Context, wfid: str, timeout: float | None, quiet: bool) -> str | None:
    """Follow a run until it ends or has an error; None on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: set[str] = set()
    delay = 0.02
    while deadline is None or time.monotonic() < deadline:
        loaded = ctx.store.load_run(wfid)
        if loaded is not None:
            st = runstate.upgrade(loaded[0])
            if not quiet:
                for pos in ctx.engine.positions(wfid):
                    key = f"{pos.eid}:{pos.state}"
                    if key not in seen:
                        seen.add(key)
                        click.echo(f"  {pos.name or pos.expid} ({pos.expid}) {pos.state}", err=True)
            status = runstate.status(st)
            if status in states.ENDED_RUN_STATES or status == states.ERROR:
                return status
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    return None


# -- queries ---------------------------------------------------------------------------


def _info(ctx: Context, wfid: str) -> dict[str, Any]:
    try:
        info = ctx.engine.run(wfid)
    except UnknownRun:
        fail(f"no run {wfid}")
    return info.as_dict()


@click.command()
@click.option("--status", type=click.Choice(sorted(states.RUN_STATES)), help="Only this status.")
@click.option("--name", help="Only runs of this process name.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--offset", type=int, default=0)
@json_option
@pass_context
def ps(
    ctx: Context, status: str | None, name: str | None, limit: int, offset: int, as_json: bool
) -> None:
    """List runs, newest first, with counts per status."""
    runs = ctx.engine.list_runs(status=status, name=name, offset=offset, limit=limit)
    counts = ctx.engine.count_runs()
    if as_json:
        emit_json(
            {
                "counts": counts,
                "runs": [
                    {
                        "wfid": r.wfid,
                        "name": r.name,
                        "status": r.status,
                        "launched_at": r.launched_at,
                    }
                    for r in runs
                ],
            }
        )
        return
    table(
        [[r.wfid, r.name, r.status, when(r.launched_at)] for r in runs],
        ["wfid", "process", "status", "launched (UTC)"],
    )
    click.echo("  ".join(f"{k}: {v}" for k, v in counts.items() if v) or "no runs")


@click.command()
@click.argument("wfid")
@json_option
@pass_context
def show(ctx: Context, wfid: str, as_json: bool) -> None:
    """Show one run: status, where it is, errors and fields."""
    info = _info(ctx, wfid)
    if as_json:
        info["tree"] = (
            ctx.engine.tree(wfid) if info["status"] not in states.ENDED_RUN_STATES else None
        )
        emit_json(info)
        return
    click.echo(f"run      {info['wfid']}")
    click.echo(
        f"process  {info['name']}" + (f" (rev {info['revision']})" if info["revision"] else "")
    )
    click.echo(f"status   {info['status']}")
    click.echo(
        f"launched {when(info['launched_at'])}  updated {when(info['updated_at'])}"
        + (f"  ended {when(info['ended_at'])}" if info["ended_at"] else "")
    )
    if info["positions"]:
        click.echo("at:")
        for p in info["positions"]:
            click.echo(
                f"  {p['expid']:<10} {p['kind']:<12} {p['name'] or '':<24} {p['state']}"
                f"  since {when(p['since'])}"
            )
    if info["errors"]:
        click.echo("errors:")
        for e in info["errors"]:
            click.echo(f"  [{e['id']}] at {e.get('expid')}: {e.get('class')}: {e.get('message')}")
            if e.get("traceback"):
                for line in str(e["traceback"]).rstrip().splitlines():
                    click.echo(f"      {line}")
    import yaml

    click.echo("fields:")
    click.echo(
        "  "
        + (
            yaml.safe_dump(info["fields"], sort_keys=True, allow_unicode=True)
            .rstrip()
            .replace("\n", "\n  ")
            if info["fields"]
            else "{}"
        )
    )


@click.command()
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--offset", type=int, default=0)
@json_option
@pass_context
def errors(ctx: Context, limit: int, offset: int, as_json: bool) -> None:
    """List unresolved errors across runs (newest run first)."""
    errs = ctx.engine.list_errors(offset=offset, limit=limit)
    if as_json:
        emit_json(errs)
        return
    table(
        [
            [
                e["wfid"],
                e["id"],
                e.get("expid"),
                e.get("participant") or e.get("name"),
                f"{e.get('class')}: {e.get('message')}",
            ]
            for e in errs
        ],
        ["wfid", "error", "step", "participant", "message"],
    )


# -- operations ---------------------------------------------------------------------------


def _op(ctx: Context, msg: messages.Message, done: str) -> None:
    """Send an operation's message (``engine.core.messages.operation``) to
    an existing run."""
    wfid = msg["wfid"]
    if ctx.store.load_run(wfid) is None:
        fail(f"no run {wfid}")
    ctx.send(msg)
    click.echo(done)


@click.command()
@click.argument("wfid")
@click.option("--step", help="Cancel only this step (eid or expid).")
@pass_context
def cancel(ctx: Context, wfid: str, step: str | None) -> None:
    """Cancel a run (its on_cancel handlers run), or one step of it."""
    _op(
        ctx,
        messages.operation("cancel", wfid, eid=step),
        f"cancel sent to {wfid}" + (f" (step {step})" if step else ""),
    )


@click.command()
@click.argument("wfid")
@pass_context
def kill(ctx: Context, wfid: str) -> None:
    """End a run at once, without on_cancel handlers."""
    _op(ctx, messages.operation("kill", wfid), f"kill sent to {wfid}")


@click.command()
@click.argument("wfid")
@pass_context
def pause(ctx: Context, wfid: str) -> None:
    """Hold a run: replies are kept until it is resumed."""
    _op(ctx, messages.operation("pause", wfid), f"pause sent to {wfid}")


@click.command()
@click.argument("wfid")
@pass_context
def resume(ctx: Context, wfid: str) -> None:
    """Resume a paused run."""
    _op(ctx, messages.operation("resume", wfid), f"resume sent to {wfid}")


@click.command()
@click.argument("wfid")
@click.option("--error", "error_id", help="Which error (id or step); default: the first.")
@field_option
@fields_json_option
@pass_context
def replay(
    ctx: Context, wfid: str, error_id: str | None, fields: tuple[str, ...], fields_json: str | None
) -> None:
    """Replay a failed step, with fields merged over its workitem."""
    try:
        info = ctx.engine.run(wfid)
    except UnknownRun:
        fail(f"no run {wfid}")
    if not info.errors:
        fail(f"run {wfid} has no error to replay")
    if error_id and not any(
        e["id"] == error_id or e["eid"] == error_id or e.get("expid") == error_id
        for e in info.errors
    ):
        fail(f"run {wfid} has no error {error_id}")
    merged = parse_fields(fields, fields_json) or None
    ctx.send(messages.operation("replay", wfid, error_id=error_id, fields=merged))
    click.echo(f"replay sent to {wfid}")


@click.command()
@click.argument("wfid")
@click.argument("step")
@field_option
@fields_json_option
@pass_context
def reapply(
    ctx: Context, wfid: str, step: str, fields: tuple[str, ...], fields_json: str | None
) -> None:
    """Run a live step of a run again (by eid or expid)."""
    _op(
        ctx,
        messages.operation(
            "reapply", wfid, eid=step, fields=parse_fields(fields, fields_json) or None
        ),
        f"re-apply of {step} sent to {wfid}",
    )
