"""The shovel transport with RabbitMQ's own shovel, not a stand-in.

A private RabbitMQ node (``tests/rabbitmq_node.py``) with ``rabbitmq_shovel``
enabled; two vhosts on it are the two sites, ODL and OPNFV, each with its
own BOSS configuration, key prefix, aggregator, graph and bridge
(``transport = shovel``). Set up as ``docs/federation.md`` tells a site
operator: ``boss federate setup`` on each site, a shovel user per
direction that may write the peer's inbound exchange only, and a dynamic
shovel per direction made with ``rabbitmqctl set_parameter shovel``.

Shown: ODL's artifact crosses to OPNFV, OPNFV's baseline and verdict come
back, ``trace_up`` from ODL's change reaches OPNFV's confidence level;
events forged on the way (a third domain, a bad HMAC) travel through the
real shovel and are dead-lettered at ODL; the shovel user cannot write
anything but the peer's inbound exchange.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import kombu
import pytest
from click.testing import CliRunner

from bossapp.cli import main
from engine.federation import sign
from engine.trace import trace_up
from tests.federation.conftest import SECRET, Site, two_sites
from tests.federation.test_two_sites import (
    EXAMPLES,
    example,
    odl_change_and_artifact,
    opnfv_verdict,
)
from tests.rabbitmq_node import RabbitNode, missing
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not EXAMPLES.is_dir(), reason=f"no Eiffel conformance examples at {EXAMPLES}"
    ),
]

PLUGINS = ["rabbitmq_shovel"]


@pytest.fixture(scope="module")
def shovel_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """A private node with the shovel plugin enabled, thrown away afterwards."""
    why = missing(PLUGINS)
    if why:
        if os.environ.get("BOSS_REQUIRE_RABBITMQ") == "1":
            pytest.fail(f"RabbitMQ with the shovel is required (BOSS_REQUIRE_RABBITMQ=1): {why}")
        pytest.skip(f"no RabbitMQ shovel: {why} (BOSS_REQUIRE_RABBITMQ=1 to fail instead)")
    node = RabbitNode(tmp_path_factory.mktemp("rabbit-shovel") / "node", plugins=PLUGINS)
    try:
        node.start()
        yield node
    finally:
        node.stop()


def shovel_sites(
    node: RabbitNode, tmp_path: Path, redis_url: str, tag: str
) -> contextlib.AbstractContextManager[tuple[Site, Site]]:
    vhosts = {name: f"fed{tag}{name}" for name in ("odl", "opnfv")}
    brokers = {name: node.add_vhost(vhost) for name, vhost in vhosts.items()}
    return two_sites(tmp_path, brokers, redis_url, transport="shovel")


def operator_setup(node: RabbitNode, src: Site, dst: Site, tag: str) -> tuple[str, str, str]:
    """``docs/federation.md``'s set-up of the shovel ``src`` -> ``dst``:
    ``boss federate setup`` on both sites, a user for ``src``'s shovel that
    may write ``dst``'s inbound exchange for ``src`` only, the dynamic
    shovel on ``src``'s vhost. Returns (shovel name, its user, password)."""
    runner = CliRunner()
    for site in (dst, src):
        out = runner.invoke(main, ["-c", str(site.ini), "federate", "setup"])
        assert out.exit_code == 0, out.output
    src_vhost = src.config.resolved_broker_url().rsplit("/", 1)[1]
    dst_vhost = dst.config.resolved_broker_url().rsplit("/", 1)[1]
    inbound = dst.settings.in_queue_name(dst.settings.peer_settings[0])  # <in_prefix>.<src>
    user, password = f"{src.name}-shovel-{tag}", uuid.uuid4().hex
    node.ctl("add_user", user, password)
    only = f"^{re.escape(inbound)}$"
    node.ctl("set_permissions", "-p", dst_vhost, user, only, only, "^$")
    name = f"{src.name}-to-{dst.name}"
    definition = {
        "src-protocol": "amqp091",
        "src-uri": node.url(src_vhost),
        "src-queue": src.settings.ready_queue_name(src.settings.peer_settings[0]),
        "dest-protocol": "amqp091",
        "dest-uri": node.url(dst_vhost, user, password),
        "dest-exchange": inbound,
        "ack-mode": "on-confirm",
        "src-delete-after": "never",
    }
    node.ctl("set_parameter", "-p", src_vhost, "shovel", name, json.dumps(definition))
    return name, user, password


