"""Eiffel's per-event integrity protection: ``meta.security``.

The protocol (``EiffelMetaProperty`` 3.0.0 and later,
``meta.security.integrityProtection``) signs an event so that any later
reader can check it, wherever it travelled::

    "security": {
      "authorIdentity": "CN=odl",
      "integrityProtection": {"alg": "ES256", "signature": "<base64>", "publicKey": "<base64 DER>"}
    }

To sign: set ``authorIdentity``, ``alg`` (and ``publicKey``), set
``signature`` to ``""``, serialize the whole event in canonical JSON, sign
those bytes with ``alg``, put the base64 of the signature in
``signature``. To verify: the same with the received ``signature`` set
back to ``""``. ``sequenceProtection`` and anything else in the event are
covered by the signature and left as they are.

It follows the Eiffel community's implementation
(eiffel-community/eiffelevents-sdk-go, ``signature/signer.go`` and
``signature/verifier.go``; the Python ``eiffellib`` has no signing, up to
its 3.0.0), so that events signed there verify here and the other way
round (not tested against it: no Go toolchain on the test machines):

* canonical JSON is RFC 8785 (JSON Canonicalization Scheme, the Go SDK's
  ``gowebpki/jcs``): :func:`canonical`;
* ``alg`` is a JWA name (RFC 7518): ``RS256/384/512`` (RSASSA-PKCS1-v1_5),
  ``PS256/384/512`` (RSASSA-PSS, MGF1 with the same hash; signed with a
  salt as long as the hash, as JWA says; any salt length verifies, as Go's
  ``rsa.VerifyPSS`` with default options), ``ES256/384/512`` (ECDSA on
  P-256/P-384/P-521; the signature is ASN.1 DER as Go's
  ``ecdsa.SignASN1``; JWS's raw ``r||s`` is accepted too). The symmetric
  ``HS*`` of the protocol's list are not supported: a key both sides hold
  proves nothing to a third reader (the bridge's ``secret`` does that job
  between two sites);
* ``signature`` is standard base64 (padded); ``publicKey``, optional, is
  the base64 of the key's DER ``SubjectPublicKeyInfo`` (``EiffelMetaProperty``
  4.0.1's format).

A verifier is given the key(s) it trusts (a peer site's, from a PEM file):
an event whose ``publicKey`` is another key is refused even if its
signature is good with that key (:class:`UntrustedKey`); the
``publicKey`` is a convenience, never a reason to trust.

Failures are :class:`SignatureError`\\ s naming what failed:
:class:`NoSignature`, :class:`UnknownAlgorithm`, :class:`BadSignature`,
:class:`KeyMismatch` (the key cannot do that ``alg``),
:class:`UntrustedKey`; loading a key that is not one:
:class:`KeyFileError`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = [
    "ALGORITHMS",
    "BadSignature",
    "KeyFileError",
    "KeyMismatch",
    "NoSignature",
    "PrivateKey",
    "PublicKey",
    "SignatureError",
    "Signer",
    "UnknownAlgorithm",
    "UntrustedKey",
    "Verifier",
    "canonical",
    "default_alg",
    "is_signed",
    "load_private_key",
    "load_public_keys",
    "public_key_b64",
    "sign_event",
    "verify_event",
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class _Alg:
    family: str  # "RS", "PS" or "ES"
    hash: type[hashes.HashAlgorithm]
    curve: type[ec.EllipticCurve] | None = None


#: the ``alg`` values signed and verified here (JWA, RFC 7518 section 3.1)
ALGORITHMS: dict[str, _Alg] = {
    "RS256": _Alg("RS", hashes.SHA256),
    "RS384": _Alg("RS", hashes.SHA384),
    "RS512": _Alg("RS", hashes.SHA512),
    "PS256": _Alg("PS", hashes.SHA256),
    "PS384": _Alg("PS", hashes.SHA384),
    "PS512": _Alg("PS", hashes.SHA512),
    "ES256": _Alg("ES", hashes.SHA256, ec.SECP256R1),
    "ES384": _Alg("ES", hashes.SHA384, ec.SECP384R1),
    "ES512": _Alg("ES", hashes.SHA512, ec.SECP521R1),
}


# -- the errors ------------------------------------------------------------------------------


class SignatureError(ValueError):
    """An event's ``meta.security`` does not verify (or cannot be made)."""


class NoSignature(SignatureError):
    """The event has no ``meta.security.integrityProtection`` (or an empty ``signature``)."""


class UnknownAlgorithm(SignatureError):
    """``alg`` is not one of :data:`ALGORITHMS`."""


