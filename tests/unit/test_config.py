"""``engine.config``: one INI file plus BOSS_* environment variables."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from engine.config import Config, ConfigError, config_paths


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "boss.ini"
    path.write_text(text)
    return path


def test_defaults_need_nothing() -> None:
    c = Config.load(None, environ={"HOME": "/nonexistent", "XDG_CONFIG_HOME": "/nonexistent"})
    assert c.broker_url == "" and c.redis_url == "" and c.embedded
    assert c.engine_queue == "boss.engine" and c.key_prefix == "boss:"
    # a participant takes its lease long before a dead holder's delivery is restored
    assert c.lease_after < c.visibility_timeout


def test_the_windows_leave_room_for_replies_whose_confirms_wait() -> None:
    """A participant instance takes 8 workitems at once and an engine
    consumer 128 messages (docs/benchmarks.md, issue 19's fifth slice: with
    4 and 64 the windows filled with finished work waiting for the broker's
    confirms on RabbitMQ); each still configurable."""
    c = Config.load(None, environ={"HOME": "/nonexistent", "XDG_CONFIG_HOME": "/nonexistent"})
    assert c.participant_prefetch == 8 and c.engine_batch == 128
    c = Config.load(
        None,
        environ={
            "HOME": "/nonexistent",
            "BOSS_PARTICIPANT_PREFETCH": "4",
            "BOSS_ENGINE_BATCH": "64",
        },
    )
    assert c.participant_prefetch == 4 and c.engine_batch == 64


def test_file_then_environment_then_arguments(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[boss]\nbroker_url = amqp://u:p@mq:5672/ci\n"
        "redis_url = redis://db:6379/1\nlease = 90\nconfirm_publish = no\n",
    )
    c = Config.load(path, environ={"BOSS_REDIS_URL": "redis://other:6379/2"})
    assert c.broker_url == "amqp://u:p@mq:5672/ci"
    assert c.redis_url == "redis://other:6379/2"  # the environment wins over the file
    assert c.lease == 90.0 and c.confirm_publish is False and not c.embedded
    assert c.source == str(path)
    c2 = Config.load(path, environ={"BOSS_REDIS_URL": "x"}, redis_url="redis://arg/0")
    assert c2.redis_url == "redis://arg/0"  # an explicit argument wins over both


def test_boss_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[boss]\nengine_queue = ci.engine\n")
    env = {"BOSS_CONFIG": str(path)}
    assert config_paths(env) == [path]
    assert Config.load(environ=env).engine_queue == "ci.engine"


def test_bosss_old_amqp_section(tmp_path: Path) -> None:
    path = write(
        tmp_path, "[amqp]\nhost = mq.example.org\nuser = boss\npwd = s3cr/t\nvhost = boss\n"
    )
    assert (
        Config.load(path, environ={}).broker_url == "amqp://boss:s3cr%2Ft@mq.example.org:5672/boss"
    )
    parser = configparser.ConfigParser()
    parser.read_string("[participant]\nname = x\n[amqp]\nhost = h:5673\n")
    assert Config.from_parser(parser).broker_url == "amqp://guest:guest@h:5673/%2F"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[boss]\nlease = soon\n", "lease = 'soon': could not convert string to float"),
        ("[boss]\nlease_after = -1\n", "lease_after = '-1': must not be negative"),
        ("[boss]\nlease = 0\n", "lease = '0': must be more than 0 seconds"),
        ("[boss]\nengine_threads = 0\n", "engine_threads = '0': must be at least 1"),
        ("[boss]\nconfirm_publish = maybe\n", "not a boolean"),
        ("[boss]\nbroker = amqp://\n", "unknown configuration key 'broker'"),
        ("[engine]\nx = 1\n", "no [boss] section"),
        ("[boss\n", "File contains no section headers"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        Config.load(path, environ={})
    assert message in str(exc.value)
    assert str(path) in str(exc.value)


def test_a_bad_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="environment BOSS_HEARTBEAT: heartbeat = 'x'"):
        Config.load(None, environ={"HOME": "/nonexistent", "BOSS_HEARTBEAT": "x"})


def test_a_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        Config.load(tmp_path / "nope.ini", environ={})


def test_embedded_urls(tmp_path: Path) -> None:
    c = Config.load(None, environ={"HOME": "/nonexistent"}, state_dir=str(tmp_path / "s"))
    try:
        store = c.resolved_redis_url()
        assert store.startswith("unix://") and store.endswith("valkey.sock")
        assert c.resolved_broker_url() == "redis+socket://" + store.removeprefix("unix://")
    finally:
        from engine.embedded import shutdown_embedded

        shutdown_embedded(tmp_path / "s")


def test_trace_keys_zero_threads_and_auto_dispatch_lease() -> None:
    c = Config.load(
        None, environ={"BOSS_TRACE_THREADS": "0", "BOSS_DISPATCH_LEASE": "-1", "BOSS_EVENTS": "no"}
    )
    assert (c.trace_threads, c.events) == (0, False)
    assert c.resolved_dispatch_lease() == 0.0  # off unless set (engine.redis_transport)
    with pytest.raises(ConfigError, match="engine_threads = '0': must be at least 1"):
        Config.load(None, environ={"BOSS_ENGINE_THREADS": "0"})
    with pytest.raises(ConfigError, match="lease_after = '-1': must not be negative"):
        Config.load(None, environ={"BOSS_LEASE_AFTER": "-1"})
