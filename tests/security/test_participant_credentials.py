"""Per-participant broker users (``skynet.broker_users``, docs/security.md):
``skynet install`` (with ``participant_users``) and ``boss register
--broker-user`` give a participant queue its own RabbitMQ user, allowed to
consume only its own queue; ``skynet uninstall`` and ``boss unregister
--broker-user`` remove it.

The RabbitMQ tests use the machine's broker (a private vhost per session,
``rabbitmq_url``) and ``rabbitmqctl``; every user they make has a unique
name and is deleted afterwards."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import re
import shutil
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import amqp
import amqp.exceptions
import kombu
import pytest

from engine import tokens, wire
from engine.broker import list_deadletters, participant_queue
from engine.config import Config
from skynet import broker_users, programs
from skynet.config import SkynetConfig
from skynet.pools import Pools
from tests.security.test_tokens import TokenSystem
from tests.skynet.conftest import HANDLERS, Host, _no_boss_environment, make_host  # noqa: F401
from tests.waiting import wait_for

CTL = shutil.which("rabbitmqctl")


def users() -> set[str]:
    assert CTL is not None
    out = subprocess.run(
        [CTL, "-q", "list_users", "--no-table-headers"], capture_output=True, text=True, check=True
    ).stdout
    return {line.split("\t", 1)[0] for line in out.splitlines() if line.strip()}


@pytest.fixture
def cleanup_users() -> Iterator[list[str]]:
    """Users a test made: deleted afterwards whatever happened."""
    made: list[str] = []
    yield made
    for user in made:
        subprocess.run([CTL or "rabbitmqctl", "-q", "delete_user", user], capture_output=True)


def refused(url: str, action: Callable[[Any], Any]) -> bool:
    """Whether the broker refuses ``action(channel)`` to the user of ``url``
    (ACCESS_REFUSED, 403); False when it is allowed."""
    with kombu.Connection(url, connect_timeout=5) as conn:
        channel = conn.channel()
        try:
            action(channel)
        except amqp.exceptions.AccessRefused as exc:
            assert exc.code == 403
            return True
        return False


# -- the permissions --------------------------------------------------------------------


def test_the_permissions_name_the_own_queue_and_nothing_of_another_participant() -> None:
    config = Config.load(None, environ={"HOME": "/nonexistent"})
    perms = broker_users.permissions(config, "build")

    def may(kind: str, name: str) -> bool:
        return re.fullmatch(getattr(perms, kind), name) is not None

    for kind in ("configure", "read"):
        assert may(kind, "build")
        assert may(kind, "boss.control.build.host.1234.1")  # its instances' control queues
        for other in ("test", "build2", "buildx", "boss.engine", "boss.control.test.host.1"):
            assert not may(kind, other), (kind, other)
    assert not may("configure", "boss.engine")
    assert may("configure", "boss.deadletter") and may("configure", "boss.engine.logs")
    assert may("write", "amq.default")
    assert not may("write", "build") and not may("write", "boss.control")
    assert not may("read", "boss.engine") and not may("read", "boss.deadletter")
    # regular-expression characters in a queue's name are matched literally
    dotted = broker_users.permissions(config, "a.b")
    assert re.fullmatch(dotted.read, "a.b") and not re.fullmatch(dotted.read, "aXb")


def test_the_url_and_vhost_of_a_participant_user() -> None:
    url = broker_users.participant_url("amqps://boss:s3cret@rabbit:5671/ci%2Fa", "u.x", "p/w@")
    assert url == "amqps://u.x:p%2Fw%40@rabbit:5671/ci%2Fa"
    assert broker_users.vhost_of(url) == "ci/a"
    assert broker_users.vhost_of("amqp://guest:guest@127.0.0.1:5672//") == "/"
    assert broker_users.vhost_of("amqp://localhost") == "/"
    assert broker_users.user_of_url(url) == "u.x"


def test_the_management_api_is_asked_for_the_user_and_its_permissions() -> None:
    seen: list[tuple[str, str, str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            seen.append((self.command, self.path, self.headers["Authorization"], body))
            code = 404 if self.command == "DELETE" and len(seen) > 4 else 204
            if self.command == "GET":
                code = 404
            self.send_response(code)
            self.end_headers()

        do_GET = do_PUT = do_DELETE = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = Config.load(
            None,
            environ={"HOME": "/nonexistent"},
            broker_url="amqp://boss:x@rabbit/ci",
            broker_admin=f"http://admin:pw@127.0.0.1:{server.server_port}",
        )
        made = broker_users.create_participant_user(config, "build")
        assert broker_users.remove_participant_user(config, "build")
    finally:
        server.shutdown()
    auth = "Basic " + base64.b64encode(b"admin:pw").decode()
    perms = broker_users.permissions(config, "build")
    assert [(m, p, a) for m, p, a, _ in seen] == [
        ("PUT", "/api/users/boss.participant.build", auth),
        ("PUT", "/api/permissions/ci/boss.participant.build", auth),
        ("DELETE", "/api/users/boss.participant.build", auth),
    ]
    assert seen[0][3] == {"password": made.password, "tags": ""}
    assert seen[1][3] == {"configure": perms.configure, "write": perms.write, "read": perms.read}
    assert made.url == f"amqp://boss.participant.build:{made.password}@rabbit/ci"


# -- on RabbitMQ ------------------------------------------------------------------------


def _with_participant_users(host: Host) -> None:
    """Turn ``participant_users`` on in the host's ``[boss]``."""
    host.ini.write_text(
        host.ini.read_text().replace("[boss]\n", "[boss]\nparticipant_users = true\n", 1)
    )
    host.pools.close()
    host.config = SkynetConfig.load(host.ini, environ={})
    host.pools = Pools(host.config)


