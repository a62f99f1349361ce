"""Server-rendered fragments of the run page's pictures, fetched by
``static/graphs.js`` when the run moves (the ``boss:transition`` event):
the timeline (Gantt chart and table) as the HTML that ``run.html``
includes, so it stays one template and CSP-clean (no inline styles)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from webui import views
from webui.services import services

graphs = Blueprint("graphs", __name__)


@graphs.get("/runs/<wfid>/timeline.html")
def timeline_fragment(wfid: str) -> Any:
    svc = services()
    timeline = views.run_timeline(svc, wfid)
    views._state(svc, wfid)  # 404 for an unknown run
    return render_template("_run_timeline.html", run={"wfid": wfid}, timeline=timeline)
