"""The webhook endpoints: a Flask blueprint (``launchers_http``) with
``POST /hooks/github`` and ``POST /hooks/gitlab``.

* A delivery whose signature (GitHub) or token (GitLab) is wrong is refused
  with 401, and a warning is logged (who sent it, which delivery). With no
  secret configured the endpoint refuses everything (503): an unprotected
  endpoint would let anyone launch processes.
* A good delivery is normalised and launched: 202 with the launched wfids.
* The delivery id is kept in Redis for ``delivery_ttl`` seconds: the same
  delivery again (GitHub's "Redeliver", a retry after a timeout) is
  answered 200 ``already launched`` with the wfids of the first time, and
  nothing is published. (Were the key lost, the wfids would still be the
  same, and the engine ignores a launch it already has.)
* A delivery that cannot be understood is dead-lettered with the reason:
  400 with the reason and the dead letter's id.

``create_app(config, settings)`` makes an app of its own (``boss launcher
serve``); the web UI may register the blueprint in its app instead, with
``app.extensions["boss_launchers"] = HookState(...)``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request

from engine.config import Config
from engine.launchers.base import RawEvent, Source
from engine.launchers.github import GitHubSource, verify_signature
from engine.launchers.gitlab import GitLabSource, verify_token
from engine.launchers.launcher import Launcher
from engine.launchers.settings import LauncherSettings

__all__ = ["HookState", "create_app", "launchers_http"]

log = logging.getLogger("boss.launchers.http")

launchers_http = Blueprint("launchers_http", __name__)


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
            import redis

            redis_client = redis.Redis.from_url(config.resolved_redis_url())
        return cls(
            launcher if launcher is not None else Launcher(config, settings),
            settings,
            redis_client,
            GitHubSource(),
            GitLabSource(),
        )

    def delivery_key(self, source: str, delivery: str) -> str:
        return f"{self.launcher.config.key_prefix}launchers:delivery:{source}:{delivery}"


def _state() -> HookState:
    return current_app.extensions["boss_launchers"]


def _headers() -> dict[str, str]:
    return {k: v for k, v in request.headers.items()}


def _handle(
    state: HookState, source: Source, raw: RawEvent, delivery: str | None
) -> tuple[Any, int]:
    key = state.delivery_key(source.name, delivery) if delivery else None
    if key is not None:
        seen = state.redis.get(key)
        if seen is not None:
            log.info("%s webhook: delivery %s already launched", source.name, delivery)
            return jsonify(
                {"status": "already launched", "delivery": delivery, "wfids": json.loads(seen)}
            ), 200
    outcome = state.launcher.handle(source, raw)
    if outcome.deadletter is not None:
        return jsonify({"error": outcome.reason, "deadletter": outcome.deadletter}), 400
    if key is not None:
        state.redis.set(
            key, json.dumps(outcome.wfids), ex=int(state.settings.delivery_ttl), nx=True
        )
    return jsonify(
        {
            "status": "launched",
            "delivery": delivery,
            "wfids": outcome.wfids,
            "events": [e.label for e in outcome.events],
            "eiffel": outcome.eiffel_ids,
        }
    ), 202


def _refuse(source: str, why: str, delivery: str | None, code: int) -> tuple[Any, int]:
    log.warning(
        "%s webhook: refused delivery %s from %s: %s",
        source,
        delivery or "-",
        request.remote_addr,
        why,
    )
    return jsonify({"error": why}), code


@launchers_http.post("/hooks/github")
def github_hook() -> tuple[Any, int]:
    state = _state()
    body = request.get_data(cache=False)
    delivery = request.headers.get("X-GitHub-Delivery")
    if not state.settings.github_secret:
        return _refuse("github", "no github_secret configured", delivery, 503)
    if not verify_signature(
        state.settings.github_secret, body, request.headers.get("X-Hub-Signature-256")
    ):
        return _refuse("github", "bad signature (X-Hub-Signature-256)", delivery, 401)
    return _handle(state, state.github, RawEvent(body, _headers()), delivery)


@launchers_http.post("/hooks/gitlab")
def gitlab_hook() -> tuple[Any, int]:
    state = _state()
    body = request.get_data(cache=False)
    delivery = request.headers.get("Idempotency-Key") or request.headers.get("X-Gitlab-Event-UUID")
    if not state.settings.gitlab_token:
        return _refuse("gitlab", "no gitlab_token configured", delivery, 503)
    if not verify_token(state.settings.gitlab_token, request.headers.get("X-Gitlab-Token")):
        return _refuse("gitlab", "bad token (X-Gitlab-Token)", delivery, 401)
    return _handle(state, state.gitlab, RawEvent(body, _headers()), delivery)


@launchers_http.get("/hooks/health")
def health() -> tuple[Any, int]:
    return jsonify({"status": "ok"}), 200


def create_app(
    config: Config,
    settings: LauncherSettings | None = None,
    *,
    launcher: Launcher | None = None,
    redis_client: Any = None,
) -> Flask:
    """A Flask app serving the webhooks."""
    settings = settings if settings is not None else LauncherSettings.load(config)
    app = Flask("boss.launchers")
    app.extensions["boss_launchers"] = HookState.create(config, settings, launcher, redis_client)
    app.register_blueprint(launchers_http)
    return app
