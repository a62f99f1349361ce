"""The ``skynet`` command: install and operate participant pools under
supervisor (see ``docs/skynet.md``). A thin layer over ``skynet.pools``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from engine.config import ConfigError
from skynet.config import SkynetConfig
from skynet.errors import SkynetError

__all__ = ["main"]


class _Group(click.Group):
    """Every ``SkynetError``/``ConfigError`` becomes ``skynet: message`` on
    stderr and exit status 1 (2 for bad input), never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from skynet.errors import Conflict, Invalid

        try:
            return super().invoke(ctx)
        except (Invalid, Conflict) as exc:
            click.echo(f"skynet: {exc}", err=True)
            sys.exit(2)
        except (SkynetError, ConfigError) as exc:
            click.echo(f"skynet: {exc}", err=True)
            sys.exit(1)
        finally:
            pools = ctx.meta.get("skynet.pools")
            if pools is not None:
                pools.close()


class _State:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: SkynetConfig | None = None

    @property
    def config(self) -> SkynetConfig:
        if self._config is None:
            self._config = SkynetConfig.load(self.config_path)
        return self._config


def _pools() -> Any:
    from skynet.pools import Pools

    ctx = click.get_current_context()
    if "skynet.pools" not in ctx.meta:
        ctx.meta["skynet.pools"] = Pools(ctx.find_object(_State).config)
    return ctx.meta["skynet.pools"]


def _emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str))


