"""``listen`` and ``reserve``: expressions that coordinate runs."""

from __future__ import annotations

import pytest

from tests.engine.support import (
    definition,
    dispatched_to,
    only,
    register_tracers,
)


def listener(opts: str, after: str = "- echo: woke") -> str:
    return definition(f"""
        name: listener
        steps:
          - listen: {opts}
          {after}
    """)


def producer(name: str = "beta") -> str:
    return definition(f"""
        name: producer
        steps:
          - {name}
    """)


# ---------------------------------------------------------------------------
# listen


def test_listen_upon_apply_wakes_when_another_run_reaches_the_participant(hx):
    h = hx
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta}", '- echo: "woke with ${from_b}"'), fields={"mine": 1})
    a.wait()
    assert a.status == "running"
    assert [p.kind for p in a.positions] == ["listen"]
    b = h.launch(producer(), fields={"from_b": "B"})
    b.wait()
    a.wait()
    assert a.status == "finished"
    assert h.trace == ["woke with B"]
    assert a.fields == {"mine": 1, "from_b": "B"}
    # the other run is not affected
    assert b.status == "running"
    assert len(h.pending_for("beta")) == 1


def test_listen_upon_reply_wakes_only_on_the_reply(hx):
    h = hx
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta, upon: reply}")).wait()
    b = h.launch(producer(), fields={"x": 1}).wait()
    assert a.status == "running"
    assert h.trace == []
    beta = only(h.pending_for("beta"))
    beta.fields["verdict"] = "ok"
    h.reply(beta)
    a.wait()
    assert a.status == "finished"
    assert h.trace == ["woke"]
    assert a.fields["verdict"] == "ok"
    assert b.wait().status == "finished"


def test_listen_upon_reply_ignores_an_error_reply(h):
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta, upon: reply}")).wait()
    b = h.launch(producer()).wait()
    h.reply(only(h.pending_for("beta")), error="broken")
    assert b.status == "error"
    assert a.status == "running"
    assert h.trace == []


def test_listen_upon_apply_is_not_woken_by_a_reply_only(h):
    # the listener registered after the dispatch: only later applies count
    h.register("beta", reply=False)
    b = h.launch(producer()).wait()
    a = h.launch(listener("{to: beta}")).wait()
    h.reply(only(h.pending_for("beta")))
    assert b.wait().status == "finished"
    assert a.status == "running"


LISTEN_TO = [
    ("beta", "beta", True),
    ("beta", "betamax", False),
    ("build_.*", "build_x86", True),
    ("build_.*", "prebuild_x86", False),
    ("beta|gamma", "gamma", True),
    ("b.t.", "beta", True),
    ("bet", "beta", False),
    ("notify_(irc|mail)", "notify_mail", True),
    ("notify_(irc|mail)", "notify_sms", False),
]


@pytest.mark.parametrize(("to", "name", "wakes"), LISTEN_TO)
def test_listen_to_is_a_regex_matched_against_the_whole_name(h, to, name, wakes):
    h.register(name, reply=False)
    a = h.launch(listener(f'{{to: "{to}"}}')).wait()
    h.launch(producer(name)).wait()
    a.wait()
    assert (a.status == "finished") is wakes
    assert (h.trace == ["woke"]) is wakes


def test_listen_to_is_substituted(h):
    h.register("gamma", reply=False)
    h.register("beta", reply=False)
    a = h.launch(listener('{to: "${target}"}'), fields={"target": "gamma"}).wait()
    h.launch(producer("beta")).wait()
    assert a.status == "running"
    h.launch(producer("gamma")).wait()
    assert a.wait().status == "finished"


def test_listen_where_filters_on_the_other_runs_workitem(hx):
    h = hx
    h.register("beta", reply=False)
    a = h.launch(listener('{to: beta, where: "${project} == foo"}')).wait()
    h.launch(producer(), fields={"project": "bar"}).wait()
    assert a.status == "running"
    h.launch(producer(), fields={"project": "foo", "rev": 7}).wait()
    a.wait()
    assert a.status == "finished"
    assert a.fields["project"] == "foo"
    assert a.fields["rev"] == 7


@pytest.mark.parametrize(
    ("where", "fields", "wakes"),
    [
        ('"${n} > 5"', {"n": 7}, True),
        ('"${n} > 5"', {"n": 3}, False),
        ('"${tags} is not empty"', {"tags": ["x"]}, True),
        ('"${tags} is not empty"', {"tags": []}, False),
        ('"${branch} =~ ^release/"', {"branch": "release/2.0"}, True),
        ('"${branch} =~ ^release/"', {"branch": "main"}, False),
        ('"${urgent} is set"', {}, False),
    ],
)
def test_listen_where_conditions(h, where, fields, wakes):
    h.register("beta", reply=False)
    a = h.launch(listener(f"{{to: beta, where: {where}}}")).wait()
    h.launch(producer(), fields=fields).wait()
    assert (a.wait().status == "finished") is wakes


