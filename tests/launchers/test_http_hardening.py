"""The webhook server against what the internet sends it: a real werkzeug
server in a thread (``boss launcher serve``'s own ``make_server``), the
machine's Redis for the delivery ids, a fake broker (what was launched).

* secrets (tokens, signatures, credentials, cookies) never reach a dead
  letter, a log line or a launch item;
* the body is limited (``max_body``, 25 MiB by default) before it is read:
  a too large ``Content-Length`` is answered 413 at once, a chunked body is
  read in bounded chunks and cut at the limit, GitLab's token is checked
  before any byte of the body is read;
* errors are JSON (404, 405, 413, 401, ...);
* twelve concurrent copies of one delivery launch once;
* GitHub's form encoding (``payload=``) is accepted;
* real GitHub and GitLab deliveries (``payloads_dir``: shared/payloads, in place)
  go through with real signatures and tokens.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from engine.config import Config
from engine.launchers.github import sign
from engine.launchers.http import create_app
from engine.launchers.launcher import Launcher
from engine.launchers.settings import LauncherSettings
from tests.conftest import delete_keys
from tests.launchers.conftest import FakePublisher, write_process

SECRET = "gh-s3cret-value"
TOKEN = "gl-t0ken-value"


class SlowPublisher(FakePublisher):
    """A broker whose publish takes a while (so concurrent deliveries
    overlap), and that can be made to fail."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.fail_next = 0

    def send(self, msg: dict) -> None:
        time.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("the broker went away")
        super().send(msg)


