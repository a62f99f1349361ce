"""Eiffel's per-event integrity protection (``meta.security``,
``engine/trace/signing.py``): the protocol's own examples (read in place)
signed and verified with every algorithm, tampering and foreign keys
caught with the failure named, the settings, and two sites whose bridges
sign and verify: signed events flow into the peer's graph, a forged one is
dead-lettered with the reason and changes nothing.

There is no interoperability test with another implementation here:
eiffellib (3.0.0, the newest, and a dependency of BOSS) has no signing, and
the community's implementation that has (eiffel-community/eiffelevents-sdk-go,
``signature/signer.go``, ``verifier.go``) is Go, which this machine does not
build. ``signing.py`` follows that code: RFC 8785 canonical JSON, JWA
``alg`` names, standard base64, ECDSA signatures as ASN.1 DER, PSS salts
auto-detected; the RFC 8785 test below pins the canonical form.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from werkzeug.datastructures import Headers

from engine.config import Config
from engine.federation import Inbound, Sender, load_federation, sign
from engine.settings import ConfigError
from engine.trace import InvalidEvent, cdevents, cloudevents, eiffel, signing
from engine.trace.validate import Validator
from tests.federation.conftest import two_sites
from tests.federation.test_two_sites import as_peer, odl_change_and_artifact, post
from tests.trace.conformance import CONFORMANCE
from tests.waiting import wait_for

EXAMPLES = CONFORMANCE / "eiffel" / "examples" / "events"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*/*.json")) if EXAMPLES.is_dir() else []

needs_examples = pytest.mark.skipif(
    not EXAMPLE_FILES, reason=f"no Eiffel conformance examples at {EXAMPLES}"
)

_RSA: dict[int, rsa.RSAPrivateKey] = {}
_EC: dict[str, ec.EllipticCurvePrivateKey] = {}


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    if bits not in _RSA:
        _RSA[bits] = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return _RSA[bits]


def ec_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    curve = curve or ec.SECP256R1()
    if curve.name not in _EC:
        _EC[curve.name] = ec.generate_private_key(curve)
    return _EC[curve.name]


def key_for(alg: str) -> signing.PrivateKey:
    curves = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
    return ec_key(curves[alg]) if alg in curves else rsa_key()


def write_keys(directory: Path, name: str, key: signing.PrivateKey) -> tuple[Path, Path]:
    """``<name>.key.pem`` (private) and ``<name>.pub.pem`` (public), as openssl writes them."""
    private = directory / f"{name}.key.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = directory / f"{name}.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def example(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def without_security(event: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(event)
    out["meta"].pop("security", None)
    return out


# -- the canonical form ----------------------------------------------------------------------


def test_the_canonical_form_is_rfc_8785() -> None:
    # RFC 8785 section 3.2.3: members sorted by UTF-16 code units (the emoji,
    # a surrogate pair, sorts before U+FB33)
    keys = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    assert signing.canonical(keys).decode() == (
        '{"\\r":2,"1":4,"\u0080":6,"\u00f6":7,"\u20ac":1,"\U0001f600":5,"\ufb33":3}'
    )
    # numbers as ECMAScript writes them (RFC 8785 appendix B)
    numbers = {
        0.0: "0",
        1e21: "1e+21",
        1e-7: "1e-7",
        0.000001: "0.000001",
        123456789012345680000.0: "123456789012345680000",
        5e-324: "5e-324",
        -1.5: "-1.5",
        100.0: "100",
        333333333.3333333: "333333333.3333333",
    }
    for value, text in numbers.items():
        assert signing.canonical(value).decode() == text, value
    assert signing.canonical(-0.0) == b"0"
    assert signing.canonical(1234567890123) == b"1234567890123"  # an Eiffel meta.time
    # strings: only what must be escaped, control characters in lowercase hex
    assert signing.canonical('a\u001f\n"\\é/') == b'"a\\u001f\\n\\"\\\\\xc3\xa9/"'
    assert signing.canonical({"b": [True, None, {"z": 1, "a": False}], "a": ""}) == (
        b'{"a":"","b":[true,null,{"a":false,"z":1}]}'
    )
    with pytest.raises(ValueError, match="no canonical JSON form"):
        signing.canonical(float("nan"))


# -- the protocol's examples, signed and verified --------------------------------------------


@needs_examples
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_every_conformance_example_signs_verifies_and_stays_valid(alg: str) -> None:
    key = key_for(alg)
    signer = signing.Signer(key, "CN=odl,O=OpenDaylight")
    verifier = signing.Verifier(key.public_key())
    validator = Validator()
    valid = 0
    for path in EXAMPLE_FILES:
        original = example(path)
        signed = signer.sign(original)
        assert original == example(path), "signing changed its argument"
        # the rest of the event is untouched; the security block is the protocol's
        assert without_security(signed) == without_security(original), path
        security = signed["meta"]["security"]
        assert security["authorIdentity"] == "CN=odl,O=OpenDaylight"
        ip = security["integrityProtection"]
        assert ip["alg"] == alg and ip["publicKey"] == signing.public_key_b64(key)
        base64.b64decode(ip["signature"], validate=True)
        assert verifier.verify(signed) == alg
        # it survives a trip through JSON written any other way
        again = json.loads(json.dumps(signed, indent=3, sort_keys=False, ensure_ascii=True))
        assert verifier.verify(again) == alg
        # and still validates against its schema, unless its version's meta
        # predates integrityProtection (EiffelMetaProperty 1.0.0 and 2.0.0)
        validator.validate(original, links="warn")
        try:
            validator.validate(signed, links="warn")
            valid += 1
        except InvalidEvent as exc:
            assert exc.path == "meta.security" and "integrityProtection" in exc.message, path
            assert int(original["meta"]["version"].split(".")[0]) <= 2, path
    assert valid >= len(EXAMPLE_FILES) - 2 and valid >= 30


@needs_examples
def test_an_examples_own_security_block_is_replaced_but_its_sequence_kept() -> None:
    path = EXAMPLES / "EiffelArtifactPublishedEvent" / "simple.json"
    original = example(path)
    # the example is "signed" with HS256 and a made-up signature: not verifiable here
    with pytest.raises(signing.UnknownAlgorithm, match=r"HS256.*symmetric"):
        signing.Verifier(rsa_key().public_key()).verify(original)
    signed = signing.sign_event(original, ec_key(), "CN=odl")
    assert (
        signed["meta"]["security"]["sequenceProtection"]
        == (original["meta"]["security"]["sequenceProtection"])
    )
    assert signed["meta"]["security"]["integrityProtection"]["alg"] == "ES256"
    signing.verify_event(signed, ec_key().public_key())
    # the sequence is signed too
    moved = copy.deepcopy(signed)
    moved["meta"]["security"]["sequenceProtection"][0]["position"] += 1
    with pytest.raises(signing.BadSignature):
        signing.verify_event(moved, ec_key().public_key())


@pytest.mark.parametrize("alg", sorted(signing.ALGORITHMS))
def test_every_algorithm_round_trips(alg: str) -> None:
    key = key_for(alg)
    event = eiffel.artifact_created("pkg:generic/odl-netvirt@1", source={"domainId": "odl"})
    signed = signing.sign_event(event, key, "CN=odl", alg)
    assert signing.verify_event(signed, key.public_key()) == alg
    Validator().validate(signed)


def test_go_sdk_and_jws_variants_verify() -> None:
    """Signatures made as other implementations make them: PSS with the
    largest salt (Go's ``rsa.SignPSS`` default), ECDSA as JWS's raw ``r||s``."""
    event = eiffel.artifact_created("pkg:generic/x@1", source={"domainId": "odl"})
    key = rsa_key()
    signed = signing.sign_event(event, key, "CN=odl", "PS256", with_public_key=False)
    signed["meta"]["security"]["integrityProtection"]["signature"] = ""
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    sig = key.sign(signing.canonical(signed), pss, hashes.SHA256())
    signed["meta"]["security"]["integrityProtection"]["signature"] = base64.b64encode(sig).decode()
    assert signing.verify_event(signed, key.public_key()) == "PS256"

    eck = ec_key()
    signed = signing.sign_event(event, eck, "CN=odl")
    r, s = decode_dss_signature(
        base64.b64decode(signed["meta"]["security"]["integrityProtection"]["signature"])
    )
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    signed["meta"]["security"]["integrityProtection"]["signature"] = base64.b64encode(raw).decode()
    assert signing.verify_event(signed, eck.public_key()) == "ES256"


# -- what is refused, and why ------------------------------------------------------------------


@needs_examples
def test_tampering_with_any_field_is_caught() -> None:
    key = rsa_key()
    verifier = signing.Verifier(key.public_key(), name="peer odl")
    path = EXAMPLES / "EiffelArtifactCreatedEvent" / "simple.json"
    signed = signing.sign_event(example(path), key, "CN=odl")
    signing.verify_event(signed, key.public_key())

    def changed(edit: Any) -> dict[str, Any]:
        ev = copy.deepcopy(signed)
        edit(ev)
        return ev

    tampered = [
        changed(lambda e: e["data"].update(identity="pkg:generic/evil@6.6.6")),
        changed(lambda e: e["meta"].update(time=e["meta"]["time"] + 1)),
        changed(lambda e: e["meta"]["source"].update(domainId="opnfv")),
        changed(lambda e: e.update(links=[{"type": "CAUSE", "target": str(uuid.uuid4())}])),
        changed(lambda e: e["meta"]["security"].update(authorIdentity="CN=mallory")),
        changed(lambda e: e["meta"]["security"]["integrityProtection"].update(alg="PS256")),
        changed(lambda e: e["meta"].update(tags=["fast-track"])),
    ]
    for ev in tampered:
        with pytest.raises(signing.BadSignature, match=r"bad .* signature.*peer odl"):
            verifier.verify(ev)
    # the same key cannot do another family's alg
    with pytest.raises(signing.KeyMismatch, match="ES256 needs an EC key"):
        verifier.verify(
            changed(lambda e: e["meta"]["security"]["integrityProtection"].update(alg="ES256"))
        )
    with pytest.raises(signing.UnknownAlgorithm, match="'none'"):
        verifier.verify(
            changed(lambda e: e["meta"]["security"]["integrityProtection"].update(alg="none"))
        )
    with pytest.raises(signing.BadSignature, match="not base64"):
        verifier.verify(
            changed(lambda e: e["meta"]["security"]["integrityProtection"].update(signature="%%%"))
        )


def test_missing_signatures_and_keys_that_do_not_match() -> None:
    event = eiffel.artifact_created("pkg:generic/x@1", source={"domainId": "odl"})
    odl, mallory = rsa_key(), rsa_key(3072)
    verifier = signing.Verifier(odl.public_key(), name="peer odl")
    with pytest.raises(signing.NoSignature, match="not signed"):
        verifier.verify(event)
    empty = signing.sign_event(event, odl, "CN=odl")
    empty["meta"]["security"]["integrityProtection"]["signature"] = ""
    with pytest.raises(signing.NoSignature, match="empty"):
        verifier.verify(empty)
    # signed with another key that names itself: refused for the key, before any maths
    forged = signing.sign_event(event, mallory, "CN=odl")
    with pytest.raises(signing.UntrustedKey, match="not the key configured for peer odl"):
        verifier.verify(forged)
    # ... and when it names the right key (or none), the signature is wrong
    forged["meta"]["security"]["integrityProtection"]["publicKey"] = signing.public_key_b64(odl)
    with pytest.raises(signing.BadSignature):
        verifier.verify(forged)
    quiet = signing.sign_event(event, mallory, "CN=odl", with_public_key=False)
    with pytest.raises(signing.BadSignature):
        verifier.verify(quiet)
    # an EC signature for a peer whose key is RSA
    with pytest.raises(signing.UntrustedKey):
        verifier.verify(signing.sign_event(event, ec_key(), "CN=odl"))
    with pytest.raises(signing.KeyMismatch, match="ES256 needs an EC key, not an RSA key"):
        verifier.verify(signing.sign_event(event, ec_key(), "CN=odl", with_public_key=False))
    # a signer whose key cannot do its alg, or an alg nobody knows
    with pytest.raises(signing.KeyMismatch, match="on secp256r1, not on secp384r1"):
        signing.Signer(ec_key(ec.SECP384R1()), "CN=odl", "ES256")
    with pytest.raises(signing.UnknownAlgorithm):
        signing.Signer(odl, "CN=odl", "RS1024")
    # a verifier with two keys (a peer changing keys) takes either
    both = signing.Verifier([odl.public_key(), mallory.public_key()])
    both.verify(signing.sign_event(event, mallory, "CN=odl"))
    both.verify(signing.sign_event(event, odl, "CN=odl"))


def test_key_files(tmp_path: Path) -> None:
    private, public = write_keys(tmp_path, "odl", ec_key())
    signer = signing.Signer.from_file(private, "CN=odl")
    assert signer.alg == "ES256"
    assert signing.Verifier.from_file(public).verify(signer.sign(eiffel.artifact_created("a")))
    # a public key file with two keys (the old one and the new one)
    _, other = write_keys(tmp_path, "new", rsa_key())
    both = tmp_path / "both.pem"
    both.write_bytes(public.read_bytes() + other.read_bytes())
    assert len(signing.load_public_keys(both)) == 2
    with pytest.raises(signing.KeyFileError, match="no such key file"):
        signing.load_public_keys(tmp_path / "nope.pem")
    with pytest.raises(signing.KeyFileError, match="holds a private key"):
        signing.load_public_keys(private)
    with pytest.raises(signing.KeyFileError, match="not a PEM private key"):
        signing.load_private_key(public)
    (tmp_path / "junk.pem").write_text("hello")
    with pytest.raises(signing.KeyFileError, match="no PEM block"):
        signing.load_public_keys(tmp_path / "junk.pem")


# -- the settings ------------------------------------------------------------------------------


def _ini(tmp_path: Path, federation: str = "", peer: str = "") -> Path:
    path = tmp_path / "boss.ini"
    path.write_text(
        "[boss]\neiffel_domain = odl\n\n[federation]\npeers = opnfv\n"
        f"{federation}\n\n[federation.peer.opnfv]\nsecret = s3cret\n"
        f"url = http://opnfv.example/federation/v1/events\n{peer}\n",
        encoding="utf-8",
    )
    return path


def test_signing_settings(tmp_path: Path) -> None:
    write_keys(tmp_path, "odl", ec_key(ec.SECP384R1()))
    write_keys(tmp_path, "opnfv", rsa_key())
    # relative paths are the configuration file's directory's
    ini = _ini(tmp_path, "signing_key = odl.key.pem", "public_key = opnfv.pub.pem")
    config = Config.load(ini, environ={})
    settings = load_federation(config, environ={})
    assert settings.signing_key == str(tmp_path / "odl.key.pem")
    signer = settings.signer(config)
    assert signer is not None and signer.alg == "ES384" and signer.identity == "CN=odl"
    [peer] = settings.peer_settings
    assert peer.public_key == str(tmp_path / "opnfv.pub.pem") and peer.signature_required
    assert peer.verifier() is not None
    # not signing, not verifying: as before
    plain = load_federation(Config.load(_ini(tmp_path), environ={}), environ={})
    assert plain.signer(config) is None and not plain.peer_settings[0].signature_required
    # a key, but unsigned events still welcome
    lax = _ini(tmp_path, "", "public_key = opnfv.pub.pem\nrequire_signature = false")
    assert (
        not load_federation(Config.load(lax, environ={}), environ={})
        .peer_settings[0]
        .signature_required
    )
    # the environment names the key, with an alg and an identity
    env = {
        "BOSS_FEDERATION_SIGNING_KEY": str(tmp_path / "opnfv.key.pem"),
        "BOSS_FEDERATION_SIGNING_ALG": "PS512",
        "BOSS_FEDERATION_SIGNING_IDENTITY": "CN=odl,O=OpenDaylight",
    }
    s = load_federation(Config.load(_ini(tmp_path), environ={}), environ=env).signer(config)
    assert s is not None and (s.alg, s.identity) == ("PS512", "CN=odl,O=OpenDaylight")


@pytest.mark.parametrize(
    ("federation", "peer", "message"),
    [
        ("", "require_signature = true", "require_signature = true without a public_key"),
        ("", "public_key = nope.pem", "public_key = '.*nope.pem': no such key file"),
        ("", "public_key = odl.key.pem", "public_key = .*: holds a private key"),
        ("signing_key = opnfv.pub.pem", "", r"\[federation\] signing_key = .*not a PEM private"),
        ("signing_key = odl.key.pem\nsigning_alg = RS256", "", "signing_alg = 'RS256': alg RS256"),
        ("signing_key = odl.key.pem\nsigning_alg = HS256", "", "signing_alg = 'HS256'.*symmetric"),
        ("", "require_signature = maybe", "require_signature = 'maybe': not a boolean"),
    ],
)
def test_bad_signing_settings_are_named(
    tmp_path: Path, federation: str, peer: str, message: str
) -> None:
    write_keys(tmp_path, "odl", ec_key())
    write_keys(tmp_path, "opnfv", rsa_key())
    ini = _ini(tmp_path, federation, peer)
    with pytest.raises(ConfigError, match=message):
        load_federation(Config.load(ini, environ={}), environ={})


# -- the bridge, offline -----------------------------------------------------------------------


class _Graph:
    def get_many(self, ids: list[str]) -> list[None]:
        return [None for _ in ids]


class _Bus:
    def __init__(self) -> None:
        self.published: list[bytes] = []

    def publish_raw(self, body: bytes, key: str) -> None:
        self.published.append(body)

    def close(self) -> None:
        pass


def test_the_sender_signs_and_the_inbound_side_verifies_each_event(tmp_path: Path) -> None:
    write_keys(tmp_path, "odl", ec_key())
    write_keys(tmp_path, "mallory", rsa_key(3072))
    # opnfv's side: odl is its peer, with odl's public key
    at_opnfv = tmp_path / "opnfv"
    at_opnfv.mkdir()
    (at_opnfv / "boss.ini").write_text(
        "[boss]\neiffel_domain = opnfv\n[federation]\npeers = odl\n"
        "[federation.peer.odl]\nsecret = s3cret\npublic_key = ../odl.pub.pem\n",
        encoding="utf-8",
    )
    config = Config.load(at_opnfv / "boss.ini", environ={})
    bus = _Bus()
    inbound = Inbound(config, load_federation(config, environ={}), graph=_Graph(), bus=bus)
    letters: list[tuple[str, str]] = []
    inbound.deadletter = lambda body, reason: letters.append((str(body), reason))  # type: ignore[assignment,method-assign]
    # odl's side: signs with its key
    ini = _ini(tmp_path, "signing_key = odl.key.pem")
    odl_config = Config.load(ini, environ={})
    odl = load_federation(odl_config, environ={})
    sender = Sender(odl_config, odl, odl.peer_settings[0])

    good = eiffel.artifact_created("pkg:generic/odl-netvirt@1")  # no domain: stamped, then signed
    old = eiffel.artifact_created("pkg:generic/odl-old@1", source={"domainId": "odl"})
    old["meta"]["version"] = "1.0.0"  # its meta cannot carry integrityProtection
    old["data"] = {"gav": {"groupId": "g", "artifactId": "a", "version": "1"}}
    out = sender.select([json.dumps([good, old])])
    assert signing.is_signed(out[0]) and not signing.is_signed(out[1])
    assert out[0]["meta"]["security"]["authorIdentity"] == "CN=odl"
    assert sender.stats.unsigned == 1
    mallory = signing.Signer.from_file(tmp_path / "mallory.key.pem", "CN=odl")
    forged = mallory.sign(eiffel.artifact_created("pkg:generic/evil@1", source={"domainId": "odl"}))
    tampered = copy.deepcopy(out[0])
    tampered["meta"]["id"] = str(uuid.uuid4())
    tampered["data"]["identity"] = "pkg:generic/evil@2"
    cd = eiffel.artifact_created("pkg:generic/cd@1")
    as_cdevent = cloudevents.wrap_cdevent(cdevents.to_cdevent(cd))
    [(body, headers)] = sender.requests([out[0], out[1], forged, tampered])
    items = [*json.loads(body), as_cdevent]
    body = json.dumps(items).encode()
    headers["X-Boss-Signature"] = sign("s3cret", body)
    status, answer = inbound.handle(Headers(headers), body)
    assert status == 200
    assert answer["accepted"] == [good["meta"]["id"]]  # the rest of the batch still comes in
    reasons = {r["id"]: r["reason"] for r in answer["rejected"]}
    prefix = "federation-signature: from peer odl: "
    assert reasons[old["meta"]["id"]] == (
        f"{prefix}event {old['meta']['id']} is not signed (no meta.security.integrityProtection)"
    )
    assert reasons[forged["meta"]["id"]].startswith(prefix)
    assert (
        "signed with a publicKey that is not the key configured for peer odl"
        in (reasons[forged["meta"]["id"]])
    )
    assert reasons[tampered["meta"]["id"]].startswith(f"{prefix}event {tampered['meta']['id']}")
    assert "bad ES256 signature" in reasons[tampered["meta"]["id"]]
    assert any(
        r.startswith(f"{prefix}a CDEvent carries no Eiffel signature") for r in reasons.values()
    )
    assert [r for _, r in letters] == [r["reason"] for r in answer["rejected"]]
    # what goes on to the graph is the event as signed
    [stored] = json.loads(bus.published[-1])
    assert stored == out[0]
    signing.verify_event(stored, ec_key().public_key())


# -- two sites ---------------------------------------------------------------------------------


def test_two_sites_sign_and_verify_a_forged_event_is_dead_lettered(
    tmp_path: Path, embedded_broker_url: str, rabbitmq_url: str, redis_url: str
) -> None:
    keys = {"odl": ec_key(), "opnfv": rsa_key(), "mallory": rsa_key(3072)}
    for name, key in keys.items():
        write_keys(tmp_path, name, key)
    extra = {
        # each site signs with its key and knows the other's public key
        "odl": ("signing_key = odl.key.pem", "public_key = opnfv.pub.pem"),
        "opnfv": ("signing_key = opnfv.key.pem", "public_key = odl.pub.pem"),
    }
    brokers = {"odl": embedded_broker_url, "opnfv": rabbitmq_url}
    with two_sites(tmp_path, brokers, redis_url, extra=extra) as (odl, opnfv):
        scc, art = odl_change_and_artifact()
        aid = art["meta"]["id"]
        odl.bus.publish([scc, art])
        wait_for(lambda: opnfv.graph.exists(aid), 20, "ODL's signed artifact at OPNFV")
        at_opnfv = opnfv.graph.get(aid)
        assert at_opnfv["meta"]["security"]["authorIdentity"] == "CN=odl"
        assert signing.verify_event(at_opnfv, keys["odl"].public_key()) == "ES256"
        assert without_security(at_opnfv) == {
            **art,
            "meta": {k: v for k, v in art["meta"].items() if k != "security"},
        }
        # ODL's own copy is as it was published (signing is for the way out)
        assert "security" not in odl.graph.get(aid)["meta"]

        comp = eiffel.composition_defined("opnfv-7", [aid], source={"domainId": "opnfv"})
        clm = eiffel.confidence_level_modified(
            "community-b-tested", "SUCCESS", [comp["meta"]["id"]], source={"domainId": "opnfv"}
        )
        opnfv.bus.publish([comp, clm])
        lid = clm["meta"]["id"]
        wait_for(lambda: odl.graph.exists(lid), 20, "OPNFV's signed verdict at ODL")
        assert signing.verify_event(odl.graph.get(lid), keys["opnfv"].public_key()) == "RS256"

        # forged: an OPNFV verdict signed with mallory's key, one unsigned, and
        # one good one in the same request (it is taken)
        forged = eiffel.confidence_level_modified(
            "community-b-tested", "FAILURE", [comp["meta"]["id"]], source={"domainId": "opnfv"}
        )
        forged = signing.sign_event(forged, keys["mallory"], "CN=opnfv", with_public_key=False)
        unsigned = eiffel.confidence_level_modified(
            "community-b-tested", "FAILURE", [comp["meta"]["id"]], source={"domainId": "opnfv"}
        )
        fine = signing.sign_event(
            eiffel.confidence_level_modified(
                "community-b-checked", "SUCCESS", [comp["meta"]["id"]], source={"domainId": "opnfv"}
            ),
            keys["opnfv"],
            "CN=opnfv",
        )
        before = odl.graph.stats()["events"]
        status, answer = post(odl, *as_peer(opnfv, [forged, unsigned, fine]))
        assert status == 200 and answer["accepted"] == [fine["meta"]["id"]]
        wait_for(lambda: odl.graph.exists(fine["meta"]["id"]), 20, "the good one at ODL")
        letters = wait_for(lambda: (lambda x: len(x) >= 2 and x)(odl.deadletters()), 20)
        reasons = sorted(x["reason"] for x in letters)
        assert reasons == sorted(
            [
                f"federation-signature: from peer opnfv: event {forged['meta']['id']}: bad RS256 "
                "signature: the event was changed after it was signed, or signed with a key "
                "that is not the key configured for peer opnfv",
                f"federation-signature: from peer opnfv: event {unsigned['meta']['id']} is not "
                "signed (no meta.security.integrityProtection)",
            ]
        )
        assert not odl.graph.exists(forged["meta"]["id"])
        assert not odl.graph.exists(unsigned["meta"]["id"])
        assert odl.graph.stats()["events"] == before + 1
        assert opnfv.deadletters() == []
