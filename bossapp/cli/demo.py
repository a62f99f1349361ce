"""``boss demo``: the whole system on one machine, with nothing to set up."""

from __future__ import annotations

import click

from engine.commandline import Context, pass_context


@click.command()
@click.option(
    "--web",
    "web_bind",
    default="127.0.0.1:8080",
    show_default=True,
    help="Serve the web UI here while the demo runs ('' for none; the next free "
    "port is taken when this one is busy).",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Keep the system and the web UI running after the pipeline, until Ctrl-C "
    "or SIGTERM (either stops every process the demo started, at any time).",
)
@pass_context
def demo(ctx: Context, web_bind: str, serve: bool) -> None:
    """Run a demo CI pipeline: an embedded Valkey as store and broker, an
    engine worker and participant processes, a failure that is replayed,
    the change traced to its release candidate; the web UI serves meanwhile."""
    from bossapp.demo import DemoStopped, run_demo

    try:
        result = run_demo(ctx.config, out=click.echo, web=web_bind or None, serve=serve)
    except DemoStopped as exc:  # SIGINT/SIGTERM: everything it started is stopped
        raise SystemExit(128 + exc.signum) from None
    if result["status"] != "finished":
        raise SystemExit(1)
