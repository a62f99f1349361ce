"""Traceability records (one per lifecycle transition) and the engine's
queries: positions, tree, list_runs, count_runs, list_errors."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.engine.support import (
    START,
    definition,
    dispatched_to,
    only,
    register_calls,
    register_tracers,
    run_records,
    step_records,
)


def assert_clean_records(h, run):
    """Exactly one record per transition: run triggered, started, finished
    (once ended); per step eid: triggered first, at most one started, exactly
    one terminal record (finished or canceled) once the run ended."""
    recs = [r for r in h.records if r.wfid == run.wfid]
    runs = [(r.event, r.outcome) for r in recs if r.entity == "run"]
    assert [e for e, _ in runs][:2] == ["triggered", "started"]
    if run.ended:
        assert [e for e, _ in runs] == ["triggered", "started", "finished"]
    else:
        assert [e for e, _ in runs] == ["triggered", "started"]
    by_eid: dict[str, list[str]] = {}
    for r in recs:
        if r.entity == "step":
            by_eid.setdefault(r.eid, []).append(r.event)
    for eid, events in by_eid.items():
        assert events[0] == "triggered", (eid, events)
        counts = Counter(events)
        assert counts["triggered"] == 1, (eid, events)
        assert counts["started"] <= 1, (eid, events)
        terminal = counts["finished"] + counts["canceled"]
        assert terminal <= 1, (eid, events)
        if run.ended:
            assert terminal == 1, (eid, events)
    return by_eid


# ---------------------------------------------------------------------------
# run records


def test_a_run_emits_triggered_started_finished(hx):
    h = hx
    register_tracers(h, "alpha")
    run = h.launch(
        definition("""
        name: recorded
        steps:
          - alpha
    """)
    ).wait()
    assert run_records(h, run) == [
        ("triggered", None),
        ("started", None),
        ("finished", "SUCCESSFUL"),
    ]
    recs = [r for r in h.records if r.entity == "run"]
    assert {r.name for r in recs} == {"recorded"}
    assert {r.eid for r in recs} == {None}


@pytest.mark.parametrize(("end", "outcome"), [("cancel", "ABORTED"), ("kill", "ABORTED")])
def test_run_ended_by_an_operator(h, end, outcome):
    h.register("alpha", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
    """)
    ).wait()
    getattr(run, end)()
    assert run_records(h, run) == [("triggered", None), ("started", None), ("finished", outcome)]
    assert step_records(h, run, "alpha")[-1][2:] == ("canceled", None)
    assert_clean_records(h, run)


def test_a_run_in_error_has_no_finished_record_until_it_ends(h):
    register_calls(h, "alpha", fail_on=(1,))
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
    """)
    ).wait()
    assert run_records(h, run) == [("triggered", None), ("started", None)]
    run.replay()
    assert run_records(h, run)[-1] == ("finished", "SUCCESSFUL")


def test_cancel_process_expression_records_an_aborted_run(h):
    run = h.launch(
        definition("""
        name: t
        steps:
          - cancel_process
    """)
    ).wait()
    assert run.status == "cancelled"
    assert run_records(h, run)[-1] == ("finished", "ABORTED")


# ---------------------------------------------------------------------------
# step records


def test_participant_step_triggered_then_finished_successful(hx):
    h = hx
    register_tracers(h, "alpha", "beta")
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
          - beta
    """)
    ).wait()
    recs = step_records(h, run)
    assert [(n, ev, out) for _, n, ev, out in recs] == [
        ("alpha", "triggered", None),
        ("alpha", "finished", "SUCCESSFUL"),
        ("beta", "triggered", None),
        ("beta", "finished", "SUCCESSFUL"),
    ]
    trig = next(r for r in h.records if r.entity == "step" and r.event == "triggered")
    assert trig.data == {"participant": "alpha", "queue": "harness.alpha"}
    assert trig.eid == dispatched_to(h, "alpha")[0].fei["subid"]


