"""``boss convert``: translate ruote process definitions (``.pdef``) into our
YAML process language (``bossapp.pdef``; docs/converting-pdef.md).

Exit status: 0 when everything translated, 1 when something was left
untranslated (the output is still written, with ``# NOT TRANSLATED``
comments) or the output does not load (a bug of the converter), 2 when a
file cannot be read or parsed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from bossapp.pdef import Conversion, PdefSyntaxError
from bossapp.pdef import convert as convert_text
from engine.core.loader import LoadError, Problem, load_definition


def _stem(path: Path) -> str:
    """``X.BOSS_handle_SR.pdef`` -> ``X.BOSS_handle_SR``."""
    return path.name[: -len(".pdef")] if path.name.endswith(".pdef") else path.stem


def _check(text: str, label: str) -> tuple[str | None, list[Problem]]:
    """What ``boss check`` says of the converted text: (summary, problems)."""
    try:
        definition = load_definition(text, label)
    except LoadError as e:
        return None, e.problems
    synthetic = 1 + len(definition.subprocesses)
    synthetic += sum(len(n.children) for n in definition.nodes.values() if n.kind == "if")
    steps = len(definition.nodes) - synthetic
    return f"{label}: ok ({definition.name}, {steps} steps)", []


@click.command("convert")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output-dir",
    "output_dir",
    type=click.Path(file_okay=False),
    help="Write DIR/<file stem>.yaml for each file (default: one file, to stdout).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report on stdout.")
def convert(files: tuple[str, ...], output_dir: str | None, as_json: bool) -> None:
    """Convert ruote process definitions (.pdef FILES) into YAML.

    What was not translated is reported on stderr, FILE:LINE:COL, and marked
    in the output with '# NOT TRANSLATED' comments. The output is then
    checked as 'boss check' would. Exit 0 when everything translated, 1 when
    something was not (or the output does not load), 2 when a file cannot be
    read or parsed."""
    if output_dir is None and len(files) > 1:
        raise click.UsageError("give -o DIR to convert several files")
    out_dir = Path(output_dir) if output_dir else None
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise click.UsageError(f"cannot create {out_dir}: {e}") from None
    status = 0
    report: list[dict[str, Any]] = []
    for name in files:
        path = Path(name)
        entry: dict[str, Any] = {"file": name}
        report.append(entry)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            entry["error"] = f"{name}: cannot read: {e}"
            status = 2
            if not as_json:
                click.echo(entry["error"], err=True)
            continue
        try:
            result: Conversion = convert_text(text, name, _stem(path))
        except PdefSyntaxError as e:
            entry["error"] = e.where(name)
            status = 2
            if not as_json:
                click.echo(entry["error"], err=True)
            continue
        target = out_dir / f"{_stem(path)}.yaml" if out_dir is not None else None
        if target is not None:
            try:
                target.write_text(result.yaml, encoding="utf-8")
            except OSError as e:
                entry["error"] = f"{target}: cannot write: {e}"
                status = 2
                if not as_json:
                    click.echo(entry["error"], err=True)
                continue
            entry["output"] = str(target)
        elif not as_json:
            click.echo(result.yaml, nl=False)
        else:
            entry["yaml"] = result.yaml
        entry["statements"] = result.statements
        entry["not_translated"] = [
            {"line": f.line, "col": f.col, "construct": f.construct, "message": f.why}
            for f in result.findings
        ]
        summary, problems = _check(result.yaml, str(target) if target else f"{_stem(path)}.yaml")
        entry["check"] = {
            "ok": not problems,
            "problems": [{"line": p.line, "col": p.col, "message": p.message} for p in problems],
        }
        if result.findings or problems:
            status = max(status, 1)
        if as_json:
            continue
        for finding in result.findings:
            click.echo(str(finding), err=True)
        if result.findings:
            click.echo(
                f"{name}: {len(result.findings)} construct(s) not translated; "
                "see the '# NOT TRANSLATED' comments",
                err=True,
            )
        if summary:
            click.echo(summary, err=target is None)
        for problem in problems:
            click.echo(
                f"{problem} (the converted file does not load: a bug of boss convert)", err=True
            )
    if as_json:
        click.echo(json.dumps(report, indent=2))
    if status:
        raise SystemExit(status)
