"""Validation of Eiffel events: is this event one the protocol allows?

:func:`validate` raises :class:`InvalidEvent` naming the first broken rule,
checked in this order:

``json``
    not a JSON object (text that does not parse, or a list, ...).
``id-format``
    ``meta.id`` is not a lowercase UUID (RFC 4122 versions 1 to 5, as the
    Eiffel meta schema's pattern; a :class:`Validator` made with
    ``require_uuid4=True`` accepts only v4, which is what BOSS emits), or a
    link's ``target`` is not a lowercase UUID.
``time-format``
    ``meta.time`` is not an integer count of milliseconds (a float, a string
    or a bool are not).
``schema-unknown``
    no schema is known for ``meta.type`` at ``meta.version``; the message
    says which versions (or types) are known.
``schema``
    the event breaks its type's JSON schema; the message names the JSON path
    and the schema keyword (``at data.outcome.conclusion: 'DONE' is not one
    of [...] (keyword enum)``), ``path`` is that path.
``link-unknown-type``, ``link-required``, ``link-single``, ``link-target-type``
    the protocol's link rules (``engine.trace.linkrules``).

Link rules have a policy (``links=``): ``"strict"`` (the default, and
always for what BOSS emits) raises them like any other rule; ``"warn"``
(``boss event import``'s default) returns them instead, as a list of
:class:`InvalidEvent`, so that an imported event that breaks only a link
rule is stored with the broken rules recorded beside it.

Schemas come, first found wins, from the definition directories given to
:class:`Validator` (the setting ``eiffel_definitions``: to add or override
versions), then from the protocol's definitions shipped with BOSS
(``engine/schemas/eiffel/definitions``, every event type and version of
eiffel-community/eiffel at the commit ``manifest.json`` there pins), then
from the ``eiffellib`` package (``eiffellib/schemas/<Type>/<version>.json``,
a fallback). Definition directories are laid out as the protocol's
repository (``<Type>/<version>.yml``, YAML JSON Schema (draft-04 or 2020-12)
with relative ``$ref``s and ``_``-prefixed annotations). Each (type,
version) schema is loaded and compiled once per validator: a valid event is
accepted by the fastjsonschema-compiled function; only a rejected one is
walked by ``jsonschema`` to say where and why.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema

from engine.trace.linkrules import check_links

__all__ = [
    "LINK_POLICIES",
    "VENDORED_DEFINITIONS",
    "InvalidEvent",
    "Validator",
    "configure",
    "default_validator",
    "validate",
    "validate_many",
]

TargetType = Callable[[str], str | None]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_DRAFT7 = "http://json-schema.org/draft-07/schema#"

#: the protocol's definitions shipped with BOSS (scripts/vendor_eiffel.py)
VENDORED_DEFINITIONS = Path(__file__).resolve().parent.parent / "schemas" / "eiffel" / "definitions"

#: ``strict``: a broken link rule rejects the event; ``warn``: it is returned
LINK_POLICIES = ("strict", "warn")


class InvalidEvent(ValueError):
    """An event the protocol does not allow: ``rule`` names the broken rule
    (see the module docstring), ``path`` where in the event (``meta.id``,
    ``data.outcome``, ``links[1]``), when it can be told."""

    def __init__(self, rule: str, message: str, path: str | None = None) -> None:
        super().__init__(f"{rule}: {message}")
        self.rule = rule
        self.message = message
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (Celery results, multiprocessing)
        return (type(self), (self.rule, self.message, self.path))


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (-1,)


class _Schema:
    """One (type, version) schema: the compiled fast check and, built only
    when an event is rejected, the jsonschema validator that explains."""

    __slots__ = ("_slow", "fast", "schema")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        fast_schema = dict(schema)
        if "2020-12" in str(schema.get("$schema", "")):
            # only draft-7 keywords are used by the definitions; fastjsonschema
            # knows no 2020-12
            fast_schema["$schema"] = _DRAFT7
        try:
            self.fast: Callable[[Any], Any] | None = fastjsonschema.compile(fast_schema)
        except Exception:  # a schema it cannot compile: jsonschema alone
            self.fast = None
        self._slow: jsonschema.protocols.Validator | None = None

    def slow(self) -> jsonschema.protocols.Validator:
        if self._slow is None:
            declared = str(self.schema.get("$schema", ""))
            cls: Any = (
                jsonschema.Draft4Validator
                if "draft-04" in declared
                else jsonschema.Draft202012Validator
            )
            self._slow = cls(self.schema)
        return self._slow

    def check(self, event: Any) -> None:
        if self.fast is not None:
            try:
                self.fast(event)
                return
            except fastjsonschema.JsonSchemaException:
                pass
        error = jsonschema.exceptions.best_match(self.slow().iter_errors(event))
        if error is None:  # the fast check is stricter on some keyword: trust jsonschema
            return
        where = _path(error.absolute_path)
        raise InvalidEvent(
            "schema", f"at {where}: {error.message} (keyword {error.validator})", where
        )


def _load_definition(path: Path, cache: dict[Path, Any]) -> Any:
    """A YAML (or JSON) definition with its relative ``$ref``s inlined and
    its ``_`` annotations dropped."""
    path = path.resolve()
    if path in cache:
        return cache[path]
    import yaml

    text = path.read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=loader)

    def walk(node: Any, nested: bool) -> Any:
        if isinstance(node, dict):
            out = {
                k: walk(v, True)
                for k, v in node.items()
                if not (isinstance(k, str) and k.startswith("_"))
                and not (k == "$schema" and nested)
                and k != "$ref"
            }
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#") and "://" not in ref:
                target = dict(_load_definition(path.parent / ref, cache))
                target.pop("$schema", None)
                return target if not out else {"allOf": [target], **out}
            if ref is not None:
                out["$ref"] = ref
            return out
        if isinstance(node, list):
            return [walk(v, True) for v in node]
        return node

    resolved = walk(doc, False)
    cache[path] = resolved
    return resolved


class Validator:
    """Validates Eiffel events against the schemas of ``definitions_dirs``
    (first), of the protocol's definitions shipped with BOSS (unless
    ``vendored=False``) and of eiffellib (the fallback), and the protocol's
    link rules. Schemas are loaded and compiled on first use and kept; one
    validator may be shared by threads."""

    def __init__(
        self,
        definitions_dirs: Sequence[Path | str] = (),
        *,
        require_uuid4: bool = False,
        vendored: bool = True,
    ) -> None:
        self.definitions_dirs = [Path(d) for d in definitions_dirs]
        self.vendored = vendored
        self._id = _UUID4 if require_uuid4 else _UUID
        self._index: dict[str, dict[str, Any]] | None = None
        self._schemas: dict[tuple[str, str], _Schema] = {}
        self._definitions: dict[Path, Any] = {}  # parsed YAML files, shared by $refs
        self._lock = threading.Lock()

    # --- what is known ---------------------------------------------------

    def _sources(self) -> dict[str, dict[str, Any]]:
        """``{type: {version: source}}`` where source is a Path in a
        definitions directory (the configured ones, then the vendored one)
        or a Traversable in eiffellib; the first found wins."""
        if self._index is not None:
            return self._index
        index: dict[str, dict[str, Any]] = {}
        dirs = [*self.definitions_dirs, *([VENDORED_DEFINITIONS] if self.vendored else [])]
        for d in dirs:
            if not d.is_dir():
                continue
            for type_dir in sorted(d.iterdir()):
                if not (type_dir.is_dir() and type_dir.name.endswith("Event")):
                    continue
                for f in sorted(type_dir.iterdir()):
                    if f.suffix in (".yml", ".yaml", ".json"):
                        index.setdefault(type_dir.name, {}).setdefault(f.stem, f)
        try:
            root = resources.files("eiffellib") / "schemas"
            type_dirs = [t for t in root.iterdir() if t.is_dir()]
        except (ModuleNotFoundError, FileNotFoundError):  # the fallback is optional
            type_dirs = []
        for type_dir in type_dirs:
            for f in type_dir.iterdir():
                if f.name.endswith(".json"):
                    index.setdefault(type_dir.name, {}).setdefault(f.name[:-5], f)
        self._index = index
        return index

    def known(self) -> dict[str, list[str]]:
        """Every event type with the versions a schema is known for."""
        return {t: sorted(vs, key=_version_key) for t, vs in sorted(self._sources().items())}

    def _schema(self, etype: str, version: str) -> _Schema:
        key = (etype, version)
        found = self._schemas.get(key)
        if found is not None:
            return found
        sources = self._sources()
        versions = sources.get(etype)
        if versions is None:
            raise InvalidEvent(
                "schema-unknown",
                f"unknown event type {etype!r}; known types: {', '.join(sorted(sources))}",
                "meta.type",
            )
        source = versions.get(version)
        if source is None:
            known = ", ".join(sorted(versions, key=_version_key))
            raise InvalidEvent(
                "schema-unknown",
                f"no schema for {etype} version {version!r}; known versions: {known}"
                + (
                    ""
                    if self.definitions_dirs
                    else " (configure eiffel_definitions for versions BOSS does not ship)"
                ),
                "meta.version",
            )
        with self._lock:
            found = self._schemas.get(key)
            if found is None:
                if isinstance(source, Path):
                    schema = _load_definition(source, self._definitions)
                else:
                    schema = json.loads(source.read_text(encoding="utf-8"))
                found = self._schemas[key] = _Schema(schema)
        return found

    # --- checks ------------------------------------------------------------

    def validate(
        self, event: Any, *, target_type: TargetType | None = None, links: str = "strict"
    ) -> list[InvalidEvent]:
        """Raise :class:`InvalidEvent` if ``event`` (a dict, or JSON text)
        breaks a rule. ``target_type(id)`` gives the type of a link's target
        event, or None when unknown (then its type is not checked). With
        ``links="warn"`` the broken link rules (``link-*``) are returned, one
        :class:`InvalidEvent` each, instead of raised; with ``"strict"`` the
        list is always empty."""
        if links not in LINK_POLICIES:
            raise ValueError(f"links must be one of {', '.join(LINK_POLICIES)}, not {links!r}")
        if isinstance(event, (str, bytes)):
            try:
                event = json.loads(event)
            except ValueError as exc:
                raise InvalidEvent("json", f"not JSON: {exc}") from None
        if not isinstance(event, dict):
            raise InvalidEvent("json", f"not a JSON object but {type(event).__name__}")
        meta = event.get("meta")
        if not isinstance(meta, dict):
            raise InvalidEvent(
                "schema", "at (top): 'meta' is a required object (keyword required)", "meta"
            )
        etype, version = meta.get("type"), meta.get("version")
        for name, value in (("type", etype), ("version", version)):
            if not isinstance(value, str):
                raise InvalidEvent(
                    "schema",
                    f"at meta: meta.{name} must be a string (keyword required)",
                    f"meta.{name}",
                )
        eid = meta.get("id")
        if not isinstance(eid, str) or not self._id.match(eid):
            kind = "UUID v4" if self._id is _UUID4 else "UUID"
            raise InvalidEvent("id-format", f"meta.id {eid!r} is not a lowercase {kind}", "meta.id")
        t = meta.get("time")
        if type(t) is not int or t < 0:
            raise InvalidEvent(
                "time-format",
                f"meta.time {t!r} is not an integer count of milliseconds since the epoch",
                "meta.time",
            )
        event_links = event.get("links")
        if isinstance(event_links, list):
            for i, link in enumerate(event_links):
                if isinstance(link, dict) and "target" in link:
                    target = link["target"]
                    if not isinstance(target, str) or not _UUID.match(target):
                        raise InvalidEvent(
                            "id-format",
                            f"link target {target!r} is not a lowercase UUID",
                            f"links[{i}].target",
                        )
        self._schema(etype, version).check(event)
        violations = check_links(event, target_type)
        if violations and links == "warn":
            return [InvalidEvent(v.rule, v.message, v.path) for v in violations]
        if violations:
            v = violations[0]
            extra = f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""
            raise InvalidEvent(v.rule, v.message + extra, v.path)
        return []

    def validate_many(
        self, events: Iterable[Any], *, target_type: TargetType | None = None
    ) -> list[tuple[int, InvalidEvent]]:
        """Validate a batch; returns ``(index, error)`` for every invalid
        event (empty when all are valid). Link targets are looked up among
        the batch's own events first, then with ``target_type``."""
        events = list(events)
        types: dict[str, str] = {}
        for e in events:
            meta = e.get("meta") if isinstance(e, dict) else None
            if (
                isinstance(meta, dict)
                and isinstance(meta.get("id"), str)
                and isinstance(meta.get("type"), str)
            ):
                types[meta["id"]] = meta["type"]

        def lookup(target: str) -> str | None:
            found = types.get(target)
            if found is None and target_type is not None:
                found = target_type(target)
            return found

        errors = []
        for i, e in enumerate(events):
            try:
                self.validate(e, target_type=lookup)
            except InvalidEvent as exc:
                errors.append((i, exc))
        return errors


_default: Validator | None = None


def default_validator() -> Validator:
    """The module's shared validator (the shipped definitions and
    eiffellib's schemas until :func:`configure` adds directories)."""
    global _default
    if _default is None:
        _default = Validator()
    return _default


def configure(
    definitions_dirs: Sequence[Path | str] = (), *, require_uuid4: bool = False
) -> Validator:
    """Replace the shared validator (from the ``eiffel_definitions``
    setting) and return it."""
    global _default
    _default = Validator(definitions_dirs, require_uuid4=require_uuid4)
    return _default


def validate(
    event: Any, *, target_type: TargetType | None = None, links: str = "strict"
) -> list[InvalidEvent]:
    """:meth:`Validator.validate` with the shared validator."""
    return default_validator().validate(event, target_type=target_type, links=links)


def validate_many(
    events: Iterable[Any], *, target_type: TargetType | None = None
) -> list[tuple[int, InvalidEvent]]:
    """:meth:`Validator.validate_many` with the shared validator."""
    return default_validator().validate_many(events, target_type=target_type)
