"""What the UI does to runs, shared by the pages (forms) and the JSON API.

Everything that changes a run is a message on the engine's queue, exactly
as ``boss launch``/``cancel``/``replay``/... send it (``bossapp.cli.runs``):
the engine workers apply it, so the UI never races a worker for a run's
state. Each function checks who may (``webui.access``), checks what can be
known here (the run exists, has an error to replay, is not over), sends,
and writes the audit log. A refusal is ``Refused`` with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.core import messages, runstate, states
from engine.engine import new_wfid
from webui.access import Refused, can_act_on_run, require
from webui.services import Services
from webui.users import User

__all__ = [
    "ACTIONS",
    "act",
    "bulk_replay",
    "launch",
    "list_processes",
    "parse_fields",
    "process_source",
    "validate",
]

#: the operations on a run -> the message type each sends (the table the
#: CLI and ``Engine`` share: ``engine.core.messages``)
ACTIONS = messages.OPERATION_TYPES


def parse_fields(text: str | dict[str, Any] | None) -> dict[str, Any]:
    """Fields from the editor: a JSON object (or nothing)."""
    if text is None or text == "":
        return {}
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(f"the fields are not valid JSON: {exc}", 400) from None
    if not isinstance(value, dict):
        raise Refused("the fields must be a JSON object ({...})", 400)
    return value


# -- the process store ----------------------------------------------------------------


def _root(svc: Services) -> Path:
    return Path(svc.config.process_dir or "processes").resolve()


def list_processes(svc: Services) -> list[str]:
    """Process names in the process store (``process_dir``)."""
    root = _root(svc)
    if not root.is_dir():
        return []
    names = []
    for path in sorted(root.rglob("*.y*ml")):
        if path.suffix in (".yaml", ".yml") and path.is_file():
            names.append(str(path.relative_to(root).with_suffix("")))
    return names


def process_source(svc: Services, name: str) -> tuple[Path, str]:
    from engine.process_store import resolve_process

    try:
        path = resolve_process(_root(svc), name)
    except (FileNotFoundError, ValueError) as exc:
        raise Refused(str(exc), 404) from None
    return path, path.read_text(encoding="utf-8")


def validate(svc: Services, name: str, fields_text: str | dict[str, Any] | None) -> dict[str, Any]:
    """Check a process and the fields: ``{"ok", "problems", "name", ...}``."""
    from engine.core.loader import LoadError, load_definition

    problems: list[str] = []
    path, source = process_source(svc, name)
    try:
        d = load_definition(source, str(path))
    except LoadError as exc:
        problems.extend(str(exc).splitlines())
        d = None
    try:
        parse_fields(fields_text)
    except Refused as exc:
        problems.append(exc.reason)
    return {
        "ok": not problems,
        "problems": problems,
        "process": name,
        "name": d.name if d else None,
        "digest": d.digest if d else None,
    }


def launch(
    svc: Services, user: User, name: str, fields_text: str | dict[str, Any] | None, remote: str = ""
) -> str:
    """Launch process ``name`` with the fields; returns the wfid."""
    require("launch", user)
    fields = parse_fields(fields_text)
    check = validate(svc, name, fields)
    if not check["ok"]:
        raise Refused(f"{name} has problems: " + "; ".join(check["problems"]), 400)
    path, source = process_source(svc, name)
    wfid = new_wfid()
    svc.index.set_owner(wfid, user.name)  # before the engine can have it
    svc.publisher.send(
        messages.launch_item(definition=source, filename=str(path), fields=fields, wfid=wfid)
    )
    svc.audit.record(
        user, "launch", wfid, detail=f"{name} {json.dumps(fields)[:500]}", remote=remote
    )
    return wfid


# -- operations -------------------------------------------------------------------------


def act(
    svc: Services,
    user: User,
    wfid: str,
    action: str,
    data: dict[str, Any] | None = None,
    remote: str = "",
) -> str:
    """Send ``action`` for run ``wfid``; returns what was done, in words."""
    data = data or {}
    if action not in ACTIONS:
        raise Refused(f"unknown action {action!r}: one of {', '.join(ACTIONS)}", 400)
    require("act", user)
    loaded = svc.store.load_run(wfid)
    if loaded is None:
        raise Refused(f"no run {wfid}", 404)
    st = runstate.upgrade(loaded[0])
    can_act_on_run(user, svc.index.owner(wfid), wfid, action)
    status = runstate.status(st)
    if status in states.ENDED_RUN_STATES:
        raise Refused(f"run {wfid} has ended ({status}): nothing to {action}", 409)
    options: dict[str, Any] = {}  # for messages.operation
    if action == "pause" and status == states.PAUSED:
        raise Refused(f"run {wfid} is paused already", 409)
    if action == "resume" and status != states.PAUSED:
        raise Refused(f"run {wfid} is {status}, not paused: nothing to resume", 409)
    if action == "cancel" and data.get("step"):
        options["eid"] = str(data["step"])
    if action == "replay":
        errors = runstate.errors(st)
        if not errors:
            raise Refused(f"run {wfid} has no error to replay", 409)
        error_id = data.get("error_id") or None
        if error_id and not any(
            error_id in (e["id"], e.get("eid"), e.get("expid")) for e in errors
        ):
            raise Refused(f"run {wfid} has no error {error_id}", 404)
        options["error_id"] = error_id
        options["fields"] = parse_fields(data.get("fields")) or None
    if action == "reapply":
        step = data.get("step")
        if not step:
            raise Refused("re-apply needs the step (its eid or expid)", 400)
        if not runstate.has_step(st, step):
            raise Refused(f"run {wfid} has no live step {step}", 404)
        options["eid"] = str(step)
        options["fields"] = parse_fields(data.get("fields")) or None
    msg = messages.operation(action, wfid, **options)
    svc.publisher.send(msg)
    detail = {k: v for k, v in msg.items() if k not in ("type", "wfid") and v is not None}
    svc.audit.record(user, action, wfid, detail=json.dumps(detail)[:500], remote=remote)
    return f"{action} sent to {wfid}" + (f" (step {msg['eid']})" if msg.get("eid") else "")


def bulk_replay(
    svc: Services,
    user: User,
    items: list[tuple[str, str | None]],
    fields_text: str | dict[str, Any] | None = None,
    remote: str = "",
) -> list[dict[str, Any]]:
    """Replay many errors; one result per item (``ok`` and the message)."""
    require("act", user)
    fields = parse_fields(fields_text)
    out = []
    for wfid, error_id in items:
        try:
            done = act(svc, user, wfid, "replay", {"error_id": error_id, "fields": fields}, remote)
            out.append({"wfid": wfid, "error_id": error_id, "ok": True, "message": done})
        except Refused as exc:
            svc.audit.record(user, "replay", wfid, ok=False, detail=exc.reason, remote=remote)
            out.append({"wfid": wfid, "error_id": error_id, "ok": False, "message": exc.reason})
    return out
