"""``${...}`` substitution (section 5 of the process language).

References
----------
The text inside ``${...}`` names a value:

* ``f:status`` or bare ``status``: a field; dotted paths walk mappings and,
  when a segment is an integer, lists (``${ev.actions.0.type}``);
* ``v:repo``: a variable (the scope looks it up through enclosing scopes);
* a bare name in ``SPECIAL_NAMES`` (``${wfid}``, ``${expid}``...): a fact
  about the run; ``${f:wfid}`` still names a field called ``wfid``.

A reference may itself hold ``${...}``, substituted first (``${f:${v:key}}``).

Substituting
------------
``substitute`` walks dicts (keys and values), lists and tuples and returns new
containers (its input is never mutated):

* a string that is exactly ``$f:x`` or ``$v:x`` is replaced by the raw value
  (list, mapping, number...; a deep copy, ``None`` when missing);
* in any other string each ``${...}`` is replaced by its value as text
  (``to_text``: missing and ``None`` give ``""``, booleans ``true``/``false``,
  lists and mappings compact JSON). A string that is exactly one ``${...}``
  is still text. An unclosed ``${`` is left as it is. Substituted text is
  not substituted again.
* dict keys are substituted as text only (a key cannot become a list).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

__all__ = [
    "MISSING",
    "SPECIAL_NAMES",
    "DictScope",
    "Scope",
    "find_close",
    "has_substitution",
    "interpolate",
    "lookup_path",
    "resolve",
    "split_ref",
    "substitute",
    "to_text",
]


class _Missing:
    """The type of ``MISSING``: a falsy singleton."""

    __slots__ = ()
    _instance: ClassVar[_Missing | None] = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "MISSING"

    def __copy__(self) -> _Missing:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Missing:
        return self

    def __reduce__(self) -> str:
        return "MISSING"


#: "no such value": what a scope returns for an absent field or variable
MISSING: Final = _Missing()

#: bare names that are facts about the run rather than fields
SPECIAL_NAMES: frozenset[str] = frozenset(
    {"wfid", "expid", "subid", "wf_name", "wf_revision", "engine_id"}
)


@runtime_checkable
class Scope(Protocol):
    """Where references are looked up. Every method returns ``MISSING`` for
    an absent value."""

    def field(self, path: str) -> Any:
        """The field at dotted ``path``."""
        ...

    def variable(self, path: str) -> Any:
        """The variable at dotted ``path``."""
        ...

    def special(self, name: str) -> Any:
        """One of ``SPECIAL_NAMES``."""
        ...


_INDEX = re.compile(r"-?\d+", re.ASCII)


def lookup_path(root: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``root``, or ``MISSING``.

    A key holding the whole path (``"a.b"``) wins over walking ``a`` then
    ``b``. A segment that is an integer indexes a list (negative from the
    end).
    """
    if not path:
        return MISSING
    if isinstance(root, Mapping) and path in root:
        return root[path]
    current = root
    for segment in path.split("."):
        if isinstance(current, Mapping):
            if segment not in current:
                return MISSING
            current = current[segment]
        elif isinstance(current, list | tuple) and _INDEX.fullmatch(segment):
            index = int(segment)
            if not -len(current) <= index < len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


class DictScope:
    """A ``Scope`` over plain mappings (tests, and the engine's simple cases).

    ``variables`` may be a ``collections.ChainMap`` to model nested scopes.
    """

    __slots__ = ("fields", "specials", "variables")

    def __init__(
        self,
        fields: Mapping[str, Any] | None = None,
        variables: Mapping[str, Any] | None = None,
        specials: Mapping[str, Any] | None = None,
    ) -> None:
        self.fields: Mapping[str, Any] = fields if fields is not None else {}
        self.variables: Mapping[str, Any] = variables if variables is not None else {}
        self.specials: Mapping[str, Any] = specials if specials is not None else {}

    def field(self, path: str) -> Any:
        return lookup_path(self.fields, path)

    def variable(self, path: str) -> Any:
        return lookup_path(self.variables, path)

    def special(self, name: str) -> Any:
        return self.specials.get(name, MISSING)

    def __repr__(self) -> str:
        return (
            f"DictScope(fields={self.fields!r}, variables={self.variables!r}, "
            f"specials={self.specials!r})"
        )


