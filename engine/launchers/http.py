"""The webhook endpoints: a Flask blueprint (``launchers_http``) with
``POST /hooks/github`` and ``POST /hooks/gitlab``.

In the order a request meets them:

* With no secret configured the endpoint refuses everything (503): an
  unprotected endpoint would let anyone launch processes.
* Authentication that needs no body comes first: GitLab's token (a
  header), the presence of GitHub's signature header. A refusal is a 401
  and a warning (who sent it, which delivery); the body is never read.
* The body is limited (``max_body``, 25 MiB as GitHub's cap): a larger
  ``Content-Length`` is answered 413 before a byte is read; a body without
  one (chunked) is read in bounded chunks and refused (413) as soon as it
  passes the limit. The server never holds more than ``max_body`` of a body.
* GitHub's signature (an HMAC of the body) is checked on the bounded body.
* The headers are redacted (tokens, signatures, credentials, cookies:
  ``engine.launchers.launcher.redact_headers``) before anything else sees
  them: the launch items, the dead letters and the logs never hold a secret.
* GitHub's form encoding (``application/x-www-form-urlencoded``, the JSON in
  a ``payload`` field) is accepted: the signature is checked on the form as
  sent, the ``payload`` field is the delivery's body.
* The delivery id is *claimed* in Redis (``SET NX``, for ``CLAIM_TTL``
  seconds) before anything is launched: a copy that arrives while the first
  is in flight is answered 202 ``in progress`` and launches nothing; when
  the launch is published, the claim becomes the result (the wfids), kept
  ``delivery_ttl`` seconds: a repeat (GitHub's "Redeliver", a retry after a
  timeout) is answered 200 ``already launched``. A first attempt that fails
  (the broker is away: 503) releases its claim, so a real retry launches.
  (Were a claim lost, the wfids would still be the same, and the engine
  ignores a launch it already has.)
* A delivery that cannot be understood is dead-lettered with the reason:
  400 with the reason and the dead letter's id.
* Every error is JSON (``{"error": ...}``), 404 and 405 included.

``create_app(config, settings)`` makes an app of its own (``boss launcher
serve``); the web UI may register the blueprint in its app instead, with
``app.extensions["boss_launchers"] = HookState(...)``.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from engine.config import Config
from engine.launchers.base import RawEvent, Source
from engine.launchers.github import GitHubSource, verify_signature
from engine.launchers.gitlab import GitLabSource, verify_token
from engine.launchers.launcher import Launcher, redact_headers
from engine.launchers.settings import LauncherSettings

__all__ = ["CLAIM_TTL", "HookState", "create_app", "launchers_http"]

log = logging.getLogger("boss.launchers.http")

launchers_http = Blueprint("launchers_http", __name__)

#: seconds a delivery's claim holds while it is in flight (a server killed
#: mid-launch leaves one: a retry after this launches, the same wfids)
CLAIM_TTL = 300
#: bytes read from the body at a time
CHUNK = 64 * 1024

# releases a claim only if it is still ours (it may have expired and been
# taken by another attempt)
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class HookState:
    """What the endpoints need: the launcher, its settings, and a Redis
    client for the delivery ids."""

    launcher: Launcher
    settings: LauncherSettings
    redis: Any
    github: GitHubSource
    gitlab: GitLabSource

    @classmethod
    def create(
        cls,
        config: Config,
        settings: LauncherSettings,
        launcher: Launcher | None = None,
        redis_client: Any = None,
    ) -> HookState:
        if redis_client is None:
            from engine.store.connection import client_for

            redis_client = client_for(config.resolved_redis_url())[0]
        return cls(
            launcher if launcher is not None else Launcher(config, settings),
            settings,
            redis_client,
            GitHubSource(),
            GitLabSource(),
        )

    def delivery_key(self, source: str, delivery: str) -> str:
        return f"{self.launcher.config.key_prefix}launchers:delivery:{source}:{delivery}"


class _Refused(Exception):
    """An answer given before the delivery is handled (401, 413, 503)."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(why)
        self.code, self.why = code, why


def _state() -> HookState:
    return current_app.extensions["boss_launchers"]


def _error(code: int, why: str, **extra: Any) -> tuple[Response, int]:
    return jsonify({"error": why, **extra}), code


def _read_body(limit: int) -> bytes:
    """The request's body, never more than ``limit`` bytes of it in memory:
    a larger ``Content-Length`` is refused before reading, a body without
    one (chunked) is read in chunks and refused when it passes the limit."""
    length = request.content_length
    too_large = f"body too large: more than {limit} bytes (max_body)"
    if length is not None and length > limit:
        raise _Refused(413, too_large)
    stream = request.stream
    body = bytearray()
    while True:
        chunk = stream.read(min(CHUNK, limit + 1 - len(body)))
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            raise _Refused(413, too_large)


def _refuse(source: str, refusal: _Refused, delivery: str | None) -> tuple[Response, int]:
    log.warning(
        "%s webhook: refused delivery %s from %s: %s",
        source,
        delivery or "-",
        request.remote_addr,
        refusal.why,
    )
    return _error(refusal.code, refusal.why)


