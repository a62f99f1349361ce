"""The web UI's commands, which ``boss`` finds through the ``boss.commands``
entry point (``pyproject.toml``), so that the engine and the ``boss``
command never import the web UI: ``boss web`` (serve the web UI; ``boss
web user add|passwd|list|remove``) and ``boss stats`` (the CI health
figures of the web UI's health page).

``boss web`` needs no configuration: on the embedded default it serves the
runs of the embedded Valkey at http://127.0.0.1:8080. The ``[web]``
section (``webui.settings``) holds its own settings; ``docs/webui.md``.
"""

from __future__ import annotations

import os
from typing import Any

import click

from engine.commandline import (
    Context,
    emit_json,
    fail,
    json_option,
    pass_context,
    table,
    when,
)

__all__ = ["stats", "web"]


def _web_config(ctx: Context, **overrides: Any) -> Any:
    from engine.config import ConfigError
    from webui.settings import WebConfig

    try:
        return WebConfig.load(ctx.config.source or None, **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _users(ctx: Context) -> Any:
    from webui.users import Users

    return Users(ctx.store.client, ctx.config.key_prefix)


def _password(prompt: str) -> str:
    env = os.environ.get("BOSS_WEB_PASSWORD")
    if env:
        return env
    return click.prompt(prompt, hide_input=True, confirmation_prompt=True)


@click.group(invoke_without_command=True)
@click.option("--bind", help="host:port to listen on (default: [web] bind, 127.0.0.1:8080).")
@click.option(
    "--create-admin",
    metavar="NAME",
    help="Create this admin first (password from $BOSS_WEB_PASSWORD, else asked).",
)
@click.option("--debug", is_flag=True, help="Flask's debugger and reloader (never in production).")
@click.option(
    "--loglevel",
    default="INFO",
    show_default=True,
    help="Log level (requests are logged at INFO; [boss] log_format = json: one JSON object "
    "a line).",
)
@pass_context
@click.pass_context
def web(
    cctx: click.Context,
    ctx: Context,
    bind: str | None,
    create_admin: str | None,
    debug: bool,
    loglevel: str,
) -> None:
    """Serve the web UI (runs, errors, launch, participants, trace, health)."""
    if cctx.invoked_subcommand is not None:
        return
    ctx.start_logging(loglevel)
    from webui.app import create_app
    from webui.users import UserError

    settings = _web_config(ctx, bind=bind)
    host, port = settings.host_port()
    if create_admin:
        try:
            users = _users(ctx)
            if users.get(create_admin) is None:
                users.add(create_admin, _password(f"password for {create_admin}"), "admin")
                click.echo(f"created admin {create_admin}")
            else:
                click.echo(f"user {create_admin} exists: kept as is")
        except UserError as exc:
            fail(str(exc))
    from webui.serve import BossRequestHandler

    app = create_app(ctx.config, web=settings)
    click.echo(
        f"BOSS web UI on http://{host}:{port}/ (store: "
        f"{'embedded Valkey' if not ctx.config.redis_url else 'configured Redis'})"
    )
    click.echo(anonymous_notice(settings))
    if not _users(ctx).list():
        click.echo(
            "no users yet: `boss web --create-admin NAME` or `boss web user add NAME "
            "--role admin` to log in and act"
        )
    app.run(
        host=host,
        port=port,
        threaded=True,
        debug=debug,
        use_reloader=debug,
        request_handler=BossRequestHandler,
    )


def anonymous_notice(settings: Any) -> str:
    """What ``boss web`` says at start about anonymous read access, and why."""
    if settings.anonymous is not None:
        state = "on" if settings.anonymous else "off"
        return f"anonymous read access is {state} ([web] anonymous = {str(state == 'on').lower()})"
    if settings.loopback:
        return (
            f"anonymous read access is on: bound to the loopback address {settings.bind} "
            "([web] anonymous = false turns it off)"
        )
    return (
        f"anonymous read access is off: bound to {settings.bind}, not a loopback address "
        "(visitors log in to look; [web] anonymous = true opens it)"
    )


@web.group("user")
def user() -> None:
    """Local users of the web UI (stored in Redis, passwords hashed with scrypt)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["user", "admin"]), default="user", show_default=True)
@pass_context
def user_add(ctx: Context, name: str, role: str) -> None:
    """Add a user (password from $BOSS_WEB_PASSWORD, else asked twice)."""
    from webui.users import UserError

    try:
        _users(ctx).add(name, _password(f"password for {name}"), role)
    except UserError as exc:
        fail(str(exc))
    click.echo(f"added {role} {name}")


@user.command("passwd")
@click.argument("name")
@click.option("--role", type=click.Choice(["user", "admin"]), help="Change the role too.")
@pass_context
def user_passwd(ctx: Context, name: str, role: str | None) -> None:
    """Set a user's password (and role)."""
    from webui.users import UserError

    try:
        _users(ctx).passwd(name, _password(f"new password for {name}"), role)
    except UserError as exc:
        fail(str(exc))
    click.echo(f"changed {name}")


@user.command("list")
@json_option
@pass_context
def user_list(ctx: Context, as_json: bool) -> None:
    """List the users."""

    users = _users(ctx).list()
    if as_json:
        emit_json(users)
        return
    table(
        [[u["name"], u["role"], when(u.get("created"))] for u in users],
        ["name", "role", "created (UTC)"],
    )


@user.command("remove")
@click.argument("name")
@pass_context
def user_remove(ctx: Context, name: str) -> None:
    """Remove a user (their sessions end at their next request)."""
    if not _users(ctx).remove(name):
        fail(f"no user {name}")
    click.echo(f"removed {name}")


@click.command()
@click.option("--since", default="7d", show_default=True, help="The window: 7d, 12h, 30m.")
@json_option
@pass_context
def stats(ctx: Context, since: str, as_json: bool) -> None:
    """CI health per participant and per process: success rate, duration and
    queue-wait percentiles, failure streaks (the web UI's health page)."""
    from engine.trace import Graph, graph_prefix
    from webui.health import Health, parse_since

    try:
        seconds = parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    health = Health(
        ctx.store.client,
        ctx.config.key_prefix,
        Graph(ctx.store.client, prefix=graph_prefix(ctx.config)),
    )
    health.update(force=True)
    report = health.report(seconds)
    if as_json:
        emit_json(report)
        return

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}s"

    for title, key in (("participants", "participants"), ("processes", "processes")):
        click.echo(f"{title} (last {since}):")
        rows = [
            [
                name,
                h["runs"],
                "-" if h["success_rate"] is None else f"{h['success_rate'] * 100:.1f}%",
                h["failed"],
                fmt(h["duration"]["p50"]),
                fmt(h["duration"]["p90"]),
                fmt(h["queue_wait"]["p50"]),
                h["streak"],
                h["max_streak"],
            ]
            for name, h in report[key].items()
        ]
        if rows:
            table(
                rows,
                [
                    "name",
                    "runs",
                    "success",
                    "failed",
                    "p50",
                    "p90",
                    "wait p50",
                    "streak",
                    "max streak",
                ],
            )
        else:
            click.echo("  nothing finished in this window")
