"""get_request and change_request_state: read and decide an OBS request.

``get_request``
    Params: ``id`` (optional; see ``obs_base`` for where the id comes from).
    Writes ``req``: ``{id, state, who, creator, description, actions}`` (the
    actions with the key names of BOSS's OBS events), and ``ev.actions``
    when the event carried none (so the checks find them either way).

``change_request_state``
    Params: ``action``: ``accept``, ``reject`` (or ``decline``), ``revoke``,
    ``supersede``, or ``state``: the OBS state itself (``accepted``, ...);
    ``comment``: a string or a list of lines (``$f:msg``); ``id``
    (optional). POSTs ``/request/<id>?cmd=changestate&newstate=..``. Writes
    ``req.state`` and a line to ``msg``. OBS refusing (a request already
    accepted, no permission) fails the step with OBS's own summary.

Configuration: ``[obs]`` (``obs_base``). Example INI::

    [participant]
    name = change_request_state
    code = participants.standard.obs_request
    class = ChangeRequestState

    [obs]
    apiurl = https://api.example.org
    user = boss
    password = secret
"""

from __future__ import annotations

from participants.standard.config import as_lines
from participants.standard.obs_base import ObsParticipant, request_id
from participants.workitem import Workitem

__all__ = ["NEW_STATES", "ChangeRequestState", "GetRequest"]

#: change_request_state's actions and the OBS states they set
NEW_STATES = {
    "accept": "accepted",
    "reject": "declined",
    "decline": "declined",
    "revoke": "revoked",
    "supersede": "superseded",
    "review": "review",
    "new": "new",
}


class GetRequest(ObsParticipant):
    def handle_wi(self, wi: Workitem) -> None:
        req = self.client.request(request_id(wi))
        wi.fields["req"] = req
        ev = wi.fields.setdefault("ev", {})
        if isinstance(ev, dict) and not ev.get("actions"):
            ev["actions"] = req["actions"]
        wi.result = True


class ChangeRequestState(ObsParticipant):
    def handle_wi(self, wi: Workitem) -> None:
        params = wi.params
        state = params.get("state")
        if not state:
            action = str(params.get("action") or "")
            if action not in NEW_STATES:
                raise ValueError(
                    f"change_request_state: action {action!r} is not one of "
                    f"{', '.join(NEW_STATES)} (or give params.state)"
                )
            state = NEW_STATES[action]
        rid = request_id(wi)
        comment = "\n".join(as_lines(params.get("comment")))
        self.client.change_request_state(rid, str(state), comment)
        req = wi.fields.get("req")
        if isinstance(req, dict):
            req["state"] = state
        else:
            wi.fields["req"] = {"id": rid, "state": state}
        wi.msg.append(f"request {rid} {state}")
        wi.result = True
