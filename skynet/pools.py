"""Participant pools: install, uninstall, apply, scale, start, stop, status.

Independent of click and Flask: the CLI and the REST API both call a
``Pools``. It writes program files (``skynet.programs``) into the include
directory and drives supervisord over XML-RPC (``skynet.supervisor``); with
no ``supervisor_url`` configured it starts (and owns) a private supervisord
first (``skynet.private``).

``apply`` is ``supervisorctl update``: ``reloadConfig()`` gives the groups
added, changed and removed since supervisord last read its files; removed
and changed groups are stopped (gracefully: SIGTERM, then SIGKILL after
``stopwaitsecs``) and removed, changed and added groups are added (and
start when autostart is on); unchanged groups are never touched. Every
instance is its own group (``programs.py``), so ``scale`` is a write and an
``apply`` that only adds or removes the instances beyond the kept ones.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import ENGINE_ONLY_KEYS
from engine.store import acl
from skynet import broker_users, private, programs, store_users
from skynet.config import SkynetConfig
from skynet.errors import (
    Conflict,
    Invalid,
    NotPermitted,
    SkynetError,
    StartFailed,
    UnknownParticipant,
)
from skynet.permissions import Caller, check_manage, check_run_as
from skynet.programs import ProgramSpec
from skynet.supervisor import Fault, Supervisor, states
from skynet.validate import check_code, check_name, check_user

__all__ = ["ApplyResult", "Pools"]

#: how many instances a pool may have
MAX_INSTANCES = 100
#: supervisor fault codes that mean "already where you want it"
_ALREADY_STARTED, _NOT_RUNNING, _ALREADY_ADDED = 60, 70, 90


@dataclass
class ApplyResult:
    """The groups (instances) ``apply`` added, restarted and removed."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"added": self.added, "changed": self.changed, "removed": self.removed}

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