def find_close(text: str, start: int) -> int:
    """The index of the ``}`` closing a ``${`` whose body starts at ``start``
    (braces inside are balanced), or -1 when it is unclosed."""
    depth = 1
    i = start
    while True:
        close = text.find("}", i)
        if close < 0:
            return -1
        depth += text.count("{", i, close) - 1
        if depth == 0:
            return close
        i = close + 1


def split_ref(ref: str) -> tuple[str, str]:
    """``(kind, path)`` for a reference without nested ``${``: kind is
    ``"field"``, ``"variable"`` or ``"special"``."""
    ref = ref.strip()
    if ref.startswith("f:"):
        return "field", ref[2:].strip()
    if ref.startswith("v:"):
        return "variable", ref[2:].strip()
    if ref in SPECIAL_NAMES:
        return "special", ref
    return "field", ref


def resolve(ref: str, scope: Scope) -> Any:
    """The typed value the text inside ``${...}`` names (``MISSING`` when
    absent). Nested ``${...}`` in ``ref`` is substituted first."""
    if "${" in ref:
        ref = interpolate(ref, scope)
    kind, path = split_ref(ref)
    if not path:
        return MISSING
    if kind == "field":
        return scope.field(path)
    if kind == "variable":
        return scope.variable(path)
    return scope.special(path)


def to_text(value: Any) -> str:
    """A value as it appears in substituted text."""
    if type(value) is str:
        return value
    if value is None or value is MISSING:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Mapping | list | tuple):
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=to_text)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


# A string's ``${...}`` structure is parsed once and cached: a template is a
# tuple of parts, each a literal string or a ``(kind, path)`` reference
# (``None`` as the template of a string that needs the general path: nested
# ``${`` inside a reference).
_Template = tuple[Any, ...]
_templates: dict[str, _Template | None] = {}


def _compile(text: str) -> _Template | None:
    parts: list[Any] = []
    pos = 0
    start = text.find("${")
    while start >= 0:
        close = find_close(text, start + 2)
        if close < 0:
            parts.append(text[pos : start + 2])
            pos = start + 2
        else:
            ref = text[start + 2 : close]
            if "${" in ref:
                return None
            if start > pos:
                parts.append(text[pos:start])
            parts.append(split_ref(ref))
            pos = close + 1
        start = text.find("${", pos)
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(parts)


def _template(text: str) -> _Template | None:
    try:
        return _templates[text]
    except KeyError:
        if len(_templates) > 50_000:
            _templates.clear()
        tpl = _templates[text] = _compile(text)
        return tpl


def _lookup(ref: tuple[str, str], scope: Scope) -> Any:
    kind, path = ref
    if not path:
        return MISSING
    if kind == "field":
        return scope.field(path)
    if kind == "variable":
        return scope.variable(path)
    return scope.special(path)


def interpolate(text: str, scope: Scope) -> str:
    """``text`` with every ``${...}`` replaced by its value as text (never
    the raw ``$f:x`` form)."""
    if "${" not in text:
        return text
    tpl = _template(text)
    if tpl is not None:
        out = [part if type(part) is str else to_text(_lookup(part, scope)) for part in tpl]
        return out[0] if len(out) == 1 else "".join(out)
    return _interpolate_slow(text, scope)


def _interpolate_slow(text: str, scope: Scope) -> str:
    start = text.find("${")
    if start < 0:
        return text
    out: list[str] = []
    pos = 0
    while start >= 0:
        close = find_close(text, start + 2)
        if close < 0:
            # unclosed: keep the '${' as text, look for references after it
            out.append(text[pos : start + 2])
            pos = start + 2
        else:
            out.append(text[pos:start])
            out.append(to_text(resolve(text[start + 2 : close], scope)))
            pos = close + 1
        start = text.find("${", pos)
    out.append(text[pos:])
    return "".join(out)


_RAW = re.compile(r"\$([fv]):(\S+)")


