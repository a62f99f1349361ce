"""BOSS participants written for SkyNET's Exo run unchanged: ``self.log``,
deferred replies (``wi.forget = True`` and ``send_to_engine`` later, as the
standard workflow's obsticket does), and SkyNET's configuration files
(``skynet.conf``, ``conf.d/*.conf``, ``<name>.conf``, ``[boss] amqp_*``,
``%(key)s`` interpolation). Real compat files are read in place."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from participants import Participant, Runtime, Workitem
from participants.config import ParticipantConfigError, load_config
from participants.runtime import flag
from tests.participants.conftest import Peer, Setup


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- configuration ------------------------------------------------------------------


def test_skynet_amqp_keys_name_the_broker(tmp_path: Path) -> None:
    ini = write(
        tmp_path / "p.ini",
        "[participant]\nname = p\ncode = p.py\n[boss]\namqp_host = mq.example\n"
        "amqp_user = boss\namqp_pwd = s3cr/t\namqp_vhost = ci\n",
    )
    config = load_config(ini, environ={"BOSS_SKYNET_CONFIG_DIR": str(tmp_path / "none")})
    assert config.boss.broker_url == "amqp://boss:s3cr%2Ft@mq.example:5672/ci"


def test_broker_url_wins_over_amqp_keys(tmp_path: Path) -> None:
    ini = write(
        tmp_path / "p.ini",
        "[participant]\nname = p\ncode = p.py\n[boss]\namqp_host = mq.example\n"
        "broker_url = redis://r:6379/0\n",
    )
    config = load_config(ini, environ={"BOSS_SKYNET_CONFIG_DIR": str(tmp_path / "none")})
    assert config.boss.broker_url == "redis://r:6379/0"


def test_files_merge_in_skynets_order(tmp_path: Path) -> None:
    skynet = tmp_path / "etc-skynet"
    write(
        skynet / "skynet.conf",
        "[boss]\namqp_host = h\namqp_user = u\namqp_pwd = p\namqp_vhost = v\n"
        "[skynet]\nlog_level = debug\n[x]\na = skynet\nb = skynet\nc = skynet\nd = skynet\n",
    )
    ini = write(tmp_path / "p.ini", "[participant]\nname = p\ncode = p.py\n[x]\nb = own\nc = own\n")
    write(skynet / "conf.d" / "02.conf", "[x]\nc = second\n")
    write(skynet / "conf.d" / "01.conf", "[x]\nc = first\nd = first\n")
    write(skynet / "conf.d" / "ignored.txt", "[x]\nd = not a .conf\n")
    write(skynet / "p.conf", "[x]\nd = name\ne = %(a)s-%(c)s\n")
    config = load_config(ini, environ={"BOSS_SKYNET_CONFIG_DIR": str(skynet)})
    assert config.section("x") == {
        "a": "skynet",
        "b": "own",
        "c": "second",
        "d": "name",
        "e": "skynet-second",
    }
    assert config.boss.broker_url == "amqp://u:p@h:5672/v"
    assert config.log_level == "DEBUG"
    assert config.parser is not None and config.parser.get("x", "e") == "skynet-second"


def test_include_dir_from_skynet_section(tmp_path: Path) -> None:
    skynet = tmp_path / "etc-skynet"
    write(skynet / "skynet.conf", f"[skynet]\ninclude_dir = {tmp_path / 'inc'}\n")
    write(tmp_path / "inc" / "a.conf", "[x]\nk = included\n")
    write(skynet / "conf.d" / "a.conf", "[x]\nk = default dir, not read\n")
    ini = write(tmp_path / "p.ini", "[participant]\nname = p\ncode = p.py\n")
    config = load_config(ini, environ={"BOSS_SKYNET_CONFIG_DIR": str(skynet)})
    assert config.section("x") == {"k": "included"}


def test_errors_name_the_file_that_set_the_key(tmp_path: Path) -> None:
    skynet = tmp_path / "etc-skynet"
    write(skynet / "skynet.conf", "[boss]\nlease = soon\n")
    ini = write(tmp_path / "p.ini", "[participant]\nname = p\ncode = p.py\n")
    with pytest.raises(ParticipantConfigError) as info:
        load_config(ini, environ={"BOSS_SKYNET_CONFIG_DIR": str(skynet)})
    assert str(info.value).startswith(f"{skynet / 'skynet.conf'}: [boss] lease = 'soon'")
    write(skynet / "p.conf", "[participant]\nlease_after = -1\n")
    (skynet / "skynet.conf").unlink()
    with pytest.raises(ParticipantConfigError) as info:
        load_config(ini, environ={"BOSS_SKYNET_CONFIG_DIR": str(skynet)})
    assert str(info.value).startswith(f"{skynet / 'p.conf'}: [participant] lease_after = '-1'")


def test_percent_that_is_not_interpolation_is_kept(tmp_path: Path) -> None:
    ini = write(
        tmp_path / "p.ini",
        "[participant]\nname = p\ncode = p.py\n[boss]\n"
        "broker_url = amqp://u:p%40ss@h:5672/v\n[x]\nk = 100%\n",
    )
    config = load_config(ini, environ={"BOSS_SKYNET_CONFIG_DIR": str(tmp_path / "none")})
    assert config.boss.broker_url == "amqp://u:p%40ss@h:5672/v"
    assert config.section("x") == {"k": "100%"}


def test_real_l10n_update_ts_conf(tmp_path: Path, compat_dir: Path) -> None:
    """conf/l10n_update_ts.conf writes ``%%(reponame)s`` for SkyNET's
    interpolating parser; the participant fills it in with ``%``."""
    conf = compat_dir / "boss-standard-workflow" / "conf"
    ini = write(
        tmp_path / "l10n_update_ts.ini",
        "[participant]\nname = l10n_update_ts\ncode = l10n_update_ts.py\n",
    )
    config = load_config(
        ini,
        environ={
            "BOSS_SKYNET_CONFIG_DIR": str(conf),
            "BOSS_SKYNET_INCLUDE_DIR": str(conf / "skynet"),
        },
    )
    assert config.parser is not None
    repourl = config.parser.get("git", "repourl")
    assert repourl == "git@github.com:%(reponame)s.git"
    url = repourl % {"username": config.parser.get("git", "username"), "reponame": "sailfish/app"}
    assert url == "git@github.com:sailfish/app.git"
    assert config.parser.get("l10n", "apiurl") == "https://pootle.example.com/jollaapi"
    # conf/skynet/bsw-common.conf, as conf.d
    assert config.parser.get("obs", "oscrc") == "/etc/skynet/oscrc.conf"


def test_real_supervisor_program_file(tmp_path: Path, compat_dir: Path) -> None:
    """SkyNET ran ``skynet_exo /etc/supervisor/conf.d/obsticket.conf``: the
    supervisor program file is the participant's file, ``%(program_name)s``
    and all; ``/etc/skynet/obsticket.conf`` gives its own section."""
    conf = compat_dir / "boss-standard-workflow" / "conf"
    config = load_config(
        conf / "supervisor" / "obsticket.conf",
        environ={"BOSS_SKYNET_CONFIG_DIR": str(conf), "BOSS_SKYNET_INCLUDE_DIR": str(tmp_path)},
    )
    assert (config.name, config.queue, config.regexp) == ("obsticket", "obsticket", "obsticket")
    assert config.code == "/usr/share/boss-skynet/obsticket.py"
    assert config.section("obsticket") == {"prjdir": "/var/lib/obsticket"}
    program = config.section("program:obsticket")
    assert program["process_name"] == "%(program_name)s_%(process_num)s"


# -- debug_trace as the process sets it -----------------------------------------------


def test_debug_flags_as_strings() -> None:
    assert flag("True") and flag("true") and flag(True)
    assert not flag("False") and not flag("false") and not flag(False) and not flag(None)
    assert not flag("") and not flag(1)


# -- the handler contract --------------------------------------------------------------


class Plain:
    """A SkyNET handler: a plain class, ``self.log`` used, never set."""

    def handle_wi(self, wi: Workitem) -> None:
        self.log.info("handled %s", wi.fei["subid"])
        wi.result = True


def test_handlers_get_a_logger_named_for_the_participant(setup: Setup) -> None:
    handler = Plain()
    Runtime(setup.ini(participant={"code": ""}), handler=handler)
    assert isinstance(handler.log, logging.Logger)
    assert handler.log.name == "boss.participant.tester"
    assert callable(handler.send_to_engine)  # type: ignore[attr-defined]


@contextlib.contextmanager
def run_in_thread(runtime: Runtime) -> Iterator[Runtime]:
    status: list[int] = []
    thread = threading.Thread(target=lambda: status.append(runtime.run()), daemon=True)
    thread.start()
    try:
        assert runtime.ready.wait(15)
        yield runtime
    finally:
        runtime.stop()
        thread.join(15)
    assert status == [0]


def test_self_log_and_string_debug_trace(
    setup: Setup, peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    handler = Plain()
    runtime = Runtime(setup.ini(participant={"code": "", "debug_trace": "false"}), handler=handler)
    with run_in_thread(runtime):
        quiet = setup.workitem(fields={"debug_trace": "False"})
        loud = setup.workitem(fields={"debug_trace": "True"})
        peer.publish(setup.queue, quiet, reply_to=setup.engine)
        peer.publish(setup.queue, loud, reply_to=setup.engine)
        replies = peer.collect(setup.engine, 2)
        assert all(r["fields"]["__result__"] is True for r in replies)
    handled = [r for r in caplog.records if r.name == "boss.participant.tester"]
    assert sorted(r.getMessage() for r in handled) == sorted(
        f"handled {w['fei']['subid']}" for w in (quiet, loud)
    )
    text = caplog.text
    assert f"received {loud['fei']['wfid']} {loud['fei']['subid']}" in text
    assert f"received {quiet['fei']['wfid']} {quiet['fei']['subid']}" not in text


# -- deferred replies ------------------------------------------------------------------


class Ticket(Participant):
    """A lock written as obsticket is: the second ``get`` is held
    (``wid.forget = True``) and replied by ``send_to_engine`` when the
    first holder releases, from a thread of its own."""

    def __init__(self) -> None:
        self.held: list[str] = []
        self.locked = False

    def send_to_engine(self, wi: Any) -> None:
        """Replaced by the runtime, as SkyNET's Exo replaced it."""

    def handle_wi(self, wid: Workitem) -> None:
        action = wid.params.get("action")
        if action == "get":
            if self.locked:
                self.held.append(json.dumps(wid.to_dict()))
                wid.forget = True
                return
            self.locked = True
            wid.result = True
        elif action == "release":
            if self.held:
                waiting = Workitem(json.loads(self.held.pop(0)))
                waiting.result = True
                timer = threading.Timer(0.2, self.send_to_engine, [waiting])
                timer.start()
            else:
                self.locked = False
            wid.result = True


