"""Shared fixtures.

Servers (session scope):

* ``embedded_url``: an embedded Valkey (``engine.embedded``) in a temp dir,
  started for the session: always available.
* ``machine_redis_url``: the Redis at ``$BOSS_TEST_REDIS_URL``, else
  ``redis://127.0.0.1:6379/0``; tests using it are skipped when it does not
  answer.
* ``redis_url``: "a server" for tests that need one: ``$BOSS_TEST_REDIS_URL``
  when set, else the embedded Valkey.

Per test:

* ``key_prefix``: a unique key prefix (``boss-test:<hex>:``); fixtures that
  hand out a client delete every key under it afterwards.
* ``redis_client``: a redis-py client on ``redis_url``.
* ``store``: a run store, parametrised over ``memory``, ``valkey`` (the
  embedded server) and ``redis`` (the machine's), so one contract suite
  runs against all three.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.embedded import EmbeddedValkey
from engine.store import MemoryStore, RedisStore, RunStore
from tests.reporters.fakes import FakeForge

MACHINE_REDIS_URL = os.environ.get("BOSS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def delete_keys(client: redis.Redis, prefix: str) -> None:
    """Delete every key starting with ``prefix`` (SCAN MATCH, then UNLINK)."""
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + "*"
    batch = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


@pytest.fixture(scope="session")
def embedded_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedValkey(tmp_path_factory.mktemp("valkey")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def machine_redis_url() -> str:
    client = redis.Redis.from_url(MACHINE_REDIS_URL, socket_connect_timeout=1.0)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        pytest.skip(f"no Redis answers at {MACHINE_REDIS_URL} ({exc}); set BOSS_TEST_REDIS_URL")
    finally:
        client.close()
    return MACHINE_REDIS_URL


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    if "BOSS_TEST_REDIS_URL" in os.environ:
        return request.getfixturevalue("machine_redis_url")
    return request.getfixturevalue("embedded_url")


@pytest.fixture
def key_prefix() -> str:
    return f"boss-test:{uuid.uuid4().hex}:"


@pytest.fixture
def redis_client(redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    delete_keys(client, key_prefix)
    client.close()


@pytest.fixture(
    params=[
        "memory",
        pytest.param("valkey", marks=pytest.mark.redis),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def store(request: pytest.FixtureRequest, key_prefix: str) -> Iterator[RunStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server = "embedded_url" if request.param == "valkey" else "machine_redis_url"
    url = request.getfixturevalue(server)
    redis_store = RedisStore(url, prefix=key_prefix)
    yield redis_store
    delete_keys(redis_store.client, key_prefix)
    redis_store.close()


# -- brokers ---------------------------------------------------------------------
#
# * ``rabbitmq_url``: a fresh vhost on the machine's RabbitMQ for the session
#   (``$BOSS_TEST_AMQP_URL``, else amqp://guest:guest@127.0.0.1:5672//; the
#   vhost is made with rabbitmqctl and deleted afterwards). Without RabbitMQ
#   the tests that use it skip, saying why, unless ``BOSS_REQUIRE_RABBITMQ=1``
#   (CI), when they fail.
# * ``embedded_broker_url``: kombu's Redis transport on the session's
#   embedded Valkey (``redis+socket://``), its own database number.
# * ``broker_url``: parametrised over both ("rabbitmq", "embedded").

MACHINE_AMQP_URL = os.environ.get("BOSS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _rabbitmq_unavailable(reason: str) -> None:
    if os.environ.get("BOSS_REQUIRE_RABBITMQ") == "1":
        pytest.fail(f"RabbitMQ is required (BOSS_REQUIRE_RABBITMQ=1) but {reason}")
    pytest.skip(
        f"no RabbitMQ: {reason} (set BOSS_TEST_AMQP_URL, or BOSS_REQUIRE_RABBITMQ=1 "
        "to fail instead)"
    )


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    import shutil
    import subprocess
    from urllib.parse import urlsplit, urlunsplit

    import kombu

    try:
        with kombu.Connection(MACHINE_AMQP_URL, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:
        _rabbitmq_unavailable(f"{MACHINE_AMQP_URL} does not answer ({exc})")
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:  # a remote broker: share its vhost, queues are per test anyway
        yield MACHINE_AMQP_URL
        return
    vhost = f"boss-test-{uuid.uuid4().hex[:12]}"
    parts = urlsplit(MACHINE_AMQP_URL)
    user = parts.username or "guest"
    subprocess.run([ctl, "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        [ctl, "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    yield urlunsplit((parts.scheme, parts.netloc, "/" + vhost, "", ""))
    subprocess.run([ctl, "-q", "delete_vhost", vhost], capture_output=True)


@pytest.fixture(scope="session")
def embedded_broker_url(embedded_url: str) -> str:
    return "redis+socket://" + embedded_url.removeprefix("unix://")


@pytest.fixture(params=["rabbitmq", "embedded"])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "rabbitmq":
        return request.getfixturevalue("rabbitmq_url")
    return request.getfixturevalue("embedded_broker_url")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """``item.rep_setup``/``rep_call``/``rep_teardown``: fixtures print the
    logs of the processes they started when the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _compat_dir() -> Path:
    """``$BOSS_COMPAT_DIR`` if set; else ``shared/compat`` beside the checkout
    or any directory above it; else the workplace's ``/work/shared/compat``
    (read in place, never copied)."""
    env = os.environ.get("BOSS_COMPAT_DIR")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[1]
    for base in (root, *root.parents):
        candidate = base / "shared" / "compat"
        if candidate.is_dir():
            return candidate
    return Path("/work/shared/compat")