def _raw(match: re.Match[str], scope: Scope) -> Any:
    kind, path = match.groups()
    if "${" in path:
        path = interpolate(path, scope)
    value = scope.field(path) if kind == "f" else scope.variable(path)
    if value is MISSING:
        return None
    if isinstance(value, dict | list):
        return copy.deepcopy(value)
    return value


def _substitute_str(value: str, scope: Scope) -> Any:
    if "$" not in value:
        return value
    if value[1:3] in ("f:", "v:"):
        raw = _RAW.fullmatch(value)
        if raw is not None:
            return _raw(raw, scope)
    return interpolate(value, scope)


def substitute(value: Any, scope: Scope) -> Any:
    """``value`` with its ``${...}`` and ``$f:x``/``$v:x`` references
    replaced (recursively; new containers, the input is not mutated)."""
    kind = type(value)
    if kind is str:
        if "$" not in value:
            return value
        return _substitute_str(value, scope)
    if kind is dict or isinstance(value, Mapping):
        return {
            (interpolate(k, scope) if type(k) is str and "$" in k else k): substitute(v, scope)
            for k, v in value.items()
        }
    if kind is list:
        return [substitute(item, scope) for item in value]
    if kind is tuple:
        return tuple(substitute(item, scope) for item in value)
    if isinstance(value, str):  # a str subclass
        return _substitute_str(str(value), scope)
    return value


def has_substitution(value: Any) -> bool:
    """True when any string in ``value`` (dict keys included) holds ``${``
    or is a raw ``$f:x``/``$v:x`` reference."""
    if isinstance(value, str):
        return "${" in value or (value[1:3] in ("f:", "v:") and _RAW.fullmatch(value) is not None)
    if isinstance(value, Mapping):
        return any(has_substitution(k) or has_substitution(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_substitution(item) for item in value)
    return False


# -- compiled substitution for definition data ---------------------------------
#
# A definition's arguments never change, so the interpreter compiles each one
# once into a function of the scope (``substitute_node_value``); the result is
# the same as ``substitute`` but without re-walking the value on every step.

Compiled = Callable[[Scope], Any]
_compiled: dict[int, tuple[Any, Compiled]] = {}


def _const(value: Any) -> Compiled:
    if isinstance(value, dict):
        return lambda scope: dict(value)
    if isinstance(value, list):
        return lambda scope: list(value)
    return lambda scope: value


def compile_value(value: Any) -> tuple[bool, Compiled]:
    """``(constant, fn)``: ``fn(scope)`` gives ``substitute(value, scope)``;
    ``constant`` tells that no substitution happens in ``value``."""
    kind = type(value)
    if kind is str:
        if "$" not in value:
            return True, _const(value)
        if value[1:3] in ("f:", "v:") and _RAW.fullmatch(value):
            return False, lambda scope: _substitute_str(value, scope)
        tpl = _template(value)
        if tpl is None:
            return False, lambda scope: interpolate(value, scope)
        if len(tpl) == 1 and type(tpl[0]) is not str:
            ref = tpl[0]
            return False, lambda scope: to_text(_lookup(ref, scope))
        return False, lambda scope: interpolate(value, scope)
    if kind is dict:
        if any(type(k) is str and "$" in k for k in value):
            return False, lambda scope: substitute(value, scope)  # substituted keys: rare
        compiled = [(k, compile_value(v)) for k, v in value.items()]
        if all(const for _, (const, _) in compiled):
            return True, _const(value)
        fixed = [(k, fn) for k, (_, fn) in compiled]
        return False, lambda scope: {k: fn(scope) for k, fn in fixed}
    if kind is list:
        fns = [compile_value(v) for v in value]
        if all(c for c, _ in fns):
            return True, _const(value)
        calls = [fn for _, fn in fns]
        return False, lambda scope: [fn(scope) for fn in calls]
    return True, _const(value)


def substitute_node_value(value: Any, scope: Scope) -> Any:
    """``substitute`` for values of an immutable definition (compiled once,
    cached by identity; the cache keeps the value alive so ids stay unique)."""
    hit = _compiled.get(id(value))
    if hit is None or hit[0] is not value:
        if len(_compiled) > 100_000:
            _compiled.clear()
        hit = _compiled[id(value)] = (value, compile_value(value)[1])
    return hit[1](scope)
