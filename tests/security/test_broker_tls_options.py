"""``engine.broker.tls_options``: what the ``broker_*`` TLS keys turn into
(the options of every kombu connection to RabbitMQ), without a broker.
``test_broker_tls.py`` checks them against a real TLS listener."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from engine.broker import tls_failure, tls_options
from engine.config import Config, ConfigError


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    path = tmp_path / "some.pem"
    path.write_text("not read here\n")
    return path


def test_no_tls_for_amqp_without_keys_nor_for_redis(pem: Path) -> None:
    assert tls_options(Config(), "amqp://guest:guest@localhost:5672//") == {}
    assert tls_options(Config(broker_ca=str(pem)), "redis://localhost:6379/0") == {}
    assert tls_options(Config(broker_ca=str(pem)), "redis+socket:///tmp/v.sock") == {}


def test_amqps_verifies_the_certificate_and_the_host_name() -> None:
    options = tls_options(Config(), "amqps://u:p@mq.example:5671/boss")
    assert options == {
        "ssl": {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": "mq.example"}
    }  # the system's CAs; PLAIN login with the URL's user and password


def test_the_keys_give_the_ca_the_client_certificate_and_external_login(pem: Path) -> None:
    config = Config(broker_ca=str(pem), broker_cert=str(pem), broker_key=str(pem))
    options = tls_options(config, "amqp://mq.example:5671/boss")  # TLS: keys are set
    assert options == {
        "ssl": {
            "cert_reqs": ssl.CERT_REQUIRED,
            "ca_certs": str(pem),
            "certfile": str(pem),
            "keyfile": str(pem),
            "server_hostname": "mq.example",
        },
        "login_method": "EXTERNAL",
    }
    # a password in the URL: PLAIN login, the certificate is still presented
    assert "login_method" not in tls_options(config, "amqps://u:p@mq.example/boss")


def test_host_name_verification_can_be_turned_off() -> None:
    options = tls_options(Config(broker_verify_hostname=False), "amqps://u:p@10.0.0.5/boss")
    assert options == {"ssl": {"cert_reqs": ssl.CERT_REQUIRED}}


def test_a_missing_file_is_a_configuration_error(tmp_path: Path, pem: Path) -> None:
    with pytest.raises(ConfigError, match=r"broker_ca = .*/nope.pem: no such file"):
        tls_options(Config(broker_ca=str(tmp_path / "nope.pem")), "amqps://mq/boss")
    with pytest.raises(ConfigError, match="broker_key is set but broker_cert is not"):
        tls_options(Config(broker_key=str(pem)), "amqps://mq/boss")


def test_keys_from_the_environment(pem: Path) -> None:
    config = Config.load(
        None,
        environ={"BOSS_BROKER_CA": str(pem), "BOSS_BROKER_VERIFY_HOSTNAME": "false"},
    )
    assert config.broker_ca == str(pem) and config.broker_verify_hostname is False


def test_tls_failure_reads_the_cause_through_wrapping_exceptions() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "unable to get local issuer certificate"
    try:
        try:
            raise cause
        except ssl.SSLError as exc:
            raise ConnectionError(str(exc)) from exc
    except ConnectionError as wrapped:
        found = tls_failure(wrapped)
    assert found is not None
    assert found[0] == "TLS: certificate verify failed: unable to get local issuer certificate"
    assert "check broker_ca" in found[1]
    assert tls_failure(ConnectionRefusedError(111, "refused")) is None
