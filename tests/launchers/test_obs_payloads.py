"""OBS against real deliveries (``payloads_dir``/obs: shared/payloads, read in
place): every corpus file has a row stating what the launcher decides
(launch with which label, or ignore and why) and the identity it extracts;
distinct events with identical bodies stay distinct; a redelivered
message launches once; the ``<ns>.metrics`` channel is ignored, counted,
never dead-lettered."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.config import Config
from engine.launchers.base import RawEvent
from engine.launchers.launcher import Launcher
from engine.launchers.obs import ObsConsumer, ObsSource
from engine.launchers.settings import LauncherSettings
from tests.launchers.conftest import FakePublisher, write_process

NS = "opensuse.obs"


@pytest.fixture(scope="module")
def obs_dir(payloads_dir: Path) -> Path:
    path = payloads_dir / "obs"
    if not path.is_dir():
        pytest.skip(f"no OBS payloads at {path} (set BOSS_PAYLOADS_DIR)")
    return path


def corpus_raw(obs_dir: Path, name: str) -> RawEvent:
    """A corpus file as the bus delivers it: the body's bytes and its
    routing key (``metrics.txt``: the line protocol on ``<ns>.metrics``)."""
    path = obs_dir / name
    if path.suffix == ".txt":
        return RawEvent(path.read_bytes(), {}, f"{NS}.metrics")
    data = json.loads(path.read_text())
    return RawEvent(json.dumps(data["body"]).encode(), {}, data["routing_key"])


# file -> (decision, label or why ignored, identity)
# identity: project (or the request's targets), package, repository, the
# request number (``change``), commit (rev), author
CORPUS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "build_fail.json": (
        "launch",
        "OBS_BUILD_FAIL",
        {
            "project": "openSUSE:Factory",
            "package": "bash",
            "repository": "standard",
            "commit": "42",
            "author": "Admin",
            "basis": "body",
        },
    ),
    "build_success.json": (
        "launch",
        "OBS_BUILD_SUCCESS",
        {
            "project": "openSUSE:Factory",
            "package": "bash",
            "repository": "standard",
            "commit": "42",
            "author": "Admin",
            "basis": "body",
        },
    ),
    "build_success_multibuild.json": (
        "launch",
        "OBS_BUILD_SUCCESS",
        {
            "project": "devel:languages:python",
            "package": "python-pytest:test",
            "repository": "standard",
            "commit": "42",
            "author": "Admin",
            "basis": "body",
        },
    ),
    "metrics.txt": ("ignore", "metrics channel (InfluxDB line protocol, not an event)", {}),
    "package_commit.json": (
        "launch",
        "OBS_SRCSRV_COMMIT",
        {
            "project": "home:jdoe",
            "package": "hello",
            "commit": "7",
            "author": "jdoe",
            "basis": "body",
        },
    ),
    "package_update.json": (
        "launch",
        "OBS_SRCSRV_UPDATE_PACKAGE",
        {"project": "home:jdoe", "package": "hello", "author": "jdoe", "basis": "receipt"},
    ),
    "repo_build_finished.json": (
        "launch",
        "OBS_REPO_BUILD_FINISHED",
        {"project": "openSUSE:Factory", "repository": "standard", "basis": "body"},
    ),
    "repo_publish_state.json": (
        "launch",
        "OBS_REPO_PUBLISH_STATE",
        {"project": "openSUSE:Factory", "repository": "standard", "basis": "receipt"},
    ),
    "repo_published.json": (
        "launch",
        "OBS_REPO_PUBLISHED",
        {"project": "openSUSE:Factory", "repository": "standard", "basis": "body"},
    ),
    "request_comment.json": (
        "launch",
        "OBS_SRCSRV_REQUEST_COMMENT",
        {
            "targets": ["devel:tools", "devel:tools:Testing"],
            "change": "1100456",
            "author": "jdoe",
            "basis": "body",
        },
    ),
    "request_create.json": (
        "launch",
        "OBS_SRCSRV_REQUEST_CREATE",
        {
            "targets": ["devel:tools", "devel:tools:Testing"],
            "change": "1100456",
            "author": "jdoe",
            "basis": "body",
        },
    ),
    "request_create_delete.json": (
        "launch",
        "OBS_SRCSRV_REQUEST_CREATE",
        {"targets": ["openSUSE:Factory"], "change": "1100460", "author": "jdoe", "basis": "body"},
    ),
    "request_review_wanted.json": (
        "launch",
        "OBS_SRCSRV_REQUEST_REVIEWER_ADDED",
        {
            "targets": ["devel:tools", "devel:tools:Testing"],
            "change": "1100456",
            "author": "jdoe",
            "basis": "body",
        },
    ),
    "request_state_change.json": (
        "launch",
        "OBS_SRCSRV_REQUEST_STATECHANGE",
        {
            "targets": ["devel:tools", "devel:tools:Testing"],
            "change": "1100456",
            "author": "maintainer1",
            "basis": "body",
        },
    ),
}


def test_every_corpus_file_has_a_row(obs_dir: Path):
    files = {p.name for p in obs_dir.iterdir() if p.is_file() and p.name != "README.md"}
    assert files == set(CORPUS), (
        f"corpus files without a row: {sorted(files - set(CORPUS))}; "
        f"rows without a file: {sorted(set(CORPUS) - files)}"
    )


def launcher_for(store: Path, fake: FakePublisher) -> Launcher:
    return Launcher(Config(process_dir=str(store)), LauncherSettings(), publisher=fake, bus=fake)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_decision_and_identity(
    name: str, obs_dir: Path, store_dir: Path, fake: FakePublisher
):
    decision, label, identity = CORPUS[name]
    raw = corpus_raw(obs_dir, name)
    source = ObsSource()
    if decision == "ignore":
        assert source.ignored(raw) == label
        assert source.normalise(raw) == []
        out = launcher_for(store_dir, fake).handle(source, raw)
        assert out.deadletter is None and out.wfids == [] and fake.letters == []
        return
    assert source.ignored(raw) is None
    [ev] = source.normalise(raw)
    assert ev.label == label
    projects = identity.get("targets") or [identity["project"]]
    assert list(ev.targets) == identity.get("targets", [])
    assert ev.project == identity.get("project")
    assert ev.change == identity.get("change")
    assert ev.commit == identity.get("commit")
    assert ev.author == identity.get("author")
    assert ev.payload.get("package") == identity.get("package")
    assert (ev.payload.get("repository") or ev.payload.get("repo")) == identity.get("repository")
    assert source.identity_basis(raw) == identity["basis"]
    # and it launches, with that label, once per project (or target)
    for project in projects:
        write_process(store_dir, project.replace(":", "/"), f"{label}.p.yaml")
    out = launcher_for(store_dir, fake).handle(source, raw)
    assert out.deadletter is None, out.reason
    assert len(out.wfids) == len(projects)
    assert [m["fields"]["ev"]["label"] for m in fake.sent] == [label] * len(projects)


# -- the consumer: identity, redelivery, metrics (no broker: kombu-shaped messages) --------


class Message:
    """What ``ObsConsumer._on_message`` reads of a kombu message."""

    def __init__(
        self,
        raw: RawEvent,
        *,
        redelivered: bool = False,
        properties: dict[str, Any] | None = None,
    ) -> None:
        self.body = raw.body
        self.headers: dict[str, Any] = {}
        self.properties = dict(properties or {})
        self.delivery_info = {"routing_key": raw.routing_key, "redelivered": redelivered}
        self.acked = False

    def ack(self) -> None:
        self.acked = True


class Crash(BaseException):
    """The launcher dies after launching, before the message is acknowledged."""


@pytest.fixture
def consumer(
    store_dir: Path, fake: FakePublisher, machine_redis_url: str, key_prefix: str
) -> Iterator[ObsConsumer]:
    import redis

    from tests.conftest import delete_keys

    client = redis.Redis.from_url(machine_redis_url)
    config = Config(process_dir=str(store_dir), key_prefix=key_prefix)
    settings = LauncherSettings()
    launcher = Launcher(config, settings, publisher=fake, bus=fake)
    yield ObsConsumer(config, settings, launcher, connection=object(), redis_client=client)
    delete_keys(client, key_prefix)
    client.close()


def test_identical_bodies_of_distinct_events_launch_each(consumer, obs_dir, store_dir, fake):
    """``package.update`` and ``repo.publish_state`` carry no time: two real
    events with the same body were one delivery id (the second ignored as a
    repeat). Each is now its own delivery."""
    for name, label, project in (
        ("package_update.json", "OBS_SRCSRV_UPDATE_PACKAGE", "home/jdoe"),
        ("repo_publish_state.json", "OBS_REPO_PUBLISH_STATE", "openSUSE/Factory"),
    ):
        write_process(store_dir, project, f"{label}.p.yaml")
        fake.sent.clear()
        first, second = Message(corpus_raw(obs_dir, name)), Message(corpus_raw(obs_dir, name))
        consumer._on_message(first)
        consumer._on_message(second)
        assert first.acked and second.acked
        wfids = [m["wfid"] for m in fake.sent]
        assert len(wfids) == 2 and wfids[0] != wfids[1], wfids


def test_a_redelivered_message_launches_once(consumer, obs_dir, store_dir, fake):
    """The consumer dies after launching, before its ack: RabbitMQ hands the
    message again with ``redelivered``; it must get the same delivery id
    (the same wfid: the engine ignores it), not a new moment of receipt."""
    write_process(store_dir, "home/jdoe", "OBS_SRCSRV_UPDATE_PACKAGE.p.yaml")
    raw = corpus_raw(obs_dir, "package_update.json")
    real_handle = consumer.launcher.handle

    def crash_after(source: Any, raw: RawEvent) -> Any:
        real_handle(source, raw)
        raise Crash

    consumer.launcher.handle = crash_after  # type: ignore[method-assign]
    first = Message(raw)
    with pytest.raises(Crash):
        consumer._on_message(first)
    assert not first.acked
    consumer.launcher.handle = real_handle  # type: ignore[method-assign]
    again = Message(raw, redelivered=True)
    consumer._on_message(again)
    assert again.acked
    assert fake.sent[0]["wfid"] == fake.sent[1]["wfid"]
    # and a later, distinct event with the same body is a new delivery
    consumer._on_message(Message(raw))
    assert len({m["wfid"] for m in fake.sent}) == 2


def test_the_delivery_properties_identify_a_message(consumer, obs_dir, store_dir, fake):
    write_process(store_dir, "home/jdoe", "OBS_SRCSRV_UPDATE_PACKAGE.p.yaml")
    raw = corpus_raw(obs_dir, "package_update.json")
    consumer._on_message(Message(raw, properties={"message_id": "m-1"}))
    consumer._on_message(Message(raw, properties={"message_id": "m-1"}))
    consumer._on_message(Message(raw, properties={"timestamp": 1764900000}))
    consumer._on_message(Message(raw, properties={"timestamp": 1764900000}, redelivered=True))
    consumer._on_message(Message(raw, properties={"timestamp": 1764900001}))
    wfids = [m["wfid"] for m in fake.sent]
    assert wfids[0] == wfids[1] == "obs-m-1-p"
    assert wfids[2] == wfids[3] != wfids[4]
    assert len(set(wfids)) == 3


def test_metrics_are_ignored_and_counted_not_dead_lettered(consumer, obs_dir, fake, caplog):
    raw = corpus_raw(obs_dir, "metrics.txt")
    with caplog.at_level("INFO", logger="boss.launchers.obs"):
        for _ in range(3):
            message = Message(raw)
            consumer._on_message(message)
            assert message.acked
    assert fake.letters == [] and fake.sent == []
    assert consumer.ignored == {"metrics": 3}
    assert any("metrics" in r.getMessage() for r in caplog.records)


def test_the_ledger_survives_concurrent_consumers(consumer, obs_dir, store_dir, fake):
    """Two consumers (threads here) each handling a copy of an untimed
    event: two deliveries, both acknowledged, nothing left in flight."""
    write_process(store_dir, "home/jdoe", "OBS_SRCSRV_UPDATE_PACKAGE.p.yaml")
    raw = corpus_raw(obs_dir, "package_update.json")
    messages = [Message(raw) for _ in range(8)]
    threads = [threading.Thread(target=consumer._on_message, args=(m,)) for m in messages]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(m.acked for m in messages)
    assert len({m["wfid"] for m in fake.sent}) == 8
    assert consumer.inflight() == 0


def test_a_dry_run_of_an_untimed_event_is_stable(obs_dir):
    """Without a consumer (``boss launcher test``), the delivery id is a
    digest of the routing key and body, as before."""
    raw = corpus_raw(obs_dir, "package_update.json")
    a = ObsSource().normalise(raw)[0].delivery
    assert a == ObsSource().normalise(raw)[0].delivery
    stamped = RawEvent(raw.body, {"x-boss-received": uuid.uuid4().hex}, raw.routing_key)
    assert ObsSource().normalise(stamped)[0].delivery != a


# -- on RabbitMQ: a real redelivery --------------------------------------------------------


@pytest.mark.rabbitmq
def test_a_real_redelivery_on_rabbitmq(
    obs_dir: Path,
    rabbitmq_url: str,
    store_dir: Path,
    fake: FakePublisher,
    machine_redis_url: str,
    key_prefix: str,
):
    """Two identical ``package.update`` messages and a metrics line on a
    topic exchange; the first consumer launches the first message and dies
    before its ack. RabbitMQ redelivers (``redelivered``): the redelivered
    message keeps its first delivery id, the second is a delivery of its
    own; the metrics line is acknowledged and not dead-lettered."""
    import kombu
    import redis

    from tests.conftest import delete_keys

    write_process(store_dir, "home/jdoe", "OBS_SRCSRV_UPDATE_PACKAGE.p.yaml")
    uid = uuid.uuid4().hex[:8]
    settings = LauncherSettings(obs_exchange=f"t{uid}.pubsub", obs_queue=f"t{uid}.obs")
    config = Config(process_dir=str(store_dir), key_prefix=key_prefix, broker_url=rabbitmq_url)
    client = redis.Redis.from_url(machine_redis_url)
    launcher = Launcher(config, settings, publisher=fake, bus=fake)
    real_handle = launcher.handle
    update, metrics = corpus_raw(obs_dir, "package_update.json"), corpus_raw(obs_dir, "metrics.txt")

    def consume(conn: Any, done: Any, timeout: float = 10) -> ObsConsumer:
        """Consume on ``conn`` until ``done(obs)``."""
        obs = ObsConsumer(config, settings, launcher, connection=conn, redis_client=client)
        consumer = kombu.Consumer(
            conn.channel(), queues=[obs.queue], on_message=obs._on_message, prefetch_count=16
        )
        consumer.consume()
        deadline = time.monotonic() + timeout
        while not done(obs) and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.5)
        return obs

    try:
        with kombu.Connection(rabbitmq_url) as conn:
            obs = ObsConsumer(config, settings, launcher, connection=conn, redis_client=client)
            obs.queue(conn.default_channel).declare()
            exchange = kombu.Exchange(settings.obs_exchange, type="topic", durable=True)
            producer = conn.Producer()
            for raw in (update, update, metrics):
                producer.publish(raw.body, exchange=exchange, routing_key=raw.routing_key)

        def crash_after(source: Any, raw: RawEvent) -> Any:
            real_handle(source, raw)
            raise Crash

        launcher.handle = crash_after  # type: ignore[method-assign]
        dying = kombu.Connection(rabbitmq_url)
        with pytest.raises(Crash):
            consume(dying, lambda obs: False)
        dying.connection.transport.close()  # the process is gone: no goodbye to the broker
        dying.collect()
        assert len(fake.sent) == 1
        launcher.handle = real_handle  # type: ignore[method-assign]
        with kombu.Connection(rabbitmq_url) as conn:
            obs = consume(conn, lambda obs: len(fake.sent) >= 3 and obs.ignored)
            wfids = [m["wfid"] for m in fake.sent]
            assert len(wfids) == 3, wfids
            # one of the two redelivered copies took the first receipt back
            assert wfids.count(wfids[0]) == 2 and len(set(wfids)) == 2, wfids
            # the metrics line: acknowledged, counted, not dead-lettered
            assert obs.ignored == {"metrics": 1} and fake.letters == []
            assert obs.inflight() == 0
        with kombu.Connection(rabbitmq_url) as conn:
            assert conn.default_channel.queue_declare(settings.obs_queue, passive=True)[1] == 0
    finally:
        with kombu.Connection(rabbitmq_url) as conn:
            channel = conn.channel()
            channel.queue_delete(settings.obs_queue)
            channel.exchange_delete(settings.obs_exchange)
        delete_keys(client, key_prefix)
        client.close()
