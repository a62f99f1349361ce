"""The participants of ``boss demo`` (each runs in its own process).

They pretend: a check looks at the change, a build "builds" it (the first
build host is down, so the first build fails and the demo replays it on
another host), tests run per target, and a release candidate is named.
"""

from __future__ import annotations

import time

from engine.trace import eiffel
from participants.handler import Participant
from participants.workitem import Workitem


class Check(Participant):
    """``check_.*``: a quick look at the change."""

    def handle_wi(self, wi: Workitem) -> None:
        time.sleep(0.3)
        wi.msg.append(f"{wi.participant_name}: ok")


class Build(Participant):
    """``build``: fails on builder-1 (down), works anywhere else."""

    def handle_wi(self, wi: Workitem) -> None:
        host = wi.fields.get("build_host", "builder-1")
        time.sleep(0.4)
        if host == "builder-1":
            raise RuntimeError(f"{host} is unreachable: cannot build {wi.params['project']}")
        wi.fields["binary"] = f"{wi.params['project']}-{wi.fields.get('change', '0')}.rpm"
        wi.msg.append(f"built on {host}")
        # traceability: a baseline of the change, and the artifact built from it
        change = wi.fields.get("change_event")
        comp = wi.emit(
            eiffel.composition_defined(
                f"{wi.params['project']}-{wi.fields.get('change', '0')}", [change] if change else []
            )
        )
        art = wi.emit(
            eiffel.artifact_created(
                f"pkg:rpm/demo/{wi.params['project']}@{wi.fields.get('change', '0')}",
                name=wi.fields["binary"],
                composition=comp["meta"]["id"],
            )
        )
        wi.fields["artifact"] = art["meta"]["id"]


class RunTests(Participant):
    """``run_tests``: one target per step (the pool runs targets in parallel)."""

    def handle_wi(self, wi: Workitem) -> None:
        time.sleep(0.6)
        wi.msg.append(f"tests passed on {wi.params['target']}")
        if wi.fields.get("artifact"):
            wi.emit(
                eiffel.confidence_level_modified(
                    f"tested-{wi.params['target']}", "SUCCESS", [wi.fields["artifact"]]
                )
            )


class ReleaseCandidate(Participant):
    """``release_candidate``: names the candidate."""

    def handle_wi(self, wi: Workitem) -> None:
        wi.fields["rc"] = wi.params["version"]
        if wi.fields.get("artifact"):
            wi.emit(
                eiffel.confidence_level_modified(
                    "releaseCandidate", "SUCCESS", [wi.fields["artifact"]]
                )
            )