@pytest.mark.rabbitmq
@pytest.mark.slow
@pytest.mark.skipif(CTL is None, reason="no rabbitmqctl here")
def test_participants_with_their_own_users_cannot_touch_each_others_queues(
    make_host: Callable[..., Host],  # noqa: F811
    rabbitmq_url: str,
    cleanup_users: list[str],
) -> None:
    """``skynet install`` makes pool's user; ``boss register --broker-user``
    makes other's. pool runs a whole run with its user and tokens on; with
    its credentials nobody may take the other's workitems or the engine's
    messages; a reply forged with them is dead-lettered; uninstalling and
    unregistering removes the users."""
    host = make_host(rabbitmq_url)
    _with_participant_users(host)
    pool_q, other_q = host.queue("pool"), host.queue("other")
    cleanup_users += [broker_users.user_name(pool_q), broker_users.user_name(other_q)]
    system = TokenSystem(host.tmp, host.broker_url, host.redis_url, host.prefix)
    try:
        system.worker()
        host.cli(
            "install",
            str(HANDLERS),
            "-n",
            "pool",
            "-q",
            pool_q,
            "--conf",
            str(host.extra),
            "--register",
        )
        assert broker_users.user_name(pool_q) in users()
        path = host.config.include_path / "pool.conf"
        spec = programs.parse(path)
        pool_url = spec.boss["broker_url"]
        assert broker_users.user_of_url(pool_url) == broker_users.user_name(pool_q)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, "its password: owner only"
        assert "dispatch_key" not in path.read_text(), "participants never get the dispatch key"

        # the participant runs on its own user, with dispatch tokens on
        wfid = system.launch("name: one\nsteps:\n  - pool\n  - pool\n", {"n": 0})
        system.wait_status(wfid, timeout=30)
        assert system.engine.run(wfid).fields["n"] == 2

        out = system.boss(
            "register",
            "other",
            "--queue",
            other_q,
            "--broker-user",
            "--credentials",
            str(host.tmp / "other.ini"),
        ).stdout
        assert f"broker user {broker_users.user_name(other_q)}" in out
        creds = host.tmp / "other.ini"
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        other_url = creds.read_text().split("broker_url = ", 1)[1].strip()
        # other declares and reads its own queue ...
        assert not refused(other_url, lambda ch: participant_queue(other_q)(ch).declare())
        assert not refused(other_url, lambda ch: ch.basic_get(other_q))
        # ... but not pool's, nor the engine's, nor the dead letters; nor deletes them
        for url, queue in ((other_url, pool_q), (pool_url, other_q)):
            assert refused(url, lambda ch, q=queue: ch.basic_get(q)), queue
            assert refused(url, lambda ch, q=queue: ch.queue_purge(q)), queue
            assert refused(url, lambda ch, q=queue: ch.queue_delete(q)), queue
        for queue in (system.config.engine_queue, system.config.deadletter_queue):
            assert refused(other_url, lambda ch, q=queue: ch.basic_get(q)), queue
        assert refused(other_url, lambda ch: ch.queue_delete(system.config.engine_queue))

        # nor send cancel items to another participant (a publish is not
        # answered: the broker's refusal closes the channel, which the next
        # synchronous method on it sees)
        def cancel_item(ch: Any) -> None:
            ch.basic_publish(amqp.Message(b"{}"), system.config.control_exchange, pool_q)
            ch.basic_qos(0, 1, False)

        assert refused(other_url, cancel_item)

        # it may publish to the engine's queue: a reply forged there, as pool,
        # for a step of a run, is dead-lettered (no token) and moves nothing
        system.engine.register("nobody", host.queue("nobody"))
        waiting = system.launch("name: w\nsteps:\n  - nobody\n")
        wait_for(
            lambda: system.status(waiting) and system.engine.run(waiting).positions,
            30,
            "the run to wait on nobody",
        )
        before = system.store.load_run(waiting)
        forged = {
            "fei": {"wfid": waiting, "expid": "0_0", "subid": "0_0"},
            "fields": {"n": 99},
            "participant_name": "pool",
        }
        with kombu.Connection(other_url) as conn:
            conn.Producer().publish(
                wire.dumps(forged),
                exchange="",
                routing_key=system.config.engine_queue,
                content_type="application/json",
            )
        with kombu.Connection(host.broker_url) as admin:
            reasons = wait_for(
                lambda: [
                    x["reason"]
                    for x in list_deadletters(system.config, admin)
                    if waiting in x["reason"]
                ],
                30,
                "the forged reply's dead letter",
            )
        assert "reply without a dispatch token" in reasons[0], reasons
        assert tokens.TOKEN_KEY in reasons[0]
        after = system.store.load_run(waiting)
        assert before is not None and after is not None and after[1] == before[1]

        # uninstall / unregister remove the users
        host.cli("uninstall", "pool")
        assert broker_users.user_name(pool_q) not in users()
        out = system.boss("unregister", "other", "--broker-user").stdout
        assert f"removed broker user {broker_users.user_name(other_q)}" in out
        assert broker_users.user_name(other_q) not in users()
        with pytest.raises(amqp.exceptions.AccessRefused), kombu.Connection(other_url) as conn:
            conn.connect()
    except BaseException:
        print(system.logs())
        raise
    finally:
        system.cleanup()
        with contextlib.suppress(Exception), kombu.Connection(host.broker_url) as conn:
            for q in (pool_q, other_q, host.queue("nobody")):
                with contextlib.suppress(Exception):
                    conn.channel().queue_delete(q)
