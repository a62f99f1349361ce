"""``boss demo``: the whole system on one machine, with nothing to set up."""

from __future__ import annotations

import click

from engine.cli.context import Context, pass_context


@click.command()
@click.option("--store", "store_url", default=None,
              help="Run store URL (default: the embedded Valkey under the state directory).")
@pass_context
def demo(ctx: Context, store_url: str | None) -> None:
    """Run a demo CI pipeline on the embedded Valkey, with in-process participants."""
    from engine.demo import run_demo

    result = run_demo(store_url or ctx.config.redis_url or None, out=click.echo)
    if result["status"] != "finished":
        raise SystemExit(1)
