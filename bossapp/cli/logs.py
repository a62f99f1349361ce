"""``boss logs WFID [--step EXPID] [-f]``: the step logs of a run.

What participants' handlers logged and printed while they worked on the
run's steps (``participants.steplog`` captures it, the aggregator process
stores it: ``engine.store.steplogs``), read straight from the store, each
line tagged with its step and participant. ``-f`` follows the run until it
ends (or Ctrl-C), blocking in Redis between lines.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click

from engine.commandline import Context, fail, pass_context
from engine.store.steplogs import Line, StepLogs, StepLogsUnavailable, run_over, step_logs_for


def register(main: click.Group) -> None:
    """Add this module's commands to the ``boss`` group."""
    main.add_command(logs)


def format_line(line: Line) -> str:
    """``time step participant level: text``; a line's further lines
    (a traceback) indented under it."""
    at = datetime.fromtimestamp(line.t, UTC).strftime("%H:%M:%S.%f")[:-3]
    head = f"{at} {line.step} {line.participant} {line.level}: "
    text = line.text.replace("\n", "\n" + " " * 4)
    return head + text


@click.command()
@click.argument("wfid")
@click.option("--step", "-s", metavar="EXPID", help="Only this step (its expid, e.g. 0_1).")
@click.option("--follow", "-f", is_flag=True, help="Follow the run until it ends (or Ctrl-C).")
@click.option("--after", default="0-0", metavar="ID", help="Only lines after this stream id.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for scripts.")
@pass_context
def logs(
    ctx: Context, wfid: str, step: str | None, follow: bool, after: str, as_json: bool
) -> None:
    """Print what the participants logged and printed on WFID's steps."""
    config = ctx.config
    try:
        steplogs = step_logs_for(
            ctx.store,
            ttl=config.step_log_ttl,
            max_lines=config.step_log_lines,
            max_bytes=config.step_log_bytes,
        )
    except StepLogsUnavailable as exc:
        fail(str(exc))
    if ctx.store.load_run(wfid) is None and not steplogs.steps(wfid):
        fail(f"no run {wfid} (and no step logs kept for it)")

    def show(lines: list[Line]) -> None:
        for line in lines:
            click.echo(json.dumps(line.as_dict()) if as_json else format_line(line))

    try:
        if follow:
            for lines, _last in steplogs.follow(
                wfid,
                over=lambda: run_over(ctx.store, wfid),
                step=step,
                after=after,
                pending=lambda: _batches_waiting(config),
            ):
                show(lines)
        else:
            _print_all(steplogs, wfid, step, after, show)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _batches_waiting(config: Any) -> bool:
    """Whether step-log batches wait on the broker for the writer (a run's
    last lines may be among them); False when the broker cannot tell."""
    from engine.broker import queue_depths

    queue = config.step_log_queue
    return bool(queue_depths(config, [queue]).get(queue, {}).get("messages"))


def _print_all(steplogs: StepLogs, wfid: str, step: str | None, after: str, show: Any) -> None:
    last = after
    while True:
        lines, nxt = steplogs.read(wfid, step=step, after=last)
        show(lines)
        if nxt == last:
            return
        last = nxt
