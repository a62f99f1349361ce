"""The ``boss`` command (click).

One group, ``main``; the sub-commands live in modules named for what they
do, each with a ``register(main)``:

* ``check``: ``check``
* ``doctor``: ``doctor`` (check an installation, ``engine.doctor``)
* ``runs``: ``launch``, ``ps``, ``show``, ``errors``, ``cancel``, ``kill``,
  ``pause``, ``resume``, ``replay``, ``reapply``
* ``logs``: ``logs`` (the step logs of a run)
* ``admin``: ``worker``, ``workers``, ``participants``, ``register``,
  ``unregister``, ``deadletters``
* ``demo``: ``demo``
* ``events``: ``event publish|import``, ``aggregator``, ``triggers add|list|remove``
* ``trace``: ``trace get|upstream|downstream|find|up|down|run|export|lead-time|dora|stats|
  deadletters``
* ``launchers``: ``launcher obs|gerrit|serve|test``, ``enable-project``
* ``reporters``: ``reporter serve|errors|show|retry``
* ``radar``: ``ci import|systems|system`` (the CI systems' dashboard data)
* ``federate``: ``federate serve|peers|setup`` (exchange events with peer sites)
* ``store``: ``store users`` (the store's ACL users, ``engine.store.acl``)
* contributed by other packages through the ``boss.commands`` entry point
  group (``pyproject.toml``): ``web``, ``web user add|passwd|list|remove``
  and ``stats`` from ``webui.cli``

Configuration: ``--config FILE`` (or ``$BOSS_CONFIG``) plus ``BOSS_*``
environment variables (``docs/configuration.md``). Every command that lists
or shows takes ``--json``.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points

import click

from bossapp.cli import (
    admin,
    events,
    federate,
    launchers,
    logs,
    radar,
    reporters,
    runs,
    store,
    trace,
)
from bossapp.cli.check import check
from bossapp.cli.convert import convert
from bossapp.cli.demo import demo
from bossapp.cli.doctor import doctor
from engine.commandline import Context
from engine.settings import unusable

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, readable=True),
    help="Configuration file (default: $BOSS_CONFIG, ./boss.ini, "
    "~/.config/boss/boss.ini, /etc/boss/boss.ini).",
)
@click.version_option(package_name="boss-ci")
@click.pass_context
def main(cctx: click.Context, config_path: str | None) -> None:
    """BOSS: a CI process engine."""
    if config_path is None and not cctx.resilient_parsing:
        _check_boss_config(cctx)
    cctx.obj = Context(config_path)


def _check_boss_config(cctx: click.Context) -> None:
    """A ``$BOSS_CONFIG`` that names no readable file is a usage error
    naming it (never a silent run on the embedded store); ``/dev/null``
    says "no file"."""
    named = os.environ.get("BOSS_CONFIG")
    if not named or named == os.devnull:
        return
    problem = unusable(named)
    if problem is not None:
        raise click.UsageError(f"$BOSS_CONFIG names {named}: {problem}", cctx)


main.add_command(check)
main.add_command(convert)
main.add_command(demo)
main.add_command(doctor)
runs.register(main)
logs.register(main)
admin.register(main)
events.register(main)
trace.register(main)
launchers.register(main)
reporters.register(main)
federate.register(main)
radar.register(main)
store.register(main)


def _contributed(group: click.Group) -> None:
    """Commands other installed packages add (``boss.commands`` entry points:
    each names a click command)."""
    for ep in entry_points(group="boss.commands"):
        if ep.name not in group.commands:
            group.add_command(ep.load(), ep.name)


_contributed(main)