@pytest.mark.parametrize(
    ("result", "outcome"), [(True, "SUCCESSFUL"), (False, "UNSUCCESSFUL"), (None, "SUCCESSFUL")]
)
def test_business_result_sets_the_outcome(h, result, outcome):
    def alpha(wi):
        if result is not None:
            wi.result = result

    h.register("alpha", alpha)
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
    """)
    ).wait()
    assert step_records(h, run, "alpha")[-1][2:] == ("finished", outcome)
    # the run came to what its last word says: __result__ false at the end
    # is a pipeline that did not pass (engine.core.outcome)
    assert run_records(h, run)[-1] == ("finished", outcome)


@pytest.mark.parametrize(
    ("fields", "conclusion"),
    [
        ({"status": "SUCCESS"}, "SUCCESSFUL"),
        ({"status": "FAILURE"}, "UNSUCCESSFUL"),
        ({"status": "ERROR"}, "FAILED"),
        ({"status": "FAILURE", "__outcome__": "success"}, "SUCCESSFUL"),
        ({"__outcome__": "failure"}, "UNSUCCESSFUL"),
    ],
)
def test_a_finished_run_concludes_what_its_fields_say(h, fields, conclusion):
    """A build that failed three times, an on_error handler that set
    status=FAILURE: the run reached its end, and its ActivityFinished says
    it failed (issue 15: failed pipelines were shown as a green finished)."""
    run = h.launch(
        definition("""
        name: t
        steps:
          - set: {placeholder: 1}
    """),
        fields=fields,
    ).wait()
    assert run.status == "finished"
    assert run_records(h, run)[-1] == ("finished", conclusion)


def test_on_error_handler_setting_failure_makes_the_run_unsuccessful(h):
    register_calls(h, "build", always_fail=True)
    run = h.launch(
        definition("""
        name: t
        subprocesses:
          failed:
            - set: {status: FAILURE}
        steps:
          - build:
            retry: 2
            on_error: failed
    """)
    ).wait()
    assert run.status == "finished"
    assert h.trace.count("build") == 3
    assert run_records(h, run)[-1] == ("finished", "UNSUCCESSFUL")


def test_failed_step_has_one_failed_record(hx):
    h = hx
    register_calls(h, "alpha", always_fail=True)
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
    """)
    ).wait()
    assert [(ev, out) for _, _, ev, out in step_records(h, run, "alpha")] == [
        ("triggered", None),
        ("finished", "FAILED"),
    ]
    run.cancel()
    # cancelling the failed step adds nothing: it already finished
    assert [(ev, out) for _, _, ev, out in step_records(h, run, "alpha")] == [
        ("triggered", None),
        ("finished", "FAILED"),
    ]


def test_failed_error_reply_then_on_error_pass(h):
    h.register("alpha", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: alpha
            on_error: pass
    """)
    ).wait()
    h.reply(only(h.pending_for("alpha")), error="x")
    assert [(ev, out) for _, _, ev, out in step_records(h, run, "alpha")] == [
        ("triggered", None),
        ("finished", "FAILED"),
    ]
    assert_clean_records(h, run)


def test_timed_out_step(h):
    h.register("alpha", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: alpha
            timeout: 1m
    """)
    ).wait()
    h.advance(60)
    run.wait()
    recs = [r for r in h.records if r.entity == "step" and r.name == "alpha"]
    assert [(r.event, r.outcome) for r in recs] == [("triggered", None), ("finished", "TIMED_OUT")]
    assert recs[0].at == START
    assert recs[1].at == START + 60


def test_cancelled_step(h):
    h.register("alpha", reply=False)
    register_tracers(h, "beta")
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
          - beta
    """)
    ).wait()
    run.cancel("0_0")
    run.wait()
    assert [(ev, out) for _, _, ev, out in step_records(h, run, "alpha")] == [
        ("triggered", None),
        ("canceled", None),
    ]
    assert_clean_records(h, run)


def test_started_step_then_finished(hx):
    h = hx
    h.register("alpha", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
    """)
    ).wait()
    wi = only(h.pending_for("alpha"))
    h.engine.deliver({"type": "started", "wfid": run.wfid, "eid": wi.fei["subid"]})
    h.engine.deliver({"type": "started", "wfid": run.wfid, "eid": wi.fei["subid"]})
    h.reply(wi)
    assert [(ev, out) for _, _, ev, out in step_records(h, run, "alpha")] == [
        ("triggered", None),
        ("started", None),
        ("finished", "SUCCESSFUL"),
    ]


