"""Load a process definition (YAML) into an ``engine.core.definition.Definition``.

The contract is ``process-language.md``; the choices made where it is silent
are in ``docs/process-language-notes.md``.

How it works: the text is *composed* (not constructed) by a PyYAML loader
whose implicit resolvers follow the YAML 1.2 core schema, so every key and
value keeps its line and column. A single pass over that node tree validates
and normalises everything (expressions, attributes, conditions, durations)
and collects *every* problem it finds; ``LoadError`` carries them all.

Public API: ``load_definition``, ``load_file``, ``check_files``, ``Problem``,
``LoadError``.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.nodes import Node as YamlNode

from engine.core.conditions import ConditionError, parse_condition
from engine.core.definition import (
    BUILTIN_EXPRESSIONS,
    COMMON_ATTRIBUTES,
    CURSOR_COMMANDS,
    PROCESS_ATTRIBUTES,
    RUOTE_EXPRESSIONS,
    TOP_LEVEL_KEYS,
    Definition,
    Handler,
    Node,
    Retry,
)
from engine.core.durations import DurationError, parse_duration, parse_time
from engine.core.substitution import has_substitution

__all__ = ["LoadError", "Problem", "check_files", "load_definition", "load_file"]

NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")

#: a definition may not expand (through YAML aliases) to more nodes than this
MAX_NODES = 100_000


# -- problems -----------------------------------------------------------------


@dataclass
class Problem:
    """One thing wrong with a definition; ``line``/``col`` are 1-based (0 when
    unknown, e.g. for a definition given as a dict)."""

    filename: str | None
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.filename or '<string>'}:{self.line}:{self.col}: {self.message}"


class LoadError(Exception):
    """A definition did not load; ``problems`` lists everything found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems,))


# -- YAML 1.2 core schema ------------------------------------------------------

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class Yaml12Loader(yaml.SafeLoader):
    """A SafeLoader with the YAML 1.2 core schema's implicit resolvers: only
    ``true``/``false`` (any case) are booleans; ``on``, ``yes``, ``no``,
    ``off`` are strings; no timestamps, no sexagesimal or ``0``-octal ints,
    no ``<<`` merge keys. The global SafeLoader is left alone."""

    yaml_implicit_resolvers: dict = {}


