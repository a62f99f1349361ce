"""Vendor the Eiffel protocol's definitions into ``engine/schemas/eiffel/``
(run by a maintainer when the protocol moves; the result is committed, so
users need no network and no copy of the protocol repository).

    python scripts/vendor_eiffel.py --ref edition-orizaba   # fetch a tag, branch or commit (git)
    python scripts/vendor_eiffel.py --from ~/src/eiffel --ref master    # a local checkout
    python scripts/vendor_eiffel.py --check                 # the files against the manifest

What is copied, unchanged, byte for byte: every ``definitions/<Name>/<version>.yml``
of the upstream repository https://github.com/eiffel-community/eiffel (the
JSON schema of every event type and every version, written in YAML, with the
shared fragments they ``$ref``: ``EiffelMetaProperty``, ``EiffelEventLink``
...) and its ``LICENSE`` (Apache-2.0). The previous copy is removed first, so
a definition upstream dropped goes too.

``manifest.json`` pins the source (repository, the ref asked for, the commit
it resolved to, the editions the definitions' ``_history`` names and how many
versions are newer than the newest of them) and the SHA-256 of every file;
``--check`` fails (exit 1) on a file that differs, is missing or is not
listed. ``tests/trace/test_eiffel_vendored.py`` runs the same check.

A fetch uses ``git`` (the ordinary client, honouring the machine's git and
proxy configuration): a shallow fetch of the ref into a temporary
repository; nothing of the repository is run. With ``--from`` the ref is
only recorded, with the commit ``--commit`` names (a git checkout is asked
for its commit itself). After copying, ``engine/trace/links.json``
is regenerated from the new definitions (``engine.trace.linkrules_gen``);
review both diffs before committing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: the vendored copy
TARGET = ROOT / "engine" / "schemas" / "eiffel"
MANIFEST = "manifest.json"
REPOSITORY = "https://github.com/eiffel-community/eiffel"
LICENSE_ID = "Apache-2.0"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def vendored_files(root: Path) -> list[str]:
    """The files of a vendored copy that the manifest must list (all but the
    manifest itself), as sorted POSIX paths relative to ``root``."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.name != MANIFEST and "__pycache__" not in p.parts
    )


def check(root: Path = TARGET) -> list[str]:
    """The problems of the vendored copy at ``root`` against its manifest:
    ``MISMATCH <file>``, ``MISSING <file>``, ``UNLISTED <file>`` (empty when
    every file is as pinned)."""
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        return [f"MISSING {MANIFEST}"]
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    pinned: dict[str, str] = manifest.get("files") or {}
    problems = []
    for name, digest in sorted(pinned.items()):
        path = root / name
        if not path.is_file():
            problems.append(f"MISSING {name}")
        elif sha256(path) != digest:
            problems.append(f"MISMATCH {name}")
    problems += [f"UNLISTED {name}" for name in vendored_files(root) if name not in pinned]
    return problems


