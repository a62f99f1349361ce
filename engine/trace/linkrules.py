"""The Eiffel protocol's link rules, as a table, and the check of an event's
links against them.

For every event type and version the protocol's definitions say, per link
type: which event types it may point at (or any), whether it is required and
whether it may repeat. The table lives in ``links.json`` beside this module,
generated once from the protocol's YAML definitions by
``engine.trace.linkrules_gen`` (see that module); nothing here reads the
definitions at run time.

:func:`check_links` names every broken rule as a :class:`Violation`:

* ``link-unknown-type``: a link type the event's type and version does not
  define;
* ``link-required``: a required link type is missing;
* ``link-single``: a link type that may not repeat occurs more than once;
* ``link-target-type``: a link points at an event whose type is known (from
  the ``target_type`` callback) and not one of the legal targets. A target
  whose type is not known is *not* an error: events refer to events that
  are elsewhere or not yet seen.

A few early versions (EiffelTestCaseFinishedEvent 1.0.0,
EiffelTestExecutionRecipeCollectionCreatedEvent 1.0.0) record no link rules
at all; their links are not checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

__all__ = [
    "LinkRule",
    "Violation",
    "check_links",
    "expanded_table",
    "link_types",
    "rules_for",
]

TargetType = Callable[[str], str | None]


class LinkRule(NamedTuple):
    """One link type's rule. ``targets`` is ``None`` when any event type is
    a legal target."""

    targets: frozenset[str] | None
    required: bool
    multiple: bool


@dataclass(frozen=True)
class Violation:
    """One broken link rule: ``rule`` is its name (``link-required`` ...),
    ``link_type`` the link type concerned, ``target`` the target id (None
    for a missing link), ``index`` the link's position in ``links`` (None
    for a missing link)."""

    rule: str
    link_type: str
    message: str
    target: str | None = None
    index: int | None = None

    @property
    def path(self) -> str:
        """Where in the event: ``links[2]`` or ``links``."""
        return "links" if self.index is None else f"links[{self.index}]"


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return ()


@cache
def _compact() -> dict[str, list[dict[str, Any]]]:
    text = (resources.files("engine.trace") / "links.json").read_text(encoding="utf-8")
    return json.loads(text)["types"]


@cache
def _table() -> dict[str, dict[str, dict[str, LinkRule]]]:
    table: dict[str, dict[str, dict[str, LinkRule]]] = {}
    for etype, groups in _compact().items():
        versions: dict[str, dict[str, LinkRule]] = {}
        for group in groups:
            rules = {
                link: LinkRule(
                    None if spec["targets"] == "any" else frozenset(spec["targets"]),
                    spec["required"],
                    spec["multiple"],
                )
                for link, spec in group["links"].items()
            }
            for version in group["versions"]:
                versions[version] = rules
        table[etype] = dict(sorted(versions.items(), key=lambda kv: _version_key(kv[0])))
    return table


def expanded_table() -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """The encoded table in the shape ``linkrules_gen.derive`` produces
    (``{type: {version: {link: {"targets", "required", "multiple"}}}}``), to
    compare it with the definitions."""
    return {
        etype: {
            version: {
                link: {
                    "targets": "any" if r.targets is None else sorted(r.targets),
                    "required": r.required,
                    "multiple": r.multiple,
                }
                for link, r in rules.items()
            }
            for version, rules in versions.items()
        }
        for etype, versions in _table().items()
    }


@cache
def rules_for(event_type: str, version: str) -> Mapping[str, LinkRule] | None:
    """The link rules of ``event_type`` at ``version``; for a version the
    table does not hold, those of the newest known version of the same major
    version below it (link rules change only with a major version), else
    None."""
    versions = _table().get(event_type)
    if not versions:
        return None
    if version in versions:
        return versions[version]
    key = _version_key(version)
    if not key:
        return None
    best = None
    for known in versions:
        kkey = _version_key(known)
        if kkey[0] == key[0] and kkey <= key:
            best = known
    return versions[best] if best is not None else None


def link_types(event_type: str, version: str) -> frozenset[str]:
    """The link types ``event_type`` at ``version`` defines (empty when
    unknown)."""
    return frozenset(rules_for(event_type, version) or ())


def check_links(event: Mapping[str, Any], target_type: TargetType | None = None) -> list[Violation]:
    """Every link rule ``event`` breaks (empty when none). ``target_type``
    maps an event id to its type, or None when unknown; without it, target
    types are not checked. An event of a type or version without rules, or
    whose ``meta``/``links`` are not shaped as the schema says, yields no
    violations here (the schema check reports it)."""
    meta = event.get("meta")
    links = event.get("links")
    if not isinstance(meta, Mapping) or not isinstance(links, list):
        return []
    etype, version = meta.get("type"), meta.get("version")
    if not isinstance(etype, str) or not isinstance(version, str):
        return []
    rules = rules_for(etype, version)
    if not rules:
        return []
    out: list[Violation] = []
    seen: dict[str, int] = {}
    for i, link in enumerate(links):
        if not isinstance(link, Mapping):
            continue
        ltype, target = link.get("type"), link.get("target")
        if not isinstance(ltype, str):
            continue
        rule = rules.get(ltype)
        if rule is None:
            out.append(
                Violation(
                    "link-unknown-type",
                    ltype,
                    f"{etype} {version} defines no link type {ltype} "
                    f"(it has {', '.join(sorted(rules))})",
                    target,
                    i,
                )
            )
            continue
        seen[ltype] = seen.get(ltype, 0) + 1
        if seen[ltype] == 2 and not rule.multiple:
            out.append(
                Violation(
                    "link-single", ltype, f"{etype} may have at most one {ltype} link", target, i
                )
            )
        if target_type is not None and rule.targets is not None and isinstance(target, str):
            ttype = target_type(target)
            if ttype is not None and ttype not in rule.targets:
                out.append(
                    Violation(
                        "link-target-type",
                        ltype,
                        f"{ltype} of {etype} may point at {', '.join(sorted(rule.targets))}, "
                        f"not at {ttype} {target}",
                        target,
                        i,
                    )
                )
    for ltype, rule in rules.items():
        if rule.required and ltype not in seen:
            out.append(
                Violation("link-required", ltype, f"{etype} {version} requires a {ltype} link")
            )
    return out
