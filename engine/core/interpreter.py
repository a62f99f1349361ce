"""The sans-IO interpreter: one run's state plus one message in, the new state
and the effects to carry out, out.

Nothing here does IO, reads a clock or draws a random number: the adapter
passes ``now``, the participant registrations and the definition, and
carries out the returned effects (``engine.core.effects``) after storing the
state. That makes the core deterministic, fast, and safe to run on any
number of workers (the store's compare-and-set serialises messages per run).

The run state is a JSON-compatible dict::

    wfid, name, revision, def (definition digest), status, launched_at,
    updated_at, ended_at, fields (launch fields, then the final ones),
    root (eid of the root expression), seq (id counter), exprs {eid: expr},
    errors [..], detached [eids], paused, held [messages], pending [work],
    ending (status to end with), lc (run lifecycle state), sv (the format
    version, ``engine.core.runstate``: whoever loads a state upgrades it
    there, and reads it outside the core only through its accessors)

An expression instance (``expr``) is a small dict with short keys, to keep a
waiting run small in Redis:

    n   node id in the definition (``0_1``, ``sub/0_2``, ``0_1@on_error``,
        ``0_3#body``)
    p   parent eid, or None for the root and detached branches
    s   state (``engine.core.states``: active, waiting, cancelling, failed)
    w   the workitem fields it was applied with
    k   live children eids (containers)
    v   variables, for expressions that open a scope; vk its kind
    sl  the branch slot in a concurrence parent
    i   child index (sequence-like); ii item index (iterators)
    a   retry attempt; t timeout timer id; wt wait/retry timer id
    then  what to do once a cancel has finished (see ``_abort``)

Messages are dicts with a ``type``, built by ``engine.core.messages``:
launch (via ``launch``), reply, timer, cancel, kill, pause, resume, replay,
re_apply, listen, mutex, started, continue; ``handle`` looks each up in
``_CONTROLS`` or ``_ON_MESSAGE``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.core import lifecycle, merge, messages, outcome, runstate, states
from engine.core.definition import CURSOR_COMMANDS, Definition, Handler, Node
from engine.core.durations import DurationError, parse_duration, parse_time
from engine.core.effects import (
    AcquireMutex,
    AddListener,
    CancelTimer,
    CancelWorkitem,
    Continue,
    Dispatch,
    Echo,
    Effect,
    Log,
    Record,
    ReleaseMutex,
    RemoveListener,
    ReplyApplied,
    RunEnded,
    ScheduleTimer,
)
from engine.core.registrations import Registration, Registrations
from engine.core.substitution import MISSING, substitute, substitute_node_value

#: instantaneous operations one message may run before the core yields
OPERATION_BUDGET = 20_000

ENGINE_ID = "boss"

_CURSORS = frozenset({"cursor", "loop", "iterator"})

# ---------------------------------------------------------------------------
# small helpers


_iso_seconds: dict[int, str] = {}


def iso(ts: float) -> str:
    """Epoch seconds as an ISO 8601 UTC time with milliseconds
    (``2026-11-21T10:00:00.123Z``); the seconds part is cached."""
    sec = int(ts // 1)
    head = _iso_seconds.get(sec)
    if head is None:
        if len(_iso_seconds) > 1024:
            _iso_seconds.clear()
        head = _iso_seconds[sec] = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    ms = min(int((ts - sec) * 1000), 999)
    return f"{head}.{ms:03d}Z"


def _get_path(data: Any, path: str) -> Any:
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict):
            if part not in cur:
                return MISSING
            cur = cur[part]
        elif isinstance(cur, list) and part.lstrip("-").isdigit():
            idx = int(part)
            if -len(cur) <= idx < len(cur):
                cur = cur[idx]
            else:
                return MISSING
        else:
            return MISSING
    return cur


def _list_index(container: Any, part: str) -> int | None:
    """``part`` as an index into the list ``container`` (negative from the
    end), or None when it is not one."""
    if isinstance(container, list) and part.lstrip("-").isdigit():
        idx = int(part)
        if idx < 0:
            idx += len(container)
        if 0 <= idx <= len(container):
            return idx
    return None


def _set_path(fields: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``fields`` with the dotted ``path`` set (copies along the
    path only, so other holders of the old containers are untouched). A
    segment that indexes a list sets that item (the index just past the end
    appends); anything else on the way is replaced by a mapping."""
    parts = path.split(".")
    out = dict(fields)
    cur: Any = out
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            idx = _list_index(cur, part)
            assert idx is not None  # checked by the caller of the previous level
            if last:
                if idx == len(cur):
                    cur.append(value)
                else:
                    cur[idx] = value
                return out
            old = cur[idx] if idx < len(cur) else None
        else:
            if last:
                cur[part] = value
                return out
            old = cur.get(part)
        nxt_part = parts[i + 1]
        if isinstance(old, list) and _list_index(old, nxt_part) is not None:
            nxt: Any = list(old)
        elif isinstance(old, dict):
            nxt = dict(old)
        else:
            nxt = {}
        if isinstance(cur, list):
            if idx == len(cur):
                cur.append(nxt)
            else:
                cur[idx] = nxt
        else:
            cur[part] = nxt
        cur = nxt
    return out


def _del_path(fields: dict[str, Any], path: str) -> dict[str, Any]:
    """A copy of ``fields`` without the dotted ``path`` (list items by
    index are removed); ``fields`` itself when there is nothing there."""
    if _get_path(fields, path) is MISSING:
        return fields
    parts = path.split(".")
    out = dict(fields)
    cur: Any = out
    for part in parts[:-1]:
        if isinstance(cur, list):
            idx = _list_index(cur, part)
            nxt = cur[idx]
            nxt = list(nxt) if isinstance(nxt, list) else dict(nxt)
            cur[idx] = nxt
        else:
            nxt = cur[part]
            nxt = list(nxt) if isinstance(nxt, list) else dict(nxt)
            cur[part] = nxt
        cur = nxt
    if isinstance(cur, list):
        del cur[_list_index(cur, parts[-1])]
    else:
        cur.pop(parts[-1], None)
    return out


class RunError(Exception):
    """An error of the run raised while applying an expression (a bad
    argument after substitution, an unknown participant, ...)."""

    def __init__(self, message: str, cls: str = "RunError") -> None:
        super().__init__(message)
        self.cls = cls


@dataclass(slots=True)
class Result:
    """What ``launch`` and ``handle`` return."""

    state: dict[str, Any]
    effects: list[Effect] = field(default_factory=list)
    #: set when the message was ignored (stale reply, ended run, ...)
    ignored: str | None = None


class _Scope:
    """The substitution scope of an expression: its workitem fields, the
    variables of its enclosing scopes, and the run's specials."""

    __slots__ = ("eid", "fields", "interp", "node_id")

    def __init__(self, interp: Interpreter, eid: str | None, fields: dict, node_id: str) -> None:
        self.interp = interp
        self.eid = eid
        self.fields = fields
        self.node_id = node_id

    def field(self, path: str) -> Any:
        if "." not in path:
            return self.fields.get(path, MISSING)
        return _get_path(self.fields, path)

    def variable(self, path: str) -> Any:
        name, _, rest = path.partition(".")
        scope = self.interp._scope_with(self.eid, name)
        if scope is None:
            return MISSING
        value = scope[name]
        return _get_path(value, rest) if rest else value

    def special(self, name: str) -> Any:
        st = self.interp.state
        if name == "wfid":
            return st["wfid"]
        if name == "expid":
            return self.node_id
        if name == "subid":
            return self.eid or ""
        if name == "wf_name":
            return st["name"]
        if name == "wf_revision":
            return st.get("revision") or ""
        if name == "engine_id":
            return ENGINE_ID
        return MISSING


# ---------------------------------------------------------------------------


