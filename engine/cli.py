"""The ``boss`` command.

One click group, ``main``; each sub-command is one function below (add new
commands the same way: a ``@main.command()`` function that does its work
through the engine's public modules and keeps its output format here).
"""

from __future__ import annotations

import json

import click

from engine.loader import LoadError, Problem, load_file


@click.group()
def main() -> None:
    """BOSS: a CI process engine."""


# -- boss check -----------------------------------------------------------------


def _check_one(path: str) -> tuple[str | None, list[Problem]]:
    """(summary, problems) for one definition file."""
    try:
        definition = load_file(path)
    except LoadError as e:
        return None, e.problems
    except (OSError, UnicodeDecodeError) as e:
        return None, [Problem(path, 0, 0, f"cannot read: {e}")]
    # the steps an author wrote: not the bodies, nor the then/else sequences of an if
    synthetic = 1 + len(definition.subprocesses)
    synthetic += sum(len(n.children) for n in definition.nodes.values() if n.kind == "if")
    steps = len(definition.nodes) - synthetic
    return f"{path}: ok ({definition.name}, {steps} steps)", []


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report on stdout.")
def check(files: tuple[str, ...], as_json: bool) -> None:
    """Check process definition FILES; exit 1 if any has a problem.

    The step count is every expression written in the file, subprocesses
    included."""
    failed = False
    report = []
    for path in files:
        summary, problems = _check_one(path)
        failed = failed or bool(problems)
        if as_json:
            report.append(
                {
                    "file": path,
                    "ok": not problems,
                    "problems": [
                        {"line": p.line, "col": p.col, "message": p.message} for p in problems
                    ],
                }
            )
        elif summary:
            click.echo(summary)
        else:
            for problem in problems:
                click.echo(str(problem), err=True)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    if failed:
        raise SystemExit(1)


# -- boss demo ------------------------------------------------------------------


@main.command()
@click.option("--store", "store_url", envvar="BOSS_REDIS_URL", default=None,
              help="Run store URL (default: the embedded Valkey under the state directory; "
                   "env BOSS_REDIS_URL).")
def demo(store_url: str | None) -> None:
    """Run a demo CI pipeline on the embedded Valkey, with in-process participants."""
    from engine.demo import run_demo

    result = run_demo(store_url, out=click.echo)
    if result["status"] != "finished":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
