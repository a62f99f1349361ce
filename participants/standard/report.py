"""``report``: tell the change's forge where a run is, from inside the run.

``boss reporter`` reports a run's start and end by itself (docs/reporters.md);
this step reports in between: "building", "tests passed, deploying", or a
failure found early. It does not call the forge: it adds the report to
the reporters' job store (Redis) and returns at once, and ``boss
reporter`` sends it (retried, idempotent, listed when it fails for good),
so a forge that is down never holds the step.

Params:

``state``
    ``pending``, ``success``, ``failure`` or ``error``; default: from the
    fields (``status``/``__result__`` failure markers, see
    ``engine/core/outcome.py``), else ``pending``.
``description``
    the text (a status's description, a comment's or review's message);
    default ``BOSS: <process> <state>``.
``context``
    the status context / check name (default: the run's, ``[reporters]
    context`` or the process's ``reporters.context``).

Writes ``report``: ``{"jobs": [ids], "state": ...}``; a run that no forge
launched (no ``ev`` identity) gets ``{"jobs": []}`` and nothing is sent.
A bad ``state`` is an error of the step.

Configuration: ``[boss]`` (the Redis holding the jobs: ``redis_url``,
``key_prefix``) and ``[reporters]`` of the participant's INI (the same keys
as ``boss reporter``'s; only those that shape a report matter here).
"""

from __future__ import annotations

from typing import Any

from engine.core import outcome as oc
from participants.handler import LifecycleControl, Participant
from participants.workitem import Workitem

__all__ = ["Report"]

_STATES = (oc.PENDING, oc.SUCCESS, oc.FAILURE, oc.ERROR)


class Report(Participant):
    reporter: Any = None

    def handle_lifecycle_control(self, ctrl: LifecycleControl) -> None:
        super().handle_lifecycle_control(ctrl)
        if ctrl.message == "start":
            self.reporter = self.make_reporter(ctrl.config)

    @staticmethod
    def make_reporter(parser: Any) -> Any:
        from engine.config import Config
        from engine.reporters import Reporter, ReporterSettings
        from engine.store import open_store

        config = Config.from_parser(parser) if parser is not None else Config.load()
        settings = ReporterSettings.from_parser(parser)
        store = open_store(config.resolved_redis_url(), prefix=config.key_prefix)
        return Reporter(config, settings, store.client, store)

    def handle_wi(self, wi: Workitem) -> None:
        state = str(wi.params.get("state") or oc.failure_marker(wi.fields) or oc.PENDING).lower()
        if state not in _STATES:
            raise ValueError(f"report: state {state!r} is not one of {', '.join(_STATES)}")
        fields = wi.fields
        context = wi.params.get("context")
        if context:
            own = {**(fields.get("reporters") or {}), "context": context}
            fields = {**fields, "reporters": own}
        description = wi.params.get("description")
        name = str(wi.wf_name or "process")
        transition = f"step:{wi.fei.get('subid')}"
        from engine.reporters import make_jobs

        specs = make_jobs(
            self.reporter.settings,
            wfid=wi.wfid,
            name=name,
            fields=fields,
            transition=transition,
            outcome=state,
            description=str(description) if description else None,
        )
        for spec in specs:
            self.reporter.jobs.add(spec)
        wi.fields["report"] = {"jobs": [s["id"] for s in specs], "state": state}
