"""The chaos test's participant (run by ``participants.runtime`` in its own
processes): it notes every execution of every step, one line
``wfid subid participant pid`` appended to the file named by its config
(``[chaos] log``), works a little, and counts the step in the workitem."""

from __future__ import annotations

import os
import time
from typing import Any

#: seconds of "work" per step: long enough that a participant killed at
#: random is sometimes killed mid-step
WORK = 0.05


class Note:
    def handle_lifecycle_control(self, ctrl: Any) -> None:
        if ctrl.message == "start":
            self.log = ctrl.config.get("chaos", "log")

    def handle_wi(self, wi: Any) -> None:
        name = wi.participant_name
        line = f"{wi.wfid} {wi.fei.get('subid')} {name} {os.getpid()}\n".encode()
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write on O_APPEND: lines never interleave
        finally:
            os.close(fd)
        time.sleep(WORK)
        done = wi.fields.setdefault("done", {})
        done[name] = done.get(name, 0) + 1
        wi.fields.setdefault("trail", []).append(name)
