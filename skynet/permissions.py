"""Who may do what.

* root may do everything;
* a participant runs as a user (``install -u USER``; by default, the user
  supervisord runs as). That user, and members of the ``skynet`` unix group
  (``[skynet] group``), may install and operate participants that run as a
  user other than root ("user-owned" participants);
* participants that run as root are root-only;
* a supervisord that does not run as root can run its programs only as its
  own user: asking for another is refused as root-only;
* on a system supervisord, reaching its socket at all is the first gate:
  ``chown = root:skynet`` and ``chmod = 0770`` in ``[unix_http_server]``.

The checks are pure functions of a ``Caller`` so they can be tested for any
user and group without creating system users.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

from skynet.errors import NotPermitted

__all__ = ["Caller", "check_manage", "check_run_as", "user_name"]


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@dataclass(frozen=True)
class Caller:
    """Who is asking: a uid and the names of their groups."""

    uid: int
    groups: frozenset[str] = frozenset()

    @classmethod
    def current(cls) -> Caller:
        names = set()
        for gid in {os.getegid(), *os.getgroups()}:
            try:
                names.add(grp.getgrgid(gid).gr_name)
            except KeyError:
                continue
        return cls(os.geteuid(), frozenset(names))

    @property
    def root(self) -> bool:
        return self.uid == 0

    @property
    def name(self) -> str:
        return user_name(self.uid)


def check_run_as(run_as_uid: int, supervisord_uid: int | None) -> None:
    """A supervisord can run programs as another user only when it is root."""
    if supervisord_uid is None or supervisord_uid == 0 or run_as_uid == supervisord_uid:
        return
    raise NotPermitted(
        f"root-only: supervisord runs as {user_name(supervisord_uid)!r}, so it can run "
        f"participants only as that user; running one as {user_name(run_as_uid)!r} needs "
        "a supervisord running as root"
    )


def check_manage(
    caller: Caller, run_as_uid: int, group: str = "skynet", what: str = "manage"
) -> None:
    """May ``caller`` install or operate a participant that runs as
    ``run_as_uid``? (``NotPermitted`` saying why not.)"""
    if caller.root:
        return
    if run_as_uid == 0:
        raise NotPermitted(
            f"root-only: participants that run as root may only be {what}d by "
            "root (install it with -u USER to run it as a user)"
        )
    if caller.uid == run_as_uid or group in caller.groups:
        return
    raise NotPermitted(
        f"not permitted to {what} a participant that runs as {user_name(run_as_uid)!r}: "
        f"only root, that user and members of the {group!r} group may"
    )
