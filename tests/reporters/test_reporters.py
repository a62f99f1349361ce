"""The reporters in-process: a run's transitions (Eiffel events as the
engine emits them) become reports on fake forges at the HTTP boundary,
through the job store on a real Redis: what each forge is told at start
and end, retries with back-off on 502, 4xx listed and not retried,
redelivered transitions reporting nothing twice, ordering, the ``gerrit
review`` command, the outcome definition and the ``report`` participant."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from engine.config import Config
from engine.core import outcome as oc
from engine.core import states
from engine.engine import Engine
from engine.reporters import Reporter, ReporterSettings
from engine.store import MemoryStore
from engine.trace import activity_id
from tests.reporters.fakes import FakeForge, fake_ssh, ssh_calls

pytestmark = [pytest.mark.redis]

SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"


def ev(source: str, **over: Any) -> dict[str, Any]:
    base = {
        "github": {"project": "Codertocat/Hello-World", "change": "2", "commit": SHA},
        "gitlab": {"project": "awesome_space/awesome_project", "change": "1", "commit": SHA},
        "gerrit": {"project": "snix", "change": "30623", "patchset": "3", "commit": SHA},
    }[source]
    return {"source": source, "branch": "main", **base, **over}


PASS = "name: verify\nsteps:\n  - set: {'f:checked': true}\n"
FAIL = "name: verify\nsteps:\n  - set: {'f:status': FAILED}\n"


def triggered(wfid: str) -> dict[str, Any]:
    return {
        "meta": {
            "type": "EiffelActivityTriggeredEvent",
            "id": activity_id(wfid, None, "triggered"),
        },
        "data": {"categories": ["boss.run"], "customData": [{"key": "wfid", "value": wfid}]},
        "links": [],
    }


def finished(wfid: str, conclusion: str = "SUCCESSFUL") -> dict[str, Any]:
    return {
        "meta": {"type": "EiffelActivityFinishedEvent", "id": activity_id(wfid, None, "finished")},
        "data": {"outcome": {"conclusion": conclusion}},
        "links": [{"type": "ACTIVITY_EXECUTION", "target": activity_id(wfid, None, "triggered")}],
    }


class Rig:
    """A reporter over a memory run store and the test's Redis."""

    def __init__(self, client: Any, prefix: str, **settings: Any) -> None:
        self.config = Config.load(None, environ={}, key_prefix=prefix)
        base = {"retry_delay": 0.05, "retry_max_delay": 0.2, "retry_attempts": 4, "timeout": 5.0}
        self.settings = ReporterSettings.from_file(None, environ={}, **{**base, **settings})
        self.store = MemoryStore()
        self.engine = Engine(self.store)
        self.reporter = Reporter(self.config, self.settings, client, self.store)

    def run(self, definition: str, fields: dict[str, Any]) -> str:
        return self.engine.launch(definition, fields)

    def drain(self, timeout: float = 5.0) -> None:
        """Send until nothing is due or waiting to be retried."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.reporter.send_one():
                if self.reporter.jobs.pending() == 0:
                    return
                time.sleep(0.02)
        raise AssertionError("jobs still pending")


@pytest.fixture
def rig_factory(redis_client: Any, key_prefix: str) -> Any:
    return lambda **s: Rig(redis_client, key_prefix, **s)


def test_outcome_of_a_run() -> None:
    assert oc.run_outcome(states.RUNNING) == oc.PENDING
    assert oc.run_outcome(states.FINISHED, {}) == oc.SUCCESS
    assert oc.run_outcome(states.FINISHED, {"status": "SUCCESS"}) == oc.SUCCESS
    assert oc.run_outcome(states.FINISHED, {"status": "FAILED"}) == oc.FAILURE
    assert oc.run_outcome(states.FINISHED, {"status": "error"}) == oc.ERROR
    assert oc.run_outcome(states.FINISHED, {"__result__": False}) == oc.FAILURE
    assert oc.run_outcome(states.FINISHED, {"__result__": "false"}) == oc.FAILURE
    assert oc.run_outcome(states.ERROR) == oc.ERROR
    assert oc.run_outcome(states.CANCELLED) == oc.CANCELLED
    assert oc.run_outcome(states.KILLED) == oc.CANCELLED


def test_github_status_comment_and_check_run(rig_factory: Any, github: FakeForge) -> None:
    rig = rig_factory(
        github_url=github.url, github_token="tok", github_checks=True, web_url="http://boss"
    )
    ok = rig.run(PASS, {"ev": ev("github")})
    bad = rig.run(FAIL, {"ev": ev("github")})
    for wfid in (ok, bad):
        assert rig.reporter.handle_events([triggered(wfid)]) == 2  # status, check
        rig.drain()
    for wfid in (ok, bad):
        rig.reporter.handle_events([finished(wfid)])
        rig.drain()
    statuses = [c.body for c in github.ok(f"/statuses/{SHA}")]
    assert [s["state"] for s in statuses] == ["pending", "pending", "success", "failure"]
    assert statuses[0]["context"] == "boss/verify"
    assert statuses[2]["target_url"] == f"http://boss/runs/{ok}"
    checks = github.ok("/check-runs")
    assert [c.method for c in checks] == ["POST", "POST", "PATCH", "PATCH"]
    assert checks[0].body["status"] == "in_progress" and checks[0].body["head_sha"] == SHA
    assert {c.body["conclusion"] for c in checks[2:]} == {"success", "failure"}
    comments = github.ok("/issues/2/comments")
    assert len(comments) == 1 and "failed" in comments[0].body["body"]
    assert all(c.headers["authorization"] == "Bearer tok" for c in github.calls)


def test_redelivered_transitions_report_nothing_twice(rig_factory: Any, gitlab: FakeForge) -> None:
    rig = rig_factory(gitlab_url=gitlab.url, gitlab_token="tok")
    wfid = rig.run(FAIL, {"ev": ev("gitlab")})
    assert rig.reporter.handle_events([triggered(wfid), finished(wfid)]) == 3  # status x2, note
    rig.drain()
    assert rig.reporter.handle_events([triggered(wfid), finished(wfid)]) == 0
    rig.drain()
    # the start came with its end: only the end was told
    statuses = gitlab.ok("/statuses/")
    assert [c.body["state"] for c in statuses] == ["failed"]
    assert statuses[0].raw_path.startswith("/api/v4/projects/awesome_space%2Fawesome_project/")
    assert len(gitlab.ok("/merge_requests/1/notes")) == 1
    states_ = {j["spec"]["transition"]: j["state"] for j in rig.reporter.jobs.of_run(wfid)}
    assert states_ == {"start": "skipped", "end": "done"}


def test_an_outage_is_retried_then_succeeds(rig_factory: Any, github: FakeForge) -> None:
    rig = rig_factory(github_url=github.url, github_token="tok")
    wfid = rig.run(PASS, {"ev": ev("github")})
    github.fail_next(2, 502)
    rig.reporter.handle_events([triggered(wfid)])
    rig.drain()
    assert [c.status for c in github.requests("/statuses/")] == [502, 502, 201]
    job = rig.reporter.jobs.of_run(wfid)[0]
    assert job["state"] == "done" and job["attempts"] == 3
    assert rig.reporter.jobs.errors() == []


def test_a_4xx_is_listed_not_retried_and_gives_up_after_the_attempts(
    rig_factory: Any, github: FakeForge
) -> None:
    rig = rig_factory(github_url=github.url, github_token="wrong")
    wfid = rig.run(PASS, {"ev": ev("github")})
    rig.reporter.handle_events([triggered(wfid)])
    rig.drain()
    assert [c.status for c in github.requests()] == [401]
    [err] = rig.reporter.jobs.errors()
    assert err["wfid"] == wfid and "401" in err["error"] and "not retried" in err["error"]
    # a forge down for longer than the attempts: listed too
    rig2 = rig_factory(github_url=github.url, github_token="tok")
    other = rig2.run(PASS, {"ev": ev("github")})
    github.fail_next(10, 503)
    rig2.reporter.handle_events([triggered(other)])
    rig2.drain()
    errors = rig2.reporter.jobs.errors()
    assert errors[0]["wfid"] == other and "after 4 attempts" in errors[0]["error"]
    # and sent once the forge is back and an operator retries it
    github._fail.clear()
    assert rig2.reporter.jobs.retry(errors[0]["id"])
    rig2.drain()
    assert github.ok("/statuses/")[-1].body["state"] == "pending"


def test_gerrit_review_over_rest(rig_factory: Any, gerrit: FakeForge) -> None:
    rig = rig_factory(gerrit_url=gerrit.url, gerrit_user="boss", gerrit_password="pw")
    ok = rig.run(PASS, {"ev": ev("gerrit")})
    bad = rig.run(FAIL, {"ev": ev("gerrit"), "reporters": {"gerrit_label": "Code-Review"}})
    for wfid in (ok, bad):
        rig.reporter.handle_events([triggered(wfid)])
        rig.drain()
        rig.reporter.handle_events([finished(wfid)])
        rig.drain()
    calls = gerrit.ok("/review")
    assert len(calls) == 4
    assert calls[0].raw_path == f"/a/changes/snix~30623/revisions/{SHA}/review"
    assert "labels" not in calls[0].body and "started" in calls[0].body["message"]
    assert calls[1].body["labels"] == {"Verified": 1}
    assert calls[3].body["labels"] == {"Code-Review": -1}


def test_gerrit_review_over_ssh(rig_factory: Any, tmp_path: Path) -> None:
    script, log = fake_ssh(tmp_path)
    rig = rig_factory(gerrit_command=f"{script} -p 29418 boss@review gerrit review")
    wfid = rig.run(FAIL, {"ev": ev("gerrit")})
    rig.reporter.handle_events([triggered(wfid)])
    rig.drain()
    rig.reporter.handle_events([finished(wfid)])
    rig.drain()
    start, end = ssh_calls(log)
    assert start[:4] == ["-p", "29418", "boss@review", "gerrit"]
    assert "--label" not in start and start[-1] == "30623,3"
    assert end[end.index("--label") + 1] == "Verified=-1"
    assert "failed" in end[end.index("--message") + 1]
    # ssh's 255 (no connection) is retried, Gerrit's refusal is not
    script2, _ = fake_ssh(tmp_path, fail="no such change", name="refusing")
    rig2 = rig_factory(gerrit_command=str(script2))
    other = rig2.run(PASS, {"ev": ev("gerrit")})
    rig2.reporter.handle_events([triggered(other)])
    rig2.drain()
    [err] = rig2.reporter.jobs.errors()
    assert "no such change" in err["error"] and "not retried" in err["error"]
    script3, log3 = fake_ssh(tmp_path, fail="Connection refused", code=255, name="down")
    rig3 = rig_factory(gerrit_command=str(script3), retry_attempts=3)
    third = rig3.run(PASS, {"ev": ev("gerrit")})
    rig3.reporter.handle_events([triggered(third)])
    rig3.drain()
    assert len(ssh_calls(log3)) == 3
    assert "after 3 attempts" in rig3.reporter.jobs.errors()[0]["error"]


def test_runs_no_forge_launched_and_opted_out_report_nothing(
    rig_factory: Any, github: FakeForge
) -> None:
    rig = rig_factory(github_url=github.url, github_token="tok")
    plain = rig.run(PASS, {"x": 1})
    obs = rig.run(PASS, {"ev": {"source": "obs", "project": "Mer:Tools"}})
    off = rig.run(PASS, {"ev": ev("github"), "reporters": {"enabled": False}})
    events = [e for w in (plain, obs, off) for e in (triggered(w), finished(w))]
    assert rig.reporter.handle_events(events) == 0
    assert github.calls == []


def test_the_report_participant_queues_a_mid_run_report(
    rig_factory: Any, github: FakeForge
) -> None:
    from participants.standard.report import Report
    from participants.workitem import Workitem

    rig = rig_factory(github_url=github.url, github_token="tok")
    p = Report()
    p.reporter = rig.reporter
    wi = Workitem(
        {
            "fei": {"wfid": "w-report", "subid": "0_1-1", "expid": "0_1"},
            "wf_name": "verify",
            "participant_name": "report",
            "fields": {
                "ev": ev("github"),
                "params": {"state": "success", "description": "unit tests passed"},
            },
        }
    )
    p.handle_wi(wi)
    assert wi.fields["report"] == {"jobs": ["w-report|step:0_1-1|status"], "state": "success"}
    rig.drain()
    [call] = github.ok("/statuses/")
    assert call.body["state"] == "success" and call.body["description"] == "unit tests passed"
    wi.fields["params"] = {"state": "bogus"}
    with pytest.raises(ValueError, match="bogus"):
        p.handle_wi(wi)


def test_the_report_participant_reads_its_example_ini(redis_url: str, key_prefix: str) -> None:
    import configparser

    from participants.standard.report import Report

    root = Path(__file__).resolve().parents[2]
    parser = configparser.ConfigParser()
    parser.read(root / "participants" / "standard" / "report.ini.example", encoding="utf-8")
    parser["boss"]["redis_url"] = redis_url
    parser["boss"]["key_prefix"] = key_prefix
    reporter = Report.make_reporter(parser)
    assert reporter.settings.web_url == "https://boss.example.org"
    assert reporter.jobs.k == f"{key_prefix}reporters:"
    assert reporter.jobs.pending() == 0
