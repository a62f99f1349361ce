"""The real BOSS standard workflow's participants, unchanged, run by
``boss-participant`` as OS processes, driven by real runs of engine workers
on both brokers, with their external services faked at the protocol
boundary (tests/compat/servers.py, tests/standard/fake_obs.py).

* ``site`` (module scope, parametrised over ``rabbitmq`` and ``embedded``):
  a ``CompatSite``: one ``System`` (tests/e2e/conftest.py: its own queue and
  key prefix), one engine worker, the fakes (OBS API, SMTP, IRC server with
  the supybot Notify bot and a watcher in ``#boss``), a SkyNET configuration
  directory written as a BOSS site has it (``skynet.conf`` with ``[boss]
  amqp_*`` on RabbitMQ, ``conf.d/bsw-common.conf`` with ``[obs] oscrc``,
  ``<name>.conf`` per participant) and a SkyNET program file per
  participant. ``site.start(names)`` starts the real participants (once per
  module: tests share them; each run has its own wfid and request id).

The participants import ``buildservice`` (python-buildservice, a package a
BOSS site installs, on no registry): tests/compat/site/buildservice.py
stands in for it over the real ``osc``; the participants' ``PYTHONPATH`` is
that directory and the workflow's ``modules/`` (``boss.obs``, ``boss.bz``...).
"""

from __future__ import annotations

import copy
import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from engine.launchers.base import RawEvent
from engine.launchers.obs import ObsSource
from tests.compat.servers import FakeBugzilla, NotifyBot, SmtpSink, fake_bugzilla, smtp_server
from tests.e2e.conftest import Proc, System
from tests.standard.fake_obs import PASSWORD, USER, FakeObs, fake_obs
from tests.standard.ircserver import Watcher, irc_server
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
SITE_PACKAGES = Path(__file__).with_name("site")
CHANNEL = "#boss"
OBS_ALIAS = "opensuse.obs"  # the namespace of the recorded bus events: ev.namespace

#: participant name -> its file in participants/ (the SkyNET program files'
#: ``code``; only bugzilla's differs from its name)
CODE = {"bugzilla": "bz.py"}

#: BOSS's own successors of real participants that cannot run on Python 3
#: as the compat copy has them (``start(..., successors=...)``): the
#: successor runs with the same SkyNET configuration (notify.conf, the real
#: templates). notify.py's fixup_utf8 calls str.decode (test_participants.py).
SUCCESSORS = {"notify": ROOT / "participants" / "standard" / "notify.py"}


def compat_payload(compat_dir: Path, name: str) -> dict[str, Any]:
    """A recorded OBS bus message (shared/payloads/obs/<name>.json)."""
    path = compat_dir.parent / "payloads" / "obs" / f"{name}.json"
    if not path.exists():
        pytest.skip(f"no recorded OBS event at {path}")
    return json.loads(path.read_text())


def obs_event_fields(message: dict[str, Any], target: str | None = None) -> dict[str, Any]:
    """``fields.ev`` of the run ``boss launcher obs`` launches for a bus
    message (``{"routing_key", "body"}``), for ``target`` (default: the
    first target project), through the launcher's own normalisation."""
    raw = RawEvent(
        body=json.dumps(message["body"]).encode(),
        routing_key=message["routing_key"],
        headers={},
    )
    [event] = ObsSource().normalise(raw)
    return event.ev(target or event.targets[0])


