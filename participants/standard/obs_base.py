"""What the OBS participants share: the ``[obs]`` section, the client, and
where a step finds its request's id and actions.

Configuration (``[obs]``)
-------------------------

| key | default | meaning |
|---|---|---|
| ``apiurl`` | (required) | the OBS API (``https://api.example.org``) |
| ``user``, ``password`` | none | HTTP Basic auth |
| ``retries`` | 3 | more attempts on a connection error or a 5xx answer |
| ``retry_delay`` | 1 | seconds before the first retry (doubled each time) |
| ``timeout`` | 60 | seconds per HTTP call |

The request a step works on: ``params.id``, else the ``req.id`` field (what
``get_request`` wrote), else ``ev.id`` (the OBS event). Its actions: the
``req.actions`` field, else ``ev.actions`` (``type``, ``sourceproject``,
``sourcepackage``, ``sourcerevision``, ``targetproject``, ``targetpackage``).
"""

from __future__ import annotations

from typing import Any

from participants.handler import LifecycleControl, Participant
from participants.standard.config import ConfigError, Section
from participants.standard.obs_client import ObsClient
from participants.workitem import Workitem

__all__ = ["ObsParticipant", "request_actions", "request_id"]


class ObsParticipant(Participant):
    """A participant that talks to OBS: ``self.obs`` is its ``ObsClient``."""

    obs: ObsClient | None = None

    def handle_lifecycle_control(self, ctrl: LifecycleControl) -> None:
        super().handle_lifecycle_control(ctrl)
        if ctrl.message == "start":
            cfg = Section(ctrl.config, "obs")
            apiurl = cfg.get("apiurl")
            if not apiurl:
                raise ConfigError("[obs] apiurl is missing")
            self.obs = ObsClient(
                apiurl,
                cfg.get("user"),
                cfg.get("password"),
                retries=cfg.int("retries", 3),
                retry_delay=cfg.float("retry_delay", 1.0),
                timeout=cfg.float("timeout", 60.0),
            )

    @property
    def client(self) -> ObsClient:
        if self.obs is None:
            raise RuntimeError("this OBS participant was not started (no [obs] apiurl)")
        return self.obs


def request_id(wi: Workitem) -> str:
    rid = wi.params.get("id") or wi.lookup("req.id") or wi.lookup("ev.id")
    if rid in (None, ""):
        raise ValueError(f"{wi.participant_name}: no request id (params.id, req.id or ev.id)")
    return str(rid)


def request_actions(wi: Workitem, kind: str | None = "submit") -> list[dict[str, Any]]:
    actions = wi.lookup("req.actions") or wi.lookup("ev.actions") or []
    if not isinstance(actions, list):
        raise ValueError(f"{wi.participant_name}: actions is not a list: {actions!r}")
    return [a for a in actions if isinstance(a, dict) and (kind is None or a.get("type") == kind)]