def test_held_workitem_is_replied_later(setup: Setup, peer: Peer) -> None:
    runtime = Runtime(setup.ini(participant={"code": ""}), handler=Ticket())
    with run_in_thread(runtime):
        first = setup.workitem(params={"action": "get"})
        second = setup.workitem(params={"action": "get"})
        release = setup.workitem(params={"action": "release"})
        peer.publish(setup.queue, first, reply_to=setup.engine)
        [got] = peer.collect(setup.engine)
        assert got["fei"] == first["fei"] and got["fields"]["__result__"] is True
        peer.publish(setup.queue, second, reply_to=setup.engine)
        peer.publish(setup.queue, release, reply_to=setup.engine)
        replies = peer.collect(setup.engine, 2)
        by_subid = {r["fei"]["subid"]: r for r in replies}
        assert set(by_subid) == {second["fei"]["subid"], release["fei"]["subid"]}
        held = by_subid[second["fei"]["subid"]]
        assert held["fei"] == second["fei"]
        assert held["fields"]["__result__"] is True
        assert "forget" not in held
        assert held["instance"] == runtime.instance
        assert peer.get(setup.engine) is None  # nothing more


def test_send_to_engine_refuses_what_the_engine_cannot_read(setup: Setup) -> None:
    handler = Ticket()
    Runtime(setup.ini(participant={"code": ""}), handler=handler)
    with pytest.raises(ValueError, match="fei"):
        handler.send_to_engine({"fields": {}})


