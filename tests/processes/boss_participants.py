"""Harness stand-ins for the real BOSS standard-workflow participants.

Each does to the workitem what the real participant in
``shared/compat/boss-standard-workflow/participants/`` does (the fields
and ``__result__`` it sets, the params it reads), against an in-memory
``Site`` (OBS requests and locks, users, mails, IRC lines) instead of OBS,
SMTP and IRC. tests/compat runs the real ones, unchanged, end to end; these
let the processes' every path run in the ``ProcessHarness`` in
milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.testing import ProcessHarness
from participants.workitem import Workitem

#: the prechecks of the real BOSS_handle_SR.conf (and the participants the
#: processes call that only answer __result__ here)
RESULT_ONLY = (
    "check_multiple_destinations",
    "check_no_changes",
    "get_package_boss_conf",
    "check_has_valid_repo",
    "check_package_built_at_source",
    "check_package_is_complete",
    "get_relevant_changelog",
    "check_has_relevant_changelog",
    "check_valid_changes",
    "check_yaml_matches_spec",
    "check_l10n_update",
    "check_spec",
    "check_mentions_bug",
    "update_patterns",
    "build_ks",
    "request_image",
    "build_image",
    "update_image_status",
    "test_vm_image",
    "qareports",
    "qa_vote",
    "update_meta",
    "autoks_deploy",
    "autodoc_deploy",
    "l10n_update_ts",
    "delete_webhook",
    "get_build_results",
    "obs_repodiff",
    "select_test_packages",
)


@dataclass
class Site:
    """What the participants' services hold, and what they were asked."""

    users: dict[str, dict[str, str]] = field(
        default_factory=lambda: {
            "alice": {"realname": "Alice Developer", "email": "alice@example.org"},
            "bob": {"realname": "Bob Maintainer", "email": "bob@example.org"},
        }
    )
    maintainers: list[str] = field(default_factory=lambda: ["bob"])
    locks: dict[str, str] = field(default_factory=dict)  # lock -> holding wfid
    lock_log: list[tuple[str, str]] = field(default_factory=list)  # (action, lock)
    request_changes: list[dict[str, Any]] = field(default_factory=list)
    mails: list[dict[str, Any]] = field(default_factory=list)
    irc: list[tuple[str, str]] = field(default_factory=list)
    bugzilla: list[dict[str, Any]] = field(default_factory=list)
    removed_trials: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    #: participant name -> the __result__ it answers (default True)
    results: dict[str, bool] = field(default_factory=dict)
    #: is_repo_published answers False this many times first, per project
    unpublished: dict[str, int] = field(default_factory=dict)
    #: participants that raise, with the message
    failing: dict[str, str] = field(default_factory=dict)

    def called(self, name: str) -> None:
        self.calls.append(name)
        if name in self.failing:
            raise RuntimeError(self.failing[name])

    # -- the participants -------------------------------------------------------------

    def obsticket(self, wi: Workitem) -> None:
        """get/require/release a named lock (require: no wait, False when
        another run holds it)."""
        self.called("obsticket")
        action, lock = wi.params.action, wi.params.lock_project
        self.lock_log.append((action, lock))
        holder = self.locks.get(lock)
        if action in ("get", "require"):
            if holder not in (None, wi.fei.wfid):
                wi.result = False
                return
            self.locks[lock] = wi.fei.wfid
            wi.result = True
        elif action == "release":
            if holder == wi.fei.wfid:
                del self.locks[lock]
            wi.result = True

    def get_userdata(self, wi: Workitem) -> None:
        self.called("get_userdata")
        user = self.users.get(wi.params.user, {})
        wi.set_field(f"{wi.params.field}.realname", user.get("realname", ""))
        wi.set_field(f"{wi.params.field}.email", user.get("email", ""))

    def change_request_state(self, wi: Workitem) -> None:
        self.called("change_request_state")
        self.request_changes.append(
            {
                "id": wi.fields.ev.id,
                "action": wi.params.action,
                "comment": wi.params.comment,
                "reviewer": wi.params.reviewer,
            }
        )
        wi.result = True

    def get_request(self, wi: Workitem) -> None:
        self.called("get_request")
        wi.set_field(wi.params.field, {"id": wi.params.req_id, "state": {"name": "review"}})
        wi.result = True

    def get_notify_recipients_obs(self, wi: Workitem) -> None:
        """Adds the role's addresses to mail_to (mail_cc with cc)."""
        self.called("get_notify_recipients_obs")
        key = "mail_cc" if wi.params.cc else "mail_to"
        addresses = set(wi.fields.get(key) or [])
        role = wi.params.role
        if role == "submitter":
            addresses.add(self.users[wi.fields.ev.who]["email"])
        elif role:
            addresses.update(self.users[m]["email"] for m in self.maintainers)
        if wi.params.recipient:
            addresses.update(self.users[m]["email"] for m in self.maintainers)
        wi.fields[key] = sorted(addresses)
        wi.result = True

    def notify(self, wi: Workitem) -> None:
        """Mails the template to params.mail_to + fields.mail_to, Cc mail_cc."""
        self.called("notify")
        to = list(wi.params.get("mail_to") or []) + list(wi.fields.get("mail_to") or [])
        self.mails.append(
            {
                "template": wi.params.template,
                "subject": wi.params.subject,
                "to": sorted(set(to)),
                "cc": sorted(wi.fields.get("mail_cc") or []),
            }
        )
        wi.result = True

    def notify_irc(self, wi: Workitem) -> None:
        self.called("notify_irc")
        self.irc.append((wi.params.irc_channel, wi.params.msg or ""))

    def bugzilla_participant(self, wi: Workitem) -> None:
        self.called("bugzilla")
        self.bugzilla.append(dict(wi.params))
        wi.result = self.results.get("bugzilla", True)

    def is_repo_published(self, wi: Workitem) -> None:
        self.called("is_repo_published")
        project = wi.params.project
        left = self.unpublished.get(project, 0)
        self.unpublished[project] = max(left - 1, 0)
        wi.result = left == 0

    def setup_build_trial(self, wi: Workitem) -> None:
        self.called("setup_build_trial")
        wi.fields.build_trial.project = f"{wi.fields.project}:Trial:SR{wi.fields.ev.id}"
        wi.result = True

    def get_build_trial_results(self, wi: Workitem) -> None:
        self.called("get_build_trial_results")
        ok = self.results.get("get_build_trial_results", True)
        if not ok:
            wi.fields.new_failures = {"standard": {"i586": ["bash"]}}
        wi.result = ok

    def remove_build_trial(self, wi: Workitem) -> None:
        self.called("remove_build_trial")
        self.removed_trials.append(wi.fields.build_trial.project)

    def get_provides(self, wi: Workitem) -> None:
        self.called("get_provides")
        wi.set_field(wi.params.field, [])
        wi.result = self.results.get("get_provides", False)

    def request_notice(self, wi: Workitem) -> None:
        self.called("request_notice")

    def result_only(self, name: str) -> Any:
        def participant(wi: Workitem) -> None:
            self.called(name)
            wi.result = self.results.get(name, True)

        return participant

    def register(self, h: ProcessHarness) -> None:
        for name in (
            "obsticket",
            "get_userdata",
            "change_request_state",
            "get_request",
            "get_notify_recipients_obs",
            "notify",
            "notify_irc",
            "is_repo_published",
            "setup_build_trial",
            "get_build_trial_results",
            "remove_build_trial",
            "get_provides",
        ):
            h.register(name, getattr(self, name))
        h.register("bugzilla", self.bugzilla_participant)
        h.register("req_changed_.*", self.request_notice)
        for name in RESULT_ONLY:
            h.register(name, self.result_only(name))


def harness(site: Site) -> ProcessHarness:
    """A ProcessHarness (virtual clock) with ``site``'s participants."""
    h = ProcessHarness()
    site.register(h)
    return h
