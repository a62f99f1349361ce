"""A small client of supervisord's XML-RPC API (over its unix socket or HTTP).

supervisor's numeric fault codes (``supervisor.xmlrpc.Faults``) become our
exception types with one-line messages; a socket nobody listens on, or one
the caller may not open, says so instead of a traceback. The transport is
``supervisor.xmlrpc.SupervisorTransport`` (unix sockets and HTTP basic
auth); one ``Supervisor`` per thread (it keeps one connection).
"""

from __future__ import annotations

import errno
import http.client
import socket
import xmlrpc.client
from typing import Any

from supervisor.xmlrpc import Faults, SupervisorTransport

from skynet.errors import (
    Invalid,
    NotPermitted,
    SkynetError,
    StartFailed,
    SupervisorUnavailable,
    UnknownParticipant,
)

__all__ = ["Fault", "Supervisor", "states"]


class states:  # a namespace, as supervisor.states
    """supervisor's process state names and their groupings."""

    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    STOPPING = "STOPPING"
    EXITED = "EXITED"
    FATAL = "FATAL"
    UNKNOWN = "UNKNOWN"
    #: not running and not about to
    DOWN = frozenset({STOPPED, EXITED, FATAL})
    #: start failed (the issue's FAILED)
    FAILED = frozenset({BACKOFF, FATAL})


class Fault(SkynetError):
    """A supervisor fault we have no better type for (``code`` is supervisor's)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _fault(exc: xmlrpc.client.Fault, method: str, url: str) -> SkynetError:
    code, text = exc.faultCode, exc.faultString
    detail = text.split(":", 1)[1].strip() if ":" in text else text
    if code == Faults.BAD_NAME:
        return UnknownParticipant(detail)
    if code in (
        Faults.SPAWN_ERROR,
        Faults.ABNORMAL_TERMINATION,
        Faults.NO_FILE,
        Faults.NOT_EXECUTABLE,
    ):
        return StartFailed(f"{detail}: could not be started ({text})")
    if code == Faults.CANT_REREAD:
        return Invalid(f"supervisord cannot read its configuration: {detail}")
    if code == Faults.SHUTDOWN_STATE:
        return SupervisorUnavailable(f"supervisord at {url} is shutting down")
    if code == Faults.UNKNOWN_METHOD:
        return Fault(f"supervisord at {url} has no method {method} (too old?)", code)
    return Fault(f"supervisord {method}: {text}", code)


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket, with a timeout."""

    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _Transport(SupervisorTransport):
    """supervisor's transport, with a timeout on every connection."""

    def __init__(
        self, username: str | None, password: str | None, url: str, timeout: float | None
    ) -> None:
        super().__init__(username, password, url)
        if url.startswith("unix://"):
            path = url[len("unix://") :]
            self._get_connection = lambda: _UnixConnection(path, timeout)
        else:
            make = self._get_connection

            def connection() -> http.client.HTTPConnection:
                conn = make()
                conn.timeout = timeout
                return conn

            self._get_connection = connection


class _Method:
    def __init__(self, client: Supervisor, name: str) -> None:
        self.client, self.name = client, name

    def __call__(self, *args: Any) -> Any:
        return self.client.call(self.name, *args)


class _Namespace:
    def __init__(self, client: Supervisor, prefix: str) -> None:
        self.client, self.prefix = client, prefix

    def __getattr__(self, name: str) -> _Method:
        return _Method(self.client, f"{self.prefix}.{name}")


class Supervisor:
    """``Supervisor(url).supervisor.getState()``: calls with clear errors.

    ``url`` is ``unix:///path`` or ``http://host:port``."""

    def __init__(
        self, url: str, username: str = "", password: str = "", timeout: float | None = 60.0
    ) -> None:
        self.url = url
        transport = _Transport(username or None, password or None, url, timeout)
        self._transport = transport
        self._proxy = xmlrpc.client.ServerProxy(
            "http://127.0.0.1", transport=transport, allow_none=True
        )

    @property
    def supervisor(self) -> _Namespace:
        return _Namespace(self, "supervisor")

    @property
    def system(self) -> _Namespace:
        return _Namespace(self, "system")

    def call(self, method: str, *args: Any) -> Any:
        fn = self._proxy
        for part in method.split("."):
            fn = getattr(fn, part)
        try:
            try:
                return fn(*args)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # a kept-alive connection supervisord closed (it restarted): once more
                self.close()
                return fn(*args)
        except xmlrpc.client.Fault as exc:
            raise _fault(exc, method, self.url) from None
        except xmlrpc.client.ProtocolError as exc:
            self.close()
            if exc.errcode == 401:
                raise NotPermitted(
                    f"supervisord at {self.url} refused the credentials "
                    "(supervisor_username/supervisor_password)"
                ) from None
            raise SupervisorUnavailable(
                f"supervisord at {self.url}: HTTP {exc.errcode} {exc.errmsg}"
            ) from None
        except PermissionError:
            self.close()
            raise NotPermitted(
                f"not permitted to use {self.url}: ask an administrator to "
                "add you to the 'skynet' group (the socket is "
                "root:skynet 0770), or use sudo"
            ) from None
        except (
            FileNotFoundError,
            ConnectionRefusedError,
            socket.gaierror,
            TimeoutError,
            http.client.RemoteDisconnected,
            ConnectionResetError,
        ) as exc:
            self.close()
            raise SupervisorUnavailable(
                f"supervisord is not running (nothing answers at {self.url}: "
                f"{exc.strerror or type(exc).__name__}); start it, or leave "
                "supervisor_url empty to let skynet run its own"
            ) from None
        except OSError as exc:
            self.close()
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise NotPermitted(f"not permitted to use {self.url}: {exc.strerror}") from None
            raise SupervisorUnavailable(f"supervisord at {self.url}: {exc}") from None

    def close(self) -> None:
        self._transport.close()

    # -- conveniences ------------------------------------------------------------

    def alive(self) -> bool:
        """Whether supervisord answers and is RUNNING."""
        try:
            return self.supervisor.getState()["statename"] == "RUNNING"
        except SupervisorUnavailable:
            return False

    def processes(self) -> dict[str, dict[str, Any]]:
        """``getAllProcessInfo`` by ``group:name``."""
        return {f"{p['group']}:{p['name']}": p for p in self.supervisor.getAllProcessInfo()}
