"""The participants of ``boss demo`` (each runs in its own process).

They pretend: a check looks at the change, a build "builds" it (the first
build host is down, so the first build fails and the demo replays it on
another host), tests run per target, and a release candidate is named.
"""

from __future__ import annotations

import time

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


class RunTests(Participant):
    """``run_tests``: one target per step (the pool runs targets in parallel)."""

    def handle_wi(self, wi: Workitem) -> None:
        time.sleep(0.6)
        wi.msg.append(f"tests passed on {wi.params['target']}")


class ReleaseCandidate(Participant):
    """``release_candidate``: names the candidate."""

    def handle_wi(self, wi: Workitem) -> None:
        wi.fields["rc"] = wi.params["version"]
