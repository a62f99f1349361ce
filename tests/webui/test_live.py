"""Issue 15: the stream of run and step transitions (written by both stores
in the save itself), its fan-out to many clients by one reader
(``webui.live``), ``GET /api/stream``, and the run list and run page that
read it (outcome, current step, durations, filters kept, valid actions,
fields with their real characters)."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from engine.core import states
from engine.engine import Engine
from engine.store import MemoryStore, RedisStore
from tests.conftest import delete_keys
from tests.waiting import wait_for
from tests.webui.conftest import HELLO, WebEnv
from webui.live import Hub, Message, parse_id

pytestmark = pytest.mark.redis

RED = (
    "name: red\nsubprocesses:\n  mark:\n    - set: {status: FAILURE}\n"
    "steps:\n  - error: the build broke\n    on_error: mark\n"
)


class _Drop:
    def dispatch(self, effect: Any) -> None:
        pass

    def cancel(self, effect: Any) -> None:
        pass


@pytest.fixture
def rstore(redis_url: str) -> Iterator[RedisStore]:
    prefix = f"boss-test:{uuid.uuid4().hex}:"
    store = RedisStore(redis_url, prefix=prefix)
    yield store
    delete_keys(store.client, prefix)
    store.close()


def _engine(store: Any) -> Engine:
    engine = Engine(store, dispatcher=_Drop())
    engine.register("alpha")
    engine.register("beta")
    return engine


def _walk(store: Any) -> tuple[str, str]:
    """A run through launch, pause, resume and kill; and a failing one."""
    engine = _engine(store)
    wfid = engine.launch(HELLO, {"project": "kernel"})
    engine.pause(wfid)
    engine.resume(wfid)
    engine.kill(wfid)
    red = engine.launch(RED, {})
    return wfid, red


def _check_walk(rows: list[tuple[str, str, dict[str, Any]]], wfid: str, red: str) -> None:
    mine = [(kind, d["status"], d["outcome"]) for _, kind, d in rows if d["wfid"] == wfid]
    assert mine == [
        ("run", "running", "pending"),
        ("run", "paused", "pending"),
        ("run", "running", "pending"),
        ("run", "killed", "cancelled"),
    ]
    first = next(d for _, _, d in rows if d["wfid"] == wfid)
    assert first["name"] == "hello"
    assert [(p["expid"], p["participant"], p["state"]) for p in first["positions"]] == [
        ("0_0", "alpha", "waiting")
    ]
    last = [d for _, _, d in rows if d["wfid"] == red][-1]
    assert (last["status"], last["outcome"]) == ("finished", "failure")
    assert last["ended_at"] is not None and last["positions"] == []
    ids = [parse_id(i) for i, _, _ in rows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_redis_store_appends_a_transition_per_change_in_the_save(rstore: RedisStore) -> None:
    wfid, red = _walk(rstore)
    rows = rstore.transitions()
    _check_walk(rows, wfid, red)
    # the outcome and the summary are in the run's hash, for the run list
    assert rstore.client.hget(f"{rstore.prefix}run:{red}", "outcome") == b"failure"
    assert rstore.run_summaries([red])[red]["outcome"] == "failure"
    # a save that changes nothing the summary says is no transition
    state, version = rstore.load_run(wfid)
    state["updated_at"] += 1
    rstore.save_run(state, version)
    assert len(rstore.transitions()) == len(rows)
    # resume after an id
    assert rstore.transitions(rows[-2][0]) == rows[-1:]


def test_the_stream_is_capped_and_can_be_off(redis_url: str, rstore: RedisStore) -> None:
    capped = RedisStore(rstore.client, prefix=rstore.prefix, transitions_maxlen=10)
    engine = _engine(capped)
    wfid = engine.launch(HELLO, {})
    for _ in range(300):
        engine.pause(wfid)
        engine.resume(wfid)
    # MAXLEN ~ trims whole macro nodes: far fewer than the 601 written
    assert rstore.client.xlen(capped.transitions_key) < 300
    off = RedisStore(rstore.client, prefix=rstore.prefix + "off:", transitions_maxlen=0)
    _engine(off).launch(HELLO, {})
    assert not rstore.client.exists(off.transitions_key)
    assert off.run_summaries(["nope"]) == {"nope": None}


def test_memory_store_keeps_the_same_stream_when_asked() -> None:
    store = MemoryStore(transitions=100)
    wfid, red = _walk(store)
    rows = store.transitions()
    _check_walk(rows, wfid, red)
    assert store.transitions(rows[-2][0]) == rows[-1:]
    # off by default (the harness and the benchmark do not pay for it)
    plain = MemoryStore()
    _walk(plain)
    assert plain.transitions() == []


# -- the hub: one reader, many clients -------------------------------------------------


def _entry(store: RedisStore, wfid: str, n: int) -> str:
    """Append a transition directly (as the save script does)."""
    d = {"wfid": wfid, "name": "x", "status": "running", "outcome": "pending", "n": n}
    raw = store.client.xadd(store.transitions_key, {"kind": "step", "data": json.dumps(d)})
    return raw.decode()


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "boss-live-reader"]


def test_one_reader_fans_out_to_many_clients(rstore: RedisStore) -> None:
    hub = Hub(rstore.client, rstore.transitions_key, block_ms=200)
    before = len(_reader_threads())
    try:
        subs = [hub.subscribe() for _ in range(100)]
        only_b = hub.subscribe("b")
        assert hub.reading and len(_reader_threads()) == before + 1
        first = _entry(rstore, "a", 1)
        _entry(rstore, "b", 2)
        for sub in subs:
            got = [sub.queue.get(timeout=5), sub.queue.get(timeout=5)]
            assert [m.wfid for m in got] == ["a", "b"]
            assert got[0].text.startswith(f"id: {first}\nevent: transition\ndata: ")
            data = json.loads(got[0].text.split("data: ", 1)[1])
            assert data["id"] == first and data["kind"] == "step" and data["at"] > 0
        assert only_b.queue.get(timeout=5).wfid == "b" and only_b.queue.empty()
        for sub in [*subs, only_b]:
            hub.unsubscribe(sub)
        # the last client gone, the reader stops (and starts again on demand)
        wait_for(lambda: not hub.reading, 5, "the reader to stop")
    finally:
        hub.close()


def test_a_slow_client_is_dropped_and_resumes_by_last_event_id(rstore: RedisStore) -> None:
    hub = Hub(rstore.client, rstore.transitions_key, block_ms=200, heartbeat=0.2)
    got: list[str] = []
    done = threading.Event()

    def fast() -> None:
        for chunk in hub.stream(None):
            got.extend(re.findall(r"^id: (\S+)$", chunk, re.M))
            if len(got) == 40:
                done.set()

    try:
        slow = hub.subscribe(queue_size=3)
        threading.Thread(target=fast, daemon=True).start()
        wait_for(lambda: hub.subscribers == 2, 5, "both clients")
        ids = [_entry(rstore, "w", i) for i in range(40)]
        assert done.wait(10), f"the fast client got {len(got)} of 40"
        assert got == ids  # not held up by the slow one
        assert slow.dropped.is_set() and hub.dropped == 1
        seen = [slow.queue.get_nowait().text for _ in range(3)]
        last = re.findall(r"^id: (\S+)$", seen[-1], re.M)[0]
        assert last == ids[2]
        # it reconnects with Last-Event-ID = the last one it got: the rest
        # comes from the stream itself, then live ones
        stream = hub.stream(last)
        assert next(stream).startswith("retry:")
        resumed = [re.findall(r"^id: (\S+)$", next(stream), re.M)[0] for _ in range(37)]
        assert resumed == ids[3:]
        later = _entry(rstore, "w", 99)
        chunk = next(stream)
        while chunk.startswith(":"):  # a heartbeat
            chunk = next(stream)
        assert chunk.startswith(f"id: {later}\n")
        stream.close()
    finally:
        hub.close()


def test_a_client_that_missed_trimmed_entries_is_told_to_reset(rstore: RedisStore) -> None:
    ids = [_entry(rstore, "w", i) for i in range(5)]
    rstore.client.xtrim(rstore.transitions_key, maxlen=2, approximate=False)
    hub = Hub(rstore.client, rstore.transitions_key, block_ms=200)
    try:
        stream = hub.stream(ids[0])
        assert next(stream).startswith("retry:")
        assert next(stream).startswith("event: reset")
        assert next(stream).startswith(f"id: {ids[3]}\n")
        stream.close()
    finally:
        hub.close()


def test_message_from_entry() -> None:
    m = Message.from_entry(b"1700000000000-3", {b"kind": b"run", b"data": b'{"wfid": "w"}'})
    assert m.key == (1700000000000, 3) and m.wfid == "w"
    assert json.loads(m.text.split("data: ")[1])["at"] == 1700000000.0
    assert parse_id("12-3") == (12, 3) and parse_id("nope") is None and parse_id(None) is None


# -- GET /api/stream --------------------------------------------------------------------


def _read_ids(resp: Any, n: int) -> list[str]:
    out: list[str] = []
    for chunk in resp.response:
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        out += re.findall(r"^id: (\S+)$", text, re.M)
        if len(out) >= n:
            break
    return out


def test_stream_endpoint_resumes_and_filters(web: WebEnv) -> None:
    a = web.launch_as("alice")
    b = web.launch_as("alice")
    web.engine.pause(a)
    rows = web.store.transitions()
    assert [d["wfid"] for _, _, d in rows] == [a, b, a]
    c = web.client()
    resp = c.get("/api/stream", headers={"Last-Event-ID": rows[0][0]}, buffered=False)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
    assert _read_ids(resp, 2) == [rows[1][0], rows[2][0]]
    resp.close()
    resp = c.get(f"/api/stream?wfid={a}&last_id={rows[0][0]}", buffered=False)
    assert _read_ids(resp, 1) == [rows[2][0]]
    resp.close()
    web.app.extensions["boss_live"].close()


def test_stream_follows_the_run_list_access_rule(
    redis_url: str, embedded_broker_url: str, tmp_path: Any
) -> None:
    from tests.webui.conftest import make_env
    from webui.settings import WebConfig

    prefix = f"boss-test:{uuid.uuid4().hex}:"
    env = make_env(
        tmp_path,
        redis_url,
        embedded_broker_url,
        prefix,
        WebConfig(secret_key="s", anonymous=False),
    )
    try:
        r = env.client().get("/api/stream")
        assert r.status_code == 401
        assert env.client().get("/api/runs").status_code == 401
    finally:
        delete_keys(env.store.client, prefix)
        env.store.close()


# -- the run list and the run page ----------------------------------------------------


def test_run_list_shows_outcome_step_times_and_keeps_filters(web: WebEnv) -> None:
    waiting = web.launch_as("alice", fields={"project": "kernel"})
    red = web.launch_as("alice", RED, {"project": "kernel"})
    c = web.client()
    d = c.get("/api/runs").json
    rows = {r["wfid"]: r for r in d["runs"]}
    assert rows[red]["outcome"] == "failure" and rows[red]["ended_at"]
    assert rows[waiting]["positions"] == [
        {"expid": "0_0", "participant": "alpha", "state": "waiting"}
    ]
    html = c.get("/runs?project=kernel&name=&limit=1").data.decode()
    row = re.search(rf'<tr data-wfid="{red}".*?</tr>', html, re.S).group(0)
    assert 'class="badge st-failed outcome"' in row and ">failed<" in row
    stamp = r'<time datetime="\d{4}-\d\d-\d\dT[\d:]+Z" title="[\d :-]+ UTC" data-rel>'
    assert re.search(stamp, row)
    # every status button and the pager keep the other filters
    assert 'href="/runs?project=kernel&amp;limit=1&amp;status=error"' in html
    assert 'id="next"' in html and "/runs?project=kernel&amp;limit=1&amp;offset=1" in html
    # every filter field has a label
    for field_id in ("f-status", "f-outcome", "f-name", "f-project", "f-field"):
        assert f'<label for="{field_id}"' in html
    assert " style=" not in html and "<script>" not in html
    # outcome filter ("failed" is failure)
    d = c.get("/api/runs?outcome=failed").json
    assert [r["wfid"] for r in d["runs"]] == [red]
    d = c.get("/api/runs?outcome=pending&project=kernel").json
    assert [r["wfid"] for r in d["runs"]] == [waiting]
    assert c.get("/api/runs?outcome=purple").status_code == 400


def test_run_page_offers_only_valid_actions(web: WebEnv) -> None:
    c = web.client("alice")

    def offered(wfid: str) -> set[str]:
        html = c.get(f"/runs/{wfid}").data.decode()
        return set(re.findall(r'id="action-(pause|resume|cancel|kill)"', html))

    running = web.launch_as("alice")
    assert offered(running) == {"pause", "cancel", "kill"}
    web.engine.pause(running)
    assert web.engine.status(running) == states.PAUSED
    assert offered(running) == {"resume", "cancel", "kill"}
    broken = web.launch_as("alice", "name: broken\nsteps:\n  - error: boom\n")
    assert web.engine.status(broken) == states.ERROR
    assert offered(broken) == {"cancel", "kill"}
    web.engine.kill(running)
    assert offered(running) == set()


def test_run_page_shows_field_values_with_their_real_characters(web: WebEnv) -> None:
    from engine.trace.activity import activity_id

    wfid = web.launch_as(
        "alice", fields={"title": "a<b> & 'c'", "n": 3, "ok": True, "none": None, "s": "3"}
    )
    html = web.client().get(f"/runs/{wfid}").data.decode()
    fields = html[html.index('id="fields"') :]
    assert "\\u003c" not in fields and "\\u0026" not in fields
    assert '<code class="v v-str">&#34;a&lt;b&gt; &amp; &#39;c&#39;&#34;</code>' in fields
    assert '<code class="v v-num">3</code>' in fields
    assert '<code class="v v-str">&#34;3&#34;</code>' in fields
    assert '<code class="v v-bool">true</code>' in fields
    assert '<code class="v v-null">null</code>' in fields
    assert f'href="/trace/events/{activity_id(wfid, None, "triggered")}"' in html
    assert " style=" not in html
