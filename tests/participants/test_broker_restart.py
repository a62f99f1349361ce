"""A broker restart while handlers run: the reply still comes, and no step
is done twice.

Two participants run at once, one taking a lease at once (its delivery is
acknowledged before the restart) and one holding its delivery (the broker
gives it again after the restart, and the runtime answers it from its
memory of replies).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.embedded import EmbeddedValkey
from tests.participants.conftest import Peer, Setup, unacked, wait_for

pytestmark = pytest.mark.slow


def replies_for(messages: list[dict[str, Any]], wi: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("fei") == wi["fei"]]


def restart_mid_step(setup: Setup, peer: Peer, spawn, restart: Callable[[], None]) -> None:
    held_queue = peer.declare(f"held-{setup.tag}")
    leaser = spawn(
        setup.ini(
            "leased.ini",
            participant={"lease_after": 0.3, "lease": 3},
            boss={"visibility_timeout": 3},
        )
    )
    holder = spawn(
        setup.ini(
            "held.ini",
            participant={"lease_after": 60},
            queue=held_queue,
            boss={"visibility_timeout": 3},
        )
    )
    leased, held = setup.workitem(params={"sleep": 3}), setup.workitem(params={"sleep": 3})
    peer.publish(setup.queue, leased, reply_to=setup.engine)
    peer.publish(held_queue, held, reply_to=setup.engine)
    for wi in (leased, held):
        wait_for(setup.report(f"running-{wi['fei']['subid']}").exists, 15, "the handlers")
    got = peer.collect_until(
        setup.engine, lambda ms: any(m.get("type") == "started" for m in ms), 5, "started"
    )
    peer.close()

    restart()

    # the leased step: one reply, done once; the held one: its reply, then
    # the same reply again for the redelivery, still done once
    peer.collect_until(
        setup.engine,
        lambda ms: len(replies_for(ms, leased)) >= 1 and len(replies_for(ms, held)) >= 2,
        40,
        "the replies",
        into=got,
    )
    assert len(replies_for(got, leased)) == 1
    first, again = replies_for(got, held)
    assert first == again and "error" not in first
    assert sorted(setup.runs()) == sorted([leased["fei"]["subid"], held["fei"]["subid"]])
    assert "reconnected to" in leaser.text() and "reconnected to" in holder.text()
    # logged once the second reply is published: the reply can arrive first
    holder.wait_log("delivered again: answered with the reply sent before")
    wait_for(lambda: unacked(setup.broker_url, held_queue) == 0, 10, "the redelivery's ack")

    # both still serve
    for queue in (setup.queue, held_queue):
        wi = setup.workitem()
        peer.publish(queue, wi, reply_to=setup.engine)
        peer.collect_until(
            setup.engine,
            lambda ms, wi=wi: bool(replies_for(ms, wi)),
            10,
            "a reply after the restart",
            into=got,
        )
    assert leaser.alive() and holder.alive()


@pytest.mark.rabbitmq
@pytest.mark.broker_exclusive
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_rabbitmq_restart_mid_step(setup: Setup, peer: Peer, spawn) -> None:
    def restart() -> None:
        for command in ("stop_app", "start_app", "await_startup"):
            subprocess.run(
                ["rabbitmqctl", "-q", command], check=True, capture_output=True, timeout=60
            )

    restart_mid_step(setup, peer, spawn, restart)


def test_embedded_restart_mid_step(tmp_path: Path, spawn) -> None:
    server = EmbeddedValkey(tmp_path / "valkey").start()
    try:
        url = "redis+socket://" + str(server.socket_path)
        setup = Setup(tmp_path, url)
        peer = Peer(url)
        for queue in (setup.queue, setup.engine, setup.deadletters):
            peer.declare(queue)

        def restart() -> None:
            server.stop()  # SIGTERM: the AOF is flushed, the queues kept
            server.start()

        restart_mid_step(setup, peer, spawn, restart)
        peer.delete_declared()
    finally:
        server.stop()
