"""Participants: the SDK a participant author imports and the runtime that runs it.

* ``Workitem``: the workitem a handler receives (``participants.workitem``);
* ``Participant``: an optional base class for handlers, and
  ``LifecycleControl``, what ``handle_lifecycle_control`` receives
  (``participants.handler``);
* ``Runtime``: runs a handler against the broker (``participants.runtime``;
  the ``boss-participant`` command). Imported on first use, so a handler
  module importing ``participants`` does not pull in kombu.

See ``docs/participants.md``.
"""

from __future__ import annotations

from typing import Any

from participants.handler import LifecycleControl, Participant
from participants.workitem import Workitem

__all__ = ["LifecycleControl", "Participant", "Runtime", "Workitem"]


def __getattr__(name: str) -> Any:
    if name == "Runtime":
        from participants.runtime import Runtime

        return Runtime
    raise AttributeError(f"module 'participants' has no attribute {name!r}")