def test_real_obsticket_holds_and_releases(
    setup: Setup, peer: Peer, compat_dir: Path, tmp_path: Path
) -> None:
    """The standard workflow's obsticket.py, unchanged, through the runtime."""
    try:
        import RuoteAMQP  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"RuoteAMQP is not importable yet: {exc}")
    code = compat_dir / "boss-standard-workflow" / "participants" / "obsticket.py"
    prjdir = tmp_path / "obsticket"
    prjdir.mkdir()
    ini = setup.ini(participant={"code": str(code)})
    ini.write_text(ini.read_text() + f"\n[obsticket]\nprjdir = {prjdir}\n")
    runtime = Runtime(ini)
    with run_in_thread(runtime):
        first = setup.workitem(params={"action": "get", "lock_project": "Mer:Core"})
        second = setup.workitem(params={"action": "get", "lock_project": "Mer:Core"})
        second["fei"]["wfid"] = f"{second['fei']['wfid']}-2"
        release = setup.workitem(params={"action": "release", "lock_project": "Mer:Core"})
        peer.publish(setup.queue, first, reply_to=setup.engine)
        [got] = peer.collect(setup.engine)
        assert got["fei"] == first["fei"] and got["fields"]["__result__"] is True
        peer.publish(setup.queue, second, reply_to=setup.engine)
        peer.publish(setup.queue, release, reply_to=setup.engine)
        replies = peer.collect(setup.engine, 2)
        by_subid = {r["fei"]["subid"]: r for r in replies}
        assert set(by_subid) == {second["fei"]["subid"], release["fei"]["subid"]}
        assert by_subid[second["fei"]["subid"]]["fei"] == second["fei"]
        assert by_subid[second["fei"]["subid"]]["fields"]["__result__"] is True
        assert by_subid[release["fei"]["subid"]]["fields"]["__result__"] is True