class BadSignature(SignatureError):
    """The signature is not the event's under the key (the event was changed, or signed
    with another key)."""


class KeyMismatch(SignatureError):
    """The key cannot do the ``alg`` (an RSA key for ``ES256``, a P-384 key for ``ES256``)."""


class UntrustedKey(SignatureError):
    """The event's ``publicKey`` is not a key the verifier trusts."""


class KeyFileError(SignatureError):
    """A key file that cannot be read, or holds no key of the kind wanted."""


# -- canonical JSON (RFC 8785) ---------------------------------------------------------------


def _number(value: int | float) -> str:
    """A number as ECMAScript's ``Number.prototype.toString`` writes it
    (RFC 8785 section 3.2.2.3)."""
    if isinstance(value, int) and abs(value) < 2**53:
        return str(value)
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{value!r} has no canonical JSON form")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # the shortest digits that read back as x (Python's repr, as ECMAScript's)
    _, digits_t, exp = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, digits_t)).rstrip("0") or "0"
    k = len(digits)
    n = exp + len(digits_t)  # x = 0.d1d2...dk * 10**n
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        out = "0." + "0" * -n + digits
    else:
        e = n - 1
        mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
        out = f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + out


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        # json's escaping with ensure_ascii off is RFC 8785's: \" \\ \b \f \n \r \t,
        # other control characters as \u00xx (lowercase), the rest as is
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int | float):
        out.append(_number(value))
    elif isinstance(value, dict):
        out.append("{")
        # property names sorted by their UTF-16 code units
        for i, key in enumerate(sorted(value, key=lambda k: str(k).encode("utf-16-be"))):
            if not isinstance(key, str):
                raise ValueError(f"a property name that is not a string: {key!r}")
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise ValueError(f"{type(value).__name__} has no JSON form")


def canonical(value: Any) -> bytes:
    """``value`` in the JSON Canonicalization Scheme (RFC 8785), UTF-8: no
    whitespace, object members sorted by the UTF-16 code units of their
    names, numbers as ECMAScript writes them, strings escaped minimally."""
    out: list[str] = []
    _write(value, out)
    return "".join(out).encode("utf-8")


# -- keys ------------------------------------------------------------------------------------


def _read(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read: {exc.strerror or exc}") from None


def load_private_key(path: str | os.PathLike[str], password: bytes | None = None) -> PrivateKey:
    """The RSA or EC private key of a PEM file (``openssl genpkey``)."""
    try:
        key = serialization.load_pem_private_key(_read(path), password=password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"{path}: not a PEM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyFileError(
            f"{path}: a {type(key).__name__.lstrip('_')}: Eiffel signs with RSA or EC keys only"
        )
    return key


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


def load_public_keys(path: str | os.PathLike[str]) -> list[PublicKey]:
    """The RSA or EC public keys of a PEM file (``openssl pkey -pubout``):
    one, or several (the old and the new key while a peer changes keys).
    A private key's file is refused: only the public half is shared."""
    data = _read(path)
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(data)]
    if not blocks:
        raise KeyFileError(f"{path}: no PEM block (-----BEGIN PUBLIC KEY-----)")
    keys: list[PublicKey] = []
    for block in blocks:
        if b"PRIVATE KEY" in block.split(b"\n", 1)[0]:
            raise KeyFileError(f"{path}: holds a private key; give the public key's PEM file")
        try:
            key = serialization.load_pem_public_key(block)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyFileError(f"{path}: not a PEM public key: {exc}") from None
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise KeyFileError(
                f"{path}: a {type(key).__name__.lstrip('_')}: Eiffel signs with RSA or EC keys only"
            )
        keys.append(key)
    return keys


