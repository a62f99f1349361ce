"""Catch participants: ``built_notice_*``, ``request_notice_*`` and any
other ``*_notice_*``, registered by a regular expression.

A process that must wait for something another process sees (a build
finishing, a request being reviewed, an artifact being promoted) waits with
a ``listen`` step on a participant name (``listen: {to:
"request_notice_${ev.id}"}``). The process launched by that event reaches
that name (``participant: {ref: "request_notice_${ev.id}"}``): the engine
wakes every listener as the workitem is dispatched, and the catch
participant, registered as the regexp ``request_notice_.*``, replies at
once. Without a registration matching the name, the notice run would stop
in error ("no participant"); that is what these participants are for.

Each one also shapes the notice's fields. A listener with ``upon: reply``
receives them (they are merged into the listening run); one with the default
``upon: apply`` is woken as the notice is dispatched, before the catch
participant runs, and gets the notice run's fields as they were (so
BOSS_request_statechange sets ``review`` itself before reaching
``request_notice_<id>``, for BOSS_check_SR's ``upon: apply`` listen):

* ``request_notice_<id>`` (``RequestNotice``): ``review: {state, by,
  comment}`` from the OBS event (``ev.state`` / ``ev.newstate`` /
  ``ev.reviewstate``, ``ev.who`` / ``ev.by_user``, ``ev.comment``) unless
  the workitem has one; ``state`` is lowercased (``accepted``,
  ``declined``, ``new``, ``review``, ``revoked``);
* ``built_notice_<project>`` (``BuiltNotice``): ``built: {project,
  repository, arch, package}`` from ``ev``;
* any other (``Notice``): nothing more.

Every notice writes ``notice: {name, wfid, at}`` (its participant name, the
notifying run, the time). Params: none. Configuration: none.

Example INI::

    [participant]
    name = request_notice
    regexp = request_notice_.*
    register = true
    code = participants.standard.notices
    class = RequestNotice
"""

from __future__ import annotations

import datetime
from typing import Any

from participants.handler import Participant
from participants.workitem import Workitem

__all__ = ["BuiltNotice", "Notice", "RequestNotice"]


class Notice(Participant):
    def handle_wi(self, wi: Workitem) -> None:
        wi.fields["notice"] = {
            "name": wi.participant_name,
            "wfid": wi.wfid,
            "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        self.shape(wi, wi.fields.get("ev") if isinstance(wi.fields.get("ev"), dict) else {})
        wi.result = True

    def shape(self, wi: Workitem, ev: dict[str, Any]) -> None:
        """Add what the listeners need from the event (nothing here)."""


class RequestNotice(Notice):
    def shape(self, wi: Workitem, ev: dict[str, Any]) -> None:
        if isinstance(wi.fields.get("review"), dict):
            return
        state = ev.get("reviewstate") or ev.get("newstate") or ev.get("state")
        wi.fields["review"] = {
            "state": str(state or "").lower(),
            "by": ev.get("by_user") or ev.get("who") or ev.get("author"),
            "comment": ev.get("comment") or "",
        }


class BuiltNotice(Notice):
    def shape(self, wi: Workitem, ev: dict[str, Any]) -> None:
        wi.fields["built"] = {k: ev.get(k) for k in ("project", "repository", "arch", "package")}