@pytest.fixture(scope="session")
def compat_dir() -> Path:
    """The real BOSS code for compatibility tests (``shared/compat``); the
    tests that use it skip, naming where it was looked for, when absent."""
    path = _compat_dir()
    if not (path / "boss-standard-workflow").is_dir():
        pytest.skip(f"no BOSS compat data at {path} (set BOSS_COMPAT_DIR)")
    return path


def _payloads_dir() -> Path:
    """``$BOSS_PAYLOADS_DIR`` if set; else ``shared/payloads`` beside the
    checkout or any directory above it; else the workplace's
    ``/work/shared/payloads`` (recorded deliveries, read in place, never copied)."""
    env = os.environ.get("BOSS_PAYLOADS_DIR")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[1]
    for base in (root, *root.parents):
        candidate = base / "shared" / "payloads"
        if candidate.is_dir():
            return candidate
    return Path("/work/shared/payloads")


@pytest.fixture(scope="session")
def payloads_dir() -> Path:
    """The recorded real deliveries (``shared/payloads``: ``github/``,
    ``gitlab/``, ``gerrit/``, ``obs/``); the tests that use it skip, naming
    where it was looked for, when absent."""
    path = _payloads_dir()
    if not path.is_dir():
        pytest.skip(f"no payload corpus at {path} (set BOSS_PAYLOADS_DIR)")
    return path


# -- fake forges (tests/reporters/fakes.py): reporters and the launchers' lookups --


@pytest.fixture
def github() -> Iterator[FakeForge]:
    f = FakeForge("github")
    yield f
    f.close()


@pytest.fixture
def gitlab() -> Iterator[FakeForge]:
    f = FakeForge("gitlab")
    yield f
    f.close()


@pytest.fixture
def gerrit() -> Iterator[FakeForge]:
    f = FakeForge("gerrit")
    yield f
    f.close()


# -- the shared RabbitMQ, when tests run in parallel (pytest -n 2) -----------
#
# Every test that may use the machine's RabbitMQ holds a shared lock on a
# file for its whole run (setup, call, teardown); a test that restarts the
# broker or changes its global settings (marked ``broker_exclusive``, or
# using ``consumer_timeout_3s``) holds it exclusively, so no other worker's
# RabbitMQ test is in flight meanwhile. Writers go first: a waiting
# exclusive test holds a turnstile that new shared holders pass through, so
# a stream of shared holders on the other worker cannot starve it. The
# waiting happens outside setup/call/teardown, so pytest-timeout's clock
# does not count it. Without xdist there is one process and the locks are
# always free.

