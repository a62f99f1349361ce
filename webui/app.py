"""The Flask app factory: ``create_app(config, ...)``.

Blueprints: ``auth`` (log in and out), ``pages`` (the HTML pages and their
forms), ``api`` (JSON under ``/api``), ``trace_api`` (the traceability
graph's JSON, ``engine.trace.http``, under ``/api/trace``) and ``metrics``
(``/metrics`` for Prometheus). ``docs/webui.md`` describes them.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, redirect, render_template, request, url_for

from engine.config import Config
from webui.access import Refused, check_csrf, current_user, template_globals
from webui.services import Services
from webui.settings import WebConfig, secret_key

__all__ = ["create_app"]

#: endpoints an anonymous visitor reaches even with ``anonymous = false``
_OPEN = {"auth.login", "auth.logout", "static", "metrics.metrics", "api.me"}


def wants_json() -> bool:
    return (
        request.path.startswith("/api/")
        or request.is_json
        or request.accept_mimetypes.best == "application/json"
    )


def create_app(
    config: Config | None = None,
    *,
    web: WebConfig | None = None,
    users: dict[str, tuple[str, str]] | None = None,
    store: Any = None,
    publisher: Any = None,
    graph: Any = None,
    skynet: Any = None,
    testing: bool = False,
) -> Flask:
    """The web UI. ``config``/``web``: the ``[boss]`` and ``[web]``
    settings (default: loaded as every ``boss`` command does). ``users``:
    ``{name: (password, role)}`` created if missing (tests, demos).
    ``store``, ``publisher``, ``graph``, ``skynet``: replace the ones made
    from the configuration (tests pass fakes at these boundaries)."""
    config = config or Config.load()
    web = web or WebConfig.load(config.source or None)
    app = Flask("webui", root_path=__import__("os").path.dirname(__file__))
    app.config.update(
        SECRET_KEY=secret_key(web, config),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=web.secure_cookies,
        SESSION_COOKIE_NAME="boss_session",
        TESTING=testing,
        JSON_SORT_KEYS=False,
    )
    svc = Services(config, web, store=store, publisher=publisher, graph=graph, skynet=skynet)
    app.extensions["boss"] = svc
    for name, (password, role) in (users or {}).items():
        if svc.users.get(name) is None:
            svc.users.add(name, password, role)

    from webui.blueprints.api import api
    from webui.blueprints.auth import auth
    from webui.blueprints.pages import pages
    from webui.metrics import metrics_blueprint

    app.register_blueprint(auth)
    app.register_blueprint(pages)
    app.register_blueprint(api, url_prefix="/api")
    app.register_blueprint(metrics_blueprint(svc))

    from engine.trace import trace_blueprint

    def authorize_trace(action: str) -> str | None:
        user = current_user()
        if not user.admin:
            return f"refused: only admins can {action} events; {user.name} is a {user.role}"
        return None

    app.register_blueprint(
        trace_blueprint(config, graph=lambda: svc.graph, authorize=authorize_trace),
        url_prefix="/api/trace",
    )
    app.context_processor(template_globals)
    app.jinja_env.globals["web"] = web
    from webui.blueprints import filters

    filters.install(app)

    @app.before_request
    def gate() -> Any:
        check_csrf()
        if not web.anonymous and current_user().anonymous and request.endpoint not in _OPEN:
            if wants_json():
                raise Refused("refused: anonymous access is turned off; log in first", 401)
            return redirect(url_for("auth.login", next=request.full_path))
        return None

    @app.errorhandler(Refused)
    def refused(exc: Refused) -> Any:
        if request.method not in ("GET", "HEAD"):
            user = current_user()
            svc.audit.record(
                user,
                request.endpoint or request.path,
                request.view_args.get("wfid", "") if request.view_args else "",
                ok=False,
                detail=exc.reason,
                remote=request.remote_addr or "",
            )
        if wants_json():
            return jsonify({"error": exc.reason, "status": exc.status}), exc.status
        return render_template("refused.html", reason=exc.reason, back=request.referrer), exc.status

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        return resp

    return app
