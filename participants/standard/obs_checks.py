"""The prechecks of a submit request (``check_*``), against the OBS API.

Every check looks at each submit action of the request (``req.actions`` or
``ev.actions``; see ``obs_base``) and either passes (``result = True``) or
fails: ``result = False`` and one line per problem appended to ``msg``
(``check_spec: Mer:Tools/bash has no .spec file``). A check never raises
for a failed check; it raises (an error of the step) only when it cannot
decide: OBS unreachable, no actions in the workitem. BOSS_check_SR sets
``status: FAILURE`` on ``result == false``.

* ``check_multiple_destinations``: the actions go to more than one target
  project;
* ``check_has_valid_repo``: the source project has no repository building
  against the target project (``<path project="TARGET">`` in its ``_meta``);
* ``check_package_built_at_source``: the source package did not build: each
  of its results in the source project's repositories that build against the
  target must be ``succeeded`` (``excluded``/``disabled`` are ignored);
* ``check_spec``: the source package (at ``sourcerevision``) has no
  ``.spec`` file, or one without ``Name:`` and ``Version:``;
* ``check_no_changes``: the source (at its revision) has the same ``srcmd5``
  as the target package;
* ``check_submitter_maintainer``: the submitter (``ev.who``, else
  ``req.creator``) is not a maintainer of the target project;
* ``check_already_testing``: another open request (new or in review)
  targets the same package.

Params: none (``actions`` may name the list instead: ``$f:my_actions``).
Fields read: ``req``, ``ev``. Written: ``__result__``, ``msg``, and
``checks.<name>``: ``"ok"`` or the list of problems.

Configuration: ``[obs]`` (``obs_base``). Example INI (one per check; each
check is its own participant, as in BOSS)::

    [participant]
    name = check_spec
    code = participants.standard.obs_checks
    class = CheckSpec

    [obs]
    apiurl = https://api.example.org
"""

from __future__ import annotations

import re
from typing import Any

from participants.standard.obs_base import ObsParticipant, request_actions
from participants.standard.obs_client import ObsError
from participants.workitem import Workitem

__all__ = [
    "CHECKS",
    "CheckAlreadyTesting",
    "CheckHasValidRepo",
    "CheckMultipleDestinations",
    "CheckNoChanges",
    "CheckPackageBuiltAtSource",
    "CheckSpec",
    "CheckSubmitterMaintainer",
    "Checks",
    "ObsCheck",
]

_IGNORED_CODES = {"excluded", "disabled"}


def _pkg(action: dict[str, Any], side: str = "source") -> str:
    return f"{action.get(side + 'project')}/{action.get(side + 'package')}"


class ObsCheck(ObsParticipant):
    """A check: ``problems(wi, action)`` returns what is wrong with one action."""

    name = "check"

    def problems(self, wi: Workitem, action: dict[str, Any]) -> list[str]:
        raise NotImplementedError

    def problems_of_request(self, wi: Workitem, actions: list[dict[str, Any]]) -> list[str]:
        return [p for action in actions for p in self.problems(wi, action)]

    def handle_wi(self, wi: Workitem) -> None:
        actions = wi.params.get("actions") or request_actions(wi)
        if not actions:
            raise ValueError(f"{self.name}: no submit actions (req.actions or ev.actions)")
        problems = self.problems_of_request(wi, actions)
        for line in problems:
            wi.msg.append(f"{self.name}: {line}")
        wi.set_field(f"checks.{self.name}", problems or "ok")
        wi.result = not problems


class CheckMultipleDestinations(ObsCheck):
    name = "check_multiple_destinations"

    def problems_of_request(self, wi: Workitem, actions: list[dict[str, Any]]) -> list[str]:
        targets = sorted({str(a.get("targetproject")) for a in actions})
        if len(targets) > 1:
            return [f"the request goes to {len(targets)} projects: {', '.join(targets)}"]
        return []


def _builds_against(meta: dict[str, Any], target: str) -> list[str]:
    return [r["name"] for r in meta["repositories"] if any(prj == target for prj, _ in r["paths"])]


class CheckHasValidRepo(ObsCheck):
    name = "check_has_valid_repo"

    def problems(self, wi: Workitem, action: dict[str, Any]) -> list[str]:
        src, tgt = action.get("sourceproject"), action.get("targetproject")
        if not _builds_against(self.client.project_meta(str(src)), str(tgt)):
            return [f"{src} has no repository building against {tgt}"]
        return []


