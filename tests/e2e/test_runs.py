"""Runs through real engine workers and participant processes, on RabbitMQ
and on the embedded Valkey broker (issue 3, "What it must show")."""

from __future__ import annotations

import json
from collections import Counter

from engine.core import states
from tests.e2e.conftest import System
from tests.waiting import wait_for


def steps(n: int, participant: str = "bump") -> str:
    return "name: seq\nsteps:\n" + "".join(f"  - {participant}: {{tag: s{i}}}\n" for i in range(n))


def test_a_ten_step_process(system: System) -> None:
    system.worker()
    system.participant("bump", "Bump")
    wfid = system.launch(steps(10), {"project": "hello"})
    system.wait_status(wfid)
    fields = system.engine.run(wfid).fields
    assert fields["n"] == 10
    assert fields["trail"] == [f"s{i}" for i in range(10)]
    calls = system.events("call")
    assert len(calls) == 10 and len({c["subid"] for c in calls}) == 10


def test_a_twenty_branch_concurrence(system: System) -> None:
    system.worker()
    system.participant("bump", "Bump", instances=2)
    branches = "".join(f"        - bump: {{tag: b{i}}}\n" for i in range(20))
    wfid = system.launch(
        f"name: fan\nsteps:\n  - concurrence:\n      merge_type: union\n"
        f"      branches:\n{branches}  - bump: {{tag: after}}\n"
    )
    system.wait_status(wfid)
    fields = system.engine.run(wfid).fields
    assert sorted(fields["trail"][:-1]) == sorted(f"b{i}" for i in range(20))
    assert fields["trail"][-1] == "after"
    calls = Counter(c["subid"] for c in system.events("call"))
    assert len(calls) == 21 and set(calls.values()) == {1}
    # both instances of the pool took work
    assert len({c["pid"] for c in system.events("call")}) == 2


def test_a_timeout_cancels_the_step_at_the_participant(system: System) -> None:
    system.worker()
    system.participant("sleeper", "Sleeper")
    system.participant("bump", "Bump")
    # long enough for the sleeper to take the step first on a loaded
    # machine (a cancel that comes first drops the workitem unrun)
    wfid = system.launch(
        "name: slow\nsteps:\n  - sleeper: {seconds: 60}\n    timeout: 5s\n  - bump\n"
    )
    wait_for(
        lambda: [c for c in system.events("call") if c["participant"] == "sleeper"],
        5,
        "the sleeper to take the step before its timeout",
    )
    system.wait_status(wfid, timeout=30)
    fields = system.engine.run(wfid).fields
    assert fields["n"] == 1 and "slept" not in fields
    assert fields["__timed_out__"]["expid"] == "0_0"
    (call,) = [c for c in system.events("call") if c["participant"] == "sleeper"]
    wait_for(lambda: system.events("cancel"), 10, "the cancel at the participant")
    assert system.events("cancel")[0]["subid"] == call["subid"]


def test_a_cancel_reaches_the_participant(system: System) -> None:
    system.worker()
    system.participant("sleeper", "Sleeper")
    wfid = system.launch("name: slow\nsteps:\n  - sleeper: {seconds: 60}\n")
    wait_for(lambda: system.events("call"), 20, "the step to start")
    out = system.boss("cancel", wfid)
    assert f"cancel sent to {wfid}" in out.stdout
    system.wait_status(wfid, states.CANCELLED)
    (cancel,) = wait_for(lambda: system.events("cancel"), 10, "the cancel at the participant")
    assert cancel["subid"] == system.events("call")[0]["subid"]


def test_a_participant_that_raises_leaves_a_replayable_error(system: System) -> None:
    system.worker()
    system.participant("build", "Raise")
    wfid = system.launch("name: b\nsteps:\n  - build\n", {"project": "kernel"})
    system.wait_status(wfid, states.ERROR)
    (err,) = system.engine.run(wfid).errors
    assert err["class"] == "RuntimeError" and err["message"] == "cannot build kernel"
    assert "Traceback" in err["traceback"] and "handlers.py" in err["traceback"]
    shown = json.loads(system.boss("show", wfid, "--json").stdout)
    assert shown["status"] == "error" and shown["errors"][0]["id"] == err["id"]
    listed = json.loads(system.boss("errors", "--json").stdout)
    assert [e["wfid"] for e in listed] == [wfid]
    system.boss("replay", wfid, "--field", "fixed=true")
    system.wait_status(wfid)
    assert system.engine.run(wfid).fields["built"] is True


def test_an_unknown_participant_leaves_a_replayable_error(system: System) -> None:
    system.worker()
    wfid = system.launch("name: u\nsteps:\n  - nobody_home\n")
    system.wait_status(wfid, states.ERROR)
    (err,) = system.engine.run(wfid).errors
    assert err["class"] == "UnknownParticipant" and "nobody_home" in err["message"]
    system.participant("nobody_home", "Bump")
    system.boss("replay", wfid)
    system.wait_status(wfid)
    assert system.engine.run(wfid).fields["n"] == 1