def _editions(definitions: Path) -> tuple[list[str], int]:
    """The editions the definitions' ``_history`` names, oldest first, and
    how many versions are in none of them (newer than the newest)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    after: dict[str, set[str]] = {}  # edition -> editions that came after it
    unreleased = 0
    for path in sorted(definitions.glob("*/*.yml")):
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
        history = doc.get("_history") or []
        mine = next((h for h in history if str(h.get("version")) == path.stem), None)
        if mine is not None and not mine.get("introduced_in"):
            unreleased += 1
        sequence: list[str] = []  # newest first, as _history lists them
        for entry in history:
            edition = entry.get("introduced_in")
            if edition and (not sequence or sequence[-1] != edition):
                sequence.append(edition)
        for i, newer in enumerate(sequence):
            after.setdefault(newer, set())
            for older in sequence[i + 1 :]:
                after.setdefault(older, set()).add(newer)
    ordered = sorted(after, key=lambda e: (-len(after[e]), e))  # most successors = oldest
    return ordered, unreleased


def write(source: Path, ref: str, commit: str, target: Path = TARGET) -> dict[str, Any]:
    """Replace the vendored copy at ``target`` with ``source``'s
    ``definitions/`` and ``LICENSE`` and write the manifest; returns it."""
    definitions = source / "definitions"
    license_file = source / "LICENSE"
    if not definitions.is_dir() or not license_file.is_file():
        raise SystemExit(f"{source}: no definitions/ and LICENSE (not the protocol repository?)")
    if (target / "definitions").exists():
        shutil.rmtree(target / "definitions")
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(definitions.glob("*/*.yml")):
        out = target / "definitions" / path.parent.name / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(path.read_bytes())
    (target / "LICENSE").write_bytes(license_file.read_bytes())
    editions, unreleased = _editions(target / "definitions")
    files = {name: sha256(target / name) for name in vendored_files(target)}
    types = sorted({p.parent.name for p in (target / "definitions").glob("Eiffel*Event/*.yml")})
    manifest = {
        "_comment": "Written by scripts/vendor_eiffel.py; do not edit by hand. "
        "`python scripts/vendor_eiffel.py --check` verifies the files.",
        "source": {
            "repository": REPOSITORY,
            "ref": ref,
            "commit": commit,
            "paths": ["definitions/*/*.yml", "LICENSE"],
            "editions": editions,
            "newest_edition": editions[-1] if editions else None,
            "versions_newer_than_newest_edition": unreleased,
        },
        "license": LICENSE_ID,
        "event_types": len(types),
        "event_versions": sum(1 for _ in (target / "definitions").glob("Eiffel*Event/*.yml")),
        "files": files,
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def fetch(ref: str, tmp: Path, repository: str = REPOSITORY) -> tuple[Path, str]:
    """A shallow fetch of ``ref`` (tag, branch or full commit id) into
    ``tmp``; the checkout and the commit it resolved to."""
    repo = tmp / "eiffel"

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    repo.mkdir()
    git("init", "--quiet")
    git("fetch", "--quiet", "--depth", "1", repository, ref)
    git("-c", "advice.detachedHead=false", "checkout", "--quiet", "FETCH_HEAD")
    return repo, git("rev-parse", "HEAD")


def _local_commit(source: Path) -> str | None:
    if not (source / ".git").exists():  # not a checkout of its own
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def regenerate_links(target: Path = TARGET) -> None:
    """``engine/trace/links.json`` from the vendored definitions."""
    sys.path.insert(0, str(ROOT))
    from engine.trace import linkrules_gen

    linkrules_gen.main([str(target / "definitions")])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the vendored files")
    parser.add_argument("--ref", help="the upstream tag, branch or commit to vendor")
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="a local copy of the protocol repository (definitions/ and LICENSE) instead of git",
    )
    parser.add_argument(
        "--commit", help="with --from: the commit the copy was taken from (a checkout knows)"
    )
    parser.add_argument("--repository", default=REPOSITORY, help="the repository to fetch from")
    parser.add_argument(
        "--target", type=Path, default=TARGET, help="the vendored copy (default: %(default)s)"
    )
    parser.add_argument(
        "--no-links", action="store_true", help="do not regenerate engine/trace/links.json"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.target)
        for line in problems:
            print(line)
        if not problems:
            manifest = json.loads((args.target / MANIFEST).read_text(encoding="utf-8"))
            src = manifest["source"]
            print(
                f"ok: {len(manifest['files'])} files as pinned "
                f"({src['repository']} @ {src['ref']}, commit {src['commit']})"
            )
        return 1 if problems else 0
    if not args.ref:
        parser.error("--ref is required (a tag such as edition-arica, a branch or a commit)")
    if args.source is not None:
        commit = args.commit or _local_commit(args.source) or args.ref
        manifest = write(args.source, args.ref, commit, args.target)
    else:
        with tempfile.TemporaryDirectory() as d:
            checkout, commit = fetch(args.ref, Path(d), args.repository)
            manifest = write(checkout, args.ref, commit, args.target)
    print(
        f"vendored {len(manifest['files'])} files ({manifest['event_types']} event types, "
        f"{manifest['event_versions']} event versions) from {REPOSITORY} @ {args.ref} "
        f"({commit}) into {args.target}"
    )
    if not args.no_links and args.target == TARGET:
        regenerate_links(args.target)
    problems = check(args.target)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
