"""The OpenCI prototype's federation events as Eiffel events.

The OpenCI prototype let communities tell each other about three things:
an artifact was created (with its URL and the branch it was built from), a
baseline was defined (a name, a URL, and what it consists of), and a
confidence level was modified (a named level and its value). BOSS reads
them as JSON objects with these keys (``docs/traceability.md`` has the
table) and stores them as their Eiffel counterparts:

=======================  ==========================================================
OpenCI                   Eiffel
=======================  ==========================================================
ArtifactCreated          EiffelArtifactCreatedEvent: ``identity`` a purl
                         (``pkg:generic/<name>@<version>?download_url=<url>``),
                         ``fileInformation`` the file name from the URL,
                         ``customData`` branch and origin; plus
                         EiffelArtifactPublishedEvent (ARTIFACT -> it) with the
                         URL as a PLAIN location
BaselineDefined          EiffelCompositionDefinedEvent: ``name``, ``version``,
                         ``customData`` url and origin, ELEMENT -> each part
ConfidenceLevelModified  EiffelConfidenceLevelModifiedEvent: ``name``, ``value``
                         (SUCCESS / FAILURE / INCONCLUSIVE), SUBJECT -> the
                         artifact or baseline, ``issuer`` the origin
=======================  ==========================================================

Ids: an OpenCI event's id is kept when it is a lowercase UUID, else a
UUID is derived from it (so the same OpenCI event maps to the same Eiffel
event, and references between OpenCI events map to links).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

from engine.trace import eiffel

__all__ = ["OpenCIError", "from_openci", "openci_id"]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_VALUES = {"SUCCESS", "FAILURE", "INCONCLUSIVE"}


class OpenCIError(ValueError):
    pass


def openci_id(value: str) -> str:
    """The Eiffel id of an OpenCI event id."""
    if _UUID.match(value):
        return value
    digest = hashlib.sha256(f"openci\0{value}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _time_ms(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
    raise OpenCIError(f"time {value!r}: integer milliseconds or an ISO 8601 time")


def _need(event: dict[str, Any], key: str) -> Any:
    value = event.get(key)
    if value in (None, ""):
        raise OpenCIError(f"{event.get('type', 'event')}: {key} is required")
    return value


def _meta(event: dict[str, Any], suffix: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {
        "event_id": openci_id(str(_need(event, "id")) + suffix),
        "source": {"name": "openci", "domainId": str(event.get("origin") or "openci")},
    }
    t = _time_ms(event.get("time"))
    if t is not None:
        meta["time_ms"] = t
    return meta


def from_openci(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The Eiffel events for one OpenCI event (see the module docstring)."""
    kind = event.get("type")
    origin = str(event.get("origin") or "")
    if kind == "ArtifactCreated":
        url = str(_need(event, "artifactUrl"))
        name = str(event.get("name") or urlsplit(url).path.rsplit("/", 1)[-1] or "artifact")
        version = str(event.get("version") or "unknown")
        identity = (
            f"pkg:generic/{quote(name, safe='')}@{quote(version, safe='')}"
            f"?download_url={quote(url, safe='')}"
        )
        custom = {"branch": str(_need(event, "branch"))}
        if origin:
            custom["origin"] = origin
        created = eiffel.artifact_created(
            identity,
            name=name,
            file_information=[{"name": name}],
            custom_data=custom,
            **_meta(event),
        )
        published = eiffel.artifact_published(
            created["meta"]["id"], [{"type": "PLAIN", "uri": url}], **_meta(event, "/published")
        )
        return [created, published]
    if kind == "BaselineDefined":
        parts = event.get("consistsOf") or []
        if not isinstance(parts, list):
            raise OpenCIError("BaselineDefined: consistsOf is a list of event ids")
        custom = {"url": str(event["url"])} if event.get("url") else {}
        if origin:
            custom["origin"] = origin
        return [
            eiffel.composition_defined(
                str(_need(event, "name")),
                [openci_id(str(p)) for p in parts],
                version=event.get("version"),
                custom_data=custom or None,
                **_meta(event),
            )
        ]
    if kind == "ConfidenceLevelModified":
        value = str(_need(event, "value")).upper()
        if value not in _VALUES:
            raise OpenCIError(f"ConfidenceLevelModified: value {value!r}: one of {sorted(_VALUES)}")
        issuer = {"name": origin} if origin else None
        return [
            eiffel.confidence_level_modified(
                str(_need(event, "level")),
                value,
                [openci_id(str(_need(event, "subject")))],
                issuer=issuer,
                **_meta(event),
            )
        ]
    raise OpenCIError(
        f"unknown OpenCI event type {kind!r}: ArtifactCreated, "
        "BaselineDefined or ConfidenceLevelModified"
    )
