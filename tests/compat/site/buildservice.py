"""A small ``buildservice`` for the compat tests: the part of
python-buildservice's ``BuildService`` API that the real BOSS participants
we run call, over the real ``osc`` library talking HTTP to the fake OBS
(tests/standard/fake_obs.py).

python-buildservice (MeeGoIntegration/python-buildservice) is a third-party
package a BOSS site installs beside the participants; it is on no package
registry. ``boss.obs.BuildServiceParticipant`` does ``from buildservice
import BuildService`` and calls ``BuildService(oscrc=..., apiurl=<alias>)``;
the participants then call the methods below (``grep self.obs.`` in
participants/ and modules/boss/ of the standard workflow). This directory is
put on the participants' ``PYTHONPATH`` (with the workflow's ``modules/``) by
tests/compat/conftest.py; it is test support, not BOSS product code.

Written from the API's documented behaviour, not copied: each method returns
what the real one returns (lists of names, ``{"repo/arch": state}`` dicts,
``True`` when OBS answered ``<status code="ok">``), and HTTP errors come out
as ``urllib.error.HTTPError`` as osc raises them, which the participants
catch.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from urllib.error import HTTPError

from osc import conf, core

__all__ = ["BuildService"]


def _tree(lines: Any) -> ET.Element:
    """osc's ``show_*_meta`` give lists of lines (bytes or str)."""
    if isinstance(lines, (bytes, str)):
        data = lines
    else:
        lines = list(lines)
        data = b"".join(x if isinstance(x, bytes) else x.encode() for x in lines)
    return ET.fromstring(data)


