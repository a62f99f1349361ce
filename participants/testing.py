"""Test a participant handler without a broker or an engine.

For participant authors, in the spirit of ``celery.contrib.testing``::

    from participants.testing import ParticipantTester, make_workitem

    def test_echo():
        with ParticipantTester(ParticipantHandler(), config="echo.ini") as tester:
            reply = tester.handle(make_workitem("echo", params={"message": "hi"}))
        assert reply.replied and reply.error is None
        assert reply.fields["msg"] == ["hi"]

``make_workitem`` builds what the engine sends (the ruote-amqp workitem of
``engine/schemas/workitem.json``). ``ParticipantTester`` runs the handler
through the participant runtime's own code (``participants.runtime.Runtime``
and ``participants.job.Job``), with a stand-in for the broker connection:
the lifecycle ``start``/``stop`` calls, the validation of the workitem
(a malformed one is dead-lettered), ``handle_wi`` on its own thread, an
exception turned into the reply's ``error``, ``forget`` (done, no reply),
a cancel (no reply), the events a step emits and the reply a second
delivery of the same step gets. What the runtime would have published is
returned as a ``Reply``.
"""

from __future__ import annotations

import configparser
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.wire import validate
from participants.config import ParticipantConfig, load_config
from participants.workitem import Workitem

__all__ = ["ParticipantTester", "Reply", "make_workitem", "run_participant"]

#: the queue replies go to, unless the workitem says otherwise
ENGINE_QUEUE = "boss_engine"


