"""``boss store users``: the store's ACL users (``engine.store.acl``,
docs/security.md, *Store users*)."""

from __future__ import annotations

from typing import Any

import click

from engine.commandline import Context, emit_json, json_option, pass_context, table


def register(main: click.Group) -> None:
    """Add this module's commands to the ``boss`` group."""
    main.add_command(store)


@click.group()
def store() -> None:
    """The run store (Redis/Valkey): its ACL users."""


def _passwords(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, password = pair.partition("=")
        if not sep or not name or not password:
            raise click.BadParameter(f"{pair!r} is not ROLE=PASSWORD", param_hint="--password")
        out[name] = password
    return out


@store.command("users")
@click.option("--print", "print_", is_flag=True, help="Print the ACL SETUSER lines (the default).")
@click.option("--apply", "apply_", is_flag=True, help="Create or update the users on the server.")
@click.option("--remove", is_flag=True, help="Delete the users from the server.")
@click.option(
    "-r",
    "--role",
    "role_names",
    multiple=True,
    metavar="ROLE",
    help="engine, web, or a participant (obsticket, report); repeatable (default: all).",
)
@click.option(
    "--password",
    "password_pairs",
    multiple=True,
    metavar="ROLE=PASSWORD",
    help="A role's password for --apply (default: a random one); repeatable.",
)
@click.option(
    "--user-prefix",
    default="boss-",
    show_default=True,
    help="Prefix of the users' names (several installations on one server: one each).",
)
@click.option(
    "--admin-url",
    help="The store as a user that may make users (default: [boss] redis_admin_url).",
)
@click.option(
    "--broker",
    is_flag=True,
    help="The store is the broker too (kombu's Redis transport): the engine gets every key.",
)
@json_option
@pass_context
def users(
    ctx: Context,
    print_: bool,
    apply_: bool,
    remove: bool,
    role_names: tuple[str, ...],
    password_pairs: tuple[str, ...],
    user_prefix: str,
    admin_url: str | None,
    broker: bool,
    as_json: bool,
) -> None:
    """The engine's, the web UI's and the participants' store users (Redis or
    Valkey 7 ACL), each allowed only the keys and commands it uses, under
    [boss] key_prefix. --print shows the ACL SETUSER lines (passwords as
    placeholders); --apply makes the users with --admin-url and prints the
    redis_url each host's boss.ini should have; --remove deletes them."""
    from engine.store import acl

    if print_ + apply_ + remove > 1:
        raise click.UsageError("one of --print, --apply, --remove")
    config = ctx.config
    try:
        chosen = acl.roles(
            config.key_prefix, role_names or None, user_prefix=user_prefix, broker=broker
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--role") from None
    passwords = _passwords(password_pairs)
    known = {r.name for r in chosen} | {r.short for r in chosen}
    unknown = sorted(set(passwords) - known)
    if unknown:
        raise click.BadParameter(
            f"no such role among those chosen: {', '.join(unknown)}", param_hint="--password"
        )
    if not (apply_ or remove):
        if as_json:
            emit_json(
                [{"role": r.name, "user": r.user, "command": acl.setuser_line(r)} for r in chosen]
            )
            return
        for r in chosen:
            click.echo(acl.setuser_line(r))
        return
    url = admin_url or config.redis_admin_url
    if not url:
        raise click.UsageError("no admin URL: --admin-url or [boss] redis_admin_url")
    client = _admin_client(url)
    try:
        if remove:
            rows = [[r.name, r.user, _call(acl.remove_user, client, r.user)] for r in chosen]
            if as_json:
                emit_json([{"role": n, "user": u, "removed": d} for n, u, d in rows])
            else:
                table(
                    [[n, u, "removed" if d else "absent"] for n, u, d in rows], ["role", "user", ""]
                )
            return
        base = config.redis_url or url
        out = []
        for r in chosen:
            password = passwords.get(r.name) or passwords.get(r.short) or acl.new_password()
            _call(acl.apply_role, client, r, password)
            out.append(
                {"role": r.name, "user": r.user, "url": acl.url_with_user(base, r.user, password)}
            )
    finally:
        client.close()
    if as_json:
        emit_json(out)
        return
    for row in out:
        click.echo(f"{row['role']}: redis_url = {row['url']}")
    click.echo(
        "put each in [boss] redis_url of the boss.ini of the hosts running it (engine: the "
        "workers, aggregators, launchers, reporters; web: boss web; a participant: its INI)",
        err=True,
    )


def _admin_client(url: str) -> Any:
    from engine.store.connection import client_for

    return client_for(url)[0]


def _call(fn: Any, *args: Any) -> Any:
    import redis

    try:
        return fn(*args)
    except (redis.RedisError, OSError) as exc:
        raise click.ClickException(f"the store refused: {exc}") from None