@pytest.mark.parametrize("merge", ["true", None])
def test_listen_merge_true_merges_the_other_fields(h, merge):
    h.register("beta", reply=False)
    opts = "{to: beta, merge: true}" if merge else "{to: beta}"
    a = h.launch(listener(opts), fields={"mine": 1, "shared": "a"}).wait()
    h.launch(producer(), fields={"theirs": 2, "shared": "b"}).wait()
    a.wait()
    assert a.fields == {"mine": 1, "theirs": 2, "shared": "b"}


def test_listen_merge_false_keeps_its_own_fields(h):
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta, merge: false}"), fields={"mine": 1}).wait()
    h.launch(producer(), fields={"theirs": 2}).wait()
    a.wait()
    assert a.status == "finished"
    assert a.fields == {"mine": 1}


def test_listen_does_not_merge_the_other_steps_params(h):
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta}")).wait()
    h.launch(
        definition("""
        name: producer
        steps:
          - beta: {flag: on}
    """),
        fields={"x": 1},
    ).wait()
    a.wait()
    assert a.fields == {"x": 1}


def test_listen_wfid_true_restricts_to_its_own_run(hx):
    h = hx
    h.register("beta", reply=False)
    a = h.launch(
        definition("""
        name: listener
        steps:
          - concurrence:
              - sequence:
                  - listen: {to: beta, wfid: true}
                  - echo: woke
              - sequence:
                  - wait: 10s
                  - beta
    """),
        fields={"who": "a"},
    ).wait()
    h.launch(producer(), fields={"who": "b"}).wait()
    assert h.trace == []
    h.advance(10)
    assert h.trace == ["woke"]
    assert len(h.pending_for("beta")) == 2
    mine = next(wi for wi in h.pending_for("beta") if wi.wfid == a.wfid)
    h.reply(mine)
    assert a.wait().status == "finished"


def test_listen_wfid_false_hears_every_run(h):
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta, wfid: false}")).wait()
    h.launch(producer()).wait()
    assert a.wait().status == "finished"


def test_cancel_of_a_listening_run_removes_the_listener(hx):
    h = hx
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta}")).wait()
    assert len(h.store.listeners()) == 1
    a.cancel()
    assert a.status == "cancelled"
    assert h.store.listeners() == []
    b = h.launch(producer()).wait()
    assert a.status == "cancelled"
    assert h.trace == []
    assert b.status == "running"


def test_cancel_of_a_listen_step_removes_the_listener_and_goes_on(h):
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta}", "- gamma")).wait()
    register_tracers(h, "gamma")
    a.cancel("0_0")
    assert a.wait().status == "finished"
    assert h.trace == ["gamma"]
    assert h.store.listeners() == []
    h.launch(producer()).wait()
    assert h.trace == ["gamma"]


def test_kill_of_a_listening_run_removes_the_listener(h):
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta}")).wait()
    a.kill()
    assert h.store.listeners() == []
    h.launch(producer()).wait()
    assert a.status == "killed"


def test_listen_with_a_timeout(h):
    h.register("beta", reply=False)
    a = h.launch(
        definition("""
        name: listener
        steps:
          - listen: {to: beta}
            timeout: 30s
          - echo: gave up
    """)
    ).wait()
    h.advance(30)
    assert a.wait().status == "finished"
    assert h.trace == ["gave up"]
    assert "__timed_out__" in a.fields
    assert h.store.listeners() == []
    h.launch(producer()).wait()
    assert h.trace == ["gave up"]


def test_listen_wakes_once(h):
    h.register("beta", reply=False)
    h.register("gamma", reply=False)
    a = h.launch(listener("{to: beta}", "- gamma")).wait()
    h.launch(producer()).wait()
    h.launch(producer()).wait()
    assert len(dispatched_to(h, "gamma", a)) == 1


def test_one_event_wakes_every_matching_listener(h):
    h.register("beta", reply=False)
    a1 = h.launch(listener("{to: beta}")).wait()
    a2 = h.launch(listener('{to: "b.*"}')).wait()
    a3 = h.launch(listener("{to: gamma}")).wait()
    h.launch(producer()).wait()
    assert a1.wait().status == "finished"
    assert a2.wait().status == "finished"
    assert a3.status == "running"
    assert h.trace == ["woke", "woke"]