class Interpreter:
    """Applies messages to one run's state. Create one per message (cheap)."""

    def __init__(
        self,
        definition: Definition,
        state: dict[str, Any],
        *,
        now: float,
        registrations: Sequence[Registration] = (),
        dispatch_lease: float = 0.0,
    ) -> None:
        self.d = definition
        #: seconds after a dispatch without a reply or a ``started`` notice
        #: before the workitem is dispatched again (0: never): a delivery
        #: the broker lost (kombu's Redis transport pops a message before
        #: the consumer has it) is not waited on for ever
        self.dispatch_lease = dispatch_lease
        self.state = state
        self.exprs: dict[str, dict[str, Any]] = state["exprs"]
        self.now = now
        self.regs = (
            registrations
            if isinstance(registrations, Registrations)
            else Registrations(registrations)
        )
        self.effects: list[Effect] = []
        self.work: deque[list[Any]] = deque(state.pop("pending", None) or ())
        self.ops = 0
        #: steps that finished while handling this message: the PRECURSORs
        #: of the steps this message triggers (traceability)
        self.finished_now: list[str] = []
        #: per concurrence applied while handling this message, how many of
        #: ``finished_now`` were there before it (they led to it, not to
        #: what follows its join): see ``_child_concurrence``
        self._finished_before: dict[str, int] = {}

    # -- node lookup (virtual nodes for bodies and handlers) ---------------

    def node(self, node_id: str) -> Node:
        return self.d.node(node_id)

    # -- entry points -------------------------------------------------------

    def launch(self, fields: dict[str, Any], variables: dict[str, Any] | None) -> None:
        st = self.state
        st["lc"] = "new"
        self._record_run("trigger", data={"cause": st["cause"]} if st.get("cause") else None)
        self._record_run("start")
        root_vars = {**self.d.variables, **(variables or {})}
        self._push_apply("0", None, fields, {"v": root_vars, "vk": "process", "root": True})
        self._run()

    def handle(self, msg: dict[str, Any]) -> str | None:
        """Apply one message; returns a reason when it was ignored. The run
        controls (``_CONTROLS``: pause, resume, kill) act at once; a paused
        run holds any other message except those in ``_NOT_HELD``."""
        st = self.state
        kind = msg.get("type")
        if st["status"] in states.ENDED_RUN_STATES:
            return self._ignore(f"run {st['wfid']} is {st['status']}: {kind} ignored")
        control = _CONTROLS.get(kind)
        if control is not None:
            return control(self, msg)
        if st.get("paused") and kind not in _NOT_HELD:
            st.setdefault("held", []).append(msg)
            self._update_status()
            return None
        reason = self._handle_one(msg)
        self._run()
        return reason

    def _handle_one(self, msg: dict[str, Any]) -> str | None:
        kind = msg.get("type")
        on = _ON_MESSAGE.get(kind)
        if on is None:
            return self._ignore(f"unknown message type {kind!r}")
        return on(self, msg)

    # -- run controls -----------------------------------------------------------

    def _on_pause(self, msg: dict[str, Any]) -> str | None:
        self.state["paused"] = True
        self._update_status()
        return None

    def _on_resume(self, msg: dict[str, Any]) -> str | None:
        st = self.state
        if not st.get("paused"):
            return self._ignore("resume of a run that is not paused")
        st["paused"] = False
        held = st.pop("held", None) or []
        for m in held:  # in the order they came, each carried through
            reason = self._handle_one(m)
            if reason:
                self._log("info", reason)
            self._run()
        self._run()  # nothing held: still brings the status back
        return None

    def _on_kill(self, msg: dict[str, Any]) -> str | None:
        self._kill()
        return None

    def _on_continue(self, msg: dict[str, Any]) -> str | None:
        return None  # the saved work runs after the handler (``handle``)

    # -- the work loop --------------------------------------------------------

    def _push_apply(
        self, node_id: str, parent: str | None, fields: dict, extra: dict | None
    ) -> None:
        self.work.append(["apply", node_id, parent, fields, extra])

    def _run(self) -> None:
        work = self.work
        while work:
            if self.ops >= OPERATION_BUDGET:
                self.state["pending"] = list(work)
                work.clear()
                self.effects.append(Continue(self.state["wfid"]))
                break
            self.ops += 1
            item = work.popleft()
            op = item[0]
            if op == "apply":
                self._apply(item[1], item[2], item[3], item[4])
            elif op == "notify":
                self._child_replied(item[1], item[2], item[3], item[4])
            elif op == "reply":
                self._reply(item[1], item[2])
        self._update_status()

    def _update_status(self) -> None:
        st = self.state
        if st["status"] in states.ENDED_RUN_STATES:
            return
        if st.get("paused"):
            st["status"] = states.PAUSED
        elif st["errors"]:
            st["status"] = states.ERROR
        else:
            st["status"] = states.RUNNING
        st["updated_at"] = self.now

    # -- records, logs --------------------------------------------------------

    def _ignore(self, reason: str) -> str:
        self._log("info", reason)
        return reason

    def _log(self, level: str, message: str) -> None:
        self.effects.append(Log(level, message))

    def _record_run(
        self, trigger: str, outcome: str | None = None, data: dict | None = None
    ) -> None:
        st = self.state
        st["lc"] = lifecycle.advance(st["lc"], trigger)
        self.effects.append(
            Record(
                "run",
                st["wfid"],
                None,
                st["name"],
                lifecycle.EVENT_OF[trigger],
                self.now,
                outcome,
                data or {},
            )
        )

    def _record_step(
        self,
        eid: str,
        e: dict,
        trigger: str,
        outcome: str | None = None,
        data: dict | None = None,
        at: float | None = None,
    ) -> None:
        cur = e.get("lc", "new")
        nxt = lifecycle.TABLE.get((trigger, cur))
        if nxt is None:
            return
        e["lc"] = nxt
        if trigger == "cancel" and cur == "started":
            event, outcome = "finished", states.ABORTED
        else:
            event = lifecycle.EVENT_OF[trigger]
        name = e.get("pn")
        if name is None:
            name = self.node(e["n"]).name
        data = data if data is not None else {}
        if trigger == "trigger":
            # what traceability links the step's activity to: the steps whose
            # end led to it, and the first attempt of a step done again
            if self.finished_now:
                data["precursors"] = list(self.finished_now)
            if "o" in e:
                data["original"] = e["o"]
        elif event == "finished":
            self.finished_now.append(eid)
        self.effects.append(
            Record(
                "step",
                self.state["wfid"],
                eid,
                name,
                event,
                self.now if at is None else at,
                outcome,
                data,
            )
        )

    # -- scopes ---------------------------------------------------------------

    def _scope_with(self, eid: str | None, name: str) -> dict | None:
        """The nearest enclosing variables dict holding ``name``."""
        exprs = self.exprs
        while eid is not None:
            e = exprs.get(eid)
            if e is None:
                break
            v = e.get("v")
            if v is not None and name in v:
                return v
            eid = e["p"]
        return None

    def _write_scope(self, eid: str | None, name: str) -> dict | None:
        """Where ``set v:name`` writes: an iterator scope that holds the name
        (its ``to``/``ii``), else the nearest process or subprocess scope,
        which then shadows any caller's variable of that name."""
        exprs = self.exprs
        while eid is not None:
            e = exprs.get(eid)
            if e is None:
                break
            v = e.get("v")
            if v is not None and (name in v or e.get("vk") in ("process", "sub")):
                return v
            eid = e["p"]
        return None

    def _detach_scope(self, e: dict, parent: str) -> None:
        """A detached branch outlives its parents: give it a copy of the
        variables it could see (nearest scope wins), as ruote does."""
        chain = []
        cur: str | None = parent
        while cur is not None:
            ce = self.exprs.get(cur)
            if ce is None:
                break
            if ce.get("v") is not None:
                chain.append(ce["v"])
            cur = ce["p"]
        seen: dict[str, Any] = {}
        for v in reversed(chain):
            seen.update(v)
        e["v"] = {**seen, **(e.get("v") or {})}
        if e.get("vk") not in ("process", "sub"):
            e["vk"] = "sub"

    def scope(self, eid: str | None, fields: dict, node_id: str) -> _Scope:
        return _Scope(self, eid, fields, node_id)

    # -- apply ------------------------------------------------------------------

    def _new_eid(self, node_id: str) -> str:
        st = self.state
        st["seq"] += 1
        return f"{node_id}-{st['seq']}"

    def _apply(self, node_id: str, parent: str | None, fields: dict, extra: dict | None) -> None:
        exprs = self.exprs
        if parent is not None and parent not in exprs:
            return  # the parent went away (cancelled) before this child was applied
        node = self.node(node_id)
        eid = self._new_eid(node_id)
        e: dict[str, Any] = {"n": node_id, "p": parent, "s": states.ACTIVE, "w": fields}
        root = detach = False
        if extra:
            root = extra.pop("root", False)
            detach = extra.pop("detach", False)  # replaces a detached branch
            e.update(extra)
        exprs[eid] = e
        if root:
            self.state["root"] = eid
        elif detach:
            self.state["detached"].append(eid)
        if parent is not None:
            pe = exprs[parent]
            kids = pe.get("k")
            if kids is None:
                pe["k"] = [eid]
            else:
                kids.append(eid)
        attrs = node.attrs
        if attrs:
            sc = None
            cond = attrs.get("if")
            if cond is not None:
                sc = self.scope(eid, fields, node_id)
                if not cond.evaluate(sc):
                    self._reply(eid, fields, skipped=True)
                    return
            cond = attrs.get("unless")
            if cond is not None:
                sc = sc or self.scope(eid, fields, node_id)
                if cond.evaluate(sc):
                    self._reply(eid, fields, skipped=True)
                    return
            if attrs.get("flank") and parent is not None:
                # ruote's flank: the parent goes on at once; the step stays
                # its child (scope, cancel) and is cancelled when it replies
                e["fk"] = 1
                self._notify_parent(parent, e.get("sl"), node_id, fields)
            elif attrs.get("forget") and parent is not None:
                # detach: the parent goes on at once, the step runs alone
                pe = exprs[parent]
                pe["k"].remove(eid)
                e["p"] = None
                self._detach_scope(e, parent)
                slot = e.get("sl")
                self.state["detached"].append(eid)
                self._notify_parent(parent, slot, node_id, fields)
            timeout = attrs.get("timeout")
            if timeout is not None:
                try:
                    if isinstance(timeout, str):
                        timeout = parse_duration(
                            substitute(timeout, self.scope(eid, fields, node_id))
                        )
                except DurationError as exc:
                    self._fail(eid, RunError(str(exc), "DurationError"))
                    return
                tid = f"{self.state['wfid']}:{eid}:timeout"
                e["t"] = tid
                e["to"] = timeout
                self.effects.append(
                    ScheduleTimer(
                        tid,
                        self.now + float(timeout),
                        messages.timer(self.state["wfid"], eid, "timeout"),
                    )
                )
        try:
            _APPLY[node.kind](self, eid, e, node)
        except RunError as exc:
            if eid in exprs:
                self._fail(eid, exc)

    # --- per kind

    def _apply_sequence(self, eid: str, e: dict, node: Node) -> None:
        if not node.children:
            self._reply(eid, e["w"])
            return
        e["i"] = 0
        self._push_apply(node.children[0].id, eid, e["w"], None)

    def _apply_if(self, eid: str, e: dict, node: Node) -> None:
        ok = node.opts["test"].evaluate(self.scope(eid, e["w"], node.id))
        if ok:
            self._push_apply(node.children[0].id, eid, e["w"], None)
        elif len(node.children) > 1:
            self._push_apply(node.children[1].id, eid, e["w"], None)
        else:
            self._reply(eid, e["w"])

    def _apply_concurrence(self, eid: str, e: dict, node: Node) -> None:
        branches = node.children
        if not branches:
            self._reply(eid, e["w"])
            return
        e["r"] = []  # [slot, order, fields]
        e["b"] = len(branches)
        self._finished_before[eid] = len(self.finished_now)
        for slot, child in enumerate(branches):
            self._push_apply(child.id, eid, e["w"], {"sl": slot})

    def _iteration_items(self, eid: str, e: dict, node: Node) -> list[Any]:
        on = node.opts.get("on")
        sc = self.scope(eid, e["w"], node.id)
        value = substitute(on, sc) if isinstance(on, (str, list)) else on
        if isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()] if value.strip() else []
        elif value is None or value is MISSING:
            value = []
        elif isinstance(value, dict):
            value = list(value.keys())
        elif not isinstance(value, list):
            value = [value]
        return value

    def _apply_iterator(self, eid: str, e: dict, node: Node) -> None:
        items = self._iteration_items(eid, e, node)
        e["items"] = items
        e["ii"] = 0
        self._iterate(eid, e, node, e["w"])

    def _iterate(self, eid: str, e: dict, node: Node, fields: dict) -> None:
        items = e["items"]
        ii = e["ii"]
        if ii < 0:
            ii = e["ii"] = 0
        if ii >= len(items) or not node.children:
            self._reply(eid, fields)
            return
        to_field = node.opts.get("to_field")
        if to_field:
            fields = _set_path(fields, to_field, items[ii])
            scope: dict[str, Any] = {"ii": ii}
        else:
            scope = {node.opts.get("to") or "i": items[ii], "ii": ii}
        self._push_apply(f"{node.id}#body", eid, fields, {"v": scope, "vk": "iter"})

    def _apply_concurrent_iterator(self, eid: str, e: dict, node: Node) -> None:
        items = self._iteration_items(eid, e, node)
        if not items or not node.children:
            self._reply(eid, e["w"])
            return
        e["r"] = []
        e["b"] = len(items)
        self._finished_before[eid] = len(self.finished_now)
        to = node.opts.get("to") or "i"
        to_field = node.opts.get("to_field")
        for slot, item in enumerate(items):
            if to_field:
                fields, scope = _set_path(e["w"], to_field, item), {"ii": slot}
            else:
                fields, scope = e["w"], {to: item, "ii": slot}
            self._push_apply(f"{node.id}#body", eid, fields, {"sl": slot, "v": scope, "vk": "iter"})

    def _apply_participant(self, eid: str, e: dict, node: Node) -> None:
        sc = self.scope(eid, e["w"], node.id)
        ref = node.opts["ref"]
        name = substitute(ref, sc) if "$" in ref else ref
        if not isinstance(name, str) or not name:
            raise RunError(f"participant name {ref!r} is empty after substitution")
        if name in self.d.subprocesses and name != ref:
            # a dynamic participant name that names a subprocess runs it
            self._start_subprocess(eid, e, name, node.opts.get("params") or {}, sc)
            return
        params = node.opts.get("params")
        params = substitute_node_value(params, sc) if params else {}
        self._dispatch(eid, e, name, params, forget=bool(params.get("forget")))

    def _dispatch(self, eid: str, e: dict, name: str, params: dict, forget: bool = False) -> None:
        reg = self.regs.match(name)
        e["pn"] = name
        if reg is None:
            raise RunError(f"no participant registered for '{name}'", "UnknownParticipant")
        st = self.state
        fields = dict(e["w"])
        fields["params"] = params
        workitem = {
            "fei": {"wfid": st["wfid"], "expid": e["n"], "subid": eid, "engine_id": ENGINE_ID},
            "fields": fields,
            "participant_name": name,
            "wf_name": st["name"],
            "wf_revision": st.get("revision"),
            "dispatched_at": iso(self.now),
        }
        if forget:
            workitem["forget"] = True
        e["s"] = states.WAITING
        e["q"] = reg.queue
        e["at"] = self.now
        self._record_step(eid, e, "trigger", data={"participant": name, "queue": reg.queue})
        self.effects.append(Dispatch(name, reg.queue, workitem, forget))
        if self.dispatch_lease > 0 and not forget:
            tid = f"{st['wfid']}:{eid}:lease"
            e["ls"] = tid
            self.effects.append(
                ScheduleTimer(
                    tid,
                    self.now + self.dispatch_lease,
                    messages.lease_timer(
                        st["wfid"],
                        eid,
                        lease=self.dispatch_lease,
                        instance=None,
                        workitem=workitem,
                    ),
                )
            )
        if forget:
            self._record_step(eid, e, "finish", states.SUCCESSFUL)
            self._reply(eid, e["w"])

    def _apply_subprocess(self, eid: str, e: dict, node: Node) -> None:
        sc = self.scope(eid, e["w"], node.id)
        ref = node.opts["ref"]
        name = substitute(ref, sc) if node.dynamic else ref
        self._start_subprocess(eid, e, name, node.opts.get("vars") or {}, sc)

    def _start_subprocess(self, eid: str, e: dict, name: Any, variables: dict, sc: _Scope) -> None:
        if not isinstance(name, str) or name not in self.d.subprocesses:
            raise RunError(f"unknown subprocess {name!r}", "UnknownSubprocess")
        own = substitute(variables, sc) if variables else {}
        if e.get("vk") == "process":
            # a process-level handler replacing the root: it keeps the
            # process variables (there is no caller scope above it)
            e["v"] = {**e["v"], **own}
        else:
            e["v"] = own
            e["vk"] = "sub"
        e["pn"] = name
        self._record_step(eid, e, "trigger", data={"subprocess": name})
        self._record_step(eid, e, "start")
        self._push_apply(f"{name}/0", eid, e["w"], None)

    def _apply_set(self, eid: str, e: dict, node: Node) -> None:
        sc = self.scope(eid, e["w"], node.id)
        fields = e["w"]
        for key, value in node.opts["values"].items():
            key = substitute(key, sc) if "$" in key else key
            fields = self._assign(e, sc, fields, key, substitute(value, sc))
        self._reply(eid, fields)

    def _assign(self, e: dict, sc: _Scope, fields: dict, key: str, value: Any) -> dict:
        """``set`` one field (``f:x``, ``x``, dotted) or variable (``v:x``);
        returns the fields (a copy when a field changed)."""
        if key.startswith("v:"):
            name, _, rest = key[2:].partition(".")
            scope = self._write_scope(e["p"], name)
            if scope is None:
                return fields
            if rest:
                base = scope.get(name)
                scope[name] = _set_path(base if isinstance(base, dict) else {}, rest, value)
            else:
                scope[name] = value
            return fields
        if key.startswith("f:"):
            key = key[2:]
        fields = _set_path(fields, key, value)
        sc.fields = fields
        return fields

    def _apply_inc(self, eid: str, e: dict, node: Node) -> None:
        """``inc`` adds to a number and appends to a list (a missing target
        becomes the number, or a one-item list); ``push`` always appends."""
        sc = self.scope(eid, e["w"], node.id)
        fields = e["w"]
        push = node.kind == "push"
        for key, value in node.opts["values"].items():
            key = substitute(key, sc) if "$" in key else key
            value = substitute(value, sc)
            if key.startswith("v:"):
                current = sc.variable(key[2:])
            else:
                current = sc.field(key[2:] if key.startswith("f:") else key)
                current = MISSING if current is None else current
            if isinstance(current, list):
                new: Any = [*current, value]
            elif current is MISSING:
                new = [value] if push or not _is_number(value) else value
            elif push:
                new = [current, value]
            elif _is_number(current) and _is_number(value):
                new = current + value
            else:
                raise RunError(
                    f"inc {key}: cannot add {value!r} to {current!r} "
                    "(inc adds numbers or appends to a list)",
                    "TypeError",
                )
            fields = self._assign(e, sc, fields, key, new)
        self._reply(eid, fields)

    def _apply_apply(self, eid: str, e: dict, node: Node) -> None:
        """Run the block given to the nearest enclosing subprocess call
        (ruote's block parameters: ``with_ticket: {steps: [...]}``)."""
        cur = e["p"]
        inside = 0  # blocks we are in: their code belongs to the caller's caller
        while cur is not None:
            ce = self.exprs.get(cur)
            if ce is None:
                break
            if self.node(ce["n"]).kind == "apply":
                inside += 1
            elif ce.get("vk") == "sub" and "pn" in ce:
                if inside:
                    inside -= 1
                else:
                    call = self.node(ce["n"])
                    if call.children:
                        self._push_apply(f"{call.id}#body", eid, e["w"], None)
                        return
                    break
            cur = ce["p"]
        self._reply(eid, e["w"])

    def _apply_unset(self, eid: str, e: dict, node: Node) -> None:
        sc = self.scope(eid, e["w"], node.id)
        fields = e["w"]
        for key in node.opts["names"]:
            key = substitute(key, sc) if "$" in key else key
            if key.startswith("v:"):
                name, _, rest = key[2:].partition(".")
                scope = self._write_scope(e["p"], name)  # where `set` would write
                if scope is not None and name in scope:
                    if rest:
                        if isinstance(scope[name], dict):
                            scope[name] = _del_path(scope[name], rest)
                    else:
                        del scope[name]
            else:
                if key.startswith("f:"):
                    key = key[2:]
                fields = _del_path(fields, key)
        self._reply(eid, fields)

    def _apply_echo(self, eid: str, e: dict, node: Node) -> None:
        text = substitute(node.opts.get("text", ""), self.scope(eid, e["w"], node.id))
        self.effects.append(Echo(str(text)))
        self._reply(eid, e["w"])

    def _apply_noop(self, eid: str, e: dict, node: Node) -> None:
        self._reply(eid, e["w"])

    def _apply_error(self, eid: str, e: dict, node: Node) -> None:
        msg = substitute(node.opts.get("message", "error"), self.scope(eid, e["w"], node.id))
        raise RunError(str(msg), "ProcessError")

    def _apply_wait(self, eid: str, e: dict, node: Node) -> None:
        sc = self.scope(eid, e["w"], node.id)
        try:
            if node.opts.get("until") is not None:
                due = parse_time(str(substitute(node.opts["until"], sc)))
            else:
                dur = node.opts.get("for")
                dur = substitute(dur, sc) if isinstance(dur, str) else dur
                due = self.now + parse_duration(dur if dur is not None else 0)
        except DurationError as exc:
            raise RunError(str(exc), "DurationError") from None
        if due <= self.now:
            self._reply(eid, e["w"])
            return
        tid = f"{self.state['wfid']}:{eid}:wait"
        e["s"] = states.WAITING
        e["wt"] = tid
        self.effects.append(
            ScheduleTimer(tid, due, messages.timer(self.state["wfid"], eid, "wait"))
        )

    def _apply_listen(self, eid: str, e: dict, node: Node) -> None:
        o = node.opts
        if o.get("errors"):
            # this run's uncaught errors wake it (``_wake_error_listeners``)
            e["s"] = states.WAITING
            e["le"] = 1
            return
        sc = self.scope(eid, e["w"], node.id)
        to = substitute(o["to"], sc)
        where = o.get("where")
        spec = {
            "wfid": self.state["wfid"],
            "eid": eid,
            "to": str(to),
            "upon": o.get("upon", "apply"),
            "where": where.source if where is not None else None,
            "merge": o.get("merge", True),
            "only_wfid": o.get("wfid", False),
        }
        e["s"] = states.WAITING
        e["li"] = f"{self.state['wfid']}:{eid}"
        self.effects.append(AddListener(e["li"], spec))

    def _apply_reserve(self, eid: str, e: dict, node: Node) -> None:
        name = str(substitute(node.opts["mutex"], self.scope(eid, e["w"], node.id)))
        e["mx"] = name
        e["s"] = states.WAITING
        self.effects.append(AcquireMutex(name, f"{self.state['wfid']}/{eid}"))

    def _apply_cancel_process(self, eid: str, e: dict, node: Node) -> None:
        self._remove(eid)
        self._cancel_run(states.CANCELLED)

    def _apply_cancel(self, eid: str, e: dict, node: Node) -> None:
        tag = str(substitute(node.opts["tag"], self.scope(eid, e["w"], node.id)))
        targets = [
            x
            for x, xe in list(self.exprs.items())
            if x != eid and self.node(xe["n"]).tag == tag and xe["s"] != states.CANCELLING
        ]
        for x in targets:
            if x in self.exprs:
                self._abort(x, ["reply"])
        self._reply(eid, e["w"])

    def _apply_command(self, eid: str, e: dict, node: Node) -> None:
        cmd = node.kind
        o = node.opts
        sc = self.scope(eid, e["w"], node.id)
        if cmd in ("skip", "back"):
            cmd = f"{cmd} {substitute(o.get('count', 1), sc)}"
        elif cmd == "jump":
            cmd = f"jump {substitute(o['to'], sc)}"
        parent, slot = e["p"], e.get("sl")
        self._remove(eid)
        self._command(parent, eid, cmd, e["w"], slot, node.id)

    # -- replies ----------------------------------------------------------------

    def _remove(self, eid: str) -> dict | None:
        e = self.exprs.pop(eid, None)
        if e is None:
            return None
        p = e["p"]
        if p is not None:
            pe = self.exprs.get(p)
            if pe is not None and "k" in pe:
                kids = pe["k"]
                if eid in kids:
                    kids.remove(eid)
        elif eid in self.state["detached"]:
            self.state["detached"].remove(eid)
        for key in ("t", "wt", "ls"):
            tid = e.get(key)
            if tid:
                self.effects.append(CancelTimer(tid))
        if e["s"] == states.FAILED:
            self.state["errors"] = [x for x in self.state["errors"] if x["eid"] != eid]
        return e

    def _reply(self, eid: str, fields: dict, skipped: bool = False) -> None:
        """Expression ``eid`` is done with ``fields``: remove it and tell
        its parent."""
        live = self.exprs.get(eid)
        if live is not None and live.get("k"):
            self._unflank(eid, live)
        e = self._remove(eid)
        if e is None:
            return
        if "fk" in e and self._flank_ends_alone(e):
            return
        if "lc" in e:
            self._record_step(eid, e, "finish", _outcome(fields))
        if e.get("mx") and e.get("held"):
            self.effects.append(ReleaseMutex(e["mx"], f"{self.state['wfid']}/{eid}"))
        if "__command__" in fields and not skipped:
            fields = dict(fields)
            cmd = fields.pop("__command__")
            if cmd:
                self._command(e["p"], eid, str(cmd), fields, e.get("sl"), e["n"])
                return
        self._notify_parent(e["p"], e.get("sl"), e["n"], fields, eid)

    def _unflank(self, eid: str, e: dict) -> None:
        """``eid`` replies: cancel the steps flanking it (they go on
        detached until their cancel is done)."""
        for k in [k for k in e["k"] if "fk" in self.exprs.get(k, ())]:
            ke = self.exprs[k]
            e["k"].remove(k)
            ke["p"] = None
            del ke["fk"]
            self._detach_scope(ke, eid)
            self.state["detached"].append(k)
            self._abort(k, ["drop"])

    def _flank_ends_alone(self, e: dict) -> bool:
        """A flanking step that ends (or is cancelled) while its parent
        goes on: the parent already had its reply, so it hears nothing."""
        pe = self.exprs.get(e["p"]) if e["p"] is not None else None
        return pe is not None and pe["s"] != states.CANCELLING

    def _notify_parent(
        self,
        parent: str | None,
        slot: int | None,
        node_id: str,
        fields: dict,
        child: str | None = None,
    ) -> None:
        if parent is None:
            if child is not None and child == self.state.get("root"):
                self._root_done(fields)
            else:
                self._check_end()
            return
        pe = self.exprs.get(parent)
        if pe is None:
            return
        if pe["s"] == states.CANCELLING:
            # as ruote, a cancelled container replies with the workitem its
            # last cancelled child replied with (what the branch had done)
            pe["cw"] = fields
            if pe.get("rw") is not None and slot is not None:  # remaining: wait
                pe["rw"].append([slot, len(pe["r"]) + len(pe["rw"]), fields])
                self._branch_ended(parent, pe)
            if not pe.get("k"):
                self._finish_abort(parent)
            return
        # next in line (so the order is that of a direct call) but through
        # the work loop, so that a reply climbing a deep tree does not
        # recurse once per level
        self.work.appendleft(["notify", parent, slot, node_id, fields])

    def _child_replied(self, parent: str, slot: int | None, node_id: str, fields: dict) -> None:
        pe = self.exprs.get(parent)
        if pe is None:
            return
        if pe["s"] == states.CANCELLING:
            self._notify_parent(parent, slot, node_id, fields)
            return
        pnode = self.node(pe["n"])
        _ON_CHILD[pnode.kind](self, parent, pe, pnode, slot, node_id, fields)

    # --- per kind (a child replied)

    def _child_sequence(self, eid, e, node, slot, child_node, fields) -> None:
        i = e["i"] + 1
        if i < len(node.children):
            e["i"] = i
            self._push_apply(node.children[i].id, eid, fields, None)
        else:
            self._reply(eid, fields)

    def _child_passthrough(self, eid, e, node, slot, child_node, fields) -> None:
        self._reply(eid, fields)

    def _child_cursor(self, eid, e, node, slot, child_node, fields) -> None:
        cmd = e.pop("cmd", None)
        if cmd is not None:
            self._cursor_command(eid, e, node, cmd[0], cmd[1])
            return
        o = node.opts
        if (
            o.get("break_if")
            or o.get("break_unless")
            or o.get("rewind_if")
            or o.get("rewind_unless")
        ):
            sc = self.scope(eid, fields, node.id)
            c = o.get("break_if")
            if c is not None and c.evaluate(sc):
                self._reply(eid, fields)
                return
            c = o.get("break_unless")
            if c is not None and not c.evaluate(sc):
                self._reply(eid, fields)
                return
            c = o.get("rewind_if")
            if (c is not None and c.evaluate(sc)) or (
                o.get("rewind_unless") is not None and not o["rewind_unless"].evaluate(sc)
            ):
                self._cursor_goto(eid, e, node, 0, fields)
                return
        self._cursor_goto(eid, e, node, e["i"] + 1, fields)

    def _cursor_goto(self, eid: str, e: dict, node: Node, i: int, fields: dict) -> None:
        n = len(node.children)
        if i >= n:
            if node.kind == "loop" and n:
                i = 0
            else:
                self._reply(eid, fields)
                return
        e["i"] = max(i, 0)
        self._push_apply(node.children[e["i"]].id, eid, fields, None)

    def _child_iterator(self, eid, e, node, slot, child_node, fields) -> None:
        cmd = e.pop("cmd", None)
        if cmd is not None:
            self._cursor_command(eid, e, node, cmd[0], cmd[1])
            return
        e["ii"] += 1
        self._iterate(eid, e, node, fields)

    def _branch_ended(self, eid: str, e: dict) -> None:
        """A branch of concurrence ``eid`` ended: the steps whose end ended
        it (those finished in this message since the concurrence began) are
        kept in ``pf``, to be PRECURSORs of what follows the join with the
        steps that end the other branches (``_joined``)."""
        ended = self.finished_now[self._finished_before.get(eid, 0) :]
        if ended:
            pf = e.setdefault("pf", [])
            pf.extend(x for x in ended if x not in pf)

    def _joined(self, e: dict) -> None:
        """Concurrence ``e`` replies: what follows it was led to by the end
        of every branch that ended it, not only the last one."""
        pf = e.pop("pf", None)
        if pf:
            self.finished_now = [*pf, *(x for x in self.finished_now if x not in pf)]

    def _child_concurrence(self, eid, e, node, slot, child_node, fields) -> None:
        self._branch_ended(eid, e)
        replies = e["r"]
        replies.append([slot, len(replies), fields])
        o = node.opts
        over = False
        sc = None
        if o.get("over_if") is not None:
            sc = self.scope(eid, fields, node.id)
            over = o["over_if"].evaluate(sc)
        if not over and o.get("over_unless") is not None:
            sc = sc or self.scope(eid, fields, node.id)
            over = not o["over_unless"].evaluate(sc)
        total = e["b"]
        if not over:
            count = o.get("count")
            wait_for = o.get("wait_for")
            if wait_for:
                got = {
                    node.children[s].tag
                    for s, _, _ in replies
                    if s is not None and s < len(node.children)
                }
                over = all(t in got for t in wait_for)
            elif count is not None:
                need = count if count > 0 else total + count
                over = len(replies) >= max(need, 0)
            else:
                over = len(replies) >= total
        if not over and len(replies) >= total:
            over = True
        if over:
            self._concurrence_over(eid, e, node)

    def _concurrence_over(self, eid: str, e: dict, node: Node) -> None:
        remaining = node.opts.get("remaining", "cancel")
        kids = list(e.get("k") or ())
        if kids and remaining == "wait":
            e["s"] = states.CANCELLING
            e["rw"] = []
            e["then"] = ["merge"]
            for k in kids:
                self._abort(k, ["reply"])
            return
        for k in kids:
            ke = self.exprs.get(k)
            if ke is None:
                continue
            e["k"].remove(k)
            ke["p"] = None
            self._detach_scope(ke, eid)
            self.state["detached"].append(k)
            if remaining != "forget":
                self._abort(k, ["drop"])
        self._joined(e)
        self._reply(eid, self._merged(e, node, e["r"]))

    def _merged(self, e: dict, node: Node, replies: list) -> dict:
        o = node.opts
        return merge.merge_fields(
            [(r[0], r[1], r[2]) for r in replies],
            o.get("merge", "first"),
            o.get("merge_type", "override"),
            e["w"],
        )

    # -- cursor commands -------------------------------------------------------

    def _command(
        self,
        parent: str | None,
        child: str,
        cmd: str,
        fields: dict,
        slot: int | None,
        child_node: str,
    ) -> None:
        """``child`` (already removed) gives ``cmd``: find the nearest
        enclosing cursor, loop or iterator and make it obey."""
        k_eid, k_done = child, True
        cur = parent
        while cur is not None:
            ce = self.exprs.get(cur)
            if ce is None:
                break
            cnode = self.node(ce["n"])
            if cnode.kind in _CURSORS:
                if k_done:
                    self._cursor_command(cur, ce, cnode, cmd, fields)
                else:
                    ce["cmd"] = [cmd, fields]
                    self._abort(k_eid, ["reply"], "internal")
                return
            k_eid, k_done = cur, False
            cur = ce["p"]
        self._log("warning", f"cursor command {cmd!r} outside a cursor, ignored")
        self._notify_parent(parent, slot, child_node, fields, child)

    def _cursor_command(self, eid: str, e: dict, node: Node, cmd: str, fields: dict) -> None:
        verb, _, arg = cmd.strip().partition(" ")
        arg = arg.strip()
        if verb == "jump" and arg.startswith("to "):
            arg = arg[3:].strip()  # ruote's "jump to publish"
        if verb not in CURSOR_COMMANDS:
            self._fail(eid, RunError(f"unknown cursor command {cmd!r}", "CommandError"))
            return
        iterator = node.kind == "iterator"
        pos = e["ii"] if iterator else e.get("i", 0)
        try:
            n = int(arg) if arg else 1
        except ValueError:
            n = None
        if verb == "break":
            self._reply(eid, fields)
            return
        if verb in ("rewind", "reset"):
            target = 0
            if verb == "reset":
                fields = e["w"]
        elif verb == "skip":
            if n is None:
                self._fail(eid, RunError(f"skip needs a count, got {arg!r}", "CommandError"))
                return
            target = pos + n + 1
        elif verb == "back":
            if n is None:
                self._fail(eid, RunError(f"back needs a count, got {arg!r}", "CommandError"))
                return
            target = max(pos - n, 0)
        else:  # jump
            target = self._jump_target(node, arg, iterator, e)
            if target is None:
                self._fail(
                    eid,
                    RunError(
                        f"jump target {arg!r} not found in {node.kind} {node.id}", "CommandError"
                    ),
                )
                return
        if iterator:
            e["ii"] = target
            self._iterate(eid, e, node, fields)
        else:
            self._cursor_goto(eid, e, node, target, fields)

    def _jump_target(self, node: Node, arg: str, iterator: bool, e: dict) -> int | None:
        if iterator:
            try:
                return int(arg)
            except ValueError:
                items = e.get("items") or []
                return items.index(arg) if arg in items else None
        for idx, child in enumerate(node.children):
            if child.tag == arg or child.name == arg:
                return idx
        if arg.lstrip("-").isdigit():
            return int(arg)
        return None

    # -- messages ---------------------------------------------------------------

    def _not_waiting(self, eid: Any, e: dict | None) -> str:
        """Why step ``eid`` of this run takes no reply (``e``: its live
        expression, if any): it never existed, it ended, or it is not a
        step waiting on a participant."""
        wfid = self.state["wfid"]
        if e is None:
            if not self._issued(eid):
                return f"run {wfid} has no step with subid {eid!r} (it never had one)"
            return f"step {eid} of run {wfid} is no longer waiting (it has ended)"
        if "q" not in e:
            kind = self.node(e["n"]).kind
            return f"{eid} in run {wfid} is not a participant step (it is a {kind})"
        return f"step {eid} of run {wfid} is no longer waiting (it is {e['s']})"

    def _issued(self, eid: Any) -> bool:
        """Whether ``eid`` is a subid this run ever gave a step
        (``_new_eid``: ``<node id>-<seq>``, seq at most the run's counter)."""
        if not isinstance(eid, str):
            return False
        node_id, sep, n = eid.rpartition("-")
        if not sep or not n.isdigit() or not 0 < int(n) <= self.state.get("seq", 0):
            return False
        try:
            self.node(node_id)
        except (KeyError, ValueError, IndexError):
            return False
        return True

    def _on_reply(self, msg: dict) -> str | None:
        wi = msg.get("workitem") or {}
        fei = wi.get("fei") or {}
        eid = fei.get("subid")
        e = self.exprs.get(eid) if isinstance(eid, str) else None
        if e is None or e["s"] != states.WAITING or "q" not in e:
            return self._ignore(
                f"reply for {fei.get('expid')}/{eid} ignored: {self._not_waiting(eid, e)}"
            )
        fields = wi.get("fields")
        if not isinstance(fields, dict):
            fields = dict(e["w"])
        else:
            fields = dict(fields)
        fields.pop("params", None)
        cmd = wi.get("command")
        if cmd:
            fields["__command__"] = cmd
        if e.get("lc") == "triggered":
            # a step answered without a started notice (no lease taken: most
            # steps) started when its reply says, kept between its dispatch
            # and now (the participant's clock may be off)
            started = _epoch(wi.get("started_at"))
            if started is not None:
                self._record_step(
                    eid,
                    e,
                    "start",
                    data={"instance": wi["instance"]} if wi.get("instance") else None,
                    at=min(max(started, e.get("at", started)), self.now),
                )
        if "result" in wi and "__result__" not in fields:
            fields["__result__"] = wi["result"]
        err = wi.get("error")
        if err:
            if not isinstance(err, dict):
                err = {"message": str(err)}
            exc = RunError(
                str(err.get("message", "participant error")),
                str(err.get("class", "ParticipantError")),
            )
            e["s"] = states.ACTIVE  # it answered: no cancel notice is owed to it
            self._record_step(eid, e, "finish", states.FAILED_OUTCOME)
            self._fail(eid, exc, fields=fields, traceback=err.get("traceback"))
            return None
        self.effects.append(ReplyApplied(wi))
        self._reply(eid, fields)
        return None

    def _on_started(self, msg: dict) -> str | None:
        """A participant took the step. With a ``lease`` (seconds) it has
        acknowledged the delivery and sends heartbeats: a lease timer, pushed
        forward by each heartbeat, dispatches the workitem again if the
        heartbeats stop (see docs/wire-protocol.md, *Leases*)."""
        eid = msg.get("eid")
        e = self.exprs.get(eid) if isinstance(eid, str) else None
        if e is None or "q" not in e or e["s"] != states.WAITING:
            return self._ignore(f"started for {eid} ignored: not a waiting step")
        if e.get("lc") == "triggered":
            self._record_step(
                eid, e, "start", data={"instance": msg["instance"]} if msg.get("instance") else None
            )
        lease = msg.get("lease")
        workitem = msg.get("workitem")
        if not (isinstance(lease, int | float) and lease > 0) and e.get("ls"):
            # taken without a lease: no heartbeats will come, so the
            # dispatch lease must not send it again while it runs
            self.effects.append(CancelTimer(e.pop("ls")))
        if isinstance(lease, int | float) and lease > 0 and isinstance(workitem, dict):
            tid = f"{self.state['wfid']}:{eid}:lease"
            e["ls"] = tid
            self.effects.append(
                ScheduleTimer(
                    tid,
                    self.now + float(lease),
                    messages.lease_timer(
                        self.state["wfid"],
                        eid,
                        lease=float(lease),
                        instance=msg.get("instance"),
                        workitem=workitem,
                    ),
                )
            )
        return None

    def _on_timer(self, msg: dict) -> str | None:
        eid = msg.get("eid")
        kind = msg.get("timer")
        e = self.exprs.get(eid) if isinstance(eid, str) else None
        if e is None:
            return self._ignore(f"{kind} timer for {eid} ignored: step gone")
        if kind == "wait":
            if e.get("wt") is None:
                return self._ignore(f"wait timer for {eid} ignored")
            e.pop("wt")
            self._reply(eid, e["w"])
            return None
        if kind == "retry":
            if e.get("wt") is None:
                return self._ignore(f"retry timer for {eid} ignored")
            e.pop("wt")
            self._redo(eid, e, e["w"], e.get("a", 0))
            return None
        if kind == "lease":
            if e.get("ls") is None or e["s"] != states.WAITING or "q" not in e:
                return self._ignore(f"lease timer for {eid} ignored: the step is done")
            e.pop("ls")
            workitem = msg.get("workitem")
            if not isinstance(workitem, dict):
                return self._ignore(f"lease timer for {eid} without its workitem")
            self._log(
                "warning",
                f"{e['pn']} ({eid}): no heartbeat from "
                f"{msg.get('instance') or 'its instance'} for {msg.get('lease')}s: "
                "dispatched again",
            )
            self.effects.append(Dispatch(e["pn"], e["q"], workitem))
            if self.dispatch_lease > 0:
                tid = f"{self.state['wfid']}:{eid}:lease"
                e["ls"] = tid
                self.effects.append(
                    ScheduleTimer(
                        tid,
                        self.now + self.dispatch_lease,
                        {**msg, "lease": self.dispatch_lease, "instance": None},
                    )
                )
            return None
        if kind == "timeout":
            if e.get("t") is None or e["s"] in (states.CANCELLING, states.FAILED):
                return self._ignore(f"timeout for {eid} ignored")
            e.pop("t")
            self._timed_out(eid, e)
            return None
        return self._ignore(f"unknown timer kind {kind!r}")

    def _timed_out(self, eid: str, e: dict) -> None:
        node = self.node(e["n"])
        h: Handler | None = node.attrs.get("on_timeout")
        info = {"expid": e["n"], "timeout": e.get("to"), "at": iso(self.now)}
        fields = {**e["w"], "__timed_out__": info}
        if "lc" in e:
            self._record_step(eid, e, "finish", states.TIMED_OUT)
        action = h.action if h else "cancel"
        if action == "error":
            then = ["error", f"timed out after {e.get('to')}s", "TimeoutError"]
        elif action == "redo":
            then = ["redo", e["w"]]
        elif action == "command":
            then = ["command", h.command, fields]
        elif action in ("participant", "subprocess"):
            then = ["handler", f"{e['n']}@on_timeout", fields]
        else:  # cancel (the default), pass
            then = ["reply", fields]
        self._abort(eid, then, "internal", children_only=action == "error")

    def _on_cancel(self, msg: dict) -> str | None:
        target = msg.get("eid") or msg.get("expid")
        if not target:
            self._cancel_run(states.CANCELLED)
            return None
        eid = self._find_expr(target)
        if eid is None:
            return self._ignore(f"cancel of {target} ignored: no such live step")
        self._abort(eid, ["reply"], flavour="kill" if msg.get("flavour") == "kill" else "cancel")
        return None

    def _find_expr(self, target: str) -> str | None:
        if target in self.exprs:
            return target
        for eid, e in self.exprs.items():
            if e["n"] == target:
                return eid
        return None

    def _on_replay(self, msg: dict) -> str | None:
        errors = self.state["errors"]
        wanted = msg.get("error_id")
        err = None
        for x in errors:
            if wanted is None or x["id"] == wanted or x["eid"] == wanted:
                err = x
                break
        if err is None:
            return self._ignore(f"replay: no such error {wanted!r}")
        eid = err["eid"]
        e = self.exprs.get(eid)
        self.state["errors"] = [x for x in errors if x is not err]
        if e is None:
            return self._ignore(f"replay: step {eid} is gone")
        e["s"] = states.ACTIVE
        fields = {**e["w"], **(msg.get("fields") or {})}
        if self.node(e["n"]).kind == "error":
            self._reply(eid, fields)  # replaying an `error` step goes on past it
        else:
            self._redo(eid, e, fields, 0)
        return None

    def _on_re_apply(self, msg: dict) -> str | None:
        target = msg.get("eid") or msg.get("expid")
        eid = self._find_expr(target) if target else None
        if eid is None:
            return self._ignore(f"re_apply of {target} ignored: no such live step")
        e = self.exprs[eid]
        fields = {**e["w"], **(msg.get("fields") or {})}
        if e["s"] == states.FAILED:
            self.state["errors"] = [x for x in self.state["errors"] if x["eid"] != eid]
            e["s"] = states.ACTIVE
        self._abort(eid, ["redo", fields], "internal")
        return None

    def _on_listen(self, msg: dict) -> str | None:
        eid = msg.get("eid")
        e = self.exprs.get(eid) if isinstance(eid, str) else None
        if e is None or e["s"] != states.WAITING or "li" not in e:
            return self._ignore(f"listen wake-up for {eid} ignored: not listening")
        node = self.node(e["n"])
        fields = e["w"]
        other = (msg.get("workitem") or {}).get("fields")
        if node.opts.get("merge", True) and isinstance(other, dict):
            fields = {**fields, **{k: v for k, v in other.items() if k != "params"}}
        e.pop("li")
        self._reply(eid, fields)
        return None

    def _on_mutex(self, msg: dict) -> str | None:
        eid = msg.get("eid")
        e = self.exprs.get(eid) if isinstance(eid, str) else None
        if e is None or "mx" not in e or e.get("held"):
            if msg.get("mutex"):
                # we were granted a mutex we no longer want: hand it on
                self.effects.append(ReleaseMutex(msg["mutex"], f"{self.state['wfid']}/{eid}"))
            return self._ignore(f"mutex grant for {eid} ignored: not waiting on it")
        e["held"] = True
        e["s"] = states.ACTIVE
        node = self.node(e["n"])
        if not node.children:
            self._reply(eid, e["w"])
        else:
            self._push_apply(f"{node.id}#body", eid, e["w"], None)
        return None

    # -- errors -----------------------------------------------------------------

    def _fail(
        self, eid: str, exc: RunError, fields: dict | None = None, traceback: str | None = None
    ) -> None:
        """An error at ``eid``: retry, the nearest ``on_error``, or record it."""
        e = self.exprs[eid]
        node = self.node(e["n"])
        base = fields if fields is not None else e["w"]
        info = {
            "message": str(exc),
            "class": exc.cls,
            "expid": e["n"],
            "at": iso(self.now),
        }
        if e.get("pn") and node.kind == "participant":
            info["participant"] = e["pn"]
        if "lc" in e and e["lc"] in ("triggered", "started"):
            self._record_step(eid, e, "finish", states.FAILED_OUTCOME)
        err_fields = {**base, "__error__": info}
        cur: str | None = eid
        while cur is not None:
            ce = self.exprs[cur]
            cnode = self.node(ce["n"])
            attrs = cnode.attrs
            retry = attrs.get("retry") if attrs else None
            if retry is not None and ce.get("a", 0) < retry.times:
                a = ce.get("a", 0)
                delay = retry.delay * (retry.backoff**a)
                self._abort(cur, ["retry", ce["w"], a + 1, delay], "internal")
                return
            h: Handler | None = attrs.get("on_error") if attrs else None
            if h is not None and h.action != "raise":
                self._handle_error(cur, ce, h, err_fields)
                return
            cur = ce["p"]
        # uncaught: the branch stops here
        e["s"] = states.FAILED
        record = {
            "id": f"{self.state['wfid']}:{eid}:{self.state['seq']}",
            "eid": eid,
            **info,
            "fields": base,
        }
        if traceback:
            record["traceback"] = traceback
        self.state["errors"].append(record)
        for key in ("t", "wt", "ls"):
            tid = e.pop(key, None)
            if tid:
                self.effects.append(CancelTimer(tid))
        self._wake_error_listeners(err_fields)

    def _wake_error_listeners(self, err_fields: dict) -> None:
        """``listen: {to: errors}``: every listener of this run waiting for
        errors hears an uncaught one (with ``__error__`` merged in)."""
        info = err_fields["__error__"]
        for x, xe in list(self.exprs.items()):
            if not xe.get("le") or xe["s"] != states.WAITING:
                continue
            o = self.node(xe["n"]).opts
            if o.get("cls") and o["cls"] != info.get("class"):
                continue
            where = o.get("where")
            if where is not None and not where.evaluate(self.scope(x, err_fields, xe["n"])):
                continue
            xe.pop("le")
            fields = {**xe["w"], **err_fields} if o.get("merge", True) else xe["w"]
            self._reply(x, fields)

    def _handle_error(self, eid: str, e: dict, h: Handler, err_fields: dict) -> None:
        action = h.action
        if action == "pass":
            then = ["reply", err_fields]
        elif action == "redo":
            then = ["redo", e["w"]]
        elif action == "cancel":
            # as ruote: the step is cancelled, so its on_cancel runs
            self._abort(eid, ["reply"], "cancel")
            return
        elif action == "command":
            then = ["command", h.command, err_fields]
        else:  # participant / subprocess in its place
            then = ["handler", f"{e['n']}@on_error", err_fields]
        self._abort(eid, then, "internal")

    # -- cancel, abort, kill -------------------------------------------------

    def _abort(
        self, eid: str, then: list, flavour: str = "cancel", children_only: bool = False
    ) -> None:
        """Cancel ``eid``'s subtree, then carry out ``then``:

        * ``["reply"]`` / ``["reply", fields]``: reply to the parent (with the
          applied fields, or those given); ``on_cancel`` runs first when the
          step was cancelled (not killed);
        * ``["drop"]``: end silently (an orphaned branch);
        * ``["redo", fields]``: apply the same node again in its place;
        * ``["retry", fields, attempt, delay]``: redo after a delay;
        * ``["handler", node_id, fields]``: apply a handler in its place;
        * ``["command", cmd, fields]``: give a cursor command;
        * ``["error", message, class]``: fail the step itself
          (``children_only``: the step stays, its children go).
        """
        e = self.exprs.get(eid)
        if e is None:
            return
        if e["s"] == states.CANCELLING:
            if flavour == "kill":
                e["fl"] = "kill"
                for k in list(e.get("k") or ()):
                    self._abort(k, ["reply"], "kill")
            return
        if e["s"] == states.FAILED:
            self.state["errors"] = [x for x in self.state["errors"] if x["eid"] != eid]
        was_waiting = e["s"] == states.WAITING
        e["s"] = states.CANCELLING
        e["then"] = then
        e["fl"] = flavour
        if not children_only:
            tid = e.pop("t", None)
            if tid:
                self.effects.append(CancelTimer(tid))
        for key in ("wt", "ls"):
            tid = e.pop(key, None)
            if tid:
                self.effects.append(CancelTimer(tid))
        if was_waiting and "q" in e:
            fei = {
                "wfid": self.state["wfid"],
                "expid": e["n"],
                "subid": eid,
                "engine_id": ENGINE_ID,
            }
            self.effects.append(
                CancelWorkitem(e["pn"], e["q"], fei, "kill" if flavour == "kill" else "cancel")
            )
            self._record_step(eid, e, "cancel")
        if "li" in e:
            self.effects.append(RemoveListener(e.pop("li")))
        if "mx" in e:
            self.effects.append(ReleaseMutex(e["mx"], f"{self.state['wfid']}/{eid}"))
            e.pop("held", None)
            e["mx_released"] = True
        child_flavour = "kill" if flavour == "kill" else "internal"
        if flavour == "cancel":
            child_flavour = "cancel"
        for k in list(e.get("k") or ()):
            self._abort(k, ["reply"], child_flavour)
        if not e.get("k") and eid in self.exprs and self.exprs[eid]["s"] == states.CANCELLING:
            self._finish_abort(eid)

    def _finish_abort(self, eid: str) -> None:
        e = self.exprs[eid]
        then = e.pop("then", None) or ["reply"]
        flavour = e.pop("fl", "cancel")
        node = self.node(e["n"])
        op = then[0]
        parent, slot = e["p"], e.get("sl")
        if op == "merge":  # a concurrence with remaining: wait
            e["s"] = states.ACTIVE
            self._joined(e)
            self._reply(eid, self._merged(e, node, e["r"] + e.pop("rw", [])))
            return
        if op == "error":
            e["s"] = states.ACTIVE
            self._fail(eid, RunError(then[1], then[2]))
            return
        if op in ("reply", "drop") and flavour == "cancel" and not e.get("occ"):
            h: Handler | None = node.attrs.get("on_cancel") if node.attrs else None
            if h is not None and h.ref:
                self._replace(eid, e, f"{e['n']}@on_cancel", e["w"], {"occ": True})
                return
        if op in ("reply", "drop"):
            fields = then[1] if len(then) > 1 else e.get("cw", e["w"])
            if "lc" in e and e["lc"] in ("triggered", "started"):
                self._record_step(eid, e, "cancel")
            self._remove(eid)
            if op == "reply" and not ("fk" in e and self._flank_ends_alone(e)):
                self._notify_parent(parent, slot, e["n"], fields, eid)
            else:
                self._check_end()
            return
        if op == "redo":
            self._redo(eid, e, then[1], 0)
            return
        if op == "retry":
            fields, attempt, delay = then[1], then[2], then[3]
            if delay and delay > 0:
                tid = f"{self.state['wfid']}:{eid}:retry"
                e["s"] = states.WAITING
                e["wt"] = tid
                e["a"] = attempt
                self.effects.append(
                    ScheduleTimer(
                        tid,
                        self.now + delay,
                        messages.timer(self.state["wfid"], eid, "retry"),
                    )
                )
            else:
                self._redo(eid, e, fields, attempt)
            return
        if op == "handler":
            self._replace(eid, e, then[1], then[2], None)
            return
        if op == "command":
            self._remove(eid)
            self._command(parent, eid, then[1], then[2], slot, e["n"])
            return
        raise AssertionError(f"unknown abort continuation {op!r}")

    def _replace(self, eid: str, e: dict, node_id: str, fields: dict, extra: dict | None) -> None:
        """Remove ``eid`` and apply ``node_id`` in its place (same parent,
        same slot; the root stays the root)."""
        was_root = eid == self.state.get("root")
        self._remove(eid)
        x = {"sl": e["sl"]} if "sl" in e else {}
        if e["p"] is None and not was_root:
            x["detach"] = True
        if extra:
            x.update(extra)
        if was_root:
            x["root"] = True
            x["v"] = e.get("v", {})
            x["vk"] = e.get("vk", "process")
        self._apply(node_id, e["p"], fields, x)

    def _redo(self, eid: str, e: dict, fields: dict, attempt: int) -> None:
        x: dict[str, Any] = {}
        for key in ("sl", "v", "vk"):
            if key in e:
                x[key] = e[key]
        if e.get("vk") == "sub":  # a subprocess computes its scope when applied
            x.pop("v", None)
            x.pop("vk", None)
        if attempt:
            x["a"] = attempt
        x["o"] = e.get("o", eid)  # the first attempt (ORIGINAL_TRIGGER)
        was_root = eid == self.state.get("root")
        if was_root:
            x["root"] = True
        if e["p"] is None and not was_root:
            x["detach"] = True
        self._remove(eid)
        self._apply(e["n"], e["p"], fields, x)

    def _cancel_run(self, ending: str) -> None:
        st = self.state
        st["ending"] = ending
        root = st.get("root")
        for d in list(st["detached"]):
            self._abort(d, ["drop"])
        if root in self.exprs:
            self._abort(root, ["reply"])
        else:
            self._check_end()

    def _kill(self) -> None:
        st = self.state
        for eid, e in list(self.exprs.items()):
            if "q" in e and e["s"] == states.WAITING:
                fei = {"wfid": st["wfid"], "expid": e["n"], "subid": eid, "engine_id": ENGINE_ID}
                self.effects.append(CancelWorkitem(e["pn"], e["q"], fei, "kill"))
            if "lc" in e:
                self._record_step(eid, e, "cancel")
            for key in ("t", "wt", "ls"):
                if e.get(key):
                    self.effects.append(CancelTimer(e[key]))
            if "li" in e:
                self.effects.append(RemoveListener(e["li"]))
            if "mx" in e and not e.get("mx_released"):
                self.effects.append(ReleaseMutex(e["mx"], f"{st['wfid']}/{eid}"))
        self.exprs.clear()
        st["detached"] = []
        st["errors"] = []
        st.pop("held", None)
        self.work.clear()
        self._end(states.KILLED)

    # -- the end ----------------------------------------------------------------

    def _root_done(self, fields: dict) -> None:
        st = self.state
        st["fields"] = fields
        st["root"] = None
        self._check_end()

    def _check_end(self) -> None:
        st = self.state
        if st.get("root") is not None or st["detached"]:
            return
        if st["status"] in states.ENDED_RUN_STATES:
            return
        self._end(st.pop("ending", None) or states.FINISHED)

    def _end(self, status: str) -> None:
        st = self.state
        st["status"] = status
        st["ended_at"] = self.now
        st["updated_at"] = self.now
        st["paused"] = False
        st.pop("held", None)
        st["errors"] = []
        self.exprs.clear()
        if lifecycle.can(st.get("lc", "new"), "finish"):
            # a started run always ends with ActivityFinished (Eiffel)
            self._record_run("finish", _run_conclusion(status, st.get("fields")))
        self.effects.append(RunEnded(st["wfid"], status))


