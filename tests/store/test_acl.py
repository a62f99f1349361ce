"""The store's ACL users (``engine.store.acl``, ``boss store users``) on the
machine's real Redis (``$BOSS_TEST_REDIS_URL``, else 127.0.0.1:6379): every
user made here has a name starting with a prefix unique to the test and is
deleted when it ends; every key is under a unique key prefix."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from bossapp.cli import main as boss_main
from engine.store import RedisStore, acl
from engine.store.steplogs import StepLogs
from engine.testing import ProcessHarness
from tests.conftest import delete_keys
from tests.waiting import wait_for

pytestmark = pytest.mark.redis

MakeUser = Callable[..., redis.Redis]


@pytest.fixture
def admin(machine_redis_url: str) -> Iterator[redis.Redis]:
    """An administrator's client (skips on a server without ACL selectors)."""
    client = redis.Redis.from_url(machine_redis_url)
    version = client.info("server").get("redis_version", "0")
    if int(str(version).split(".")[0]) < 7:
        client.close()
        pytest.skip(f"Redis {version}: ACL key permissions (%R~) need Redis/Valkey 7")
    yield client
    client.close()


@pytest.fixture
def user_prefix(admin: redis.Redis) -> Iterator[str]:
    """A prefix of ACL user names unique to this test; its users are
    deleted at the end."""
    prefix = f"boss-test-{uuid.uuid4().hex[:10]}-"
    yield prefix
    for user in admin.execute_command("ACL", "USERS"):
        name = user.decode() if isinstance(user, bytes) else user
        if name.startswith(prefix):
            admin.execute_command("ACL", "DELUSER", name)


@pytest.fixture
def prefix(admin: redis.Redis) -> Iterator[str]:
    p = f"boss-test:{uuid.uuid4().hex[:10]}:"
    yield p
    delete_keys(admin, p)


@pytest.fixture
def make_user(
    admin: redis.Redis, machine_redis_url: str, prefix: str, user_prefix: str
) -> Iterator[MakeUser]:
    """``make_user(role)``: the role's user made on the server, and a
    client logged in as it."""
    clients: list[redis.Redis] = []

    def make(name: str, **kwargs: object) -> redis.Redis:
        r = acl.role(name, prefix, user_prefix=user_prefix, **kwargs)  # type: ignore[arg-type]
        password = acl.new_password()
        acl.apply_role(admin, r, password)
        client = redis.Redis.from_url(acl.url_with_user(machine_redis_url, r.user, password))
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


def _refused(call: Callable[[], object]) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError):
        call()


def _event(eid: str) -> dict[str, object]:
    return {
        "meta": {
            "id": eid,
            "type": "EiffelActivityTriggeredEvent",
            "version": "4.0.0",
            "time": int(time.time() * 1000),
        },
        "data": {"name": "acl"},
        "links": [],
    }


PROCESS = """
name: acl
steps:
  - alpha
  - wait: 1m
  - reserve:
      mutex: m
      steps:
        - bravo
"""


# -- the rules -------------------------------------------------------------------------


def test_rules_follow_the_prefix_and_escape_it() -> None:
    assert acl.engine_rules("b[1]:")[0] == "~b\\[1\\]:*"
    web = acl.web_rules("boss:")
    assert "%R~boss:*" in web and "%RW~boss:web:*" in web
    assert acl.participant_rules("boss:", "obsticket")[0] == "~boss:obsticket:*"
    with pytest.raises(ValueError, match="does not use the store"):
        acl.role("participant:build", "boss:")
    assert acl.engine_rules("boss:", broker=True)[:2] == ["allkeys", "allchannels"]


def test_urls() -> None:
    assert acl.strip_password("redis://:s3cret@store:6379/0") == "redis://store:6379/0"
    assert (
        acl.strip_password("unix:///run/v.sock?db=2&password=s3cret") == "unix:///run/v.sock?db=2"
    )
    assert (
        acl.url_with_user("rediss://old:pw@store:6380/1", "boss-web", "p/w")
        == "rediss://boss-web:p%2Fw@store:6380/1"
    )


