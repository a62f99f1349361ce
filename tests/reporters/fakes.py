"""Fake forges at the HTTP boundary (zuul's fake GitHub and Gerrit are the
model): a werkzeug server in a thread that records every request and
answers with the shapes the real APIs give; ``fail_next(n, 502)`` makes the
next ``n`` calls fail. And a stand-in for ``ssh ... gerrit review``."""

from __future__ import annotations

import base64
import itertools
import json
import stat
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class Call:
    method: str
    path: str
    raw_path: str
    headers: dict[str, str]  # names in lower case
    body: Any
    status: int


@dataclass
class FakeForge:
    """One fake server: ``kind`` github, gitlab or gerrit."""

    kind: str
    token: str = "tok"
    user: str = "boss"
    password: str = "pw"
    calls: list[Call] = field(default_factory=list)
    _fail: list[int] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1000))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        rules = {
            "github": [
                Rule(
                    "/repos/<owner>/<repo>/statuses/<sha>", methods=["POST"], endpoint="gh_status"
                ),
                Rule("/repos/<owner>/<repo>/check-runs", methods=["POST"], endpoint="gh_check"),
                Rule(
                    "/repos/<owner>/<repo>/check-runs/<int:cid>",
                    methods=["PATCH"],
                    endpoint="gh_check_update",
                ),
                Rule(
                    "/repos/<owner>/<repo>/issues/<int:num>/comments",
                    methods=["POST"],
                    endpoint="gh_comment",
                ),
            ],
            "gitlab": [
                Rule(
                    "/api/v4/projects/<path:project>/statuses/<sha>",
                    methods=["POST"],
                    endpoint="gl_status",
                ),
                Rule(
                    "/api/v4/projects/<path:project>/merge_requests/<int:iid>/notes",
                    methods=["POST"],
                    endpoint="gl_note",
                ),
            ],
            "gerrit": [
                Rule(
                    "/a/changes/<change>/revisions/<revision>/review",
                    methods=["POST"],
                    endpoint="gerrit_review",
                )
            ],
        }[self.kind]
        self.urls = Map(rules)
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, n: int, status: int = 502) -> None:
        with self._lock:
            self._fail.extend([status] * n)

    def requests(self, endpoint_path: str = "", method: str | None = None) -> list[Call]:
        """The recorded calls whose path contains ``endpoint_path``."""
        with self._lock:
            return [
                c
                for c in self.calls
                if endpoint_path in c.path and (method is None or c.method == method)
            ]

    def ok(self, endpoint_path: str = "") -> list[Call]:
        return [c for c in self.requests(endpoint_path) if c.status < 300]

    # -- the server ----------------------------------------------------------------

    def _authorised(self, req: Request) -> bool:
        if self.kind == "github":
            return req.headers.get("Authorization") == f"Bearer {self.token}"
        if self.kind == "gitlab":
            return req.headers.get("PRIVATE-TOKEN") == self.token
        want = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return req.headers.get("Authorization") == f"Basic {want}"

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        try:
            body = json.loads(req.get_data() or b"null")
        except ValueError:
            body = req.get_data(as_text=True)
        raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or req.path
        status, answer = self._answer(req, body)
        with self._lock:
            self.calls.append(
                Call(
                    req.method,
                    req.path,
                    raw,
                    {k.lower(): v for k, v in req.headers.items()},
                    body,
                    status,
                )
            )
        text = json.dumps(answer)
        if self.kind == "gerrit" and status < 300:
            text = ")]}'\n" + text  # Gerrit's XSSI guard
        return Response(text, status=status, content_type="application/json")(
            environ, start_response
        )

    def _answer(self, req: Request, body: Any) -> tuple[int, Any]:
        with self._lock:
            if self._fail:
                code = self._fail.pop(0)
                return code, {"message": "Bad Gateway"}
        try:
            endpoint, args = self.urls.bind_to_environ(req.environ).match()
        except Exception:
            return 404, {"message": "Not Found"}
        if not self._authorised(req):
            return 401, {"message": "Bad credentials"}
        nid = next(self._ids)
        if endpoint == "gh_status":
            if body.get("state") not in ("pending", "success", "failure", "error"):
                return 422, {"message": "Validation Failed"}
            return 201, {
                "id": nid,
                "state": body["state"],
                "context": body.get("context"),
                "description": body.get("description"),
                "target_url": body.get("target_url"),
            }
        if endpoint in ("gh_check", "gh_check_update"):
            cid = args.get("cid", nid)
            return (200 if "cid" in args else 201), {
                "id": cid,
                "head_sha": body.get("head_sha"),
                "name": body.get("name"),
                "status": body.get("status"),
                "conclusion": body.get("conclusion"),
            }
        if endpoint == "gh_comment":
            return 201, {"id": nid, "body": body.get("body")}
        if endpoint == "gl_status":
            if body.get("state") not in ("pending", "running", "success", "failed", "canceled"):
                return 400, {"message": "state is invalid"}
            return 201, {
                "id": nid,
                "sha": args["sha"],
                "status": body["state"],
                "name": body.get("name"),
                "target_url": body.get("target_url"),
            }
        if endpoint == "gl_note":
            return 201, {"id": nid, "body": body.get("body"), "noteable_type": "MergeRequest"}
        if endpoint == "gerrit_review":
            return 200, {"labels": body.get("labels") or {}}
        return 404, {"message": "Not Found"}


SSH_SCRIPT = """#!{python}
# stands in for `ssh -p 29418 boss@review gerrit review`: records the command
# line Gerrit would see (ssh joins the arguments with spaces)
import json, shlex, sys
argv = shlex.split(" ".join(sys.argv[1:]))
with open({log!r}, "a") as fh:
    fh.write(json.dumps(argv) + "\\n")
fail = {fail!r}
if fail:
    sys.stderr.write("fatal: " + fail + "\\n")
    sys.exit({code})
"""


def fake_ssh(
    tmp: Path, *, fail: str = "", code: int = 1, name: str = "gerrit-review"
) -> tuple[Path, Path]:
    """A script standing in for the ssh command, and the log of its calls."""
    log = tmp / f"{name}.log"
    script = tmp / f"fake-{name}"
    script.write_text(SSH_SCRIPT.format(python=sys.executable, log=str(log), fail=fail, code=code))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script, log


def ssh_calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