def shovel_states(node: RabbitNode) -> dict[str, str]:
    out = node.ctl("shovel_status", "--formatter", "json").stdout
    return {row["name"]: row.get("state", "") for row in json.loads(out or "[]")}


def test_the_real_shovel_carries_the_scenario_and_refuses_a_forgery(
    shovel_node: RabbitNode, tmp_path: Path, redis_url: str
) -> None:
    node, tag = shovel_node, uuid.uuid4().hex[:6]
    users: list[str] = []
    with shovel_sites(node, tmp_path, redis_url, tag) as (odl, opnfv):
        vhosts = {s.name: s.config.resolved_broker_url().rsplit("/", 1)[1] for s in (odl, opnfv)}
        try:
            shovels: dict[str, tuple[str, str, str]] = {}
            for src, dst in ((odl, opnfv), (opnfv, odl)):
                shovels[src.name] = operator_setup(node, src, dst, tag)
                users.append(shovels[src.name][1])
            wait_for(
                lambda: (
                    set(shovel_states(node).values()) == {"running"}
                    and len(shovel_states(node)) == 2
                ),
                30,
                "both shovels running",
            )

            # ODL's change and artifact: only the artifact crosses
            scc, art = odl_change_and_artifact()
            aid = art["meta"]["id"]
            odl.bus.publish([scc, art])
            wait_for(lambda: opnfv.graph.exists(aid), 30, "ODL's artifact at OPNFV (by the shovel)")
            assert not opnfv.graph.exists(scc["meta"]["id"])
            assert opnfv.graph.get(aid)["meta"]["source"]["domainId"] == "odl"

            # OPNFV's baseline and verdict come back
            comp, clm = opnfv_verdict(aid)
            opnfv.bus.publish([comp, clm])
            lid = clm["meta"]["id"]
            wait_for(lambda: odl.graph.exists(lid), 30, "OPNFV's verdict at ODL (by the shovel)")
            up = trace_up(odl.graph, scc["meta"]["id"])
            assert [e["meta"]["id"] for e in up["confidence_levels"]] == [lid]
            assert up["confidence_levels"][0]["meta"]["source"]["domainId"] == "opnfv"
            assert [e["meta"]["id"] for e in up["compositions"]] == [comp["meta"]["id"]]
            # nothing echoed back
            assert opnfv.graph.count("EiffelArtifactCreatedEvent") == 1
            assert odl.graph.count("EiffelCompositionDefinedEvent") == 1

            # forged on OPNFV's side of the shovel (its ready queue): an event
            # claiming a third domain with the right HMAC, and one with a bad
            # HMAC; the real shovel carries both to ODL, which refuses them
            forged = example("ConfidenceLevelModified", domain="third", links=[("SUBJECT", aid)])
            body = json.dumps([forged]).encode()
            ready = opnfv.settings.ready_queue_name(opnfv.settings.peer_settings[0])
            with kombu.Connection(opnfv.config.resolved_broker_url()) as conn:
                for sig in (sign(SECRET, body), sign("guess", body)):
                    conn.Producer().publish(
                        body,
                        routing_key=ready,
                        headers={"X-Boss-Site": "opnfv", "X-Boss-Signature": sig},
                        content_type="application/json",
                        content_encoding="utf-8",
                        delivery_mode=2,
                    )
            letters = wait_for(lambda: (lambda x: len(x) >= 2 and x)(odl.deadletters()), 30)
            assert sorted(x["reason"].split(":", 1)[0] for x in letters) == [
                "federation-auth",
                "federation-domain",
            ]
            assert not odl.graph.exists(forged["meta"]["id"])
            assert opnfv.deadletters() == []

            # the shovel user of OPNFV may write ODL's inbound exchange for
            # OPNFV and nothing else there: ODL's trace exchange is refused
            _, user, password = shovels["opnfv"]
            url = node.url(vhosts["odl"], user, password)
            with (
                kombu.Connection(url, transport_options={"confirm_publish": True}) as conn,
                pytest.raises(Exception, match="ACCESS_REFUSED"),
            ):
                conn.Producer().publish(
                    body, exchange=odl.config.event_exchange, routing_key="eiffel.x"
                )
            assert not odl.graph.exists(forged["meta"]["id"])
        finally:
            for src, (name, _, _) in shovels.items():
                node.ctl("clear_parameter", "-p", vhosts[src], "shovel", name, check=False)
    for user in users:
        node.ctl("delete_user", user, check=False)
    for name in ("odl", "opnfv"):
        node.ctl("delete_vhost", f"fed{tag}{name}", check=False)
