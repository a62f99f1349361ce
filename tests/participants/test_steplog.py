"""Step logs: the capture in the participant runtime (``participants.steplog``),
the store's writer and reader (``engine.store.steplogs``), and the order of
the last batch and the reply on both brokers (an in-process ``Runtime``)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

import pytest
import redis

from engine.store.steplogs import StepLogs
from participants import Participant, Workitem, steplog
from participants.runtime import Runtime
from tests.participants.conftest import Peer, Setup
from tests.waiting import wait_for

log = logging.getLogger("tests.steplog")


def _job(job: str = "i.1", expid: str = "0_1", **kw: Any) -> steplog.StepLog:
    return steplog.StepLog(wfid="wf-1", expid=expid, participant="p", job=job, **kw)


def _texts(s: steplog.StepLog) -> list[tuple[str, str]]:
    s.take()
    out = []
    for body in s.outbox:
        out += [(level, text) for _t, level, text in json.loads(body)["lines"]]
    return out


@pytest.fixture
def captured() -> Any:
    steplog.install()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    yield
    root.setLevel(level)


def test_print_and_logging_are_captured_and_pass_through(captured: Any, capsys: Any) -> None:
    steplog.install()  # pytest's capsys replaced sys.stdout: wrapped again
    s = _job()

    def work() -> None:
        steplog.attach(s)
        try:
            print("half", end="")
            print(" a line")
            print("to stderr", file=sys.stderr)
            log.info("logged %d", 7)
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("it failed")
            print("no newline at the end", end="")
        finally:
            steplog.detach()
            s.close()

    t = threading.Thread(target=work)
    t.start()
    t.join()
    print("the main thread is not captured")
    lines = _texts(s)
    assert lines[:4] == [
        ("stdout", "half a line"),
        ("stderr", "to stderr"),
        ("INFO", "tests.steplog: logged 7"),
        ("ERROR", lines[3][1]),
    ]
    assert lines[3][1].startswith("tests.steplog: it failed\nTraceback")
    assert "ValueError: boom" in lines[3][1]
    assert lines[4] == ("stdout", "no newline at the end")
    assert len(lines) == 5
    out = capsys.readouterr()
    # everything still reaches the process's own streams, as before
    assert "half a line" in out.out and "the main thread is not captured" in out.out
    assert "to stderr" in out.err


def test_two_concurrent_jobs_never_mix(captured: Any) -> None:
    steplog.install()  # pytest sets its own sys.stdout before each test's call
    a, b = _job("i.1", "0_1"), _job("i.2", "0_2")
    barrier = threading.Barrier(2)

    def work(s: steplog.StepLog, tag: str) -> None:
        steplog.attach(s)
        barrier.wait()
        for i in range(500):
            if i % 2:
                print(f"{tag} print {i}")
            else:
                log.info("%s log %d", tag, i)
        steplog.detach()
        s.close()

    threads = [threading.Thread(target=work, args=(s, t)) for s, t in ((a, "A"), (b, "B"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s, tag, other in ((a, "A", "B"), (b, "B", "A")):
        lines = _texts(s)
        assert len(lines) == 500
        assert all(tag in text and other not in text.split(":")[-1] for _l, text in lines)
        # in the order they were made
        numbers = [int(text.rsplit(" ", 1)[1]) for _l, text in lines]
        assert numbers == list(range(500))


def test_a_stream_handler_on_the_proxy_is_not_taken_twice(captured: Any) -> None:
    steplog.install()
    handler = logging.StreamHandler(sys.stderr)  # the proxy: logging's own writes
    log.addHandler(handler)
    s = _job()

    def work() -> None:
        steplog.attach(s)
        log.info("once")
        log.debug("under the level: not at all")
        steplog.detach()

    try:
        t = threading.Thread(target=work)
        t.start()
        t.join()
    finally:
        log.removeHandler(handler)
    assert _texts(s) == [("INFO", "tests.steplog: once")]


def test_the_participant_bound_says_so_and_counts() -> None:
    s = _job(max_lines=3, max_bytes=10_000)
    for i in range(10):
        s.add("INFO", f"line {i}")
    s.close()
    s.take(final=True)
    batch = json.loads(s.outbox[-1])
    texts = [(level, text) for _t, level, text in batch["lines"]]
    assert texts[:3] == [("INFO", "line 0"), ("INFO", "line 1"), ("INFO", "line 2")]
    assert texts[3][0] == "boss" and "bound" in texts[3][1]
    assert texts[4] == ("boss", "7 more lines (42 characters) of this step were not sent")
    assert batch["final"] is True and batch["seq"] == 0


def test_batches_are_numbered_due_and_final_once() -> None:
    s = _job(interval=60, batch_lines=3)
    assert not s.due() and s.take() is None
    s.add("INFO", "first")
    assert s.due()  # a line after a quiet spell goes at once
    s.take()
    s.add("INFO", "second")
    assert not s.due()  # then at most one batch per ``interval`` seconds...
    s.add("INFO", "third")
    s.add("INFO", "fourth")
    assert s.due()  # ...or ``batch_lines`` lines
    s.take()
    assert s.take(final=True) is not None
    assert s.take(final=True) is None
    assert [json.loads(b)["seq"] for b in s.outbox] == [0, 1, 2]
    assert [json.loads(b)["final"] for b in s.outbox] == [False, False, True]
    # a job that never said anything sends nothing
    quiet = _job()
    quiet.close()
    assert quiet.take(final=True) is None and quiet.outbox == []


# -- the store ------------------------------------------------------------------------------


def test_store_applies_batches_in_order_once_and_bounds_each_step(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    logs = StepLogs(redis_client, key_prefix, ttl=60, max_lines=4, max_bytes=1000)
    s = _job()
    for i in range(3):
        s.add("INFO", f"a{i}")
        s.take()
    for i in range(3):
        s.add("stdout", f"b{i}")
    s.take(final=True)
    b0, b1, b2, b3 = s.outbox
    # the broker gives them late, twice, in the wrong order
    _written, refused = logs.write([b2, b0, b0, b"{not json", b3])
    assert next(why for _b, why in refused).startswith("not JSON")
    assert logs.read("wf-1")[0][-1].text == "a0"  # b2 and b3 wait for b1
    assert logs.open_jobs("wf-1") == 1
    logs.write([b1, b1])
    lines, last = logs.read("wf-1")
    assert [(x.level, x.text) for x in lines] == [
        ("INFO", "a0"),
        ("INFO", "a1"),
        ("INFO", "a2"),
        ("stdout", "b0"),
        (
            "boss",
            "the log of step 0_1 reached its bound (4 lines or 1000 bytes): "
            "later lines are not kept",
        ),
    ]
    assert {x.step for x in lines} == {"0_1"} and {x.job for x in lines} == {"i.1"}
    assert logs.steps("wf-1") == {"0_1": {"lines": 4, "bytes": 8, "dropped": 2}}
    assert logs.open_jobs("wf-1") == 0
    assert 0 < redis_client.ttl(logs.key("wf-1")) <= 60
    assert logs.read("wf-1", after=last) == ([], last)
    assert [x.text for x in logs.read("wf-1", after=lines[1].id)[0]][:1] == ["a2"]
    assert logs.read("wf-1", step="0_2")[0] == []


def test_follow_blocks_for_lines_and_ends_with_the_run(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    logs = StepLogs(redis_client, key_prefix, ttl=60)
    over = threading.Event()
    got: list[str] = []
    s = _job()

    def reader() -> None:
        for lines, _last in logs.follow("wf-1", over=over.is_set, block=0.2, quiet=0.1):
            got.extend(x.text for x in lines)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    s.add("INFO", "one")
    logs.write([s.take()])
    wait_for(lambda: got == ["one"], 5, "the first line")
    s.add("INFO", "two")
    logs.write([s.take(final=True)])
    over.set()
    t.join(5)
    assert not t.is_alive() and got == ["one", "two"]


def test_follow_waits_for_batches_still_on_the_broker(
    redis_client: redis.Redis, key_prefix: str
) -> None:
    """The run ended before the writer stored any of its step's batches (a
    busy writer): no job is open yet, but ``pending()`` says batches wait
    on the broker, so ``follow`` waits for them instead of ending empty."""
    logs = StepLogs(redis_client, key_prefix, ttl=60)
    waiting = threading.Event()
    waiting.set()
    got: list[str] = []
    ended = threading.Event()

    def reader() -> None:
        for lines, _last in logs.follow(
            "wf-1", over=lambda: True, block=0.1, quiet=0.1, grace=20, pending=waiting.is_set
        ):
            got.extend(x.text for x in lines)
        ended.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    # it keeps waiting while the batches are pending (several quiet periods)
    assert not ended.wait(0.5) and got == []
    s = _job()
    s.add("INFO", "late")
    logs.write([s.take(final=True)])
    waiting.clear()
    t.join(5)
    assert not t.is_alive() and got == ["late"]


def test_follow_waits_for_a_job_its_reply_named(redis_client: redis.Redis, key_prefix: str) -> None:
    """The run ended and its reply named the job (``log_job``, noted by the
    engine), but the busy writer holds the job's batches unwritten:
    delivered, not acknowledged, so no queue count shows them. ``follow``
    waits for the job's last batch instead of ending without its lines."""
    logs = StepLogs(redis_client, key_prefix, ttl=60)
    logs.note_sent([("wf-1", "i.1")])
    logs.note_sent([("wf-1", "i.1")])  # a reply delivered twice: noted once
    assert logs.unwritten("wf-1") == 1
    assert 0 < redis_client.ttl(logs.key("wf-1") + ":m") <= 60
    got: list[str] = []
    ended = threading.Event()

    def reader() -> None:
        for lines, _last in logs.follow("wf-1", over=lambda: True, block=0.1, quiet=0.1, grace=20):
            got.extend(x.text for x in lines)
        ended.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    assert not ended.wait(0.5) and got == []  # several quiet periods
    s = _job()
    s.add("INFO", "first")
    logs.write([s.take()])
    wait_for(lambda: got == ["first"], 5, "the first batch's line")
    assert not ended.wait(0.3)  # the job is open: its last batch is still to come
    s.add("INFO", "late")
    logs.write([s.take(final=True)])
    t.join(5)
    assert not t.is_alive() and got == ["first", "late"]
    assert logs.unwritten("wf-1") == 0
    # a job whose last batch was stored before its reply was noted is done
    other = _job("i.2")
    other.add("INFO", "early")
    logs.write([other.take(final=True)])
    logs.note_sent([("wf-1", "i.2")])
    assert logs.unwritten("wf-1") == 0


