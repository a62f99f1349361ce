"""git participants: clone, a commit range, and SourceChange events.

They run the ``git`` command (it must be on the PATH), one workitem at a
time, in a work directory of the participant's (``[git] workdir``).

``git_clone``
    Params: ``repo`` (a URL or path; default the ``repo`` field),
    ``branch`` (optional), ``depth`` (optional). Clones (or, when this run
    cloned it before, fetches) into ``<workdir>/<wfid>/<repo name>``.
    Writes ``git: {repo, workdir, branch, head}``.

``git_commits``
    Params: ``from`` (exclusive; a sha, tag or branch; empty: from the first
    commit), ``to`` (inclusive; default the branch's head), ``repo``
    (default ``git.workdir``, else clones as ``git_clone``). Writes
    ``commits``: ``[{sha, parent, author, email, time, subject}]``, oldest
    first (``git rev-list --reverse --topo-order from..to``). An unknown
    revision fails the step with git's message.

``git_source_change``
    For each commit of ``commits`` (or of ``params.from``/``to`` when there
    is no ``commits`` field), emits an ``EiffelSourceChangeCreatedEvent``
    (``gitIdentifier``: sha, repo URI, branch; ``author``; ``change.id``:
    the sha) and an ``EiffelSourceChangeSubmittedEvent`` (**CHANGE** → it,
    **PREVIOUS_VERSION** → the submission of the commit before it in the
    range), each linked to the step (CONTEXT). Params: ``repo_uri``
    (default ``git.repo``), ``branch``, ``repo_name``. Writes
    ``source_changes``: the submissions' ids, ``change``: the last
    submission's id (what a build step names as its input), and
    ``commits[i].created`` / ``.submitted``: each commit's event ids.

Configuration (``[git]``): ``workdir`` (default: a ``boss-git`` directory
in the system's temporary directory), ``git`` (the command, default
``git``), ``timeout`` (seconds per git command, default 600).

Example INI (one pool for the three, by a regular expression)::

    [participant]
    name = git
    regexp = git_(clone|commits|source_change)
    register = true
    code = participants.standard.git_source
    class = Git

    [git]
    workdir = /var/lib/boss/git
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from participants.handler import LifecycleControl, Participant
from participants.standard.config import Section
from participants.workitem import Workitem

__all__ = ["Git", "GitClone", "GitCommits", "GitError", "GitSourceChange"]


class GitError(RuntimeError):
    """A git command failed (its stderr is in the message)."""


class _GitBase(Participant):
    workdir: Path = Path(tempfile.gettempdir()) / "boss-git"
    git = "git"
    timeout = 600.0

    def handle_lifecycle_control(self, ctrl: LifecycleControl) -> None:
        super().handle_lifecycle_control(ctrl)
        if ctrl.message == "start":
            cfg = Section(ctrl.config, "git")
            self.workdir = Path(cfg.get("workdir", str(self.workdir)))
            self.git = cfg.get("git", "git")
            self.timeout = cfg.float("timeout", 600.0)

    def run(self, *args: str, cwd: Path | str | None = None) -> str:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        try:
            proc = subprocess.run(
                [self.git, *args],
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                env=env,
                check=False,
            )
        except FileNotFoundError:
            raise GitError(f"no git command ({self.git!r}) on this host") from None
        if proc.returncode != 0:
            raise GitError(
                f"git {' '.join(args)}: {proc.stderr.strip() or proc.stdout.strip()}"
                f" (exit {proc.returncode})"
            )
        return proc.stdout

    def clone(self, wi: Workitem) -> dict[str, Any]:
        repo = str(wi.params.get("repo") or wi.fields.get("repo") or "")
        if not repo:
            raise ValueError(f"{wi.participant_name}: no params.repo")
        branch = wi.params.get("branch") or wi.fields.get("branch")
        name = re.sub(r"\.git$", "", repo.rstrip("/").rsplit("/", 1)[-1]) or "repo"
        dest = self.workdir / re.sub(r"[^\w.-]", "_", str(wi.wfid)) / name
        if (dest / ".git").is_dir():
            self.run("fetch", "--quiet", "origin", cwd=dest)
            if branch:
                self.run("checkout", "--quiet", "-B", str(branch), f"origin/{branch}", cwd=dest)
        else:
            if dest.exists():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            args = ["clone", "--quiet"]
            if branch:
                args += ["--branch", str(branch)]
            if wi.params.get("depth"):
                args += ["--depth", str(int(wi.params["depth"]))]
            self.run(*args, repo, str(dest))
        head = self.run("rev-parse", "HEAD", cwd=dest).strip()
        current = self.run("rev-parse", "--abbrev-ref", "HEAD", cwd=dest).strip()
        info = {"repo": repo, "workdir": str(dest), "branch": branch or current, "head": head}
        wi.fields["git"] = info
        return info

    def workdir_of(self, wi: Workitem) -> str:
        workdir = wi.lookup("git.workdir")
        if workdir and Path(str(workdir), ".git").is_dir():
            return str(workdir)
        return self.clone(wi)["workdir"]

    def commits(self, wi: Workitem) -> list[dict[str, Any]]:
        cwd = self.workdir_of(wi)
        start = str(wi.params.get("from") or "")
        end = str(wi.params.get("to") or "HEAD")
        spec = f"{start}..{end}" if start else end
        out = self.run(
            "log",
            "--reverse",
            "--topo-order",
            "--format=%H%x1f%P%x1f%an%x1f%ae%x1f%ct%x1f%s%x1e",
            spec,
            "--",
            cwd=cwd,
        )
        commits = []
        for record in out.split("\x1e"):
            record = record.strip("\n")
            if not record:
                continue
            sha, parents, author, email, ctime, subject = record.split("\x1f")
            commits.append(
                {
                    "sha": sha,
                    "parent": parents.split(" ")[0] if parents else None,
                    "author": author,
                    "email": email,
                    "time": int(ctime),
                    "subject": subject,
                }
            )
        return commits


class GitClone(_GitBase):
    def handle_wi(self, wi: Workitem) -> None:
        self.clone(wi)
        wi.result = True


class GitCommits(_GitBase):
    def handle_wi(self, wi: Workitem) -> None:
        wi.fields["commits"] = self.commits(wi)
        wi.result = True


class GitSourceChange(_GitBase):
    def handle_wi(self, wi: Workitem) -> None:
        from engine.trace import eiffel

        commits = wi.fields.get("commits")
        if not isinstance(commits, list) or not commits:
            commits = self.commits(wi)
            wi.fields["commits"] = commits
        repo_uri = str(
            wi.params.get("repo_uri") or wi.lookup("git.repo") or wi.fields.get("repo") or ""
        )
        if not repo_uri:
            raise ValueError("git_source_change: no params.repo_uri (nor git.repo)")
        branch = wi.params.get("branch") or wi.lookup("git.branch")
        repo_name = wi.params.get("repo_name") or repo_uri.rstrip("/").rsplit("/", 1)[-1]
        previous = wi.params.get("previous") or None
        submitted: list[str] = []
        for commit in commits:
            author = {"name": commit.get("author") or "", "email": commit.get("email") or ""}
            created = wi.emit(
                eiffel.source_change_created(
                    commit=commit["sha"],
                    repo_uri=repo_uri,
                    branch=branch,
                    repo_name=repo_name,
                    change_id=commit["sha"],
                    details=commit.get("subject") or None,
                    author={k: v for k, v in author.items() if v} or None,
                )
            )
            sub = wi.emit(
                eiffel.source_change_submitted(
                    created["meta"]["id"],
                    commit=commit["sha"],
                    repo_uri=repo_uri,
                    branch=branch,
                    repo_name=repo_name,
                    previous=previous,
                )
            )
            previous = sub["meta"]["id"]
            commit["created"], commit["submitted"] = created["meta"]["id"], previous
            submitted.append(previous)
        wi.fields["source_changes"] = submitted
        if submitted:
            wi.fields["change"] = submitted[-1]
        wi.result = bool(submitted)


class Git(_GitBase):
    """The three in one pool (register the regexp
    ``git_(clone|commits|source_change)``): runs the one the workitem's
    participant name says."""

    _BY_NAME = {
        "git_clone": GitClone,
        "git_commits": GitCommits,
        "git_source_change": GitSourceChange,
    }

    def handle_wi(self, wi: Workitem) -> None:
        cls = self._BY_NAME.get(str(wi.participant_name))
        if cls is None:
            raise ValueError(
                f"no git participant {wi.participant_name!r}; known: {', '.join(self._BY_NAME)}"
            )
        one = cls()
        one.workdir, one.git, one.timeout = self.workdir, self.git, self.timeout
        one.handle_wi(wi)
