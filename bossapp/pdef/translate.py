"""Translate a parsed ruote process definition into our process language
(a ``bossapp.pdef.ytree`` tree the emitter writes), with a note for every
construct that is not translated.

Nothing is guessed: a statement outside the subset (Ruby code, ``#{...}``,
ruote expressions the language has no equivalent for) becomes a ``noop``
step preceded by ``# NOT TRANSLATED (pdef line N): <source>`` and a
``Finding``. ``docs/converting-pdef.md`` has the mapping table."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from bossapp.pdef.tree import Block, Comment, Stmt, Value
from bossapp.pdef.ytree import Before, Entry, Item, Note, YMap, YSeq
from engine.core.definition import BUILTIN_EXPRESSIONS, PROCESS_ATTRIBUTES

__all__ = ["Finding", "translate"]

NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")

#: ruote's common attributes that become sibling keys of the step
ATTRIBUTES = (
    "if",
    "unless",
    "tag",
    "timeout",
    "on_timeout",
    "on_error",
    "on_cancel",
    "forget",
    "flank",
    "retry",
)
#: ruote's common attributes the language has no equivalent for
UNTRANSLATED_ATTRIBUTES = {
    "lose": "a lost branch never replies; the language has no 'lose'",
    "filter": "ruote's workitem filters are not in the language",
    "take": "ruote's take/discard (concurrence merges) are not in the language",
    "discard": "ruote's take/discard (concurrence merges) are not in the language",
    "timers": "ruote's timers are not in the language",
    "await": "ruote's await is not in the language",
    "scope": "ruote's variable scopes are not in the language",
    "on_reply": "ruote's on_reply is not in the language",
    "on_terminate": "ruote's on_terminate is not in the language",
    "ruby_eval": "Ruby code is not translated",
}
#: the process-level attributes our definition files take


#: ruote expressions the language has no equivalent for, and why
UNTRANSLATED = {
    "cron": "scheduled repetition is not in the language (use a trigger or a launcher)",
    "every": "scheduled repetition is not in the language (use a trigger or a launcher)",
    "add_branches": "adding branches to a running concurrence is not in the language",
    "add_branch": "adding branches to a running concurrence is not in the language",
    "filter": "ruote's workitem filters are not in the language",
    "given": "ruote's given/that/of switch is not in the language (use 'if')",
    "that": "ruote's given/that/of switch is not in the language (use 'if')",
    "of": "ruote's given/that/of switch is not in the language (use 'if')",
    "once": "ruote's once/when (wait for a condition) is not in the language",
    "when": "ruote's once/when (wait for a condition) is not in the language",
    "_when": "ruote's once/when (wait for a condition) is not in the language",
    "as_soon_as": "ruote's once/when (wait for a condition) is not in the language",
    "lose": "a lost branch never replies; the language has no 'lose'",
    "undo": "cancelling a tagged expression as 'undo' is not in the language (see 'cancel')",
    "redo": "re-applying a tagged expression is not in the language",
    "save": "saving the workitem into a field or variable is not in the language",
    "restore": "restoring a saved workitem is not in the language",
    "let": "ruote's let (a sequence with its own variable scope) is not in the language",
    "equals": "ruote's condition expressions are not in the language (use 'if' with a test)",
    "dec": "decrementing or removing from a list is not in the language",
    "decrement": "decrementing or removing from a list is not in the language",
    "registerp": "registering participants from a process is not in the language",
    "unregisterp": "registering participants from a process is not in the language",
    "kill_process": "killing a run (without its on_cancel handlers) is not in the language",
    "forget": "ruote's forget expression (use the 'forget: true' attribute)",
    "command": "ruote's command expression is not in the language",
    "await": "ruote's await is not in the language",
    "read": "ruote's read is not in the language",
    "exp": "ruote's exp is not in the language",
    "define": "a subprocess defined inside a subprocess (ruote scopes it): define it at the top",
    "process_definition": "a definition inside a subprocess: define it at the top",
    "workflow_definition": "a definition inside a subprocess: define it at the top",
}
DEFINE = ("define", "process_definition", "workflow_definition")
_COMMANDS = {
    "_break": "break",
    "break": "break",
    "stop": "break",
    "over": "break",
    "rewind": "rewind",
    "_rewind": "rewind",
    "skip": "skip",
    "_skip": "skip",
    "back": "back",
    "_back": "back",
    "jump": "jump",
    "_jump": "jump",
    "reset": "reset",
    "_reset": "reset",
    "restart": "reset",
    "receive": "listen",
    "intercept": "listen",
    "repeat": "loop",
    "sleep": "wait",
    "if": "if",
    "unless": "if",
}
#: names that are built-in expressions of the language (a participant call
#: with such a name must be written ``participant: {ref: ...}``)
OUR_BUILTINS = BUILTIN_EXPRESSIONS | {"steps"} | set(ATTRIBUTES)


@dataclass
class Finding:
    """A construct that was not translated (``construct``: what, ``why``)."""

    filename: str
    line: int
    col: int
    construct: str
    why: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.col}: {self.construct}: {self.why}"


class NotTranslated(Exception):
    def __init__(self, line: int, col: int, construct: str, why: str) -> None:
        super().__init__(why)
        self.line = line
        self.col = col
        self.construct = construct
        self.why = why


def _notes(comments: list[Comment | None], base: int) -> Before:
    return [None if c is None else Note(c.text, max(0, c.col - base)) for c in comments]


def _strip_blanks(before: Before) -> Before:
    """Drop blank lines at the start and the end, and doubled ones."""
    out: Before = []
    for note in before:
        if note is None and (not out or out[-1] is None):
            continue
        out.append(note)
    while out and out[-1] is None:
        out.pop()
    return out


def _key(value: Value) -> str:
    if value.kind in ("str", "sym"):
        return str(value.value)
    if value.kind == "num":
        return str(value.value)
    raise NotTranslated(value.line, value.col, "hash key", "only strings and symbols are keys")


def _truth(value: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _number(value: Any) -> Any:
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        return int(value)
    return value


class _Translator:
    def __init__(self, text: str, filename: str) -> None:
        self.lines = text.split("\n")
        self.filename = filename
        self.findings: list[Finding] = []
        self.subprocesses: set[str] = set()
        self.translated = 0

    # -- values --------------------------------------------------------------------

    def value(self, v: Value) -> Any:
        if v.kind == "str":
            if v.interp:
                raise NotTranslated(
                    v.line, v.col, "#{...}", "Ruby string interpolation is not translatable"
                )
            text = str(v.value)
            m = re.search(r"\$\{(r|ruby):", text)
            if m:
                raise NotTranslated(
                    v.line, v.col, "${r:...}", "ruote's Ruby substitution is Ruby code"
                )
            return text
        if v.kind == "sym":
            if v.interp:
                raise NotTranslated(
                    v.line, v.col, "#{...}", "Ruby string interpolation is not translatable"
                )
            return str(v.value)
        if v.kind in ("num", "bool", "nil"):
            return v.value
        if v.kind == "array":
            return [self.value(x) for x in v.value]
        if v.kind == "hash":
            return {_key(k): self.value(x) for k, x in v.value}
        raise NotTranslated(v.line, v.col, "Ruby code", "not a literal")  # pragma: no cover

    def kwargs(self, stmt: Stmt) -> dict[str, tuple[Value, Any]]:
        out: dict[str, tuple[Value, Any]] = {}
        for k, v in stmt.kwargs:
            out[_key(k)] = (k, self.value(v))
        return out

    # -- statements ----------------------------------------------------------------

    def source(self, stmt: Stmt) -> list[str]:
        lines = [x.expandtabs(8).rstrip() for x in self.lines[stmt.line - 1 : stmt.end_line]]
        indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
        return [x[indent:] for x in lines]

    def untranslated(self, stmt: Stmt, e: NotTranslated) -> Item:
        self.findings.append(Finding(self.filename, e.line, e.col, e.construct, e.why))
        src = self.source(stmt)
        if stmt.line == stmt.end_line:
            notes = [Note(f" NOT TRANSLATED (pdef line {stmt.line}): {src[0]}")]
        else:
            notes = [Note(f" NOT TRANSLATED (pdef lines {stmt.line}-{stmt.end_line}):")]
            notes += [Note(f"   {x}") for x in src]
        return Item("noop", _notes(stmt.leading, stmt.indent) + notes)

    def steps(self, block: Block | None) -> YSeq:
        """The steps of a block: each statement is one step."""
        if block is None:
            return YSeq()
        items = [self.step(s) for s in block.stmts]
        base = block.stmts[0].indent if block.stmts else 0
        if items:
            items[0].before = _strip_blanks(items[0].before)
            while items[0].before and items[0].before[0] is None:
                items[0].before.pop(0)
        return YSeq(items, _strip_blanks(_notes(block.end_comments, base)))

    def body(self, stmt: Stmt) -> YSeq:
        """The steps of a body run as a sequence (a definition, then/else,
        an iterator, a block given to a subprocess): a single plain
        ``sequence`` is unwrapped, its comments kept."""
        if stmt.block is None:
            return YSeq()
        stmts = stmt.block.stmts
        if len(stmts) == 1 and self.plain_sequence(stmts[0]):
            only = stmts[0]
            seq = self.steps(only.block)
            self.translated += 1
            before = _notes(only.leading + only.inner, only.indent)
            trailing = [Note(only.trailing.text)] if only.trailing else []
            if seq.items:
                seq.items[0].before = _strip_blanks(before + trailing + seq.items[0].before)
            else:
                seq.end = _strip_blanks(before + trailing + seq.end)
            outer_end = _notes(stmt.block.end_comments, only.indent)
            seq.end = _strip_blanks(seq.end + outer_end)
            return seq
        return self.steps(stmt.block)

    def plain_sequence(self, stmt: Stmt) -> bool:
        return stmt.is_call and stmt.name == "sequence" and not stmt.args and not stmt.kwargs

    def child(self, stmt: Stmt) -> YSeq:
        """One child used as a list of steps (then/else): a plain sequence is
        unwrapped."""
        if self.plain_sequence(stmt):
            wrapper = Stmt("", stmt.line, stmt.col, stmt.end_line, block=Block([stmt], 0, 0))
            return self.body(wrapper)
        item = self.step(stmt)
        item.before = _strip_blanks(item.before)
        while item.before and item.before[0] is None:
            item.before.pop(0)
        return YSeq([item])

    def step(self, stmt: Stmt) -> Item:
        try:
            if not stmt.is_call:
                line, col = stmt.raw_at
                raise NotTranslated(line, col, "Ruby code", f"{stmt.raw}: outside the DSL subset")
            value = self.call(stmt)
        except NotTranslated as e:
            return self.untranslated(stmt, e)
        self.translated += 1
        before = _notes(stmt.leading, stmt.indent) + _notes(stmt.inner, stmt.indent)
        return Item(value, before, stmt.trailing.text if stmt.trailing else None)

    # -- calls ---------------------------------------------------------------------

    def call(self, stmt: Stmt) -> Any:
        name = stmt.name
        if stmt.receiver is not None:
            raise NotTranslated(
                stmt.line, stmt.col, f"{stmt.receiver}.{name}", "a Ruby method call"
            )
        kw = self.kwargs(stmt)
        attrs: list[Entry] = []
        for key in list(kw):
            if key in UNTRANSLATED_ATTRIBUTES:
                k, _ = kw[key]
                raise NotTranslated(k.line, k.col, f":{key}", UNTRANSLATED_ATTRIBUTES[key])
            if key in ATTRIBUTES and not (key == "tag" and name == "cancel"):
                _, value = kw.pop(key)
                if key in ("forget", "flank"):
                    value = _truth(value)
                if key == "on_error" and value == "undo":
                    value = "cancel"
                attrs.append(Entry(key, value))
        if name in UNTRANSLATED:
            raise NotTranslated(stmt.line, stmt.col, name, UNTRANSLATED[name])
        # ruote's DSL takes `_name` for any expression (`_if`, `_break`, `_sleep`)
        bare = name[1:] if name.startswith("_") and len(name) > 1 else name
        handler = getattr(self, "x_" + _COMMANDS.get(bare, bare), None)
        if handler is None or bare == "steps" or name.startswith("__"):
            expr = self.x_call(stmt, kw)
        else:
            expr = handler(replace(stmt, name=bare), kw)
        if isinstance(expr, str) and not attrs:
            return expr
        if isinstance(expr, str):
            expr = Entry(expr, None)
        if any(a.key == expr.key for a in attrs):
            # `- if: {...}` cannot also have an `if:` attribute: wrap it
            expr = Entry("sequence", YSeq([Item(YMap([expr]))]))
        return YMap([expr, *attrs])

    def check_args(self, stmt: Stmt, n: int) -> list[Any]:
        if len(stmt.args) > n:
            extra = stmt.args[n]
            raise NotTranslated(extra.line, extra.col, stmt.name, "unexpected positional argument")
        return [self.value(a) for a in stmt.args]

    def check_kwargs(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]], known: set) -> None:
        for key, (k, _) in kw.items():
            if key not in known:
                raise NotTranslated(
                    k.line, k.col, f"{stmt.name} :{key}", "not an option the language has"
                )

    def no_block(self, stmt: Stmt) -> None:
        if stmt.block is not None:
            raise NotTranslated(
                stmt.block.line, stmt.block.col, f"{stmt.name} do ... end", "takes no block"
            )

    def x_call(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        """A participant or a subprocess called by name."""
        name = stmt.name
        if stmt.args:
            a = stmt.args[0]
            raise NotTranslated(
                a.line, a.col, name, "a positional argument to a participant or subprocess"
            )
        params = {k: v for k, (_, v) in kw.items()}
        if not NAME_RE.fullmatch(name) or name in OUR_BUILTINS:
            value = YMap([Entry("ref", name), *(Entry(k, v) for k, v in params.items())])
            if stmt.block is not None:
                raise NotTranslated(
                    stmt.line, stmt.col, name, "a block given to a participant call"
                )
            return Entry("participant", value)
        if stmt.block is not None:
            if name not in self.subprocesses:
                raise NotTranslated(
                    stmt.line,
                    stmt.col,
                    f"{name} do ... end",
                    "a block given to a name that is not a subprocess of this file",
                )
            return Entry(
                name,
                YMap([*(Entry(k, v) for k, v in params.items()), Entry("steps", self.body(stmt))]),
            )
        if not params:
            return name
        return Entry(name, params)

    def x_participant(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        self.no_block(stmt)
        (ref,) = self.check_args(stmt, 1) or [None]
        if ref is None:
            if "ref" not in kw:
                raise NotTranslated(stmt.line, stmt.col, "participant", "no participant name")
            _, ref = kw.pop("ref")
        params = {k: v for k, (_, v) in kw.items()}
        if (
            isinstance(ref, str)
            and NAME_RE.fullmatch(ref)
            and ref not in OUR_BUILTINS
            and ref not in self.subprocesses
        ):
            return Entry(ref, params) if params else ref
        return Entry(
            "participant", YMap([Entry("ref", ref), *(Entry(k, v) for k, v in params.items())])
        )

    def x_ref(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        self.no_block(stmt)
        (ref,) = self.check_args(stmt, 1) or [None]
        if ref is None:
            if "ref" not in kw:
                raise NotTranslated(stmt.line, stmt.col, "ref", "no name to call")
            _, ref = kw.pop("ref")
        params = {k: v for k, (_, v) in kw.items()}
        if isinstance(ref, str) and NAME_RE.fullmatch(ref) and ref not in OUR_BUILTINS:
            return Entry(ref, params) if params else ref
        return Entry(
            "participant", YMap([Entry("ref", ref), *(Entry(k, v) for k, v in params.items())])
        )

    def x_subprocess(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        self.no_block(stmt)
        (ref,) = self.check_args(stmt, 1) or [None]
        if ref is None:
            if "ref" not in kw:
                raise NotTranslated(stmt.line, stmt.col, "subprocess", "no subprocess name")
            _, ref = kw.pop("ref")
        params = [Entry(k, v) for k, (_, v) in kw.items()]
        if not params and not stmt.args:
            return Entry("subprocess", YMap([Entry("ref", ref)]))
        return Entry("subprocess", YMap([Entry("ref", ref), *params]))

    # containers

    def x_sequence(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        self.check_args(stmt, 0)
        self.check_kwargs(stmt, kw, set())
        return Entry("sequence", self.steps(stmt.block))

    def x_concurrence(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        self.check_args(stmt, 0)
        known = {"count", "remaining", "merge", "merge_type", "over_if", "over_unless", "wait_for"}
        if "over" in kw:
            kw["over_if"] = kw.pop("over")
        self.check_kwargs(stmt, kw, known)
        branches = self.steps(stmt.block)
        if not kw:
            return Entry("concurrence", branches)
        opts = []
        for key, (_, value) in kw.items():
            if key == "count":
                value = _number(value)
            if key == "wait_for" and isinstance(value, str):
                value = [x.strip() for x in value.split(",") if x.strip()]
            opts.append(Entry(key, value))
        return Entry("concurrence", YMap([*opts, Entry("branches", branches)]))

    def x_cursor(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]], key: str = "cursor") -> Any:
        self.check_args(stmt, 0)
        self.check_kwargs(stmt, kw, {"break_if", "break_unless", "rewind_if", "rewind_unless"})
        steps = self.steps(stmt.block)
        if not kw:
            return Entry(key, steps)
        opts = [Entry(k, v) for k, (_, v) in kw.items()]
        return Entry(key, YMap([*opts, Entry("steps", steps)]))

    def x_loop(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.x_cursor(stmt, kw, "loop")

    x_repeat = x_loop

    def x_iterator(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        concurrent = stmt.name == "concurrent_iterator"
        self.check_args(stmt, 0)
        if "from" in kw or "times" in kw or "step" in kw:
            k = kw.get("from", kw.get("times", kw.get("step")))[0]  # type: ignore[index]
            raise NotTranslated(
                k.line, k.col, f"{stmt.name} :{k.value}", "numeric iteration is not in the language"
            )
        entries: list[Entry] = []
        on = None
        to = None
        for key, (k, value) in kw.items():
            if key in ("on_field", "on_f"):
                on = f"$f:{value}"
            elif key in ("on_var", "on_v"):
                on = f"$v:{value}"
            elif key in ("on_val", "on_value", "on"):
                on = value
            elif key in ("to_field", "to_f"):
                to = f"f:{value}"
            elif key in ("to_var", "to_v"):
                to = f"v:{value}"
            elif key == "to":
                to = value
            elif concurrent and key in ("count", "merge", "merge_type"):
                entries.append(Entry(key, _number(value) if key == "count" else value))
            else:
                raise NotTranslated(
                    k.line, k.col, f"{stmt.name} :{key}", "not an option the language has"
                )
        head = []
        if on is not None:
            head.append(Entry("on", on))
        if to is not None:
            head.append(Entry("to", to))
        return Entry(stmt.name, YMap([*head, *entries, Entry("steps", self.body(stmt))]))

    x_concurrent_iterator = x_iterator

    def x_if(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        args = self.check_args(stmt, 1)
        if args:
            test = args[0]
        elif "test" in kw:
            _, test = kw.pop("test")
        else:
            raise NotTranslated(
                stmt.line,
                stmt.col,
                stmt.name,
                "an 'if' without :test (a condition expression as first child) is not translated",
            )
        self.check_kwargs(stmt, kw, set())
        if stmt.name.endswith("unless"):
            test = f"not ({test})" if isinstance(test, str) else not test
        children = stmt.block.stmts if stmt.block else []
        if len(children) > 2:
            extra = children[2]
            raise NotTranslated(
                extra.line, extra.col, stmt.name, "more than two children (then, else)"
            )
        entries = [Entry("test", test)]
        if children:
            then = self.child(children[0])
        else:
            then = YSeq()
        entries.append(Entry("then", then))
        if len(children) > 1:
            entries.append(Entry("else", self.child(children[1])))
        base = children[0].indent if children else stmt.indent + 2
        end = _strip_blanks(_notes(stmt.block.end_comments, base)) if stmt.block else []
        target = entries[-1].value
        target.end = _strip_blanks(target.end + end)
        return Entry("if", YMap(entries))

    def x_reserve(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        args = self.check_args(stmt, 1)
        mutex = args[0] if args else (kw.pop("mutex")[1] if "mutex" in kw else None)
        if mutex is None:
            raise NotTranslated(stmt.line, stmt.col, "reserve", "no :mutex")
        self.check_kwargs(stmt, kw, set())
        return Entry("reserve", YMap([Entry("mutex", mutex), Entry("steps", self.body(stmt))]))

    # variables and fields

    def target(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> str | None:
        """``:f => 'x'`` / ``:field`` -> ``f:x``; ``:var``/``:v``/``:variable`` -> ``v:x``."""
        for key, prefix in (
            ("f", "f:"),
            ("field", "f:"),
            ("v", "v:"),
            ("var", "v:"),
            ("variable", "v:"),
        ):
            if key in kw:
                _, name = kw.pop(key)
                return f"{prefix}{name}"
        return None

    def x_set(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        self.no_block(stmt)
        self.check_args(stmt, 0)
        target = self.target(stmt, kw)
        if target is not None:
            value = None
            for key in ("val", "value"):
                if key in kw:
                    _, value = kw.pop(key)
                    break
            else:
                raise NotTranslated(stmt.line, stmt.col, "set", "no :val (a value from a block?)")
            self.check_kwargs(stmt, kw, set())
            return Entry("set", {target: value})
        if not kw:
            raise NotTranslated(stmt.line, stmt.col, "set", "nothing to set")
        for key in ("escape", "override"):
            if key in kw:
                k = kw[key][0]
                raise NotTranslated(k.line, k.col, f"set :{key}", "not an option the language has")
        return Entry("set", {k: v for k, (_, v) in kw.items()})

    def x_unset(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        self.no_block(stmt)
        names = [self.value(a) for a in stmt.args]
        target = self.target(stmt, kw)
        if target is not None:
            names.append(target)
        self.check_kwargs(stmt, kw, set())
        if not names:
            raise NotTranslated(stmt.line, stmt.col, "unset", "nothing to unset")
        return Entry("unset", names[0] if len(names) == 1 else names)

    def x_inc(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]], key: str = "inc") -> Any:
        self.no_block(stmt)
        args = self.check_args(stmt, 1)
        target = args[0] if args else self.target(stmt, kw)
        if "pos" in kw:
            k = kw["pos"][0]
            raise NotTranslated(
                k.line, k.col, f"{stmt.name} :pos", "prepending is not in the language"
            )
        if target is None:
            if len(kw) == 1:  # inc 'v:x' => 2
                ((name, (_, value)),) = kw.items()
                return Entry(key, {name: value})
            raise NotTranslated(stmt.line, stmt.col, stmt.name, "no field or variable named")
        value = None
        has_value = False
        for vkey in ("val", "value"):
            if vkey in kw:
                _, value = kw.pop(vkey)
                has_value = True
                break
        self.check_kwargs(stmt, kw, set())
        if not has_value:
            if key == "push":
                raise NotTranslated(stmt.line, stmt.col, "push", "no :val to push")
            return Entry(key, target)
        return Entry(key, {target: value})

    def x_push(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.x_inc(stmt, kw, "push")

    # simple expressions

    def x_wait(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        self.no_block(stmt)
        args = self.check_args(stmt, 1)
        self.check_kwargs(stmt, kw, {"for", "until"})
        if args:
            if kw:
                raise NotTranslated(
                    stmt.line, stmt.col, stmt.name, "both a duration and :for/:until"
                )
            return Entry("wait", args[0])
        if len(kw) != 1:
            raise NotTranslated(stmt.line, stmt.col, stmt.name, "needs a duration, :for or :until")
        return Entry("wait", {k: v for k, (_, v) in kw.items()})

    x_sleep = x_wait

    def x_listen(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        if stmt.block is not None:
            raise NotTranslated(
                stmt.block.line,
                stmt.block.col,
                "listen do ... end",
                "a listen that runs its children on each event is not in the language",
            )
        self.check_args(stmt, 0)
        if "on" in kw and "to" not in kw:
            kw["to"] = kw.pop("on")
        self.check_kwargs(stmt, kw, {"to", "upon", "where", "merge", "wfid", "class"})
        entries = []
        for key, (_, value) in kw.items():
            if key in ("merge", "wfid"):
                value = _truth(value)
            entries.append(Entry(key, value))
        return Entry("listen", YMap(entries))

    def text_expr(
        self, stmt: Stmt, kw: dict[str, tuple[Value, Any]], key: str, optional: bool
    ) -> Any:
        self.no_block(stmt)
        args = self.check_args(stmt, 1)
        for alt in ("msg", "message", "text"):
            if not args and alt in kw:
                args = [kw.pop(alt)[1]]
        self.check_kwargs(stmt, kw, set())
        if not args:
            if optional:
                return key
            raise NotTranslated(stmt.line, stmt.col, stmt.name, "no text")
        return Entry(key, args[0])

    def x_echo(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.text_expr(stmt, kw, "echo", optional=False)

    def x_error(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.text_expr(stmt, kw, "error", optional=True)

    def bare(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]], key: str) -> Any:
        self.no_block(stmt)
        self.check_args(stmt, 0)
        self.check_kwargs(stmt, kw, set())
        return key

    def x_terminate(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.bare(stmt, kw, "terminate")

    x_cancel_process = x_terminate

    def x_noop(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.bare(stmt, kw, "noop")

    def x_apply(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.bare(stmt, kw, "apply")

    def command(
        self, stmt: Stmt, kw: dict[str, tuple[Value, Any]], key: str, arg: str | None
    ) -> Any:
        self.no_block(stmt)
        if "ref" in kw:
            k = kw["ref"][0]
            raise NotTranslated(
                k.line, k.col, f"{stmt.name} :ref", "a command aimed at a named cursor"
            )
        args = self.check_args(stmt, 1 if arg else 0)
        if arg and not args and arg in kw:
            args = [kw.pop(arg)[1]]
        self.check_kwargs(stmt, kw, set())
        if args:
            return Entry(key, _number(args[0]) if key != "jump" else args[0])
        return key

    def x_break(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.command(stmt, kw, "break", None)

    def x_rewind(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.command(stmt, kw, "rewind", None)

    def x_reset(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.command(stmt, kw, "reset", None)

    def x_skip(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.command(stmt, kw, "skip", "step")

    def x_back(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.command(stmt, kw, "back", "step")

    def x_jump(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        return self.command(stmt, kw, "jump", "to")

    def x_cancel(self, stmt: Stmt, kw: dict[str, tuple[Value, Any]]) -> Any:
        self.no_block(stmt)
        args = self.check_args(stmt, 1)
        for key in ("ref", "tag"):
            if not args and key in kw:
                args = [kw.pop(key)[1]]
        self.check_kwargs(stmt, kw, set())
        if not args:
            raise NotTranslated(stmt.line, stmt.col, "cancel", "no tag to cancel")
        return Entry("cancel", args[0])

    # -- the definition ----------------------------------------------------------------

    def definition(self, program: Block, default_name: str) -> YMap:
        pdefs = [
            s
            for s in program.stmts
            if s.is_call and s.name in DEFINE and s.receiver in (None, "Ruote") and s.block
        ]
        if not pdefs:
            raise NotTranslated(1, 1, "file", "no Ruote.process_definition found")
        pdef = pdefs[0]
        doc = YMap()
        header: Before = []
        for s in program.stmts:
            if s is pdef:
                header += _notes(s.leading, 1)
            elif s in pdefs:
                e = NotTranslated(s.line, s.col, s.name, "a second process definition")
                item = self.untranslated(s, e)
                header += item.before
            else:
                why = s.raw or "a statement outside the process definition"
                e = NotTranslated(s.line, s.col, s.name or "Ruby code", why)
                header += self.untranslated(s, e).before
        kw = {}
        try:
            args = self.check_args(pdef, 1)
            kw = self.kwargs(pdef)
        except NotTranslated as e:
            self.findings.append(Finding(self.filename, e.line, e.col, e.construct, e.why))
            args = []
        name = args[0] if args else (kw.pop("name")[1] if "name" in kw else default_name)
        name = str(name)
        if not NAME_RE.fullmatch(name):
            self.findings.append(
                Finding(
                    self.filename,
                    pdef.line,
                    pdef.col,
                    f"name {name!r}",
                    "not a valid process name ([A-Za-z0-9_.-]+); used the file's name",
                )
            )
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", default_name) or "process"
        doc.entries.append(Entry("name", name, header))
        if "revision" in kw:
            doc.entries.append(Entry("revision", str(kw.pop("revision")[1])))
        for key in list(kw):
            k, value = kw.pop(key)
            if key in PROCESS_ATTRIBUTES:
                doc.entries.append(Entry(key, value))
            else:
                self.findings.append(
                    Finding(
                        self.filename,
                        k.line,
                        k.col,
                        f":{key}",
                        "not a process-level attribute of the language",
                    )
                )
        assert pdef.block is not None
        body_stmts = [s for s in pdef.block.stmts if not self.is_define(s)]
        defines = [s for s in pdef.block.stmts if self.is_define(s)]
        for s in defines:
            sname = self.define_name(s)
            if sname:
                self.subprocesses.add(sname)
        body = Stmt("", pdef.line, pdef.col, pdef.end_line, block=Block(body_stmts, 0, 0))
        steps = self.body(body)
        doc.entries.append(Entry("steps", steps, [None]))
        subs = YMap()
        for s in defines:
            sname = self.define_name(s)
            before = _strip_blanks(_notes(s.leading, s.indent))
            why = None
            if sname is None:
                why = "a subprocess needs a literal name ([A-Za-z0-9_.-]+)"
            elif sname in OUR_BUILTINS:
                why = f"'{sname}' is a built-in expression or attribute of the language"
            elif sname in [e.key for e in subs.entries]:
                why = f"'{sname}' is defined twice"
            if why is not None:
                e = NotTranslated(s.line, s.col, s.name, why)
                item = self.untranslated(s, e)
                subs.end += item.before
                continue
            self.translated += 1
            entry = Entry(sname, self.body(s), ([None] if subs.entries else []) + before)
            subs.entries.append(entry)
        base = pdef.block.stmts[0].indent if pdef.block.stmts else 0
        tail = _strip_blanks(_notes(pdef.block.end_comments, base))
        if subs.entries or subs.end:
            doc.entries.append(Entry("subprocesses", subs, [None]))
            subs.end = _strip_blanks(subs.end + tail)
        else:
            steps.end = _strip_blanks(steps.end + tail)
        doc.end = _strip_blanks(_notes(program.end_comments, 1))
        return doc

    def is_define(self, s: Stmt) -> bool:
        return s.is_call and s.name in DEFINE and s.block is not None and s.receiver is None

    def define_name(self, s: Stmt) -> str | None:
        try:
            args = self.check_args(s, 1)
            kw = self.kwargs(s)
        except NotTranslated:
            return None
        name = args[0] if args else (kw["name"][1] if "name" in kw else None)
        if isinstance(name, str) and NAME_RE.fullmatch(name):
            return name
        return None


@dataclass
class Translation:
    doc: YMap
    findings: list[Finding]
    statements: int


def translate(program: Block, text: str, filename: str, default_name: str) -> Translation:
    """Translate a parsed definition (``text`` is its source, for the
    "not translated" comments; ``default_name`` names a definition that has
    no name). Raises ``NotTranslated`` when the file holds no
    ``Ruote.process_definition``."""
    t = _Translator(text, filename)
    doc = t.definition(program, default_name)
    return Translation(doc, t.findings, t.translated)
