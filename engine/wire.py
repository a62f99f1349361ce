"""The wire protocol: what travels between engine, participants and clients.

Plain JSON (``application/json``, UTF-8), validated with the JSON Schemas in
``engine/schemas/`` (documented in ``docs/wire-protocol.md``). This module is
pure: it turns bodies into engine messages and back, and names what is wrong
with a body that is not one. The broker adapter (``engine.broker``) moves
the bytes.

What arrives on the engine's queue is told apart by its keys:

* ``type``: an engine message (``cancel``, ``pause``, ``started``, ...),
* ``fei``: a participant's reply (the workitem it was sent, changed),
* ``definition`` or ``process``: a launch item.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from engine.core import messages

__all__ = [
    "Malformed",
    "deadletter",
    "decode",
    "dumps",
    "engine_message",
    "iso_now",
    "validate",
]

CONTENT_TYPE = "application/json"


class Malformed(ValueError):
    """A body that is not a valid message. ``fei`` is set when the body is a
    reply whose step can still be told, so its run can be failed visibly."""

    def __init__(self, reason: str, fei: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fei = fei


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def decode(body: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """A JSON object from a message body, or ``Malformed``."""
    if isinstance(body, dict):
        return body
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Malformed(f"not UTF-8 text: {exc}") from None
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        raise Malformed(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise Malformed(f"not a JSON object but {type(obj).__name__}")
    return obj


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    from referencing import Registry, Resource

    root = resources.files("engine") / "schemas"
    registry: Registry = Registry()
    schemas = {}
    for entry in root.iterdir():
        if entry.name.endswith(".json"):
            schema = json.loads(entry.read_text(encoding="utf-8"))
            schemas[entry.name] = schema
            resource = Resource.from_contents(schema)
            registry = registry.with_resource(entry.name, resource)
            registry = registry.with_resource(schema["$id"], resource)
    schema = schemas[f"{name}.json"]
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=registry)


@cache
def _fast(name: str) -> Any:
    """The schema compiled to Python by fastjsonschema (about 30 times
    faster than walking it), or None for a schema it cannot compile alone
    (``cancel`` refers to another file)."""
    import fastjsonschema

    text = (resources.files("engine") / "schemas" / f"{name}.json").read_text(encoding="utf-8")
    if '"$ref"' in text:  # it would fetch the referred schema by URL: never
        return None
    return fastjsonschema.compile(json.loads(text))


def validate(kind: str, obj: dict[str, Any]) -> None:
    """Check ``obj`` against schema ``kind`` (workitem, launch, message,
    cancel, deadletter); ``Malformed`` names the first problem and where.

    Every message on the hot path is checked, so a valid one is accepted by
    the compiled validator; only a rejected one is walked by ``jsonschema``,
    whose errors say where the problem is."""
    fast = _fast(kind)
    if fast is not None:
        import fastjsonschema

        try:
            fast(obj)
            return
        except fastjsonschema.JsonSchemaException:
            pass
    errors = sorted(_validator(kind).iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top)"
        raise Malformed(f"invalid {kind}: at {where}: {err.message}")


def engine_message(body: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """An engine message from a body on the engine's queue (see the module
    docstring), normalised to ``{"type": ..., "wfid": ...}``:

    * a reply becomes ``{"type": "reply", "wfid", "workitem"}``;
    * a launch item becomes ``{"type": "launch", **item}``.
    """
    obj = decode(body)
    if "type" in obj:
        validate("message", obj)
        if obj["type"] == "reply":
            return engine_message(obj["workitem"]) | {k: v for k, v in obj.items() if k == "id"}
        return obj
    if "fei" in obj:
        fei = obj.get("fei")
        try:
            validate("workitem", obj)
        except Malformed as exc:
            ok_fei = (
                isinstance(fei, dict)
                and isinstance(fei.get("wfid"), str)
                and isinstance(fei.get("subid"), str)
                and fei["wfid"]
                and fei["subid"]
            )
            raise Malformed(exc.reason, fei if ok_fei else None) from None
        return messages.reply(obj, fei["wfid"])
    if "definition" in obj or "process" in obj:
        validate("launch", obj)
        return messages.as_launch_message(obj)
    raise Malformed(
        "neither a reply (no 'fei'), a launch item (no 'definition' or "
        "'process') nor an engine message (no 'type')"
    )


def iso_now(now: float | None = None) -> str:
    """``2026-11-22T10:00:00.123Z``"""
    t = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def deadletter(
    body: bytes | str,
    reason: str,
    queue: str,
    *,
    by: str,
    content_type: str | None = None,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record kept on the dead-letter queue for a message that could not
    be handled (its body kept exactly, as text or base64)."""
    if isinstance(body, bytes):
        try:
            text, encoding = body.decode("utf-8"), "text"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(body).decode("ascii"), "base64"
    else:
        text, encoding = body, "text"
    return {
        "id": uuid.uuid4().hex,
        "reason": reason,
        "queue": queue,
        "body": text,
        "encoding": encoding,
        "content_type": content_type,
        "headers": {
            k: v for k, v in (headers or {}).items() if isinstance(v, str | int | float | bool)
        },
        "at": iso_now(),
        "by": by,
    }


def deadletter_body(record: dict[str, Any]) -> bytes:
    """The original body of a dead letter, as bytes."""
    if record.get("encoding") == "base64":
        return base64.b64decode(record["body"])
    return str(record["body"]).encode("utf-8")
