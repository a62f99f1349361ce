"""What every ``boss`` sub-command shares, wherever it is defined (``bossapp.cli``
or a package that contributes commands through the ``boss.commands`` entry
point, like ``webui.cli``): the configuration, lazily opened store, engine
and publisher, and output helpers (human text by default, ``--json`` for
scripts)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import click
import yaml

from engine.config import Config, ConfigError


@dataclass
class Context:
    """``click``'s ``ctx.obj`` for the ``boss`` group."""

    config_path: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def config(self) -> Config:
        try:
            return Config.load(self.config_path, **self.overrides)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None

    @cached_property
    def store(self) -> Any:
        from engine.store import open_store

        return open_store(self.config.resolved_redis_url(), prefix=self.config.key_prefix)

    @cached_property
    def engine(self) -> Any:
        from engine.engine import Engine

        return Engine(self.store)

    @cached_property
    def connection(self) -> Any:
        from engine.broker import connect

        return connect(self.config)

    @cached_property
    def publisher(self) -> Any:
        from engine.broker import Publisher

        return Publisher(self.config, self.connection.clone())

    def send(self, msg: dict[str, Any]) -> None:
        """A message to the engine's queue: the workers apply it."""
        self.publisher.send(msg)

    def start_logging(self, level: str) -> None:
        """A long-running command's logging: ``level``, in the configured
        format (``[boss] log_format`` or ``$BOSS_LOG_FORMAT``: text or one
        JSON object per line, ``engine.logformat``)."""
        from engine.logformat import configure_logging

        configure_logging(level, self.config.log_format)


pass_context = click.make_pass_decorator(Context)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def pairs_option(*decls: str, metavar: str, help: str) -> Any:
    """A repeatable ``KEY=VALUE`` option (``multiple=True``): its values
    come as a tuple of strings."""
    return click.option(*decls, multiple=True, metavar=metavar, help=help)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=str, sort_keys=False))


def parse_fields(pairs: tuple[str, ...], json_file: str | None = None) -> dict[str, Any]:
    """``k=v`` pairs (``v`` read as a YAML scalar, so ``n=3`` is a number;
    a dotted ``k`` makes nested mappings) over an optional JSON file."""
    fields: dict[str, Any] = {}
    if json_file:
        try:
            with open(json_file, encoding="utf-8") as fh:
                loaded = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise click.BadParameter(f"{json_file}: {exc}", param_hint="--fields") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter(f"{json_file}: not a JSON object", param_hint="--fields")
        fields.update(loaded)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--field")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, dict | list) and not raw.lstrip().startswith(("{", "[")):
            value = raw
        cur = fields
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = cur.get(part)
            if not isinstance(nxt, dict):
                nxt = cur[part] = {}
            cur = nxt
        cur[parts[-1]] = value
    return fields


def table(rows: list[list[Any]], headers: list[str]) -> None:
    """A plain text table (no dependency: the output must stay greppable)."""
    cells = [[str(c) if c is not None else "-" for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    line = "  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))
    click.echo(line.rstrip())
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def fail(message: str, code: int = 1) -> None:
    click.echo(f"boss: {message}", err=True)
    sys.exit(code)


def when(t: float | None) -> str:
    """Epoch seconds as a UTC time for a table, ``-`` for none."""
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")