def test_malformed_messages_are_dead_lettered_and_a_malformed_reply_fails_its_step(
    system: System,
) -> None:
    system.worker()
    queue = f"{system.prefix}.holder"
    system.engine.register("holder", queue)  # nobody consumes: the test answers
    wfid = system.launch("name: m\nsteps:\n  - holder\n")
    system.wait_status(wfid, states.RUNNING)

    import kombu

    from engine.broker import participant_queue

    with kombu.Connection(system.broker_url) as conn:
        q = participant_queue(queue)(conn.default_channel)
        q.declare()
        msg = wait_for(lambda: q.get(no_ack=True), 10, "the workitem")
        wi = json.loads(msg.body)
        system.publisher.publish(b"\xff\xfe not json", queue=system.config.engine_queue)
        bad = dict(wi, fields="not an object")
        system.publisher.publish(bad, queue=system.config.engine_queue)

    letters = wait_for(
        lambda: (
            len(json.loads(system.boss("deadletters", "--json").stdout)) == 2
            and json.loads(system.boss("deadletters", "--json").stdout)
        ),
        20,
        "two dead letters",
    )
    reasons = sorted(d["reason"] for d in letters)
    assert reasons[0].startswith("invalid workitem: at fields")
    assert reasons[1].startswith("not UTF-8") or reasons[1].startswith("not JSON")
    assert all(d["queue"] == system.config.engine_queue for d in letters)
    # the run shows the malformed reply as an error of its step, replayable
    system.wait_status(wfid, states.ERROR)
    (err,) = system.engine.run(wfid).errors
    assert err["class"] == "MalformedMessage" and "fields" in err["message"]
    # fix it by re-injecting a corrected body for the (replayed) step
    system.participant("holder", "Bump", queue=queue)
    system.boss("replay", wfid)
    system.wait_status(wfid)
    # and the dead letters can be dropped
    for d in letters:
        system.boss("deadletters", "drop", d["id"])
    assert json.loads(system.boss("deadletters", "--json").stdout) == []


def test_a_participant_registers_itself_at_start_up(system: System) -> None:
    system.worker()
    system.participant("selfreg", "Bump", preregister=False, register="true", regexp="self_.*")
    regs = wait_for(
        lambda: [r for r in system.store.participants() if r.pattern == "self_.*"],
        20,
        "the registration",
    )
    assert regs[0].regex and regs[0].queue == f"{system.prefix}.selfreg"
    wfid = system.launch("name: s\nsteps:\n  - self_a\n  - self_b\n")
    system.wait_status(wfid)
    assert system.engine.run(wfid).fields["trail"] == ["self_a", "self_b"]


def test_the_celery_task_takes_the_same_json(system: System) -> None:
    """For Python clients that prefer Celery: ``boss.apply`` with a launch
    item (or any engine message) as its argument."""
    from celery import Celery

    system.worker()
    system.participant("bump", "Bump")
    app = Celery("client", broker=system.broker_url, set_as_current=False)
    wfid = f"{system.prefix}-celery"
    result = app.send_task(
        "boss.apply",
        args=[{"definition": steps(2), "wfid": wfid}],
        queue=system.config.engine_queue + ".tasks",
    )
    assert result.id
    system.wait_status(wfid)
    assert system.engine.run(wfid).fields["n"] == 2
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(system.config.engine_queue + ".tasks")


def test_a_message_that_keeps_failing_is_dead_lettered_with_its_traceback(system: System) -> None:
    """Not a malformed body: one whose handling raises every time (here a
    run state corrupted in the store). It is tried five times, then set
    aside with the traceback, and the worker goes on."""
    import kombu
    import redis

    from engine.broker import participant_queue

    system.worker()
    queue = f"{system.prefix}.holder"
    system.engine.register("holder", queue)
    wfid = system.launch("name: p\nsteps:\n  - holder\n")
    system.wait_status(wfid, states.RUNNING)
    with kombu.Connection(system.broker_url) as conn:
        q = participant_queue(queue)(conn.default_channel)
        q.declare()
        wi = json.loads(wait_for(lambda: q.get(no_ack=True), 10, "the workitem").body)
    client = redis.Redis.from_url(system.redis_url)
    client.hset(f"{system.config.key_prefix}run:{wfid}", "state", "{not json")
    client.close()
    system.publisher.publish(wi, queue=system.config.engine_queue)
    (letter,) = wait_for(
        lambda: json.loads(system.boss("deadletters", "--json").stdout), 60, "the dead letter"
    )
    assert letter["reason"].startswith("handling failed repeatedly")
    assert "Traceback" in letter["reason"] and "JSONDecodeError" in letter["reason"]
    assert json.loads(letter["body"])["fei"] == wi["fei"]
    # the worker is still at work
    system.participant("bump", "Bump")
    other = system.launch(steps(2))
    system.wait_status(other)
