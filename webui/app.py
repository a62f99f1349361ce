"""The Flask app factory: ``create_app(config, ...)``.

Blueprints: ``auth`` (log in and out), ``pages`` (the HTML pages and their
forms), ``api`` (JSON under ``/api``), ``trace_api`` (the traceability
graph's JSON, ``engine.trace.http``, under ``/api/trace``) and ``metrics``
(``/metrics`` for Prometheus). ``docs/webui.md`` describes them.

On every request: the CSRF check and the anonymous gate (``gate``); on
every answer: a strict ``Content-Security-Policy`` (scripts from this site
only: no inline script, no ``onclick``), ``Cache-Control: no-store`` on
JSON and ``/metrics``, and the usual hardening headers. Failed log-ins are
throttled per user name and per client address with Flask-Limiter (Redis
storage, shared by every web process): past the limit, 429 and
``Retry-After``.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
from flask import Flask, Response, jsonify, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded

from engine.config import Config
from webui.access import Refused, check_csrf, current_user, template_globals
from webui.services import Services
from webui.settings import WebConfig, secret_key

__all__ = ["CSP", "create_app"]

#: seconds a visitor is told to wait (``Retry-After``) when the store does not answer
STORE_RETRY_AFTER = 5

#: endpoints an anonymous visitor reaches even with ``anonymous = false``
_OPEN = {"auth.login", "auth.logout", "static", "api.me"}

#: the Content-Security-Policy of every answer: scripts, styles, fetches and
#: forms of this site only; no inline script or handler, no plugins, no frames
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def wants_json() -> bool:
    return (
        request.path.startswith("/api/")
        or request.is_json
        or request.accept_mimetypes.best == "application/json"
    )


class _RefreshKeepsCookie(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, but a page's own refresh of its live
    regions (``X-Boss-Refresh``, boss.js) sends no cookie back unless it
    changed the session. The sessions are permanent and sliding, so every
    answer sent the cookie again, as the request had it: a refresh that
    left before a form's answer and came back after it put the session of
    before back in the browser, and the page the form was redirected to
    showed none of its messages (``tests/webui/test_flash_refresh.py``)."""

    def should_set_cookie(self, app: Flask, session: SessionMixin) -> bool:
        if not session.modified and request.headers.get("X-Boss-Refresh"):
            return False
        return super().should_set_cookie(app, session)


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
    app.session_interface = _RefreshKeepsCookie()
    app.config.update(
        SECRET_KEY=secret_key(web, config),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=web.secure_cookies,
        SESSION_COOKIE_NAME="boss_session",
        # the cookie lives as long as the server-side session may (sliding:
        # each request sends it anew); webui.sessions ends it for real
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=web.session_lifetime),
        SESSION_REFRESH_EACH_REQUEST=True,
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
    from webui.blueprints.logs import logs
    from webui.blueprints.pages import pages
    from webui.metrics import metrics_blueprint

    app.register_blueprint(auth)
    app.register_blueprint(pages)
    app.register_blueprint(api, url_prefix="/api")
    app.register_blueprint(logs, url_prefix="/api")  # step logs (webui.blueprints.logs)
    app.register_blueprint(metrics_blueprint(svc))
    app.register_blueprint(__import__("webui.blueprints.graphs", fromlist=["graphs"]).graphs)
    app.register_blueprint(__import__("webui.blueprints.live", fromlist=["live"]).live)
    app.register_blueprint(__import__("webui.blueprints.ci", fromlist=["ci"]).ci)  # /ci, /api/ci
    _throttle_logins(app, svc)

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
        if request.endpoint == "metrics.metrics" and _metrics_token_ok(web.metrics_token):
            return None
        if not web.anonymous_read and current_user().anonymous and request.endpoint not in _OPEN:
            if wants_json() or request.endpoint == "metrics.metrics":
                raise Refused("refused: anonymous access is turned off; log in first", 401)
            return redirect(url_for("auth.login", next=request.full_path))
        return None

    @app.errorhandler(Refused)
    def refused(exc: Refused) -> Any:
        user = current_user()
        if request.method not in ("GET", "HEAD") and user.anonymous:
            # counted, not audited one by one: anyone could flush the log so
            svc.refusals.count(exc.status)
        elif request.method not in ("GET", "HEAD"):
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

    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    def store_unreachable(exc: Exception) -> Any:
        """The store (or the graph, in the same server) did not answer: 503
        with ``Retry-After`` and a page saying so, not a 500; the cause is
        logged on one line (no traceback: it is the network, not a bug)."""
        reason = f"the run store does not answer ({type(exc).__name__}: {exc}); try again shortly"
        app.logger.warning("%s %s: %s", request.method, request.path, reason)
        headers = {"Retry-After": str(STORE_RETRY_AFTER)}
        if wants_json():
            return jsonify({"error": reason, "status": 503}), 503, headers
        return render_template("unavailable.html", reason=reason), 503, headers

    @app.errorhandler(RateLimitExceeded)
    def throttled(exc: RateLimitExceeded) -> Any:
        svc.refusals.count(429)
        reason = (
            f"refused: too many failed log-ins ({exc.description}) for this user or from "
            "this address; try again later"
        )
        if wants_json():
            return jsonify({"error": reason, "status": 429}), 429
        return render_template("refused.html", reason=reason, back=None), 429

    static_versions(app)

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Content-Security-Policy", CSP)
        if (
            resp.mimetype == "application/json"
            or request.path.startswith("/api/")
            or request.endpoint == "metrics.metrics"
        ):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    return app