# -- the runtime: the last lines go before the reply, on both brokers -------------------------


class Chatty(Participant):
    def handle_wi(self, wi: Workitem) -> None:
        for i in range(int(wi.params.get("n", 3))):
            self.log.info("working %d", i)
            print(f"printed {i}")
        if wi.params.get("raise"):
            raise RuntimeError("it broke")
        wi.result = True


def test_the_last_batch_precedes_the_reply(setup: Setup, peer: Peer, captured: Any) -> None:
    # the reply goes where the workitem's reply_to says: to the step-log
    # queue itself here, so the broker keeps the order they were sent in
    runtime = Runtime(setup.ini(participant={"code": ""}), handler=Chatty())
    logs_queue = runtime.config.boss.step_log_queue
    peer.declare(logs_queue)
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(runtime.run()), daemon=True)
    thread.start()
    try:
        assert runtime.ready.wait(15)
        for params in ({"n": 400}, {"n": 2, "raise": True}):
            wi = setup.workitem(params=params)
            t0 = time.monotonic()
            peer.publish(setup.queue, wi, reply_to=logs_queue)
            got = peer.collect_until(
                logs_queue, lambda ms: any("fei" in m for m in ms), what="the reply"
            )
            elapsed = time.monotonic() - t0
            assert "fei" in got[-1] and all("fei" not in m for m in got[:-1])
            batches = got[:-1]
            assert [b["seq"] for b in batches] == list(range(len(batches)))
            assert batches[-1]["final"] is True and not any(b["final"] for b in batches[:-1])
            texts = [text for b in batches for _t, _l, text in b["lines"]]
            n = params["n"]
            assert [x for x in texts if x.startswith("printed")] == [
                f"printed {i}" for i in range(n)
            ]
            assert sum("working" in x for x in texts) == n
            assert {b["step"] for b in batches} == {wi["fei"]["expid"]}
            assert {b["wfid"] for b in batches} == {wi["fei"]["wfid"]}
            if params.get("raise"):
                assert got[-1]["error"]["class"] == "RuntimeError"
                assert any("handler failed" in x for x in texts)
            # the reply names the job whose batches went before it
            assert got[-1]["log_job"] == batches[-1]["job"]
            assert elapsed < 15
        # a step that logged nothing sent no batch, and its reply names none
        wi = setup.workitem(params={"n": 0})
        peer.publish(setup.queue, wi, reply_to=logs_queue)
        [reply] = peer.collect(logs_queue)
        assert reply["fei"] == wi["fei"] and "log_job" not in reply
    finally:
        runtime.stop()
        thread.join(15)
    assert status == [0]


def test_the_participant_tester_shows_the_step_log() -> None:
    from participants.testing import make_workitem, run_participant

    reply = run_participant(Chatty(), make_workitem(params={"n": 2}))
    assert reply.replied
    assert [x for x in reply.log if x[0] == "stdout"] == [
        ("stdout", "printed 0"),
        ("stdout", "printed 1"),
    ]
