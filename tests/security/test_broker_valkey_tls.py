"""A Valkey/Redis broker over TLS (``rediss://``): the same ``[boss]``
``broker_ca``/``broker_cert``/``broker_key`` keys as for RabbitMQ, and
BOSS's own transport (held deliveries kept alive, ``BLMOVE``), not kombu's.

The server is the TLS-only ``redis-server`` of ``tests/store/test_store_tls.py``
(its test CA, its certificate for ``localhost``); the embedded Valkey's
binary is built without TLS.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Any

import kombu
import pytest

from engine import redis_transport
from engine.broker import BrokerTLSError, Publisher, check_tls, connect, participant_queue
from engine.config import Config
from tests.store.test_store_tls import Pki, mtls_port, pki, tls_port  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _config(**overrides: Any) -> Config:
    return Config.load(None, environ={"HOME": "/nonexistent"}, **overrides)


def _round_trip(config: Config) -> list[dict[str, Any]]:
    """Publish one message and consume it back over ``config``'s broker."""
    queue = f"tls.{uuid.uuid4().hex[:8]}"
    publisher = Publisher(config)
    try:
        publisher.publish({"over": "tls"}, queue=queue)
    finally:
        publisher.close()
    got: list[dict[str, Any]] = []
    with connect(config) as conn:
        channel = conn.channel()
        # BOSS's transport, not kombu's stock one (which keeps nothing alive)
        assert isinstance(channel, redis_transport.Channel)
        assert conn.transport.client.ssl
        consumer = kombu.Consumer(
            channel,
            queues=[participant_queue(queue)],
            on_message=lambda m: (got.append(json.loads(m.body)), m.ack()),
            accept=["application/json"],
        )
        consumer.consume()
        deadline = time.monotonic() + 15
        while not got and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.5)
        consumer.cancel()
        channel.close()
    return got


def test_a_valkey_broker_over_tls_with_the_ca_from_the_configuration(
    pki: Pki,  # noqa: F811
    tls_port: int,  # noqa: F811
) -> None:
    config = _config(broker_url=f"rediss://localhost:{tls_port}/3", broker_ca=pki.ca)
    check_tls(config)  # the handshake works: nothing raised
    assert _round_trip(config) == [{"over": "tls"}]


def test_a_client_certificate_for_the_broker(pki: Pki, mtls_port: int) -> None:  # noqa: F811
    url = f"rediss://localhost:{mtls_port}/3"
    with pytest.raises(BrokerTLSError):
        check_tls(_config(broker_url=url, broker_ca=pki.ca))  # no certificate: refused
    config = _config(
        broker_url=url,
        broker_ca=pki.ca,
        broker_cert=pki.client_cert,
        broker_key=pki.client_key,
    )
    assert _round_trip(config) == [{"over": "tls"}]


def test_a_wrong_ca_or_host_name_fails_with_a_clear_error(pki: Pki, tls_port: int) -> None:  # noqa: F811
    with pytest.raises(BrokerTLSError) as caught:
        check_tls(_config(broker_url=f"rediss://localhost:{tls_port}/3", broker_ca=pki.other_ca))
    message = str(caught.value)
    assert f"localhost:{tls_port}" in message
    assert "certificate" in message.lower()
    # the certificate names localhost, not 127.0.0.1
    with pytest.raises(BrokerTLSError):
        check_tls(_config(broker_url=f"rediss://127.0.0.1:{tls_port}/3", broker_ca=pki.ca))
    relaxed = _config(
        broker_url=f"rediss://127.0.0.1:{tls_port}/3",
        broker_ca=pki.ca,
        broker_verify_hostname=False,
    )
    check_tls(relaxed)
    assert _round_trip(relaxed) == [{"over": "tls"}]


def test_no_tls_options_still_means_tls() -> None:
    """A ``rediss://`` URL given to ``kombu_connection`` without options is
    never opened in the clear."""
    from engine.broker import kombu_connection
    from engine.broker import redis_transport as transport

    conn = kombu_connection("rediss://localhost:1/0", transport=transport())
    assert conn.ssl and conn.ssl["ssl_cert_reqs"]
    assert conn.transport_cls == redis_transport.SCHEME
