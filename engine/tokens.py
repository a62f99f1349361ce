"""Per-dispatch tokens: a participant's reply is applied only if it carries
the token the engine gave its workitem (``docs/security.md``, *Participants
that cannot impersonate each other*).

When the engine dispatches a workitem (``engine.broker.Publisher.dispatch``)
it adds ``dispatch_token``: an HMAC-SHA256, under a secret only engine
workers hold (``dispatch_key_file`` or ``dispatch_key``), over the step's
``fei`` (``wfid``, ``expid``, ``subid``) and the participant the step waits
on. A participant echoes the workitem back with its reply, token and all
(the participant runtime and python-ruote-amqp participants send back the
workitem they were given). The engine service (``engine.service``) checks it
before the reply reaches a run: a reply without a token, with a token of
another step or another participant, or with a token that is not the
engine's, is dead-lettered with the reason and changes no run.

No key configured: no token is minted and none is asked for (as before).
Participants allowed by name (``untokened_participants``, glob patterns)
may reply without one (legacy participants that rebuild the workitem).

This module does no I/O but reading the key file; it is an adapter-side
module (the sans-IO core holds no secrets).
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from engine.settings import ConfigError

__all__ = [
    "TOKEN_KEY",
    "Tokens",
    "mint",
    "read_key",
    "stamp",
    "verify",
]

#: where the token travels: a top-level key of the workitem (beside
#: ``fei`` and ``participant_name``), which participants send back unchanged
TOKEN_KEY = "dispatch_token"
#: the version prefix of a token (a later scheme gets another)
VERSION = "v1"
#: the shortest secret accepted (bytes)
MIN_KEY_BYTES = 16


class _TokenConfig(Protocol):
    dispatch_key: str
    dispatch_key_file: str
    untokened_participants: tuple[str, ...]


def _message(fei: Mapping[str, Any], participant: str) -> bytes:
    """What a token signs: unambiguous (a JSON array) and independent of
    the fei's other keys (``engine_id``, ruote 2.1's ``sub_wfid``...)."""
    parts = [VERSION, fei.get("wfid"), fei.get("expid"), fei.get("subid"), participant]
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=True).encode()


def mint(key: bytes, fei: Mapping[str, Any], participant: str) -> str:
    """The token of the step ``fei`` dispatched to ``participant``."""
    digest = hmac.new(key, _message(fei, participant), hashlib.sha256).digest()
    return f"{VERSION}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def verify(key: bytes, fei: Mapping[str, Any], participant: str, token: object) -> bool:
    """Whether ``token`` is the one minted for ``fei`` and ``participant``
    (compared in constant time)."""
    if not isinstance(token, str):
        return False
    return hmac.compare_digest(token.encode(), mint(key, fei, participant).encode())


def stamp(key: bytes | None, workitem: dict[str, Any], participant: str) -> dict[str, Any]:
    """``workitem`` with the token of its ``fei`` for ``participant`` (a
    copy; the same dict when ``key`` is None: tokens are off)."""
    if key is None:
        return workitem
    return {**workitem, TOKEN_KEY: mint(key, workitem.get("fei") or {}, participant)}


def read_key(*, key: str = "", key_file: str = "") -> bytes | None:
    """The dispatch secret: the contents of ``key_file`` (surrounding
    whitespace stripped), else ``key``; None when neither is set (tokens
    are off). ``ConfigError`` for a file that cannot be read or a secret
    shorter than ``MIN_KEY_BYTES``."""
    if key_file:
        try:
            with open(key_file, "rb") as fh:
                secret = fh.read().strip()
        except OSError as exc:
            raise ConfigError(
                f"dispatch_key_file = {key_file}: {exc.strerror or exc}", "dispatch_key_file"
            ) from None
        name = "dispatch_key_file"
    elif key:
        secret, name = key.strip().encode(), "dispatch_key"
    else:
        return None
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigError(
            f"{name}: the secret is {len(secret)} bytes, at least {MIN_KEY_BYTES} are needed "
            "(make one with: openssl rand -hex 32)",
            name,
        )
    return secret


@functools.lru_cache(maxsize=8)
def _cached_key(key: str, key_file: str) -> bytes | None:
    return read_key(key=key, key_file=key_file)


@dataclass(frozen=True)
class Tokens:
    """The engine's side of dispatch tokens: mint for dispatches, check
    replies. ``key`` None: tokens are off (``enabled`` false)."""

    key: bytes | None
    #: participants whose replies need no token (glob patterns)
    untokened: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: _TokenConfig) -> Tokens:
        """From ``dispatch_key_file``/``dispatch_key`` and
        ``untokened_participants`` (the key file is read once per process)."""
        key = _cached_key(config.dispatch_key, config.dispatch_key_file)
        return cls(key, tuple(config.untokened_participants))

    @property
    def enabled(self) -> bool:
        return self.key is not None

    def stamp(self, workitem: dict[str, Any], participant: str) -> dict[str, Any]:
        return stamp(self.key, workitem, participant)

    def allowed_untokened(self, participant: str) -> bool:
        return _matches(participant, self.untokened)

    def check_reply(self, workitem: Mapping[str, Any], what: str = "reply") -> str | None:
        """Why the reply ``workitem`` must not be applied (its token is
        missing or wrong), or None (it is good, tokens are off, or its
        participant may reply without one). ``what`` names the message in
        the reason (``reply``, ``started notice``)."""
        if self.key is None:
            return None
        fei = workitem.get("fei") or {}
        participant = workitem.get("participant_name")
        if not isinstance(participant, str):
            participant = ""
        token = workitem.get(TOKEN_KEY)
        if token is None and self.allowed_untokened(participant):
            return None
        where = (
            f"participant {participant or '?'}, step "
            f"{fei.get('wfid')}/{fei.get('expid')}/{fei.get('subid')}"
        )
        if token is None:
            return (
                f"{what} without a dispatch token ({where}): replies must carry the "
                f"workitem's {TOKEN_KEY} unchanged (or the participant must be listed in "
                "untokened_participants)"
            )
        if not verify(self.key, fei, participant, token):
            return (
                f"{what} with a wrong dispatch token ({where}): the token was not minted by "
                "this engine for this step and participant"
            )
        return None


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)
