"""TLS to RabbitMQ, and client-certificate (EXTERNAL) login.

A private RabbitMQ node is started for this module (its own node name,
ports, data and log directories, Erlang cookie and configuration under a
temp dir: the machine's RabbitMQ on 5672 is neither touched nor needed),
with a TLS listener whose certificates come from a test CA made here with
``cryptography``, the ``rabbitmq_auth_mechanism_ssl`` plugin and
``ssl_cert_login_from = common_name``.

Checked: a ``Publisher`` publishes and a consumer receives over
``amqps://`` with the CA verified; a client certificate logs in without a
password (SASL EXTERNAL); a wrong CA and a host name the certificate does
not name both fail with an error naming the broker and the cause (from
``connect()`` and from ``boss doctor``); and one run completes with an
engine worker and a participant talking to the broker only over TLS.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engine.broker import (
    Publisher,
    connect,
    describe_connect_error,
    participant_queue,
    tls_options,
)
from engine.config import Config
from engine.doctor import FAIL, OK, diagnose
from participants.link import BrokerLink
from tests.conftest import delete_keys
from tests.e2e.conftest import ROOT, System
from tests.rabbitmq_node import RABBIT_BIN, RabbitNode, missing
from tests.waiting import wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

#: the common name of the client certificate, and the RabbitMQ user it logs in as
CLIENT_CN = "boss-tls-client"


# -- a test CA -------------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def make_ca(path: Path, cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(path, key, cert)
    return key, cert


def make_leaf(
    path: Path,
    cn: str,
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    *,
    server: bool,
) -> None:
    ca_key, ca_cert = ca
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    _write(path, key, builder.sign(ca_key, hashes.SHA256()))


@dataclass(frozen=True)
class Pki:
    ca: Path
    wrong_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    #: a client certificate from the other CA (the broker does not trust it)
    stranger_cert: Path
    stranger_key: Path


def make_pki(directory: Path) -> Pki:
    """A CA, a server certificate for localhost and 127.0.0.1, a client
    certificate (CN ``CLIENT_CN``), and another CA that signed neither
    (but a client certificate of its own)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(directory / "ca", "BOSS test CA")
    wrong_ca = make_ca(directory / "wrong-ca", "Some other CA")
    make_leaf(directory / "stranger", CLIENT_CN, wrong_ca, server=False)
    make_leaf(directory / "server", "localhost", ca, server=True)
    make_leaf(directory / "client", CLIENT_CN, ca, server=False)
    return Pki(
        ca=directory / "ca.pem",
        wrong_ca=directory / "wrong-ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
        stranger_cert=directory / "stranger.pem",
        stranger_key=directory / "stranger.key",
    )


# -- a private RabbitMQ node (tests/rabbitmq_node.py) ---------------------------------


@dataclass
class TlsBroker:
    node: str
    port: int
    pki: Pki
    env: dict[str, str]
    vhost: str = "boss-tls"
    user: str = "boss"
    password: str = "boss-tls-password"

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", self.node, *args],
            env=self.env,
            check=check,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def url(self, host: str = "localhost", *, login: bool = True) -> str:
        auth = f"{self.user}:{self.password}@" if login else ""
        return f"amqps://{auth}{host}:{self.port}/{self.vhost}"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    why = missing(["rabbitmq_auth_mechanism_ssl"])
    if why:
        pytest.skip(why)
    base = tmp_path_factory.mktemp("rabbit-tls")
    pki = make_pki(base / "pki")
    node = RabbitNode(
        base / "node",
        plugins=["rabbitmq_auth_mechanism_ssl"],
        tcp=False,
        tls=pki,
        conf=(
            "auth_mechanisms.1 = PLAIN\n"
            "auth_mechanisms.2 = EXTERNAL\n"
            "ssl_cert_login_from = common_name\n"
        ),
        node=f"bosstls{secrets.token_hex(4)}@localhost",
        user="boss",
        password="boss-tls-password",
    )
    try:
        node.start(timeout=60)
        broker = TlsBroker(node=node.node, port=node.tls_port, pki=pki, env=node.env)
        broker.ctl("add_vhost", broker.vhost)
        broker.ctl("set_permissions", "-p", broker.vhost, broker.user, ".*", ".*", ".*")
        # the client certificate's user: no password (EXTERNAL)
        broker.ctl("add_user", CLIENT_CN, secrets.token_hex(16))
        broker.ctl("clear_password", CLIENT_CN)
        broker.ctl("set_permissions", "-p", broker.vhost, CLIENT_CN, ".*", ".*", ".*")
        yield broker
    finally:
        node.stop()


# -- the tests -------------------------------------------------------------------------


