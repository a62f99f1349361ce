"""The rules file: event filters mapped to processes (an alternative, or a
complement, to the process store's directory layout).

::

    # rules.yaml: a list of rules (or {rules: [...]}); every matching rule launches
    - match:
        source: github                 # obs | github | gitlab | gerrit | eiffel
        label: [GITHUB_PUSH, GITHUB_TAG_PUSH]   # also `type:`
        project: "sailfishos/*"        # glob; "~regex" for a regular expression
        branch: main
        repository: "~^https://github.com/"
        payload: {action: opened}      # dotted paths into the payload
        deletes: false                 # true: ref deletions match too
        internal_refs: false           # true: Gerrit refs/changes/*, refs/meta/* too
      process: ci/build                # a process of the store (or process_dir)
      fields:                          # extracted into the launch fields
        commit: "${payload.after}"
        who: "${payload.pusher.name}"
        where: "${project}@${branch}"

Each ``match`` key is optional; a value is a glob (``fnmatch``), a
``~regex`` (searched), or a list of them (any). A ``payload`` path into a
list matches when any element does. A string field that is exactly one
``${...}`` keeps the value's type; within other text it is put as text;
a path that is missing gives ``null`` (alone) or an empty string.

Opting in: a ref deletion (``GITHUB_REF_DELETED``, ``GITLAB_REF_DELETED``,
``GERRIT_REF_DELETED``) matches only a rule with ``deletes: true``, an
update of a Gerrit internal ref (``GERRIT_INTERNAL_REF_UPDATED``) only one
with ``internal_refs: true`` (as zuul's ``ignore-deletes``): a catch-all
rule never launches for them. The event says which it needs
(``NormalisedEvent.opt_in``).

Names in ``${...}``: ``payload.<path>``, ``source``, ``label``,
``delivery``, ``project``, ``target`` (the request's target project of this
launch), ``branch``, ``repository``, ``change``, ``commit``, ``author``,
``url``, ``patchset``, ``fork``.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.launchers.base import EVENT_FIELDS, NormalisedEvent
from engine.trace.triggers import values_at

__all__ = ["Rule", "RuleError", "Rules", "extract"]

_KEYS = {"source", "label", "type", "project", "branch", "repository", "payload"}
#: the opt-in keys (booleans): an event whose ``opt_in`` is one of them
#: matches only a rule that sets it true
OPT_INS = ("deletes", "internal_refs")
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


class RuleError(ValueError):
    """A rules file that cannot be used (its path and the rule named)."""


def _patterns(where: str, value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if not isinstance(v, str | int | float | bool):
            raise RuleError(f"{where}: {v!r} is not a pattern")
        v = str(v)
        if v.startswith("~"):
            try:
                re.compile(v[1:])
            except re.error as exc:
                raise RuleError(f"{where}: bad regular expression {v!r}: {exc}") from None
        out.append(v)
    return out


def _matches(patterns: list[str], values: list[Any]) -> bool:
    for pattern in patterns:
        for value in values:
            if value is None:
                continue
            text = (
                value
                if isinstance(value, str)
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
            if pattern.startswith("~"):
                if re.search(pattern[1:], text):
                    return True
            elif fnmatch.fnmatchcase(text, pattern):
                return True
    return False


def _lookup(obj: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
    return obj


def _name(event: NormalisedEvent, target: str | None, ref: str) -> Any:
    head, _, rest = ref.partition(".")
    if head == "payload":
        return _lookup(event.payload, rest.split(".")) if rest else event.payload
    if rest:
        raise KeyError(ref)
    if head == "target":
        return target
    if head in EVENT_FIELDS:
        return getattr(event, head)
    raise KeyError(ref)


def extract(template: Any, event: NormalisedEvent, target: str | None = None) -> Any:
    """``template`` (a field value of a rule) with its ``${...}`` filled."""
    if isinstance(template, dict):
        return {k: extract(v, event, target) for k, v in template.items()}
    if isinstance(template, list):
        return [extract(v, event, target) for v in template]
    if not isinstance(template, str):
        return template
    whole = _REF.fullmatch(template)
    if whole:
        return _name(event, target, whole.group(1))

    def text(m: re.Match[str]) -> str:
        value = _name(event, target, m.group(1))
        return "" if value is None else str(value)

    return _REF.sub(text, template)


@dataclass
class Rule:
    process: str
    match: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    where: str = "rule"

    def __post_init__(self) -> None:
        if not isinstance(self.process, str) or not self.process:
            raise RuleError(f"{self.where}: no process")
        if not isinstance(self.match, dict):
            raise RuleError(f"{self.where}: match is not a mapping")
        unknown = set(self.match) - _KEYS - set(OPT_INS)
        if unknown:
            raise RuleError(
                f"{self.where}: unknown match keys {sorted(unknown)}; "
                f"known: {sorted(_KEYS | set(OPT_INS))}"
            )
        for key in OPT_INS:
            if key in self.match and not isinstance(self.match[key], bool):
                raise RuleError(f"{self.where}: match.{key} is not true or false")
        self.opt_ins = frozenset(k for k in OPT_INS if self.match.get(k) is True)
        if not isinstance(self.fields, dict):
            raise RuleError(f"{self.where}: fields is not a mapping")
        self._compiled: dict[str, list[str]] = {}
        for key, value in self.match.items():
            if key in OPT_INS:
                continue
            if key == "payload":
                if not isinstance(value, dict):
                    raise RuleError(f"{self.where}: match.payload is not a mapping")
                for path, want in value.items():
                    self._compiled[f"payload.{path}"] = _patterns(
                        f"{self.where}: match.payload.{path}", want
                    )
            else:
                self._compiled["label" if key == "type" else key] = _patterns(
                    f"{self.where}: match.{key}", value
                )
        try:  # every ${...} names something
            probe = NormalisedEvent("x", "X", "x")
            extract(self.fields, probe)
        except KeyError as exc:
            raise RuleError(f"{self.where}: fields: unknown name ${{{exc.args[0]}}}") from None

    def matches(self, event: NormalisedEvent, target: str | None) -> bool:
        if event.opt_in and event.opt_in not in self.opt_ins:
            return False
        for key, patterns in self._compiled.items():
            if key.startswith("payload."):
                got = values_at(event.payload, key.split(".")[1:])
            elif key == "project":
                got = [target] if target is not None else [event.project]
                if target is not None and event.project is not None:
                    got.append(event.project)
            else:
                got = [getattr(event, key)]
            if not _matches(patterns, got):
                return False
        return True

    def fields_for(self, event: NormalisedEvent, target: str | None) -> dict[str, Any]:
        return extract(self.fields, event, target)


class Rules:
    """A rules file, read once (``reload()`` reads it again)."""

    def __init__(self, rules: list[Rule], path: str = "") -> None:
        self.rules = rules
        self.path = path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Rules:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RuleError(f"{p}: cannot read: {exc}") from None
        except yaml.YAMLError as exc:
            raise RuleError(f"{p}: not YAML: {exc}") from None
        return cls.from_data(loaded, str(p))

    @classmethod
    def from_data(cls, data: Any, path: str = "rules") -> Rules:
        if isinstance(data, dict) and "rules" in data:
            data = data["rules"]
        if data is None:
            data = []
        if not isinstance(data, list):
            raise RuleError(f"{path}: not a list of rules")
        rules = []
        for i, item in enumerate(data, 1):
            where = f"{path}: rule {i}"
            if not isinstance(item, dict):
                raise RuleError(f"{where}: not a mapping")
            unknown = set(item) - {"match", "process", "fields", "name"}
            if unknown:
                raise RuleError(
                    f"{where}: unknown keys {sorted(unknown)}; known: match, process, fields, name"
                )
            rules.append(
                Rule(item.get("process"), item.get("match") or {}, item.get("fields") or {}, where)
            )
        return cls(rules, path)

    def matching(self, event: NormalisedEvent, target: str | None) -> list[Rule]:
        return [r for r in self.rules if r.matches(event, target)]
