"""A local bare git repository with a few commits, made in the test."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_repo(tmp: Path, n: int = 3) -> tuple[Path, list[str]]:
    """A bare repository with ``n`` commits on main; returns it and the shas."""
    bare, work = tmp / "app.git", tmp / "work"
    _git("init", "--quiet", "--bare", "-b", "main", str(bare), cwd=tmp)
    _git("clone", "--quiet", str(bare), str(work), cwd=tmp)
    for k, v in (("user.name", "Alice"), ("user.email", "alice@example.org")):
        _git("config", k, v, cwd=work)
    shas = []
    for i in range(n):
        (work / "file.txt").write_text(f"version {i}\n")
        _git("add", "file.txt", cwd=work)
        _git("commit", "--quiet", "-m", f"change {i}", cwd=work)
        shas.append(_git("rev-parse", "HEAD", cwd=work))
    _git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    return bare, shas
