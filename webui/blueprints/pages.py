"""The HTML pages and their forms. Every form posts the session's CSRF
token; every action goes through ``webui.actions`` (the same checks, the
same messages on the engine's queue, the same audit entries as the API)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, flash, redirect, render_template, request, url_for

from engine.core import states
from engine.core.outcome import OUTCOMES
from webui import actions, views
from webui.access import Refused, current_user, require
from webui.blueprints import common
from webui.blueprints.common import remote as _remote
from webui.blueprints.live import stream_position
from webui.services import services

pages = Blueprint("pages", __name__)


@pages.get("/")
def index() -> Any:
    return redirect(url_for("pages.runs"))


@pages.get("/runs")
def runs() -> Any:
    svc = services()
    # the stream's position BEFORE the list is read: a transition between
    # the two is then sent again (harmless) rather than never (a row left
    # saying "running" for good)
    since = stream_position()
    data = views.runs_page(svc, request.args, current_user())
    return render_template(
        "runs.html",
        data=data,
        states=states.RUN_STATES,
        processes=actions.list_processes(svc),
        field_names=svc.index.field_names(),
        poll=svc.web.poll_interval,
        link=_runs_link,
        outcomes=OUTCOMES,
        stream_id=since,
    )


def _runs_link(**changes: Any) -> str:
    """This run list's address with ``changes`` (None drops an argument):
    every other active filter is kept, and a change of filter goes back
    to the first page."""
    args = request.args.copy()
    if "offset" not in changes:
        args.pop("offset", None)
    for key, value in changes.items():
        args.pop(key, None)
        if value not in (None, ""):
            args[key] = str(value)
    items = [(k, v) for k, v in args.items(multi=True) if v != ""]
    return url_for("pages.runs") + ("?" + urlencode(items) if items else "")


@pages.get("/runs/<wfid>")
def run(wfid: str) -> Any:
    svc = services()
    since = stream_position()  # before the run is read (see runs())
    if svc.store.load_run(wfid) is None and svc.index.owner(wfid) is not None:
        # launched from here a moment ago: the engine has not stored it yet
        return render_template("pending.html", wfid=wfid), 202
    info = views.run_detail(svc, wfid)
    timeline = views.run_timeline(svc, wfid)
    return render_template(
        "run.html",
        run=info,
        timeline=timeline,
        poll=svc.web.poll_interval,
        stream_id=since,
    )


@pages.post("/runs/<wfid>/<action>")
def run_action(wfid: str, action: str) -> Any:
    data = {k: v for k, v in request.form.items() if k != "csrf_token"}
    message = actions.act(services(), current_user(), wfid, action, data, _remote())
    flash(message, "ok")
    return redirect(url_for("pages.run", wfid=wfid))


@pages.get("/errors")
def errors() -> Any:
    return render_template("errors.html", groups=views.error_groups(services()))


@pages.post("/errors/replay")
def errors_replay() -> Any:
    items = []
    for value in request.form.getlist("error"):
        wfid, _, error_id = value.partition("/")
        items.append((wfid, error_id or None))
    if not items:
        raise Refused("choose at least one error to replay", 400)
    results = actions.bulk_replay(
        services(), current_user(), items, request.form.get("fields"), _remote()
    )
    for r in results:
        flash(r["message"], "ok" if r["ok"] else "error")
    return redirect(url_for("pages.errors"))


@pages.route("/launch", methods=["GET", "POST"])
def launch() -> Any:
    svc = services()
    if request.method == "POST":
        process = request.form.get("process", "")
        fields = request.form.get("fields", "")
        if request.form.get("do") == "validate":
            result = actions.validate(svc, process, fields)
            if result["ok"]:
                flash(
                    f"{process} is valid ({result['name']}) and the fields are a JSON object", "ok"
                )
            else:
                for problem in result["problems"]:
                    flash(problem, "error")
            return _launch_page(process, fields)
        wfid = actions.launch(svc, current_user(), process, fields, _remote())
        _wait_stored(wfid)
        flash(f"launched {process} as {wfid}", "ok")
        return redirect(url_for("pages.run", wfid=wfid))
    return _launch_page(request.args.get("process", ""), None)


def _wait_stored(wfid: str, timeout: float = 3.0) -> None:
    """Give the engine workers a moment to store a run just launched."""
    import time

    store = services().store
    deadline = time.monotonic() + timeout
    while store.load_run(wfid) is None and time.monotonic() < deadline:
        time.sleep(0.05)


def _launch_page(process: str, fields: str | None) -> Any:
    svc = services()
    source = None
    if process:
        _, source = actions.process_source(svc, process)
    if fields is None and source is not None:
        import json

        import yaml

        try:
            declared = (yaml.safe_load(source) or {}).get("fields") or {}
        except yaml.YAMLError:
            declared = {}
        fields = json.dumps(declared if isinstance(declared, dict) else {}, indent=2)
    return render_template(
        "launch.html",
        processes=actions.list_processes(svc),
        process=process,
        source=source,
        fields=fields or "{}",
    )


@pages.get("/participants")
def participants() -> Any:
    return render_template("participants.html", data=views.participants_view(services()))


@pages.post("/participants/skynet")
def skynet_action() -> Any:
    user = require("admin")
    action = request.form.get("action", "")
    url, name = request.form.get("url", ""), request.form.get("name", "")
    common.skynet_action(services(), user, action, url, name, request.form.get("instances", ""))
    flash(f"{action} sent to {name} on {url}", "ok")
    return redirect(url_for("pages.participants"))


@pages.get("/trace")
def trace() -> Any:
    svc = services()
    q = request.args.get("q", "")
    found = views.trace_search(svc, q) if q else []
    if len(found) == 1 and request.args.get("go") != "0":
        return redirect(url_for("pages.trace_event", eid=found[0]["meta"]["id"]))
    return render_template(
        "trace.html",
        q=q,
        found=found,
        level=request.args.get("level", ""),
        since=request.args.get("since", "30d"),
    )


@pages.get("/trace/events/<eid>")
def trace_event(eid: str) -> Any:
    from engine.trace import site_of, unshared_event

    svc = services()
    graph = svc.graph
    event = graph.get(eid)
    if event is None:
        # an event a held one links to that this site never received (a
        # peer's, not shared): say whose it is and what links to it
        info = unshared_event(graph, eid)
        if info is None:
            raise Refused(f"no event {eid}", 404)
        sources = [x["source"] for x in info["linked_from"]]
        held = dict(zip(sources, graph.get_many(sources), strict=True))
        linked_from = [
            {
                **x,
                "event": held.get(x["source"]),
                "site_label": views.trace_site_label(svc, site_of(held.get(x["source"]))),
            }
            for x in info["linked_from"]
        ]
        body = render_template(
            "trace_unshared.html",
            eid=eid,
            info=info,
            site=views.trace_site_label(svc, info["domain"]),
            linked_from=linked_from,
        )
        return body, 404
    domain = site_of(event)
    return render_template(
        "trace_event.html",
        event=event,
        run=_run_of(graph, event),
        site=views.trace_site_label(svc, domain),
        domain=domain,
    )


def _run_of(graph: Any, event: dict[str, Any]) -> str | None:
    """The BOSS run an Activity event is of (its ``wfid`` custom data, or its
    ActivityTriggered's, through ACTIVITY_EXECUTION); None for others."""
    candidates = [event]
    for link in event.get("links") or ():
        if link.get("type") == "ACTIVITY_EXECUTION":
            triggered = graph.get(link.get("target"))
            if triggered is not None:
                candidates.append(triggered)
    from webui.graphs import custom_value

    return next((w for ev in candidates if (w := custom_value(ev, "wfid"))), None)


@pages.get("/health")
def health() -> Any:
    report = services().health.report(common.since_arg())
    return render_template("health.html", report=report, since=request.args.get("since", "7d"))


@pages.get("/audit")
def audit() -> Any:
    require("admin")
    svc = services()
    offset = max(0, int(request.args.get("offset", 0) or 0))
    return render_template(
        "audit.html",
        entries=svc.audit.entries(offset, 100),
        total=svc.audit.count(),
        offset=offset,
        users=svc.users.list(),
    )


# -- dead letters (webui.deadletters) ---------------------------------------------------


@pages.get("/deadletters")
def deadletters() -> Any:
    from webui import deadletters as dl

    return render_template("deadletters.html", data=dl.letters_view(services()))


@pages.post("/deadletters/<source>/<letter_id>/<action>")
def deadletter_action(source: str, letter_id: str, action: str) -> Any:
    from webui import deadletters as dl

    message = dl.act(services(), current_user(), source, action, letter_id, _remote())
    flash(message, "ok")
    return redirect(url_for("pages.deadletters"))
