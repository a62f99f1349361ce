"""A private supervisord that SkyNET starts and owns, for the embedded
default: no system supervisord, no root set-up.

Everything lives under the state directory (default
``~/.local/state/boss/skynet/``)::

    supervisord.conf   written here (socket 0700, include of the programs)
    supervisor.sock    its XML-RPC socket
    supervisord.pid    supervisord.log
    programs/*.conf    one program file per participant (the include dir)
    logs/              instances' logs

``ensure_running()`` is idempotent and safe to call from several processes
at once (a lock file serialises the start); ``stop()`` shuts it down and
its instances with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from skynet.config import SkynetConfig
from skynet.errors import SupervisorUnavailable
from skynet.supervisor import Supervisor

__all__ = ["conf_path", "ensure_running", "is_running", "stop", "write_conf"]

#: unix sockets have a path limit of 108 bytes (with the NUL)
MAX_SOCKET_PATH = 100


def conf_path(config: SkynetConfig) -> Path:
    return config.state_path / "supervisord.conf"


def pid_path(config: SkynetConfig) -> Path:
    return config.state_path / "supervisord.pid"


def render_conf(config: SkynetConfig) -> str:
    """The private supervisord's configuration file."""
    state = config.state_path
    return (
        "; written by skynet: the private supervisord of this user's participants\n"
        "[unix_http_server]\n"
        f"file = {config.socket_path}\n"
        "chmod = 0700\n\n"
        "[supervisord]\n"
        f"logfile = {state / 'supervisord.log'}\n"
        "logfile_maxbytes = 5MB\n"
        "logfile_backups = 2\n"
        f"pidfile = {pid_path(config)}\n"
        f"childlogdir = {config.log_path}\n"
        f"directory = {state}\n"
        "loglevel = info\n\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
        "[supervisorctl]\n"
        f"serverurl = unix://{config.socket_path}\n\n"
        "[include]\n"
        f"files = {config.include_path}/*.conf\n"
    )


def write_conf(config: SkynetConfig) -> Path:
    """Create the state directories and (re)write ``supervisord.conf``."""
    if len(str(config.socket_path)) > MAX_SOCKET_PATH:
        raise SupervisorUnavailable(
            f"state_dir {config.state_path} is too long for a unix socket path "
            f"({len(str(config.socket_path))} > {MAX_SOCKET_PATH} bytes); set a shorter one"
        )
    for d in (config.state_path, config.include_path, config.log_path):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(config.state_path, 0o700)
    path = conf_path(config)
    text = render_conf(config)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return path


def read_pid(config: SkynetConfig) -> int | None:
    try:
        pid = int(pid_path(config).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def is_running(config: SkynetConfig) -> bool:
    """Whether the private supervisord answers on its socket."""
    if not config.socket_path.exists():
        return False
    client = Supervisor(f"unix://{config.socket_path}", timeout=5)
    try:
        return client.alive()
    finally:
        client.close()


@contextlib.contextmanager
def _locked(config: SkynetConfig) -> Iterator[None]:
    config.state_path.mkdir(parents=True, exist_ok=True)
    with open(config.state_path / "supervisord.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_running(config: SkynetConfig, timeout: float = 20.0) -> bool:
    """Start the private supervisord unless it answers already; True if it
    was started by this call. It daemonizes: it outlives this process."""
    if is_running(config):
        return False
    with _locked(config):
        if is_running(config):
            return False
        path = write_conf(config)
        stale = read_pid(config)
        if stale is None:
            with contextlib.suppress(FileNotFoundError):
                config.socket_path.unlink()
        log = config.state_path / "supervisord.out"
        with log.open("ab") as out:
            proc = subprocess.run(
                [sys.executable, "-m", "supervisor.supervisord", "-c", str(path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=config.state_path,
                timeout=timeout,
            )
        if proc.returncode != 0:
            raise SupervisorUnavailable(
                f"could not start the private supervisord (exit {proc.returncode}); see {log}: "
                + _tail(log)
            )
        deadline = time.monotonic() + timeout
        while not is_running(config):
            if time.monotonic() > deadline:
                raise SupervisorUnavailable(
                    f"the private supervisord did not answer on {config.socket_path} within "
                    f"{timeout:g}s; see {config.state_path / 'supervisord.log'}"
                )
            time.sleep(0.05)
        return True


def stop(config: SkynetConfig, timeout: float | None = None) -> bool:
    """Shut the private supervisord down (its instances stop first); True if
    one was running. Killed (with what is left of its children) if it does
    not exit within ``timeout`` (default: stopwaitsecs + 10)."""
    pid = read_pid(config)
    if pid is None and not is_running(config):
        return False
    timeout = config.stopwaitsecs + 10 if timeout is None else timeout
    children: list[int] = []
    client = Supervisor(f"unix://{config.socket_path}", timeout=5)
    try:
        children = [p["pid"] for p in client.supervisor.getAllProcessInfo() if p["pid"]]
        pid = pid or client.supervisor.getPID()
        client.supervisor.shutdown()
    except SupervisorUnavailable:
        pass
    finally:
        client.close()
    if pid is None:
        return True
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    for p in [pid, *children]:
        if _alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().split(")")[-1].split()[0] != "Z"
        except OSError:
            return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
