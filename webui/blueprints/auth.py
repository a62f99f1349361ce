"""Log in (local users, password checked against the scrypt hash) and out.

Logging in makes a server-side session (``webui.sessions``) that logging out
ends. Failed log-ins are throttled per user name and per client address
(``webui.app`` puts ``[web] login_limit_user`` and ``login_limit_address``
on :func:`login` with Flask-Limiter; only failures count); past the limit
the answer is 429 with ``Retry-After``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, session, url_for

from webui.access import current_user
from webui.services import services
from webui.users import User

auth = Blueprint("auth", __name__)

#: what a browser drops from anywhere in a URL before parsing it (WHATWG URL)
_DROPPED = re.compile(r"[\t\n\r]")
#: C0 controls and space, stripped from both ends by a browser
_C0_SPACE = "".join(chr(c) for c in range(0x21))
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site *as a browser reads it*, else ``/``.

    A browser strips leading and trailing controls and spaces, drops tabs
    and newlines anywhere and reads ``\\`` as ``/``: ``/\\t/evil.example``
    and ``/\\\\evil.example`` are ``//evil.example``, another site. So the
    check is made on what the browser will see, and that is what is
    returned: a single leading ``/``, no scheme, no host."""
    if not target:
        return "/"
    seen = _DROPPED.sub("", target).strip(_C0_SPACE).replace("\\", "/")
    if _CONTROL.search(seen) or not seen.startswith("/") or seen.startswith("//"):
        return "/"
    parts = urlsplit(seen)
    if parts.scheme or parts.netloc:
        return "/"
    return seen


def login_failed(response: Any) -> bool:
    """Whether a log-in answer counts against the limits (a wrong password)."""
    return response.status_code == 401


def user_key() -> str:
    """The per-user limit's key: the name being logged in as."""
    return "login-user:" + request.form.get("username", "").strip().lower()[:64]


def address_key() -> str:
    """The per-address limit's key: the client's address."""
    return "login-addr:" + (request.remote_addr or "?")


@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    svc = services()
    error = None
    if request.method == "POST":
        name = request.form.get("username", "").strip()
        user = svc.users.authenticate(name, request.form.get("password", ""))
        if user is None:
            error = "unknown user or wrong password"
            if name and svc.users.get(name) is not None:
                # a real user's name: audited (at most login_limit_user per
                # window, whoever asks); unknown names are only counted
                svc.audit.record(
                    User(name, "anonymous", "anonymous"),
                    "login",
                    name,
                    ok=False,
                    detail=error,
                    remote=request.remote_addr or "",
                )
            else:
                svc.refusals.count(401)
        else:
            csrf = session.get("csrf")
            session.clear()  # a new session on log in (no fixation)
            if csrf:
                session["csrf"] = csrf
            session["user"] = user.name
            session["sid"] = svc.sessions.create(user.name)
            session.permanent = True
            svc.audit.record(user, "login", user.name, remote=request.remote_addr or "")
            return redirect(safe_next(request.form.get("next")))
    return render_template("login.html", error=error, next=request.args.get("next", "")), (
        401 if error else 200
    )


@auth.post("/logout")
def logout() -> Any:
    user = current_user()
    svc = services()
    if not user.anonymous:
        svc.audit.record(user, "logout", user.name, remote=request.remote_addr or "")
    svc.sessions.end(session.pop("sid", ""))
    session.pop("user", None)
    return redirect(url_for("pages.runs"))