def _table(rows: list[list[Any]], headers: list[str]) -> None:
    cells = [[("-" if c is None else str(c)) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
all_option = click.option("--all", "all_", is_flag=True, help="Every installed participant.")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="BOSS_CONFIG",
    help="The BOSS configuration file ([skynet] and [boss]).",
)
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """SkyNET: install and operate BOSS participant pools under supervisor."""
    ctx.obj = _State(config_path)


# -- install / uninstall / rebuild / apply --------------------------------------------


@main.command()
@click.argument("code", metavar="CODE.py")
@click.option("-n", "--name", help="Participant name (default: the code file's name).")
@click.option("-q", "--queue", help="Its queue (default: the name).")
@click.option("-r", "--regexp", help="Register this regular expression instead of the name.")
@click.option("-u", "--user", help="Run the instances as this user (needs a root supervisord).")
@click.option(
    "-i",
    "--instances",
    type=int,
    default=1,
    show_default=True,
    help="How many instances consume the queue.",
)
@click.option(
    "--class",
    "class_name",
    default="ParticipantHandler",
    show_default=True,
    help="The handler class in CODE.py.",
)
@click.option(
    "--conf",
    "extra",
    type=click.Path(exists=True, dir_okay=False),
    help="An INI file whose sections (and [participant] keys) are added.",
)
@click.option(
    "--store",
    "store_roles",
    multiple=True,
    metavar="ROLE",
    help="It uses the store as this standard participant does (obsticket, report): "
    "[participant] store; with [boss] redis_admin_url it gets a store user of its own. "
    "Without: its redis_url has no password.",
)
@click.option("--register", "register_", is_flag=True, help="Also register it with the engine.")
@click.option("--no-apply", is_flag=True, help="Only write the program file.")
def install(
    code: str,
    name: str | None,
    queue: str | None,
    regexp: str | None,
    user: str | None,
    instances: int,
    class_name: str,
    extra: str | None,
    store_roles: tuple[str, ...],
    register_: bool,
    no_apply: bool,
) -> None:
    """Install a participant: check CODE.py, write its program file, start it."""
    sections: dict[str, dict[str, str]] = {}
    options: dict[str, str] = {}
    if extra:
        import configparser

        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            parser.read(extra, encoding="utf-8")
        except configparser.Error as exc:
            raise click.BadParameter(f"{extra}: {exc}", param_hint="--conf") from None
        for section in parser.sections():
            if section == "participant":
                options.update(
                    {
                        k: v
                        for k, v in parser[section].items()
                        if k not in ("name", "queue", "code", "class", "regexp")
                    }
                )
            else:
                sections[section] = dict(parser[section])
    if store_roles:
        options["store"] = ", ".join(store_roles)
    pools = _pools()
    spec = pools.install(
        code,
        name,
        queue=queue,
        regexp=regexp,
        user=user,
        instances=instances,
        class_name=class_name,
        sections=sections,
        options=options,
        apply=not no_apply,
    )
    click.echo(
        f"installed {spec.name}: {spec.instances} instance(s) on queue {spec.queue} "
        f"({spec.path}){'' if no_apply else ', running'}"
    )
    if register_:
        reg = pools.register(spec.name)
        click.echo(f"registered {reg['pattern']} -> {reg['queue']}")


@main.command()
@click.argument("names", nargs=-1, required=True)
def uninstall(names: tuple[str, ...]) -> None:
    """Stop and remove participants (their program files too)."""
    for name in names:
        _pools().uninstall(name)
        click.echo(f"uninstalled {name}")


@main.command()
@click.argument("names", nargs=-1)
@all_option
def rebuild(names: tuple[str, ...], all_: bool) -> None:
    """Rewrite program files with this host's current settings, then apply."""
    _report_apply(_pools().rebuild(names, all_=all_))


@main.command()
@click.argument("names", nargs=-1)
def apply(names: tuple[str, ...]) -> None:
    """Make supervisord run what the program files say (supervisorctl update):
    only the instances that changed are stopped, removed or added."""
    _report_apply(_pools().apply(names or None))


def _report_apply(result: Any) -> None:
    if not result:
        click.echo("nothing changed")
    for verb, groups in (
        ("added", result.added),
        ("restarted", result.changed),
        ("removed", result.removed),
    ):
        if groups:
            click.echo(f"{verb}: {' '.join(groups)}")


# -- enable / disable / start / stop / reload -------------------------------------------


def _each(names: tuple[str, ...], all_: bool) -> list[str]:
    return _pools().names(names, all_=all_)


@main.command()
@click.argument("names", nargs=-1)
@all_option
def enable(names: tuple[str, ...], all_: bool) -> None:
    """Start with supervisord (autostart), and start now."""
    for name in _each(names, all_):
        _pools().enable(name)
        click.echo(f"enabled {name}: RUNNING")


@main.command()
@click.argument("names", nargs=-1)
@all_option
def disable(names: tuple[str, ...], all_: bool) -> None:
    """Stop, and do not start with supervisord."""
    for name in _each(names, all_):
        _pools().disable(name)
        click.echo(f"disabled {name}: STOPPED")


@main.command()
@click.argument("names", nargs=-1)
@all_option
@click.option("--no-wait", is_flag=True, help="Do not wait for RUNNING.")
def start(names: tuple[str, ...], all_: bool, no_wait: bool) -> None:
    """Start every instance; wait until RUNNING (FAILED on BACKOFF/FATAL)."""
    chosen = _each(names, all_)
    _pools().start(chosen, wait=not no_wait)
    click.echo(f"{' '.join(chosen)}: {'starting' if no_wait else 'RUNNING'}")


@main.command()
@click.argument("names", nargs=-1)
@all_option
@click.option("--no-wait", is_flag=True, help="Do not wait for STOPPED.")
def stop(names: tuple[str, ...], all_: bool, no_wait: bool) -> None:
    """Stop every instance gracefully (killed after stopwaitsecs)."""
    chosen = _each(names, all_)
    _pools().stop(chosen, wait=not no_wait)
    click.echo(f"{' '.join(chosen)}: {'stopping' if no_wait else 'STOPPED'}")


@main.command()
@click.argument("names", nargs=-1)
@all_option
def reload(names: tuple[str, ...], all_: bool) -> None:
    """Stop, then start again (new code is loaded)."""
    chosen = _each(names, all_)
    _pools().reload(chosen)
    click.echo(f"{' '.join(chosen)}: RUNNING")


@main.command()
@click.argument("name")
@click.argument("instances", type=int)
def scale(name: str, instances: int) -> None:
    """Run INSTANCES instances; those that stay are not restarted."""
    result = _pools().scale(name, instances)
    click.echo(
        f"{name}: {instances} instance(s)"
        + (f", started {' '.join(result.added)}" if result.added else "")
        + (f", stopped {' '.join(result.removed)}" if result.removed else "")
    )


# -- looking ------------------------------------------------------------------------------


@main.command()
@click.argument("names", nargs=-1)
@json_option
def status(names: tuple[str, ...], as_json: bool) -> None:
    """Each instance's state."""
    pools = _pools().status(names or None)
    if as_json:
        _emit_json(pools)
        return
    _table(
        [
            [p["name"], i["name"], i["state"], i["pid"], i.get("description")]
            for p in pools
            for i in p["processes"]
        ],
        ["participant", "instance", "state", "pid", "description"],
    )


@main.command("list")
@click.option("--enabled", "which", flag_value="enabled", help="Only enabled ones.")
@click.option("--disabled", "which", flag_value="disabled", help="Only disabled ones.")
@json_option
def list_(which: str | None, as_json: bool) -> None:
    """The installed participants."""
    enabled = None if which is None else which == "enabled"
    pools = _pools().status(enabled=enabled)
    if as_json:
        _emit_json(pools)
        return
    _table(
        [
            [
                p["name"],
                p["state"],
                f"{p['running']}/{p['instances']}",
                p["queue"],
                "yes" if p["enabled"] else "no",
                p["user"],
            ]
            for p in pools
        ],
        ["name", "state", "running", "queue", "enabled", "user"],
    )


@main.command()
@click.argument("name")
@json_option
def info(name: str, as_json: bool) -> None:
    """Where a participant is, what it runs, and how it is doing."""
    from skynet.api import pool_details

    pools = _pools()
    data = pool_details(pools, pools.status([name])[0])
    if as_json:
        _emit_json(data)
        return
    depth = data.get("queue_depth") or {}
    regs = data.get("registered")
    lines = [
        ("name", data["name"]),
        ("location", data["file"]),
        ("code", data["code"]),
        ("class", data["class"]),
        ("queue", data["queue"]),
        ("regexp", data["regexp"]),
        ("user", data["user"]),
        ("enabled", "yes" if data["enabled"] else "no"),
        ("instances", data["instances"]),
        ("state", data["state"]),
        ("states", ", ".join(f"{i['name']} {i['state']}" for i in data["processes"])),
        (
            "queue depth",
            depth.get("error")
            or f"{depth.get('messages')} waiting, {depth.get('consumers')} consumers",
        ),
        (
            "registered",
            regs.get("error")
            if isinstance(regs, dict)
            else ", ".join(f"{r['pattern']} -> {r['queue']}" for r in regs) or "no",
        ),
        ("sections", ", ".join(data["sections"]) or "-"),
        ("description", data["description"] or "-"),
    ]
    for key, value in lines:
        click.echo(f"{key + ':':13}{'-' if value is None else value}")


@main.command()
@click.argument("name")
@click.option(
    "-n",
    "--lines",
    type=int,
    default=20,
    show_default=True,
    help="How many lines of each instance.",
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
def log(name: str, lines: int, follow: bool) -> None:
    """The instances' log lines."""
    pools = _pools()
    for line in pools.logs(name, lines):
        click.echo(line)
    if follow:
        try:
            for line in pools.follow(name):
                click.echo(line)
        except KeyboardInterrupt:
            pass


@main.command()
@click.argument("name")
def manual(name: str) -> None:
    """Run one instance in the foreground (Ctrl-C stops it)."""
    argv = _pools().manual_argv(name)
    click.echo(f"running {' '.join(argv)}", err=True)
    sys.stdout.flush()
    os.execv(argv[0], argv)


# -- the engine -------------------------------------------------------------------------


@main.command()
@click.argument("names", nargs=-1)
@all_option
def register(names: tuple[str, ...], all_: bool) -> None:
    """Register participants with the engine (regexp, else name -> queue)."""
    for name in _each(names, all_):
        reg = _pools().register(name)
        click.echo(
            f"registered {reg['pattern']} ({'regex' if reg['regex'] else 'name'}) -> {reg['queue']}"
        )


@main.command()
@click.argument("names", nargs=-1)
@all_option
def unregister(names: tuple[str, ...], all_: bool) -> None:
    """Remove participants' registrations from the engine."""
    for name in _each(names, all_):
        found = _pools().unregister(name)
        click.echo(f"unregistered {name}" if found else f"{name} was not registered")


# -- supervisord and the API ------------------------------------------------------------


@main.group()
def daemon() -> None:
    """The private supervisord (when no supervisor_url is configured)."""


@daemon.command("start")
def daemon_start() -> None:
    """Start the private supervisord (nothing if it runs)."""
    from skynet import private

    config = click.get_current_context().find_object(_State).config
    if not config.private:
        raise click.ClickException(
            f"supervisor_url is set ({config.supervisor_url}): "
            "that supervisord is not skynet's to start"
        )
    started = private.ensure_running(config)
    click.echo(f"supervisord {'started' if started else 'already running'} ({config.socket_path})")


@daemon.command("stop")
def daemon_stop() -> None:
    """Shut the private supervisord down (and every instance with it)."""
    from skynet import private

    config = click.get_current_context().find_object(_State).config
    if not config.private:
        raise click.ClickException(
            "supervisor_url is set: stop that supervisord with its own tools"
        )
    click.echo("stopped" if private.stop(config) else "not running")


@daemon.command("status")
def daemon_status() -> None:
    """Whether supervisord answers."""
    from skynet.errors import SupervisorUnavailable
    from skynet.supervisor import Supervisor

    config = click.get_current_context().find_object(_State).config
    client = Supervisor(
        config.server_url, config.supervisor_username, config.supervisor_password, timeout=5
    )
    try:
        state = client.supervisor.getState()["statename"]
        pid = client.supervisor.getPID()
    except SupervisorUnavailable:
        if not config.private:
            raise
        click.echo(
            f"the private supervisord is not running ({config.socket_path}); "
            "'skynet daemon start' (or any command that needs it) starts it"
        )
        sys.exit(3)
    finally:
        client.close()
    click.echo(f"supervisord {state} (pid {pid}) at {config.server_url}")


@main.command()
@click.option("--bind", help="HOST:PORT (default: [skynet] api_bind).")
def serve(bind: str | None) -> None:
    """Serve the REST API (werkzeug; put a real WSGI server in front for production)."""
    from werkzeug.serving import run_simple

    from skynet.api import create_app

    config = click.get_current_context().find_object(_State).config
    host, _, port = (bind or config.api_bind).rpartition(":")
    run_simple(host or "127.0.0.1", int(port), create_app(config), threaded=True)


if __name__ == "__main__":
    main()
