"""A store (Redis/Valkey ACL) user per participant that needs the store
(``docs/security.md``, *Store users*).

A participant declares the store keys it uses in its ``[participant]``
section: ``store = obsticket`` (``skynet install --store obsticket``), the
roles of ``engine.store.acl.PARTICIPANT_KEYS``. What ``skynet install``
writes as its ``[boss] redis_url``:

* it declares none: the host's ``redis_url`` without user or password (it
  never needs them; the broker is ``broker_url``);
* it declares some and the host has ``[boss] redis_admin_url``: a user of
  its own, ``boss-skynet-<host>-<participant>``, with a random password and
  only those keys and commands, made with that URL (and removed by
  ``skynet uninstall``);
* it declares some and there is no admin URL: the host's ``redis_url`` as
  it is (its password too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from engine.config import Config
from engine.store import acl
from skynet.errors import Invalid, SkynetError

__all__ = [
    "PREFIX",
    "StoreUser",
    "StoreUserError",
    "create_participant_user",
    "declared_roles",
    "remove_participant_user",
    "user_name",
    "user_of_url",
]

#: the start of a participant's store user's name
PREFIX = "boss-skynet-"


class StoreUserError(SkynetError):
    """The store refused to create or remove a user (or cannot be reached)."""


@dataclass(frozen=True, slots=True)
class StoreUser:
    user: str
    password: str
    #: ``redis_url`` with this user's credentials
    url: str


def user_name(host: str, participant: str) -> str:
    """``boss-skynet-<host>-<participant>``: one per participant per SkyNET
    host (two hosts installing the same name must not share a password)."""
    return f"{PREFIX}{host}-{participant}"


def user_of_url(url: str) -> str | None:
    parts = urlsplit(url)
    return unquote(parts.username) if parts.username else None


def declared_roles(options: dict[str, str]) -> list[str]:
    """The store roles ``[participant] store`` declares (``Invalid`` for
    an unknown one)."""
    try:
        return acl.store_roles(options.get("store", ""))
    except ValueError as exc:
        raise Invalid(f"[participant] store: {exc}") from None


def _admin(config: Config) -> Any:
    from engine.store.connection import client_for

    return client_for(config.redis_admin_url)[0]


def create_participant_user(
    config: Config, user: str, roles: list[str], password: str | None = None
) -> StoreUser:
    """Make (or make again) ``user`` with the rules of ``roles`` under
    ``config.key_prefix``, with ``config.redis_admin_url``."""
    import redis

    role = acl.participant_role(config.key_prefix, user, roles)
    password = password or acl.new_password()
    client = _admin(config)
    try:
        acl.apply_role(client, role, password)
    except (redis.RedisError, OSError) as exc:
        raise StoreUserError(f"cannot make store user {user}: {exc}") from None
    finally:
        client.close()
    base = config.redis_url or config.redis_admin_url
    return StoreUser(user, password, acl.url_with_user(base, user, password))


def remove_participant_user(config: Config, user: str) -> bool:
    """Delete ``user`` (False when there was none)."""
    import redis

    client = _admin(config)
    try:
        return acl.remove_user(client, user)
    except (redis.RedisError, OSError) as exc:
        raise StoreUserError(f"cannot remove store user {user}: {exc}") from None
    finally:
        client.close()