def test_started_step_then_cancelled_is_finished_aborted(h):
    h.register("alpha", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
    """)
    ).wait()
    wi = only(h.pending_for("alpha"))
    h.engine.deliver({"type": "started", "wfid": run.wfid, "eid": wi.fei["subid"]})
    run.cancel()
    assert [(ev, out) for _, _, ev, out in step_records(h, run, "alpha")] == [
        ("triggered", None),
        ("started", None),
        ("finished", "ABORTED"),
    ]
    assert_clean_records(h, run)


def test_forget_param_step_finishes_at_once(h):
    h.register("alpha", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha: {forget: true}
    """)
    ).wait()
    assert [(ev, out) for _, _, ev, out in step_records(h, run, "alpha")] == [
        ("triggered", None),
        ("finished", "SUCCESSFUL"),
    ]
    assert_clean_records(h, run)


def test_subprocess_step_records(h):
    register_tracers(h, "alpha")
    run = h.launch(
        definition("""
        name: t
        subprocesses:
          sub:
            - alpha
        steps:
          - sub
    """)
    ).wait()
    assert [(n, ev) for _, n, ev, _ in step_records(h, run)] == [
        ("sub", "triggered"),
        ("sub", "started"),
        ("alpha", "triggered"),
        ("alpha", "finished"),
        ("sub", "finished"),
    ]
    assert_clean_records(h, run)


def test_replayed_step_records(h):
    register_calls(h, "alpha", fail_on=(1,))
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
    """)
    ).wait()
    run.replay()
    recs = step_records(h, run, "alpha")
    eids = list(dict.fromkeys(r[0] for r in recs))
    assert len(eids) == 2
    assert [(ev, out) for e, _, ev, out in recs if e == eids[0]] == [
        ("triggered", None),
        ("finished", "FAILED"),
    ]
    assert [(ev, out) for e, _, ev, out in recs if e == eids[1]] == [
        ("triggered", None),
        ("finished", "SUCCESSFUL"),
    ]


def test_re_applied_step_records(h):
    h.register("alpha", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
    """)
    ).wait()
    run.re_apply("0_0")
    h.reply(only(h.pending_for("alpha")))
    recs = step_records(h, run, "alpha")
    eids = list(dict.fromkeys(r[0] for r in recs))
    assert [(ev, out) for e, _, ev, out in recs if e == eids[0]] == [
        ("triggered", None),
        ("canceled", None),
    ]
    assert [(ev, out) for e, _, ev, out in recs if e == eids[1]] == [
        ("triggered", None),
        ("finished", "SUCCESSFUL"),
    ]


def test_duplicate_reply_records_once(hx):
    h = hx
    h.register("alpha", reply=False)
    h.register("beta", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
          - beta
    """)
    ).wait()
    wi = only(h.pending_for("alpha"))
    h.reply(wi)
    h.reply(wi)
    h.reply(wi, error="late failure")
    assert [(ev, out) for _, _, ev, out in step_records(h, run, "alpha")] == [
        ("triggered", None),
        ("finished", "SUCCESSFUL"),
    ]
    assert [ev for _, _, ev, _ in step_records(h, run, "beta")] == ["triggered"]


def test_record_times_follow_the_virtual_clock(h):
    h.register("alpha", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - alpha
    """)
    ).wait()
    h.advance(42)
    h.reply(only(h.pending_for("alpha")))
    recs = [r for r in h.records if r.wfid == run.wfid]
    assert [r.at for r in recs] == [START, START, START, START + 42, START + 42]


# -- one record per transition, whatever happened ----------------------------


def _scenario_timeout_redo(h):
    h.register("alpha", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: alpha
            timeout: 5s
            on_timeout: redo
    """)
    ).wait()
    h.advance(5)
    h.advance(5)
    h.reply(only(h.pending_for("alpha")))
    return run


def _scenario_timeout_error_replay(h):
    h.register("alpha", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: alpha
            timeout: 5s
            on_timeout: error
    """)
    ).wait()
    h.advance(5)
    run.replay()
    h.reply(only(h.pending_for("alpha")))
    return run


