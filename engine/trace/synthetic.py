"""A generator of realistic, linked Eiffel event streams (for benchmarks and
tests of the traceability graph).

It simulates a distribution's CI: a set of components (git repositories
built into packages), each change going through review and a build and test
pipeline, and products integrating the latest packages into baselines that
are tested, promoted and sometimes deployed. Per change::

    IssueDefined (sometimes)
    SourceChangeCreated    BASE -> the repo's last submission, RESOLVED_ISSUE -> issue,
                           PREVIOUS_VERSION -> the first patchset (when reworked)
    SourceChangeSubmitted  CHANGE -> the change, PREVIOUS_VERSION -> the repo's last one
    build run              ActivityTriggered (CAUSE -> the submission), Started,
                           two steps (ActivityTriggered CONTEXT -> run, Started, Finished),
                           ArtifactCreated (CONTEXT -> run, CAUSE -> the submission),
                           ArtifactPublished (ARTIFACT, CONTEXT), Finished
    test run               ActivityTriggered (CAUSE -> artifact), Started,
                           TestSuiteStarted (CONTEXT), TestCase Triggered (IUT, CONTEXT)/
                           Started/Finished (TEST_CASE_EXECUTION) x N, TestSuiteFinished,
                           Finished, ConfidenceLevelModified "unit-tested"
                           (SUBJECT -> artifact, CONTEXT -> run, CAUSE -> suite)

Every few changes a product's baseline: CompositionDefined (ELEMENT -> the
latest artifact of each component, PREVIOUS_VERSION -> the last baseline),
an integration test run and ConfidenceLevelModified "integration-tested"
(SUBJECT -> baseline); passing baselines are sometimes promoted
("release-candidate") and deployed (ConfidenceLevelModified "production",
sometimes a FAILURE shortly after: a failed deployment).

Everything is drawn from ``random.Random(seed)``: the same arguments give
the same events (ids are lowercase version-4 UUIDs made from the generator,
times are int milliseconds, increasing along every pipeline). A typical
event is about 1 KB of compact JSON. ``out_of_order`` delays that fraction
of events by a few positions, so some arrive before the events they link
to (as on a real message bus).
"""

from __future__ import annotations

import base64
import random
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["DEFAULT_START_MS", "PipelineGenerator", "generate"]

#: 2023-11-14T22:13:20Z
DEFAULT_START_MS = 1_700_000_000_000

_WORDS = (
    "kernel",
    "connman",
    "ofono",
    "pulseaudio",
    "qtbase",
    "qtdeclarative",
    "systemd",
    "glibc",
    "dbus",
    "bluez",
    "gstreamer",
    "mesa",
    "wayland",
    "lipstick",
    "sailfish-browser",
    "rpm",
    "zypper",
    "busybox",
    "openssl",
    "curl",
    "sqlite",
    "libxml2",
    "nemo-qml",
    "mce",
    "dsme",
    "usb-moded",
    "timed",
    "buteo-sync",
    "tracker",
    "messaging-ui",
)
_PEOPLE = (
    ("Jane Doe", "jane.doe"),
    ("John Smith", "john.smith"),
    ("Ada Lovelace", "ada"),
    ("Linus Nilsson", "linus.n"),
    ("Maria Garcia", "mgarcia"),
    ("Wei Zhang", "wzhang"),
    ("Aino Virtanen", "aino.v"),
    ("Pekka Korhonen", "pkorhonen"),
)
_ARCHES = ("armv7hl", "aarch64", "i486", "x86_64")
_TESTS = ("boot", "install", "upgrade", "unit", "api", "smoke", "perf", "i18n", "a11y")


