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

What legacy BOSS clients send (python-ruote-amqp's ``Launcher`` and
``Participant``, ruote-amqp's ``Receiver`` keys, ruote 2.1 feis) is
normalised here, before validation, so the engine's core only ever sees
the current shapes (see ``normalise_launch`` and ``normalise_reply``, and
*Legacy BOSS clients* in ``docs/wire-protocol.md``).
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

from engine import jsontext
from engine.core import messages

__all__ = [
    "Malformed",
    "deadletter",
    "decode",
    "dumps",
    "engine_message",
    "iso_now",
    "normalise_launch",
    "normalise_reply",
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
    """Compact UTF-8 JSON (``engine.jsontext``)."""
    return jsontext.dumps(obj)


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
        obj = jsontext.loads(body)
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


#: the launch keys of ruote-amqp's ``Receiver`` (and so BOSS::Receiver) -> ours
LEGACY_LAUNCH_KEYS = {
    "process_definition": "definition",
    "workitem_fields": "fields",
    "process_variables": "variables",
}


def normalise_launch(obj: dict[str, Any]) -> dict[str, Any]:
    """A launch item in our shape from what a legacy client sends:

    * a key whose value is null is absent (python-ruote-amqp's ``Launcher``
      sends ``"fields": null, "variables": null`` when it is given none);
    * ruote-amqp's ``process_definition``, ``workitem_fields`` and
      ``process_variables`` are ``definition``, ``fields`` and ``variables``
      (both spellings with different values is ``Malformed``).

    ``obj`` is left as it is; what is not a legacy shape is left for the
    schema to judge."""
    item = {k: v for k, v in obj.items() if v is not None}
    for old, new in LEGACY_LAUNCH_KEYS.items():
        if old not in item:
            continue
        value = item.pop(old)
        if new in item and item[new] != value:
            raise Malformed(f"invalid launch: both {old!r} and {new!r}, with different values")
        item[new] = value
    return item


def _legacy_fei(fei: Any) -> Any:
    """Our fei from a ruote 2.1 one (``wfid``, ``expid``, ``sub_wfid``,
    ``engine_id``): ``sub_wfid`` is our ``subid`` (kept only when ``subid``
    is not there)."""
    if not isinstance(fei, dict) or "sub_wfid" not in fei:
        return fei
    out = {k: v for k, v in fei.items() if k != "sub_wfid"}
    if out.get("subid") is None and fei["sub_wfid"] is not None:
        out["subid"] = fei["sub_wfid"]
    return out


def _trace_text(trace: Any) -> Any:
    """A traceback as text from python-ruote-amqp's ``trace`` (a list of
    ruby-style backtrace lines); anything else is returned as it is."""
    if isinstance(trace, list):
        return "\n".join(str(line) for line in trace)
    return trace


def normalise_reply(obj: dict[str, Any]) -> dict[str, Any]:
    """A reply in our shape from what a legacy participant sends:

    * a ruote 2.1 fei (``sub_wfid`` for ``subid``) becomes ours;
    * python-ruote-amqp's error ``{"class", "message", "trace": [lines]}``
      (or a top-level ``trace`` beside an ``error``) gets the lines as its
      ``traceback``.

    ``obj`` is left as it is (a copy is returned when something changed)."""
    wi = obj
    fei = _legacy_fei(obj.get("fei"))
    if fei is not obj.get("fei"):
        wi = dict(wi, fei=fei)
    err = wi.get("error")
    if err and ("trace" in wi or (isinstance(err, dict) and "trace" in err)):
        wi = dict(wi)
        trace = wi.pop("trace", None)
        err = dict(err) if isinstance(err, dict) else {"message": str(err)}
        trace = err.pop("trace", trace)
        if err.get("traceback") is None and trace is not None:
            err["traceback"] = _trace_text(trace)
        wi["error"] = err
    return wi


def engine_message(body: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """An engine message from a body on the engine's queue (see the module
    docstring), normalised to ``{"type": ..., "wfid": ...}``:

    * a reply becomes ``{"type": "reply", "wfid", "workitem"}``;
    * a launch item becomes ``{"type": "launch", **item}``.

    Legacy shapes are normalised first (``normalise_reply``,
    ``normalise_launch``)."""
    obj = decode(body)
    if "type" in obj:
        validate("message", obj)
        if obj["type"] == "reply":
            if not isinstance(obj.get("workitem"), dict):
                kind = type(obj.get("workitem")).__name__
                raise Malformed(f"a reply's workitem is not a JSON object but {kind}")
            return engine_message(obj["workitem"]) | {k: v for k, v in obj.items() if k == "id"}
        return obj
    if "fei" in obj:
        obj = normalise_reply(obj)
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
    if any(obj.get(k) is not None for k in ("definition", "process", "process_definition")):
        item = normalise_launch(obj)
        validate("launch", item)
        return messages.as_launch_message(item)
    if "definition" in obj or "process" in obj:
        validate("launch", obj)  # a null definition or process: say so
    raise Malformed(
        "neither a reply (no 'fei'), a launch item (no 'definition', "
        "'process_definition' or 'process') nor an engine message (no 'type')"
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