def _scenario_retry(h):
    register_calls(h, "alpha", always_fail=True)
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: alpha
            retry: {times: 3, delay: 1s}
    """)
    ).wait()
    for _ in range(3):
        h.advance(1)
    return run


def _scenario_concurrence_cancel(h):
    register_calls(h, "bad", always_fail=True)
    h.register("slow", reply=False)
    h.register("handler", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              - slow
              - bad
              - participant: slow
                on_cancel: handler
            on_error: handler
    """)
    ).wait()
    for wi in list(h.pending.values()):
        h.reply(wi)
    return run


def _scenario_cancel_with_on_cancel(h):
    h.register("alpha", reply=False)
    register_tracers(h, "cleanup")
    run = h.launch(
        definition("""
        name: t
        steps:
          - sequence:
              - participant: alpha
                on_cancel: cleanup
            on_cancel: cleanup
    """)
    ).wait()
    run.cancel()
    return run


def _scenario_kill_concurrence(h):
    h.register("a", reply=False)
    h.register("b", reply=False)
    run = h.launch(
        definition("""
        name: t
        subprocesses:
          sub:
            - b
        steps:
          - concurrence:
              - a
              - sub
    """)
    ).wait()
    run.kill()
    return run


def _scenario_forget(h):
    h.register("a", reply=False)
    register_tracers(h, "b")
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: a
            forget: true
          - b
    """)
    ).wait()
    h.reply(only(h.pending_for("a")))
    return run


def _scenario_count_one(h):
    register_tracers(h, "fast")
    h.register("slow", reply=False)
    return h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              count: 1
              branches:
                - fast
                - slow
                - slow
    """)
    ).wait()


def _scenario_pause_resume(h):
    h.register("a", reply=False)
    register_tracers(h, "b")
    run = h.launch(
        definition("""
        name: t
        steps:
          - a
          - b
    """)
    ).wait()
    run.pause()
    wi = only(h.pending_for("a"))
    h.reply(wi)
    h.reply(wi)
    run.resume()
    return run


def _scenario_cursor_on_error(h):
    register_calls(h, "bad", fail_on=(1,))
    register_tracers(h, "a", "c")
    return h.launch(
        definition("""
        name: t
        steps:
          - cursor:
              - a
              - participant: bad
                on_error: rewind
              - c
    """)
    ).wait()


SCENARIOS = {
    "timeout redo": (_scenario_timeout_redo, "finished"),
    "timeout error replay": (_scenario_timeout_error_replay, "finished"),
    "retry with delays": (_scenario_retry, "error"),
    "concurrence on_error": (_scenario_concurrence_cancel, "finished"),
    "cancel with on_cancel": (_scenario_cancel_with_on_cancel, "cancelled"),
    "kill a concurrence": (_scenario_kill_concurrence, "killed"),
    "forget": (_scenario_forget, "finished"),
    "concurrence count 1": (_scenario_count_one, "finished"),
    "pause with duplicate reply": (_scenario_pause_resume, "finished"),
    "cursor on_error rewind": (_scenario_cursor_on_error, "finished"),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_exactly_one_record_per_transition(h, scenario):
    build, status = SCENARIOS[scenario]
    run = build(h)
    run.wait()
    assert run.status == status
    by_eid = assert_clean_records(h, run)
    assert by_eid  # the scenario had steps
    # every record is for this run (no strays)
    assert {r.wfid for r in h.records} == {run.wfid}


# ---------------------------------------------------------------------------
# positions


def test_positions_of_waiting_steps(hx):
    h = hx
    h.register("a", reply=False)
    h.register("b", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              - a
              - sequence:
                  - wait: 1h
                  - b
    """)
    ).wait()
    pos = sorted(run.positions, key=lambda p: p.expid)
    assert [(p.expid, p.name, p.kind, p.state, p.participant) for p in pos] == [
        ("0_0_0", "a", "participant", "waiting", "a"),
        ("0_0_1_0", "wait", "wait", "waiting", None),
    ]
    a = only(h.pending_for("a"))
    assert pos[0].eid == a.fei["subid"]
    assert pos[0].since == START
    h.advance(3600)
    pos = sorted(run.positions, key=lambda p: p.expid)
    assert [(p.expid, p.name, p.since) for p in pos] == [
        ("0_0_0", "a", START),
        ("0_0_1_1", "b", START + 3600),
    ]


def test_positions_include_failed_steps(h):
    register_calls(h, "bad", always_fail=True)
    h.register("slow", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              - bad
              - slow
    """)
    ).wait()
    states = sorted((p.name, p.state) for p in run.positions)
    assert states == [("bad", "failed"), ("slow", "waiting")]
    failed = next(p for p in run.positions if p.state == "failed")
    assert failed.eid == only(run.errors)["eid"]


