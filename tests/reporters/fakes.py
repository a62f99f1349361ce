"""Fake forges at the HTTP boundary (zuul's fake GitHub and Gerrit are the
model): a werkzeug server in a thread that records every request and
answers with the shapes the real APIs give; ``fail_next(n, 502)`` makes the
next ``n`` calls fail. And a stand-in for ``ssh ... gerrit review``.

Besides the reporters' POSTs, the GETs the launchers ask (issue 14,
``engine/launchers/forge_api.py``), answered from what a test put in:
GitHub's pull request (``add_pull``), its files (``add_pull_files``,
paginated with ``Link: rel="next"``) and a user's permission
(``set_permission``); GitLab's merge request (``add_merge_request``), its
diffs (``add_mr_files``, paginated with ``X-Next-Page``), a project
(``add_project``) and a member's access level (``add_member``)."""

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
    pulls: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    pull_files: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    permissions: dict[tuple[str, str], str] = field(default_factory=dict)
    merge_requests: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    mr_files: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    members: dict[tuple[str, int], int] = field(default_factory=dict)
    projects: dict[int, dict[str, Any]] = field(default_factory=dict)
    usernames: dict[int, str] = field(default_factory=dict)
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
                Rule("/repos/<owner>/<repo>/pulls/<int:num>", methods=["GET"], endpoint="gh_pull"),
                Rule(
                    "/repos/<owner>/<repo>/pulls/<int:num>/files",
                    methods=["GET"],
                    endpoint="gh_pull_files",
                ),
                Rule(
                    "/repos/<owner>/<repo>/collaborators/<user>/permission",
                    methods=["GET"],
                    endpoint="gh_permission",
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
                Rule(
                    "/api/v4/projects/<path:project>/merge_requests/<int:iid>",
                    methods=["GET"],
                    endpoint="gl_mr",
                ),
                Rule(
                    "/api/v4/projects/<path:project>/merge_requests/<int:iid>/diffs",
                    methods=["GET"],
                    endpoint="gl_diffs",
                ),
                Rule(
                    "/api/v4/projects/<path:project>/members/all/<int:uid>",
                    methods=["GET"],
                    endpoint="gl_member",
                ),
                Rule("/api/v4/projects/<int:pid>", methods=["GET"], endpoint="gl_project"),
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

    # -- what the GETs answer (the real APIs' shapes) --------------------------------

    def add_pull(
        self,
        project: str,
        number: int,
        *,
        head_sha: str,
        head_ref: str = "feature",
        base_ref: str = "main",
        head_project: str | None = None,
        user: str = "octocat",
    ) -> dict[str, Any]:
        """A pull request of ``project`` (GitHub's ``GET .../pulls/N``):
        from ``head_project`` (a fork) when given, else from a branch of
        ``project``; ``head_project=""``: the fork was deleted (``head.repo`` null)."""

        def repo(full_name: str) -> dict[str, Any]:
            owner, name = full_name.split("/", 1)
            return {
                "id": abs(hash(full_name)) % 10**8,
                "name": name,
                "full_name": full_name,
                "owner": {"login": owner, "type": "User"},
                "private": False,
                "html_url": f"https://github.com/{full_name}",
                "clone_url": f"https://github.com/{full_name}.git",
                "default_branch": "main",
            }

        head_repo = None if head_project == "" else repo(head_project or project)
        html = f"https://github.com/{project}/pull/{number}"
        pull = {
            "url": f"{self.url}/repos/{project}/pulls/{number}",
            "id": 10**6 + number,
            "number": number,
            "state": "open",
            "locked": False,
            "title": f"pull request {number}",
            "user": {"login": user, "type": "User"},
            "html_url": html,
            "draft": False,
            "merged": False,
            "mergeable": True,
            "merge_commit_sha": None,
            "author_association": "CONTRIBUTOR",
            "labels": [],
            "head": {
                "label": f"{(head_project or project).split('/')[0]}:{head_ref}",
                "ref": head_ref,
                "sha": head_sha,
                "user": {"login": user},
                "repo": head_repo,
            },
            "base": {
                "label": f"{project.split('/')[0]}:{base_ref}",
                "ref": base_ref,
                "sha": "0" * 39 + "1",
                "repo": repo(project),
            },
            "commits": 1,
            "changed_files": len(self.pull_files.get((project, number), [])),
        }
        with self._lock:
            self.pulls[(project, number)] = pull
        return pull

    def add_pull_files(self, project: str, number: int, paths: list[str]) -> None:
        """The files of a pull request (``GET .../pulls/N/files``)."""
        entries = [
            {
                "sha": f"{i:040x}",
                "filename": path,
                "status": "modified",
                "additions": 1,
                "deletions": 0,
                "changes": 1,
                "blob_url": f"https://github.com/{project}/blob/x/{path}",
                "raw_url": f"https://github.com/{project}/raw/x/{path}",
                "contents_url": f"{self.url}/repos/{project}/contents/{path}",
                "patch": "@@ -1 +1,2 @@\n line\n+added",
            }
            for i, path in enumerate(paths)
        ]
        with self._lock:
            self.pull_files[(project, number)] = entries

    def set_permission(self, project: str, user: str, role: str) -> None:
        """A user's role on a repository: admin, maintain, write, triage, read."""
        with self._lock:
            self.permissions[(project, user)] = role

    def add_merge_request(
        self,
        project: str,
        iid: int,
        *,
        sha: str,
        source_branch: str = "feature",
        target_branch: str = "main",
        project_id: int = 5,
        source_project_id: int | None = None,
    ) -> dict[str, Any]:
        """A merge request (GitLab's ``GET /projects/:id/merge_requests/:iid``)."""
        mr = {
            "id": 10**5 + iid,
            "iid": iid,
            "project_id": project_id,
            "title": f"merge request {iid}",
            "state": "opened",
            "target_branch": target_branch,
            "source_branch": source_branch,
            "source_project_id": project_id if source_project_id is None else source_project_id,
            "target_project_id": project_id,
            "author": {"id": 1, "username": "root", "name": "Administrator"},
            "draft": False,
            "work_in_progress": False,
            "merge_status": "can_be_merged",
            "detailed_merge_status": "mergeable",
            "sha": sha,
            "merge_commit_sha": None,
            "squash_commit_sha": None,
            "web_url": f"https://gitlab.example.com/{project}/-/merge_requests/{iid}",
            "references": {"short": f"!{iid}", "full": f"{project}!{iid}"},
            "diff_refs": {"base_sha": "0" * 39 + "1", "head_sha": sha, "start_sha": "0" * 39 + "1"},
        }
        with self._lock:
            self.merge_requests[(project, iid)] = mr
        return mr

    def add_mr_files(self, project: str, iid: int, paths: list[str]) -> None:
        """The diffs of a merge request (``GET .../merge_requests/:iid/diffs``)."""
        entries = [
            {
                "old_path": path,
                "new_path": path,
                "a_mode": "100644",
                "b_mode": "100644",
                "diff": "@@ -1 +1,2 @@\n line\n+added\n",
                "new_file": False,
                "renamed_file": False,
                "deleted_file": False,
                "generated_file": False,
            }
            for path in paths
        ]
        with self._lock:
            self.mr_files[(project, iid)] = entries

    def add_project(self, pid: int, path: str) -> None:
        """A project (``GET /projects/:id``)."""
        with self._lock:
            self.projects[pid] = {
                "id": pid,
                "path_with_namespace": path,
                "name": path.rsplit("/", 1)[-1],
                "http_url_to_repo": f"https://gitlab.example.com/{path}.git",
                "ssh_url_to_repo": f"git@gitlab.example.com:{path}.git",
                "web_url": f"https://gitlab.example.com/{path}",
                "default_branch": "main",
            }

    def add_member(self, project: str, user_id: int, access_level: int, username: str = "") -> None:
        """A member of a project (directly or inherited): 10 guest, 20
        reporter, 30 developer, 40 maintainer, 50 owner."""
        with self._lock:
            self.members[(project, user_id)] = access_level
            self.usernames[user_id] = username or f"user{user_id}"

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
        got = self._answer(req, body)
        status, answer = got[0], got[1]
        extra: dict[str, str] = got[2] if len(got) > 2 else {}  # type: ignore[misc]
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
        return Response(text, status=status, content_type="application/json", headers=extra)(
            environ, start_response
        )

    def _page(
        self, req: Request, items: list[Any], default: int = 30
    ) -> tuple[list[Any], int, int, int]:
        """One page of ``items`` (``page``, ``per_page``): it, its number, the
        last page's, and the page size."""
        per = max(1, min(100, req.args.get("per_page", default, type=int) or default))
        page = max(1, req.args.get("page", 1, type=int) or 1)
        last = max(1, -(-len(items) // per))
        return items[(page - 1) * per : page * per], page, last, per

    def _get(self, req: Request, endpoint: str, args: dict[str, Any]) -> tuple[Any, ...]:
        """The GETs the launchers ask (see the module docstring)."""
        with self._lock:
            if endpoint == "gh_pull":
                pull = self.pulls.get((f"{args['owner']}/{args['repo']}", args["num"]))
                return (200, pull) if pull else (404, {"message": "Not Found"})
            if endpoint == "gh_pull_files":
                key = (f"{args['owner']}/{args['repo']}", args["num"])
                if key not in self.pulls and key not in self.pull_files:
                    return 404, {"message": "Not Found"}
                items, page, last, per = self._page(req, self.pull_files.get(key, []))
                headers = {}
                if page < last:
                    nxt = f"{self.url}{req.path}?per_page={per}&page={page + 1}"
                    headers["Link"] = f'<{nxt}>; rel="next", <{self.url}{req.path}>; rel="first"'
                return 200, items, headers
            if endpoint == "gh_permission":
                role = self.permissions.get((f"{args['owner']}/{args['repo']}", args["user"]))
                role = role or "none"
                legacy = {"maintain": "write", "triage": "read"}.get(role, role)
                return 200, {
                    "permission": legacy,
                    "role_name": role,
                    "user": {"login": args["user"], "type": "User", "role_name": role},
                }
            if endpoint == "gl_mr":
                mr = self.merge_requests.get((args["project"], args["iid"]))
                return (200, mr) if mr else (404, {"message": "404 Not found"})
            if endpoint == "gl_diffs":
                key = (args["project"], args["iid"])
                if key not in self.merge_requests and key not in self.mr_files:
                    return 404, {"message": "404 Not found"}
                items, page, last, _ = self._page(req, self.mr_files.get(key, []), 20)
                headers = {
                    "X-Page": str(page),
                    "X-Total-Pages": str(last),
                    "X-Next-Page": str(page + 1) if page < last else "",
                }
                return 200, items, headers
            if endpoint == "gl_member":
                level = self.members.get((args["project"], args["uid"]))
                if level is None:
                    return 404, {"message": "404 Not found"}
                name = self.usernames.get(args["uid"]) or f"user{args['uid']}"
                return 200, {
                    "id": args["uid"],
                    "username": name,
                    "name": name,
                    "state": "active",
                    "access_level": level,
                    "expires_at": None,
                    "web_url": f"https://gitlab.example.com/{name}",
                }
            if endpoint == "gl_project":
                project = self.projects.get(args["pid"])
                return (200, project) if project else (404, {"message": "404 Project Not Found"})
        return 404, {"message": "Not Found"}

    def _answer(self, req: Request, body: Any) -> tuple[Any, ...]:
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
        if req.method == "GET":
            return self._get(req, endpoint, args)
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
