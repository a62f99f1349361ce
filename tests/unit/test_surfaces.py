"""The named surfaces of ``engine.trace`` and ``engine.launchers``: every
name in ``__all__`` resolves, on first use only (PEP 562), so importing the
package loads neither kombu nor redis; and the import-linter contract that
keeps their submodules private names every submodule."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import engine.launchers
import engine.trace

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = [engine.trace, engine.launchers]


def test_importing_the_packages_loads_no_submodule_nor_broker_client() -> None:
    code = (
        "import json, sys; import engine.trace, engine.launchers; "
        "print(json.dumps(sorted(m for m in sys.modules if m in ('kombu', 'redis', 'celery') "
        "or m.startswith(('engine.trace.', 'engine.launchers.')))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_every_name_of_the_surface_resolves(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert names == sorted(names)
    assert set(names) == set(getattr(package, "_MODULES", ())) | set(package._NAMES)  # type: ignore[attr-defined]
    for name in names:
        assert getattr(package, name) is not None, name
    assert set(names) <= set(dir(package))
    with pytest.raises(AttributeError):
        package.no_such_name  # type: ignore[attr-defined]  # noqa: B018


def test_trace_surface_names_are_the_submodules_own() -> None:
    from engine.trace import Graph, eiffel, validate_event

    assert Graph is importlib.import_module("engine.trace.graph").Graph
    assert eiffel is importlib.import_module("engine.trace.eiffel")
    assert validate_event is importlib.import_module("engine.trace.validate").validate


def test_the_contract_protects_every_submodule_the_surface_does_not_hand_out() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [contract] = [c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "surfaces"]
    protected = set(contract["protected_modules"])
    for package in PACKAGES:
        public = {f"{package.__name__}.{m}" for m in getattr(package, "_MODULES", ())}
        for info in pkgutil.iter_modules(package.__path__):
            name = f"{package.__name__}.{info.name}"
            if info.name == "__main__" or name in public:
                continue
            assert name in protected or f"{package.__name__}.*" in protected, name
