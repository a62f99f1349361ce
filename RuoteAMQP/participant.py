"""``RuoteAMQP.participant.Participant``: python-ruote-amqp's standalone
participant base class, run by BOSS's participant runtime.

A subclass overrides ``consume()`` and reads and changes ``self.workitem``;
``Participant(ruote_queue, amqp_host, amqp_user, amqp_pass, amqp_vhost)``
then ``run()`` serves the queue until ``finish()``. Underneath it is a BOSS
handler (``handle_wi`` calls ``consume``) run by ``participants.Runtime``,
so it gets the runtime's behaviour: an exception in ``consume`` becomes the
reply's ``error``, ``self.workitem.forget = True`` sends no reply, cancels,
leases for long steps and reconnection. The same object can also be given
to ``participants.testing`` or named as a handler class in an INI file.

``reply_to_engine(workitem)`` replies at once through the runtime (its
``send_to_engine``): the runtime replies by itself when ``consume`` returns,
so it is for a workitem held earlier with ``forget = True``. Not supported:
amqplib's connection options; the queue name is also the participant's name.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.config import Config, amqp_section_url
from participants.workitem import Workitem

__all__ = ["Participant"]


class Participant:
    """Override ``consume()``; ``self.workitem`` is the workitem in hand."""

    def __init__(
        self,
        ruote_queue: str = "",
        amqp_host: str = "localhost",
        amqp_user: str = "ruote",
        amqp_pass: str = "ruote",
        amqp_vhost: str = "ruote",
    ) -> None:
        self._queue = ruote_queue
        self._broker_url = amqp_section_url(
            {"host": amqp_host, "user": amqp_user, "pwd": amqp_pass, "vhost": amqp_vhost}
        )
        self._runtime: Any = None
        self.workitem: Workitem | None = None
        self.log = logging.getLogger(__name__)

    # -- the BOSS handler contract ---------------------------------------------------
    def handle_wi(self, wi: Workitem) -> None:
        self.workitem = wi
        if wi.is_cancel:
            self.log.warning("Ignoring a cancel message")
            return
        self.consume()

    def consume(self) -> None:
        """Override to do the work on ``self.workitem``."""

    # -- standalone use -------------------------------------------------------------
    def run(self) -> int:
        """Serve ``ruote_queue`` until ``finish()``; the runtime's exit status."""
        if self._runtime is not None:
            raise RuntimeError("Participant already running")
        from participants.config import ParticipantConfig
        from participants.runtime import Runtime

        config = ParticipantConfig(
            name=self._queue,
            queue=self._queue,
            boss=Config.load(broker_url=self._broker_url),
        )
        self._runtime = Runtime(config, handler=self)
        try:
            return int(self._runtime.run())
        finally:
            self._runtime = None

    def finish(self) -> None:
        """Stop gracefully (the workitem in hand is finished and replied)."""
        if self._runtime is not None:
            self._runtime.stop()

    def reply_to_engine(self, workitem: Workitem | None = None) -> None:
        """Reply ``workitem`` (default: the one in hand) to the engine now,
        through the runtime that runs this participant (it set
        ``send_to_engine`` on it); a workitem replied so is not replied again
        when ``consume`` returns."""
        send = getattr(self, "send_to_engine", None)
        if send is None:
            raise RuntimeError(
                "reply_to_engine: this participant is not run by the participant "
                "runtime (run() or boss-participant), so there is nothing to reply through"
            )
        wi = workitem if workitem is not None else self.workitem
        if wi is None:
            raise ValueError("reply_to_engine: no workitem in hand and none given")
        send(wi)