class BuildService:
    """Interface to the OBS API, as python-buildservice's ``BuildService``."""

    def __init__(self, apiurl: str | None = None, oscrc: str | None = None) -> None:
        if oscrc:
            conf.get_config(override_conffile=oscrc)
        else:
            conf.get_config()
        if apiurl:
            self.apiurl = conf.config["apiurl_aliases"].get(apiurl, apiurl)
        else:
            self.apiurl = conf.config["apiurl"]
        if not self.apiurl:
            raise RuntimeError(f'No apiurl "{apiurl}" found in {oscrc}')

    # -- users, groups, projects ------------------------------------------------------
    def getUserName(self) -> str:
        return conf.config["api_host_options"][self.apiurl]["user"]

    def getUserData(self, user: str, *tags: str) -> list[str]:
        return core.get_user_data(self.apiurl, user, *tags)

    def getUserEmail(self, user: str) -> str:
        data = self.getUserData(user, "email")
        return data[0] if data else ""

    def getGroupUsers(self, group: str) -> list[str]:
        try:
            root = ET.parse(core.http_GET(core.makeurl(self.apiurl, ["group", group]))).getroot()
        except HTTPError as exc:
            if exc.code == 404:
                return []
            raise
        wrapper = root.find("person")  # OBS wraps the persons in a <person>
        people = wrapper.findall("person") if wrapper is not None else []
        return [p.get("userid") for p in people if p.get("userid")]

    def getProjectList(self) -> list[str]:
        return [p for p in core.meta_get_project_list(self.apiurl) if p != "deleted"]

    def isType(self, name: str, is_type: str) -> bool:
        try:
            core.http_GET(core.makeurl(self.apiurl, [is_type, name]))
            return True
        except HTTPError as exc:
            if exc.code == 404:
                return False
            raise

    def getType(self, name: str) -> str:
        if self.isType(name, "group"):
            return "group"
        if self.isType(name, "person"):
            return "user"
        if name in self.getProjectList():
            return "project"
        return "unknown"

    def getProjectMeta(self, project: str) -> str:
        return ET.tostring(_tree(core.show_project_meta(self.apiurl, project)), encoding="unicode")

    def getProjectPersons(self, project: str, role: str) -> list[str]:
        root = _tree(core.show_project_meta(self.apiurl, project))
        return [p.get("userid") for p in root.findall("person") if p.get("role") == role]

    def getProjectMaintainers(self, project: str) -> list[str]:
        return self.getProjectPersons(project, "maintainer")

    def isMaintainer(self, project: str, user: str) -> bool:
        return user in self.getProjectMaintainers(project)

    # -- repositories and results -------------------------------------------------------
    def _repositories(self, project: str) -> list[ET.Element]:
        return _tree(core.show_project_meta(self.apiurl, project)).findall("repository")

    def getProjectRepositories(self, project: str) -> list[str]:
        return [r.get("name") for r in self._repositories(project)]

    def getRepositoryTargets(self, project: str, repository: str) -> list[str]:
        return [
            f"{p.get('project')}/{p.get('repository')}"
            for r in self._repositories(project)
            if r.get("name") == repository
            for p in r.findall("path")
        ]

    def getRepositoryArchs(self, project: str, repository: str) -> list[str]:
        return [
            a.text or ""
            for r in self._repositories(project)
            if r.get("name") == repository
            for a in r.findall("arch")
        ]

    def getTargets(self, project: str) -> list[str]:
        return [
            f"{r.get('name')}/{a.text}"
            for r in self._repositories(project)
            for a in r.findall("arch")
        ]

    def getRepoState(self, project: str) -> dict[str, str]:
        root = _tree(core.show_prj_results_meta(self.apiurl, project))
        states = {}
        for result in root.findall("result"):
            target = f"{result.get('repository')}/{result.get('arch')}"
            states[target] = "dirty" if result.get("dirty") == "true" else result.get("state")
        return states

    def getProjectResults(self, project: str) -> dict[str, dict[str, str]]:
        root = _tree(core.show_prj_results_meta(self.apiurl, project))
        return {
            f"{r.get('repository')}/{r.get('arch')}": {
                s.get("package"): s.get("code") for s in r.findall("status")
            }
            for r in root.findall("result")
        }

    def getRepoResults(self, project: str, repository: str) -> dict[str, dict[str, str]]:
        out = {}
        for target, result in self.getProjectResults(project).items():
            repo, arch = target.split("/")
            if repo == repository:
                out[arch] = result
        return out

    def getPackageStatus(self, project: str, package: str) -> dict[str, str]:
        root = _tree(core.show_results_meta(self.apiurl, project, package))
        status = {}
        for result in root.findall("result"):
            node = result.find("status")
            code = "unknown"
            if node is not None:
                code = node.get("code") or "unknown"
                details = node.find("details")
                if details is not None and details.text:
                    code += ": " + details.text
            status[f"{result.get('repository')}/{result.get('arch')}"] = code
        return status

    # -- sources ------------------------------------------------------------------------
    def getPackageList(self, prj: str, deleted: bool | None = None) -> list[str]:
        query = {"deleted": 1} if deleted else {}
        root = ET.parse(core.http_GET(core.makeurl(self.apiurl, ["source", prj], query))).getroot()
        return [e.get("name") for e in root.findall("entry")]

    def getPackageRev(self, project: str, pkg: str) -> str | None:
        return _tree(core.show_files_meta(self.apiurl, project, pkg, expand=False)).get("rev")

    def getPackageFileList(self, project: str, pkg: str, revision: str | None = None) -> list[str]:
        revision = revision or self.getPackageRev(project, pkg)
        return core.meta_get_filelist(self.apiurl, project, pkg, expand=True, revision=revision)

    def getServiceState(self, project: str, pkg: str) -> str:
        try:
            root = _tree(core.show_files_meta(self.apiurl, project, pkg, expand=True))
        except HTTPError as exc:
            if exc.code == 400:
                return "running" if "service in progress" in str(exc.reason) else str(exc.reason)
            raise
        node = root.find("serviceinfo")
        return node.get("code") if node is not None else "succeeded"

    def getFile(
        self, project: str, pkg: str, filename: str, revision: str | None = None, expand: int = 1
    ) -> str:
        revision = revision or self.getPackageRev(project, pkg)
        query: dict[str, Any] = {"expand": expand}
        if revision:
            query["rev"] = revision
        url = core.makeurl(self.apiurl, ["source", project, pkg, filename], query=query)
        if not revision:
            raise HTTPError(url, 404, "No revision found so no file has been created", None, None)  # type: ignore[arg-type]
        return b"".join(core.streamfile(url)).decode("utf-8", "replace")

    def getPackageChecksum(self, project: str, package: str, rev: str | None = None) -> str | None:
        query = {"expand": 1, "rev": rev or "latest"}
        root = ET.parse(
            core.http_GET(core.makeurl(self.apiurl, ["source", project, package], query=query))
        ).getroot()
        return root.get("srcmd5")

    def hasChanges(self, oprj: str, opkg: str, orev: str, tprj: str, tpkg: str) -> bool:
        try:
            target = self.getPackageChecksum(tprj, tpkg)
        except HTTPError as exc:
            if exc.code == 404:
                return True
            raise
        return self.getPackageChecksum(oprj, opkg, rev=orev) != target

    # -- requests -----------------------------------------------------------------------
    def _ok(self, url: str, message: str) -> bool:
        root = ET.parse(core.http_POST(url, data=message)).getroot()
        return root.get("code") == "ok"

    def addReview(self, rid: str, msg: str, reviewer: str) -> bool:
        kind = self.getType(reviewer)
        if kind == "unknown":
            raise RuntimeError(f"Reviewer {reviewer} is not a person, group or project")
        url = core.makeurl(
            self.apiurl, ["request", rid], query={"cmd": "addreview", f"by_{kind}": reviewer}
        )
        try:
            return self._ok(url, msg)
        except HTTPError as exc:
            if exc.code == 400:
                return ET.parse(exc).getroot().get("code") == "ok"
            raise

    def setReviewState(self, rid: str, new_state: str, msg: str, user: str) -> bool:
        code = core.change_review_state(self.apiurl, rid, new_state, message=msg, by_user=user)
        return code == "ok"

    def setRequestState(self, rid: str, new_state: str, msg: str) -> bool:
        return core.change_request_state(self.apiurl, rid, new_state, message=msg) == "ok"

    def req_to_dict(self, req: Any, action_diff: bool = False) -> dict[str, Any]:
        """An ``osc.core.Request`` as the JSON-able dict BOSS's templates read
        (``req.actions[].source/target``, ``req.state``, ``req.reviews``...)."""
        root: dict[str, Any] = {}
        if req.reqid is not None:
            root["id"] = req.reqid
        for action in req.actions:
            root.setdefault("actions", []).append(self.action_to_dict(action, diff=action_diff))
        if req.state is not None:
            root["state"] = self.state_to_dict(req.state)
        for review in req.reviews:
            root.setdefault("reviews", []).append(self.state_to_dict(review))
        for hist in req.statehistory:
            root.setdefault("statehistory", []).append(self.state_to_dict(hist))
        if req.title:
            root["title"] = req.title
        if req.description:
            root["description"] = req.description
        return root

    def action_to_dict(self, action: Any, diff: bool = False) -> dict[str, Any]:
        root: dict[str, Any] = {"type": action.type}
        for arg in core.Action.type_args[action.type]:
            prefix, attr = arg.split("_", 1)
            value = getattr(action, arg)
            if value is None:
                continue
            elm = core.Action.prefix_to_elm.get(prefix, prefix)
            root.setdefault(elm, {})[attr] = value
        if diff and action.type == "submit":
            try:
                text = core.server_diff(
                    self.apiurl,
                    action.tgt_project,
                    action.tgt_package,
                    None,
                    action.src_project,
                    action.src_package,
                    action.src_rev,
                    unified=False,
                    missingok=True,
                )
                root["diff"] = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
            except HTTPError as exc:
                root["diff"] = f"Error getting diff: {exc}"
        return root

    def state_to_dict(self, state: Any) -> dict[str, Any]:
        root: dict[str, Any] = {"state": state.get_node_name()}
        for attr in state.get_node_attrs():
            value = getattr(state, attr)
            if value is not None:
                root[attr] = value
        if state.get_comment():
            root["comment"] = state.get_comment()
        return root