class Server:
    """``create_app`` served by werkzeug's threaded ``make_server`` (what
    ``boss launcher serve`` runs) in a thread."""

    def __init__(self, app: Any) -> None:
        from werkzeug.serving import make_server

        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def state(self) -> Any:
        return self.app.extensions["boss_launchers"]

    def post(
        self, path: str, body: bytes, headers: dict[str, str], timeout: float = 10
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            return r.status, json.loads(data), dict(r.getheaders())
        finally:
            conn.close()

    def request(self, method: str, path: str) -> tuple[int, bytes, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, r.read(), r.getheader("Content-Type") or ""
        finally:
            conn.close()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()


@pytest.fixture
def rclient(machine_redis_url: str, key_prefix: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(machine_redis_url)
    yield client
    delete_keys(client, key_prefix)
    client.close()


@pytest.fixture
def publisher() -> SlowPublisher:
    return SlowPublisher()


@pytest.fixture
def make_server(
    tmp_path: Path, rclient: redis.Redis, key_prefix: str, publisher: SlowPublisher
) -> Iterator[Any]:
    servers: list[Server] = []
    store = tmp_path / "store"
    store.mkdir()
    for project, label in (
        ("baxterthehacker/public-repo", "GITHUB_PUSH"),
        ("Codertocat/Hello-World", "GITHUB_PUSH"),
        ("Codertocat/Hello-World", "GITHUB_PULL_REQUEST"),
        ("mike/diaspora", "GITLAB_PUSH"),
        ("exm-namespace/example-project", "GITLAB_PUSH"),
        ("a/b", "GITHUB_PUSH"),
    ):
        write_process(store, project, f"{label}.p.yaml")

    def make(**settings: Any) -> Server:
        config = Config(process_dir=str(store), key_prefix=key_prefix)
        s = LauncherSettings(github_secret=SECRET, gitlab_token=TOKEN, **settings)
        launcher = Launcher(config, s, publisher=publisher, bus=publisher)
        server = Server(create_app(config, s, launcher=launcher, redis_client=rclient))
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def github_headers(body: bytes, event: str = "push", delivery: str | None = None) -> dict:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(SECRET, body),
        "X-Hub-Signature": "sha1=0123456789abcdef0123456789abcdef01234567",
        "User-Agent": "GitHub-Hookshot/044aadd",
    }


PUSH = json.dumps(
    {
        "ref": "refs/heads/main",
        "after": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
        "repository": {"full_name": "a/b", "clone_url": "https://github.com/a/b.git"},
        "sender": {"login": "jane"},
    }
).encode()


# -- 3. secrets ------------------------------------------------------------------------------


def _all_text(*things: Any) -> str:
    return json.dumps(things, default=str)


def test_secrets_never_reach_dead_letters_logs_or_launch_items(make_server, publisher, caplog):
    server = make_server()
    secrets = [
        TOKEN,
        SECRET,
        "Bearer abc.def.ghi",
        "session=c00kie",
        "sha1=0123456789abcdef0123456789abcdef01234567",
    ]
    with caplog.at_level(logging.DEBUG):
        # GitLab: a good token, a malformed body: dead-lettered with its headers
        status, body, _ = server.post(
            "/hooks/gitlab",
            b'{"object_kind": "push"',
            {
                "X-Gitlab-Token": TOKEN,
                "X-Gitlab-Event": "Push Hook",
                "Authorization": "Bearer abc.def.ghi",
                "Cookie": "session=c00kie",
            },
        )
        assert status == 400 and body["deadletter"]
        # GitHub: signed, malformed
        junk = b'{"ref": '
        status, body, _ = server.post(
            "/hooks/github", junk, {**github_headers(junk), "Authorization": "Bearer abc.def.ghi"}
        )
        assert status == 400
        # GitHub: signed, launched
        status, body, _ = server.post(
            "/hooks/github", PUSH, {**github_headers(PUSH), "Cookie": "session=c00kie"}
        )
        assert status == 202 and body["wfids"], body
    assert len(publisher.letters) == 2
    stored = _all_text(publisher.letters, publisher.sent, publisher.events)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in secrets:
        assert secret not in stored, secret
        assert secret not in logged, secret
    gl = publisher.letters[0]["headers"]
    assert gl["X-Gitlab-Token"] == "[redacted]"
    assert gl["Authorization"] == "[redacted]" and gl["Cookie"] == "[redacted]"
    assert gl["X-Gitlab-Event"] == "Push Hook"  # what is not a secret stays
    gh = publisher.letters[1]["headers"]
    assert gh["X-Hub-Signature-256"] == gh["X-Hub-Signature"] == "[redacted]"


def test_the_launchers_own_dead_letters_are_redacted(tmp_path, fake):
    from engine.launchers.base import RawEvent
    from engine.launchers.gitlab import GitLabSource

    launcher = Launcher(Config(process_dir=str(tmp_path)), LauncherSettings(), publisher=fake)
    raw = RawEvent(
        b"x",
        {"x-gitlab-token": "t", "PRIVATE-TOKEN": "p", "X-Api-Key": "k", "X-Gitlab-Event": "e"},
    )
    launcher.deadletter(GitLabSource(), raw, "test")
    headers = fake.letters[0]["headers"]
    assert headers == {
        "x-gitlab-token": "[redacted]",
        "PRIVATE-TOKEN": "[redacted]",
        "X-Api-Key": "[redacted]",
        "X-Gitlab-Event": "e",
    }


# -- 4. size, reading order, JSON errors -----------------------------------------------------


def _raw_request(port: int, head: bytes, then: bytes = b"", timeout: float = 5) -> bytes:
    """Send ``head`` (and ``then``), return what the server answers
    (until it closes or stays silent for ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head + then)
        data = b""
        try:
            while b"\r\n\r\n" not in data or not _complete(data):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
        return data


def _complete(data: bytes) -> bool:
    head, _, rest = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return False


def _status(data: bytes) -> int:
    assert data, "no answer"
    return int(data.split(b" ", 2)[1])


def _json(data: bytes) -> dict:
    return json.loads(data.partition(b"\r\n\r\n")[2])


def test_a_too_large_content_length_is_refused_before_reading(make_server):
    """300 MB announced, nothing sent: the answer comes at once (before,
    the server waited for, and kept, the whole body)."""
    server = make_server()
    for path, headers in (
        ("/hooks/github", github_headers(b"x")),
        ("/hooks/gitlab", {"X-Gitlab-Token": TOKEN, "X-Gitlab-Event": "Push Hook"}),
    ):
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {300 * 1024 * 1024}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        t0 = time.monotonic()
        data = _raw_request(server.port, head.encode(), b"{}", timeout=5)
        assert _status(data) == 413, data[:300]
        assert time.monotonic() - t0 < 4
        assert _json(data)["error"].startswith("body too large")


def test_unauthenticated_deliveries_are_refused_before_the_body_is_read(make_server):
    """GitLab: a bad token; GitHub: no signature at all. A 1 MB announced
    body that never comes: 401 at once, not a wait for the body."""
    server = make_server()
    for path, headers in (
        ("/hooks/gitlab", {"X-Gitlab-Token": "wrong", "X-Gitlab-Event": "Push Hook"}),
        ("/hooks/github", {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d"}),
    ):
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        t0 = time.monotonic()
        data = _raw_request(server.port, head.encode(), timeout=5)
        assert _status(data) == 401, data[:300]
        assert time.monotonic() - t0 < 4


def test_a_signed_body_over_the_limit_is_413(make_server, publisher):
    server = make_server(max_body=1000)
    body = json.dumps({**json.loads(PUSH), "pad": "x" * 2000}).encode()
    status, answer, _ = server.post("/hooks/github", body, github_headers(body))
    assert status == 413 and "1000" in answer["error"]
    assert publisher.sent == publisher.letters == []


def test_a_chunked_body_is_cut_at_the_limit(make_server, publisher):
    """No Content-Length: the stream is read in chunks and refused as soon
    as it passes the limit."""
    server = make_server(max_body=1000)
    body = json.dumps({**json.loads(PUSH), "pad": "x" * 5000}).encode()
    headers = github_headers(body)
    head = "POST /hooks/github HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    chunks = b"".join(
        f"{len(body[i : i + 500]):x}\r\n".encode() + body[i : i + 500] + b"\r\n"
        for i in range(0, len(body), 500)
    )
    data = _raw_request(server.port, head.encode(), chunks + b"0\r\n\r\n")
    assert _status(data) == 413, data[:300]
    assert publisher.sent == publisher.letters == []
    # within the limit, chunked is fine
    small = make_server()
    headers = github_headers(PUSH)
    head = "POST /hooks/github HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    data = _raw_request(
        small.port, head.encode(), f"{len(PUSH):x}\r\n".encode() + PUSH + b"\r\n0\r\n\r\n"
    )
    assert _status(data) == 202, data[:500]


def test_errors_are_json(make_server):
    server = make_server()
    for method, path, code in (
        ("GET", "/hooks/github", 405),
        ("GET", "/nowhere", 404),
        ("POST", "/hooks/unknown", 404),
    ):
        status, body, ctype = server.request(method, path)
        assert status == code
        assert ctype.startswith("application/json"), (path, ctype, body[:200])
        assert json.loads(body)["error"]


def test_max_body_defaults_to_githubs_cap():
    assert LauncherSettings().max_body == 25 * 1024 * 1024
    assert LauncherSettings.load(environ={"BOSS_LAUNCHERS_MAX_BODY": "1000"}).max_body == 1000


# -- 5. concurrent deliveries ------------------------------------------------------------


def test_twelve_concurrent_copies_of_a_delivery_launch_once(make_server, publisher):
    publisher.delay = 0.2
    server = make_server()
    delivery = str(uuid.uuid4())
    headers = github_headers(PUSH, delivery=delivery)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: server.post("/hooks/github", PUSH, headers), range(12)))
    statuses = sorted((s, b["status"]) for s, b, _ in answers)
    assert len(publisher.sent) == 1, statuses
    launched = [b for s, b, _ in answers if b["status"] == "launched"]
    assert len(launched) == 1
    assert all(
        (s, b["status"]) in ((202, "in progress"), (200, "already launched"))
        for s, b, _ in answers
        if b["status"] != "launched"
    ), statuses
    # once done: already launched, with the wfids
    status, body, _ = server.post("/hooks/github", PUSH, headers)
    assert (status, body["status"], body["wfids"]) == (
        200,
        "already launched",
        launched[0]["wfids"],
    )


def test_a_failed_attempt_releases_its_claim(make_server, publisher, rclient):
    server = make_server()
    delivery = str(uuid.uuid4())
    headers = github_headers(PUSH, delivery=delivery)
    publisher.fail_next = 1
    status, body, _ = server.post("/hooks/github", PUSH, headers)
    assert status == 503 and "retry" in body["error"], body
    assert rclient.get(server.state.delivery_key("github", delivery)) is None
    status, body, _ = server.post("/hooks/github", PUSH, headers)
    assert (status, body["status"]) == (202, "launched") and len(publisher.sent) == 1


# -- 6. GitHub's form encoding ---------------------------------------------------------------


def test_githubs_form_encoding_is_accepted(make_server, publisher):
    server = make_server()
    form = urllib.parse.urlencode({"payload": PUSH.decode()}).encode()
    headers = {**github_headers(form), "Content-Type": "application/x-www-form-urlencoded"}
    status, body, _ = server.post("/hooks/github", form, headers)
    assert status == 202, body
    assert publisher.sent[0]["fields"]["ev"]["after"] == json.loads(PUSH)["after"]
    # a form without a payload field: dead-lettered with a hint
    form = b"other=1"
    headers = {**github_headers(form), "Content-Type": "application/x-www-form-urlencoded"}
    status, body, _ = server.post("/hooks/github", form, headers)
    assert status == 400 and "payload" in body["error"]


# -- 7. real deliveries through the real server ----------------------------------------------


@pytest.mark.parametrize(
    "name", ["push__payload.json", "pull_request__opened.payload.json", "ping__payload.json"]
)
def test_real_github_deliveries(name, payloads_dir, make_server, publisher):
    server = make_server()
    path = payloads_dir / "github" / name
    if not path.exists():
        pytest.skip(f"{path} is not in the corpus")
    event = name.split("__")[0]
    body = path.read_bytes()
    headers = github_headers(body, event=event)
    status, answer, _ = server.post("/hooks/github", body, headers)
    assert status == 202, answer
    again, answer2, _ = server.post("/hooks/github", body, headers)
    assert (again, answer2["status"], answer2["wfids"]) == (
        200,
        "already launched",
        answer["wfids"],
    )
    bad = {**headers, "X-Hub-Signature-256": sign("wrong", body)}
    assert server.post("/hooks/github", body, bad)[0] == 401
    stored = _all_text(publisher.sent, publisher.letters, publisher.events)
    assert SECRET not in stored and headers["X-Hub-Signature-256"] not in stored


@pytest.mark.parametrize("name", ["gogitlab__push.json", "gogitlab__merge_request.json"])
def test_real_gitlab_deliveries(name, payloads_dir, make_server, publisher):
    server = make_server()
    path = payloads_dir / "gitlab" / name
    body = path.read_bytes()
    kind = json.loads(body).get("object_kind", "push")
    hook = {"push": "Push Hook", "merge_request": "Merge Request Hook"}[kind]
    headers = {
        "Content-Type": "application/json",
        "X-Gitlab-Event": hook,
        "X-Gitlab-Token": TOKEN,
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
    }
    status, answer, _ = server.post("/hooks/gitlab", body, headers)
    assert status == 202, answer
    assert server.post("/hooks/gitlab", body, headers)[1]["status"] == "already launched"
    assert server.post("/hooks/gitlab", body, {**headers, "X-Gitlab-Token": "no"})[0] == 401
    assert TOKEN not in _all_text(publisher.sent, publisher.letters, publisher.events)
