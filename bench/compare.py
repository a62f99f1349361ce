"""Run a benchmark on two revisions side by side, in one run.

    python bench/compare.py --base REV [--rounds N] -- bench_interpreter.py [ARGS...]

REV is checked out (``git worktree add --detach``) into a temporary
directory; then the named script under ``bench/`` runs alternately in that
tree and in this one (base, current, base, current, ...), so both see the
same machine load. Each run is asked for ``--json``: bench_interpreter's
JSON document on stdout, or a file for bench_runtime (``--json FILE`` is
added). Prints every number of both sides, the median over the rounds, and
the ratio current / base; ``--out FILE`` keeps it all as JSON.

Each side imports its own tree's code (``PYTHONPATH`` and the working
directory are that tree's), with this virtualenv's libraries.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]


def _flatten(doc: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.update(_flatten(v, f"{prefix}{i}."))
    elif isinstance(doc, int | float) and not isinstance(doc, bool):
        out[prefix.rstrip(".")] = float(doc)
    return out


def _run(tree: Path, script: str, args: list[str]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(tree / "bench" / script), *args]
    if script == "bench_interpreter.py":
        r = subprocess.run([*cmd, "--json"], cwd=tree, env=env, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"{script} failed in {tree}:\n{r.stderr}")
        return _flatten(json.loads(r.stdout[r.stdout.index("{") :]))
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        r = subprocess.run([*cmd, "--json", f.name], cwd=tree, env=env, text=True)
        if r.returncode:
            raise SystemExit(f"{script} failed in {tree}")
        return _flatten(json.loads(Path(f.name).read_text()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--base", required=True, help="the revision to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", help="write both sides' numbers here (JSON)")
    ap.add_argument("script", help="a script under bench/, e.g. bench_interpreter.py")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = [x for x in a.args if x != "--"]
    with tempfile.TemporaryDirectory(prefix="boss-base-") as tmp:
        base = Path(tmp) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(base), a.base], cwd=HERE, check=True
        )
        try:
            sides: dict[str, list[dict[str, float]]] = {"base": [], "current": []}
            for i in range(a.rounds):
                for name, tree in (("base", base), ("current", HERE)):
                    print(f"round {i + 1}/{a.rounds}: {name}", file=sys.stderr, flush=True)
                    sides[name].append(_run(tree, a.script, args))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=HERE)
    keys = [k for k in sides["current"][0] if k in sides["base"][0]]
    table = {}
    print(f"{'figure':<44}{'base':>14}{'current':>14}{'ratio':>8}")
    for k in keys:
        b = statistics.median(r[k] for r in sides["base"])
        c = statistics.median(r[k] for r in sides["current"])
        ratio = c / b if b else float("nan")
        table[k] = {"base": b, "current": c, "ratio": ratio}
        print(f"{k:<44}{b:>14,.1f}{c:>14,.1f}{ratio:>8.2f}")
    if a.out:
        Path(a.out).write_text(json.dumps({"base": a.base, "rounds": sides, "median": table}))


if __name__ == "__main__":
    main()
