"""The loaded form of a process definition: a tree of immutable nodes.

The loader (``engine.core.loader``) turns YAML into these objects; the interpreter
(``engine.core.interpreter``) only ever reads them. A definition is identified by
the SHA-256 of its source text (``Definition.digest``): a run stores that
digest, so editing a file never changes a run in flight.

Node ids
--------
Every node has a stable id, its path in the tree: the body of ``steps`` is
node ``"0"``, its children ``"0_0"``, ``"0_1"``, their children ``"0_1_0"``
... (ruote's expid scheme). The body of subprocess ``name`` is node
``"name/0"`` with children ``"name/0_0"`` and so on. ``Definition.nodes``
maps every id to its node.

Normalised ``opts`` per kind (what the loader guarantees)
---------------------------------------------------------
Values may still hold ``${...}`` text; the interpreter substitutes them when
the step is applied. ``Condition`` objects are parsed at load time.

=====================  =====================================================
kind                   opts / children
=====================  =====================================================
sequence               children = the steps
concurrence            children = the branches; opts: count (int|None),
                       remaining ("cancel"|"forget"|"wait"), merge
                       ("first"|"last"|"highest"|"lowest"), merge_type
                       ("override"|"mix"|"isolate"|"stack"|"union"|"concat"|
                       "deep"|"ignore"), over_if, over_unless
                       (Condition|None), wait_for (list[str]|None)
participant            opts: ref (str: the participant name), params (dict)
subprocess             opts: ref (str), vars (dict); ``dynamic`` True when
                       ref holds ``${...}`` (resolved at run time);
                       children = the block given with ``steps`` (run by
                       ``apply`` inside the subprocess)
if                     opts: test (Condition); children = [then, else?]
                       where each is a synthetic ``sequence`` node
                       (ids ``<id>_0`` then, ``<id>_1`` else)
iterator               opts: on (list|str), to (str, default "i": the
                       variable), to_field (str|None: bind the item to
                       this field instead, ``to: "f:x"``);
                       children = the steps
concurrent_iterator    as iterator, plus count, merge, merge_type
cursor, loop           children = the steps; opts: break_if, break_unless,
                       rewind_if, rewind_unless (Condition|None)
set                    opts: values (dict: key -> value, keys as written)
inc, push              opts: values (as set): add to a number or append to
                       a list (inc), append (push)
apply                  (none): run the block of the enclosing subprocess call
unset                  opts: names (list[str])
wait                   opts: for (str|float|None: duration), until (str|None)
listen                 opts: to (str), upon ("apply"|"reply"), where
                       (Condition|None), merge (bool), wfid (bool),
                       errors (bool: ``to: errors``, the run's own uncaught
                       errors), cls (str|None: ``class``, the error class)
reserve                opts: mutex (str); children = the steps
echo                   opts: text (str)
noop                   (none)
error                  opts: message (str)
cancel_process         (none) -- ``terminate`` loads as this kind
cancel                 opts: tag (str)
break, rewind, reset   (none)
skip, back             opts: count (int|str, default 1)
jump                   opts: to (str|int)
=====================  =====================================================

Common attributes (``Node.attrs``, section 4), normalised:

* ``if`` / ``unless``: Condition
* ``tag``: str
* ``timeout``: float seconds, or str when it holds ``${...}``
* ``on_timeout``, ``on_error``, ``on_cancel``: Handler
* ``retry``: Retry
* ``forget``: bool
* ``flank``: bool (the step runs beside its parent, which goes on at once,
  and is cancelled when the parent replies)

The process-level attributes of a definition (``on_error: notify_admin`` at
the top of the file) are the ``attrs`` of the body node ``"0"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: every built-in expression name (``terminate`` is an alias of ``cancel_process``)
BUILTIN_EXPRESSIONS: frozenset[str] = frozenset(
    {
        "sequence",
        "concurrence",
        "participant",
        "subprocess",
        "if",
        "iterator",
        "concurrent_iterator",
        "cursor",
        "loop",
        "set",
        "unset",
        "wait",
        "listen",
        "reserve",
        "echo",
        "noop",
        "error",
        "cancel_process",
        "terminate",
        "cancel",
        "break",
        "rewind",
        "skip",
        "back",
        "jump",
        "reset",
        "apply",
        "inc",
        "push",
    }
)

#: the cursor commands (section 2.2)
CURSOR_COMMANDS: frozenset[str] = frozenset({"break", "rewind", "skip", "back", "jump", "reset"})

#: the common attributes (section 4)
COMMON_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "if",
        "unless",
        "tag",
        "timeout",
        "on_timeout",
        "retry",
        "on_error",
        "on_cancel",
        "forget",
        "flank",
    }
)

#: ruote expressions the language does not have under that name, with what
#: to write instead (``None``: no equivalent). A bare step with one of these
#: names is a load error rather than a participant that fails at dispatch.
RUOTE_EXPRESSIONS: dict[str, str | None] = {
    "_if": "if: {test, then, else}",
    "_unless": "if: {test: not (...), then}",
    "unless": "if: {test: not (...), then}",
    "_break": "break",
    "stop": "break",
    "repeat": "loop",
    "_loop": "loop",
    "sleep": "wait",
    "_sleep": "wait",
    "receive": "listen",
    "intercept": "listen",
    "define": "a subprocess under 'subprocesses:'",
    "process_definition": "a definition file",
    "workflow_definition": "a definition file",
    "kill_process": "cancel_process (kill a run with 'boss kill')",
    "_error": "error",
    "_echo": "echo",
    "_set": "set",
    "_unset": "unset",
    "_cancel": "cancel",
    "_redo": "the on_error: redo attribute",
    "redo": "the on_error: redo attribute",
    "undo": "cancel",
    "restart": "reset",
    "dec": "inc with a negative value",
    "_apply": "apply",
    "equals": None,
    "filter": None,
    "given": None,
    "that": None,
    "of": None,
    "once": None,
    "when": None,
    "as_soon_as": None,
    "every": None,
    "cron": None,
    "lose": None,
    "add_branches": None,
    "add_branch": None,
    "await": None,
    "command": None,
    "let": None,
    "save": None,
    "restore": None,
    "registerp": None,
    "unregisterp": None,
}

#: the process-level attributes allowed at the top of a definition
PROCESS_ATTRIBUTES: frozenset[str] = frozenset(
    {"tag", "timeout", "on_timeout", "on_error", "on_cancel"}
)

#: the top-level keys of a definition file
TOP_LEVEL_KEYS: frozenset[str] = (
    frozenset({"name", "revision", "description", "fields", "variables", "subprocesses", "steps"})
    | PROCESS_ATTRIBUTES
)


@dataclass(frozen=True, slots=True)
class Handler:
    """An ``on_error`` / ``on_timeout`` / ``on_cancel`` value.

    ``action`` is one of:

    * ``"pass"``, ``"redo"``, ``"cancel"``, ``"raise"``, ``"error"``
      (``error`` only for ``on_timeout``);
    * ``"command"``: a cursor command; ``command`` is e.g. ``"jump publish"``,
      ``"skip 2"``, ``"rewind"``;
    * ``"subprocess"`` / ``"participant"``: run ``ref`` in the step's place.
      ``participant`` is used for names that are not a subprocess of the
      definition; whether a registration matches is decided at run time.
    """

    action: str
    ref: str | None = None
    command: str | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """``retry: 3`` or ``retry: {times: 3, delay: 10s, backoff: 2}``."""

    times: int
    delay: float = 0.0
    backoff: float = 1.0


@dataclass(frozen=True, slots=True)
class Node:
    """One expression of a definition (immutable; shared by every run)."""

    id: str
    kind: str
    opts: dict[str, Any] = field(default_factory=dict)
    children: tuple[Node, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    line: int = 0
    col: int = 0
    #: for ``subprocess`` nodes whose ref comes from a substitution
    dynamic: bool = False

    @property
    def tag(self) -> str | None:
        return self.attrs.get("tag")

    @property
    def name(self) -> str:
        """What the UI shows for this step: the participant or subprocess
        name for those, the expression kind otherwise."""
        if self.kind in ("participant", "subprocess"):
            return str(self.opts.get("ref", self.kind))
        return self.kind


@dataclass(frozen=True, slots=True)
class Definition:
    """A loaded process definition."""

    name: str
    body: Node
    revision: str | None = None
    description: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    subprocesses: dict[str, Node] = field(default_factory=dict)
    #: every node by id, subprocess bodies included
    nodes: dict[str, Node] = field(default_factory=dict)
    #: the text the definition was loaded from, and its SHA-256 (hex)
    source: str = ""
    digest: str = ""
    filename: str | None = None
    #: virtual nodes made on demand (see ``node``), kept with the definition
    _virtual: dict[str, Node] = field(default_factory=dict, repr=False, compare=False)

    def node(self, node_id: str) -> Node:
        """The node ``node_id``: a node of the definition, or a virtual one:
        ``<id>#body`` (the steps of an iterator or reserve, as a sequence)
        and ``<id>@on_error`` / ``@on_timeout`` / ``@on_cancel`` (the handler
        an attribute names, as a participant or subprocess step). Raises
        ``KeyError`` for an unknown id."""
        node = self.nodes.get(node_id) or self._virtual.get(node_id)
        if node is None:
            node = self._virtual[node_id] = self._make_virtual(node_id)
        return node

    def _make_virtual(self, node_id: str) -> Node:
        if "#" in node_id:
            base = self.nodes[node_id.partition("#")[0]]
            return Node(
                id=node_id, kind="sequence", children=base.children, line=base.line, col=base.col
            )
        if "@" in node_id:
            base_id, _, attr = node_id.rpartition("@")
            base = self.node(base_id)
            h: Handler = base.attrs[attr]
            kind, opts = (
                ("subprocess", {"ref": h.ref, "vars": {}})
                if h.action == "subprocess"
                else ("participant", {"ref": h.ref, "params": {}})
            )
            return Node(id=node_id, kind=kind, opts=opts, line=base.line, col=base.col)
        raise KeyError(node_id)