class Pools:
    """The pools of one SkyNET host (see the module docstring)."""

    def __init__(self, config: SkynetConfig, caller: Caller | None = None) -> None:
        self.config = config
        self.caller = caller or Caller.current()
        self._client: Supervisor | None = None

    # -- supervisord ------------------------------------------------------------

    @property
    def client(self) -> Supervisor:
        """The XML-RPC client (the private supervisord is started on first use)."""
        if self._client is None:
            if self.config.private:
                private.ensure_running(self.config)
            self._client = Supervisor(
                self.config.server_url,
                self.config.supervisor_username,
                self.config.supervisor_password,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def supervisord_uid(self) -> int | None:
        """The user supervisord runs as (None when it cannot be told: a remote one)."""
        if self.config.private:
            return os.geteuid()
        if not self.config.server_url.startswith("unix://"):
            return None
        try:
            return os.stat(f"/proc/{self.client.supervisor.getPID()}").st_uid
        except OSError:
            return None

    # -- program files ----------------------------------------------------------

    def path_of(self, name: str) -> Path:
        return self.config.include_path / f"{name}.conf"

    def specs(self) -> dict[str, ProgramSpec]:
        """Every installed participant, by name (files that are not ours are skipped)."""
        out: dict[str, ProgramSpec] = {}
        directory = self.config.include_path
        if not directory.is_dir():
            return out
        for path in sorted(directory.glob("*.conf")):
            try:
                spec = programs.parse(path)
            except (Invalid, ValueError):
                continue
            if spec.name:
                out[spec.name] = spec
        return out

    def get(self, name: str) -> ProgramSpec:
        path = self.path_of(name)
        if not path.is_file():
            raise UnknownParticipant(name)
        return programs.parse(path)

    def names(self, names: Iterable[str] | None = None, *, all_: bool = False) -> list[str]:
        """The names asked for (each checked to be installed), or all with ``all_``."""
        wanted = list(names or ())
        if all_:
            return sorted(self.specs())
        if not wanted:
            raise Invalid("name a participant, or give --all")
        for name in wanted:
            self.get(name)
        return wanted

    def _write(self, spec: ProgramSpec) -> None:
        path = Path(spec.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")  # not *.conf: supervisord ignores it
        tmp.write_text(programs.render(spec), encoding="utf-8")
        if self._own_user(spec) is not None:
            # its broker password: for supervisord and the participant only
            tmp.chmod(0o600)
            if spec.user and os.geteuid() == 0:
                uid = check_user(spec.user).pw_uid
                os.chown(tmp, uid, -1)
        tmp.replace(path)

    def _own_user(self, spec: ProgramSpec) -> str | None:
        """The participant's own broker user when its ``[boss] broker_url``
        names it (``participant_users``), else None."""
        user = broker_users.user_of_url(spec.boss.get("broker_url", ""))
        return user if user == broker_users.user_name(spec.queue) else None

    def _own_store_user(self, spec: ProgramSpec) -> str | None:
        """The participant's own store user when its ``[boss] redis_url``
        names it (``store_users``), else None."""
        user = store_users.user_of_url(spec.boss.get("redis_url", ""))
        own = store_users.user_name(self.config.host_name, spec.name)
        return user if user == own else None

    def _store_url(self, spec: ProgramSpec, old: ProgramSpec | None = None) -> ProgramSpec:
        """``spec`` with the ``redis_url`` its declared store use calls for
        (``store_users``): none declared, the host's without password; else
        its own store user's (kept from ``old``, or made with
        ``redis_admin_url``), or the host's as it is without an admin URL."""
        host_url = self.config.boss.redis_url
        roles = store_users.declared_roles(spec.participant)
        boss = dict(spec.boss)
        if not roles:
            if host_url:
                boss["redis_url"] = acl.strip_password(host_url)
            return spec.replace(boss=boss)
        if old is not None and self._own_store_user(old) is not None:
            boss["redis_url"] = old.boss["redis_url"]
        elif self.config.boss.redis_admin_url:
            user = store_users.user_name(self.config.host_name, spec.name)
            boss["redis_url"] = store_users.create_participant_user(
                self.config.boss, user, roles
            ).url
        elif host_url:
            boss["redis_url"] = host_url
        return spec.replace(boss=boss)

    def _template(self, **values: Any) -> ProgramSpec:
        boss = self.config.boss
        defaults = type(boss)()
        section = {
            f: str(getattr(boss, f))
            for f in boss.__dataclass_fields__
            if f != "source"
            and f not in ENGINE_ONLY_KEYS  # secrets participants must not hold
            and getattr(boss, f) != getattr(defaults, f)
        }
        return ProgramSpec(
            boss=section,
            python=self.config.python,
            startsecs=self.config.startsecs,
            startretries=self.config.startretries,
            stopwaitsecs=self.config.stopwaitsecs,
            log_dir=str(self.config.log_path),
            **values,
        )

    # -- permissions ------------------------------------------------------------

    def _run_as_uid(self, spec_user: str | None) -> int:
        if spec_user:
            return check_user(spec_user).pw_uid
        uid = self.supervisord_uid()
        return 0 if uid is None else uid

    def _may(self, spec: ProgramSpec, what: str = "manage") -> None:
        check_manage(self.caller, self._run_as_uid(spec.user), self.config.group, what)

    # -- install / uninstall / rebuild ------------------------------------------

    def install(
        self,
        code: str | os.PathLike[str],
        name: str | None = None,
        *,
        queue: str | None = None,
        regexp: str | None = None,
        user: str | None = None,
        instances: int = 1,
        class_name: str = "ParticipantHandler",
        sections: dict[str, dict[str, str]] | None = None,
        options: dict[str, str] | None = None,
        apply: bool = True,
        wait: bool = True,
    ) -> ProgramSpec:
        """Check everything, write the program file, then (``apply``) add its
        instances, which start (``wait``: until RUNNING). Nothing is written
        when a check fails; the file is removed again if supervisord refuses it."""
        code_path = Path(code).expanduser()
        name = check_name(name or code_path.stem)
        if not 1 <= instances <= MAX_INSTANCES:
            raise Invalid(f"instances = {instances}: must be 1 to {MAX_INSTANCES}")
        if queue is not None and not queue.strip():
            raise Invalid("queue: must not be empty")
        if regexp:
            try:
                re.compile(regexp)
            except re.error as exc:
                raise Invalid(f"regexp {regexp!r}: not a regular expression: {exc}") from None
        for section in sections or {}:
            if section in programs.RESERVED or ":" in section:
                raise Invalid(f"[{section}]: a section skynet writes itself")
        path = self.path_of(name)
        if path.exists():
            raise Conflict(
                f"participant {name!r} is already installed ({path}); "
                "uninstall it first, or use another -n NAME"
            )
        run_as = self._run_as_uid(user)  # an unknown user: Invalid
        check_run_as(run_as, self.supervisord_uid())
        check_manage(self.caller, run_as, self.config.group, "install")
        code_path = check_code(code_path, class_name, python=self.config.python)
        taken = {p["group"] for p in self.client.supervisor.getAllProcessInfo()}
        clash = taken & set(programs.instance_names(name, instances))
        if clash:
            raise Conflict(f"supervisord already runs programs named {', '.join(sorted(clash))}")
        spec = self._template(
            name=name,
            code=str(code_path),
            queue=queue or name,
            class_name=class_name,
            regexp=regexp or None,
            user=user or None,
            instances=instances,
            participant=dict(options or {}),
            sections=dict(sections or {}),
            path=str(path),
        )
        store_users.declared_roles(spec.participant)  # Invalid before anything is made
        store_user = None
        made = None
        if self.config.boss.participant_users:
            # a pool on a queue another participant consumes shares its user
            shared = next(
                (o for o in self.specs().values() if o.queue == spec.queue and self._own_user(o)),
                None,
            )
            if shared is not None:
                url = shared.boss["broker_url"]
            else:
                made = broker_users.create_participant_user(self.config.boss, spec.queue)
                url = made.url
            spec = spec.replace(boss={**spec.boss, "broker_url": url})
        try:
            spec = self._store_url(spec)
            store_user = self._own_store_user(spec)
            self._write(spec)
            if apply:
                try:
                    self.apply([name])
                except SkynetError:
                    path.unlink(missing_ok=True)
                    with contextlib.suppress(SkynetError):
                        self.apply([name])
                    raise
        except BaseException:
            if made is not None and not self._queue_used(spec.queue, but=name):
                with contextlib.suppress(SkynetError):
                    broker_users.remove_participant_user(self.config.boss, spec.queue)
            if store_user is not None:
                with contextlib.suppress(SkynetError):
                    store_users.remove_participant_user(self.config.boss, store_user)
            raise
        if apply and wait:
            self.wait_started(spec.programs)
        return spec

    def uninstall(self, name: str) -> ApplyResult:
        """Stop and remove the participant's instances and its program file."""
        spec = self.get(name)
        self._may(spec, "uninstall")
        Path(spec.path).unlink()
        result = self.apply([name])
        if self._own_user(spec) is not None and not self._queue_used(spec.queue):
            broker_users.remove_participant_user(self.config.boss, spec.queue)
        store_user = self._own_store_user(spec)
        if store_user is not None and self.config.boss.redis_admin_url:
            store_users.remove_participant_user(self.config.boss, store_user)
        return result

    def _queue_used(self, queue: str, *, but: str | None = None) -> bool:
        """Whether another installed participant than ``but`` consumes ``queue``
        (its pool shares the queue's broker user)."""
        return any(s.queue == queue for n, s in self.specs().items() if n != but)

    def rebuild(self, names: Iterable[str] | None = None, *, all_: bool = False) -> ApplyResult:
        """Rewrite program files from what they record, with this host's current
        settings (interpreter, ``[boss]``, supervisor options), then apply."""
        chosen = self.names(names, all_=all_)
        for name in chosen:
            old = self.get(name)
            self._may(old)
            spec = self._template(
                name=old.name,
                code=old.code,
                queue=old.queue,
                class_name=old.class_name,
                regexp=old.regexp,
                user=old.user,
                instances=old.instances,
                enabled=old.enabled,
                participant=old.participant,
                sections=old.sections,
                path=old.path,
            )
            if self._own_user(old) is not None:  # keep its own broker user
                spec = spec.replace(boss={**spec.boss, "broker_url": old.boss["broker_url"]})
            spec = self._store_url(spec, old)  # and its own store user
            self._write(spec)
        return self.apply(chosen)

    # -- apply ------------------------------------------------------------------

    def apply(self, names: Iterable[str] | None = None) -> ApplyResult:
        """``supervisorctl update`` (restricted to ``names``' instances if given)."""
        only = set(names) if names is not None else None
        with self._locked():
            self._refresh(only)
            added, changed, removed = self.client.supervisor.reloadConfig()[0]

            def mine(groups: list[str]) -> list[str]:
                return sorted(
                    g for g in groups if only is None or programs.participant_of(g) in only
                )

            result = ApplyResult(mine(added), mine(changed), mine(removed))
            going = result.removed + result.changed
            if going:
                self._stop_programs(going)
                for group in going:
                    # (already removed by another apply: fine)
                    with contextlib.suppress(UnknownParticipant):
                        self.client.supervisor.removeProcessGroup(group)
            for group in result.changed + result.added:
                try:
                    self.client.supervisor.addProcessGroup(group)
                except Fault as exc:
                    if exc.code != _ALREADY_ADDED:  # added meanwhile by another apply
                        raise
            return result

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One apply at a time on this host (the CLI and the API may both
        run one): a lock file in the include directory."""
        import fcntl

        try:
            self.config.include_path.mkdir(parents=True, exist_ok=True)
            fh = open(self.config.include_path / ".skynet.lock", "a")  # noqa: SIM115
        except OSError:  # a read-only include dir: supervisord's own checks remain
            yield
            return
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _refresh(self, only: set[str] | None) -> None:
        """Re-render program files edited by hand (``[participant]``, ``[boss]``,
        own sections, ``[skynet] instances``), so that their program sections
        (and the config digest in them) say what the file now says."""
        for name, spec in self.specs().items():
            if only is not None and name not in only:
                continue
            path = Path(spec.path)
            if path.stem != name:
                raise Invalid(
                    f"{path}: [participant] name = {name}: the file must be called {name}.conf"
                )
            if path.read_text(encoding="utf-8") != programs.render(spec):
                self._write(spec)

    # -- enable / disable ---------------------------------------------------------

    def enable(self, name: str, *, wait: bool = True) -> ProgramSpec:
        """Autostart on, and start."""
        spec = self.get(name)
        self._may(spec)
        if not spec.enabled:
            spec = spec.replace(enabled=True)
            self._write(spec)
        self.apply([name])
        self.start([name], wait=wait)
        return spec

    def disable(self, name: str) -> ProgramSpec:
        """Stop, and autostart off (it stays stopped when supervisord restarts)."""
        spec = self.get(name)
        self._may(spec)
        self.stop([name])
        if spec.enabled:
            spec = spec.replace(enabled=False)
            self._write(spec)
        self.apply([name])
        return spec

    # -- start / stop -------------------------------------------------------------

    def start(self, names: Iterable[str], *, wait: bool = True) -> None:
        """Start every instance; ``wait`` until all are RUNNING (``StartFailed``
        as soon as one is in BACKOFF or FATAL)."""
        progs = self._programs_of(names)
        self._ask_each(
            progs,
            lambda state: state in (states.RUNNING, states.STARTING),
            self.client.supervisor.startProcess,
            _ALREADY_STARTED,
        )
        if wait:
            self.wait_started(progs)

    def stop(self, names: Iterable[str], *, wait: bool = True) -> None:
        """Stop every instance gracefully (SIGTERM: the workitem in hand is
        finished first); supervisor kills those still there after stopwaitsecs."""
        self._stop_programs(self._programs_of(names), wait=wait)

    def reload(self, names: Iterable[str], *, wait: bool = True) -> None:
        names = list(names)
        self.stop(names)
        self.start(names, wait=wait)

    def _programs_of(self, names: Iterable[str]) -> list[str]:
        out: list[str] = []
        for name in names:
            spec = self.get(name)
            self._may(spec)
            out.extend(spec.programs)
        return out

    def _info(self, progs: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        every = {
            p["name"]: p
            for p in self.client.supervisor.getAllProcessInfo()
            if p["group"] == p["name"]
        }
        if progs is None:
            return every
        return {p: every[p] for p in progs if p in every}

    def _ask_each(
        self,
        progs: list[str],
        there: Callable[[str | None], bool],
        ask: Callable[[str, bool], Any],
        raced: int,
    ) -> None:
        """Ask supervisord (``startProcess``, ``stopProcess``, not waiting)
        for each program whose state (None: supervisord has no such program)
        is not ``there`` yet. Starting and stopping differ only in these
        three arguments: the fault ``raced`` (already started, not running)
        means the program got there in the meantime, which is no error."""
        info = self._info(progs)
        for prog in progs:
            if there(info.get(prog, {}).get("statename")):
                continue
            try:
                ask(f"{prog}:{prog}", False)
            except Fault as exc:
                if exc.code != raced:
                    raise

    def _stop_programs(self, progs: list[str], *, wait: bool = True) -> None:
        self._ask_each(
            progs,
            lambda state: state is None or state in states.DOWN,
            self.client.supervisor.stopProcess,
            _NOT_RUNNING,
        )
        if wait:
            timeout = self.config.stopwaitsecs + self.config.wait_timeout
            self._wait(progs, lambda s: s in states.DOWN, timeout, "to stop")

    def wait_started(self, progs: list[str]) -> None:
        """Until every program is RUNNING (``StartFailed`` on BACKOFF/FATAL)."""
        timeout = self.config.startsecs + self.config.wait_timeout

        def started(state: str) -> bool:
            return state == states.RUNNING

        self._wait(progs, started, timeout, "to start", failed=states.FAILED)

    def _wait(
        self,
        progs: list[str],
        done: Callable[[str], bool],
        timeout: float,
        what: str,
        failed: frozenset[str] = frozenset(),
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            info = self._info(progs)
            now = {p: info[p]["statename"] if p in info else "ABSENT" for p in progs}
            bad = {p: s for p, s in now.items() if s in failed}
            if bad:
                raise StartFailed(
                    "FAILED: "
                    + "; ".join(f"{p} is {s}{self._why(info[p])}" for p, s in sorted(bad.items()))
                )
            if all(done(s) or s == "ABSENT" for s in now.values()):
                return
            if time.monotonic() > deadline:
                late = ", ".join(f"{p} ({s})" for p, s in sorted(now.items()) if not done(s))
                raise StartFailed(f"FAILED: {late} did not finish {what} within {timeout:g}s")
            time.sleep(0.1)

    def _why(self, info: dict[str, Any]) -> str:
        parts = []
        if info.get("spawnerr"):
            parts.append(info["spawnerr"])
        elif info.get("exitstatus"):
            parts.append(f"exit status {info['exitstatus']}")
        tail = self.tail(info["name"], 3)
        if tail:
            parts.append("log: " + " | ".join(tail))
        return f" ({'; '.join(parts)})" if parts else ""

    # -- scale --------------------------------------------------------------------

    def scale(self, name: str, instances: int, *, wait: bool = True) -> ApplyResult:
        """Run ``instances`` instances: the kept ones are not restarted; new ones
        start (if enabled), the highest-numbered ones go (gracefully)."""
        if not 1 <= instances <= MAX_INSTANCES:
            raise Invalid(f"instances = {instances}: must be 1 to {MAX_INSTANCES}")
        spec = self.get(name)
        self._may(spec)
        if spec.instances != instances:
            spec = spec.replace(instances=instances)
            self._write(spec)
        result = self.apply([name])
        if wait and spec.enabled and (result.added or result.changed):
            self.wait_started(result.added + result.changed)
        return result

    # -- status -------------------------------------------------------------------

    def status(
        self, names: Iterable[str] | None = None, *, enabled: bool | None = None
    ) -> list[dict[str, Any]]:
        """One entry per participant (see ``docs/skynet.md`` for the fields)."""
        specs = self.specs()
        if names is not None:
            wanted = list(names)
            for n in wanted:
                if n not in specs:
                    self.get(n)
            specs = {n: specs[n] for n in wanted}
        if enabled is not None:
            specs = {n: s for n, s in specs.items() if s.enabled == enabled}
        info = self._info()
        return [pool_status(spec, info) for spec in specs.values()]

    # -- logs -----------------------------------------------------------------------

    def tail(self, program: str, lines: int = 20) -> list[str]:
        """The last ``lines`` lines an instance wrote."""
        size = max(4096, lines * 400)
        try:
            text, _offset, _overflow = self.client.supervisor.tailProcessStdoutLog(program, 0, size)
        except SkynetError:
            return []
        return text.splitlines()[-lines:] if lines else []

    def logs(self, name: str, lines: int = 20) -> list[str]:
        """The last lines of every instance, prefixed with the instance's name."""
        out: list[str] = []
        for prog in self.get(name).programs:
            out.extend(f"{prog}: {line}" for line in self.tail(prog, lines))
        return out

    def follow(self, name: str, interval: float = 0.5) -> Iterator[str]:
        """New lines of every instance, for ever (``log -f``)."""
        progs = self.get(name).programs
        offsets: dict[str, int] = {}
        for prog in progs:
            with contextlib.suppress(SkynetError):
                offsets[prog] = self.client.supervisor.tailProcessStdoutLog(prog, 0, 0)[1]
        partial: dict[str, str] = {}
        while True:
            for prog in progs:
                try:
                    text, offsets[prog], _ = self.client.supervisor.tailProcessStdoutLog(
                        prog, offsets.get(prog, 0), 65536
                    )
                except SkynetError:
                    continue
                text = partial.pop(prog, "") + text
                *done, rest = text.split("\n")
                if rest:
                    partial[prog] = rest
                for line in done:
                    yield f"{prog}: {line}"
            time.sleep(interval)

    # -- registration -------------------------------------------------------------

    def register(self, name: str) -> dict[str, Any]:
        """Register the participant (its regexp, else its name) with the engine."""
        from skynet.engine_view import open_engine

        spec = self.get(name)
        self._may(spec)
        engine = open_engine(self.config.boss)
        reg = engine.register(spec.regexp or spec.name, spec.queue, regex=bool(spec.regexp))
        return {"pattern": reg.pattern, "regex": reg.regex, "queue": reg.queue}

    def unregister(self, name: str) -> bool:
        from skynet.engine_view import open_engine

        spec = self.get(name)
        self._may(spec)
        return bool(open_engine(self.config.boss).unregister(spec.regexp or spec.name))

    def manual_argv(self, name: str) -> list[str]:
        """The command line of one instance in the foreground."""
        spec = self.get(name)
        if spec.user and self._run_as_uid(spec.user) != os.geteuid():
            raise NotPermitted(f"{name} runs as {spec.user!r}: run 'skynet manual' as that user")
        return [spec.python, "-m", "participants.runtime", spec.path]


def aggregate(states_: list[str]) -> str:
    """One word for a pool: RUNNING, STOPPED, FAILED, STARTING, STOPPING,
    PARTIAL (some up, some down) or UNLOADED (not applied yet)."""
    if not states_ or all(s == "UNLOADED" for s in states_):
        return "UNLOADED"
    if any(s in states.FAILED for s in states_):
        return "FAILED"
    if all(s == states.RUNNING for s in states_):
        return "RUNNING"
    if all(s in states.DOWN for s in states_):
        return "STOPPED"
    if any(s == states.STARTING for s in states_):
        return "STARTING"
    if any(s == states.STOPPING for s in states_):
        return "STOPPING"
    return "PARTIAL"


def pool_status(spec: ProgramSpec, info: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A pool as JSON-able data: its settings and each instance's state."""
    instances = []
    for prog in spec.programs:
        p = info.get(prog)
        if p is None:
            instances.append({"name": prog, "state": "UNLOADED", "pid": None})
            continue
        instances.append(
            {
                "name": prog,
                "state": p["statename"],
                "pid": p["pid"] or None,
                "description": p["description"],
                "exitstatus": p["exitstatus"],
                "spawnerr": p["spawnerr"] or None,
                "since": p["start"] if p["pid"] else p["stop"],
            }
        )
    return {
        "name": spec.name,
        "queue": spec.queue,
        "regexp": spec.regexp,
        "code": spec.code,
        "class": spec.class_name,
        "user": spec.user,
        "enabled": spec.enabled,
        "instances": spec.instances,
        "file": spec.path,
        "state": aggregate([i["state"] for i in instances]),
        "running": sum(i["state"] == states.RUNNING for i in instances),
        "processes": instances,
    }
