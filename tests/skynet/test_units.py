"""The pieces without a supervisord: settings, the program file format,
the permission rules; and the private supervisord's start and stop."""

from __future__ import annotations

import configparser
import os
import tempfile
from pathlib import Path

import pytest

from engine.config import ConfigError
from participants.config import load_config
from skynet import private, programs
from skynet.config import SkynetConfig
from skynet.errors import NotPermitted
from skynet.permissions import Caller, check_manage, check_run_as
from skynet.programs import ProgramSpec
from skynet.supervisor import Supervisor


def test_settings_come_from_arguments_then_environment_then_the_file(tmp_path: Path) -> None:
    ini = tmp_path / "boss.ini"
    ini.write_text(
        "[boss]\nbroker_url = amqp://h//\n\n[skynet]\ntoken = from-file\n"
        "hosts = http://a:1/, http://b:2\nstopwaitsecs = 7\n"
    )
    config = SkynetConfig.load(ini, environ={"SKYNET_TOKEN": "from-env"})
    assert config.token == "from-env"
    assert config.hosts == ("http://a:1", "http://b:2")
    assert config.stopwaitsecs == 7
    assert config.boss.broker_url == "amqp://h//"
    assert config.private and config.include_path == config.state_path / "programs"
    assert SkynetConfig.load(ini, environ={}, token="arg").token == "arg"
    system = SkynetConfig.load(ini, environ={"SKYNET_SUPERVISOR_URL": "unix:///run/s.sock"})
    assert not system.private and system.include_path == Path("/etc/supervisor/conf.d")
    assert system.server_url == "unix:///run/s.sock"
    # no [boss] section in the file: the environment's
    only = tmp_path / "only.ini"
    only.write_text("[skynet]\nstate_dir = /tmp/x\n")
    assert (
        SkynetConfig.load(only, environ={"BOSS_BROKER_URL": "amqp://e//"}).boss.broker_url
        == "amqp://e//"
    )
    assert SkynetConfig.load(only, environ={}).state_path == Path("/tmp/x")
    ini.write_text("[skynet]\nstopwait = 3\n")
    with pytest.raises(ConfigError, match="unknown key 'stopwait'"):
        SkynetConfig.load(ini, environ={})
    ini.write_text("[skynet]\nstopwaitsecs = soon\n")
    with pytest.raises(ConfigError, match="stopwaitsecs = 'soon'"):
        SkynetConfig.load(ini, environ={})


def _spec(tmp_path: Path, **kw: object) -> ProgramSpec:
    values: dict[str, object] = {
        "name": "build",
        "code": "/usr/share/boss/build.py",
        "queue": "q.build",
        "regexp": "build_.*",
        "user": "nobody",
        "instances": 3,
        "participant": {"lease": "90"},
        "boss": {"broker_url": "amqp://u:p%2F@h/v"},
        "sections": {"build": {"worker_dir": "/srv/build"}},
        "python": "/usr/bin/python3",
        "stopwaitsecs": 5,
        "log_dir": "/var/log/boss",
        "path": str(tmp_path / "build.conf"),
    }
    values.update(kw)
    return ProgramSpec(**values)  # type: ignore[arg-type]


