"""The rules file: event filters mapped to processes (an alternative, or a
complement, to the process store's directory layout).

::

    # rules.yaml: a list of rules (or {rules: [...]}); every matching rule launches
    - match:
        source: github                 # obs | github | gitlab | gerrit | eiffel
        label: [GITHUB_PUSH, GITHUB_TAG_PUSH]   # also `type:`
        project: "sailfishos/*"        # glob; "~regex" for a regular expression
        branch: main
        repository: "~^https://github.com/"
        payload: {action: opened}      # dotted paths into the payload
        deletes: false                 # true: ref deletions match too
        internal_refs: false           # true: Gerrit refs/changes/*, refs/meta/* too
      process: ci/build                # a process of the store (or process_dir)
      fields:                          # extracted into the launch fields
        commit: "${payload.after}"
        who: "${payload.pusher.name}"
        where: "${project}@${branch}"

Each ``match`` key is optional; a value is a glob (``fnmatch``), a
``~regex`` (searched), or a list of them (any). A ``payload`` path into a
list matches when any element does. A string field that is exactly one
``${...}`` keeps the value's type; within other text it is put as text;
a path that is missing gives ``null`` (alone) or an empty string.

Opting in: a ref deletion (``GITHUB_REF_DELETED``, ``GITLAB_REF_DELETED``,
``GERRIT_REF_DELETED``) matches only a rule with ``deletes: true``, an
update of a Gerrit internal ref (``GERRIT_INTERNAL_REF_UPDATED``) only one
with ``internal_refs: true`` (as zuul's ``ignore-deletes``): a catch-all
rule never launches for them. The event says which it needs
(``NormalisedEvent.opt_in``).

Names in ``${...}``: ``payload.<path>``, ``source``, ``label``,
``delivery``, ``project``, ``target`` (the request's target project of this
launch), ``branch``, ``repository``, ``change``, ``commit``, ``author``,
``url``, ``patchset``, ``fork``, ``trigger.<key>`` (``ev.trigger``).

Trigger keys (zuul's triggers, on what the delivery carries: the forges
extract the same facts, :class:`engine.launchers.base.Trigger`)::

    - match:
        source: github
        event: pull_request            # the forge's event name (Gerrit: type)
        action: [opened, synchronize, reopened, labeled]
        ref: "~^refs/tags/v"           # the full ref
        files: ["src/*", "~\\.spec$"]   # any path the change touches
        files_required: false          # true: files unknown -> no match
        labels: [ci-run]               # any label of the change
        added_labels: [ci-run]         # a label this event added
        comment: "~^recheck\\b"         # a comment's text
        approvals: {Code-Review: 2, Verified: ">=1"}   # all of them (a list: any)
        review: approved               # a review's state
        draft: false                   # true | false | any (the default)
        authors: ["alice", "bot-*"]    # the event's author
        trusted: true                  # see ``trusted:`` below
      process: ci/build

    trusted:                           # beside ``rules:``: who ``trusted: true`` lets in
      users: [alice, "release-*"]      # the author
      labels: [ok-to-test]             # or the change carries one
      associations: [OWNER, MEMBER, COLLABORATOR]   # GitHub's author_association
      same_repository: true            # a push, a change from a branch of the repository

A trigger key asks about ``ev.trigger``: a delivery that does not carry
what it asks (null) does not match, except ``files``: a pull or merge
request names no files; with a token for the forge's API the launcher
asks it (``forge_api.py``: only when a ``files`` rule gets that far),
without one ``files`` there is *unknown* (``ev.trigger.unknown``) and the
rule matches unless it says ``files_required: true``. ``draft`` is ``any`` unless a rule says
``false`` (skip drafts and WIP changes, as zuul does) or ``true``: a rule
without it launches what it launched before.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.launchers.base import EVENT_FIELDS, TRIGGER_KEYS, NormalisedEvent, Trigger
from engine.trace.triggers import values_at

__all__ = ["Rule", "RuleError", "Rules", "Trust", "extract"]

_KEYS = {"source", "label", "type", "project", "branch", "repository", "payload"}
#: the trigger keys whose values are patterns, matched on ``ev.trigger``
#: (``authors``: on the event's author)
TRIGGER_PATTERNS = (
    "event",
    "action",
    "ref",
    "files",
    "labels",
    "added_labels",
    "comment",
    "review",
    "authors",
)
#: the other trigger keys: ``approvals`` (a mapping, or a list of them),
#: ``draft`` (true, false, any), ``trusted`` and ``files_required`` (booleans)
TRIGGER_OTHERS = ("approvals", "draft", "trusted", "files_required")
_ALL_KEYS = _KEYS | set(TRIGGER_PATTERNS) | set(TRIGGER_OTHERS)
#: a vote's test: ``2``, ``"-1"``, ``">=1"``, ``"<0"``, ``"==2"``
_VOTE = re.compile(r"^\s*(>=|<=|>|<|==|=)?\s*([+-]?\d+)\s*$")
_COMPARE = {
    "==": lambda a, b: a == b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}
#: the opt-in keys (booleans): an event whose ``opt_in`` is one of them
#: matches only a rule that sets it true
OPT_INS = ("deletes", "internal_refs")
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


class RuleError(ValueError):
    """A rules file that cannot be used (its path and the rule named)."""


def _unknown(where: str, what: str, unknown: set[str], known: set[str]) -> RuleError:
    """The error for unknown keys, with the known key a misspelt one meant."""
    hints = []
    for key in sorted(unknown):
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        if close:
            hints.append(f"{key!r}: did you mean {close[0]!r}?")
    hint = f" ({'; '.join(hints)})" if hints else ""
    return RuleError(f"{where}: unknown {what} {sorted(unknown)}{hint}; known: {sorted(known)}")


def _globs(where: str, value: Any) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) and v for v in values):
        raise RuleError(f"{where}: not a name or a list of names")
    return tuple(_patterns(where, values))


@dataclass(frozen=True)
class Trust:
    """Who ``trusted: true`` lets trigger (a rules file's ``trusted:``): an
    author in ``users`` (globs); a change that carries one of ``labels``
    (``ok-to-test``); GitHub's ``author_association`` in ``associations``;
    with ``same_repository``, commits that are the repository's own (a
    push; a pull or merge request from one of its branches: its author
    could push there). Anything else (a fork's change, a Gerrit upload, a
    comment by an outsider) is not trusted, unless (when the launcher has
    a token for the forge's API: ``forge_api.py``) the author's permission
    on the repository is write or more (GitHub ``admin``, ``maintain``,
    ``write``; GitLab developer or above), asked only when these lists do
    not decide."""

    users: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    associations: tuple[str, ...] = ("OWNER", "MEMBER", "COLLABORATOR")
    same_repository: bool = True

    @classmethod
    def from_data(cls, data: Any, where: str) -> Trust:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise RuleError(f"{where}: not a mapping")
        known = {"users", "labels", "associations", "same_repository"}
        if set(data) - known:
            raise _unknown(where, "keys", set(data) - known, known)
        same = data.get("same_repository", True)
        if not isinstance(same, bool):
            raise RuleError(f"{where}.same_repository: not true or false")
        return cls(
            users=_globs(f"{where}.users", data.get("users") or []),
            labels=_globs(f"{where}.labels", data.get("labels") or []),
            associations=tuple(
                a if a.startswith("~") else a.upper()
                for a in _globs(
                    f"{where}.associations", data.get("associations", list(cls.associations))
                )
            ),
            same_repository=same,
        )

    def why(self, event: NormalisedEvent, lookups: Any = None) -> str | None:
        """Why ``event`` is trusted (None: it is not); ``lookups``
        (``forge_api.Lookups``): the author's repository permission is
        asked when nothing configured trusts the event."""
        trigger = event.trigger or Trigger()
        if self.users and _matches(list(self.users), [event.author]):
            return f"author {event.author} is a trusted user"
        if self.labels and trigger.labels and _matches(list(self.labels), list(trigger.labels)):
            return "the change carries a trusted label"
        if trigger.association and _matches(list(self.associations), [trigger.association.upper()]):
            return f"author association {trigger.association}"
        if self.same_repository and trigger.from_repository is True:
            return "the repository's own commits"
        if lookups is not None:
            why = lookups.trusted(event)
            if why is not None:
                return f"repository permission: {why}"
        return None


def _approvals(where: str, value: Any) -> list[dict[str, tuple[str, int]]]:
    """``{label: test}`` (all must hold), or a list of them (any)."""
    alternatives = value if isinstance(value, list) else [value]
    out = []
    for alternative in alternatives:
        if not isinstance(alternative, dict) or not alternative:
            raise RuleError(f"{where}: not a mapping of label: vote (or a list of them)")
        tests = {}
        for label, test in alternative.items():
            m = _VOTE.match(str(test)) if isinstance(test, int | str) else None
            if not isinstance(label, str) or isinstance(test, bool) or m is None:
                raise RuleError(f'{where}.{label}: {test!r} is not a vote (2, -1, ">=1", "<0")')
            op = m.group(1) or "=="
            tests[label] = ("==" if op == "=" else op, int(m.group(2)))
        out.append(tests)
    return out


def _votes_match(alternatives: list[dict[str, tuple[str, int]]], votes: dict[str, int]) -> bool:
    lowered = {k.lower(): v for k, v in votes.items()}
    for tests in alternatives:
        if all(
            label.lower() in lowered and _COMPARE[op](lowered[label.lower()], want)
            for label, (op, want) in tests.items()
        ):
            return True
    return False


def _patterns(where: str, value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if not isinstance(v, str | int | float | bool):
            raise RuleError(f"{where}: {v!r} is not a pattern")
        v = str(v)
        if v.startswith("~"):
            try:
                re.compile(v[1:])
            except re.error as exc:
                raise RuleError(f"{where}: bad regular expression {v!r}: {exc}") from None
        out.append(v)
    return out


def _matches(patterns: list[str], values: list[Any]) -> bool:
    for pattern in patterns:
        for value in values:
            if value is None:
                continue
            text = (
                value
                if isinstance(value, str)
                else str(value).lower()
                if isinstance(value, bool)
                else str(value)
            )
            if pattern.startswith("~"):
                if re.search(pattern[1:], text):
                    return True
            elif fnmatch.fnmatchcase(text, pattern):
                return True
    return False


def _lookup(obj: Any, path: list[str]) -> Any:
    for part in path:
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
    return obj


def _name(event: NormalisedEvent, target: str | None, ref: str) -> Any:
    head, _, rest = ref.partition(".")
    if head == "payload":
        return _lookup(event.payload, rest.split(".")) if rest else event.payload
    if head == "trigger":
        parts = rest.split(".") if rest else []
        if parts and parts[0] not in (*TRIGGER_KEYS, "unknown"):
            raise KeyError(ref)
        got = (event.trigger or Trigger()).as_dict()
        return _lookup(got, parts) if parts else got
    if rest:
        raise KeyError(ref)
    if head == "target":
        return target
    if head in EVENT_FIELDS:
        return getattr(event, head)
    raise KeyError(ref)


def extract(template: Any, event: NormalisedEvent, target: str | None = None) -> Any:
    """``template`` (a field value of a rule) with its ``${...}`` filled."""
    if isinstance(template, dict):
        return {k: extract(v, event, target) for k, v in template.items()}
    if isinstance(template, list):
        return [extract(v, event, target) for v in template]
    if not isinstance(template, str):
        return template
    whole = _REF.fullmatch(template)
    if whole:
        return _name(event, target, whole.group(1))

    def text(m: re.Match[str]) -> str:
        value = _name(event, target, m.group(1))
        return "" if value is None else str(value)

    return _REF.sub(text, template)


@dataclass
class Rule:
    process: str
    match: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    where: str = "rule"
    trust: Trust = field(default_factory=Trust)

    def __post_init__(self) -> None:
        if not isinstance(self.process, str) or not self.process:
            raise RuleError(f"{self.where}: no process")
        if not isinstance(self.match, dict):
            raise RuleError(f"{self.where}: match is not a mapping")
        known = _ALL_KEYS | set(OPT_INS)
        unknown = set(self.match) - known
        if unknown:
            raise _unknown(self.where, "match keys", unknown, known)
        for key in (*OPT_INS, "trusted", "files_required"):
            if key in self.match and not isinstance(self.match[key], bool):
                raise RuleError(f"{self.where}: match.{key} is not true or false")
        if self.match.get("files_required") and "files" not in self.match:
            raise RuleError(f"{self.where}: match.files_required without match.files")
        self.opt_ins = frozenset(k for k in OPT_INS if self.match.get(k) is True)
        draft = self.match.get("draft", "any")
        if not isinstance(draft, bool) and draft != "any":
            raise RuleError(f"{self.where}: match.draft is not true, false or any")
        self.draft: bool | None = None if draft == "any" else draft
        self.trusted: bool | None = self.match.get("trusted")
        self.files_required = bool(self.match.get("files_required"))
        self.approvals = (
            _approvals(f"{self.where}: match.approvals", self.match["approvals"])
            if "approvals" in self.match
            else None
        )
        if not isinstance(self.fields, dict):
            raise RuleError(f"{self.where}: fields is not a mapping")
        self._compiled: dict[str, list[str]] = {}
        for key, value in self.match.items():
            if key in OPT_INS or key in TRIGGER_OTHERS:
                continue
            if key == "payload":
                if not isinstance(value, dict):
                    raise RuleError(f"{self.where}: match.payload is not a mapping")
                for path, want in value.items():
                    self._compiled[f"payload.{path}"] = _patterns(
                        f"{self.where}: match.payload.{path}", want
                    )
            else:
                self._compiled["label" if key == "type" else key] = _patterns(
                    f"{self.where}: match.{key}", value
                )
        try:  # every ${...} names something
            probe = NormalisedEvent("x", "X", "x")
            extract(self.fields, probe)
        except KeyError as exc:
            raise RuleError(f"{self.where}: fields: unknown name ${{{exc.args[0]}}}") from None

    def matches(self, event: NormalisedEvent, target: str | None, lookups: Any = None) -> bool:
        return self.why_not(event, target, lookups) is None

    def why_not(
        self,
        event: NormalisedEvent,
        target: str | None,
        lookups: Any = None,
        *,
        skip: frozenset[str] = frozenset(),
    ) -> str | None:
        """Why the rule does not match ``event`` (None: it matches): the
        first key that fails, for logs and the dry run.

        ``lookups`` (``forge_api.Lookups``): what the delivery lacks may be
        asked of the forge's API: the files of a pull or merge request
        (only when the rule's other keys match: ``files`` is tested last
        but ``trusted``), the author's permission (``trusted``, last).
        ``skip``: keys not tested (the launcher's first look at a comment
        whose change is not known yet)."""
        if event.opt_in and event.opt_in not in self.opt_ins:
            return f"{event.opt_in}: needs match.{event.opt_in}: true"
        trigger = event.trigger or Trigger()
        files_patterns = None
        for key, patterns in self._compiled.items():
            if key in skip:
                continue
            if key == "files":
                files_patterns = patterns
                continue
            if key.startswith("payload."):
                got = values_at(event.payload, key.split(".")[1:])
            elif key == "project":
                got = [target] if target is not None else [event.project]
                if target is not None and event.project is not None:
                    got.append(event.project)
            elif key == "authors":
                got = [event.author]
            elif key in ("labels", "added_labels"):
                got = list(getattr(trigger, key) or ())
            elif key in TRIGGER_KEYS:
                got = [getattr(trigger, key)]
            else:
                got = [getattr(event, key)]
            if not _matches(patterns, got):
                return f"{key}: {got!r} does not match {patterns!r}"
        if self.approvals is not None and not _votes_match(self.approvals, trigger.approvals or {}):
            return f"approvals: {trigger.approvals!r} do not match"
        if self.draft is not None and bool(trigger.draft) != self.draft:
            return f"draft: {trigger.draft!r}, the rule wants {self.draft}"
        if files_patterns is not None:
            files = trigger.files
            if files is None and lookups is not None:
                files = lookups.files(event)
            if files is None:
                if self.files_required:
                    return "files: unknown (files_required)"
            elif not _matches(files_patterns, list(files)):
                return f"files: {list(files)!r} does not match {files_patterns!r}"
        if self.trusted is not None and "trusted" not in skip:
            why = self.trust.why(event, lookups)
            if (why is not None) != self.trusted:
                return "trusted: " + (why or "not trusted (no trusted user, label or origin)")
        return None

    def fields_for(self, event: NormalisedEvent, target: str | None) -> dict[str, Any]:
        return extract(self.fields, event, target)


class Rules:
    """A rules file, read once (``reload()`` reads it again)."""

    def __init__(self, rules: list[Rule], path: str = "", trust: Trust | None = None) -> None:
        self.rules = rules
        self.path = path
        self.trust = trust or Trust()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Rules:
        p = Path(path)
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RuleError(f"{p}: cannot read: {exc}") from None
        except yaml.YAMLError as exc:
            raise RuleError(f"{p}: not YAML: {exc}") from None
        return cls.from_data(loaded, str(p))

    @classmethod
    def from_data(cls, data: Any, path: str = "rules") -> Rules:
        trust = Trust()
        if isinstance(data, dict) and "rules" in data:
            known = {"rules", "trusted"}
            if set(data) - known:
                raise _unknown(path, "keys", set(data) - known, known)
            trust = Trust.from_data(data.get("trusted"), f"{path}: trusted")
            data = data["rules"]
        if data is None:
            data = []
        if not isinstance(data, list):
            raise RuleError(f"{path}: not a list of rules")
        rules = []
        for i, item in enumerate(data, 1):
            where = f"{path}: rule {i}"
            if not isinstance(item, dict):
                raise RuleError(f"{where}: not a mapping")
            if isinstance(item.get("name"), str) and item["name"]:
                where += f" ({item['name']})"
            known = {"match", "process", "fields", "name"}
            unknown = set(item) - known
            if unknown:
                raise _unknown(where, "keys", unknown, known)
            rules.append(
                Rule(
                    item.get("process"),
                    item.get("match") or {},
                    item.get("fields") or {},
                    where,
                    trust,
                )
            )
        return cls(rules, path, trust)

    def matching(
        self, event: NormalisedEvent, target: str | None, lookups: Any = None
    ) -> list[Rule]:
        """The rules that match ``event`` (``lookups``: see ``Rule.why_not``)."""
        return [r for r in self.rules if r.matches(event, target, lookups)]

    def may_match(self, event: NormalisedEvent, target: str | None) -> bool:
        """Whether a rule may match ``event`` once its change is known: one
        matches without testing what the change's lookup fills in
        (``branch``, ``repository``), its files or its trust."""
        skip = frozenset({"branch", "repository", "files", "trusted"})
        return any(r.why_not(event, target, skip=skip) is None for r in self.rules)
