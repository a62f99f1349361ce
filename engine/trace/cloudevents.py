"""CloudEvents 1.0 structured-mode JSON envelopes for Eiffel events and
CDEvents, and back.

An Eiffel event travels as::

    {"specversion": "1.0",
     "id": meta.id,
     "source": meta.source.uri, else "/<name>/<host>" (as in CDEvents export),
     "type": "eiffel.<meta.type>"         e.g. eiffel.EiffelActivityFinishedEvent,
     "time": meta.time as RFC 3339 UTC with milliseconds,
     "datacontenttype": "application/json",
     "eiffelversion": meta.version,       (an extension attribute)
     "data": the whole Eiffel event}

The type keeps the full Eiffel type name (no renaming to look up, and the
``eiffel.`` prefix tells it from any other producer's types); the version is
an extension attribute because CloudEvents consumers route on ``type`` and an
Eiffel consumer must see the version to read ``data``.

A CDEvent already has CloudEvents-shaped context, so its envelope takes
``id``, ``source``, ``type`` and ``time`` from ``context.id``, ``.source``,
``.type`` and ``.timestamp`` (the CDEvents CloudEvents binding) and carries
the whole CDEvent as ``data``.

:func:`unwrap` gives back the event in ``data`` (the same dict it was
wrapped from), checking that the envelope agrees with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.trace.cdevents import _source_uri, ms_to_rfc3339

__all__ = [
    "EIFFEL_TYPE_PREFIX",
    "EnvelopeError",
    "is_envelope",
    "unwrap",
    "wrap",
    "wrap_cdevent",
    "wrap_eiffel",
]

SPECVERSION = "1.0"
EIFFEL_TYPE_PREFIX = "eiffel."
CONTENT_TYPE = "application/json"
_REQUIRED = ("specversion", "id", "source", "type")


class EnvelopeError(ValueError):
    """Not a CloudEvents 1.0 structured-mode envelope of an Eiffel event or
    a CDEvent (or one whose attributes disagree with its data)."""


def wrap_eiffel(event: Mapping[str, Any], *, source: str | None = None) -> dict[str, Any]:
    """The CloudEvents envelope of Eiffel ``event`` (see the module
    docstring); ``source`` overrides the derived source."""
    meta = event["meta"]
    return {
        "specversion": SPECVERSION,
        "id": meta["id"],
        "source": source or _source_uri(meta),
        "type": EIFFEL_TYPE_PREFIX + meta["type"],
        "time": ms_to_rfc3339(meta["time"]),
        "datacontenttype": CONTENT_TYPE,
        "eiffelversion": meta["version"],
        "data": dict(event),
    }


def wrap_cdevent(cdevent: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudEvents envelope of ``cdevent``: its context as attributes,
    the whole CDEvent as data."""
    context = cdevent["context"]
    envelope = {
        "specversion": SPECVERSION,
        "id": context["id"],
        "source": context["source"],
        "type": context["type"],
        "time": context["timestamp"],
        "datacontenttype": CONTENT_TYPE,
        "data": dict(cdevent),
    }
    if context.get("schemaUri"):
        envelope["dataschema"] = context["schemaUri"]
    return envelope


def wrap(event: Mapping[str, Any]) -> dict[str, Any]:
    """The envelope of an Eiffel event (has ``meta``) or a CDEvent (has
    ``context``)."""
    if "meta" in event:
        return wrap_eiffel(event)
    if "context" in event:
        return wrap_cdevent(event)
    raise EnvelopeError("neither an Eiffel event (meta) nor a CDEvent (context)")


def is_envelope(obj: Any) -> bool:
    """Whether ``obj`` looks like a CloudEvents 1.0 structured envelope."""
    return (
        isinstance(obj, Mapping)
        and obj.get("specversion") == SPECVERSION
        and all(k in obj for k in _REQUIRED)
    )


def _json_object(value: Any, what: str) -> Mapping[str, Any]:
    """``value`` as a JSON object, parsed if it is JSON text. The envelope and
    the data it carries may each come as either; ``what`` starts the
    :class:`EnvelopeError` that says which of them is not an object."""
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise EnvelopeError(f"{what}not JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise EnvelopeError(f"{what}not a JSON object")
    return value


def unwrap(envelope: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    """The Eiffel event or CDEvent carried by ``envelope`` (a dict or its
    JSON text). :class:`EnvelopeError` when it is not an envelope, its data
    is not JSON, or its ``id``/``type`` disagree with the event's."""
    envelope = _json_object(envelope, "")
    missing = [k for k in _REQUIRED if k not in envelope]
    if missing:
        raise EnvelopeError(f"not a CloudEvents envelope: missing {', '.join(missing)}")
    if envelope["specversion"] != SPECVERSION:
        raise EnvelopeError(f"unsupported CloudEvents specversion {envelope['specversion']!r}")
    ctype = envelope.get("datacontenttype", CONTENT_TYPE)
    if not (ctype == CONTENT_TYPE or str(ctype).endswith("+json")):
        raise EnvelopeError(f"data is {ctype}, not JSON")
    data = envelope.get("data")
    if data is None and "data_base64" in envelope:
        raise EnvelopeError("binary data (data_base64) is not an event")
    data = _json_object(data, "data is ")
    etype = str(envelope["type"])
    if etype.startswith(EIFFEL_TYPE_PREFIX):
        meta = data.get("meta") or {}
        if meta.get("id") != envelope["id"] or EIFFEL_TYPE_PREFIX + str(meta.get("type")) != etype:
            raise EnvelopeError("envelope id/type disagree with the Eiffel event's meta")
    elif "context" in data:
        context = data["context"] or {}
        if context.get("id") != envelope["id"] or context.get("type") != etype:
            raise EnvelopeError("envelope id/type disagree with the CDEvent's context")
    return dict(data)