class PipelineGenerator:
    """Yields linked Eiffel events (see the module docstring). Iterate it;
    ``counts`` tells how many of each type were made so far."""

    def __init__(
        self,
        *,
        seed: int = 0,
        start_ms: int = DEFAULT_START_MS,
        components: int = 20,
        products: int = 2,
        baseline_every: int = 5,
        test_cases: int = 3,
        failure_rate: float = 0.08,
        out_of_order: float = 0.0,
        domain: str = "boss.example.org",
    ) -> None:
        self.rng = random.Random(seed)
        self.now = start_ms
        self.domain = domain
        self.components = [
            _WORDS[i % len(_WORDS)] + ("" if i < len(_WORDS) else f"-{i}")
            for i in range(components)
        ]
        self.products = [
            f"sailfish-{_ARCHES[i % len(_ARCHES)]}" + ("" if i < len(_ARCHES) else f"-{i}")
            for i in range(products)
        ]
        self.baseline_every = baseline_every
        self.test_cases = test_cases
        self.failure_rate = failure_rate
        self.out_of_order = out_of_order
        self.counts: dict[str, int] = {}
        self._last_scs: dict[str, str] = {}
        self._latest_artifact: dict[str, str] = {}
        self._versions: dict[str, list[int]] = {c: [1, 0, 0] for c in self.components}
        self._last_baseline: dict[str, str] = {}
        self._baseline_no: dict[str, int] = dict.fromkeys(self.products, 0)
        self._issues: list[str] = []
        self._issue_no = 1000
        self._run_no = 0
        self._pending_deploy_fail: tuple[str, str, int] | None = None

    # -- helpers ----------------------------------------------------------
    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _signature(self) -> str:
        """A made-up ES512 signature (132 bytes, base64): signed events are
        the norm where events cross organisations."""
        return base64.b64encode(self.rng.getrandbits(1056).to_bytes(132, "big")).decode()

    def _sha(self) -> str:
        return f"{self.rng.getrandbits(160):040x}"

    def _tick(self, lo_s: float, hi_s: float) -> int:
        self.now += int(self.rng.uniform(lo_s, hi_s) * 1000)
        return self.now

    def _event(
        self,
        etype: str,
        version: str,
        data: dict[str, Any],
        links: list[tuple[str, str]],
        *,
        run: str | None = None,
        time: int | None = None,
    ) -> dict[str, Any]:
        self.counts[etype] = self.counts.get(etype, 0) + 1
        host = f"boss-worker-{self.rng.randrange(1, 9)}.{self.domain}"
        source: dict[str, Any] = {
            "domainId": self.domain,
            "host": host,
            "name": "boss",
            "serializer": "pkg:pypi/boss-ci@0.1.0",
        }
        if run is not None:
            source["uri"] = f"https://{self.domain}/runs/{run}"
        return {
            "meta": {
                "id": self._id(),
                "type": etype,
                "version": version,
                "time": time if time is not None else self._tick(0.2, 3.0),
                "source": source,
                "tags": ["boss", self.domain.split(".")[0]],
                "security": {
                    "authorIdentity": f"CN={host},O=Example,C=FI",
                    "integrityProtection": {"alg": "ES512", "signature": self._signature()},
                },
            },
            "data": data,
            "links": [{"type": t, "target": target} for t, target in links],
        }

    def _person(self) -> dict[str, str]:
        name, login = self.rng.choice(_PEOPLE)
        return {
            "name": name,
            "email": f"{login}@example.org",
            "id": login,
            "group": "sailfish-core",
        }

    # -- activities -------------------------------------------------------
    def _activity(
        self, name: str, category: str, links: list[tuple[str, str]], trigger: str
    ) -> tuple[dict[str, Any], str]:
        self._run_no += 1
        wfid = f"{self._run_no:08d}-{self.rng.getrandbits(32):08x}"
        event = self._event(
            "EiffelActivityTriggeredEvent",
            "4.3.0",
            {
                "name": name,
                "categories": ["boss.run", category],
                "triggers": [{"type": trigger, "description": f"{trigger.lower()} for {name}"}],
                "executionType": "AUTOMATED",
                "customData": [
                    {"key": "wfid", "value": wfid},
                    {"key": "process", "value": f"processes/{category}.yaml"},
                ],
            },
            links,
            run=wfid,
        )
        return event, wfid

    def _started(self, trig: dict[str, Any], wfid: str) -> dict[str, Any]:
        return self._event(
            "EiffelActivityStartedEvent",
            "4.3.0",
            {
                "executionUri": f"https://{self.domain}/runs/{wfid}",
                "liveLogs": [
                    {
                        "name": "console",
                        "uri": f"https://logs.{self.domain}/live/{wfid}/console.log",
                    }
                ],
                "customData": [
                    {"key": "instance", "value": f"engine@boss-{self.rng.randrange(4)}"}
                ],
            },
            [("ACTIVITY_EXECUTION", trig["meta"]["id"])],
            run=wfid,
        )

    def _finished(self, trig: dict[str, Any], wfid: str, ok: bool) -> dict[str, Any]:
        outcome: dict[str, Any] = {"conclusion": "SUCCESSFUL" if ok else "FAILED"}
        if not ok:
            outcome["description"] = "step exited with status 1 (see the console log)"
        return self._event(
            "EiffelActivityFinishedEvent",
            "3.3.0",
            {
                "outcome": outcome,
                "persistentLogs": [
                    {"name": "console", "uri": f"https://logs.{self.domain}/{wfid}/console.log"},
                    {"name": "summary", "uri": f"https://logs.{self.domain}/{wfid}/summary.json"},
                ],
            },
            [("ACTIVITY_EXECUTION", trig["meta"]["id"])],
            run=wfid,
        )

    def _step(
        self, run: dict[str, Any], wfid: str, name: str, participant: str, ok: bool
    ) -> list[dict[str, Any]]:
        trig = self._event(
            "EiffelActivityTriggeredEvent",
            "4.3.0",
            {
                "name": name,
                "categories": ["boss.step"],
                "triggers": [{"type": "OTHER", "description": "the run reached the step"}],
                "executionType": "AUTOMATED",
                "customData": [
                    {"key": "wfid", "value": wfid},
                    {"key": "step", "value": name},
                    {"key": "participant", "value": participant},
                    {"key": "queue", "value": f"boss.participant.{participant}"},
                ],
            },
            [("CONTEXT", run["meta"]["id"])],
            run=wfid,
        )
        return [trig, self._started(trig, wfid), self._finished(trig, wfid, ok)]

    # -- pipelines --------------------------------------------------------
    def _change(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        repo = rng.choice(self.components)
        self._tick(60, 1200)
        if rng.random() < 0.2:
            self._issue_no += 1
            issue = self._event(
                "EiffelIssueDefinedEvent",
                "3.2.0",
                {
                    "type": rng.choice(("BUG", "IMPROVEMENT", "FEATURE")),
                    "tracker": "JIRA",
                    "id": f"JB#{self._issue_no}",
                    "uri": f"https://bugs.example.org/browse/JB-{self._issue_no}",
                    "title": f"{repo}: {rng.choice(('crash', 'leak', 'regression', 'feature'))} "
                    f"in {rng.choice(_WORDS)} handling",
                },
                [],
            )
            self._issues.append(issue["meta"]["id"])
            del self._issues[:-50]
            yield issue
        sha = self._sha()
        git = {
            "commitId": sha,
            "branch": "master",
            "repoName": repo,
            "repoUri": f"https://git.example.org/mer-core/{repo}.git",
        }
        base = self._last_scs.get(repo)
        links: list[tuple[str, str]] = [("BASE", base)] if base else []
        if self._issues and rng.random() < 0.3:
            links.append(("RESOLVED_ISSUE", rng.choice(self._issues)))
        change_data = {
            "gitIdentifier": git,
            "author": self._person(),
            "change": {
                "tracker": "Gerrit",
                "id": f"I{self._sha()}",
                "insertions": rng.randrange(1, 400),
                "deletions": rng.randrange(0, 200),
                "files": f"https://review.example.org/changes/{repo}/files",
                "details": f"https://review.example.org/c/mer-core/{repo}/+/"
                f"{rng.randrange(10000, 99999)}",
            },
        }
        scc = self._event("EiffelSourceChangeCreatedEvent", "4.2.0", change_data, links)
        yield scc
        if rng.random() < 0.2:  # reworked: a second patchset
            self._tick(600, 7200)
            git = dict(git, commitId=self._sha())
            scc = self._event(
                "EiffelSourceChangeCreatedEvent",
                "4.2.0",
                dict(change_data, gitIdentifier=git),
                [*links, ("PREVIOUS_VERSION", scc["meta"]["id"])],
            )
            yield scc
        self._tick(300, 14400)
        links = [("CHANGE", scc["meta"]["id"])]
        if base:
            links.append(("PREVIOUS_VERSION", base))
        scs = self._event(
            "EiffelSourceChangeSubmittedEvent",
            "3.2.0",
            {"gitIdentifier": git, "submitter": self._person()},
            links,
        )
        self._last_scs[repo] = scs["meta"]["id"]
        yield scs
        yield from self._build(repo, scs)

    def _build(self, repo: str, scs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        rng = self.rng
        scs_id = scs["meta"]["id"]
        self._tick(2, 30)
        run, wfid = self._activity(f"build-{repo}", "build", [("CAUSE", scs_id)], "SOURCE_CHANGE")
        yield run
        yield self._started(run, wfid)
        ok = rng.random() > self.failure_rate
        yield from self._step(run, wfid, "check_spec", "check_spec", True)
        self._tick(60, 900)
        yield from self._step(run, wfid, "build_package", "obs_build", ok)
        if ok:
            version = self._versions[repo]
            version[2] += 1
            ver = ".".join(map(str, version))
            arch = rng.choice(_ARCHES)
            artifact = self._event(
                "EiffelArtifactCreatedEvent",
                "3.3.0",
                {
                    "identity": f"pkg:rpm/mer/{repo}@{ver}-1?arch={arch}",
                    "name": repo,
                    "fileInformation": [
                        {"name": f"{repo}-{ver}-1.{arch}.rpm", "tags": ["rpm"]},
                        {"name": f"{repo}-devel-{ver}-1.{arch}.rpm", "tags": ["rpm", "devel"]},
                    ],
                    "buildCommand": f"osc build --arch={arch} mer-core {repo}",
                },
                [("CONTEXT", run["meta"]["id"]), ("CAUSE", scs_id)],
                run=wfid,
            )
            yield artifact
            yield self._event(
                "EiffelArtifactPublishedEvent",
                "3.2.0",
                {
                    "locations": [
                        {
                            "type": "PLAIN",
                            "uri": f"https://repo.example.org/mer-core/{arch}/{repo}-{ver}-1.rpm",
                        }
                    ],
                },
                [("ARTIFACT", artifact["meta"]["id"]), ("CONTEXT", run["meta"]["id"])],
                run=wfid,
            )
        yield self._finished(run, wfid, ok)
        if ok:
            yield from self._test(artifact, "unit-tested", f"test-{repo}")
            self._latest_artifact[repo] = artifact["meta"]["id"]

    def _test(self, subject: dict[str, Any], level: str, name: str) -> Iterator[dict[str, Any]]:
        rng = self.rng
        subject_id = subject["meta"]["id"]
        self._tick(5, 120)
        run, wfid = self._activity(name, "test", [("CAUSE", subject_id)], "EIFFEL_EVENT")
        yield run
        yield self._started(run, wfid)
        suite = self._event(
            "EiffelTestSuiteStartedEvent",
            "3.2.0",
            {
                "name": f"{name}-suite",
                "categories": ["functional"],
                "types": ["FUNCTIONAL"],
                "liveLogs": [{"name": "tests", "uri": f"https://logs.{self.domain}/{wfid}/tests"}],
            },
            [("CONTEXT", run["meta"]["id"])],
            run=wfid,
        )
        yield suite
        all_ok = True
        for case in rng.sample(_TESTS, min(self.test_cases, len(_TESTS))):
            trig = self._event(
                "EiffelTestCaseTriggeredEvent",
                "3.2.0",
                {
                    "testCase": {
                        "tracker": "Testlink",
                        "id": f"TC-{case}",
                        "uri": f"https://tests.example.org/cases/{case}",
                    },
                    "executionType": "AUTOMATED",
                },
                [("IUT", subject_id), ("CONTEXT", run["meta"]["id"])],
                run=wfid,
            )
            yield trig
            yield self._event(
                "EiffelTestCaseStartedEvent",
                "3.2.0",
                {
                    "executor": "tests.example.org/runner",
                    "liveLogs": [
                        {"name": "log", "uri": f"https://logs.{self.domain}/{wfid}/{case}"}
                    ],
                },
                [("TEST_CASE_EXECUTION", trig["meta"]["id"])],
                run=wfid,
            )
            passed = rng.random() > self.failure_rate / 2
            all_ok = all_ok and passed
            self._tick(5, 300)
            yield self._event(
                "EiffelTestCaseFinishedEvent",
                "3.3.0",
                {
                    "outcome": {
                        "verdict": "PASSED" if passed else "FAILED",
                        "conclusion": "SUCCESSFUL",
                        "metrics": [{"name": "duration_ms", "value": rng.randrange(100, 90000)}],
                    },
                    "persistentLogs": [
                        {"name": "junit", "uri": f"https://logs.{self.domain}/{wfid}/{case}.xml"}
                    ],
                },
                [("TEST_CASE_EXECUTION", trig["meta"]["id"])],
                run=wfid,
            )
        finished = self._event(
            "EiffelTestSuiteFinishedEvent",
            "3.3.0",
            {
                "outcome": {
                    "verdict": "PASSED" if all_ok else "FAILED",
                    "conclusion": "SUCCESSFUL",
                },
                "persistentLogs": [
                    {"name": "report", "uri": f"https://logs.{self.domain}/{wfid}/report.html"}
                ],
            },
            [("TEST_SUITE_EXECUTION", suite["meta"]["id"])],
            run=wfid,
        )
        yield finished
        yield self._finished(run, wfid, all_ok)
        yield self._clm(
            level, all_ok, subject_id, run, wfid, extra=[("CAUSE", finished["meta"]["id"])]
        )

    def _clm(
        self,
        name: str,
        ok: bool,
        subject_id: str,
        run: dict[str, Any] | None,
        wfid: str | None,
        extra: Sequence[tuple[str, str]] = (),
    ) -> dict[str, Any]:
        links = [("SUBJECT", subject_id)]
        if run is not None:
            links.append(("CONTEXT", run["meta"]["id"]))
        links.extend(extra)
        return self._event(
            "EiffelConfidenceLevelModifiedEvent",
            "3.2.0",
            {
                "name": name,
                "value": "SUCCESS" if ok else "FAILURE",
                "issuer": {
                    "name": "BOSS",
                    "email": f"boss@{self.domain}",
                    "id": "boss",
                    "group": "release-engineering",
                },
            },
            links,
            run=wfid,
        )

    def _baseline(self, product: str) -> Iterator[dict[str, Any]]:
        rng = self.rng
        elements = list(self._latest_artifact.values())
        if not elements:
            return
        self._baseline_no[product] += 1
        number = self._baseline_no[product]
        links = [("ELEMENT", a) for a in elements]
        if product in self._last_baseline:
            links.append(("PREVIOUS_VERSION", self._last_baseline[product]))
        self._tick(10, 600)
        baseline = self._event(
            "EiffelCompositionDefinedEvent",
            "3.3.0",
            {
                "name": product,
                "version": f"4.{number // 100}.{number % 100}",
                "uri": f"https://repo.example.org/{product}/{number}/",
            },
            links,
        )
        self._last_baseline[product] = baseline["meta"]["id"]
        yield baseline
        events = list(self._test(baseline, "integration-tested", f"integrate-{product}"))
        yield from events
        if events[-1]["data"]["value"] != "SUCCESS" or rng.random() > 0.5:
            return
        self._tick(600, 3600)
        yield self._clm("release-candidate", True, baseline["meta"]["id"], None, None)
        if rng.random() < 0.5:
            self._tick(600, 7200)
            yield self._clm("production", True, baseline["meta"]["id"], None, None)
            if rng.random() < 0.15:  # a bad deployment, found in production
                self._tick(300, 3600)
                yield self._clm("production", False, baseline["meta"]["id"], None, None)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        stream = self._stream()
        if self.out_of_order <= 0:
            return stream
        return self._shuffle(stream)

    def _stream(self) -> Iterator[dict[str, Any]]:
        n = 0
        while True:
            yield from self._change()
            n += 1
            if n % self.baseline_every == 0:
                yield from self._baseline(
                    self.products[(n // self.baseline_every) % len(self.products)]
                )

    def _shuffle(self, stream: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        held: deque[tuple[int, dict[str, Any]]] = deque()
        for i, event in enumerate(stream):
            if self.rng.random() < self.out_of_order:
                held.append((i + self.rng.randrange(1, 20), event))
            else:
                yield event
            while held and held[0][0] <= i:
                yield held.popleft()[1]


def generate(n_events: int, *, seed: int = 0, **options: Any) -> Iterator[dict[str, Any]]:
    """The first ``n_events`` events of a ``PipelineGenerator(seed=seed,
    **options)``."""
    for i, event in enumerate(PipelineGenerator(seed=seed, **options)):
        if i >= n_events:
            return
        yield event
