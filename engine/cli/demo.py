"""``boss demo``: the whole system on one machine, with nothing to set up."""

from __future__ import annotations

import click

from engine.cli.context import Context, pass_context


@click.command()
@pass_context
def demo(ctx: Context) -> None:
    """Run a demo CI pipeline: an embedded Valkey as store and broker, an
    engine worker and participant processes, a failure that is replayed."""
    from engine.demo import run_demo

    result = run_demo(ctx.config, out=click.echo)
    if result["status"] != "finished":
        raise SystemExit(1)