def _config(broker: TlsBroker, url: str, **keys: object) -> Config:
    values: dict[str, object] = {"broker_url": url, "broker_ca": str(broker.pki.ca)}
    values.update(keys)
    return Config(**values)  # type: ignore[arg-type]


def _roundtrip(config: Config) -> dict[str, object]:
    """Publish one message with a ``Publisher`` and take it off its queue
    again, both over ``config``'s broker connection."""
    queue = f"boss.tls-test.{secrets.token_hex(4)}"
    body = {"hello": "over TLS", "queue": queue}
    publisher = Publisher(config)
    try:
        publisher.publish(body, queue=queue)
    finally:
        publisher.close()
    with connect(config) as conn:
        with conn.SimpleQueue(participant_queue(queue)) as q:
            message = q.get(timeout=10)
            message.ack()
        conn.default_channel.queue_delete(queue)
    return dict(json.loads(message.body))


def test_publisher_and_consumer_over_amqps_with_the_ca_verified(tls_broker: TlsBroker) -> None:
    config = _config(tls_broker, tls_broker.url())
    assert tls_options(config, tls_broker.url())["ssl"]["server_hostname"] == "localhost"
    assert _roundtrip(config)["hello"] == "over TLS"


def test_client_certificate_logs_in_without_a_password(tls_broker: TlsBroker) -> None:
    url = tls_broker.url(login=False)
    config = _config(
        tls_broker,
        url,
        broker_cert=str(tls_broker.pki.client_cert),
        broker_key=str(tls_broker.pki.client_key),
    )
    assert tls_options(config, url)["login_method"] == "EXTERNAL"
    assert _roundtrip(config)["hello"] == "over TLS"
    with connect(config) as conn:
        conn.ensure_connection(max_retries=1)
        listed = wait_for(
            lambda: tls_broker.ctl(
                "list_connections", "--no-table-headers", "user", "auth_mechanism"
            ).stdout.split(),
            what="the broker to list the connection",
        )
        assert listed == [CLIENT_CN, "EXTERNAL"]


def _connect_error(config: Config) -> str:
    conn = connect(config)
    try:
        with pytest.raises(Exception) as caught:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=10)
    finally:
        conn.release()
    return describe_connect_error(config.broker_url, caught.value)


def test_a_wrong_ca_fails_with_a_clear_error(tls_broker: TlsBroker) -> None:
    config = _config(tls_broker, tls_broker.url(), broker_ca=str(tls_broker.pki.wrong_ca))
    message = _connect_error(config)
    assert message.startswith(
        f"cannot connect to the broker at amqps://boss:**@localhost:{tls_broker.port}/boss-tls: "
        "TLS: certificate verify failed: "
    ), message
    assert "check broker_ca" in message
    assert tls_broker.password not in message


def test_a_host_the_certificate_does_not_name_fails_with_a_clear_error(
    tls_broker: TlsBroker,
) -> None:
    url = tls_broker.url("127.0.0.2")  # loopback too, but not in the certificate
    message = _connect_error(_config(tls_broker, url))
    assert "TLS: certificate verify failed: " in message, message
    assert "mismatch" in message and "127.0.0.2" in message
    assert "broker_verify_hostname" in message
    # with the check off, the same host is let in (the chain is still verified)
    assert _roundtrip(_config(tls_broker, url, broker_verify_hostname=False))["hello"]


def test_a_client_certificate_the_broker_does_not_trust_is_named(tls_broker: TlsBroker) -> None:
    config = _config(
        tls_broker,
        tls_broker.url(login=False),
        broker_cert=str(tls_broker.pki.stranger_cert),
        broker_key=str(tls_broker.pki.stranger_key),
    )
    message = _connect_error(config)
    # TLS 1.3 tells the client so by closing the connection after its side
    # of the handshake; TLS 1.2 with an alert; both name broker_cert
    assert "TLS: the broker " in message and "check broker_cert and broker_key" in message, message


