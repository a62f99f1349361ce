"""Serve the web UI with werkzeug's threaded server (``boss web``, ``boss
demo``, tests): :func:`make_boss_server` (a free port when the one asked
for is taken) and :func:`serve_in_thread`. The ``Server`` header says
``BOSS``, not werkzeug's and Python's versions."""

from __future__ import annotations

import errno
import socket
import threading
from typing import Any

from werkzeug.serving import WSGIRequestHandler

from engine.config import Config

__all__ = ["SERVER_NAME", "BossRequestHandler", "make_boss_server", "serve_in_thread"]

#: the ``Server`` header: no versions to look vulnerabilities up by
SERVER_NAME = "BOSS"


class BossRequestHandler(WSGIRequestHandler):
    """werkzeug's handler, without its and Python's versions in ``Server``."""

    @property
    def server_version(self) -> str:  # type: ignore[override]
        return SERVER_NAME

    def version_string(self) -> str:
        return SERVER_NAME


def _bind(host: str, port: int) -> socket.socket | None:
    """A listening socket on ``host:port``, None when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, errno.EACCES):
            return None
        raise
    return sock


def make_boss_server(host: str, port: int, app: Any, *, tries: int = 20) -> Any:
    """werkzeug's threaded server for ``app`` on ``host:port``; when that
    port is taken, the next of ``tries`` ports, then any free one (werkzeug
    itself would ``sys.exit`` on a taken port). ``server.server_port`` says
    which."""
    from werkzeug.serving import make_server

    sock = None
    for candidate in [*range(port, port + tries), 0] if port else [0]:
        sock = _bind(host, candidate)
        if sock is not None:
            break
    if sock is None:  # pragma: no cover - port 0 is always free
        raise RuntimeError(f"no free port on {host}")
    try:
        server = make_server(
            host, 0, app, threaded=True, request_handler=BossRequestHandler, fd=sock.fileno()
        )
    finally:
        sock.close()  # the server holds its own duplicate of the descriptor
    server.server_port = server.port  # as when werkzeug binds the socket itself
    return server


def serve_in_thread(
    config: Config,
    bind: str = "127.0.0.1:8080",
    *,
    users: dict[str, tuple[str, str]] | None = None,
    tries: int = 20,
) -> tuple[Any, str]:
    """``(server, url)``; stop it with ``server.shutdown()``."""
    from webui.app import create_app
    from webui.settings import WebConfig

    web = WebConfig.load(config.source or None, bind=bind)
    host, port = web.host_port()
    app = create_app(config, web=web, users=users)
    server = make_boss_server(host, port, app, tries=tries)
    thread = threading.Thread(target=server.serve_forever, name="boss-web", daemon=True)
    thread.start()
    return server, f"http://{host}:{server.server_port}/"