def test_positions_of_listen_and_reserve(h):
    h.register("inside", reply=False)
    src = definition("""
        name: t
        steps:
          - concurrence:
              - listen: {to: nobody}
              - reserve:
                  mutex: m
                  steps: [inside]
    """)
    h.launch(src).wait()
    b = h.launch(src).wait()
    kinds = sorted((p.kind, p.state) for p in b.positions)
    assert kinds == [("listen", "waiting"), ("reserve", "waiting")]


def test_positions_of_an_ended_run_are_empty(h):
    register_tracers(h, "a")
    run = h.launch(
        definition("""
        name: t
        steps:
          - a
    """)
    ).wait()
    assert run.positions == []
    assert run.info.positions == []


def test_positions_of_a_subprocess_step(h):
    h.register("a", reply=False)
    run = h.launch(
        definition("""
        name: t
        subprocesses:
          sub:
            - a
        steps:
          - sub
    """)
    ).wait()
    assert [(p.expid, p.name) for p in run.positions] == [("sub/0_0", "a")]


# ---------------------------------------------------------------------------
# tree


def test_tree_of_a_live_run(hx):
    h = hx
    h.register("a", reply=False)
    h.register("b", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              - a
              - b
          - c
    """)
    ).wait()
    tree = run.tree

    def shape(node):
        return (
            node["expid"],
            node["kind"],
            node["name"],
            node["state"],
            [shape(k) for k in node["children"]],
        )

    assert shape(tree) == (
        "0",
        "sequence",
        "sequence",
        "active",
        [
            (
                "0_0",
                "concurrence",
                "concurrence",
                "active",
                [
                    ("0_0_0", "participant", "a", "waiting", []),
                    ("0_0_1", "participant", "b", "waiting", []),
                ],
            ),
        ],
    )
    assert tree["detached"] == []
    a = only(h.pending_for("a"))
    assert tree["children"][0]["children"][0]["eid"] == a.fei["subid"]


def test_tree_shows_a_failed_step(h):
    register_calls(h, "bad", always_fail=True)
    run = h.launch(
        definition("""
        name: t
        steps:
          - bad
    """)
    ).wait()
    child = only(run.tree["children"])
    assert (child["name"], child["state"]) == ("bad", "failed")


def test_tree_shows_forgotten_branches_as_detached(h):
    h.register("a", reply=False)
    h.register("b", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - participant: a
            forget: true
          - b
    """)
    ).wait()
    tree = run.tree
    assert [c["name"] for c in tree["children"]] == ["b"]
    assert [(d["name"], d["state"]) for d in tree["detached"]] == [("a", "waiting")]


def test_tree_of_an_ended_run_is_none(h):
    register_tracers(h, "a")
    run = h.launch(
        definition("""
        name: t
        steps:
          - a
    """)
    ).wait()
    assert run.tree is None


# ---------------------------------------------------------------------------
# list_runs, count_runs, list_errors


def _launch_zoo(h):
    """One run per status, launched one second apart."""
    h.register("held", reply=False)
    register_calls(h, "bad", always_fail=True)
    register_tracers(h, "ok")
    one = definition("""
        name: {name}
        steps:
          - {step}
    """)
    runs = {}
    for key, name, step in [
        ("finished", "alpha", "ok"),
        ("running", "alpha", "held"),
        ("error", "beta", "bad"),
        ("cancelled", "beta", "held"),
        ("killed", "alpha", "held"),
        ("finished2", "beta", "ok"),
    ]:
        runs[key] = h.launch(one.format(name=name, step=step)).wait()
        h.advance(1)
    runs["cancelled"].cancel()
    runs["killed"].kill()
    return runs


def test_list_runs_by_status(hx):
    h = hx
    runs = _launch_zoo(h)
    assert [r.wfid for r in h.engine.list_runs(status="finished")] == [
        runs["finished2"].wfid,
        runs["finished"].wfid,
    ]
    for status in ("running", "error", "cancelled", "killed"):
        listed = h.engine.list_runs(status=status)
        assert [r.wfid for r in listed] == [runs[status].wfid], status
        assert listed[0].status == status
    assert h.engine.list_runs(status="paused") == []


