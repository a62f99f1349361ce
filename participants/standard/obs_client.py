"""ObsClient: the parts of the Open Build Service REST API the standard
participants use.

Standard library only (``urllib.request`` for HTTP with Basic auth,
``xml.etree.ElementTree`` for OBS's XML): the participants need a handful of
GETs and one POST, which does not justify a new HTTP dependency.

* ``request(id)``: ``GET /request/<id>`` as a dict (``id``, ``state``,
  ``who``, ``description``, ``actions``: ``type``, ``sourceproject``,
  ``sourcepackage``, ``sourcerevision``, ``targetproject``,
  ``targetpackage``; the key names of BOSS's OBS events);
* ``change_request_state(id, newstate, comment)``:
  ``POST /request/<id>?cmd=changestate&newstate=...&comment=...``;
* ``requests(project, package, states)``:
  ``GET /request?view=collection&project=..&package=..&states=..``;
* ``source(project, package=None, rev=None)``: ``GET /source/<prj>[/<pkg>]``,
  a directory listing: ``{"name", "rev", "srcmd5", "entries": [{name, md5,
  size}]}``;
* ``file(project, package, name, rev=None)``: one source file's text;
* ``project_meta(project)``: ``GET /source/<prj>/_meta``: ``repositories``
  (``name``, ``paths``: ``[(project, repository)]``, ``arches``) and
  ``persons`` (``[(userid, role)]``);
* ``build_results(project, package=None)``: ``GET /build/<prj>/_result``:
  ``[{repository, arch, state, packages: {name: code}}]``.

Errors: a 4xx answer raises ``ObsError`` at once with OBS's ``<status>``
summary; connection errors and 5xx answers are tried ``retries`` more times
with a back-off, then raise ``ObsError``.
"""

from __future__ import annotations

import base64
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from typing import Any

__all__ = ["ObsClient", "ObsError"]

log = logging.getLogger("obs")


class ObsError(RuntimeError):
    """An OBS API call failed; ``status`` is the HTTP status (None when the
    server could not be reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ObsClient:
    def __init__(
        self,
        apiurl: str,
        user: str = "",
        password: str = "",
        *,
        retries: int = 3,
        retry_delay: float = 1.0,
        timeout: float = 60.0,
    ) -> None:
        self.apiurl = apiurl.rstrip("/")
        self.retries = max(0, retries)
        self.retry_delay = retry_delay
        self.timeout = timeout
        self._auth = None
        if user:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._auth = f"Basic {token}"

    # -- HTTP -----------------------------------------------------------------------
    def call(
        self, method: str, path: str, query: dict[str, Any] | None = None, body: bytes | None = None
    ) -> bytes:
        """The body of ``method path?query``; see the module for errors."""
        quoted = "/".join(urllib.parse.quote(part, safe=":") for part in path.split("/"))
        url = self.apiurl + quoted
        if query:
            pairs = [(k, v) for k, v in query.items() if v is not None]
            url += "?" + urllib.parse.urlencode(pairs, doseq=True)
        delay = self.retry_delay
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(url, data=body, method=method)
            if self._auth:
                req.add_header("Authorization", self._auth)
            if body is not None:
                req.add_header("Content-Type", "application/xml")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return resp.read()
            except urllib.error.HTTPError as exc:
                summary = _summary(exc.read())
                message = f"OBS {method} {path}: HTTP {exc.code}" + (
                    f": {summary}" if summary else ""
                )
                if exc.code < 500 or attempt == self.retries:
                    raise ObsError(message, exc.code) from None
                log.warning("%s (attempt %d of %d)", message, attempt + 1, self.retries + 1)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                message = f"OBS {method} {path}: cannot reach {self.apiurl}: {reason}"
                if attempt == self.retries:
                    raise ObsError(f"{message} (after {self.retries + 1} attempts)") from None
                log.warning("%s (attempt %d of %d)", message, attempt + 1, self.retries + 1)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def xml(self, path: str, query: dict[str, Any] | None = None) -> ET.Element:
        return ET.fromstring(self.call("GET", path, query))

    # -- requests -------------------------------------------------------------------
    def request(self, request_id: str | int) -> dict[str, Any]:
        return parse_request(self.xml(f"/request/{request_id}"))

    def requests(
        self, project: str, package: str | None = None, states: str = "new,review"
    ) -> list[dict[str, Any]]:
        root = self.xml(
            "/request",
            {"view": "collection", "project": project, "package": package, "states": states},
        )
        return [parse_request(r) for r in root.findall("request")]

    def change_request_state(self, request_id: str | int, newstate: str, comment: str = "") -> None:
        self.call(
            "POST",
            f"/request/{request_id}",
            {"cmd": "changestate", "newstate": newstate, "comment": comment},
        )

    # -- sources and builds ----------------------------------------------------------
    def source(
        self, project: str, package: str | None = None, rev: str | None = None
    ) -> dict[str, Any]:
        path = f"/source/{project}" + (f"/{package}" if package else "")
        root = self.xml(path, {"rev": rev} if rev else None)
        return {
            "name": root.get("name"),
            "rev": root.get("rev"),
            "srcmd5": root.get("srcmd5"),
            "entries": [
                {"name": e.get("name"), "md5": e.get("md5"), "size": e.get("size")}
                for e in root.findall("entry")
            ],
        }

    def file(self, project: str, package: str, name: str, rev: str | None = None) -> str:
        return self.call(
            "GET", f"/source/{project}/{package}/{name}", {"rev": rev} if rev else None
        ).decode("utf-8", errors="replace")

    def project_meta(self, project: str) -> dict[str, Any]:
        root = self.xml(f"/source/{project}/_meta")
        repos = []
        for repo in root.findall("repository"):
            repos.append(
                {
                    "name": repo.get("name"),
                    "paths": [
                        (p.get("project"), p.get("repository")) for p in repo.findall("path")
                    ],
                    "arches": [a.text for a in repo.findall("arch")],
                }
            )
        persons = [(p.get("userid"), p.get("role")) for p in root.findall("person")]
        return {"name": root.get("name"), "repositories": repos, "persons": persons}

    def build_results(self, project: str, package: str | None = None) -> list[dict[str, Any]]:
        root = self.xml(f"/build/{project}/_result", {"package": package} if package else None)
        out = []
        for result in root.findall("result"):
            out.append(
                {
                    "repository": result.get("repository"),
                    "arch": result.get("arch"),
                    "state": result.get("state") or result.get("code"),
                    "packages": {s.get("package"): s.get("code") for s in result.findall("status")},
                }
            )
        return out


def parse_request(root: ET.Element) -> dict[str, Any]:
    """A ``<request>`` element as the dict BOSS's OBS events use."""
    state = root.find("state")
    actions = []
    for action in root.findall("action"):
        item: dict[str, Any] = {"type": action.get("type")}
        src = action.find("source")
        if src is not None:
            item.update(
                sourceproject=src.get("project"),
                sourcepackage=src.get("package"),
                sourcerevision=src.get("rev"),
            )
        tgt = action.find("target")
        if tgt is not None:
            item.update(targetproject=tgt.get("project"), targetpackage=tgt.get("package"))
        actions.append(item)
    creator = root.get("creator") or (state.get("who") if state is not None else None)
    return {
        "id": root.get("id"),
        "creator": creator,
        "who": state.get("who") if state is not None else None,
        "state": state.get("name") if state is not None else None,
        "description": (root.findtext("description") or "").strip(),
        "actions": actions,
    }


def _summary(body: bytes) -> str:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return body.decode(errors="replace").strip()[:200]
    return (root.findtext("summary") or root.get("code") or "").strip()
