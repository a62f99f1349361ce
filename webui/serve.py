"""Serve the web UI in a background thread (``boss demo``, tests): werkzeug's
threaded server on ``host:port``, the next free port when that one is taken."""

from __future__ import annotations

import threading
from typing import Any

from engine.config import Config

__all__ = ["serve_in_thread"]


def serve_in_thread(
    config: Config,
    bind: str = "127.0.0.1:8080",
    *,
    users: dict[str, tuple[str, str]] | None = None,
    tries: int = 20,
) -> tuple[Any, str]:
    """``(server, url)``; stop it with ``server.shutdown()``."""
    from werkzeug.serving import make_server

    from webui.app import create_app
    from webui.settings import WebConfig

    web = WebConfig.load(config.source or None, bind=bind)
    host, port = web.host_port()
    app = create_app(config, web=web, users=users)
    last: OSError | None = None
    for candidate in range(port, port + tries):
        try:
            server = make_server(host, candidate, app, threaded=True)
            break
        except OSError as exc:  # taken: try the next one
            last = exc
    else:
        raise RuntimeError(f"no free port from {port} to {port + tries - 1}: {last}")
    thread = threading.Thread(target=server.serve_forever, name="boss-web", daemon=True)
    thread.start()
    return server, f"http://{host}:{server.server_port}/"
