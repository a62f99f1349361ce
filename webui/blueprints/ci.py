"""The CI-systems dashboard (issue 17, item 4; ``docs/ci-dashboard.md``):
the radar's figures (``engine.radar``) as JSON under ``/api/ci`` and as
the pages ``/ci`` and ``/ci/<name>``. Read-only; the access rule is the
other read pages' (anonymous when allowed: ``webui.app``'s gate).
Nothing is computed here that the radar computes: the figures are
``engine.radar.stats.window``'s, the day buckets ``daily``'s, a verdict
``verdict_of``'s. The API is documented in ``docs/ci-dashboard-openapi.yaml``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, render_template, request

from engine.radar import RadarSettings, RadarStore, rows
from engine.radar.stats import daily, duration_text, verdict_of, window
from webui.access import Refused
from webui.services import services

__all__ = ["ci", "sparkline"]

ci = Blueprint("ci", __name__)

#: the most patch sets one answer lists
MAX_LIMIT = 500


def _radar() -> tuple[RadarStore, RadarSettings]:
    """The radar's store on the run store's Redis and key prefix, and the
    ``[radar]`` settings (read once per app)."""
    svc = services()
    settings = current_app.extensions.get("boss_radar_settings")
    if settings is None:
        from engine.config import ConfigError

        try:
            settings = RadarSettings.load(svc.config)
        except ConfigError as exc:
            raise Refused(f"the [radar] settings are wrong: {exc}", 500) from None
        current_app.extensions["boss_radar_settings"] = settings
    return RadarStore(svc.client, svc.config.key_prefix, settings.retention), settings


def _until() -> float:
    from engine.radar import parse_instant

    try:
        return parse_instant(request.args.get("until"))
    except ValueError as exc:
        raise Refused(f"until: {exc}", 400) from None


def _since(until: float) -> tuple[str, float]:
    """``?since=``: a duration (``7d``, ``12h``) before ``until``, or ``all``."""
    from engine.core.durations import DurationError, parse_duration

    text = request.args.get("since") or "7d"
    if text == "all":
        return text, 0.0
    try:
        return text, until - parse_duration(text)
    except (DurationError, ValueError) as exc:
        raise Refused(f"since: {exc}", 400) from None


def _limit(default: int = 50) -> int:
    try:
        value = int(request.args.get("limit") or default)
    except ValueError:
        raise Refused("limit: a number, please", 400) from None
    return max(1, min(MAX_LIMIT, value))


def _args() -> dict[str, Any]:
    until = _until()
    text, since = _since(until)
    return {"since": since, "until": until, "since_text": text, "project": _project()}


def _project() -> str | None:
    return request.args.get("project") or None


def _name(store: RadarStore, name: str) -> tuple[str, dict[str, Any]]:
    known = store.systems()
    if name in known:
        return name, known[name]
    match = next((n for n in known if n.lower() == name.lower()), None)
    if match is None:
        raise Refused(f"no CI system {name!r} (GET /api/ci/systems lists them)", 404)
    return match, known[match]


# -- what the pages and the API share ----------------------------------------------------


def systems_view(a: dict[str, Any], *, days: bool = False) -> dict[str, Any]:
    """Every system's figures (``window``'s, as ``boss ci systems --json``),
    with ``days`` its daily buckets too (``daily``'s)."""
    store, settings = _radar()
    figures = window(store, settings, since=a["since"], until=a["until"], project=a["project"])
    out: dict[str, Any] = {
        "since": a["since"],
        "until": a["until"],
        "project": a["project"],
        "systems": figures,
    }
    if days:
        out["days"] = daily(
            store,
            settings,
            since=a["since"],
            until=a["until"],
            project=a["project"],
            names=[f["name"] for f in figures],
        )
    return out


def system_view(name: str, a: dict[str, Any], limit: int) -> dict[str, Any]:
    """One system: its figures, its newest reports, its day buckets."""
    store, settings = _radar()
    name, meta = _name(store, name)
    figures = window(
        store, settings, since=a["since"], until=a["until"], project=a["project"], names=[name]
    )
    mine = next((f for f in figures if f["name"] == name), None)
    days = daily(
        store, settings, since=a["since"], until=a["until"], project=a["project"], names=[name]
    )
    return {
        "name": name,
        "since": a["since"],
        "until": a["until"],
        "project": a["project"],
        "meta": meta,
        "figures": mine,
        "reports": store.recent(name, limit),
        "days": days.get(name, []),
    }


def patchsets_view(a: dict[str, Any], limit: int, system: str | None = None) -> dict[str, Any]:
    """The window's newest patch sets (those ``system`` reported on, when
    given) with every system's verdict on each (``verdict_of``; null: it
    reported without a verdict), and the systems as columns (gate first)."""
    store, settings = _radar()
    if system:
        system, _ = _name(store, system)
    if rows.rolled(store):
        sets = store.newest(a["since"], a["until"], a["project"], limit, system)
        total = rows.count(
            store, since=a["since"], until=a["until"], project=a["project"], system=system
        )
    else:
        sets = store.patch_sets(a["since"], a["until"], a["project"])
        if system:
            sets = [ps for ps in sets if system in ps.reports]
        sets.sort(key=lambda ps: (ps.time, ps.psid), reverse=True)
        total = len(sets)
    out = []
    seen: set[str] = set()
    for ps in sets[:limit]:
        verdicts = {n: verdict_of(r, ps.rechecks) for n, r in sorted(ps.reports.items())}
        seen.update(verdicts)
        first = {
            n: min((t for _, t, v, _ in r if v is not None), default=None)
            for n, r in ps.reports.items()
        }
        out.append(
            {
                "psid": ps.psid,
                "forge": ps.forge,
                "project": ps.project,
                "change": ps.change,
                "patchset": ps.patchset,
                "time": ps.time,
                "appeared": ps.appeared,
                "merged": ps.merged,
                "rechecks": len(ps.rechecks),
                "verdicts": verdicts,
                "responses": {
                    n: (t - ps.appeared if t is not None and ps.appeared is not None else None)
                    for n, t in first.items()
                },
            }
        )
    meta = store.systems()
    gate = (settings.gate or "").lower()
    columns = sorted(
        seen,
        key=lambda n: (
            not (n.lower() == gate or meta.get(n, {}).get("gate")),
            n != system,
            n.lower(),
        ),
    )
    return {
        "since": a["since"],
        "until": a["until"],
        "project": a["project"],
        "system": system,
        "total": total,
        "systems": columns,
        "patch_sets": out,
    }


def sparkline(values: list[float | None], width: int = 120, height: int = 28) -> dict[str, Any]:
    """An inline SVG's geometry for ``values`` (0..1, None: no verdict that
    day): ``points`` of the polyline(s), ``dots`` of lone days, for the
    template to draw (attributes only: the CSP forbids inline styles)."""
    n = len(values)
    step = width / max(1, n - 1)
    pad = 3.0

    def y(v: float) -> float:
        return round(pad + (1 - v) * (height - 2 * pad), 1)

    lines: list[list[tuple[float, float]]] = []
    run: list[tuple[float, float]] = []
    for i, v in enumerate(values):
        if v is None:
            if run:
                lines.append(run)
            run = []
            continue
        run.append((round(i * step if n > 1 else width / 2, 1), y(v)))
    if run:
        lines.append(run)
    return {
        "width": width,
        "height": height,
        "lines": [" ".join(f"{x},{yy}" for x, yy in r) for r in lines if len(r) > 1],
        "dots": [r[0] for r in lines if len(r) == 1],
        "known": sum(v is not None for v in values),
    }


# -- the JSON API --------------------------------------------------------------------


@ci.get("/api/ci/systems")
def api_systems() -> Any:
    return jsonify(systems_view(_args()))


@ci.get("/api/ci/systems/<path:name>")
def api_system(name: str) -> Any:
    return jsonify(system_view(name, _args(), _limit(20)))


@ci.get("/api/ci/patchsets")
def api_patchsets() -> Any:
    return jsonify(patchsets_view(_args(), _limit(), request.args.get("system") or None))


# -- the pages -----------------------------------------------------------------------


@ci.get("/ci")
def systems_page() -> Any:
    a = _args()
    data = systems_view(a, days=True)
    sparks = {
        name: sparkline([d["success_rate"] for d in days]) for name, days in data["days"].items()
    }
    return render_template(
        "ci.html", data=data, sparks=sparks, since=a["since_text"], dt=duration_text
    )


@ci.get("/ci/<path:name>")
def system_page(name: str) -> Any:
    a = _args()
    data = system_view(name, a, 20)
    sets = patchsets_view(a, _limit(30), data["name"])
    return render_template(
        "ci_system.html", data=data, sets=sets, since=a["since_text"], dt=duration_text
    )
