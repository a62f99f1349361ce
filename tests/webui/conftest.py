"""Fixtures of the web UI tests.

* ``web``: a ``WebEnv``: the app (``webui.create_app``) on the session's
  store server with a unique key prefix, a process store with a few
  processes, three users (``alice`` and ``bob``: users; ``root``: admin),
  an in-process ``Engine`` to make runs with (its dispatcher drops
  workitems: the runs wait where they are), and a publisher fake that
  records what the UI sends to the engine's queue (the protocol boundary:
  the UI never applies an operation itself).
* ``Browser`` fixtures live in ``test_browser.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine.config import Config
from engine.engine import Engine
from engine.store import RedisStore
from tests.conftest import delete_keys
from webui.app import create_app
from webui.settings import WebConfig

PASSWORDS = {"alice": "alice-secret", "bob": "bob-secret", "root": "root-secret"}
USERS = {
    "alice": (PASSWORDS["alice"], "user"),
    "bob": (PASSWORDS["bob"], "user"),
    "root": (PASSWORDS["root"], "admin"),
}

HELLO = "name: hello\nsteps:\n  - alpha\n  - beta\n"
BROKEN = "name: broken\nsteps:\n  - error: the build host is down\n"


class RecordingPublisher:
    """What the UI sent to the engine's queue."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, msg: dict[str, Any]) -> None:
        self.sent.append(msg)


class _Drop:
    def dispatch(self, effect: Any) -> None:
        pass

    def cancel(self, effect: Any) -> None:
        pass


@dataclass
class WebEnv:
    app: Flask
    store: RedisStore
    engine: Engine
    publisher: RecordingPublisher
    config: Config
    tmp: Path
    clients: list[FlaskClient] = field(default_factory=list)

    def client(self, user: str | None = None) -> FlaskClient:
        """A test client, logged in as ``user`` when given."""
        c = self.app.test_client()
        if user is not None:
            token = csrf(c)
            r = c.post(
                "/login", data={"username": user, "password": PASSWORDS[user], "csrf_token": token}
            )
            assert r.status_code == 302, r.data
        return c

    def launch_as(
        self, user: str, definition: str = HELLO, fields: dict[str, Any] | None = None
    ) -> str:
        """A run made in-process, recorded as launched by ``user`` from the UI."""
        wfid = self.engine.launch(definition, fields or {})
        self.app.extensions["boss"].index.set_owner(wfid, user)
        return wfid


def csrf(client: FlaskClient) -> str:
    return client.get("/api/me").json["csrf_token"]


def make_env(
    tmp: Path, redis_url: str, broker_url: str, prefix: str, web: WebConfig | None = None
) -> WebEnv:
    procs = tmp / "processes"
    procs.mkdir(exist_ok=True)
    (procs / "hello.yaml").write_text(HELLO)
    (procs / "broken.yaml").write_text(BROKEN)
    (procs / "invalid.yaml").write_text("name: invalid\nsteps:\n  - sequnce: []\n")
    config = Config.load(
        None,
        environ={},
        redis_url=redis_url,
        broker_url=broker_url,
        key_prefix=prefix,
        process_dir=str(procs),
        state_dir=str(tmp),
        engine_queue=f"{prefix}engine",
    )
    store = RedisStore(redis_url, prefix=prefix)
    engine = Engine(store, dispatcher=_Drop())
    engine.register("alpha")
    engine.register("beta")
    publisher = RecordingPublisher()
    app = create_app(
        config,
        web=web or WebConfig(secret_key="test-secret"),
        users=USERS,
        store=store,
        publisher=publisher,
        testing=True,
    )
    return WebEnv(app, store, engine, publisher, config, tmp)


@pytest.fixture
def web(redis_url: str, embedded_broker_url: str, tmp_path: Path) -> Iterator[WebEnv]:
    prefix = f"boss-test:{uuid.uuid4().hex}:"
    env = make_env(tmp_path, redis_url, embedded_broker_url, prefix)
    yield env
    delete_keys(env.store.client, prefix)
    env.store.close()