def test_the_program_file_is_supervisor_config_and_participant_config(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    Path(spec.path).write_text(programs.render(spec))
    assert programs.parse(spec.path) == spec
    # the participant runtime reads it as its INI file
    loaded = load_config(spec.path)
    assert (loaded.name, loaded.queue, loaded.regexp, loaded.code) == (
        "build",
        "q.build",
        "build_.*",
        "/usr/share/boss/build.py",
    )
    assert loaded.boss.broker_url == "amqp://u:p%2F@h/v" and loaded.boss.lease == 90
    assert loaded.section("build") == {"worker_dir": "/srv/build"}
    # supervisor's view: one program per instance, each running this file
    parser = configparser.RawConfigParser()
    parser.read(spec.path)
    progs = [s for s in parser.sections() if s.startswith("program:")]
    assert progs == ["program:build@00", "program:build@01", "program:build@02"]
    first = parser["program:build@00"]
    assert first["command"] == f"/usr/bin/python3 -m participants.runtime {spec.path}"
    assert (first["user"], first["stopsignal"], first["stopwaitsecs"]) == ("nobody", "TERM", "5")
    assert first["stdout_logfile"] == "/var/log/boss/build@00.log"
    assert programs.participant_of("build@02") == "build"
    assert programs.participant_of("other") is None


def test_the_config_digest_changes_with_the_config_not_the_count(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    assert spec.digest() == spec.replace(instances=7, enabled=False).digest()
    assert spec.digest() != spec.replace(queue="other").digest()
    assert spec.digest() != spec.replace(sections={"build": {"worker_dir": "/x"}}).digest()
    assert spec.digest() != spec.replace(user="root").digest()
    # so the kept instances' program sections are identical after a scale
    three, five = programs.render(spec), programs.render(spec.replace(instances=5))
    assert (
        three.split("[program:build@03]")[0].replace("instances = 3", "instances = 5")
        == five.split("[program:build@03]")[0]
    )


def test_permission_rules() -> None:
    root, member = Caller(0), Caller(1000, frozenset({"skynet"}))
    alice, bob = Caller(1000), Caller(1001)
    check_manage(root, 0)
    check_manage(member, 1001)
    check_manage(alice, 1000)
    with pytest.raises(NotPermitted, match=r"^not permitted"):
        check_manage(bob, 1000)
    for who in (member, alice):
        with pytest.raises(NotPermitted, match=r"^root-only"):
            check_manage(who, 0)
    with pytest.raises(NotPermitted, match="'builders' group"):
        check_manage(member, 1001, group="builders")
    # run-as: a supervisord that is not root runs programs only as itself
    check_run_as(1000, 0)
    check_run_as(1000, 1000)
    check_run_as(1000, None)
    with pytest.raises(NotPermitted, match=r"^root-only: supervisord runs as"):
        check_run_as(1001, 1000)
    me = Caller.current()
    assert me.uid == os.geteuid() and me.groups


def test_the_private_supervisord_starts_once_and_stops() -> None:
    state = Path(tempfile.mkdtemp(prefix="sk-", dir="/tmp"))
    config = SkynetConfig(state_dir=str(state))
    try:
        assert private.ensure_running(config) is True
        assert private.ensure_running(config) is False  # idempotent
        conf = (state / "supervisord.conf").read_text()
        assert f"files = {state}/programs/*.conf" in conf and "chmod = 0700" in conf
        assert oct(state.stat().st_mode & 0o777) == "0o700"
        client = Supervisor(config.server_url)
        pid = client.supervisor.getPID()
        client.close()
        assert private.stop(config) is True
        assert not private.is_running(config)
        assert private._alive(pid) is False  # gone (or a zombie nobody reaped)
        assert private.stop(config) is False
    finally:
        private.stop(config, timeout=5)
        import shutil

        shutil.rmtree(state, ignore_errors=True)


def test_a_state_dir_too_long_for_a_socket_is_refused() -> None:
    from skynet.errors import SupervisorUnavailable

    config = SkynetConfig(state_dir="/tmp/" + "x" * 120)
    with pytest.raises(SupervisorUnavailable, match="too long for a unix socket"):
        private.write_conf(config)


def test_the_openapi_file_documents_every_route() -> None:
    import yaml

    from skynet.api import create_app

    doc = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "docs" / "skynet-openapi.yaml").read_text()
    )
    app = create_app(SkynetConfig())
    routes = {
        (str(r.rule).replace("<name>", "{name}"), m.lower())
        for r in app.url_map.iter_rules()
        if r.endpoint.startswith("skynet_api.")
        for m in r.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (path, method)
        for path, ops in doc["paths"].items()
        for method in ops
        if method != "parameters"
    }
    assert routes == documented
