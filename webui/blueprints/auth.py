"""Log in (local users, password checked against the scrypt hash) and out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, session, url_for

from webui.access import current_user
from webui.services import services

auth = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("pages.runs")


@auth.route("/login", methods=["GET", "POST"])
def login() -> Any:
    svc = services()
    error = None
    if request.method == "POST":
        name = request.form.get("username", "").strip()
        user = svc.users.authenticate(name, request.form.get("password", ""))
        if user is None:
            error = "unknown user or wrong password"
            from webui.users import User

            svc.audit.record(
                User(name or "?", "anonymous", "anonymous"),
                "login",
                name,
                ok=False,
                detail=error,
                remote=request.remote_addr or "",
            )
        else:
            csrf = session.get("csrf")
            session.clear()  # a new session on log in (no fixation)
            if csrf:
                session["csrf"] = csrf
            session["user"] = user.name
            session.permanent = True
            svc.audit.record(user, "login", user.name, remote=request.remote_addr or "")
            return redirect(_safe_next(request.form.get("next")))
    return render_template("login.html", error=error, next=request.args.get("next", "")), (
        401 if error else 200
    )


@auth.post("/logout")
def logout() -> Any:
    user = current_user()
    if not user.anonymous:
        services().audit.record(user, "logout", user.name, remote=request.remote_addr or "")
    session.pop("user", None)
    return redirect(url_for("pages.runs"))
