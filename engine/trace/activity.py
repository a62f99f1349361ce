"""The engine's transitions as Eiffel activity events.

Every lifecycle ``Record`` the interpreter emits (``engine/core/lifecycle.py``:
exactly one per transition of a run or a step) becomes one Eiffel event:

=========  =============================  ==========================================
record     event                          links
=========  =============================  ==========================================
triggered  EiffelActivityTriggeredEvent   run: CAUSE -> what launched it;
                                          step: CONTEXT -> its run's ActT,
                                          PRECURSOR -> the steps whose end led to it,
                                          ORIGINAL_TRIGGER -> the first attempt
started    EiffelActivityStartedEvent     ACTIVITY_EXECUTION -> its ActT
finished   EiffelActivityFinishedEvent    ACTIVITY_EXECUTION -> its ActT
canceled   EiffelActivityCanceledEvent    ACTIVITY_EXECUTION -> its ActT
=========  =============================  ==========================================

Event ids are *derived* from the run, the step and the transition
(``activity_id``): a version-4-shaped UUID made from a SHA-256 digest. So
the same transition always has the same id: an engine that carries out a
dead engine's effects again publishes the same events, which the graph
stores once; a participant can name its step's activity (to link the
events it produces) from the workitem alone; and links to a step that was
triggered in an earlier message need no lookup.
"""

from __future__ import annotations

import hashlib
import socket
import uuid
from typing import Any

from engine.core import states
from engine.core.effects import Record

__all__ = ["VERSIONS", "activity_id", "record_event", "step_activity_id"]

#: the versions emitted: the newest of each that eiffellib's schemas cover
VERSIONS = {
    "EiffelActivityTriggeredEvent": "4.3.0",
    "EiffelActivityStartedEvent": "4.3.0",
    "EiffelActivityFinishedEvent": "3.3.0",
    "EiffelActivityCanceledEvent": "3.2.0",
}

_TYPE = {
    "triggered": "EiffelActivityTriggeredEvent",
    "started": "EiffelActivityStartedEvent",
    "finished": "EiffelActivityFinishedEvent",
    "canceled": "EiffelActivityCanceledEvent",
}

#: engine outcomes -> Eiffel conclusions (SKIPPED has none: INCONCLUSIVE)
_CONCLUSION = {
    states.SUCCESSFUL: "SUCCESSFUL",
    states.UNSUCCESSFUL: "UNSUCCESSFUL",
    states.FAILED_OUTCOME: "FAILED",
    states.ABORTED: "ABORTED",
    states.TIMED_OUT: "TIMED_OUT",
}

_HOST = socket.gethostname()


def activity_id(wfid: str, eid: str | None, event: str) -> str:
    """The id of the event for ``event`` (triggered, started, finished,
    canceled) of run ``wfid`` (``eid`` None) or of its step ``eid``."""
    digest = hashlib.sha256(f"boss\0{wfid}\0{eid or ''}\0{event}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def step_activity_id(fei: dict[str, Any]) -> str:
    """The ActivityTriggered id of the step a workitem belongs to (what a
    participant's own events link to as CONTEXT)."""
    return activity_id(str(fei["wfid"]), str(fei["subid"]), "triggered")


def record_event(record: Record, *, domain: str = "boss") -> dict[str, Any]:
    """The Eiffel event for one lifecycle record."""
    etype = _TYPE[record.event]
    wfid, eid = record.wfid, record.eid
    trig = activity_id(wfid, eid, "triggered")
    meta: dict[str, Any] = {
        "id": trig if record.event == "triggered" else activity_id(wfid, eid, record.event),
        "type": etype,
        "version": VERSIONS[etype],
        "time": int(record.at * 1000),
        "source": {"domainId": domain, "host": _HOST, "name": "boss"},
    }
    links: list[dict[str, str]] = []
    data: dict[str, Any] = {}
    rdata = record.data or {}
    if record.event == "triggered":
        custom = [{"key": "wfid", "value": wfid}]
        data["name"] = record.name
        data["executionType"] = "AUTOMATED"
        if eid is None:
            data["categories"] = ["boss.run"]
            causes = rdata.get("cause") or []
            data["triggers"] = (
                [{"type": "EIFFEL_EVENT"}]
                if causes
                else [{"type": "OTHER", "description": "boss launch"}]
            )
            links.extend({"type": "CAUSE", "target": c} for c in causes)
        else:
            custom.append({"key": "step", "value": eid})
            data["categories"] = ["boss.step"]
            data["triggers"] = [{"type": "OTHER", "description": "the run reached the step"}]
            links.append({"type": "CONTEXT", "target": activity_id(wfid, None, "triggered")})
            links.extend(
                {"type": "PRECURSOR", "target": activity_id(wfid, p, "triggered")}
                for p in rdata.get("precursors") or ()
            )
            if rdata.get("original"):
                links.append(
                    {
                        "type": "ORIGINAL_TRIGGER",
                        "target": activity_id(wfid, rdata["original"], "triggered"),
                    }
                )
            for key in ("participant", "queue", "subprocess"):
                if rdata.get(key):
                    custom.append({"key": key, "value": str(rdata[key])})
        data["customData"] = custom
    else:
        links.append({"type": "ACTIVITY_EXECUTION", "target": trig})
        if record.event == "finished":
            conclusion = _CONCLUSION.get(record.outcome or "", "INCONCLUSIVE")
            outcome: dict[str, Any] = {"conclusion": conclusion}
            if record.outcome not in _CONCLUSION:
                outcome["description"] = str(record.outcome or "no outcome").lower()
            data["outcome"] = outcome
        elif record.event == "started" and rdata.get("instance"):
            data["customData"] = [{"key": "instance", "value": str(rdata["instance"])}]
        elif record.event == "canceled":
            data["reason"] = "cancelled before it started"
    return {"meta": meta, "data": data, "links": links}