def test_the_key_patterns_are_the_ones_the_code_writes(prefix: str) -> None:
    """WEB_KEYS and PARTICIPANT_KEYS against the modules that build the keys."""
    import fnmatch
    from unittest import mock

    from engine.reporters import Jobs
    from participants.standard.obsticket import ObsTicket
    from webui.health import Health
    from webui.runindex import RunIndex
    from webui.sessions import SessionStore
    from webui.users import AuditLog, RefusalCounter, Users

    client = mock.MagicMock()

    def web(key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, prefix + p) for p in acl.WEB_KEYS)

    sessions = SessionStore(client, prefix, 60)
    for key in (
        Users(client, prefix).key,
        RefusalCounter(client, prefix).key,
        AuditLog(client, prefix, 10).key,
        sessions._key("sid"),
        sessions._user_key("alice"),
        RunIndex(client, prefix).k + "owner",
        Health(client, prefix, None).k + "total",
        f"{prefix}web:limits:LIMITER/x",  # webui.app's limiter key_prefix
    ):
        assert web(key), key
    ticket = ObsTicket.__new__(ObsTicket)
    ticket.prefix = prefix
    patterns = [prefix + p for p in acl.PARTICIPANT_KEYS["obsticket"]]
    assert any(fnmatch.fnmatchcase(ticket.key("home:x"), p) for p in patterns)
    jobs = Jobs(client, prefix)
    patterns = [prefix + p for p in acl.PARTICIPANT_KEYS["report"]]
    for key in (jobs.k + "job:w|start|status", jobs.k + "due"):
        assert any(fnmatch.fnmatchcase(key, p) for p in patterns), key


# -- the users on the server -----------------------------------------------------------


def test_the_engine_user_runs_a_whole_run(make_user: MakeUser, prefix: str) -> None:
    client = make_user("engine")
    store = RedisStore(client, prefix=prefix)
    with ProcessHarness(store=store) as h:
        h.register("alpha", lambda wi: h.trace.append("alpha"))
        h.register("bravo", lambda wi: h.trace.append("bravo"))
        run = h.launch(PROCESS)
        h.wait_until(lambda: run.status != "running" or h.trace == ["alpha"], timeout=30)
        h.advance(120)
        h.wait_until(lambda: run.status == "finished", timeout=30)
    assert h.trace == ["alpha", "bravo"]
    assert [s.wfid for s in store.list_runs()] == [run.wfid]
    # what else the workers write: heartbeats, step logs, the graph
    store.engine_heartbeat("w1", 10, {"host": "h"})
    assert [e["id"] for e in store.engines()] == ["w1"]
    from engine.trace import Graph

    graph = Graph(client, prefix=prefix + "g:")
    eid = str(uuid.uuid4())
    graph.ingest([_event(eid)])
    assert graph.get_many([eid])[0] is not None
    logs = StepLogs(client, prefix)
    batch = {"wfid": run.wfid, "step": "0_0", "participant": "alpha", "job": "j1", "seq": 0}
    batch["lines"] = [["2026-01-01T00:00:00Z", "info", "hello"], ["t", "info", "end"]]
    assert logs.write([json.dumps(batch)]) == (2, [])
    assert [line.text for line in logs.read(run.wfid)[0]] == ["hello", "end"]
    # the admin commands it needs, and none it does not
    assert client.info("server")
    assert client.execute_command("WAIT", 0, 0) == 0
    _refused(lambda: client.flushdb())
    _refused(lambda: client.config_get("maxmemory"))
    _refused(lambda: client.set("elsewhere", "1"))


def test_the_web_user_reads_but_writes_only_its_keys(make_user: MakeUser, prefix: str) -> None:
    from engine.trace import Graph
    from webui.runindex import RunIndex
    from webui.sessions import SessionStore
    from webui.users import Users

    engine = RedisStore(make_user("engine"), prefix=prefix)
    with ProcessHarness(store=engine) as h:
        h.register("alpha", lambda wi: None)
        h.register("bravo", lambda wi: None)
        run = h.launch(PROCESS)
        h.wait_until(lambda: run.status == "running", timeout=30)
    eid = str(uuid.uuid4())
    Graph(engine.client, prefix=prefix + "g:").ingest([_event(eid)])
    engine.engine_heartbeat("gone", 0.001, {})
    # its key expires a millisecond later, by the server's clock: wait for it
    # (a loaded server has been seen to answer MGET with it once)
    wait_for(lambda: not engine.engine_alive("gone"), 10, "the gone worker's heartbeat expires")

    web_client = make_user("web")
    web = RedisStore(web_client, prefix=prefix)
    assert web.load_run(run.wfid) is not None
    assert [s.wfid for s in web.list_runs()] == [run.wfid]  # a script: EVALSHA_RO
    assert web.count_runs()["running"] == 1
    assert web.run_summaries([run.wfid])[run.wfid] is not None
    assert web.engines() == []  # the gone worker: not pruned by the web, not shown
    graph = Graph(web_client, prefix=prefix + "g:")
    assert graph.get_many([eid])[0] is not None and graph.chain(eid)
    index = RunIndex(web_client, prefix)
    assert [s.wfid for s in index.page(web).runs] == [run.wfid]
    Users(web_client, prefix).add("alice", "a-long-password")
    assert SessionStore(web_client, prefix, 60).create("alice")
    index.set_owner(run.wfid, "alice")
    # a run is the engine's
    key = f"{prefix}run:{run.wfid}"
    _refused(lambda: web_client.hset(key, "status", "finished"))
    _refused(lambda: web_client.delete(key))
    _refused(lambda: web.delete_run(run.wfid))
    _refused(lambda: web_client.zadd(f"{prefix}timers", {"t": 0}))
    _refused(lambda: web_client.info())


