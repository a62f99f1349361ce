"""Helpers for the converter's tests: wrap a snippet of ruote DSL in a
process definition, convert it, read the YAML back as our loader reads it."""

from __future__ import annotations

import textwrap
from typing import Any

import yaml

from bossapp.pdef import Conversion, convert
from engine.core.loader import Yaml12Loader, load_definition


def pdef(body: str, name: str = "t") -> str:
    """A process definition around ``body`` (a dedented snippet)."""
    inner = textwrap.indent(textwrap.dedent(body).strip("\n"), "  ")
    return f"Ruote.process_definition '{name}' do\n{inner}\nend\n"


def load12(text: str) -> Any:
    """The YAML as the engine's loader reads it (YAML 1.2 core schema)."""
    return yaml.load(text, Loader=Yaml12Loader)


def conv(body: str) -> Conversion:
    return convert(pdef(body), "t.pdef")


def steps(body: str, loads: bool = True) -> list[Any]:
    """The converted ``steps`` of a snippet that translates completely."""
    result = conv(body)
    assert result.findings == [], [str(f) for f in result.findings]
    doc = load12(result.yaml)
    assert yaml.safe_load(result.yaml) is not None  # YAML 1.1 tools read it too
    if loads:
        load_definition(result.yaml, "t.yaml")  # what converts must load
    return doc["steps"]


def step(body: str, loads: bool = True) -> Any:
    (only,) = steps(body, loads)
    return only