_LOCK_DIR = Path(os.environ.get("BOSS_TEST_LOCK_DIR", "/tmp"))


def _rabbitmq_use(item: pytest.Item) -> str | None:
    """``"exclusive"``, ``"shared"`` or None for a test and the broker."""
    if item.get_closest_marker("broker_exclusive") or "consumer_timeout_3s" in getattr(
        item, "fixturenames", ()
    ):
        return "exclusive"
    names = getattr(item, "fixturenames", ())
    if (
        "rabbitmq_url" in names
        or item.get_closest_marker("rabbitmq")
        or "rabbitmq" in item.nodeid.rpartition("[")[2]
    ):
        return "shared"
    return None


#: the lock this worker holds, and how: (turnstile file, lock file, use).
#: A shared lock is kept from one test to the next of the same module when
#: the test uses a module- or class-scoped fixture: such a fixture's broker
#: connections live between its tests (and one parametrised over the
#: brokers is closed in the setup of its next parameter's first test), so a
#: broker restart on the other worker must wait for the whole module. Other
#: modules let it go after each test, so a restart waits for one test only
_HELD: list[Any] = []


def _release() -> None:
    import fcntl

    if _HELD:
        turnstile, lock, _use = _HELD
        fcntl.flock(lock, fcntl.LOCK_UN)
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        lock.close()
        turnstile.close()
        _HELD.clear()


def _acquire(use: str) -> None:
    import fcntl

    # one pair of lock files per test session (xdist's run id), not per machine
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", "solo")
    turnstile = open(_LOCK_DIR / f"boss-test-{run}-turnstile.lock", "a")  # noqa: SIM115
    lock = open(_LOCK_DIR / f"boss-test-{run}-rabbitmq.lock", "a")  # noqa: SIM115
    if use == "exclusive":
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX)
    else:
        fcntl.flock(turnstile, fcntl.LOCK_SH)
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        fcntl.flock(lock, fcntl.LOCK_SH)
    _HELD[:] = [turnstile, lock, use]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return (yield)
    use = _rabbitmq_use(item)
    held = _HELD[2] if _HELD else None
    if use == "exclusive" and held != "exclusive":
        _release()
        _acquire("exclusive")
    elif use == "shared" and held is None:
        _acquire("shared")
    try:
        return (yield)
    finally:
        same_module = nextitem is not None and nextitem.path == item.path
        if not (_HELD and _HELD[2] == "shared" and same_module and _outlives_a_test(item)):
            _release()


def _outlives_a_test(item: pytest.Item) -> bool:
    """Whether a fixture of ``item`` that lives from one test to the next
    within its module (module, class or package scope) may hold RabbitMQ
    connections: it asks for ``rabbitmq_url`` or ``broker_url``, or its
    parameter for this test is ``"rabbitmq"`` (a fixture parametrised over
    the brokers). A session-wide one, such as ``rabbitmq_url``'s vhost,
    holds no connection."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    params = getattr(getattr(item, "callspec", None), "params", {})
    for name, defs in info.name2fixturedefs.items():
        if not defs or defs[-1].scope not in ("module", "class", "package"):
            continue
        if params.get(name) == "rabbitmq" or {"rabbitmq_url", "broker_url"} & set(
            defs[-1].argnames
        ):
            return True
    return False


def apt_get(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``apt-get ARGS`` (non-interactive), one at a time among this
    session's test processes (a file lock: two workers installing chromium,
    or the packaging test installing its tools, would otherwise find dpkg
    locked), and waiting for dpkg's own lock should anything else hold it."""
    import fcntl

    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(_LOCK_DIR / "boss-test-apt.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return subprocess.run(
                ["apt-get", "-o", "DPkg::Lock::Timeout=600", *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