def _claim(state: HookState, key: str) -> tuple[str | None, tuple[dict[str, Any], int] | None]:
    """Claim ``key`` for this attempt: (the claim's token, None), or (None,
    the answer to give: in progress, already launched). One round trip
    (``SET NX GET``, Redis 7); two on an older server."""
    token = json.dumps({"status": "in progress", "claim": uuid.uuid4().hex})
    ttl = int(min(CLAIM_TTL, state.settings.delivery_ttl)) or 1
    seen: Any = None
    for _ in range(2):  # twice: a key that expired between SET NX and GET
        try:
            seen = state.redis.set(key, token, ex=ttl, nx=True, get=True)
            if seen is None:
                return token, None
        except Exception as exc:
            if "syntax" not in str(exc).lower():  # not Redis < 7's refusal of NX with GET
                raise
            if state.redis.set(key, token, ex=ttl, nx=True):
                return token, None
            seen = state.redis.get(key)
        if seen is not None:
            break
    value = json.loads(seen or b"[]")
    if isinstance(value, dict) and value.get("status") == "in progress":
        return None, ({"status": "in progress"}, 202)
    return None, ({"status": "already launched", "wfids": value}, 200)


def _release(state: HookState, key: str, token: str) -> None:
    try:
        state.redis.eval(_RELEASE, 1, key, token)
    except Exception:  # the claim expires anyway
        log.exception("could not release the claim %s", key)


def _handle(
    state: HookState, source: Source, raw: RawEvent, delivery: str | None
) -> tuple[Response, int]:
    key = state.delivery_key(source.name, delivery) if delivery else None
    token = None
    if key is not None:
        token, answer = _claim(state, key)
        if answer is not None:
            data, code = answer
            log.info("%s webhook: delivery %s %s", source.name, delivery, data["status"])
            return jsonify({**data, "delivery": delivery}), code
    try:
        outcome = state.launcher.handle(source, raw)
    except Exception:
        if key is not None and token is not None:
            _release(state, key, token)
        log.exception("%s webhook: delivery %s failed", source.name, delivery or "-")
        return _error(503, "the delivery could not be launched now; retry later")
    if outcome.deadletter is not None:
        if key is not None and token is not None:
            _release(state, key, token)
        return _error(400, outcome.reason or "malformed", deadletter=outcome.deadletter)
    if key is not None:
        state.redis.set(key, json.dumps(outcome.wfids), ex=int(state.settings.delivery_ttl))
    return jsonify(
        {
            "status": "launched",
            "delivery": delivery,
            "wfids": outcome.wfids,
            "events": [e.label for e in outcome.events],
            "eiffel": outcome.eiffel_ids,
        }
    ), 202


FORM = "application/x-www-form-urlencoded"


def _form_payload(body: bytes) -> bytes | None:
    """GitHub's form encoding: the JSON in the ``payload`` field (None: none)."""
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return None
    payload = form.get("payload")
    return payload[0].encode("utf-8") if payload else None


@launchers_http.post("/hooks/github")
def github_hook() -> tuple[Response, int]:
    state = _state()
    delivery = request.headers.get("X-GitHub-Delivery")
    signature = request.headers.get("X-Hub-Signature-256")
    try:
        if not state.settings.github_secret:
            raise _Refused(503, "no github_secret configured")
        if not signature:
            raise _Refused(401, "no signature (X-Hub-Signature-256)")
        body = _read_body(state.settings.max_body)
        if not verify_signature(state.settings.github_secret, body, signature):
            raise _Refused(401, "bad signature (X-Hub-Signature-256)")
    except _Refused as refusal:
        return _refuse("github", refusal, delivery)
    headers = redact_headers(dict(request.headers.items()))
    if request.mimetype == FORM:
        payload = _form_payload(body)
        if payload is None:
            letter = state.launcher.deadletter(
                state.github,
                RawEvent(body, headers),
                "a form-encoded delivery without a 'payload' field (GitHub puts the "
                "JSON there; or set the webhook's content type to application/json)",
            )
            return _error(
                400,
                "form-encoded, but no 'payload' field (send application/json)",
                deadletter=letter,
            )
        body = payload
    return _handle(state, state.github, RawEvent(body, headers), delivery)


@launchers_http.post("/hooks/gitlab")
def gitlab_hook() -> tuple[Response, int]:
    state = _state()
    delivery = request.headers.get("Idempotency-Key") or request.headers.get("X-Gitlab-Event-UUID")
    try:
        if not state.settings.gitlab_token:
            raise _Refused(503, "no gitlab_token configured")
        if not verify_token(state.settings.gitlab_token, request.headers.get("X-Gitlab-Token")):
            raise _Refused(401, "bad token (X-Gitlab-Token)")
        body = _read_body(state.settings.max_body)
    except _Refused as refusal:
        return _refuse("gitlab", refusal, delivery)
    headers = redact_headers(dict(request.headers.items()))
    return _handle(state, state.gitlab, RawEvent(body, headers), delivery)


@launchers_http.get("/hooks/health")
def health() -> tuple[Response, int]:
    return jsonify({"status": "ok"}), 200


def json_errors(exc: HTTPException) -> tuple[Response, int]:
    """An HTTP error (404, 405, 413, ...) as JSON, not werkzeug's HTML."""
    code = exc.code or 500
    response, _ = _error(code, exc.description or exc.name)
    for name, value in exc.get_headers():
        if name.lower() == "allow":
            response.headers["Allow"] = value
    return response, code


def create_app(
    config: Config,
    settings: LauncherSettings | None = None,
    *,
    launcher: Launcher | None = None,
    redis_client: Any = None,
) -> Flask:
    """A Flask app serving the webhooks (every error answered as JSON)."""
    settings = settings if settings is not None else LauncherSettings.load(config)
    app = Flask("boss.launchers")
    app.extensions["boss_launchers"] = HookState.create(config, settings, launcher, redis_client)
    app.register_blueprint(launchers_http)
    app.register_error_handler(HTTPException, json_errors)
    return app
