"""``boss launcher obs|gerrit|serve|test`` (the event sources) and
``boss enable-project`` (link the standard processes into a project of
the process store). ``docs/launchers.md`` describes them."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import click

from engine.commandline import Context, emit_json, fail, json_option, pairs_option, pass_context

__all__ = ["register"]

SOURCES = ("obs", "github", "gitlab", "gerrit", "eiffel")


def register(main: click.Group) -> None:
    for command in (launcher, enable_project_cmd):
        main.add_command(command)


def _settings(ctx: Context, **overrides: Any) -> Any:
    from engine.config import ConfigError
    from engine.launchers import LauncherSettings

    try:
        return LauncherSettings.load(ctx.config, **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _launcher(ctx: Context, settings: Any) -> Any:
    from engine.config import ConfigError
    from engine.launchers import Launcher, RuleError

    try:
        return Launcher(ctx.config, settings)
    except (RuleError, ConfigError) as exc:  # ConfigError: a bad [radar] section
        raise click.ClickException(str(exc)) from None


loglevel_option = click.option("--loglevel", default="INFO", show_default=True)
rules_option = click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False),
    help="A rules file (default: [launchers] rules_file).",
)
store_option = click.option(
    "--store",
    "process_store",
    type=click.Path(file_okay=False),
    help="The process store (default: [launchers] process_store, else [boss] process_dir).",
)


@click.group()
def launcher() -> None:
    """Event sources that launch processes (OBS, GitHub, GitLab, Gerrit)."""


@launcher.command("obs")
@click.option("--exchange", help="The OBS topic exchange (default: [launchers] obs_exchange).")
@click.option("--namespace", help="The routing-key namespace (default: obs_namespace).")
@click.option(
    "--url", "obs_url", help="The OBS message bus (default: obs_url, else BOSS's broker)."
)
@rules_option
@store_option
@loglevel_option
@pass_context
def obs(
    ctx: Context,
    exchange: str | None,
    namespace: str | None,
    obs_url: str | None,
    rules_file: str | None,
    process_store: str | None,
    loglevel: str,
) -> None:
    """Consume the OBS message bus and launch what its events map to."""
    from engine.launchers import ObsConsumer

    ctx.start_logging(loglevel)
    settings = _settings(
        ctx,
        obs_exchange=exchange,
        obs_namespace=namespace,
        obs_url=obs_url,
        rules_file=rules_file,
        process_store=process_store,
    )
    the_launcher = _launcher(ctx, settings)
    consumer = ObsConsumer(ctx.config, settings, the_launcher)

    def stop(*_: Any) -> None:
        consumer.should_stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(
        f"consuming {settings.obs_queue} on exchange {settings.obs_exchange} "
        f"({', '.join(settings.bindings())})",
        err=True,
    )
    try:
        consumer.run()
    finally:
        the_launcher.close()
        ignored = ", ".join(f"{n} {kind}" for kind, n in sorted(consumer.ignored.items()))
        click.echo(
            f"obs: {consumer.handled} message(s) handled"
            + (f", ignored: {ignored}" if ignored else ""),
            err=True,
        )


@launcher.command("gerrit")
@click.option(
    "--command",
    "command",
    help='The stream, e.g. "ssh -p 29418 boss@review '
    'gerrit stream-events" (default: gerrit_command).',
)
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, exists=True),
    help="Read the JSON lines of a file instead (default: gerrit_file).",
)
@rules_option
@store_option
@loglevel_option
@pass_context
def gerrit(
    ctx: Context,
    command: str | None,
    file: str | None,
    rules_file: str | None,
    process_store: str | None,
    loglevel: str,
) -> None:
    """Read Gerrit stream-events lines and launch what they map to."""
    from engine.launchers import GerritSource, GerritStream

    ctx.start_logging(loglevel)
    settings = _settings(ctx, rules_file=rules_file, process_store=process_store)
    if command or file:
        settings = settings.replace(gerrit_command=command or "", gerrit_file=file or "")
    if bool(settings.gerrit_command) == bool(settings.gerrit_file):
        fail("give --command or --file (or gerrit_command / gerrit_file), one of them")
    the_launcher = _launcher(ctx, settings)
    stream = GerritStream(
        the_launcher,
        GerritSource(url=settings.gerrit_url),
        command=settings.gerrit_command or None,
        file=settings.gerrit_file or None,
    )

    def stop(*_: Any) -> None:
        stream.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        stream.run()
    finally:
        the_launcher.close()
    click.echo(f"gerrit: {stream.handled} event(s) handled", err=True)


@launcher.command("serve")
@click.option("--bind", help="host:port (default: [launchers] bind, 127.0.0.1:8081).")
@rules_option
@store_option
@loglevel_option
@pass_context
def serve(
    ctx: Context, bind: str | None, rules_file: str | None, process_store: str | None, loglevel: str
) -> None:
    """Serve the webhooks: POST /hooks/github, POST /hooks/gitlab."""
    from werkzeug.serving import make_server

    from engine.launchers import create_app

    ctx.start_logging(loglevel)
    settings = _settings(ctx, bind=bind, rules_file=rules_file, process_store=process_store)
    host, _, port = settings.bind.rpartition(":")
    try:
        port_n = int(port)
    except ValueError:
        fail(f"--bind {settings.bind!r}: not host:port")
    app = create_app(ctx.config, settings, launcher=_launcher(ctx, settings))
    server = make_server(host or "127.0.0.1", port_n, app, threaded=True)

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(
        f"serving webhooks on http://{host or '127.0.0.1'}:{server.server_port}/hooks/ "
        f"(bodies up to {settings.max_body} bytes)",
        err=True,
    )
    server.serve_forever()


def load_recorded(path: str, source: str, headers: tuple[str, ...], routing_key: str | None) -> Any:
    """A raw event from a file: a recorded delivery (``{"headers": {...},
    "body": ..., "routing_key": ...}``), or a bare body (headers from
    ``--header``; a Gerrit file: its first line)."""
    from engine.launchers import RawEvent

    text = Path(path).read_bytes()
    hdrs: dict[str, str] = {}
    body = text
    try:
        loaded = json.loads(text)
    except ValueError:
        loaded = None
    if (
        isinstance(loaded, dict)
        and "body" in loaded
        and set(loaded) <= {"headers", "body", "routing_key"}
    ):
        hdrs.update({str(k): str(v) for k, v in (loaded.get("headers") or {}).items()})
        raw_body = loaded["body"]
        body = raw_body.encode() if isinstance(raw_body, str) else json.dumps(raw_body).encode()
        routing_key = routing_key or loaded.get("routing_key")
    elif source == "gerrit" and loaded is None:
        body = next((line for line in text.splitlines() if line.strip()), b"")
    for pair in headers:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE", param_hint="--header")
        hdrs[key.strip()] = value.strip()
    return RawEvent(body, hdrs, routing_key)


def make_source(name: str, settings: Any) -> Any:
    from engine.launchers import EiffelSource, GerritSource, GitHubSource, GitLabSource, ObsSource

    if name == "obs":
        return ObsSource(settings.obs_queue)
    if name == "gerrit":
        return GerritSource(url=settings.gerrit_url)
    return {"github": GitHubSource, "gitlab": GitLabSource, "eiffel": EiffelSource}[name]()


@launcher.command("test")
@click.argument("event_file", type=click.Path(dir_okay=False, exists=True))
@click.option("--source", "source_name", type=click.Choice(SOURCES), required=True)
@pairs_option(
    "--header",
    "-H",
    "headers",
    metavar="NAME=VALUE",
    help="A header of the delivery (X-GitHub-Event=push, ...). Repeatable.",
)
@click.option("--routing-key", help="OBS: the message's routing key.")
@rules_option
@store_option
@json_option
@pass_context
def test_event(
    ctx: Context,
    event_file: str,
    source_name: str,
    headers: tuple[str, ...],
    routing_key: str | None,
    rules_file: str | None,
    process_store: str | None,
    as_json: bool,
) -> None:
    """Dry run: which processes EVENT_FILE would launch, with which fields
    (nothing is published). EVENT_FILE: a recorded delivery ({"headers",
    "body", "routing_key"}) or a bare body."""
    from engine.launchers import LaunchError, MalformedEvent

    settings = _settings(ctx, rules_file=rules_file, process_store=process_store)
    the_launcher = _launcher(ctx, settings)
    raw = load_recorded(event_file, source_name, headers, routing_key)
    try:
        result = the_launcher.dry_run(make_source(source_name, settings), raw)
    except MalformedEvent as exc:
        fail(
            f"{event_file}: malformed {source_name} event (it would be dead-lettered): {exc.reason}"
        )
    except LaunchError as exc:
        fail(f"{event_file}: {exc}")
    if as_json:
        emit_json(result)
        return
    if not result:
        click.echo("no event (nothing to launch)")
    for item in result:
        ev = item["event"]
        click.echo(
            f"{ev['source']} {ev['label']} delivery {ev['delivery']}"
            + (f" project {ev['project']}" if ev.get("project") else "")
            + (f" targets {','.join(ev['targets'])}" if ev.get("targets") else "")
            + (f" branch {ev['branch']}" if ev.get("branch") else "")
        )
        if item["eiffel"]:
            click.echo(f"  eiffel: {item['eiffel']}")
        if not item["launches"]:
            click.echo("  nothing to launch")
        for launch in item["launches"]:
            click.echo(
                f"  launch {launch['process']} as {launch['wfid']} ({launch['via']}: "
                f"{launch['file']})"
            )
            fields = {k: v for k, v in launch["fields"].items() if k != "ev"}
            click.echo(f"    fields: {json.dumps(fields, sort_keys=True, default=str)}")
            click.echo(f"    ev: {json.dumps(launch['fields']['ev'], sort_keys=True)[:300]}")


@click.command("enable-project")
@click.argument("project")
@store_option
@click.option(
    "--standard",
    "standard_dir",
    type=click.Path(file_okay=False),
    help="The standard processes (default: [launchers] standard_dir).",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="Link for this label instead of each process's own. Repeatable.",
)
@pass_context
def enable_project_cmd(
    ctx: Context,
    project: str,
    process_store: str | None,
    standard_dir: str | None,
    labels: tuple[str, ...],
) -> None:
    """Enable PROJECT (Mer:Tools, org/repo) for the standard workflow: link
    the standard processes into its directory of the process store."""
    from engine.process_store import StoreError, enable_project, project_dir

    settings = _settings(ctx, process_store=process_store, standard_dir=standard_dir)
    store = settings.store_dir(ctx.config)
    try:
        made = enable_project(store, project, settings.standard_dir, list(labels) or None)
    except StoreError as exc:
        fail(str(exc))
    for link in made:
        click.echo(f"linked {link} -> {link.readlink()}")
    if not made:
        click.echo(f"{project_dir(store, project)}: already enabled (nothing to link)")
