"""The web UI's answer when its store does not answer, in-process (no
namespaces, so it runs everywhere): the page and the JSON a visitor gets
from ``boss web`` while the store host is cut off (``test_hosts.py`` shows
it across hosts): 503 with ``Retry-After`` and a sentence naming the store,
no 500 and no traceback."""

from __future__ import annotations

import socket

from engine.config import Config
from webui.app import create_app
from webui.settings import WebConfig


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_pages_and_json_say_the_store_does_not_answer() -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0?socket_timeout=1&socket_connect_timeout=1"
    config = Config(redis_url=url, broker_url="redis://127.0.0.1:1/0", key_prefix="boss-down:")
    app = create_app(config, web=WebConfig(anonymous=True))
    client = app.test_client()
    for path in ("/runs", "/runs/some-run", "/errors"):
        resp = client.get(path)
        body = resp.get_data(as_text=True)
        assert resp.status_code == 503, (path, resp.status_code, body[:500])
        assert resp.headers["Retry-After"] == "5"
        assert "The run store is unreachable" in body and "does not answer" in body
        assert "Traceback" not in body and 'File "' not in body
    resp = client.get("/api/runs/some-run")
    assert resp.status_code == 503
    assert resp.get_json()["status"] == 503
    assert "the run store does not answer" in resp.get_json()["error"]
