"""Participants of the end-to-end suite (run by ``participants.runtime`` in
their own processes). Each writes what it did to a report file named in its
own config section (``[report] path``), one JSON line per event, so the test
can check what happened, and how many times, from outside."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class _Reporting:
    def handle_lifecycle_control(self, ctrl: Any) -> None:
        if ctrl.message == "start":
            self.report = Path(ctrl.config.get("report", "path"))

    def note(self, event: str, wi: Any, **extra: Any) -> None:
        line = {
            "event": event,
            "pid": os.getpid(),
            "wfid": wi.wfid,
            "subid": wi.fei.get("subid"),
            "participant": wi.participant_name,
            **extra,
        }
        with self.report.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")


class Bump(_Reporting):
    """Adds one to ``n`` and its name to ``trail``; ``params.sleep`` seconds."""

    def handle_wi(self, wi: Any) -> None:
        self.note("call", wi)
        if wi.params.get("sleep"):
            time.sleep(float(wi.params["sleep"]))
        wi.fields["n"] = wi.fields.get("n", 0) + 1
        wi.fields.setdefault("trail", []).append(wi.params.get("tag") or wi.participant_name)


class Sleeper(_Reporting):
    """Sleeps ``params.seconds`` (in slices, stopping when cancelled)."""

    def handle_wi(self, wi: Any) -> None:
        self.note("call", wi)
        deadline = time.monotonic() + float(wi.params.get("seconds", 30))
        while time.monotonic() < deadline and not wi.cancelled:
            time.sleep(0.05)
        wi.fields["slept"] = True

    def handle_cancel(self, wi: Any) -> None:
        self.note("cancel", wi)


class CrashOnce(_Reporting):
    """The first instance to take a step dies mid-step (``os._exit``), after
    ``params.after`` seconds; whoever takes it again finishes it."""

    def handle_wi(self, wi: Any) -> None:
        marker = self.report.with_name(f"crashed-{wi.fei['subid']}")
        self.note("call", wi)
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(float(wi.params.get("after", 0.2)))
            self.note("crash", wi)
            os._exit(17)
        wi.fields["n"] = wi.fields.get("n", 0) + 1


class Raise(_Reporting):
    """Raises unless the field ``fixed`` is set."""

    def handle_wi(self, wi: Any) -> None:
        self.note("call", wi)
        if not wi.fields.get("fixed"):
            raise RuntimeError(f"cannot build {wi.fields.get('project', '?')}")
        wi.fields["built"] = True


class Build(_Reporting):
    """Defines a baseline of the change in ``fields.change`` and builds an
    artifact of it: CompositionDefined (ELEMENT -> the change) and
    ArtifactCreated (COMPOSITION -> it), linked to the step by CONTEXT."""

    def handle_wi(self, wi: Any) -> None:
        from engine.trace import eiffel

        self.note("call", wi)
        comp = wi.emit(eiffel.composition_defined(f"{wi.wf_name}-{wi.wfid}", [wi.fields["change"]]))
        art = wi.emit(
            eiffel.artifact_created(
                f"pkg:generic/{wi.wf_name}@{wi.wfid}", composition=comp["meta"]["id"]
            )
        )
        wi.fields["artifact"] = art["meta"]["id"]


class Verify(_Reporting):
    """Gives the artifact in ``fields.artifact`` the confidence level
    ``params.level`` (SUCCESS)."""

    def handle_wi(self, wi: Any) -> None:
        from engine.trace import eiffel

        self.note("call", wi)
        # the artifact: from a build step, or the event that launched the run
        artifact = wi.fields.get("artifact") or wi.fields["event"]["meta"]["id"]
        wi.emit(eiffel.confidence_level_modified(wi.params["level"], "SUCCESS", [artifact]))