# -- handle_wi_control ---------------------------------------------------------------


class _SkyNetHandler:
    """A SkyNET-era handler: no handle_cancel, only handle_wi_control."""

    def __init__(self) -> None:
        self.controls: list[Any] = []
        self.cancelled = threading.Event()

    def handle_wi_control(self, ctrl: Any) -> None:
        self.controls.append(ctrl)
        self.cancelled.set()

    def handle_wi(self, wi: Workitem) -> None:
        # a long step that stops when SkyNET's cancel control arrives
        assert self.cancelled.wait(10), "handle_wi_control('cancel') never came"


def test_a_cancel_reaches_handle_wi_control_as_skynet_did() -> None:
    from participants.testing import ParticipantTester, make_workitem

    handler = _SkyNetHandler()
    with ParticipantTester(handler) as tester:
        out = tester.handle(make_workitem("build", {"x": 1}), cancel=True)
    assert out.cancelled and not out.replied
    [ctrl] = handler.controls
    assert ctrl.message == "cancel"
    assert not ctrl.start() and not ctrl.stop() and not ctrl.die()


def test_lifecycle_control_answers_skynets_start_stop_die() -> None:
    from participants.handler import LifecycleControl

    assert LifecycleControl("start").start()
    assert LifecycleControl("stop").stop()
    assert LifecycleControl("die", reason="broker gone").die()