def _ini(path: Path, **keys: object) -> Path:
    path.write_text("[boss]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()))
    return path


def test_boss_doctor_names_a_wrong_ca(
    tls_broker: TlsBroker, embedded_url: str, tmp_path: Path
) -> None:
    ini = _ini(
        tmp_path / "boss.ini",
        broker_url=tls_broker.url(),
        broker_ca=tls_broker.pki.wrong_ca,
        redis_url=embedded_url,
    )
    finding = diagnose(str(ini), environ={}).get("broker")
    assert finding is not None and finding.status == FAIL
    assert finding.found.startswith(
        f"cannot connect to RabbitMQ at amqps://boss:**@localhost:{tls_broker.port}/boss-tls: "
        "TLS: certificate verify failed: self-signed certificate in certificate chain"
    ), finding.found
    assert "check broker_ca" in finding.fix
    # and with the right one, it says the connection is encrypted
    ini = _ini(
        ini, broker_url=tls_broker.url(), broker_ca=tls_broker.pki.ca, redis_url=embedded_url
    )
    finding = diagnose(str(ini), environ={}).get("broker")
    assert finding is not None and finding.status == OK, finding
    assert finding.found.endswith(" with TLS") and finding.data["tls"] is True


def _boss_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOSS_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def test_boss_worker_stops_at_start_naming_a_wrong_ca(
    tls_broker: TlsBroker, embedded_url: str, tmp_path: Path
) -> None:
    ini = _ini(
        tmp_path / "boss.ini",
        broker_url=tls_broker.url(),
        broker_ca=tls_broker.pki.wrong_ca,
        redis_url=embedded_url,
    )
    proc = subprocess.run(
        [sys.executable, "-m", "bossapp.cli", "-c", str(ini), "worker"],
        capture_output=True,
        text=True,
        env=_boss_env(),
        cwd=ROOT,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Traceback" not in out, out
    expected = (
        f"cannot connect to the broker at amqps://boss:**@localhost:{tls_broker.port}/boss-tls: "
        "TLS: certificate verify failed: self-signed certificate in certificate chain; "
    )
    assert f"ERROR boss.worker: {expected}" in out, out  # the log line
    assert f"boss: {expected}" in proc.stderr, out  # the command's error
    assert "check broker_ca" in out and tls_broker.password not in out


def test_a_participant_logs_the_tls_problem_with_each_attempt(
    tls_broker: TlsBroker, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tls_broker, tls_broker.url(), broker_ca=str(tls_broker.pki.wrong_ca))
    link = BrokerLink(
        config.broker_url,
        config,
        "boss.tls-test.participant",
        "p-1",
        on_workitem=lambda message: None,
        on_control=lambda message: None,
        max_backoff=0.01,
    )
    with caplog.at_level(logging.WARNING, logger="boss.participant"):
        assert not link.connect(lambda: bool(caplog.records), threading.Event())
    message = caplog.records[0].getMessage()
    assert message.startswith(
        f"cannot reach the broker at amqps://boss:**@localhost:{tls_broker.port}/boss-tls "
        "(attempt 1: TLS: certificate verify failed: self-signed certificate in certificate "
        "chain; the broker's certificate is not signed by a CA trusted here: check broker_ca"
    ), message


class TlsSystem(System):
    """``tests/e2e``'s ``System`` with the TLS keys in its ``boss.ini`` (for
    the workers and the participants), on a node thrown away afterwards."""

    def _boss_section(self) -> str:
        keys = ("broker_ca", "broker_cert", "broker_key")
        return super()._boss_section() + "".join(f"{k} = {getattr(self.config, k)}\n" for k in keys)

    def cleanup(self) -> None:  # the node's queues go with it
        self.stop()
        self.publisher.close()
        client = redis.Redis.from_url(self.redis_url)
        delete_keys(client, self.config.key_prefix)
        client.close()
        self.store.close()


def test_a_run_through_a_worker_and_a_participant_over_tls_with_a_client_certificate(
    tls_broker: TlsBroker, embedded_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    (tmp_path / "processes").mkdir()
    system = TlsSystem(
        tmp_path,
        tls_broker.url(login=False),  # no password: the certificate logs in (EXTERNAL)
        embedded_url,
        f"tls{secrets.token_hex(5)}",
        settings={
            "broker_ca": str(tls_broker.pki.ca),
            "broker_cert": str(tls_broker.pki.client_cert),
            "broker_key": str(tls_broker.pki.client_key),
        },
    )
    try:
        system.worker()
        system.participant("bump", "Bump")
        wfid = system.launch(
            "name: seq\nsteps:\n  - bump: {tag: a}\n  - bump: {tag: b}\n", {"n": 0}
        )
        system.wait_status(wfid, timeout=30)
        assert system.engine.run(wfid).fields["n"] == 2
        # every connection of the run (worker, its aggregator, Celery, the
        # participant, this test's publisher) is the certificate's user over TLS
        rows = tls_broker.ctl(
            "list_connections", "--no-table-headers", "user", "ssl", "auth_mechanism"
        ).stdout.splitlines()
        assert len(rows) >= 4, rows
        assert {tuple(r.split()) for r in rows} == {(CLIENT_CN, "true", "EXTERNAL")}, rows
        assert not system.invalid_events()
    except BaseException:
        print(system.logs())
        raise
    finally:
        system.cleanup()
