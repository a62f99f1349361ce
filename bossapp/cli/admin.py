"""``boss worker``, ``workers``, ``participants``, ``register``,
``unregister`` and ``deadletters``."""

from __future__ import annotations

from typing import Any

import click

from engine.commandline import Context, emit_json, fail, json_option, pass_context, table


def register(main: click.Group) -> None:
    """Add this module's commands to the ``boss`` group."""
    for command in (worker, workers, participants, register_cmd, unregister, deadletters):
        main.add_command(command)


@click.command()
@click.option(
    "--threads",
    type=int,
    default=None,
    help="Consumer threads of the engine queue (default: engine_threads).",
)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--hostname", default=None, help="Celery node name (default boss@HOST).")
@pass_context
def worker(ctx: Context, threads: int | None, loglevel: str, hostname: str | None) -> None:
    """Run an engine worker (a Celery worker with the engine's bootstep).

    Run as many as you like, on any hosts that reach the broker and Redis."""

    from engine.broker import BrokerTLSError
    from engine.celery_app import start_worker
    from engine.config import ConfigError

    ctx.start_logging(loglevel)
    config = ctx.config if threads is None else ctx.config.replace(engine_threads=threads)
    try:
        start_worker(config, loglevel=loglevel, hostname=hostname)
    except (BrokerTLSError, ConfigError) as exc:  # a TLS failure is logged by start_worker
        fail(str(exc))


@click.command()
@json_option
@pass_context
def workers(ctx: Context, as_json: bool) -> None:
    """List the live engine workers (from their heartbeats)."""
    live = ctx.store.engines()
    if as_json:
        emit_json(live)
        return
    table(
        [[w["id"], w.get("host"), w.get("pid"), w.get("threads"), w.get("handled")] for w in live],
        ["id", "host", "pid", "threads", "handled"],
    )


@click.command()
@click.option("--no-queues", is_flag=True, help="Do not ask the broker for queue depths.")
@json_option
@pass_context
def participants(ctx: Context, no_queues: bool, as_json: bool) -> None:
    """List participant registrations in match order, with their queues."""
    regs = ctx.store.participants()
    rows: list[dict[str, Any]] = []
    infos: dict[str, Any] = {}
    if not no_queues and regs:
        from engine.broker import queue_info

        try:
            with ctx.connection.clone() as conn:
                for q in {r.queue for r in regs}:
                    infos[q] = queue_info(conn, q)
        except Exception as exc:
            click.echo(f"boss: cannot read queue depths ({exc})", err=True)
    for i, r in enumerate(regs):
        info = infos.get(r.queue)
        rows.append(
            {
                "position": i,
                "pattern": r.pattern,
                "regex": r.regex,
                "queue": r.queue,
                "messages": info.messages if info else None,
                "consumers": info.consumers if info else None,
                "options": r.options,
            }
        )
    if as_json:
        emit_json(rows)
        return
    table(
        [
            [
                r["position"],
                r["pattern"],
                "regex" if r["regex"] else "name",
                r["queue"],
                r["messages"],
                r["consumers"],
            ]
            for r in rows
        ],
        ["#", "pattern", "kind", "queue", "waiting", "consumers"],
    )


@click.command("register")
@click.argument("pattern")
@click.option("--queue", "-q", help="Its queue (default: the pattern).")
@click.option(
    "--regex/--name",
    "regex",
    default=None,
    help="Whether PATTERN is a regular expression (default: guessed from it).",
)
@click.option(
    "--position",
    type=int,
    default=None,
    help="Insert at this position in the match order (default: the end).",
)
@click.option(
    "--ruote",
    is_flag=True,
    help="A python-ruote-amqp client: also send cancels as ruote cancel items "
    "to its queue (it reads no control exchange).",
)
@click.option(
    "--broker-user",
    is_flag=True,
    help="RabbitMQ: also create (or renew, with a new password) the queue's own broker "
    "user, boss.participant.QUEUE, which may consume only that queue (docs/security.md).",
)
@click.option(
    "--credentials",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the broker user's [boss] broker_url to this file (mode 0600, "
    "to include in the participant's INI) instead of printing it.",
)
@pass_context
def register_cmd(
    ctx: Context,
    pattern: str,
    queue: str | None,
    regex: bool | None,
    position: int | None,
    ruote: bool,
    broker_user: bool,
    credentials: str | None,
) -> None:
    """Register a participant name or regular expression and its queue."""
    from engine.core.registrations import InvalidPattern, check_pattern, looks_like_regex

    is_regex = looks_like_regex(pattern) if regex is None else regex
    try:
        check_pattern(pattern, is_regex)
    except InvalidPattern as exc:
        raise click.BadParameter(str(exc), param_hint="PATTERN") from None
    if not is_regex and queue is None:
        queue = pattern
    if queue is None:
        fail("a regular expression needs --queue", 2)
    options = {"ruote": True} if ruote else {}
    reg = ctx.engine.register(pattern, queue, regex=is_regex, position=position, **options)
    kind = "regex" if reg.regex else "name"
    click.echo(
        f"registered {reg.pattern} ({kind}) -> {reg.queue}"
        + (" (ruote cancel items)" if ruote else "")
    )
    if broker_user:
        _make_broker_user(ctx, reg.queue, credentials)


