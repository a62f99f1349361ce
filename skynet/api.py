"""SkyNET's REST API: a Flask blueprint (``skynet_api``) and ``create_app()``.

JSON in and out; reads are open, writes need ``Authorization: Bearer
<token>`` (``[skynet] token``; compared in constant time; no token
configured = writes refused). Errors are ``{"error": "...", "code": N}``
with N the HTTP status. ``docs/skynet-openapi.yaml`` describes every route.

Importing this module has no side effects: the web UI mounts the blueprint
with ``app.register_blueprint(skynet_api, url_prefix=...)`` after
``init_app(app, config)`` (without it the configuration is loaded from the
usual files on first use).
"""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from skynet.config import SkynetConfig
from skynet.errors import Invalid, NotPermitted, SkynetError

__all__ = ["create_app", "init_app", "pool_details", "skynet_api"]

skynet_api = Blueprint("skynet_api", __name__)

_EXT = "skynet"


def init_app(app: Flask, config: SkynetConfig | None = None) -> None:
    """Give the blueprint its configuration."""
    app.extensions[_EXT] = {"config": config}


def create_app(config: SkynetConfig | None = None, url_prefix: str = "") -> Flask:
    """A Flask app serving only the API (``skynet serve``, tests)."""
    app = Flask("skynet")
    init_app(app, config)
    app.register_blueprint(skynet_api, url_prefix=url_prefix or None)
    return app


def _config() -> SkynetConfig:
    ext = current_app.extensions.setdefault(_EXT, {"config": None})
    if ext.get("config") is None:
        ext["config"] = SkynetConfig.load()
    return ext["config"]


def _pools() -> Any:
    from skynet.pools import Pools

    return Pools(_config())


def _error(message: str, status: int) -> Any:
    response = jsonify({"error": message, "code": status})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="skynet"'
    return response


@skynet_api.errorhandler(SkynetError)
def _skynet_error(exc: SkynetError) -> Any:
    return _error(str(exc), exc.status)


@skynet_api.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Any:
    return _error(exc.description or exc.name, exc.code or 500)


def _authorised() -> None:
    token = _config().token
    if not token:
        raise NotPermitted("writes are disabled: no [skynet] token is configured on this host")
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        value.strip().encode(), token.encode()
    ):
        raise _Unauthorised("a valid 'Authorization: Bearer <token>' header is needed to write")


class _Unauthorised(SkynetError):
    status = 401


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None and request.get_data():
        raise Invalid("the request body is not JSON")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise Invalid("the request body must be a JSON object")
    return data


def _field(
    data: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None
) -> Any:
    value = data.get(key, default)
    if value is not None and (
        not isinstance(value, kind) or (kind is int and isinstance(value, bool))
    ):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise Invalid(f"{key!r} must be {names}")
    return value


def pool_details(pools: Any, *entries: dict[str, Any]) -> Any:
    """Pools' status entries with their queue depth, registrations and, for
    one, the description (``info``). One broker connection, one store read."""
    from skynet import validate
    from skynet.engine_view import queue_depths, registrations

    boss = pools.config.boss
    depths = queue_depths(boss, [e["queue"] for e in entries])
    regs = registrations(boss)
    for entry in entries:
        entry["queue_depth"] = depths.get(entry["queue"])
        if isinstance(regs, dict):
            entry["registered"] = regs
        else:
            entry["registered"] = [
                r
                for r in regs
                if r["queue"] == entry["queue"] or r["pattern"] in (entry["name"], entry["regexp"])
            ]
    if len(entries) == 1:
        entry = entries[0]
        spec = pools.get(entry["name"])
        entry["description"] = validate.describe(spec.code, spec.class_name)
        entry["sections"] = sorted(spec.sections)
        return entry
    return list(entries)


def _local() -> list[dict[str, Any]]:
    pools = _pools()
    try:
        entries = pools.status()
        if entries:
            pool_details(pools, *entries)
        return entries
    finally:
        pools.close()