def test_listen_in_a_loop_listens_again_each_iteration(h):
    h.register("beta", reply=False)
    a = h.launch(
        definition("""
        name: listener
        steps:
          - iterator:
              on: [1, 2, 3]
              steps:
                - listen: {to: beta}
                - echo: "heard ${v:i}"
    """)
    ).wait()
    for n in range(1, 4):
        h.launch(producer()).wait()
        assert h.trace[-1] == f"heard {n}"
    assert a.wait().status == "finished"


def test_listen_to_a_participant_of_the_same_run_upon_reply(h):
    h.register("beta", reply=False)
    a = h.launch(
        definition("""
        name: self
        steps:
          - concurrence:
              - sequence:
                  - listen: {to: beta, upon: reply, wfid: true}
                  - echo: heard
              - beta
    """)
    ).wait()
    assert h.trace == []
    h.reply(only(h.pending_for("beta")))
    assert a.wait().status == "finished"
    assert h.trace == ["heard"]


# ---------------------------------------------------------------------------
# reserve


MUTEX = definition("""
    name: mutex
    steps:
      - reserve:
          mutex: m
          steps:
            - inside
      - after
""")


def inside_wfids(h):
    return [wi.wfid for wi in dispatched_to(h, "inside")]


def test_two_runs_compete_for_one_mutex(hx):
    h = hx
    h.register("inside", reply=False)
    register_tracers(h, "after")
    a = h.launch(MUTEX).wait()
    b = h.launch(MUTEX).wait()
    assert inside_wfids(h) == [a.wfid]
    assert len(h.pending_for("inside")) == 1
    assert b.status == "running"
    h.reply(only(h.pending_for("inside")))
    assert a.wait().status == "finished"
    assert inside_wfids(h) == [a.wfid, b.wfid]
    h.reply(only(h.pending_for("inside")))
    assert b.wait().status == "finished"
    assert h.store.mutex("m") == (None, [])


def test_three_runs_fifo_handoff_one_inside_at_a_time(hx):
    h = hx
    h.register("inside", reply=False)
    register_tracers(h, "after")
    runs = [h.launch(MUTEX).wait() for _ in range(3)]
    order = []
    while h.pending_for("inside"):
        assert len(h.pending_for("inside")) == 1
        wi = only(h.pending_for("inside"))
        order.append(wi.wfid)
        h.reply(wi)
    assert order == [r.wfid for r in runs]
    assert all(r.wait().status == "finished" for r in runs)


def test_cancel_of_the_holder_hands_the_mutex_to_the_next(hx):
    h = hx
    h.register("inside", reply=False)
    register_tracers(h, "after")
    a, b, c = (h.launch(MUTEX).wait() for _ in range(3))
    a.cancel()
    assert a.status == "cancelled"
    assert inside_wfids(h) == [a.wfid, b.wfid]
    assert only(h.pending_for("inside")).wfid == b.wfid
    h.reply(only(h.pending_for("inside")))
    assert inside_wfids(h) == [a.wfid, b.wfid, c.wfid]


def test_cancel_of_a_waiting_run_leaves_the_queue(hx):
    h = hx
    h.register("inside", reply=False)
    register_tracers(h, "after")
    a, b, c = (h.launch(MUTEX).wait() for _ in range(3))
    b.cancel()
    assert b.status == "cancelled"
    assert inside_wfids(h) == [a.wfid]
    h.reply(only(h.pending_for("inside")))
    assert inside_wfids(h) == [a.wfid, c.wfid]
    h.reply(only(h.pending_for("inside")))
    assert c.wait().status == "finished"
    assert b.wfid not in inside_wfids(h)
    assert h.store.mutex("m") == (None, [])


def test_kill_of_the_holder_hands_the_mutex_to_the_next(h):
    h.register("inside", reply=False)
    register_tracers(h, "after")
    a = h.launch(MUTEX).wait()
    b = h.launch(MUTEX).wait()
    a.kill()
    assert inside_wfids(h) == [a.wfid, b.wfid]


def test_kill_of_a_waiting_run_leaves_the_queue(h):
    h.register("inside", reply=False)
    register_tracers(h, "after")
    a, b, c = (h.launch(MUTEX).wait() for _ in range(3))
    b.kill()
    h.reply(only(h.pending_for("inside")))
    assert inside_wfids(h) == [a.wfid, c.wfid]