Yaml12Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?i:true|false)$"), list("tTfF"))
Yaml12Loader.add_implicit_resolver(
    _NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
Yaml12Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
Yaml12Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _yaml_int(text: str) -> int:
    t = text.replace("_", "") if "_" in text else text
    sign = 1
    if t[:1] in ("+", "-"):
        sign = -1 if t[0] == "-" else 1
        t = t[1:]
    if t.startswith("0o"):
        return sign * int(t[2:], 8)
    if t.startswith("0x"):
        return sign * int(t[2:], 16)
    if not t.isdigit():
        raise ValueError(text)
    return sign * int(t, 10)


def _yaml_float(text: str) -> float:
    low = text.lower()
    if low in (".inf", "+.inf"):
        return math.inf
    if low == "-.inf":
        return -math.inf
    if low == ".nan":
        return math.nan
    return float(text)


# -- small helpers --------------------------------------------------------------


def _suggest(word: str, choices: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    s = _suggest(word, choices)
    return f"; did you mean '{s}'?" if s else ""


def _what(node: YamlNode) -> str:
    """'a list', 'a string', ... for messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        _STR: "a string",
        _INT: "an integer",
        _FLOAT: "a number",
        _BOOL: "a boolean",
        _NULL: "nothing",
    }.get(node.tag, f"a {node.tag} value")


def _is_null(node: YamlNode | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == _NULL)


def _is_str(node: YamlNode) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _STR


def _one_line(node: YamlNode) -> bool:
    sm, em = node.start_mark, node.end_mark
    return sm is not None and em is not None and sm.line == em.line


class _Fatal(Exception):
    """Stop loading at once (definition too large)."""


class _Loader:
    """One load: walks the composed YAML and collects problems."""

    def __init__(self, filename: str | None):
        self.filename = filename
        self.problems: list[Problem] = []
        self._seen: set[tuple[int, int, str]] = set()
        self.nodes: dict[str, Node] = {}
        self.subprocess_names: set[str] = set()
        self._values: dict[int, Any] = {}
        self._converting: set[int] = set()
        self._pairs_cache: dict[int, list[tuple[str, ScalarNode, YamlNode]]] = {}

    # -- reporting -----------------------------------------------------------

    def problem(self, node: YamlNode | None, message: str, offset: int = 0) -> None:
        mark = node.start_mark if node is not None else None
        if mark is None:
            line = col = 0
        else:
            line, col = mark.line + 1, mark.column + 1 + offset
        key = (line, col, message)
        if key in self._seen:  # an aliased node is walked once per use
            return
        self._seen.add(key)
        self.problems.append(Problem(self.filename, line, col, message))

    # -- plain values ----------------------------------------------------------

    def scalar(self, node: ScalarNode) -> Any:
        tag, text = node.tag, node.value
        try:
            if tag == _STR:
                return text
            if tag == _NULL:
                return None
            if tag == _BOOL:
                low = text.lower()
                if low not in ("true", "false"):
                    raise ValueError(text)
                return low == "true"
            if tag == _INT:
                return _yaml_int(text)
            if tag == _FLOAT:
                return _yaml_float(text)
        except ValueError:
            self.problem(node, f"{text!r} is not a valid {tag.rsplit(':', 1)[-1]}")
            return text
        self.problem(node, f"unsupported tag {tag!r}; only YAML 1.2 core types are allowed")
        return text

    def value(self, node: YamlNode) -> Any:
        """Plain data (fields, params, set values, ...) from a node."""
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        key = id(node)
        if key in self._values:
            return self._values[key]
        if key in self._converting:
            self.problem(node, "recursive alias: a value may not contain itself")
            return None
        self._converting.add(key)
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ:
                    self.problem(node, f"unsupported tag {node.tag!r}")
                result: Any = [self.value(item) for item in node.value]
            else:
                if node.tag != _MAP:
                    self.problem(node, f"unsupported tag {node.tag!r}")
                result = {k: self.value(v) for k, _, v in self.pairs(node)}
        finally:
            self._converting.discard(key)
        self._values[key] = result
        return result

    def pairs(self, node: MappingNode) -> list[tuple[str, ScalarNode, YamlNode]]:
        """(key text, key node, value node) of a mapping, keys taken as written;
        reports duplicate and non-scalar keys."""
        cached = self._pairs_cache.get(id(node))
        if cached is not None:
            return cached
        out: list[tuple[str, ScalarNode, YamlNode]] = []
        first: dict[str, ScalarNode] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, ScalarNode):
                self.problem(knode, f"a mapping key must be a scalar, got {_what(knode)}")
                continue
            text = knode.value
            if knode.tag == _NULL and text in ("~", "null", "Null", "NULL"):
                text = ""
            if text in first:
                prev = first[text].start_mark
                where = f" (first at line {prev.line + 1})" if prev is not None else ""
                self.problem(knode, f"duplicate key '{text}'{where}")
                continue
            first[text] = knode
            out.append((text, knode, vnode))
        self._pairs_cache[id(node)] = out
        return out

    def text(self, node: YamlNode, what: str, *, allow_empty: bool = False) -> str | None:
        """A name-like scalar, taken as written (``1.50`` -> ``"1.50"``)."""
        if not isinstance(node, ScalarNode) or node.tag not in (_STR, _INT, _FLOAT):
            self.problem(node, f"{what} must be a string, got {_what(node)}")
            return None
        if not node.value and not allow_empty:
            self.problem(node, f"{what} must not be empty")
            return None
        return node.value

    def boolean(self, node: YamlNode, what: str) -> bool | None:
        if isinstance(node, ScalarNode) and node.tag == _BOOL:
            return self.scalar(node)
        self.problem(node, f"{what} must be true or false, got {_what(node)}")
        return None

    def integer(self, node: YamlNode, what: str) -> int | None:
        if isinstance(node, ScalarNode) and node.tag == _INT:
            v = self.scalar(node)
            return v if isinstance(v, int) else None
        self.problem(node, f"{what} must be an integer, got {_what(node)}")
        return None

    def options(
        self, arg: MappingNode, kind: str, allowed: Iterable[str]
    ) -> dict[str, tuple[ScalarNode, YamlNode]]:
        """Named arguments of a built-in; unknown keys are reported."""
        allowed = tuple(allowed)
        out: dict[str, tuple[ScalarNode, YamlNode]] = {}
        for key, knode, vnode in self.pairs(arg):
            if key in allowed:
                out[key] = (knode, vnode)
                continue
            hint = _did_you_mean(key, allowed)
            if not hint:
                if kind == "concurrence" and key == "steps":
                    hint = "; a concurrence's children go under 'branches'"
                elif kind == "iterator" and key == "true" and "on" in allowed:
                    hint = "; a YAML 1.1 loader read 'on' as true: write the key 'on' in YAML"
                else:
                    hint = f"; expected one of: {', '.join(allowed)}"
            self.problem(knode, f"'{kind}' has no option '{key}'{hint}")
        return out

    # -- typed attribute values ---------------------------------------------------

    def condition(self, node: YamlNode, what: str) -> Any:
        if not isinstance(node, ScalarNode) or node.tag == _NULL:
            self.problem(node, f"{what} must be a condition (a string), got {_what(node)}")
            return None
        raw = self.scalar(node)
        try:
            return parse_condition(raw)
        except ConditionError as e:
            offset = 0
            pos = getattr(e, "position", None)
            if isinstance(raw, str) and isinstance(pos, int) and _one_line(node):
                # point at the offending character when the scalar's text is
                # exactly its source (plain, or quoted without escapes)
                span = node.end_mark.column - node.start_mark.column
                if not node.style and span == len(raw):
                    offset = pos
                elif node.style in ("'", '"') and span == len(raw) + 2:
                    offset = pos + 1
            message = getattr(e, "message", None) or str(e)
            self.problem(node, f"invalid condition in {what}: {message}", offset)
            return None

    def duration(self, node: YamlNode, what: str, *, dynamic_ok: bool = True) -> Any:
        """float seconds, or the text when it holds a substitution."""
        if not isinstance(node, ScalarNode) or node.tag not in (_STR, _INT, _FLOAT):
            self.problem(
                node, f"{what} must be a duration (like 30s, 5m, 1h30m), got {_what(node)}"
            )
            return None
        raw = self.scalar(node)
        if isinstance(raw, str) and has_substitution(raw):
            if dynamic_ok:
                return raw
            self.problem(node, f"{what} must be a literal duration, not a substitution")
            return None
        try:
            return float(parse_duration(raw))
        except DurationError as e:
            self.problem(node, f"{what}: {_err_text(e)}")
            return None

    def handler(self, node: YamlNode, attr: str) -> Handler | None:
        if not _is_str(node) or not node.value.strip():
            got = "an empty string" if _is_str(node) else _what(node)
            expected = (
                "a participant or subprocess name"
                if attr == "on_cancel"
                else "an action (pass, redo, cancel, raise"
                + (", error" if attr == "on_timeout" else "")
                + "), a cursor command or a participant or subprocess name"
            )
            self.problem(node, f"'{attr}' must be {expected}, got {got}")
            return None
        text = node.value.strip()
        words = text.split()
        head = words[0]
        actions = {"pass", "redo", "cancel", "raise"}
        if attr == "on_timeout":
            actions.add("error")
        if attr != "on_cancel":
            if head in actions:
                if len(words) > 1:
                    self.problem(node, f"'{attr}: {head}' takes no argument")
                    return None
                return Handler(action=head)
            if head in CURSOR_COMMANDS:
                command = self.command(node, attr, words)
                return Handler(action="command", command=command) if command else None
        if has_substitution(text):  # a name known at run time only
            return Handler(action="participant", ref=text)
        if len(words) > 1:
            self.problem(
                node,
                f"'{attr}' value {text!r} is not "
                + (
                    "a participant or subprocess name"
                    if attr == "on_cancel"
                    else "an action, a cursor command or a participant or subprocess name"
                ),
            )
            return None
        if head in BUILTIN_EXPRESSIONS or (attr == "on_cancel" and head in actions | {"error"}):
            self.problem(
                node,
                f"'{attr}: {head}' is not allowed"
                + (
                    "; on_cancel takes a participant or subprocess name"
                    if attr == "on_cancel"
                    else f"; {attr} takes an action ({', '.join(sorted(actions))}), "
                    "a cursor command or a participant or subprocess name"
                ),
            )
            return None
        if head in self.subprocess_names:
            return Handler(action="subprocess", ref=head)
        return Handler(action="participant", ref=head)

    def command(self, node: YamlNode, attr: str, words: list[str]) -> str | None:
        head, args = words[0], words[1:]
        if head in ("break", "rewind", "reset"):
            if args:
                self.problem(node, f"'{attr}: {head}' takes no argument")
                return None
        elif head in ("skip", "back"):
            if len(args) > 1 or (
                args and not (args[0].isdigit() and int(args[0]) > 0) and "${" not in args[0]
            ):
                self.problem(node, f"'{attr}: {head}' takes a positive count, like '{head} 2'")
                return None
        elif head == "jump" and len(args) != 1:
            self.problem(node, f"'{attr}: jump' needs one target: a tag or an index")
            return None
        return " ".join(words)

    def retry(self, node: YamlNode) -> Retry | None:
        if isinstance(node, ScalarNode) and node.tag == _INT:
            times = self.scalar(node)
            if isinstance(times, int) and times >= 0:
                return Retry(times=times)
            self.problem(node, f"'retry' must be a count >= 0, got {node.value}")
            return None
        if not isinstance(node, MappingNode):
            self.problem(
                node,
                f"'retry' must be a count or {{times, delay, backoff}}, got {_what(node)}",
            )
            return None
        opts = self.options(node, "retry", ("times", "delay", "backoff"))
        ok = True
        if "times" not in opts:
            self.problem(node, "'retry' needs 'times'")
            ok = False
            times = 0
        else:
            times = self.integer(opts["times"][1], "'retry.times'")
            if times is None:
                ok = False
            elif times < 0:
                self.problem(opts["times"][1], "'retry.times' must be >= 0")
                ok = False
        delay: Any = 0.0
        if "delay" in opts:
            delay = self.duration(opts["delay"][1], "'retry.delay'", dynamic_ok=False)
            ok = ok and delay is not None
        backoff: Any = 1.0
        if "backoff" in opts:
            bnode = opts["backoff"][1]
            if isinstance(bnode, ScalarNode) and bnode.tag in (_INT, _FLOAT):
                backoff = self.scalar(bnode)
                if not isinstance(backoff, int | float) or not backoff >= 1 or backoff == math.inf:
                    self.problem(bnode, f"'retry.backoff' must be a number >= 1, got {bnode.value}")
                    ok = False
            else:
                self.problem(bnode, f"'retry.backoff' must be a number >= 1, got {_what(bnode)}")
                ok = False
        if not ok:
            return None
        return Retry(times=int(times), delay=float(delay), backoff=float(backoff))

    def attributes(self, items: list[tuple[str, ScalarNode, YamlNode]]) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        for key, _knode, vnode in items:
            value: Any
            if key in ("if", "unless"):
                value = self.condition(vnode, f"'{key}'")
            elif key == "tag":
                value = self.text(vnode, "'tag'")
            elif key == "timeout":
                value = self.duration(vnode, "'timeout'")
            elif key == "retry":
                value = self.retry(vnode)
            elif key in ("forget", "flank"):
                value = self.boolean(vnode, f"'{key}'")
            elif key in ("on_error", "on_timeout", "on_cancel"):
                value = self.handler(vnode, key)
            else:  # pragma: no cover -- callers only pass COMMON_ATTRIBUTES
                continue
            if value is not None:
                attrs[key] = value
        return attrs

    # -- the definition ---------------------------------------------------------

    def definition(self, root: YamlNode | None, source: str) -> Definition | None:
        if root is None:
            self.problems.append(
                Problem(self.filename, 1, 1, "the document is empty; expected a mapping")
            )
            return None
        if not isinstance(root, MappingNode):
            hint = ""
            if _is_str(root) and root.value.endswith((".yaml", ".yml")) and "\n" not in root.value:
                hint = f" (no such file: {root.value!r})"
            self.problem(root, f"a definition must be a mapping, got {_what(root)}{hint}")
            return None
        top = {k: (kn, vn) for k, kn, vn in self.pairs(root)}
        for key, (knode, _) in top.items():
            if key in TOP_LEVEL_KEYS:
                continue
            if key in COMMON_ATTRIBUTES:
                self.problem(
                    knode,
                    f"'{key}' is not allowed at the top level; process-level attributes are "
                    + ", ".join(sorted(PROCESS_ATTRIBUTES)),
                )
            else:
                self.problem(
                    knode, f"unknown top-level key '{key}'" + _did_you_mean(key, TOP_LEVEL_KEYS)
                )

        name = None
        if "name" not in top:
            self.problem(root, "missing required key 'name'")
        else:
            name = self.text(top["name"][1], "'name'")
            if name is not None and not NAME_RE.fullmatch(name):
                self.problem(top["name"][1], f"invalid name {name!r}: use [A-Za-z0-9_.-]+")
                name = None

        revision = description = None
        if "revision" in top and not _is_null(top["revision"][1]):
            revision = self.text(top["revision"][1], "'revision'", allow_empty=True)
        if "description" in top and not _is_null(top["description"][1]):
            description = self.text(top["description"][1], "'description'", allow_empty=True)
        fields = self.data_mapping(top.get("fields"), "fields")
        variables = self.data_mapping(top.get("variables"), "variables")

        # subprocess names first: steps resolve keys against them
        sub_items: list[tuple[str, ScalarNode, YamlNode]] = []
        if "subprocesses" in top:
            snode = top["subprocesses"][1]
            if isinstance(snode, MappingNode):
                for sname, sknode, svnode in self.pairs(snode):
                    if not NAME_RE.fullmatch(sname):
                        self.problem(
                            sknode, f"invalid subprocess name {sname!r}: use [A-Za-z0-9_.-]+"
                        )
                    elif sname in BUILTIN_EXPRESSIONS:
                        self.problem(sknode, f"subprocess name '{sname}' is a built-in expression")
                    elif sname in COMMON_ATTRIBUTES:
                        self.problem(sknode, f"subprocess name '{sname}' is a common attribute")
                    else:
                        self.subprocess_names.add(sname)
                        sub_items.append((sname, sknode, svnode))
            elif not _is_null(snode):
                self.problem(
                    snode,
                    "'subprocesses' must be a mapping of name -> list of steps, "
                    f"got {_what(snode)}",
                )

        proc_attrs = self.attributes(
            [(k, kn, vn) for k, (kn, vn) in top.items() if k in PROCESS_ATTRIBUTES]
        )

        subprocesses: dict[str, Node] = {}
        for sname, sknode, svnode in sub_items:
            body = self.body(svnode, f"{sname}/0", sknode, f"subprocess '{sname}'", {})
            if body is not None:
                subprocesses[sname] = body

        body = None
        if "steps" not in top:
            self.problem(root, "missing required key 'steps'")
        else:
            sknode, svnode = top["steps"]
            body = self.body(svnode, "0", sknode, "'steps'", proc_attrs)

        if self.problems or name is None or body is None:
            return None
        return Definition(
            name=name,
            body=body,
            revision=revision,
            description=description,
            fields=fields,
            variables=variables,
            subprocesses=subprocesses,
            nodes=self.nodes,
            source=source,
            digest=hashlib.sha256(source.encode("utf-8")).hexdigest(),
            filename=self.filename,
        )

    def data_mapping(self, item: tuple[ScalarNode, YamlNode] | None, key: str) -> dict:
        if item is None or _is_null(item[1]):
            return {}
        if not isinstance(item[1], MappingNode):
            self.problem(item[1], f"'{key}' must be a mapping, got {_what(item[1])}")
            return {}
        return self.value(item[1])

    def body(
        self, node: YamlNode, node_id: str, where: YamlNode, what: str, attrs: dict
    ) -> Node | None:
        if not isinstance(node, SequenceNode):
            self.problem(node, f"{what} must be a list of steps, got {_what(node)}")
            return None
        return self.make(
            node_id, "sequence", where, children=self.steps(node, node_id), attrs=attrs
        )

    # -- steps --------------------------------------------------------------------

    def make(
        self,
        node_id: str,
        kind: str,
        where: YamlNode | None,
        *,
        opts: dict | None = None,
        children: tuple[Node, ...] = (),
        attrs: dict | None = None,
        dynamic: bool = False,
    ) -> Node:
        if len(self.nodes) >= MAX_NODES:
            self.problem(where, f"definition too large (more than {MAX_NODES} steps)")
            raise _Fatal
        mark = where.start_mark if where is not None else None
        node = Node(
            id=node_id,
            kind=kind,
            opts=opts or {},
            children=children,
            attrs=attrs or {},
            line=mark.line + 1 if mark else 0,
            col=mark.column + 1 if mark else 0,
            dynamic=dynamic,
        )
        self.nodes[node_id] = node
        return node

    def steps(self, seq: YamlNode | None, parent_id: str) -> tuple[Node, ...]:
        """The children of a container (``seq`` already checked to be a list)."""
        if seq is None:
            return ()
        if id(seq) in self._converting:
            self.problem(seq, "recursive alias: a list of steps may not contain itself")
            return ()
        self._converting.add(id(seq))
        out = []
        try:
            for i, item in enumerate(seq.value):
                child = self.step(item, f"{parent_id}_{i}")
                if child is not None:
                    out.append(child)
        finally:
            self._converting.discard(id(seq))
        return tuple(out)

    def step_list(self, node: YamlNode, what: str) -> SequenceNode | None:
        """A list-of-steps argument; null is an empty list."""
        if _is_null(node):
            return None
        if isinstance(node, SequenceNode):
            return node
        self.problem(node, f"{what} must be a list of steps, got {_what(node)}")
        return None

    def step(self, node: YamlNode, node_id: str) -> Node | None:
        if isinstance(node, ScalarNode):
            if node.tag == _NULL:
                self.problem(node, "empty step: a step must be a name or a mapping")
                return None
            if node.tag != _STR:
                self.problem(
                    node, f"a step must be a name or a mapping, got {_what(node)} ({node.value})"
                )
                return None
            if not node.value.strip():
                self.problem(node, "empty step: a step must be a name or a mapping")
                return None
            return self.expression(node.value, node, None, node_id, {}, node)
        if isinstance(node, SequenceNode):
            self.problem(node, "a step must be a name or a mapping, got a list")
            return None
        items = self.pairs(node)
        if not items:
            self.problem(node, "empty step: a step needs an expression key")
            return None
        exprs = [it for it in items if it[0] not in COMMON_ATTRIBUTES]
        attr_items = [it for it in items if it[0] in COMMON_ATTRIBUTES]
        if not exprs:
            if_items = [it for it in attr_items if it[0] == "if"]
            if not if_items:
                self.problem(
                    node,
                    "a step needs an expression key; found only attributes: "
                    + ", ".join(f"'{k}'" for k, _, _ in items),
                )
                self.attributes(attr_items)
                return None
            exprs = if_items
            attr_items = [it for it in attr_items if it[0] != "if"]
        attrs = self.attributes(attr_items)
        if len(exprs) > 1:
            self.multiple_keys(exprs)
            return None
        key, knode, vnode = exprs[0]
        return self.expression(key, knode, vnode, node_id, attrs, node)

    def multiple_keys(self, exprs: list[tuple[str, ScalarNode, YamlNode]]) -> None:
        names = ", ".join(f"'{k}'" for k, _, _ in exprs)
        hints = []
        at = exprs[1][1]
        for key, knode, _ in exprs:
            s = _suggest(key, COMMON_ATTRIBUTES)
            if s:
                if not hints:
                    at = knode
                hints.append(f"'{key}': did you mean '{s}'?")
        msg = (
            "a step has one expression key plus common attributes, "
            f"got {len(exprs)} keys that are not attributes: {names}"
        )
        if hints:
            msg += " (" + "; ".join(hints) + ")"
        self.problem(at, msg)

    def expression(
        self,
        key: str,
        knode: ScalarNode,
        arg: YamlNode | None,
        node_id: str,
        attrs: dict,
        where: YamlNode,
    ) -> Node | None:
        if key in BUILTIN_EXPRESSIONS:
            build = getattr(self, "x_" + key)
            return build(key, knode, None if _is_null(arg) else arg, node_id, attrs, where)
        if key in self.subprocess_names:
            block: tuple[Node, ...] = ()
            if _is_null(arg):
                vars_: dict = {}
            elif isinstance(arg, MappingNode):
                vars_, block = self.call_vars(arg, node_id)
            else:
                self.problem(
                    knode, f"subprocess '{key}' takes a mapping of variables, got {_what(arg)}"
                )
                return None
            return self.make(
                node_id,
                "subprocess",
                where,
                opts={"ref": key, "vars": vars_},
                children=block,
                attrs=attrs,
            )
        if key in RUOTE_EXPRESSIONS:
            hint = RUOTE_EXPRESSIONS[key]
            instead = f"; write {hint}" if hint else "; the language has no equivalent"
            self.problem(
                knode,
                f"'{key}' is a ruote expression, not a participant{instead} "
                f"(for a participant named '{key}', write participant: {{ref: {key}}})",
            )
            return None
        if _is_null(arg):
            params: dict = {}
        elif isinstance(arg, MappingNode):
            params = self.value(arg)
        else:
            s = _suggest(key, BUILTIN_EXPRESSIONS | COMMON_ATTRIBUTES)
            if s:
                self.problem(
                    knode,
                    f"'{key}' is not an expression or participant attribute; did you mean '{s}'?",
                )
            else:
                self.problem(knode, f"'{key}' takes a mapping of params, got {_what(arg)}")
            return None
        return self.make(
            node_id, "participant", where, opts={"ref": key, "params": params}, attrs=attrs
        )

    def call_vars(self, arg: MappingNode, node_id: str) -> tuple[dict, tuple[Node, ...]]:
        """A subprocess call's mapping: its variables, and the block given
        under ``steps`` (ruote's block parameter, run by ``apply``)."""
        vars_: dict = {}
        block: tuple[Node, ...] = ()
        for k, _kn, v in self.pairs(arg):
            if k == "steps":
                seq = self.step_list(v, "a subprocess call's 'steps' (its block)")
                block = self.steps(seq, node_id)
            else:
                vars_[k] = self.value(v)
        return vars_, block

    # -- built-in expressions (x_<name>) ----------------------------------------
    # each takes (kind, key node, argument node or None, id, attrs, where)

    def _needs(self, kind: str, knode: YamlNode, expected: str) -> None:
        self.problem(knode, f"'{kind}' needs an argument: {expected}")

    def _bad(self, kind: str, arg: YamlNode, expected: str) -> None:
        self.problem(arg, f"'{kind}' takes {expected}, got {_what(arg)}")

    def _is_mapping(self, kind: str, knode: YamlNode, arg: YamlNode | None, keys: str) -> bool:
        """Whether the argument of a built-in that takes a mapping is one.

        If not, the problem is reported the same way for every such built-in
        (``keys`` reads like ``"{mutex, steps}"``): a missing argument as
        needed, anything else as the wrong kind of node."""
        if isinstance(arg, MappingNode):
            return True
        if arg is None:
            self._needs(kind, knode, keys)
        else:
            self._bad(kind, arg, f"a mapping {keys}")
        return False

    def _no_arg(self, kind, knode, arg, node_id, attrs, where, *, real_kind=None) -> Node | None:
        if arg is not None:
            self.problem(arg, f"'{kind}' takes no argument, got {_what(arg)}")
            return None
        return self.make(node_id, real_kind or kind, where, attrs=attrs)

    x_noop = x_break = x_rewind = x_reset = _no_arg

    def x_cancel_process(self, kind, knode, arg, node_id, attrs, where) -> Node | None:
        return self._no_arg(kind, knode, arg, node_id, attrs, where, real_kind="cancel_process")

    x_terminate = x_cancel_process

    def _container(
        self, kind, knode, arg, node_id, attrs, where, list_key: str, extra: dict[str, str]
    ) -> Node | None:
        """sequence / cursor / loop / concurrence: a list, or a mapping with
        ``list_key`` and the options in ``extra`` (name -> 'condition')."""
        opts: dict[str, Any] = {}
        seq: SequenceNode | None = None
        if arg is None:
            pass
        elif isinstance(arg, SequenceNode):
            seq = arg
        elif isinstance(arg, MappingNode):
            found = self.options(arg, kind, (list_key, *extra))
            if list_key in found:
                seq = self.step_list(found[list_key][1], f"'{kind}.{list_key}'")
            for name, (_, vnode) in found.items():
                if extra.get(name) == "condition":
                    opts[name] = self.condition(vnode, f"'{kind}.{name}'")
            if kind == "concurrence":
                opts.update(self.concurrence_opts(found, kind))
        else:
            self._bad(kind, arg, f"a list of steps or a mapping with '{list_key}'")
            return None
        for name, what in extra.items():
            if what == "condition":
                opts.setdefault(name, None)
        if kind == "concurrence":
            for name, default in _CONCURRENCE_DEFAULTS.items():
                opts.setdefault(name, default)
        return self.make(
            node_id, kind, where, opts=opts, children=self.steps(seq, node_id), attrs=attrs
        )

    def x_sequence(self, kind, knode, arg, node_id, attrs, where):
        return self._container(kind, knode, arg, node_id, attrs, where, "steps", {})

    def x_cursor(self, kind, knode, arg, node_id, attrs, where):
        return self._container(kind, knode, arg, node_id, attrs, where, "steps", _CURSOR_OPTS)

    x_loop = x_cursor

    def x_concurrence(self, kind, knode, arg, node_id, attrs, where):
        return self._container(
            kind,
            knode,
            arg,
            node_id,
            attrs,
            where,
            "branches",
            {
                **{k: "option" for k in _CONCURRENCE_DEFAULTS},
                "over_if": "condition",
                "over_unless": "condition",
            },
        )

    def concurrence_opts(self, found: dict, kind: str) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        if "count" in found:
            cnode = found["count"][1]
            count = self.integer(cnode, f"'{kind}.count'")
            if count == 0:
                self.problem(cnode, f"'{kind}.count' must not be 0")
            elif count is not None:
                opts["count"] = count
        for name, choices in (
            ("merge", _MERGES),
            ("merge_type", _MERGE_TYPES),
            ("remaining", _REMAINING),
        ):
            if name not in found:
                continue
            vnode = found[name][1]
            if _is_str(vnode) and vnode.value in choices:
                opts[name] = vnode.value
            else:
                got = repr(vnode.value) if isinstance(vnode, ScalarNode) else _what(vnode)
                self.problem(
                    vnode,
                    f"'{kind}.{name}' must be one of {', '.join(choices)}, got {got}"
                    + (_did_you_mean(vnode.value, choices) if _is_str(vnode) else ""),
                )
        if "wait_for" in found:
            wnode = found["wait_for"][1]
            if isinstance(wnode, SequenceNode):
                tags = [self.text(t, f"'{kind}.wait_for' item") for t in wnode.value]
                if None not in tags:
                    opts["wait_for"] = tags
            else:
                tag = self.text(wnode, f"'{kind}.wait_for' (a tag or a list of tags)")
                if tag is not None:
                    opts["wait_for"] = [tag]
        return opts

    def x_participant(self, kind, knode, arg, node_id, attrs, where):
        ref, rest = self.ref_form(kind, knode, arg, "params")
        if ref is None:
            return None
        return self.make(
            node_id, "participant", where, opts={"ref": ref, "params": rest}, attrs=attrs
        )

    def x_subprocess(self, kind, knode, arg, node_id, attrs, where):
        block: tuple[Node, ...] = ()
        if isinstance(arg, MappingNode) and any(k == "steps" for k, _, _ in self.pairs(arg)):
            _vars, block = self.call_vars(arg, node_id)
        ref, rest = self.ref_form(kind, knode, arg, "variables")
        rest.pop("steps", None)
        if ref is None:
            return None
        dynamic = has_substitution(ref)
        if not dynamic and ref not in self.subprocess_names:
            at = arg if isinstance(arg, ScalarNode) else knode
            if isinstance(arg, MappingNode):
                for k, _, v in self.pairs(arg):
                    if k == "ref":
                        at = v
            hint = _did_you_mean(ref, self.subprocess_names)
            if not hint:
                hint = (
                    "; this definition has: " + ", ".join(sorted(self.subprocess_names))
                    if self.subprocess_names
                    else "; this definition has no subprocesses"
                )
            self.problem(at, f"unknown subprocess '{ref}'{hint}")
            return None
        return self.make(
            node_id,
            "subprocess",
            where,
            opts={"ref": ref, "vars": rest},
            children=block,
            attrs=attrs,
            dynamic=dynamic,
        )

    def ref_form(self, kind, knode, arg, rest_what) -> tuple[str | None, dict]:
        """``kind: name`` or ``kind: {ref: name, ...rest}``."""
        if arg is None:
            self._needs(kind, knode, f"a name or {{ref, ...{rest_what}}}")
            return None, {}
        if isinstance(arg, ScalarNode):
            return self.text(arg, f"'{kind}' name"), {}
        if isinstance(arg, SequenceNode):
            self._bad(kind, arg, f"a name or a mapping {{ref, ...{rest_what}}}")
            return None, {}
        rest = {}
        ref = None
        has_ref = False
        for k, _, v in self.pairs(arg):
            if k == "ref":
                has_ref = True
                ref = self.text(v, f"'{kind}.ref'")
            else:
                rest[k] = self.value(v)
        if not has_ref:
            self.problem(arg, f"'{kind}' needs 'ref' (the name)")
        return ref, rest

    def x_if(self, kind, knode, arg, node_id, attrs, where):
        if not isinstance(arg, MappingNode):
            if arg is None:
                self._needs(kind, knode, "{test, then, else}")
            else:
                self.problem(
                    arg,
                    f"'if' as an expression takes {{test, then, else}}, got {_what(arg)} "
                    "(as an attribute, 'if' goes beside an expression key)",
                )
            return None
        found = self.options(arg, kind, ("test", "then", "else"))
        test = None
        ok = True
        if "test" not in found:
            self.problem(knode, "'if' needs 'test' (a condition)")
            ok = False
        else:
            test = self.condition(found["test"][1], "'if.test'")
            ok = test is not None
        children = []
        if "then" not in found:
            self.problem(knode, "'if' needs 'then' (a list of steps)")
            ok = False
        for i, branch in enumerate(("then", "else")):
            if branch not in found:
                continue
            bk, bv = found[branch]
            if not isinstance(bv, SequenceNode):
                self.problem(bv, f"'if.{branch}' must be a list of steps, got {_what(bv)}")
                ok = False
                continue
            bid = f"{node_id}_{i}"
            children.append(self.make(bid, "sequence", bk, children=self.steps(bv, bid)))
        if not ok:
            return None
        return self.make(
            node_id, "if", where, opts={"test": test}, children=tuple(children), attrs=attrs
        )

    def _iterator(self, kind, knode, arg, node_id, attrs, where, allowed):
        if not self._is_mapping(kind, knode, arg, "{on, to, steps}"):
            return None
        found = self.options(arg, kind, allowed)
        opts: dict[str, Any] = {"on": None, "to": "i"}
        ok = True
        if "on" not in found:
            hint = ""
            if any(k == "true" for k, _, _ in self.pairs(arg)):
                hint = " (a YAML 1.1 loader read the key 'on' as true)"
            self.problem(knode, f"'{kind}' needs 'on' (a list, a comma string or $f:name){hint}")
            ok = False
        else:
            onode = found["on"][1]
            if isinstance(onode, SequenceNode):
                opts["on"] = self.value(onode)
            elif _is_str(onode):
                opts["on"] = onode.value
            else:
                self.problem(
                    onode,
                    f"'{kind}.on' must be a list, a comma-separated string or $f:name, "
                    f"got {_what(onode)}",
                )
                ok = False
        if "to" in found:
            tnode = found["to"][1]
            to = self.text(tnode, f"'{kind}.to'")
            if to is None:
                ok = False
            else:
                prefix, sep, rest = to.partition(":")
                if sep and prefix in ("v", "f"):
                    # ruote's `:to => 'v:action'` / `:to_f => 'pair'`
                    if not rest:
                        self.problem(tnode, f"'{kind}.to' {to!r} names no variable or field")
                        ok = False
                    elif prefix == "f":
                        opts["to_field"] = rest
                    else:
                        opts["to"] = rest
                else:
                    opts["to"] = to
                if "." in opts["to"]:
                    self.problem(
                        tnode,
                        f"'{kind}.to' {to!r}: a variable name has no dots "
                        "(write 'f:a.b' to bind the item to a field)",
                    )
                    ok = False
        if kind == "concurrent_iterator":
            for name in ("count", "merge", "merge_type"):
                opts[name] = _CONCURRENCE_DEFAULTS[name]
            opts.update(self.concurrence_opts(found, kind))
        seq = self.step_list(found["steps"][1], f"'{kind}.steps'") if "steps" in found else None
        children = self.steps(seq, node_id)
        if not ok:
            return None
        return self.make(node_id, kind, where, opts=opts, children=children, attrs=attrs)

    def x_iterator(self, kind, knode, arg, node_id, attrs, where):
        return self._iterator(kind, knode, arg, node_id, attrs, where, ("on", "to", "steps"))

    def x_concurrent_iterator(self, kind, knode, arg, node_id, attrs, where):
        return self._iterator(
            kind,
            knode,
            arg,
            node_id,
            attrs,
            where,
            ("on", "to", "steps", "count", "merge", "merge_type"),
        )

    def x_set(self, kind, knode, arg, node_id, attrs, where):
        if not isinstance(arg, MappingNode):
            if arg is None:
                self._needs(kind, knode, 'a mapping like {"f:status": FAILED}')
            else:
                self._bad(kind, arg, 'a mapping like {"f:status": FAILED}')
            return None
        values = {}
        for k, kn, v in self.pairs(arg):
            if k in ("", "f:", "v:"):
                self.problem(kn, f"'set' key {k!r} names no field or variable")
                continue
            values[k] = self.value(v)
        return self.make(node_id, kind, where, opts={"values": values}, attrs=attrs)

    def x_inc(self, kind, knode, arg, node_id, attrs, where):
        """``inc: "v:n"`` (add 1), ``inc: {"v:n": 2, "f:list": x}`` (add to a
        number, append to a list); ``push: {"v:list": x}`` (append)."""
        if kind == "inc" and _is_str(arg):
            name = arg.value
            if name in ("", "f:", "v:"):
                self.problem(arg, f"'inc' {name!r} names no field or variable")
                return None
            return self.make(node_id, kind, where, opts={"values": {name: 1}}, attrs=attrs)
        example = 'a mapping {"v:list": value}' if kind == "push" else '"v:count" or {"v:count": 2}'
        if not isinstance(arg, MappingNode):
            if arg is None:
                self._needs(kind, knode, example)
            else:
                self._bad(kind, arg, example)
            return None
        values = {}
        for k, kn, v in self.pairs(arg):
            if k in ("", "f:", "v:"):
                self.problem(kn, f"'{kind}' key {k!r} names no field or variable")
                continue
            values[k] = self.value(v)
        return self.make(node_id, kind, where, opts={"values": values}, attrs=attrs)

    x_push = x_inc

    def x_apply(self, kind, knode, arg, node_id, attrs, where):
        return self._no_arg(kind, knode, arg, node_id, attrs, where)

    def x_unset(self, kind, knode, arg, node_id, attrs, where):
        if arg is None:
            self._needs(kind, knode, "a name or a list of names")
            return None
        if isinstance(arg, SequenceNode):
            names = [self.text(n, "'unset' item") for n in arg.value]
        elif isinstance(arg, ScalarNode):
            names = [self.text(arg, "'unset'")]
        else:
            self._bad(kind, arg, "a name or a list of names")
            return None
        if None in names:
            return None
        return self.make(node_id, kind, where, opts={"names": names}, attrs=attrs)

    def x_wait(self, kind, knode, arg, node_id, attrs, where):
        opts: dict[str, Any] = {"for": None, "until": None}
        if arg is None:
            self._needs(kind, knode, "a duration, {for: duration} or {until: time}")
            return None
        if isinstance(arg, ScalarNode):
            opts["for"] = self.duration(arg, "'wait'")
            if opts["for"] is None:
                return None
        elif isinstance(arg, MappingNode):
            found = self.options(arg, kind, ("for", "until"))
            if len(found) != 1:
                if len(found) > 1:
                    self.problem(arg, "'wait' takes either 'for' or 'until', not both")
                elif not self.pairs(arg):
                    self.problem(arg, "'wait' needs 'for' (a duration) or 'until' (a time)")
                return None
            if "for" in found:
                opts["for"] = self.duration(found["for"][1], "'wait.for'")
                if opts["for"] is None:
                    return None
            else:
                unode = found["until"][1]
                if not _is_str(unode) or not unode.value:
                    self.problem(
                        unode, f"'wait.until' must be an ISO 8601 time, got {_what(unode)}"
                    )
                    return None
                if not has_substitution(unode.value):
                    try:
                        parse_time(unode.value)
                    except DurationError as e:
                        self.problem(unode, f"'wait.until': {_err_text(e)}")
                        return None
                opts["until"] = unode.value
        else:
            self._bad(kind, arg, "a duration, {for: duration} or {until: time}")
            return None
        return self.make(node_id, kind, where, opts=opts, attrs=attrs)

    def x_listen(self, kind, knode, arg, node_id, attrs, where):
        if not self._is_mapping(kind, knode, arg, "{to, upon, where, merge, wfid}"):
            return None
        found = self.options(arg, kind, ("to", "upon", "where", "merge", "wfid", "class"))
        opts: dict[str, Any] = {
            "to": None,
            "upon": "apply",
            "where": None,
            "merge": True,
            "wfid": False,
        }
        ok = True
        if "to" not in found:
            self.problem(knode, "'listen' needs 'to' (a participant name or regex)")
            ok = False
        else:
            opts["to"] = self.text(found["to"][1], "'listen.to'")
            ok = opts["to"] is not None
        if "upon" in found:
            unode = found["upon"][1]
            if _is_str(unode) and unode.value in ("apply", "reply"):
                opts["upon"] = unode.value
            else:
                got = repr(unode.value) if isinstance(unode, ScalarNode) else _what(unode)
                self.problem(unode, f"'listen.upon' must be apply or reply, got {got}")
                ok = False
        if "where" in found:
            opts["where"] = self.condition(found["where"][1], "'listen.where'")
            ok = ok and opts["where"] is not None
        for name in ("merge", "wfid"):
            if name in found:
                opts[name] = self.boolean(found[name][1], f"'listen.{name}'")
                ok = ok and opts[name] is not None
        if opts["to"] in ("errors", ":errors"):
            # ruote's `listen :to => :errors`: this run's uncaught errors
            opts["errors"] = True
            if "upon" in found:
                self.problem(found["upon"][1], "'listen' to errors takes no 'upon'")
                ok = False
            if "class" in found:
                opts["cls"] = self.text(found["class"][1], "'listen.class'")
                ok = ok and opts["cls"] is not None
        elif "class" in found:
            self.problem(found["class"][0], "'listen.class' is only for 'to: errors'")
            ok = False
        if not ok:
            return None
        return self.make(node_id, kind, where, opts=opts, attrs=attrs)

    def x_reserve(self, kind, knode, arg, node_id, attrs, where):
        if not self._is_mapping(kind, knode, arg, "{mutex, steps}"):
            return None
        found = self.options(arg, kind, ("mutex", "steps"))
        mutex = None
        if "mutex" not in found:
            self.problem(knode, "'reserve' needs 'mutex' (a name)")
        else:
            mutex = self.text(found["mutex"][1], "'reserve.mutex'")
        seq = self.step_list(found["steps"][1], "'reserve.steps'") if "steps" in found else None
        children = self.steps(seq, node_id)
        if mutex is None:
            return None
        return self.make(
            node_id, kind, where, opts={"mutex": mutex}, children=children, attrs=attrs
        )

    def x_echo(self, kind, knode, arg, node_id, attrs, where):
        if arg is None:
            self._needs(kind, knode, "a text")
            return None
        if not isinstance(arg, ScalarNode):
            self._bad(kind, arg, "a text")
            return None
        return self.make(node_id, kind, where, opts={"text": arg.value}, attrs=attrs)

    def x_error(self, kind, knode, arg, node_id, attrs, where):
        if arg is not None and not isinstance(arg, ScalarNode):
            self._bad(kind, arg, "a message")
            return None
        message = "error" if arg is None else arg.value
        return self.make(node_id, kind, where, opts={"message": message}, attrs=attrs)

    def x_cancel(self, kind, knode, arg, node_id, attrs, where):
        if arg is None:
            self._needs(kind, knode, "the tag of the step to cancel")
            return None
        tag = self.text(arg, "'cancel' (a tag)")
        if tag is None:
            return None
        return self.make(node_id, kind, where, opts={"tag": tag}, attrs=attrs)

    def _count(self, kind, knode, arg, node_id, attrs, where):
        count: int | str = 1
        if arg is not None:
            if isinstance(arg, ScalarNode) and arg.tag == _INT:
                value = self.scalar(arg)
                if not isinstance(value, int) or value < 1:
                    self.problem(arg, f"'{kind}' takes a positive count, got {arg.value}")
                    return None
                count = value
            elif _is_str(arg) and has_substitution(arg.value):
                count = arg.value
            else:
                self._bad(kind, arg, "nothing or a positive count")
                return None
        return self.make(node_id, kind, where, opts={"count": count}, attrs=attrs)

    x_skip = x_back = _count

    def x_jump(self, kind, knode, arg, node_id, attrs, where):
        if arg is None:
            self._needs(kind, knode, "a tag, a step name or an index")
            return None
        to: str | int | None
        if isinstance(arg, ScalarNode) and arg.tag == _INT:
            to = self.scalar(arg)
            if not isinstance(to, int) or to < 0:
                self.problem(arg, f"'jump' index must be >= 0, got {arg.value}")
                return None
        else:
            to = self.text(arg, "'jump' target (a tag, a step name or an index)")
            if to is None:
                return None
        return self.make(node_id, kind, where, opts={"to": to}, attrs=attrs)


_CURSOR_OPTS = {
    "break_if": "condition",
    "break_unless": "condition",
    "rewind_if": "condition",
    "rewind_unless": "condition",
}
_CONCURRENCE_DEFAULTS: dict[str, Any] = {
    "count": None,
    "remaining": "cancel",
    "merge": "first",
    "merge_type": "override",
    "over_if": None,
    "over_unless": None,
    "wait_for": None,
}
_REMAINING = ("cancel", "forget", "wait")
_MERGES = ("first", "last", "highest", "lowest")
_MERGE_TYPES = ("override", "mix", "isolate", "stack", "union", "concat", "deep", "ignore")


def _err_text(e: Exception) -> str:
    return getattr(e, "message", None) or str(e)


# -- entry points -----------------------------------------------------------------


def _plain(obj: Any) -> Any:
    """Tuples to lists (so a dict given by a test is representable)."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


if hasattr(yaml, "CSafeLoader"):

    class _FastYaml12Loader(yaml.CSafeLoader):  # type: ignore[misc,name-defined]
        """libyaml's parser with the same YAML 1.2 resolvers (10x faster)."""

        yaml_implicit_resolvers = dict(Yaml12Loader.yaml_implicit_resolvers)

    _LOADERS: tuple[type, ...] = (_FastYaml12Loader, Yaml12Loader)
else:  # pragma: no cover -- PyYAML built without libyaml
    _LOADERS = (Yaml12Loader,)


def _compose(text: str) -> YamlNode | None:
    """The node tree of a one-document YAML text. libyaml parses first; on a
    syntax error the pure-Python parser runs again for its better messages."""
    for i, cls in enumerate(_LOADERS):
        ystream = cls(text)
        try:
            return ystream.get_single_node()
        except yaml.YAMLError:
            if i == len(_LOADERS) - 1:
                raise
        finally:
            ystream.dispose()
    return None  # pragma: no cover


def load_definition(source: str | Path | Mapping, filename: str | None = None) -> Definition:
    """Load a definition from YAML text, a file path or a dict.

    Raises ``LoadError`` listing every problem found."""
    if isinstance(source, Path) or (
        isinstance(source, str)
        and "\n" not in source
        and source.endswith((".yaml", ".yml"))
        and Path(source).is_file()
    ):
        path = Path(source)
        text = path.read_text(encoding="utf-8")
        return _load_text(text, filename if filename is not None else str(path))
    if isinstance(source, Mapping):
        return _load_mapping(source, filename)
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    if not isinstance(source, str):
        raise TypeError(f"cannot load a definition from {type(source).__name__}")
    return _load_text(source, filename)


def _load_text(text: str, filename: str | None) -> Definition:
    loader = _Loader(filename)
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        message = e.problem or e.context or "invalid YAML"
        if e.problem and e.context:
            message = f"{e.problem} ({e.context})"
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise LoadError([Problem(filename, line, col, message)]) from None
    except yaml.reader.ReaderError as e:  # a character YAML does not allow
        before = text[: e.position]
        line = before.count("\n") + 1
        col = e.position - (before.rfind("\n") + 1) + 1
        what = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
        message = f"unacceptable character {what}: {e.reason}"
        raise LoadError([Problem(filename, line, col, message)]) from None
    except yaml.YAMLError as e:  # pragma: no cover -- every other error is marked
        raise LoadError([Problem(filename, 1, 1, str(e))]) from None
    except RecursionError:
        raise LoadError([Problem(filename, 1, 1, "the document is nested too deeply")]) from None
    return _build(loader, root, text)


class _CanonicalDumper(yaml.SafeDumper):
    """``yaml.safe_dump`` that also quotes the strings YAML 1.2 would read as
    something else (``0o10``, ``1e3``, ``tRuE``), so that the source stored
    for a definition given as a dict loads back to the same definition."""

    yaml_implicit_resolvers = {
        first: list(resolvers)
        for first, resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items()
    }


for _first, _resolvers in Yaml12Loader.yaml_implicit_resolvers.items():
    _CanonicalDumper.yaml_implicit_resolvers.setdefault(_first, []).extend(_resolvers)


def _load_mapping(data: Mapping, filename: str | None) -> Definition:
    loader = _Loader(filename)
    try:
        data = _plain(data)
        text = yaml.dump(data, Dumper=_CanonicalDumper, sort_keys=True)
        root = yaml.representer.SafeRepresenter(sort_keys=True).represent_data(data)
    except (yaml.YAMLError, RecursionError) as e:
        raise LoadError(
            [Problem(filename, 0, 0, f"cannot represent the definition: {e}")]
        ) from None
    return _build(loader, root, text)


def _build(loader: _Loader, root: YamlNode | None, text: str) -> Definition:
    try:
        definition = loader.definition(root, text)
    except _Fatal:
        definition = None
    except RecursionError:
        loader.problems.append(
            Problem(loader.filename, 1, 1, "the definition is nested too deeply")
        )
        definition = None
    if definition is None or loader.problems:
        problems = sorted(loader.problems, key=lambda p: (p.line, p.col))
        raise LoadError(problems)
    return definition


def load_file(path: str | Path) -> Definition:
    """Load the definition in ``path`` (errors name the file)."""
    path = Path(path)
    return _load_text(path.read_text(encoding="utf-8"), str(path))


def check_files(paths: Iterable[str | Path]) -> list[Problem]:
    """Every problem in the given files (an empty list when all load)."""
    problems: list[Problem] = []
    for path in paths:
        try:
            load_file(path)
        except LoadError as e:
            problems.extend(e.problems)
        except (OSError, UnicodeDecodeError) as e:
            problems.append(Problem(str(path), 0, 0, f"cannot read: {e}"))
    return problems
