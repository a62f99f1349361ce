"""A participant for the step-log tests (run by ``participants.runtime`` in
its own process: ``start_talker`` writes its INI beside a ``System``'s and
starts it), and that helper.

``Talker`` logs (its ``self.log``) and prints ``params.lines`` lines each,
tagged ``params.tag``; with ``params.go`` it then waits for that file to
exist and says one more line; with ``params.wait`` it waits for that file
before it finishes (so a test can look at its lines while it works).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any


def _wait_file(path: str, wi: Any, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not Path(path).exists() and not wi.cancelled and time.monotonic() < deadline:
        time.sleep(0.02)


class Talker:
    def handle_wi(self, wi: Any) -> None:
        tag = wi.params.get("tag", "talk")
        for i in range(int(wi.params.get("lines", 2))):
            self.log.info("%s log %d", tag, i)
            print(f"{tag} print {i}")
        if wi.params.get("go"):
            _wait_file(wi.params["go"], wi)
            self.log.warning("%s went", tag)
        if wi.params.get("wait"):
            _wait_file(wi.params["wait"], wi)
        print(f"{tag} done", file=sys.stderr)
        wi.fields.setdefault("talked", []).append(tag)


def start_talker(system: Any, name: str = "talker") -> None:
    """A ``Talker`` participant process on ``system`` (a ``tests.e2e``
    ``System``), registered and consuming when this returns."""
    queue = f"{system.prefix}.{name}"
    ini = system.tmp / f"{name}.ini"
    ini.write_text(
        f"[participant]\nname = {name}\nqueue = {queue}\ncode = {Path(__file__)}\n"
        f"class = Talker\n\n" + system._boss_section()
    )
    system.engine.register(name, queue, regex=False)
    system._spawn(f"{name}-0", [sys.executable, "-m", "participants.runtime", str(ini)])
    system.wait_consumers(queue, 1)