class CheckPackageBuiltAtSource(ObsCheck):
    name = "check_package_built_at_source"

    def problems(self, wi: Workitem, action: dict[str, Any]) -> list[str]:
        src, pkg, tgt = (
            str(action.get(k)) for k in ("sourceproject", "sourcepackage", "targetproject")
        )
        repos = set(_builds_against(self.client.project_meta(src), tgt))
        results = [
            r for r in self.client.build_results(src, pkg) if not repos or r["repository"] in repos
        ]
        out, built = [], 0
        for r in results:
            code = r["packages"].get(pkg)
            if code is None or code in _IGNORED_CODES:
                continue
            if code == "succeeded":
                built += 1
            else:
                out.append(f"{src}/{pkg} is {code} in {r['repository']}/{r['arch']}")
        if not out and not built:
            out.append(f"{src}/{pkg} has no build result against {tgt}")
        return out


class CheckSpec(ObsCheck):
    name = "check_spec"

    def problems(self, wi: Workitem, action: dict[str, Any]) -> list[str]:
        src, pkg, rev = (
            action.get(k) for k in ("sourceproject", "sourcepackage", "sourcerevision")
        )
        listing = self.client.source(str(src), str(pkg), rev)
        specs = [e["name"] for e in listing["entries"] if str(e["name"]).endswith(".spec")]
        if not specs:
            return [f"{src}/{pkg} has no .spec file"]
        preferred = f"{pkg}.spec" if f"{pkg}.spec" in specs else specs[0]
        text = self.client.file(str(src), str(pkg), preferred, rev)
        missing = [
            tag
            for tag in ("Name", "Version")
            if not re.search(rf"^{tag}\s*:\s*\S", text, re.MULTILINE | re.IGNORECASE)
        ]
        if missing:
            return [f"{src}/{pkg}: {preferred} has no {' and no '.join(missing)} tag"]
        return []


class CheckNoChanges(ObsCheck):
    name = "check_no_changes"

    def problems(self, wi: Workitem, action: dict[str, Any]) -> list[str]:
        source = self.client.source(
            str(action.get("sourceproject")),
            str(action.get("sourcepackage")),
            action.get("sourcerevision"),
        )
        try:
            target = self.client.source(
                str(action.get("targetproject")), str(action.get("targetpackage"))
            )
        except ObsError as exc:
            if exc.status == 404:  # a new package: everything is a change
                return []
            raise
        if source["srcmd5"] and source["srcmd5"] == target["srcmd5"]:
            return [f"{_pkg(action)} is identical to {_pkg(action, 'target')}"]
        return []


class CheckSubmitterMaintainer(ObsCheck):
    name = "check_submitter_maintainer"

    def problems(self, wi: Workitem, action: dict[str, Any]) -> list[str]:
        who = wi.lookup("ev.who") or wi.lookup("req.creator")
        if not who:
            return ["the request names no submitter (ev.who, req.creator)"]
        tgt = str(action.get("targetproject"))
        maintainers = {
            uid for uid, role in self.client.project_meta(tgt)["persons"] if role == "maintainer"
        }
        if who not in maintainers:
            return [f"{who} is not a maintainer of {tgt}"]
        return []


class CheckAlreadyTesting(ObsCheck):
    name = "check_already_testing"

    def problems(self, wi: Workitem, action: dict[str, Any]) -> list[str]:
        own = str(wi.lookup("req.id") or wi.lookup("ev.id") or "")
        tgt, pkg = str(action.get("targetproject")), action.get("targetpackage")
        others = [
            r
            for r in self.client.requests(tgt, pkg)
            if str(r["id"]) != own
            and any(
                a.get("targetproject") == tgt and a.get("targetpackage") == pkg
                for a in r["actions"]
            )
        ]
        return [f"{tgt}/{pkg} is already being tested in request {r['id']}" for r in others]


#: every check by its participant name
CHECKS: dict[str, type[ObsCheck]] = {
    cls.name: cls
    for cls in (
        CheckMultipleDestinations,
        CheckHasValidRepo,
        CheckPackageBuiltAtSource,
        CheckSpec,
        CheckNoChanges,
        CheckSubmitterMaintainer,
        CheckAlreadyTesting,
    )
}


class Checks(ObsParticipant):
    """Every check in one pool: register it as the regexp
    ``check_(multiple_destinations|has_valid_repo|...)`` (or ``check_.*``);
    it runs the check named by the workitem's participant name."""

    def handle_wi(self, wi: Workitem) -> None:
        cls = CHECKS.get(str(wi.participant_name))
        if cls is None:
            raise ValueError(
                f"no check named {wi.participant_name!r}; known: {', '.join(sorted(CHECKS))}"
            )
        check = cls()
        check.obs = self.client
        check.handle_wi(wi)
