"""The process store: a process by name (``resolve_process``, for ``boss
launch``, the web UI and launch items) and BOSS's robogrator layout, which
processes an event launches, found by the event's project and label.

::

    <store>/<Project/Path>/<LABEL>.<name>.yaml    the process
    <store>/<Project/Path>/<LABEL>.<name>.conf    optional: YAML mapping merged
                                                  into the launch fields

A project name's ``:`` (OBS: ``Mer:Tools:Testing``) and ``/`` (GitHub,
GitLab, Gerrit: ``org/repo``) separate path segments, as BOSS did:
``Mer:Tools:Testing`` is ``<store>/Mer/Tools/Testing/``. An event of label
``OBS_SRCSRV_REQUEST_CREATE`` for that project launches every
``OBS_SRCSRV_REQUEST_CREATE.*.yaml`` there. A request event looks in the
directory of each of its target projects (one launch per target).

``enable_project`` links the standard processes into a project's directory,
so the project gets the standard workflow (``boss enable-project``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "STANDARD_LABELS",
    "ProcessEntry",
    "ProcessStore",
    "StoreError",
    "enable_project",
    "project_dir",
    "resolve_process",
]

#: labels each standard process is launched for, by its file's stem, for
#: standard processes whose file name does not say it (``<LABEL>.<name>.yaml``)
#: and whose YAML has no ``# launch-on: LABEL[, LABEL]`` comment line
STANDARD_LABELS: dict[str, list[str]] = {
    "BOSS_handle_SR": ["OBS_SRCSRV_REQUEST_CREATE"],
}

_SEGMENT = re.compile(r"^[A-Za-z0-9_+.~-][A-Za-z0-9_+.~ -]*$")
_LAUNCH_ON = re.compile(r"^#\s*launch-on:\s*(.+)$", re.MULTILINE)
_LABEL = re.compile(r"^[A-Z][A-Z0-9_]*$")


class StoreError(ValueError):
    """A project name that cannot be a path in the store, or a bad .conf."""


@dataclass(frozen=True)
class ProcessEntry:
    """One process of the store: its name (the part between the label and
    ``.yaml``), its file, and the .conf's fields (``{}`` when none)."""

    label: str
    name: str
    path: Path
    conf: dict[str, Any]

    def definition(self) -> str:
        return self.path.read_text(encoding="utf-8")


def project_dir(store: Path, project: str) -> Path:
    """The directory of ``project`` in ``store``; a name that would climb
    out of it (``..``, an empty segment) is refused."""
    segments = [s for s in re.split(r"[:/]", project)]
    if not segments or any(not s or s in (".", "..") or not _SEGMENT.match(s) for s in segments):
        raise StoreError(f"project {project!r} cannot be a path in the process store")
    return store.joinpath(*segments)


def read_conf(path: Path) -> dict[str, Any]:
    """A .conf file: a YAML mapping (empty file: ``{}``)."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise StoreError(f"{path}: not YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise StoreError(f"{path}: not a YAML mapping")
    return loaded


class ProcessStore:
    """Looks processes up in a store directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def lookup(self, label: str, project: str | None) -> list[ProcessEntry]:
        """The processes ``label`` launches for ``project``, by name."""
        if project is None:
            return []
        try:
            where = project_dir(self.root, project)
        except StoreError:
            return []
        if not where.is_dir():
            return []
        out = []
        for path in sorted(where.glob(f"{glob_escape(label)}.*.y*ml")):
            stem = path.name[len(label) + 1 :].rsplit(".", 1)[0]
            if not stem or path.suffix not in (".yaml", ".yml") or not path.is_file():
                continue
            conf_path = path.with_suffix(".conf")
            conf = read_conf(conf_path) if conf_path.is_file() else {}
            out.append(ProcessEntry(label, stem, path, conf))
        return out

    def projects(self) -> list[str]:
        """Every project with at least one process (as ``A:B:C``)."""
        found = set()
        for path in self.root.rglob("*.y*ml"):
            if path.parent != self.root and "." in path.stem:
                found.add(":".join(path.parent.relative_to(self.root).parts))
        return sorted(found)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def standard_labels(path: Path) -> tuple[list[str], str]:
    """The labels a standard process is launched for, and its name:
    from its file name (``<LABEL>.<name>.yaml``), a ``# launch-on:`` comment
    in it, or :data:`STANDARD_LABELS`."""
    stem = path.name.rsplit(".", 1)[0]
    head, dot, rest = stem.partition(".")
    if dot and _LABEL.match(head):
        return [head], rest
    found = _LAUNCH_ON.search(path.read_text(encoding="utf-8"))
    if found:
        return [x.strip() for x in found.group(1).split(",") if x.strip()], stem
    return list(STANDARD_LABELS.get(stem, [])), stem


def enable_project(
    store: str | os.PathLike[str],
    project: str,
    standard_dir: str | os.PathLike[str],
    labels: list[str] | None = None,
) -> list[Path]:
    """Link the standard processes (and their .conf files) into
    ``project``'s directory of ``store``. Each lands as
    ``<LABEL>.<name>.yaml``, a symbolic link to the standard file, so an
    update of the standard workflow reaches every enabled project. A link
    already there is left alone; a regular file of that name (a project's
    own version) is never replaced. ``labels`` overrides the labels for
    every process. Returns the links made."""
    std = Path(standard_dir).resolve()
    if not std.is_dir():
        raise StoreError(f"no standard process directory {std}")
    where = project_dir(Path(store), project)
    made: list[Path] = []
    processes = sorted(p for p in std.iterdir() if p.suffix in (".yaml", ".yml"))
    if not processes:
        raise StoreError(f"{std}: no standard processes (*.yaml)")
    for path in processes:
        found, name = standard_labels(path)
        for label in labels or found:
            where.mkdir(parents=True, exist_ok=True)
            for src, suffix in ((path, ".yaml"), (path.with_suffix(".conf"), ".conf")):
                if not src.is_file():
                    continue
                link = where / f"{label}.{name}{suffix}"
                if link.is_symlink() or link.exists():
                    continue
                link.symlink_to(src)
                made.append(link)
    return made


def resolve_process(process_dir: str | os.PathLike[str] | None, name: str) -> Path:
    """The file of a process in the process store (``process_dir``, the
    current directory's ``processes`` when none):
    ``demo/ci_pipeline`` is ``<process_dir>/demo/ci_pipeline.yaml``. A name
    that climbs out of the store is refused."""
    root = Path(process_dir or "processes").resolve()
    for suffix in ("", ".yaml", ".yml"):
        candidate = (root / (name + suffix)).resolve()
        if not candidate.is_relative_to(root):
            raise ValueError(f"process {name!r} is outside the process store {root}")
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no process {name!r} in the process store {root}")
