"""A fake OBS API at the HTTP boundary: a small werkzeug app on a real port,
answering with XML shaped like OBS's, behind Basic auth. The test sets up
its state (requests, sources, project metas, build results) and reads what
the participants did (``changes``: the changestate POSTs).

Also served, for the real BOSS participants over osc (tests/compat): the
project list (``GET /source``), a project's package list (``GET
/source/<project>``), persons (``GET /person/<login>``, set with
``add_person``), groups (``GET /group/<title>``, ``add_group``), reviews
(``POST /request/<id>?cmd=addreview|changereviewstate``, recorded in
``reviews`` and shown in the request's XML) and ``withfullhistory``. Request
XML carries ``<review>`` and ``<history>`` elements as OBS does."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

USER, PASSWORD = "boss", "s3cret"


def _status(code: int, summary: str) -> Response:
    return Response(
        f'<status code="{code}">\n  <summary>{escape(summary)}</summary>\n</status>\n',
        status=code,
        content_type="application/xml",
    )


@dataclass
class FakeObs:
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    metas: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    changes: list[dict[str, str]] = field(default_factory=list)
    persons: dict[str, dict[str, str]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    reviews: list[dict[str, str]] = field(default_factory=list)
    review_changes: list[dict[str, str]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    fail_next: int = 0  # answer 503 to this many calls first
    url: str = ""

    # -- state -------------------------------------------------------------------------
    def add_request(
        self,
        rid: str,
        actions: list[dict[str, str]],
        *,
        who: str = "alice",
        state: str = "new",
        description: str = "",
    ) -> None:
        self.requests[rid] = {
            "actions": actions,
            "who": who,
            "state": state,
            "description": description,
        }

    def add_package(self, project: str, package: str, files: dict[str, str]) -> None:
        self.sources[(project, package)] = dict(files)

    def add_person(self, login: str, email: str, realname: str = "") -> None:
        self.persons[login] = {"email": email, "realname": realname or login}

    def add_group(self, title: str, members: list[str]) -> None:
        self.groups[title] = list(members)

    # -- XML ------------------------------------------------------------------------------
    def request_xml(self, rid: str) -> str:
        r = self.requests[rid]
        acts = ""
        for a in r["actions"]:
            acts += (
                f'  <action type="{a.get("type", "submit")}">\n'
                f"    <source project={quoteattr(a['sourceproject'])} "
                f"package={quoteattr(a['sourcepackage'])} "
                f"rev={quoteattr(a.get('sourcerevision', '1'))}/>\n"
                f"    <target project={quoteattr(a['targetproject'])} "
                f"package={quoteattr(a['targetpackage'])}/>\n  </action>\n"
            )
        reviews = "".join(
            f'  <review state="{v["state"]}" {v["by"]}={quoteattr(v["name"])} '
            f'who={quoteattr(v["who"])} when="2026-11-21T10:00:01">'
            f"<comment>{escape(v['comment'])}</comment></review>\n"
            for v in self.reviews
            if v["id"] == rid
        )
        return (
            f'<request id="{rid}" creator={quoteattr(r["who"])}>\n{acts}'
            f'  <state name="{r["state"]}" who={quoteattr(r["who"])} '
            f'when="2026-11-21T10:00:00"><comment/></state>\n{reviews}'
            f"  <description>{escape(r['description'])}</description>\n</request>\n"
        )

    def srcmd5(self, project: str, package: str) -> str:
        files = self.sources[(project, package)]
        return hashlib.md5(
            "".join(f"{k}={v}" for k, v in sorted(files.items())).encode()
        ).hexdigest()

    # -- the app ----------------------------------------------------------------------------
    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.dispatch(Request(environ))(environ, start_response)

    def dispatch(self, req: Request) -> Response:
        self.calls.append(f"{req.method} {req.full_path.rstrip('?')}")
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if req.headers.get("Authorization") != expected:
            return Response(
                '<status code="authentication_required"><summary>Authentication'
                " required</summary></status>",
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="Use your password"'},
            )
        if self.fail_next > 0:
            self.fail_next -= 1
            return _status(503, "the backend is down for maintenance")
        parts = [p for p in req.path.split("/") if p]
        xml = "application/xml"
        if parts[:1] == ["request"] and len(parts) == 1:
            prj, pkg = req.args.get("project"), req.args.get("package")
            states = (req.args.get("states") or "new,review").split(",")
            hits = [
                rid
                for rid, r in self.requests.items()
                if r["state"] in states
                and any(
                    a["targetproject"] == prj and (pkg is None or a["targetpackage"] == pkg)
                    for a in r["actions"]
                )
            ]
            body = (
                f'<collection matches="{len(hits)}">\n'
                + "".join(self.request_xml(rid) for rid in hits)
                + "</collection>\n"
            )
            return Response(body, content_type=xml)
        if parts[:1] == ["request"] and len(parts) == 2:
            rid = parts[1]
            if rid not in self.requests:
                return _status(404, f"Couldn't find request with id '{rid}'")
            if req.method == "POST" and req.args.get("cmd") in ("addreview", "changereviewstate"):
                return self._review(rid, req)
            if req.method == "POST":
                if req.args.get("cmd") != "changestate":
                    return _status(400, "unknown command")
                if self.requests[rid]["state"] not in ("new", "review"):
                    return _status(
                        403, f"change state from {self.requests[rid]['state']}: not allowed"
                    )
                newstate = req.args["newstate"]
                self.requests[rid]["state"] = newstate
                self.changes.append(
                    {
                        "id": rid,
                        "newstate": newstate,
                        # osc sends the comment as the body, older clients as a query
                        "comment": req.args.get("comment") or req.get_data(as_text=True),
                    }
                )
                return _ok()
            return Response(self.request_xml(rid), content_type=xml)
        if parts == ["source"]:
            projects = sorted({*self.metas, *(p for p, _ in self.sources)})
            return Response(_directory(projects), content_type=xml)
        if parts[:1] == ["source"] and len(parts) == 2:
            packages = sorted(k for p, k in self.sources if p == parts[1])
            if not packages and parts[1] not in self.metas:
                return _status(404, f"unknown project '{parts[1]}'")
            return Response(_directory(packages), content_type=xml)
        if parts[:1] == ["person"] and len(parts) == 2:
            person = self.persons.get(parts[1])
            if person is None:
                return _status(404, f"Couldn't find User with login = {parts[1]}")
            return Response(
                f"<person>\n  <login>{escape(parts[1])}</login>\n"
                f"  <email>{escape(person['email'])}</email>\n"
                f"  <realname>{escape(person['realname'])}</realname>\n</person>\n",
                content_type=xml,
            )
        if parts[:1] == ["group"] and len(parts) == 2:
            members = self.groups.get(parts[1])
            if members is None:
                return _status(404, f"Couldn't find Group '{parts[1]}'")
            people = "".join(f'    <person userid="{u}"/>\n' for u in members)
            return Response(
                f"<group>\n  <title>{escape(parts[1])}</title>\n"
                f"  <person>\n{people}  </person>\n</group>\n",
                content_type=xml,
            )
        if parts[:1] == ["source"] and len(parts) == 3 and parts[2] == "_meta":
            meta = self.metas.get(parts[1])
            if meta is None:
                return _status(404, f"unknown project '{parts[1]}'")
            repos = "".join(
                f'  <repository name="{r["name"]}">\n'
                + "".join(f'    <path project="{p}" repository="{rr}"/>\n' for p, rr in r["paths"])
                + "".join(f"    <arch>{a}</arch>\n" for a in r.get("arches", ["i586"]))
                + "  </repository>\n"
                for r in meta.get("repositories", [])
            )
            persons = "".join(
                f'  <person userid="{u}" role="{role}"/>\n' for u, role in meta.get("persons", [])
            )
            return Response(
                f'<project name="{parts[1]}">\n  <title/>\n  <description/>\n'
                f"{persons}{repos}</project>\n",
                content_type=xml,
            )
        if parts[:1] == ["source"] and len(parts) == 3:
            key = (parts[1], parts[2])
            if key not in self.sources:
                return _status(404, f"{parts[1]}/{parts[2]}: unknown package")
            entries = "".join(
                f'  <entry name={quoteattr(n)} md5="{hashlib.md5(c.encode()).hexdigest()}" '
                f'size="{len(c)}" mtime="1700000000"/>\n'
                for n, c in sorted(self.sources[key].items())
            )
            return Response(
                f'<directory name="{parts[2]}" rev="3" vrev="3" '
                f'srcmd5="{self.srcmd5(*key)}">\n{entries}</directory>\n',
                content_type=xml,
            )
        if parts[:1] == ["source"] and len(parts) == 4:
            files = self.sources.get((parts[1], parts[2]), {})
            if parts[3] not in files:
                return _status(404, f"{parts[3]}: no such file")
            return Response(files[parts[3]], content_type="text/plain")
        if parts[:1] == ["build"] and len(parts) == 3 and parts[2] == "_result":
            pkg = req.args.get("package")
            body = ""
            for r in self.results.get(parts[1], []):
                statuses = "".join(
                    f'    <status package="{p}" code="{c}"/>\n'
                    for p, c in r["packages"].items()
                    if pkg in (None, p)
                )
                body += (
                    f'  <result project="{parts[1]}" repository="{r["repository"]}" '
                    f'arch="{r["arch"]}" code="published" state="published">\n'
                    f"{statuses}  </result>\n"
                )
            return Response(f'<resultlist state="c0ffee">\n{body}</resultlist>\n', content_type=xml)
        return _status(404, f"no route {req.path}")

    def _review(self, rid: str, req: Request) -> Response:
        """``addreview`` / ``changereviewstate``: ``reviews`` holds each review
        as it stands now, ``review_changes`` every command in order."""
        by = next(
            (k for k in ("by_user", "by_group", "by_project", "by_package") if req.args.get(k)),
            None,
        )
        if by is None:
            return _status(400, "review_not_specified")
        cmd, name = req.args["cmd"], req.args[by]
        comment = req.get_data(as_text=True) or req.args.get("comment", "")
        newstate = "new" if cmd == "addreview" else req.args.get("newstate", "")
        if cmd == "addreview":
            self.reviews.append(
                {"id": rid, "by": by, "name": name, "state": "new", "who": USER, "comment": comment}
            )
        else:
            mine = [
                v for v in self.reviews if v["id"] == rid and (v["by"], v["name"]) == (by, name)
            ]
            if not mine:
                return _status(404, f"request {rid} has no review {by}={name}")
            for v in mine:
                v.update(state=newstate, comment=comment, who=USER)
        self.review_changes.append(
            {
                "id": rid,
                "cmd": cmd,
                "by": by,
                "name": name,
                "newstate": newstate,
                "comment": comment,
            }
        )
        state = self.requests[rid]["state"]
        pending = any(v["id"] == rid and v["state"] == "new" for v in self.reviews)
        if state in ("new", "review"):
            self.requests[rid]["state"] = "review" if pending else "new"
        return _ok()


def _ok() -> Response:
    """What OBS answers a successful command (osc reads ``code``)."""
    return Response(
        '<status code="ok">\n  <summary>Ok</summary>\n</status>\n',
        content_type="application/xml",
    )


def _directory(names: list[str]) -> str:
    entries = "".join(f"  <entry name={quoteattr(n)}/>\n" for n in names)
    return f'<directory count="{len(names)}">\n{entries}</directory>\n'


@contextmanager
def fake_obs() -> Iterator[FakeObs]:
    obs = FakeObs()
    server = make_server("127.0.0.1", 0, obs.app, threaded=True)
    obs.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield obs
    finally:
        server.shutdown()
        server.server_close()
