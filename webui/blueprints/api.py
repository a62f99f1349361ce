"""The JSON API under ``/api`` (documented in docs/webui.md). Reads follow
the same access rule as the pages (anonymous when allowed); every POST
needs the session's CSRF token in ``X-CSRF-Token`` and a user allowed to
do it. Errors are ``{"error": why, "status": N}``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from webui import actions, views
from webui.access import Refused, csrf_token, current_user, require
from webui.blueprints import common
from webui.blueprints.common import remote as _remote
from webui.services import services

api = Blueprint("api", __name__)


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if data is None:
        return dict(request.form)
    if not isinstance(data, dict):
        raise Refused("the request body must be a JSON object", 400)
    return data


@api.get("/me")
def me() -> Any:
    user = current_user()
    return jsonify(
        {"user": user.name, "role": user.role, "via": user.via, "csrf_token": csrf_token()}
    )


@api.get("/runs")
def runs() -> Any:
    return jsonify(views.runs_page(services(), request.args, current_user()))


@api.get("/runs/<wfid>")
def run(wfid: str) -> Any:
    return jsonify(views.run_detail(services(), wfid))


@api.get("/runs/<wfid>/graph")
def run_graph(wfid: str) -> Any:
    return jsonify(views.run_graph(services(), wfid))


@api.get("/runs/<wfid>/timeline")
def run_timeline(wfid: str) -> Any:
    return jsonify(views.run_timeline(services(), wfid))


@api.post("/runs/<wfid>/<action>")
def run_action(wfid: str, action: str) -> Any:
    message = actions.act(services(), current_user(), wfid, action, _body(), _remote())
    return jsonify({"ok": True, "message": message}), 202


@api.get("/errors")
def errors() -> Any:
    return jsonify({"groups": views.error_groups(services())})


@api.post("/errors/replay")
def errors_replay() -> Any:
    body = _body()
    items = [
        (str(i["wfid"]), i.get("error_id"))
        for i in body.get("items") or ()
        if isinstance(i, dict) and i.get("wfid")
    ]
    if not items:
        raise Refused("give items: [{wfid, error_id}, ...]", 400)
    results = actions.bulk_replay(services(), current_user(), items, body.get("fields"), _remote())
    return jsonify({"results": results}), 202


@api.get("/processes")
def processes() -> Any:
    return jsonify({"processes": actions.list_processes(services())})


@api.get("/processes/<path:name>")
def process(name: str) -> Any:
    path, source = actions.process_source(services(), name)
    return jsonify({"process": name, "file": str(path), "source": source})


@api.post("/validate")
def validate() -> Any:
    body = _body()
    return jsonify(actions.validate(services(), str(body.get("process", "")), body.get("fields")))


@api.post("/launch")
def launch() -> Any:
    body = _body()
    wfid = actions.launch(
        services(), current_user(), str(body.get("process", "")), body.get("fields"), _remote()
    )
    return jsonify({"wfid": wfid}), 202


@api.get("/participants")
def participants() -> Any:
    return jsonify(views.participants_view(services(), request.args.get("skynet", "1") != "0"))


@api.post("/skynet/<action>")
def skynet(action: str) -> Any:
    user = require("admin")
    body = _body()
    url, name = str(body.get("url", "")), str(body.get("name", ""))
    return jsonify(
        common.skynet_action(services(), user, action, url, name, body.get("instances", ""))
    )


@api.get("/health")
def health() -> Any:
    return jsonify(services().health.report(common.since_arg()))


@api.get("/audit")
def audit() -> Any:
    require("admin")
    svc = services()
    offset = int(request.args.get("offset", 0) or 0)
    limit = min(1000, int(request.args.get("limit", 100) or 100))
    return jsonify({"total": svc.audit.count(), "entries": svc.audit.entries(offset, limit)})


@api.get("/search")
def search() -> Any:
    return jsonify({"events": views.trace_search(services(), request.args.get("q", ""))})


@api.get("/trace-graph/<eid>")
def trace_graph(eid: str) -> Any:
    return jsonify(views.trace_graph(services(), eid, request.args))


@api.get("/leadtime-series")
def leadtime_series() -> Any:
    level = request.args.get("level")
    if not level:
        raise Refused("level= is required (a confidence level's name)", 400)
    since = common.since_arg(30)
    return jsonify(
        views.leadtime_series(services(), level, since, request.args.get("value", "SUCCESS"))
    )


# -- dead letters (webui.deadletters) ---------------------------------------------------


@api.get("/deadletters")
def deadletters() -> Any:
    from webui import deadletters as dl

    return jsonify(dl.letters_view(services()))


@api.post("/deadletters/<source>/<letter_id>/<action>")
def deadletter_action(source: str, letter_id: str, action: str) -> Any:
    from webui import deadletters as dl

    message = dl.act(services(), current_user(), source, action, letter_id, _remote())
    return jsonify({"ok": True, "message": message})
