"""The echo participant: the smallest complete participant.

Run it with::

    boss-participant participants/examples/echo.ini

It answers every workitem with ``result = True``, copies the step's
``message`` param (or its own ``[echo] greeting``) into ``fields.msg``,
and, when the step has a ``sleep`` param, works that many seconds first,
stopping early when the step is cancelled: enough to watch leases and
cancels at work.
"""

from __future__ import annotations

import logging
import time

from participants import LifecycleControl, Participant, Workitem

log = logging.getLogger("echo")


class ParticipantHandler(Participant):
    """What ``echo.ini`` names (``class`` defaults to this name)."""

    greeting = "hello"

    def handle_lifecycle_control(self, ctrl: LifecycleControl) -> None:
        super().handle_lifecycle_control(ctrl)  # keeps ctrl.config as self.config
        if ctrl.message == "start" and self.config is not None:
            self.greeting = self.config.get("echo", "greeting", fallback=self.greeting)
        log.info("lifecycle: %s", ctrl.message)

    def handle_wi(self, wi: Workitem) -> None:
        deadline = time.monotonic() + float(wi.params.get("sleep", 0))
        while time.monotonic() < deadline and not wi.cancelled:
            time.sleep(0.1)
        wi.msg.append(str(wi.params.get("message", self.greeting)))
        wi.result = True

    def handle_cancel(self, wi: Workitem) -> None:
        log.info("%s cancelled", wi.fei.get("subid"))