def _der(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_b64(key: PublicKey | PrivateKey) -> str:
    """The ``publicKey`` of ``key``: base64 of its DER ``SubjectPublicKeyInfo``."""
    public = (
        key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    )
    return base64.b64encode(_der(public)).decode("ascii")


def default_alg(key: PublicKey | PrivateKey) -> str:
    """The ``alg`` a key signs with by default: ``RS256`` for RSA, ``ES256``,
    ``ES384`` or ``ES512`` by the curve for EC."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RS256"
    by_curve = {a.curve.name: name for name, a in ALGORITHMS.items() if a.curve is not None}
    alg = by_curve.get(key.curve.name)
    if alg is None:
        raise KeyMismatch(
            f"an EC key on curve {key.curve.name}: Eiffel's ES algorithms use P-256, P-384 or P-521"
        )
    return alg


def _alg(name: Any) -> _Alg:
    found = ALGORITHMS.get(name) if isinstance(name, str) else None
    if found is None:
        why = (
            "symmetric (HMAC) signatures are not supported"
            if isinstance(name, str) and name.startswith("HS")
            else "not a signing algorithm"
        )
        raise UnknownAlgorithm(f"alg {name!r}: {why}; supported: {', '.join(ALGORITHMS)}")
    return found


def _check_key(alg_name: str, alg: _Alg, key: PublicKey | PrivateKey) -> None:
    if alg.family in ("RS", "PS"):
        if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            raise KeyMismatch(f"alg {alg_name} needs an RSA key, not an EC key")
        return
    if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        raise KeyMismatch(f"alg {alg_name} needs an EC key, not an RSA key")
    assert alg.curve is not None
    if key.curve.name != alg.curve.name:
        raise KeyMismatch(
            f"alg {alg_name} needs an EC key on {alg.curve.name}, not on {key.curve.name}"
        )


# -- signing ---------------------------------------------------------------------------------


def _protection(event: Any) -> dict[str, Any] | None:
    meta = event.get("meta") if isinstance(event, dict) else None
    security = meta.get("security") if isinstance(meta, dict) else None
    ip = security.get("integrityProtection") if isinstance(security, dict) else None
    return ip if isinstance(ip, dict) else None


def is_signed(event: Any) -> bool:
    """Whether ``event`` carries a (non-empty) ``meta.security.integrityProtection.signature``."""
    ip = _protection(event)
    return bool(ip and ip.get("signature"))


def _event_id(event: Any) -> str:
    meta = event.get("meta") if isinstance(event, dict) else None
    return str(meta.get("id")) if isinstance(meta, dict) else "?"


class Signer:
    """Signs events with one private key as one author. ``alg`` defaults to
    :func:`default_alg`; ``with_public_key`` puts the key's ``publicKey`` in
    each event (it is signed with the rest)."""

    def __init__(
        self,
        key: PrivateKey,
        identity: str,
        alg: str | None = None,
        *,
        with_public_key: bool = True,
    ) -> None:
        self.key = key
        self.identity = identity
        self.alg = alg or default_alg(key)
        self._alg = _alg(self.alg)
        _check_key(self.alg, self._alg, key)
        self.public_key = public_key_b64(key) if with_public_key else None

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], identity: str, alg: str | None = None, **kw: Any
    ) -> Signer:
        return cls(load_private_key(path), identity, alg, **kw)

    def _sign(self, data: bytes) -> bytes:
        a = self._alg
        if a.family == "ES":
            assert isinstance(self.key, ec.EllipticCurvePrivateKey)
            return self.key.sign(data, ec.ECDSA(a.hash()))  # ASN.1 DER, as Go's SignASN1
        assert isinstance(self.key, rsa.RSAPrivateKey)
        if a.family == "PS":
            pss = padding.PSS(mgf=padding.MGF1(a.hash()), salt_length=padding.PSS.DIGEST_LENGTH)
            return self.key.sign(data, pss, a.hash())
        return self.key.sign(data, padding.PKCS1v15(), a.hash())

    def sign(self, event: dict[str, Any]) -> dict[str, Any]:
        """A signed copy of ``event`` (``event`` is not changed). A signature
        it had is replaced; its ``sequenceProtection`` is kept (and signed)."""
        if not isinstance(event, dict) or not isinstance(event.get("meta"), dict):
            raise SignatureError("not an Eiffel event (no meta): nothing to sign")
        signed = copy.deepcopy(event)
        security = signed["meta"].get("security")
        security = dict(security) if isinstance(security, dict) else {}
        protection: dict[str, Any] = {"alg": self.alg, "signature": ""}
        if self.public_key is not None:
            protection["publicKey"] = self.public_key
        security["authorIdentity"] = self.identity
        security["integrityProtection"] = protection
        signed["meta"]["security"] = security
        try:
            data = canonical(signed)
        except ValueError as exc:
            raise SignatureError(f"event {_event_id(event)}: cannot be signed: {exc}") from None
        protection["signature"] = base64.b64encode(self._sign(data)).decode("ascii")
        return signed


def sign_event(
    event: dict[str, Any],
    key: PrivateKey,
    identity: str,
    alg: str | None = None,
    *,
    with_public_key: bool = True,
) -> dict[str, Any]:
    """``Signer(key, identity, alg).sign(event)``."""
    return Signer(key, identity, alg, with_public_key=with_public_key).sign(event)


# -- verifying -------------------------------------------------------------------------------


def _b64decode(text: str) -> bytes:
    """Standard base64 (the protocol's), tolerating the URL-safe alphabet and missing padding."""
    text = text.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    return base64.b64decode(text, validate=True)


def _ecdsa_der(sig: bytes, key: ec.EllipticCurvePublicKey) -> bytes:
    """``sig`` as ASN.1 DER: as it is if it is DER, else read as JWS's ``r||s``."""
    size = (key.curve.key_size + 7) // 8
    try:
        decode_dss_signature(sig)
        return sig
    except ValueError:
        pass
    if len(sig) != 2 * size:
        return sig  # neither: fails verification
    return encode_dss_signature(
        int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big")
    )


def _verify_one(alg: _Alg, key: PublicKey, sig: bytes, data: bytes) -> bool:
    try:
        if alg.family == "ES":
            assert isinstance(key, ec.EllipticCurvePublicKey)
            key.verify(_ecdsa_der(sig, key), data, ec.ECDSA(alg.hash()))
        elif alg.family == "PS":
            assert isinstance(key, rsa.RSAPublicKey)
            pss = padding.PSS(mgf=padding.MGF1(alg.hash()), salt_length=padding.PSS.AUTO)
            key.verify(sig, data, pss, alg.hash())
        else:
            assert isinstance(key, rsa.RSAPublicKey)
            key.verify(sig, data, padding.PKCS1v15(), alg.hash())
    except InvalidSignature:
        return False
    return True


class Verifier:
    """Verifies events against the public key(s) it trusts (a peer's)."""

    def __init__(self, keys: PublicKey | Sequence[PublicKey], *, name: str = "") -> None:
        self.keys: list[PublicKey] = list(keys) if isinstance(keys, Sequence) else [keys]
        if not self.keys:
            raise KeyFileError(f"{name or 'a verifier'}: no public key")
        self.name = name
        self._der = {_der(k) for k in self.keys}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, name: str = "") -> Verifier:
        return cls(load_public_keys(path), name=name or str(path))

    def _whose(self) -> str:
        return f"the key configured for {self.name}" if self.name else "the trusted key"

    def verify(self, event: Any) -> str:
        """Check ``event``'s signature; its ``alg`` if good, else a
        :class:`SignatureError` naming what failed."""
        eid = _event_id(event)
        ip = _protection(event)
        if ip is None:
            raise NoSignature(f"event {eid} is not signed (no meta.security.integrityProtection)")
        sig_text = ip.get("signature")
        if not isinstance(sig_text, str) or not sig_text:
            raise NoSignature(
                f"event {eid} has an empty meta.security.integrityProtection.signature"
            )
        alg_name = ip.get("alg")
        alg = _alg(alg_name)
        try:
            sig = _b64decode(sig_text)
        except (binascii.Error, ValueError):
            raise BadSignature(f"event {eid}: the signature is not base64") from None
        keys: Iterable[PublicKey] = self.keys
        given = ip.get("publicKey")
        if given is not None:
            try:
                der = _b64decode(str(given))
            except (binascii.Error, ValueError):
                raise UntrustedKey(
                    f"event {eid}: its publicKey is not base64 (of a DER public key)"
                ) from None
            if der not in self._der:
                raise UntrustedKey(
                    f"event {eid} was signed with a publicKey that is not {self._whose()}"
                )
            keys = [k for k in self.keys if _der(k) == der]
        fitting = []
        mismatch: KeyMismatch | None = None
        for key in keys:
            try:
                _check_key(str(alg_name), alg, key)
                fitting.append(key)
            except KeyMismatch as exc:
                mismatch = exc
        if not fitting:
            assert mismatch is not None
            raise KeyMismatch(f"event {eid}: {mismatch} ({self._whose()})")
        unsigned = copy.deepcopy(event)
        unsigned["meta"]["security"]["integrityProtection"]["signature"] = ""
        try:
            data = canonical(unsigned)
        except ValueError as exc:
            raise BadSignature(f"event {eid}: no canonical form: {exc}") from None
        if not any(_verify_one(alg, k, sig, data) for k in fitting):
            raise BadSignature(
                f"event {eid}: bad {alg_name} signature: the event was changed after it was "
                f"signed, or signed with a key that is not {self._whose()}"
            )
        return str(alg_name)


def verify_event(event: Any, keys: PublicKey | Sequence[PublicKey]) -> str:
    """``Verifier(keys).verify(event)``."""
    return Verifier(keys).verify(event)
