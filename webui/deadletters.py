"""What the broker holds beside the runs: the dead letters (the engine's
and the traceability aggregator's dead-letter queues) and the participant
instances that serve each participant queue.

Dead letters are read, put back (``reinject``) and removed (``drop``)
with ``engine.broker``'s functions, exactly as ``boss deadletters`` and
``boss trace deadletters`` do, on either broker (RabbitMQ, or kombu's Redis
transport on the embedded Valkey). Listing takes every letter without
acknowledging and lets the broker put them all back. Acting is for admins
and is written to the audit log.

Participant instances: each instance binds its own control queue
(``<control_exchange>.<queue>.<instance>``) to the control exchange with
its participant queue as the routing key (``participants.link``). On
RabbitMQ the work queue's consumer count says how many instances consume
it; kombu's Redis transport counts no consumers, but keeps the control
exchange's bindings in ``_kombu.binding.<exchange>``: one per instance
that has not stopped (an instance that was killed stays listed until the
binding is removed; the page says "bound").
"""

from __future__ import annotations

import json
import re
from typing import Any

from engine.broker import connect, drop_deadletter, list_deadletters, reinject_deadletter
from engine.config import Config
from webui.access import Refused, require
from webui.services import Services
from webui.users import User

__all__ = ["SOURCES", "act", "instances", "letters_view"]

#: the dead-letter queues shown: the engine's, the trace aggregator's
SOURCES = ("engine", "trace")

#: how much of a letter's body the page shows
PREVIEW = 400

_WFID = re.compile(r"\b\d{8}-[0-9a-f]{12}\b")


def _config(svc: Services, source: str) -> Config:
    if source == "engine":
        return svc.config
    if source == "trace":
        from engine.trace import TraceTopology

        return TraceTopology(svc.config).deadletter_config
    raise Refused(f"unknown dead-letter queue {source!r}: one of {', '.join(SOURCES)}", 404)


def _wfid_of(body: str) -> str | None:
    """The run a dead letter's body names (``wfid``, ``fei.wfid``,
    ``workitem.fei.wfid``, else the first run id in the text)."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        data = None
    if isinstance(data, dict):
        workitem = data.get("workitem")
        holders = (
            data,
            data.get("fei"),
            workitem.get("fei") if isinstance(workitem, dict) else None,
        )
        for holder in holders:
            if isinstance(holder, dict) and isinstance(holder.get("wfid"), str):
                return holder["wfid"]
    found = _WFID.search(body or "")
    return found.group(0) if found else None


def _letter(record: dict[str, Any], source: str) -> dict[str, Any]:
    body = str(record.get("body") or "")
    encoding = record.get("encoding") or "text"
    reason = str(record.get("reason") or "")
    return {
        "id": str(record.get("id") or ""),
        "source": source,
        "reason": reason,
        "reason_line": reason.splitlines()[0] if reason else "",
        "queue": record.get("queue") or "",
        "at": record.get("at") or "",
        "by": record.get("by") or "",
        "encoding": encoding,
        "content_type": record.get("content_type") or "",
        "preview": body[:PREVIEW],
        "truncated": len(body) > PREVIEW,
        "size": len(body),
        "wfid": _wfid_of(body) if encoding == "text" else None,
    }


def letters_view(svc: Services) -> dict[str, Any]:
    """``{"sources": [{name, queue, letters, error}], "total": n}``; a
    letter names its run (``wfid``) when its body does and the run exists."""
    out = []
    total = 0
    with connect(svc.config) as conn:
        for source in SOURCES:
            cfg = _config(svc, source)
            entry: dict[str, Any] = {
                "name": source,
                "queue": cfg.deadletter_queue,
                "letters": [],
                "error": None,
            }
            try:
                entry["letters"] = [_letter(r, source) for r in list_deadletters(cfg, conn)]
            except Exception as exc:  # the broker is away: say so, show the page
                entry["error"] = f"broker: {type(exc).__name__}: {exc}"
            total += len(entry["letters"])
            out.append(entry)
    known: dict[str, bool] = {}
    for entry in out:
        for letter in entry["letters"]:
            wfid = letter["wfid"]
            if wfid and wfid not in known and len(known) < 200:
                known[wfid] = svc.store.load_run(wfid) is not None
            if wfid and not known.get(wfid):
                letter["wfid"] = None
    return {"sources": out, "total": total}


def act(
    svc: Services, user: User, source: str, action: str, letter_id: str, remote: str = ""
) -> str:
    """``reinject`` or ``drop`` dead letter ``letter_id`` of ``source``
    (admins only; audited: done here, refused by the app's handler);
    returns what was done."""
    require("admin", user)
    if action not in ("reinject", "drop"):
        raise Refused(f"unknown action {action!r}: reinject or drop", 400)
    cfg = _config(svc, source)
    try:
        with connect(svc.config) as conn:
            if action == "reinject":
                record = reinject_deadletter(cfg, conn, letter_id)
            else:
                record = drop_deadletter(cfg, conn, letter_id)
    except KeyError:
        # refusals are audited by the app's handler (``webui.app``)
        raise Refused(f"no dead letter {letter_id} on {cfg.deadletter_queue}", 404) from None
    except Exception as exc:
        raise Refused(
            f"{action} of dead letter {letter_id}: broker: {type(exc).__name__}: {exc}", 502
        ) from None
    detail = f"{record.get('queue')}: {str(record.get('reason') or '').splitlines()[0][:300]}"
    svc.audit.record(
        user, f"deadletter {action}", f"{source}:{letter_id}", detail=detail, remote=remote
    )
    if action == "reinject":
        return f"re-injected dead letter {letter_id} into {record.get('queue')}"
    return f"dropped dead letter {letter_id}"


# -- participant instances ------------------------------------------------------------


def instances(svc: Services, queues: list[str]) -> dict[str, dict[str, Any]]:
    """``{queue: {"count": n, "ids": [...], "how": "consumers"|"bound"}}``
    (``{"error": ...}`` when the broker does not answer)."""
    from engine.broker import is_redis, queue_info

    queues = list(dict.fromkeys(queues))
    if not queues:
        return {}
    url = svc.config.resolved_broker_url()
    try:
        if is_redis(url):
            bound = _redis_bindings(svc)
            return {
                q: {"count": len(bound.get(q, [])), "ids": bound.get(q, []), "how": "bound"}
                for q in queues
            }
        out: dict[str, dict[str, Any]] = {}
        with connect(svc.config) as conn:
            for q in queues:
                info = queue_info(conn, q)
                out[q] = {"count": info.consumers, "ids": [], "how": "consumers"}
        return out
    except Exception as exc:
        return {q: {"error": f"broker: {type(exc).__name__}: {exc}"} for q in queues}


def _redis_bindings(svc: Services) -> dict[str, list[str]]:
    """The instances bound to the control exchange, per participant queue,
    read from kombu's binding set on the broker's Redis (through a kombu
    channel: the same server and database as the participants use)."""
    exchange = svc.config.control_exchange
    prefix = f"{exchange}."
    out: dict[str, list[str]] = {}
    with connect(svc.config) as conn, conn.channel() as channel:
        members = channel.client.smembers(f"_kombu.binding.{exchange}")
    for raw in members:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        parts = text.split("\x06\x16")
        if len(parts) != 3:
            continue
        routing_key, _, queue = parts
        if not queue.startswith(prefix + routing_key + "."):
            continue
        out.setdefault(routing_key, []).append(queue[len(prefix + routing_key) + 1 :])
    for ids in out.values():
        ids.sort()
    return out