def seed_obs(obs: FakeObs, ev: dict[str, Any], *, built: str = "succeeded") -> None:
    """OBS state for a request event: the request, its submitter and the
    ``boss`` user (persons with mail), every target project (a ``standard``
    repository for i586, maintained by ``maintainer``) and the source project
    (one repository building against each target only), the packages' sources
    (changed on the source side), build results (``built``) and published
    repositories."""
    rid = str(ev["id"])
    obs.add_request(
        rid, copy.deepcopy(ev["actions"]), who=ev["who"], description=ev.get("description", "")
    )
    obs.add_person(ev["who"], f"{ev['who']}@example.com", "Jane Doe")
    obs.add_person(USER, "boss@example.com", "BOSS")
    obs.add_person("maintainer", "maintainer@example.com", "Mai Ntainer")
    sources: dict[str, list[tuple[str, str]]] = {}
    for action in ev["actions"]:
        src, tgt = action["sourceproject"], action["targetproject"]
        obs.metas.setdefault(
            tgt,
            {
                "repositories": [{"name": "standard", "paths": [("Core", "standard")]}],
                "persons": [("maintainer", "maintainer")],
            },
        )
        repo = tgt.replace(":", "_")
        sources.setdefault(src, [])
        if (repo, tgt) not in sources[src]:
            sources[src].append((repo, tgt))
        obs.add_package(src, action["sourcepackage"], {f"{action['sourcepackage']}.spec": "v2\n"})
        obs.add_package(tgt, action["targetpackage"], {f"{action['targetpackage']}.spec": "v1\n"})
        obs.results.setdefault(tgt, []).append(
            {"repository": "standard", "arch": "i586", "packages": {action["targetpackage"]: built}}
        )
    for src, repos in sources.items():
        obs.metas[src] = {
            "repositories": [{"name": r, "paths": [(t, "standard")]} for r, t in repos],
            "persons": [(ev["who"], "maintainer")],
        }
        pkgs = {a["sourcepackage"]: built for a in ev["actions"] if a["sourceproject"] == src}
        obs.results[src] = [
            {"repository": r, "arch": "i586", "packages": dict(pkgs)} for r, _ in repos
        ]