def test_list_runs_by_name(hx):
    h = hx
    runs = _launch_zoo(h)
    alpha = h.engine.list_runs(name="alpha")
    assert [r.wfid for r in alpha] == [runs[k].wfid for k in ("killed", "running", "finished")]
    assert {r.name for r in alpha} == {"alpha"}
    both = h.engine.list_runs(status="finished", name="beta")
    assert [r.wfid for r in both] == [runs["finished2"].wfid]
    assert h.engine.list_runs(name="gamma") == []


def test_list_runs_newest_first_with_paging(h):
    runs = _launch_zoo(h)
    order = [
        runs[k].wfid for k in ("finished2", "killed", "cancelled", "error", "running", "finished")
    ]
    assert [r.wfid for r in h.engine.list_runs()] == order
    assert [r.wfid for r in h.engine.list_runs(offset=2, limit=2)] == order[2:4]
    assert h.engine.list_runs()[0].launched_at == START + 5


def test_count_runs(hx):
    h = hx
    _launch_zoo(h)
    counts = h.engine.count_runs()
    assert {k: v for k, v in counts.items() if v} == {
        "finished": 2,
        "running": 1,
        "error": 1,
        "cancelled": 1,
        "killed": 1,
    }


def test_count_runs_follows_status_changes(h):
    register_calls(h, "bad", fail_on=(1,))
    run = h.launch(
        definition("""
        name: t
        steps:
          - bad
    """)
    ).wait()
    assert h.engine.count_runs()["error"] == 1
    run.replay()
    counts = h.engine.count_runs()
    assert counts["error"] == 0
    assert counts["finished"] == 1


def test_list_errors_across_runs(hx):
    h = hx
    register_calls(h, "bad", always_fail=True, message="broken")
    src = definition("""
        name: t
        steps:
          - bad
    """)
    r1 = h.launch(src).wait()
    h.advance(1)
    r2 = h.launch(
        definition("""
        name: u
        steps:
          - error: "custom ${n}"
    """),
        fields={"n": 2},
    ).wait()
    errors = h.engine.list_errors()
    assert sorted((e["wfid"], e["message"]) for e in errors) == sorted(
        [(r1.wfid, "broken"), (r2.wfid, "custom 2")]
    )
    for e in errors:
        assert "fields" not in e
        assert {"id", "eid", "message", "class", "expid", "at"} <= set(e)
    r1.cancel()
    assert [e["wfid"] for e in h.engine.list_errors()] == [r2.wfid]
    r2.replay()
    assert h.engine.list_errors() == []


def test_list_errors_lists_every_error_of_a_run(h):
    register_calls(h, "bad1", always_fail=True)
    register_calls(h, "bad2", always_fail=True)
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              - bad1
              - bad2
    """)
    ).wait()
    errors = h.engine.list_errors()
    assert sorted(e["participant"] for e in errors) == ["bad1", "bad2"]
    assert {e["wfid"] for e in errors} == {run.wfid}


def test_run_info(h):
    h.register("a", reply=False)
    run = h.launch(
        definition("""
        name: info
        revision: "7"
        steps:
          - a
    """),
        fields={"x": 1},
    ).wait()
    info = run.info
    assert (info.name, info.revision, info.status) == ("info", "7", "running")
    assert info.launched_at == START
    assert info.ended_at is None
    assert info.fields == {"x": 1}
    h.advance(5)
    wi = only(h.pending_for("a"))
    wi.fields["y"] = 2
    h.reply(wi)
    info = run.info
    assert info.ended_at == START + 5
    assert info.updated_at == START + 5
    assert info.fields == {"x": 1, "y": 2}
    assert only(dispatched_to(h, "a")).wf_revision == "7"


def test_live_fields_are_those_of_the_latest_waiting_step(h):
    h.register("a", reply=False)
    h.register("b", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - a
          - b
    """),
        fields={"x": 1},
    ).wait()
    assert run.fields == {"x": 1}
    wi = only(h.pending_for("a"))
    wi.fields["from_a"] = True
    h.advance(1)
    h.reply(wi)
    assert run.fields == {"x": 1, "from_a": True}