def test_different_mutexes_do_not_block_each_other(h):
    h.register("inside", reply=False)
    register_tracers(h, "after")
    src = definition("""
        name: mutex
        steps:
          - reserve:
              mutex: "repo-${repo}"
              steps:
                - inside
    """)
    a1 = h.launch(src, fields={"repo": "a"}).wait()
    b1 = h.launch(src, fields={"repo": "b"}).wait()
    a2 = h.launch(src, fields={"repo": "a"}).wait()
    # the order of dispatches shows the FIFO hand-off
    assert inside_wfids(h) == [a1.wfid, b1.wfid]
    h.reply(only(dispatched_to(h, "inside", a1)))
    assert inside_wfids(h) == [a1.wfid, b1.wfid, a2.wfid]


def test_harness_pending_holds_the_same_step_of_two_runs(h):
    h.register("inside", reply=False)
    a = h.launch(producer("inside")).wait()
    b = h.launch(producer("inside")).wait()
    assert sorted(wi.wfid for wi in h.pending_for("inside")) == sorted([a.wfid, b.wfid])
    b.cancel()
    assert [wi.wfid for wi in h.pending_for("inside")] == [a.wfid]


def test_two_branches_of_one_run_share_the_mutex(h):
    h.register("a", reply=False)
    h.register("b", reply=False)
    run = h.launch(
        definition("""
        name: t
        steps:
          - concurrence:
              - reserve:
                  mutex: m
                  steps: [a]
              - reserve:
                  mutex: m
                  steps: [b]
    """)
    ).wait()
    assert [wi.participant_name for wi in h.pending.values()] == ["a"]
    h.reply(only(h.pending_for("a")))
    assert [wi.participant_name for wi in h.pending.values()] == ["b"]
    h.reply(only(h.pending_for("b")))
    assert run.wait().status == "finished"


def test_the_mutex_is_held_across_several_steps(h):
    h.register("one", reply=False)
    h.register("two", reply=False)
    src = definition("""
        name: t
        steps:
          - reserve:
              mutex: m
              steps:
                - one
                - two
    """)
    a = h.launch(src).wait()
    b = h.launch(src).wait()
    h.reply(only(h.pending_for("one")))
    assert [wi.wfid for wi in h.pending.values()] == [a.wfid]
    h.reply(only(h.pending_for("two")))
    assert a.wait().status == "finished"
    assert only(h.pending_for("one")).wfid == b.wfid


def test_a_run_in_error_inside_the_reserve_keeps_the_mutex(h):
    # engine choice (ruote): the failed step stays in place, so the mutex
    # stays held until the error is resolved or the run cancelled
    calls = []

    def inside(wi):
        calls.append(wi.wfid)
        if len(calls) == 1:
            raise RuntimeError("boom")

    h.register("inside", inside)
    register_tracers(h, "after")
    a = h.launch(MUTEX).wait()
    b = h.launch(MUTEX).wait()
    assert a.status == "error"
    assert calls == [a.wfid]
    a.cancel()
    assert b.wait().status == "finished"
    assert calls == [a.wfid, b.wfid]


def test_a_replayed_step_inside_the_reserve_still_holds_the_mutex(h):
    calls = []

    def inside(wi):
        calls.append(wi.wfid)
        if len(calls) == 1:
            raise RuntimeError("boom")

    h.register("inside", inside)
    register_tracers(h, "after")
    a = h.launch(MUTEX).wait()
    b = h.launch(MUTEX).wait()
    a.replay()
    assert a.wait().status == "finished"
    assert b.wait().status == "finished"
    assert calls == [a.wfid, a.wfid, b.wfid]


def test_timeout_while_waiting_for_the_mutex_leaves_the_queue(h):
    h.register("inside", reply=False)
    register_tracers(h, "after")
    a = h.launch(MUTEX).wait()
    b = h.launch(
        definition("""
        name: impatient
        steps:
          - reserve:
              mutex: m
              steps:
                - inside
            timeout: 5s
          - after
    """)
    ).wait()
    c = h.launch(MUTEX).wait()
    h.advance(5)
    assert b.wait().status == "finished"
    assert "__timed_out__" in b.fields
    h.reply(only(h.pending_for("inside")))
    assert inside_wfids(h) == [a.wfid, c.wfid]


def test_cancel_of_the_reserve_step_releases_the_mutex(h):
    h.register("inside", reply=False)
    register_tracers(h, "after")
    a = h.launch(MUTEX).wait()
    b = h.launch(MUTEX).wait()
    a.cancel("0_0")
    assert a.wait().status == "finished"
    assert inside_wfids(h) == [a.wfid, b.wfid]