@dataclass
class CompatSite:
    system: System
    compat: Path  # boss-standard-workflow
    obs: FakeObs
    smtp: SmtpSink
    smtp_address: str
    bot: NotifyBot
    watcher: Watcher
    bugzilla: FakeBugzilla
    skynet: Path
    amqp: dict[str, str] | None  # [boss] amqp_* keys (RabbitMQ), else broker_url is written
    started: dict[str, list[Proc]] = field(default_factory=dict)
    #: participants run by their BOSS successor (name -> code)
    successors: dict[str, Path] = field(default_factory=dict)

    # -- configuration, as a BOSS site has it ------------------------------------------
    def write_skynet(self) -> None:
        tmp = self.system.tmp
        conf_d = self.skynet / "conf.d"
        conf_d.mkdir(parents=True, exist_ok=True)
        boss = "".join(f"amqp_{k} = {v}\n" for k, v in (self.amqp or {}).items())
        (self.skynet / "skynet.conf").write_text(f"[boss]\n{boss}\n[skynet]\nlog_level = info\n")
        oscrc = tmp / "oscrc.conf"
        # conf/oscrc.conf's shape: the apiurl is an alias, the one the OBS
        # plugin named the OBS with (ev.namespace)
        oscrc.write_text(
            f"[general]\napiurl = {OBS_ALIAS}\n\n[{self.obs.url}]\n"
            f"aliases = {OBS_ALIAS},OBS\nuser = {USER}\npass = {PASSWORD}\nallow_http = 1\n"
        )
        oscrc.chmod(0o600)
        # conf/skynet/bsw-common.conf: [obs] oscrc for every OBS participant
        (conf_d / "bsw-common.conf").write_text(f"[obs]\noscrc = {oscrc}\n")
        prjdir = tmp / "obsticket"
        prjdir.mkdir(exist_ok=True)
        (self.skynet / "obsticket.conf").write_text(f"[obsticket]\nprjdir = {prjdir}\n")
        templates = self.compat / "templates"
        (self.skynet / "notify.conf").write_text(
            f"[notify]\nsmtp_server = {self.smtp_address}\nemail_store = {templates}\n"
            "default_sender = boss_no_reply@example.com\nallowed_attachment_dirs = /tmp\n"
            "email_whitelist =\nemail_blacklist =\n"
        )
        # split_lines: the participant's default (true) calls str.split_lines,
        # which does not exist (it never did); sites ran it with false, the
        # old supybot Notify plugin's one message per connection
        (self.skynet / "notify_irc.conf").write_text(
            f"[notify_irc]\nircbot_host = 127.0.0.1\nircbot_port = {self.bot.port}\n"
            "split_lines = false\n"
        )
        (self.skynet / "bugzilla.conf").write_text(
            "[bugzilla]\nbzs = meego\n\n[meego]\nplatforms = MeeGo,\n"
            "regexp = BMC#(?P<key>\\d+)\n"
            f"bugzilla_server = {self.bugzilla.url}\nmethod = XMLRPC\n"
            f"bugzilla_user = {self.bugzilla.user}\nbugzilla_pwd = {self.bugzilla.password}\n"
            f"comment_template = {templates / 'bugzilla-comment'}\n"
            f"template_store = {templates}\n"
        )

    def program_file(self, name: str) -> Path:
        """conf/supervisor/<name>.conf's ``[participant]`` section, with the
        code in place and this test's queue; the ``[boss]`` keys the System
        uses (its broker only when it is not named by ``amqp_*``)."""
        code = self.successors.get(name) or (
            self.compat / "participants" / CODE.get(name, f"{name}.py")
        )
        queue = f"{self.system.prefix}.{name}"
        boss = self.system._boss_section()
        if self.amqp:
            boss = "".join(x + "\n" for x in boss.splitlines() if not x.startswith("broker_url"))
        path = self.system.tmp / "supervisor" / f"{name}.conf"
        path.parent.mkdir(exist_ok=True)
        path.write_text(
            f"[program:{name}]\ncommand = /usr/bin/skynet_exo {path}\n"
            "process_name = %(program_name)s_%(process_num)s\nnumprocs = 1\n\n"
            f"[participant]\nname = {name}\nqueue = {queue}\nregexp = {name}\n"
            f"code = {code}\n\n{boss}"
        )
        return path

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOSS_")}
        home = self.system.tmp / "home"
        home.mkdir(exist_ok=True)
        env.update(
            PYTHONPATH=os.pathsep.join(
                [str(ROOT), str(SITE_PACKAGES), str(self.compat / "modules")]
            ),
            BOSS_SKYNET_CONFIG_DIR=str(self.skynet),
            HOME=str(home),  # osc keeps its cookie jar there
            PYTHONUNBUFFERED="1",
        )
        return env

    # -- participants -------------------------------------------------------------------
    def spawn(self, name: str) -> Proc:
        import subprocess

        log = self.system.tmp / f"{name}-0.log"
        argv = [
            sys.executable,
            "-m",
            "participants.runtime",
            str(self.program_file(name)),
        ]
        fh = log.open("ab")
        popen = subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, env=self.env(), cwd=ROOT
        )
        fh.close()
        proc = Proc(f"{name}-0", popen, log)
        self.system.procs.append(proc)
        return proc

    def start(self, *names: str, successors: tuple[str, ...] = ()) -> None:
        """Start (once) and register the real participants ``names``; returns
        when each consumes its queue. Those in ``successors`` run BOSS's
        successor (``SUCCESSORS``) with the same configuration."""
        for name in successors:
            self.successors[name] = SUCCESSORS[name]
        new = [n for n in names if n not in self.started]
        for name in new:
            self.system.engine.register(name, f"{self.system.prefix}.{name}", regex=False)
            self.started[name] = [self.spawn(name)]
        for name in new:
            proc = self.started[name][0]
            wait_for(
                lambda p=proc: "consuming" in p.log.read_text(errors="replace") or not p.alive(),
                60,
                f"participant {name} to consume",
            )
            if not proc.alive():
                raise AssertionError(
                    f"participant {name} did not start (exit {proc.popen.poll()}):\n"
                    + proc.log.read_text(errors="replace")[-4000:]
                )

    def outcome(self, wfid: str, timeout: float = 60) -> tuple[str | None, list[Any]]:
        """Once the run finished or a step of it failed: its status and errors."""

        def done() -> tuple[str | None, list[Any]] | None:
            loaded = self.system.store.load_run(wfid)
            if not loaded:
                return None
            status, errors = loaded[0]["status"], loaded[0].get("errors") or []
            return (status, errors) if status == "finished" or errors else None

        return wait_for(done, timeout, f"run {wfid} to finish or fail")

    # -- runs ---------------------------------------------------------------------------
    def run(self, definition: str, fields: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        """Launch, wait until finished, return the run's fields."""
        wfid = self.system.launch(definition, fields)
        self.system.wait_status(wfid, timeout=timeout)
        return self.system.engine.run(wfid).fields

    def said(self, text: str, timeout: float = 15) -> str:
        """The first line said on IRC (seen by the watcher in ``#boss``)
        containing ``text``."""
        return wait_for(
            lambda: next((t for t in self.watcher.texts() if text in t), None),
            timeout,
            f"{text!r} on IRC; seen {self.watcher.texts()[-5:]}",
        )

    def new_request_event(
        self, message: dict[str, Any], *, one_action: bool = False, built: str = "succeeded"
    ) -> dict[str, Any]:
        """``ev`` for a recorded request event given a request number of its
        own (runs of a module share the fake OBS), seeded into the fake OBS."""
        message = copy.deepcopy(message)
        body = message["body"]
        body["number"] = body["id"] = int(uuid.uuid4().int % 10**7)
        if one_action:
            body["actions"] = body["actions"][:1]
        ev = obs_event_fields(message)
        seed_obs(self.obs, ev, built=built)
        return ev


def _amqp_keys(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    return {
        "host": parts.hostname or "127.0.0.1",
        "user": unquote(parts.username or "guest"),
        "pwd": unquote(parts.password or "guest"),
        "vhost": unquote(parts.path[1:]) or "/",
    }


@pytest.fixture(scope="module", params=["rabbitmq", "embedded"])
def site(
    request: pytest.FixtureRequest,
    compat_dir: Path,
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[CompatSite]:
    try:
        import Cheetah  # noqa: F401
        import osc  # noqa: F401
    except ImportError as exc:
        pytest.skip(
            f"the participants' dependencies are not installed ({exc}): pip install -e '.[test]'"
        )
    if request.param == "rabbitmq":
        broker = request.getfixturevalue("rabbitmq_url")
        amqp = _amqp_keys(broker) if urlsplit(broker).port in (None, 5672) else None
    else:
        broker = request.getfixturevalue("embedded_broker_url")
        amqp = None
    tmp = tmp_path_factory.mktemp(f"compat-{request.param}")
    (tmp / "processes").mkdir()
    system = System(tmp, broker, redis_url, f"compat{uuid.uuid4().hex[:10]}")
    failed = False
    try:
        with (
            fake_obs() as obs,
            smtp_server() as (sink, smtp_address),
            irc_server() as (host, port),
            fake_bugzilla() as bz,
        ):
            watcher = Watcher(host, port, CHANNEL)
            bot = NotifyBot(host, port)
            try:
                site = CompatSite(
                    system=system,
                    compat=compat_dir / "boss-standard-workflow",
                    obs=obs,
                    smtp=sink,
                    smtp_address=smtp_address,
                    bot=bot,
                    watcher=watcher,
                    bugzilla=bz,
                    skynet=tmp / "etc-skynet",
                    amqp=amqp,
                )
                site.write_skynet()
                system.worker()
                yield site
                failed = request.session.testsfailed > 0
            finally:
                bot.close()
                watcher.close()
    finally:
        if failed:
            print(system.logs())
        try:
            invalid = system.invalid_events()
            assert not invalid, f"invalid Eiffel events were dead-lettered: {invalid}"
        finally:
            system.cleanup()
