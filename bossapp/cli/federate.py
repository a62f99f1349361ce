"""``boss federate``: this site's traceability events to its peer sites and
theirs in (``docs/federation.md``).

``serve`` runs the bridge (the CloudEvents endpoint, a sender per peer, a
receiver per shovel peer);
``peers`` shows the configured peers and their outbound queues; ``setup``
declares the durable outbound queues, so that events published before the
bridge first runs wait for it.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from engine.commandline import Context, emit_json, fail, json_option, pass_context, table

__all__ = ["register"]


def register(main: click.Group) -> None:
    main.add_command(federate)


def _settings(ctx: Context) -> Any:
    from engine.federation import load_federation
    from engine.settings import ConfigError

    try:
        return load_federation(ctx.config)
    except ConfigError as exc:
        fail(str(exc))
        raise AssertionError from None  # unreachable


@click.group()
def federate() -> None:
    """Exchange traceability events with peer sites."""


@federate.command()
@click.option("--bind", help="host:port (default: [federation] bind, 127.0.0.1:8090).")
@click.option("--loglevel", default="info", show_default=True)
@pass_context
def serve(ctx: Context, bind: str | None, loglevel: str) -> None:
    """Serve POST /federation/v1/events and send this site's events to the peers."""
    from engine.federation import FederationBridge

    ctx.start_logging(loglevel)
    settings = _settings(ctx)
    if not settings.peer_settings:
        fail("no peers: [federation] peers = name, ... with a [federation.peer.<name>] each")
    try:
        bridge = FederationBridge(ctx.config, settings, bind=bind).start()
    except (OSError, ValueError) as exc:
        fail(f"cannot start the bridge: {exc}")
        return
    done = threading.Event()

    def stop(*_: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    site = settings.site_name(ctx.config)
    click.echo(
        f"site {site}: receiving on {bridge.url}; sending to "
        f"{', '.join(s.peer.name for s in bridge.senders) or 'no peer'}",
        err=True,
    )
    while not done.wait(1.0):
        pass
    bridge.stop()
    for s in bridge.senders:
        click.echo(
            f"{s.peer.name}: {s.stats.sent} event(s) sent in {s.stats.requests} request(s), "
            f"{s.stats.failures} failed attempt(s)",
            err=True,
        )


@federate.command()
@json_option
@pass_context
def peers(ctx: Context, as_json: bool) -> None:
    """The peer sites: domain, URL, filters, outbound queue."""
    settings = _settings(ctx)
    rows = [
        {
            "name": p.name,
            "domain": p.site_domain,
            "url": p.url,
            "transport": p.transport,
            "auth": "+".join(
                x for x in ("hmac" if p.secret else "", "token" if p.token else "") if x
            ),
            "publish": p.publish.as_dict(),
            "accept": p.accept.as_dict(),
            "queue": settings.queue_name(p) if p.url or p.transport == "shovel" else "",
        }
        for p in settings.peer_settings
    ]
    if as_json:
        emit_json({"site": settings.site_name(ctx.config), "peers": rows})
        return
    click.echo(f"site: {settings.site_name(ctx.config)}")
    table(
        [
            [
                r["name"],
                r["domain"],
                r["transport"],
                r["url"] or ("" if r["transport"] == "shovel" else "(receive only)"),
                r["auth"] or "queue permissions",
                r["queue"],
            ]
            for r in rows
        ],
        ["peer", "domain", "transport", "url", "auth", "queue"],
    )


@federate.command()
@pass_context
def setup(ctx: Context) -> None:
    """Declare the durable queues: outbound (one per peer that is sent to,
    plus the ready queue a shovel takes from) and inbound (a shovel peer's)."""
    from engine.federation import Inbound, Receiver, Sender

    settings = _settings(ctx)
    for p in settings.peer_settings:
        if p.url or p.transport == "shovel":
            Sender(ctx.config, settings, p).declare()
            click.echo(f"{settings.queue_name(p)}: declared, bound to {ctx.config.event_exchange}")
        if p.transport == "shovel":
            click.echo(f"{settings.ready_queue_name(p)}: declared (the shovel's source)")
            Receiver(Inbound(ctx.config, settings), p).declare()
            click.echo(f"{settings.in_queue_name(p)}: declared (the peer's shovel's destination)")