def _make_broker_user(ctx: Context, queue: str, credentials: str | None) -> None:
    """``boss register --broker-user``: the queue's own RabbitMQ user."""
    import os

    from skynet.broker_users import create_participant_user
    from skynet.errors import SkynetError

    try:
        made = create_participant_user(ctx.config, queue)
    except SkynetError as exc:
        fail(f"broker user for {queue}: {exc}")
    text = f"[boss]\nbroker_url = {made.url}\n"
    if credentials:
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(credentials, 0o600)
        click.echo(f"broker user {made.user}: its broker_url is in {credentials}")
    else:
        click.echo(f"broker user {made.user}; the participant's INI needs:\n{text}", nl=False)


@click.command()
@click.argument("pattern")
@click.option(
    "--broker-user",
    is_flag=True,
    help="Also remove the broker user of the registration's queue (boss register --broker-user).",
)
@pass_context
def unregister(ctx: Context, pattern: str, broker_user: bool) -> None:
    """Remove a participant registration."""
    reg = next((r for r in ctx.engine.registrations() if r.pattern == pattern), None)
    if not ctx.engine.unregister(pattern):
        fail(f"no registration {pattern!r}")
    click.echo(f"unregistered {pattern}")
    if broker_user and reg is not None:
        from skynet.broker_users import remove_participant_user, user_name
        from skynet.errors import SkynetError

        try:
            gone = remove_participant_user(ctx.config, reg.queue)
        except SkynetError as exc:
            fail(f"broker user for {reg.queue}: {exc}")
        click.echo(f"{'removed' if gone else 'no'} broker user {user_name(reg.queue)}")


# -- dead letters -------------------------------------------------------------------------


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def deadletters(cctx: click.Context, as_json: bool) -> None:
    """List malformed messages set aside (sub-commands: reinject, drop)."""
    if cctx.invoked_subcommand is not None:
        return
    ctx: Context = cctx.obj
    from engine.broker import list_deadletters

    with ctx.connection.clone() as conn:
        letters = list_deadletters(ctx.config, conn)
    if as_json:
        emit_json(letters)
        return
    if not letters:
        click.echo("no dead letters")
        return
    for d in letters:
        click.echo(f"{d['id']}  {d.get('at', '')}  from {d.get('queue')}  by {d.get('by', '?')}")
        click.echo(f"    reason: {str(d.get('reason', '')).splitlines()[0]}")
        body = str(d.get("body", ""))
        click.echo(f"    body:   {body[:120]}{'...' if len(body) > 120 else ''}")


@deadletters.command("reinject")
@click.argument("letter_id")
@click.option(
    "--body",
    "body_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Send this (corrected) body instead of the original.",
)
@pass_context
def deadletters_reinject(ctx: Context, letter_id: str, body_file: str | None) -> None:
    """Send a dead letter (or a corrected body) back to its queue."""
    from engine.broker import reinject_deadletter

    body = None
    if body_file:
        with open(body_file, "rb") as fh:
            body = fh.read()
    try:
        with ctx.connection.clone() as conn:
            record = reinject_deadletter(ctx.config, conn, letter_id, body)
    except KeyError:
        fail(f"no dead letter {letter_id}")
    click.echo(f"re-injected {letter_id} into {record['queue']}")


@deadletters.command("drop")
@click.argument("letter_id")
@pass_context
def deadletters_drop(ctx: Context, letter_id: str) -> None:
    """Remove a dead letter for good."""
    from engine.broker import drop_deadletter

    try:
        with ctx.connection.clone() as conn:
            drop_deadletter(ctx.config, conn, letter_id)
    except KeyError:
        fail(f"no dead letter {letter_id}")
    click.echo(f"dropped {letter_id}")
