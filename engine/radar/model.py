"""The radar's records: what a delivery says about a patch set and the CI
systems that report on it. Pure data, no I/O.

A *patch set* is one revision of a change under test, named by its
``psid``: ``<forge>:<project>:<key>`` where the key is ``<change>,<patch
set>`` on Gerrit (Zuul's spelling: ``3033,1``) and the head commit's SHA on
GitHub and GitLab (a check suite, a pipeline and a pull request's head
name the same revision that way).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "APPEARED",
    "ERROR",
    "FAIL",
    "KINDS",
    "MERGED",
    "PASS",
    "RECHECK",
    "REPORT",
    "SKIPPED",
    "VERDICTS",
    "Record",
    "patchset_id",
]

#: what a record says
APPEARED = "appeared"  # the patch set was uploaded / pushed
REPORT = "report"  # a CI system reported on it (with a verdict or not)
RECHECK = "recheck"  # someone asked for the CI systems to test it again
MERGED = "merged"  # the change landed with this patch set
KINDS = (APPEARED, REPORT, RECHECK, MERGED)

#: a report's verdict (None: a report that gives none, e.g. "Starting check jobs.")
PASS = "pass"
FAIL = "fail"
ERROR = "error"
SKIPPED = "skipped"
VERDICTS = (PASS, FAIL, ERROR, SKIPPED)


def patchset_id(forge: str, project: str, key: str) -> str:
    """``<forge>:<project>:<key>`` (see the module docstring)."""
    return f"{forge}:{project}:{key}"


@dataclass(frozen=True, slots=True)
class Record:
    """One fact about one patch set.

    ``id`` is derived from the delivery's content (the same event read
    twice, from the live stream and from an import, has the same id), so
    storing a record is idempotent. ``at`` is when it happened (epoch
    seconds, the forge's time, not when BOSS received it). For a report:
    ``system`` (its name), ``verdict`` (``VERDICTS`` or None),
    ``classified`` (False: an account the configuration does not name as a
    CI system but that voted as one: stored and shown, never dropped),
    ``gate`` (the account is the project's gate), ``detail`` (what the
    verdict was read from: ``Verified-1``, ``check_run failure`` ...).
    """

    kind: str
    forge: str
    project: str
    key: str
    at: float
    id: str
    change: str | None = None
    patchset: str | None = None
    system: str | None = None
    verdict: str | None = None
    classified: bool = True
    gate: bool = False
    detail: str | None = None

    @property
    def psid(self) -> str:
        return patchset_id(self.forge, self.project, self.key)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"psid": self.psid}


def parse_instant(value: str | None) -> float:
    """Epoch seconds of ``value``: ``now`` (or nothing), epoch seconds, or
    an ISO 8601 time; ValueError for anything else (``--until``, ``?until=``)."""
    import time
    from datetime import datetime

    if not value or value == "now":
        return time.time()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(f"{value!r} is not a time (epoch seconds or ISO 8601)") from None