def _metrics_token_ok(token: str) -> bool:
    """Whether the request carries ``[web] metrics_token`` as a bearer token."""
    if not token:
        return False
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.encode()
    )


def _throttle_logins(app: Flask, svc: Services) -> Limiter:
    """Failed log-ins, per user name and per client address, limited by
    ``[web] login_limit_user`` and ``login_limit_address`` (only answers
    401 count: a success costs nothing). The counters are in the store's
    Redis (``<prefix>web:limits...``), so every web process shares them;
    past a limit the log-in answers 429 with ``Retry-After``."""
    from webui.blueprints import auth

    limiter = Limiter(
        key_func=auth.address_key,
        app=app,
        storage_uri="redis://",
        storage_options={
            "connection_pool": svc.client.connection_pool,  # type: ignore[dict-item]
            "key_prefix": f"{svc.config.key_prefix}web:limits",
        },
        strategy="moving-window",
        headers_enabled=True,
        retry_after="delta-seconds",
    )
    web = svc.web
    view = app.view_functions["auth.login"]
    for limit, key in (
        (web.login_limit_user, auth.user_key),
        (web.login_limit_address, auth.address_key),
    ):
        view = limiter.limit(limit, key_func=key, methods=["POST"], deduct_when=auth.login_failed)(
            view
        )
    app.view_functions["auth.login"] = view
    app.extensions["boss_limiter"] = limiter
    return limiter


#: how long a browser keeps a versioned static file (a year: its URL
#: changes when its content does)
STATIC_MAX_AGE = 365 * 86400


def static_versions(app: Flask) -> None:
    """Static files by versioned URL: ``url_for("static", ...)`` adds
    ``v=<digest of the file>``, and a request that carries one is answered
    with a year's ``max-age``, so a page load asks nothing again for its
    scripts, styles and vendored libraries (without it, each was a 304
    round trip before the page could start). A file changes only with an
    upgrade, which restarts the web process: the digests are taken once."""
    import hashlib

    versions: dict[str, str] = {}
    folder = Path(app.static_folder or "")

    @app.url_defaults
    def _version(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint != "static" or "filename" not in values or "v" in values:
            return
        name = values["filename"]
        if name not in versions:
            try:
                versions[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()[:12]
            except OSError:
                versions[name] = ""
        if versions[name]:
            values["v"] = versions[name]

    def max_age(filename: str | None) -> int | None:
        return STATIC_MAX_AGE if request.args.get("v") else None

    app.get_send_file_max_age = max_age  # type: ignore[method-assign]
