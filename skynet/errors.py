"""What can go wrong, as exception types the CLI prints and the REST API
turns into ``{"error": ..., "code": N}`` with an HTTP status.

Every message is one line an operator can act on.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Invalid",
    "NotPermitted",
    "SkynetError",
    "StartFailed",
    "SupervisorUnavailable",
    "UnknownParticipant",
]


class SkynetError(Exception):
    """Base class: ``status`` is the HTTP status the REST API answers with."""

    status = 500


class Invalid(SkynetError):
    """Bad input: a missing code file, a bad handler class, an unknown user..."""

    status = 400


class NotPermitted(SkynetError):
    """The caller may not do this (root-only, not in the ``skynet`` group,
    the supervisor socket refuses them)."""

    status = 403


class UnknownParticipant(SkynetError):
    """No participant of that name is installed."""

    status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"no participant {name!r} is installed (see 'skynet list')")
        self.name = name


class Conflict(SkynetError):
    """The name is taken (a duplicate install)."""

    status = 409


class StartFailed(SkynetError):
    """Instances did not reach RUNNING (BACKOFF/FATAL) or did not stop."""

    status = 502


class SupervisorUnavailable(SkynetError):
    """supervisord does not answer (not running, wrong socket)."""

    status = 503
