"""``boss doctor``: check an installation and print what to fix
(``engine.doctor`` does the checks)."""

from __future__ import annotations

import sys

import click

from engine.commandline import Context, emit_json, json_option, pass_context

#: how each status is shown
_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


@click.command()
@click.option(
    "--timeout",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds to wait for the store and the broker.",
)
@json_option
@pass_context
def doctor(ctx: Context, timeout: float, as_json: bool) -> None:
    """Check this installation: the configuration, the store, the broker
    and its queues, the engine workers, the aggregator, dead letters and
    participants; print what to fix.

    Exit status: 0 when every check is ok, 1 when any fails, 2 when some
    only warn."""
    from engine.doctor import diagnose

    report = diagnose(ctx.config_path, timeout=timeout, **ctx.overrides)
    if as_json:
        emit_json(report.as_dict())
        sys.exit(report.exit_code)
    width = max(len(f.check) for f in report.findings)
    for f in report.findings:
        click.echo(f"{_MARK[f.status]}  {f.check.ljust(width)}  {f.found}")
        if f.fix:
            click.echo(f"      {' ' * width}  fix: {f.fix}")
    counts = {s: sum(f.status == s for f in report.findings) for s in ("ok", "warn", "fail")}
    click.echo(f"\n{counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s)")
    sys.exit(report.exit_code)