# -- reads -----------------------------------------------------------------------------


@skynet_api.get("/participants")
def list_participants() -> Any:
    """Every pool of this host (``?cluster=1``: of every host)."""
    if request.args.get("cluster", "").lower() in ("1", "true", "yes"):
        return cluster_participants()
    config = _config()
    pools = _local()
    for pool in pools:
        pool["host"] = config.host_name
    return jsonify({"host": config.host_name, "participants": pools})


@skynet_api.get("/cluster/participants")
def cluster_participants() -> Any:
    from skynet.cluster import merge

    config = _config()
    return jsonify(merge(config.host_name, _local(), config.hosts, config.peer_timeout))


@skynet_api.get("/hosts")
def hosts() -> Any:
    """The hosts a cluster view aggregates (this one first)."""
    from skynet.cluster import merge

    config = _config()
    view = merge(config.host_name, [], config.hosts, config.peer_timeout)
    for entry in view["hosts"]:
        entry.pop("participants", None)
    return jsonify({"hosts": view["hosts"]})


@skynet_api.get("/participants/<name>")
def get_participant(name: str) -> Any:
    pools = _pools()
    try:
        entry = pools.status([name])[0]
        pool_details(pools, entry)
        entry["host"] = _config().host_name
        return jsonify(entry)
    finally:
        pools.close()


# -- writes ----------------------------------------------------------------------------


def _one(pools: Any, name: str) -> dict[str, Any]:
    entry = pools.status([name])[0]
    entry["host"] = _config().host_name
    return entry


@skynet_api.put("/participants/<name>")
def install_participant(name: str) -> Any:
    """Install (``code`` is a path on this host)."""
    _authorised()
    data = _body()
    code = _field(data, "code", str)
    if not code:
        raise Invalid("'code' (the handler's .py file on this host) is required")
    sections = _field(data, "sections", dict) or {}
    options = _field(data, "options", dict) or {}
    pools = _pools()
    try:
        pools.install(
            code,
            name,
            queue=_field(data, "queue", str),
            regexp=_field(data, "regexp", str),
            user=_field(data, "user", str),
            instances=_field(data, "instances", int, 1),
            class_name=_field(data, "class", str, "ParticipantHandler"),
            sections={
                str(k): {str(a): str(b) for a, b in v.items()}
                for k, v in sections.items()
                if isinstance(v, dict)
            },
            options={str(k): str(v) for k, v in options.items()},
        )
        if _field(data, "register", bool, False):
            pools.register(name)
        response = jsonify(_one(pools, name))
        response.status_code = 201
        return response
    finally:
        pools.close()


@skynet_api.post("/participants/<name>/running")
def set_running(name: str) -> Any:
    """``{"running": true}`` starts every instance, ``false`` stops them."""
    _authorised()
    running = _field(_body(), "running", bool)
    if running is None:
        raise Invalid("'running' (true or false) is required")
    pools = _pools()
    try:
        if running:
            pools.start([name])
        else:
            pools.stop([name])
        return jsonify(_one(pools, name))
    finally:
        pools.close()


@skynet_api.post("/participants/<name>/scale")
def scale_participant(name: str) -> Any:
    """``{"instances": N}``: the instances that stay are not restarted."""
    _authorised()
    instances = _field(_body(), "instances", int)
    if instances is None:
        raise Invalid("'instances' (a number) is required")
    pools = _pools()
    try:
        result = pools.scale(name, instances)
        entry = _one(pools, name)
        entry["applied"] = result.as_dict()
        return jsonify(entry)
    finally:
        pools.close()


@skynet_api.delete("/participants/<name>")
def uninstall_participant(name: str) -> Any:
    _authorised()
    pools = _pools()
    try:
        result = pools.uninstall(name)
        return jsonify(
            {"uninstalled": name, "host": _config().host_name, "removed": result.removed}
        )
    finally:
        pools.close()
