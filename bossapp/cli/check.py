"""``boss check``: validate definition files without running anything."""

from __future__ import annotations

import json

import click

from engine.core.loader import LoadError, Problem, load_file


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


@click.command()
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