def test_listen_upon_reply_waits_for_the_reply_to_be_applied_after_resume(h):
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta, upon: reply}")).wait()
    b = h.launch(producer()).wait()
    b.pause()
    h.reply(only(h.pending_for("beta")))
    assert a.status == "running"  # B has not applied the reply yet
    b.resume()
    assert b.wait().status == "finished"
    assert a.wait().status == "finished"


def test_listen_upon_reply_is_not_woken_by_a_held_reply_that_turns_out_stale(h):
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta, upon: reply}")).wait()
    b = h.launch(
        definition("""
        name: producer
        steps:
          - participant: beta
            timeout: 5s
    """)
    ).wait()
    b.pause()
    h.advance(6)  # the timeout is held
    late = only(h.pending_for("beta"))
    late.fields["late"] = True
    h.reply(late)  # held after the timeout: stale once applied
    b.resume()
    assert b.wait().status == "finished"
    assert "late" not in b.fields
    assert a.status == "running"
    assert h.trace == []


def test_a_waiting_reserve_cancelled_by_its_concurrence_leaves_the_queue(h):
    h.register("inside", reply=False)
    register_tracers(h, "fast")
    src = definition("""
        name: t
        steps:
          - concurrence:
              count: 1
              branches:
                - sequence:
                    - wait: 1s
                    - fast
                - reserve:
                    mutex: m
                    steps: [inside]
    """)
    a = h.launch(src).wait()
    b = h.launch(src).wait()
    assert inside_wfids(h) == [a.wfid]
    h.advance(1)
    assert a.wait().status == "finished"
    assert b.wait().status == "finished"
    assert inside_wfids(h) == [a.wfid]
    assert h.store.mutex("m") == (None, [])


def test_an_error_handled_on_the_reserve_releases_the_mutex(hx):
    h = hx
    calls = []

    def inside(wi):
        calls.append(wi.wfid)
        raise RuntimeError("inside failed")

    h.register("inside", inside)
    src = definition("""
        name: t
        steps:
          - reserve:
              mutex: m
              steps: [inside]
            on_error: pass
    """)
    a = h.launch(src).wait()
    b = h.launch(src).wait()
    assert a.status == "finished"
    assert b.status == "finished"
    assert calls == [a.wfid, b.wfid]
    assert h.store.mutex("m") == (None, [])


# ---------------------------------------------------------------------------
# with pause


def test_a_mutex_granted_to_a_paused_run_waits_for_resume(h):
    h.register("inside", reply=False)
    register_tracers(h, "after")
    a = h.launch(MUTEX).wait()
    b = h.launch(MUTEX).wait()
    b.pause()
    h.reply(only(h.pending_for("inside")))
    assert a.wait().status == "finished"
    assert inside_wfids(h) == [a.wfid]
    b.resume()
    assert inside_wfids(h) == [a.wfid, b.wfid]


def test_kill_of_a_paused_run_granted_the_mutex_hands_it_on(h):
    h.register("inside", reply=False)
    register_tracers(h, "after")
    a, b, c = (h.launch(MUTEX).wait() for _ in range(3))
    b.pause()
    h.reply(only(dispatched_to(h, "inside", a)))
    assert inside_wfids(h) == [a.wfid]
    b.kill()
    assert inside_wfids(h) == [a.wfid, c.wfid]


def test_a_listen_wake_up_for_a_paused_run_waits_for_resume(h):
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta}")).wait()
    a.pause()
    h.launch(producer()).wait()
    assert h.trace == []
    assert not a.ended
    a.resume()
    assert a.wait().status == "finished"
    assert h.trace == ["woke"]


def test_re_apply_of_a_listen_step_listens_once_again(h):
    h.register("beta", reply=False)
    a = h.launch(listener("{to: beta}")).wait()
    a.re_apply("0_0")
    assert len(h.store.listeners()) == 1
    h.launch(producer()).wait()
    assert a.wait().status == "finished"
    assert h.trace == ["woke"]
    assert h.store.listeners() == []


def test_re_apply_of_the_holding_reserve_queues_it_again(h):
    h.register("inside", reply=False)
    register_tracers(h, "after")
    a = h.launch(MUTEX).wait()
    b = h.launch(MUTEX).wait()
    a.re_apply("0_0")
    assert inside_wfids(h) == [a.wfid, b.wfid]
    h.reply(only(dispatched_to(h, "inside", b)))
    assert inside_wfids(h) == [a.wfid, b.wfid, a.wfid]
    assert b.wait().status == "finished"