def make_workitem(
    participant_name: str = "test",
    fields: dict[str, Any] | None = None,
    *,
    params: dict[str, Any] | None = None,
    wfid: str = "20270115-0000000000aa",
    expid: str = "0_0",
    subid: str | None = None,
    wf_name: str | None = "test",
    wf_revision: str | None = None,
    forget: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """A workitem as the engine dispatches it (validated against the wire
    schema). ``fields`` are the run's fields, ``params`` the step's params
    (``fields.params``); ``subid`` defaults to ``<expid>-1``; ``extra``
    adds top-level keys (``dispatched_at``, ``command``...)."""
    body: dict[str, Any] = dict(fields or {})
    body["params"] = dict(params or body.get("params") or {})
    data: dict[str, Any] = {
        "fei": {
            "wfid": wfid,
            "expid": expid,
            "subid": subid or f"{expid}-1",
            "engine_id": "boss",
        },
        "fields": body,
        "participant_name": participant_name,
        "wf_name": wf_name,
        "wf_revision": wf_revision,
        "dispatched_at": "2027-01-15T08:00:00.000Z",
    }
    if forget:
        data["forget"] = True
    data.update(extra)
    validate("workitem", data)
    return data


@dataclass
class Reply:
    """What the runtime did with one workitem.

    ``replied``: a reply was sent (``reply`` is it, as the engine receives
    it); ``forgotten``: the step was ``forget`` and done without a reply;
    ``cancelled``: it was cancelled while in hand (no reply);
    ``deadlettered``: it was malformed (``deadletter`` is the record).
    ``workitem`` is the ``Workitem`` as the handler left it (``None`` when
    the handler never ran), ``events`` what it emitted (published before
    the reply)."""

    replied: bool = False
    forgotten: bool = False
    cancelled: bool = False
    deadlettered: bool = False
    reply: dict[str, Any] | None = None
    reply_to: str | None = None
    workitem: Workitem | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    deadletter: dict[str, Any] | None = None
    #: the step log the runtime sent: ``(level, text)`` per line, in order
    #: (``docs/participants.md``, "Step logs")
    log: list[tuple[str, str]] = field(default_factory=list)

    @property
    def fields(self) -> dict[str, Any]:
        """The reply's fields, else the fields as the handler left them."""
        if self.reply is not None:
            return self.reply["fields"]
        return self.workitem.fields if self.workitem is not None else {}

    @property
    def error(self) -> dict[str, Any] | None:
        """The reply's ``error`` (``message``, ``class``, ``traceback``)."""
        return None if self.reply is None else self.reply.get("error")

    @property
    def result(self) -> Any:
        """``fields.__result__`` (what the handler set as ``wi.result``)."""
        return self.fields.get("__result__")


class _Message:
    """A stand-in for the kombu message of one delivery."""

    def __init__(self, body: bytes, reply_to: str | None) -> None:
        self.body = body
        self.properties = {"reply_to": reply_to} if reply_to else {}
        self.content_type = "application/json"
        self.headers: dict[str, Any] = {}
        self.acked = False
        self.rejected = False

    def ack(self) -> None:
        self.acked = True

    def reject(self, requeue: bool = False) -> None:
        self.rejected = True


class _Link:
    """A stand-in for ``participants.link.BrokerLink``: records what the
    runtime publishes."""

    generation = 1
    control_queue = "control"
    consuming = False

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []

    unconfirmed = 0

    def publish(
        self,
        routing_key: str,
        obj: dict[str, Any] | bytes,
        *,
        then: Callable[[], None] | None = None,
    ) -> None:
        body = json.loads(obj) if isinstance(obj, bytes | str) else obj
        self.published.append((routing_key, body))
        if then is not None:
            then()

    def publish_events(self, events: list[dict[str, Any]], *, wait: bool = True) -> None:
        self.events.extend(events)

    def after_confirms(self, then: Callable[[], None]) -> None:
        then()  # nothing to confirm here

    def declare(self, queue: str) -> None:
        return None

    def stop_consuming(self) -> None:
        self.consuming = False

    def consume(self) -> None:
        self.consuming = True


def _config(
    config: str | os.PathLike[str] | ParticipantConfig | dict[str, dict[str, str]] | None,
    name: str,
) -> ParticipantConfig:
    if isinstance(config, ParticipantConfig):
        return config
    if config is None or isinstance(config, dict):
        parser = configparser.ConfigParser()
        parser.read_dict(config or {})
        return ParticipantConfig(name=name, queue=name, parser=parser)
    return load_config(config, need_code=False)


class ParticipantTester:
    """Runs ``handler`` (an instance) as ``boss-participant`` would, with no
    broker. ``config`` is the participant's INI file, a ``ParticipantConfig``
    or a mapping of sections (``{"echo": {"greeting": "hi"}}``) handed to
    ``handle_lifecycle_control("start")``. Use it as a context manager (or
    call ``start``/``stop``); ``handle`` runs one workitem."""

    def __init__(
        self,
        handler: Any,
        config: str
        | os.PathLike[str]
        | ParticipantConfig
        | dict[str, dict[str, str]]
        | None = None,
        *,
        name: str = "test",
        timeout: float = 30.0,
    ) -> None:
        from participants.runtime import Runtime  # the runtime itself (and kombu)

        self.runtime = Runtime(_config(config, name), handler)
        self.handler = handler
        self.timeout = timeout
        self.link = _Link()
        self.runtime.link = self.link  # type: ignore[assignment]
        self.started = False

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> ParticipantTester:
        """Call ``handle_lifecycle_control("start")`` with the INI as the
        runtime does; raises ``RuntimeError`` if it fails (the runtime would
        not start)."""
        if not self.runtime._lifecycle("start", config=self.runtime.config.parser, fatal=True):
            raise RuntimeError("handle_lifecycle_control('start') failed: see the log")
        self.started = True
        return self

    def stop(self) -> None:
        """Call ``handle_lifecycle_control("stop")`` (errors are logged)."""
        if self.started:
            self.runtime._lifecycle("stop")
            self.started = False

    def __enter__(self) -> ParticipantTester:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- workitems --------------------------------------------------------------
    def handle(
        self,
        workitem: dict[str, Any] | bytes,
        *,
        reply_to: str | None = ENGINE_QUEUE,
        cancel: bool = False,
    ) -> Reply:
        """Deliver ``workitem`` (a dict from ``make_workitem`` or a raw body)
        and wait for the handler; the ``Reply`` says what the runtime sent.
        With ``cancel`` a cancel item for the step arrives as the handler
        starts (``wi.cancelled`` is true, ``handle_cancel`` is called)."""
        if not self.started:
            self.start()
        runtime, link = self.runtime, self.link
        body = workitem if isinstance(workitem, bytes) else json.dumps(workitem).encode()
        before = len(link.published)
        runtime._on_workitem(_Message(body, reply_to))
        job = runtime.job
        out = Reply()
        if job is not None:
            if cancel:
                control = {
                    "type": "cancel",
                    "fei": dict(job.fei),
                    "participant_name": job.wi.participant_name,
                }
                runtime._on_control(_Message(json.dumps(control).encode(), None))
            if not job.done.wait(self.timeout):
                raise TimeoutError(f"the handler did not return within {self.timeout}s")
            runtime._finish(link, job)  # type: ignore[arg-type]
            out.workitem = job.wi
            out.events = list(job.wi.events)
            out.cancelled = job.cancelled
            out.forgotten = job.forget and not job.cancelled
        for queue, sent in link.published[before:]:
            if queue == runtime.config.boss.step_log_queue:
                out.log += [(level, text) for _t, level, text in sent["lines"]]
            elif queue == runtime.config.boss.deadletter_queue:
                out.deadlettered = True
                out.deadletter = sent
            else:
                out.replied = True
                out.reply = sent
                out.reply_to = queue
        return out


def run_participant(
    handler: Any,
    workitem: dict[str, Any],
    config: str | os.PathLike[str] | ParticipantConfig | dict[str, dict[str, str]] | None = None,
) -> Reply:
    """Start ``handler``, run one ``workitem`` and stop it: the ``Reply``."""
    with ParticipantTester(handler, config) as tester:
        return tester.handle(workitem)
