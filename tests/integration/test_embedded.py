"""The embedded Valkey server (``engine.embedded``) and ``open_store``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.embedded import EmbeddedValkey, ensure_embedded, shutdown_embedded
from engine.store import MemoryStore, RedisStore, StoreError, open_store
from engine.store.redis_store import normalise_url

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]


def server_pid(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return not stat.parent.exists()  # gone meanwhile, or no /proc


@pytest.fixture
def detached_dir(tmp_path: Path) -> Iterator[Path]:
    """A state dir whose detached server (if any) is shut down afterwards."""
    yield tmp_path
    shutdown_embedded(tmp_path)


def test_starts_and_serves_with_persistence(tmp_path: Path) -> None:
    with EmbeddedValkey(tmp_path) as server:
        assert server.started
        assert server.url == f"unix://{tmp_path / 'valkey.sock'}"
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("dir") == {"dir": str(tmp_path)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert int((tmp_path / "valkey.pid").read_text()) == server.pid == server_pid(server.url)
        client.close()
        pid = server.pid
    assert not pid_alive(pid)
    assert not (tmp_path / "valkey.sock").exists()


def test_data_survives_a_restart(tmp_path: Path) -> None:
    state = {"wfid": "w1", "name": "build", "status": "running", "launched_at": 1.0, "errors": []}
    with EmbeddedValkey(tmp_path) as server:
        store = RedisStore(server.url)
        store.create_run(state)
        store.schedule_timer("t1", 5.0, {"wfid": "w1"})
        store.close()
    with EmbeddedValkey(tmp_path) as server:
        assert server.started
        store = RedisStore(server.url)
        assert store.load_run("w1") == (state, 1)
        assert store.timers() == [("t1", 5.0, {"wfid": "w1"})]
        assert [r.wfid for r in store.list_runs(status="running")] == ["w1"]
        store.close()


def test_a_second_instance_reuses_the_running_server(tmp_path: Path) -> None:
    with EmbeddedValkey(tmp_path) as first:
        second = EmbeddedValkey(tmp_path).start()
        assert not second.started
        assert second.pid == first.pid
        second.stop()  # not its server: left running
        assert first.is_running()
    assert not first.is_running()


def test_a_stale_pidfile_does_not_block_a_start(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    (tmp_path / "valkey.pid").write_text(done.stdout)
    with EmbeddedValkey(tmp_path) as server:
        assert server.started and server.is_running()


def test_ensure_embedded_twice_gives_the_same_server(detached_dir: Path) -> None:
    url = ensure_embedded(detached_dir)
    assert ensure_embedded(detached_dir) == url
    pid = server_pid(url)
    client = redis.Redis.from_url(url)
    client.set("shared", "yes")
    assert redis.Redis.from_url(ensure_embedded(detached_dir)).get("shared") == b"yes"
    assert server_pid(ensure_embedded(detached_dir)) == pid
    client.close()
    assert shutdown_embedded(detached_dir) is True
    assert not pid_alive(pid)
    assert shutdown_embedded(detached_dir) is False


def test_racing_processes_start_one_server(detached_dir: Path) -> None:
    barrier = threading.Barrier(6)
    urls: list[str] = []

    def start() -> None:
        barrier.wait()
        urls.append(ensure_embedded(detached_dir))

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(urls) == 6 and len(set(urls)) == 1
    assert server_pid(urls[0]) == int((detached_dir / "valkey.pid").read_text())


def test_the_detached_server_outlives_its_starter(detached_dir: Path) -> None:
    code = "import sys, engine.embedded as e; print(e.ensure_embedded(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(detached_dir)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    url = done.stdout.strip()
    assert redis.Redis.from_url(url).ping()  # the starter has exited
    assert ensure_embedded(detached_dir) == url


def test_a_long_state_dir_gets_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    with EmbeddedValkey(deep) as server:
        assert len(str(server.socket_path)) <= 100
        assert redis.Redis.from_url(server.url).ping()


# -- open_store ---------------------------------------------------------------------
def test_open_store_by_scheme(detached_dir: Path, embedded_url: str) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    store = open_store(f"embedded://{detached_dir}", prefix="t:")
    assert isinstance(store, RedisStore) and store.prefix == "t:"
    assert store.client.ping()
    store.close()
    store = open_store(embedded_url.replace("unix://", "valkey+unix://"))
    assert store.client.ping()
    store.close()
    with pytest.raises(StoreError):
        open_store("amqp://localhost")
    with pytest.raises(StoreError):
        open_store("localhost:6379")


def test_open_store_defaults_to_the_embedded_server(
    detached_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOSS_STATE_DIR", str(detached_dir))
    store = open_store(None)
    assert store.client.ping()
    assert store.client.connection_pool.connection_kwargs["path"] == str(
        detached_dir / "valkey.sock"
    )
    store.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("valkey://h:1/0", "redis://h:1/0"),
        ("valkeys://h:1", "rediss://h:1"),
        ("valkey+unix:///run/v.sock", "unix:///run/v.sock"),
        ("redis://h", "redis://h"),
        ("unix:///s", "unix:///s"),
    ],
)
def test_normalise_url(url: str, expected: str) -> None:
    assert normalise_url(url) == expected