def test_a_participant_user_has_its_keys_only(make_user: MakeUser, prefix: str) -> None:
    from participants.standard.obsticket import ObsTicket

    engine = RedisStore(make_user("engine"), prefix=prefix)
    with ProcessHarness(store=engine) as h:
        h.register("alpha", lambda wi: None)
        run = h.launch(PROCESS)
        h.wait_until(lambda: run.status == "running", timeout=30)

    ticket = ObsTicket.__new__(ObsTicket)
    ticket.prefix = prefix
    ticket.client = make_user("obsticket")
    ticket.ttl = 0
    key = ticket.key("home:x")
    assert ticket.client.set(key, '{"holder": "w1"}', nx=True)
    assert ticket.holder("home:x") == {"holder": "w1"}
    assert ticket.client.eval(
        "local v = redis.call('GET', KEYS[1]) "
        "if cjson.decode(v)['holder'] == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end "
        "return 0",
        1,
        key,
        "w1",
    )
    run_key = f"{prefix}run:{run.wfid}"
    _refused(lambda: ticket.client.hget(run_key, "state"))
    _refused(lambda: ticket.client.hset(run_key, "status", "finished"))
    _refused(lambda: ticket.client.get(f"{prefix}reporters:due"))
    _refused(lambda: ticket.client.keys("*"))

    from engine.reporters import Jobs

    report = make_user("report")
    jobs = Jobs(report, prefix)
    assert jobs.add({"id": f"{run.wfid}|step:1|status"})
    _refused(lambda: report.hget(run_key, "state"))
    _refused(lambda: report.delete(f"{prefix}reporters:due"))


# -- boss store users ------------------------------------------------------------------


def _boss(tmp_path: Path, url: str, prefix: str, *args: str) -> str:
    ini = tmp_path / "boss.ini"
    ini.write_text(f"[boss]\nredis_url = {url}\nkey_prefix = {prefix}\nredis_admin_url = {url}\n")
    result = CliRunner().invoke(boss_main, ["-c", str(ini), "store", "users", *args])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def _getuser(admin: redis.Redis, user: str) -> object:
    return admin.execute_command("ACL", "GETUSER", user)


def test_print_is_what_apply_makes(
    admin: redis.Redis, machine_redis_url: str, prefix: str, user_prefix: str, tmp_path: Path
) -> None:
    base = ["--user-prefix", user_prefix]
    printed = _boss(tmp_path, machine_redis_url, prefix, "--print", *base).splitlines()
    roles = acl.roles(prefix, user_prefix=user_prefix)
    assert [line.split()[2] for line in printed] == [r.user for r in roles]
    assert all("PASSWORD" in line for line in printed)
    passwords = [f"--password={r.short}=pw-{r.short}" for r in roles]
    applied = _boss(tmp_path, machine_redis_url, prefix, "--apply", *base, *passwords)
    urls = dict(line.split(": redis_url = ") for line in applied.splitlines() if " = " in line)
    assert set(urls) == {r.name for r in roles}
    made = {r.user: _getuser(admin, r.user) for r in roles}
    # the printed lines, run by hand with the same passwords, make the same users
    for r in roles:
        admin.execute_command("ACL", "DELUSER", r.user)
    for line, r in zip(printed, roles, strict=True):
        words = line.split()[2:]
        words = [f">pw-{r.short}" if w == f">{acl.placeholder(r)}" else w for w in words]
        admin.execute_command("ACL", "SETUSER", *words)
    assert {r.user: _getuser(admin, r.user) for r in roles} == made
    # the URLs log in as their users
    client = redis.Redis.from_url(urls["engine"])
    try:
        user = client.execute_command("ACL", "WHOAMI")
        assert (user.decode() if isinstance(user, bytes) else user) == f"{user_prefix}engine"
    finally:
        client.close()
    removed = _boss(tmp_path, machine_redis_url, prefix, "--remove", *base)
    assert removed.count("removed") == len(roles)
    assert all(_getuser(admin, r.user) is None for r in roles)