def _run_conclusion(status: str, fields: Any) -> str:
    """The run's ActivityFinished outcome: what it came to
    (``engine.core.outcome``), so a pipeline whose fields say it failed is
    not reported SUCCESSFUL because it reached its end."""
    result = outcome.run_outcome(status, fields if isinstance(fields, dict) else None)
    return _CONCLUSIONS[result]


_CONCLUSIONS = {
    outcome.SUCCESS: states.SUCCESSFUL,
    outcome.FAILURE: states.UNSUCCESSFUL,
    outcome.ERROR: states.FAILED_OUTCOME,
    outcome.CANCELLED: states.ABORTED,
    outcome.PENDING: states.ABORTED,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _outcome(fields: dict) -> str:
    r = fields.get("__result__", True)
    if r is False or (isinstance(r, str) and r.lower() == "false"):
        return states.UNSUCCESSFUL
    return states.SUCCESSFUL


_APPLY = {
    "sequence": Interpreter._apply_sequence,
    "cursor": Interpreter._apply_sequence,
    "loop": Interpreter._apply_sequence,
    "concurrence": Interpreter._apply_concurrence,
    "participant": Interpreter._apply_participant,
    "subprocess": Interpreter._apply_subprocess,
    "if": Interpreter._apply_if,
    "iterator": Interpreter._apply_iterator,
    "concurrent_iterator": Interpreter._apply_concurrent_iterator,
    "set": Interpreter._apply_set,
    "inc": Interpreter._apply_inc,
    "push": Interpreter._apply_inc,
    "apply": Interpreter._apply_apply,
    "unset": Interpreter._apply_unset,
    "wait": Interpreter._apply_wait,
    "listen": Interpreter._apply_listen,
    "reserve": Interpreter._apply_reserve,
    "echo": Interpreter._apply_echo,
    "noop": Interpreter._apply_noop,
    "error": Interpreter._apply_error,
    "cancel_process": Interpreter._apply_cancel_process,
    "terminate": Interpreter._apply_cancel_process,
    "cancel": Interpreter._apply_cancel,
    "break": Interpreter._apply_command,
    "rewind": Interpreter._apply_command,
    "reset": Interpreter._apply_command,
    "skip": Interpreter._apply_command,
    "back": Interpreter._apply_command,
    "jump": Interpreter._apply_command,
}

#: messages that act on the run as it is, paused or not
_CONTROLS = {
    "pause": Interpreter._on_pause,
    "resume": Interpreter._on_resume,
    "kill": Interpreter._on_kill,
}

#: what a paused run still hears (the rest is held until it is resumed)
_NOT_HELD = frozenset({"cancel", "started"})

#: the other messages a run handles, by ``type`` (``engine.core.messages``)
_ON_MESSAGE = {
    "reply": Interpreter._on_reply,
    "timer": Interpreter._on_timer,
    "cancel": Interpreter._on_cancel,
    "replay": Interpreter._on_replay,
    "re_apply": Interpreter._on_re_apply,
    "listen": Interpreter._on_listen,
    "mutex": Interpreter._on_mutex,
    "started": Interpreter._on_started,
    "continue": Interpreter._on_continue,
}

#: every message type ``handle`` acts on (the engine service handles the
#: rest of ``engine.core.messages.MESSAGE_TYPES`` itself)
HANDLED_TYPES = frozenset(_CONTROLS) | frozenset(_ON_MESSAGE)

_ON_CHILD = {
    "sequence": Interpreter._child_sequence,
    "cursor": Interpreter._child_cursor,
    "loop": Interpreter._child_cursor,
    "concurrence": Interpreter._child_concurrence,
    "concurrent_iterator": Interpreter._child_concurrence,
    "subprocess": Interpreter._child_passthrough,
    "participant": Interpreter._child_passthrough,  # a participant resolved to a subprocess
    "if": Interpreter._child_passthrough,
    "iterator": Interpreter._child_iterator,
    "reserve": Interpreter._child_passthrough,
    "apply": Interpreter._child_passthrough,
}


# ---------------------------------------------------------------------------
# the functional surface


def new_state(
    definition: Definition, wfid: str, now: float, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        runstate.VERSION_KEY: runstate.STATE_VERSION,
        "wfid": wfid,
        "name": definition.name,
        "revision": definition.revision,
        "def": definition.digest,
        "status": states.RUNNING,
        "launched_at": now,
        "updated_at": now,
        "ended_at": None,
        "fields": {**definition.fields, **(fields or {})},
        "root": None,
        "seq": 0,
        "exprs": {},
        "errors": [],
        "detached": [],
        "paused": False,
    }


def launch(
    definition: Definition,
    wfid: str,
    *,
    now: float,
    fields: dict[str, Any] | None = None,
    variables: dict[str, Any] | None = None,
    registrations: Sequence[Registration] = (),
    cause: list[str] | None = None,
    dispatch_lease: float = 0.0,
) -> Result:
    """Start a run: the new state and its first effects. ``cause`` names
    the traceability events that caused it (linked as CAUSE)."""
    state = new_state(definition, wfid, now, fields)
    if cause:
        state["cause"] = list(cause)
    interp = Interpreter(
        definition, state, now=now, registrations=registrations, dispatch_lease=dispatch_lease
    )
    interp.launch(state["fields"], variables)
    return Result(state, interp.effects)


def handle(
    definition: Definition,
    state: dict[str, Any],
    message: dict[str, Any],
    *,
    now: float,
    registrations: Sequence[Registration] = (),
    dispatch_lease: float = 0.0,
) -> Result:
    """Apply one message to a run. ``state`` is taken over (mutated and
    returned): pass a copy you own."""
    interp = Interpreter(
        definition, state, now=now, registrations=registrations, dispatch_lease=dispatch_lease
    )
    reason = interp.handle(message)
    return Result(state, interp.effects, reason)


#: the recursion limit the process that runs the core needs: cancelling a
#: deep tree recurses once per level (replies do not). The core sets no
#: process-wide setting; the adapters that own a process raise the limit
#: (``engine.engine.Engine`` on construction).
RECURSION_LIMIT = 20_000


def _epoch(text: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (``2026-11-22T10:00:00.123Z``,
    as ``engine.wire.iso_now`` writes); None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
