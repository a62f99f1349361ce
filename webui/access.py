"""Who may do what, and the CSRF check.

Roles
-----

* **anonymous**: sees every page when ``[web] anonymous`` is true, or
  ``auto`` (the default) and the UI is bound to a loopback address; never
  acts; otherwise every page but the login page asks to log in. Refused
  anonymous requests are counted (``/metrics``), not audited one by one.
* **user**: launches runs and acts (cancel, kill, pause, resume, replay,
  re-apply) on the runs *they* launched from the UI.
* **admin**: everything, on every run (those launched by the CLI and by
  launchers too), participant control through SkyNET, the audit log.

A user is a local one (``web:users``, logged in with a password: the
session cookie names a server-side session (``webui.sessions``), checked on
every request, so logging out, a password change and removing the user end
it at once; the role is looked up on every request too), or one a trusted
reverse proxy names in ``[web] trusted_header`` (only believed from the
addresses in ``trusted_proxies``; the role is the local user's if there is
one, else ``admin`` for ``proxy_admins`` and ``user`` otherwise).

Every refusal is a ``Refused`` with the reason, shown to the user (a page
or ``{"error": ...}``) and written to the audit log.

CSRF
----

Each session gets a random token (``secrets.token_urlsafe``). Every POST
(forms, the JSON API, the login form itself) must carry it: the form field
``csrf_token`` or the ``X-CSRF-Token`` header; compared in constant time.
The session cookie is ``HttpOnly`` and ``SameSite=Lax`` on top of that.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import g, request, session

from webui.users import ANONYMOUS, User

__all__ = ["Refused", "can_act_on_run", "check_csrf", "csrf_token", "current_user", "require"]

_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class Refused(Exception):
    """An action was refused: ``reason`` says why, ``status`` is the HTTP one."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a state-changing request without this session's token."""
    if request.method in _SAFE:
        return
    expected = session.get("csrf")
    given = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token") or ""
    if not expected:
        raise Refused(
            "refused: no CSRF token in this session (load the page again; are cookies enabled?)",
            400,
        )
    if not given:
        raise Refused("refused: the request carries no CSRF token (a forged form?)", 400)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused("refused: the CSRF token does not match this session's", 400)


def current_user() -> User:
    """The user of this request (cached on ``g``)."""
    user = getattr(g, "user", None)
    if user is not None:
        return user
    from webui.services import services

    svc = services()
    user = ANONYMOUS
    web = svc.web
    if web.trusted_header and request.remote_addr in web.proxies:
        name = request.headers.get(web.trusted_header, "").strip()
        if name:
            role = svc.users.role_of(name)
            if role is None:
                role = "admin" if name in web.admins_by_proxy else "user"
            user = User(name, role, "proxy")
    if user.anonymous and session.get("user"):
        name = session["user"]
        # the cookie names a session; Redis says whether it is still alive
        # (logged out, password changed, expired: it is not) and for whom
        alive = svc.sessions.user(session.get("sid", "")) == name
        role = svc.users.role_of(name) if alive else None
        if role is None:  # logged out, expired or removed since: the session is over
            session.pop("user", None)
            session.pop("sid", None)
        else:
            user = User(name, role, "local")
    g.user = user
    return user


def require(action: str, user: User | None = None) -> User:
    """The user, if they may do ``action`` (``act``, ``launch``, ``admin``)."""
    user = user or current_user()
    if user.anonymous:
        raise Refused(f"refused: anonymous visitors cannot {_verb(action)}; log in first", 401)
    if action == "admin" and not user.admin:
        raise Refused(f"refused: only admins can {_verb(action)}; {user.name} is a {user.role}")
    return user


def can_act_on_run(user: User, owner: str | None, wfid: str, action: str) -> None:
    """Refuse ``action`` on run ``wfid`` (owned by ``owner``) unless allowed."""
    require("act", user)
    if user.admin:
        return
    if owner is None:
        raise Refused(
            f"refused: {user.name} cannot {action} run {wfid}: it was not launched "
            "from the web UI (only admins act on such runs)"
        )
    if owner != user.name:
        raise Refused(f"refused: {user.name} cannot {action} run {wfid}: it belongs to {owner}")


def _verb(action: str) -> str:
    return {
        "act": "act on runs",
        "launch": "launch processes",
        "admin": "do this (participant control, the audit log)",
    }.get(action, action)


def template_globals() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "current_user": current_user}
