"""Local users and the audit log, in Redis under ``<prefix>web:``.

::

    web:users        hash name -> {"name", "role", "hash", "created"} (JSON)
    web:sess:<sid>   a live session (``webui.sessions``)
    web:refusals     hash "<status>" -> refused anonymous requests (a counter,
                     read by /metrics; not in the audit log)
    web:audit        list of {"at", "user", "role", "action", "target", "ok",
                     "detail", "remote"} (JSON), newest first, capped

Passwords are hashed with ``werkzeug.security.generate_password_hash``
(scrypt, salted); only the hash is stored. Roles: ``user`` (launch, act on
their own runs) and ``admin`` (everything, participant control, the audit
log). The anonymous visitor is not a user (``webui.access``).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import redis
from werkzeug.security import check_password_hash, generate_password_hash

__all__ = ["ROLES", "AuditLog", "RefusalCounter", "User", "UserError", "Users"]

ROLES = ("user", "admin")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class UserError(ValueError):
    """A user operation was refused (the message says why)."""


@dataclass(frozen=True, slots=True)
class User:
    """Who is asking: a local user, a proxy-authenticated one, or anonymous."""

    name: str
    role: str  # "anonymous", "user", "admin"
    via: str = "local"  # "local", "proxy", "anonymous"

    @property
    def anonymous(self) -> bool:
        return self.role == "anonymous"

    @property
    def admin(self) -> bool:
        return self.role == "admin"


ANONYMOUS = User("anonymous", "anonymous", "anonymous")


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Users:
    """The local user store."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.key = f"{prefix}web:users"
        from webui.sessions import SessionStore

        self.sessions = SessionStore(client, prefix)

    def add(self, name: str, password: str, role: str = "user") -> None:
        if not _NAME.match(name):
            raise UserError(f"user name {name!r}: 1-64 letters, digits, _ . @ -")
        if role not in ROLES:
            raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise UserError("a password needs at least 8 characters")
        record = {
            "name": name,
            "role": role,
            "hash": generate_password_hash(password),
            "created": time.time(),
        }
        if not self.client.hsetnx(self.key, name, json.dumps(record)):
            raise UserError(f"user {name!r} exists (use passwd)")

    def get(self, name: str) -> dict[str, Any] | None:
        raw = self.client.hget(self.key, name)
        return None if raw is None else json.loads(raw)

    def passwd(self, name: str, password: str, role: str | None = None) -> None:
        record = self.get(name)
        if record is None:
            raise UserError(f"no user {name!r}")
        if len(password) < 8:
            raise UserError("a password needs at least 8 characters")
        record["hash"] = generate_password_hash(password)
        if role is not None:
            if role not in ROLES:
                raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")
            record["role"] = role
        self.client.hset(self.key, name, json.dumps(record))
        # a new password ends every session made with the old one
        self.sessions.end_all(name)

    def remove(self, name: str) -> bool:
        removed = self.client.hdel(self.key, name) == 1
        self.sessions.end_all(name)
        return removed

    def list(self) -> list[dict[str, Any]]:
        out = [json.loads(v) for v in self.client.hgetall(self.key).values()]
        for record in out:
            record.pop("hash", None)
        return sorted(out, key=lambda r: r["name"])

    def authenticate(self, name: str, password: str) -> User | None:
        record = self.get(name)
        if record is None:
            # the same work as a real check, so timing does not tell names apart
            check_password_hash(_DUMMY, password)
            return None
        if not check_password_hash(record["hash"], password):
            return None
        return User(record["name"], record["role"], "local")

    def role_of(self, name: str) -> str | None:
        record = self.get(name)
        return None if record is None else record["role"]


_DUMMY = generate_password_hash("not a password, never matches")


class RefusalCounter:
    """Refused anonymous requests, counted per HTTP status (``/metrics``:
    ``boss_web_anonymous_refusals_total{status}``). Anonymous refusals are
    not written to the audit log one by one: anyone could flush it so."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.key = f"{prefix}web:refusals"

    def count(self, status: int | str) -> None:
        self.client.hincrby(self.key, str(status), 1)

    def totals(self) -> dict[str, int]:
        return {_s(k): int(v) for k, v in self.client.hgetall(self.key).items()}


class AuditLog:
    """Every action (allowed or refused) with who and when."""

    def __init__(self, client: redis.Redis, prefix: str, keep: int = 100_000) -> None:
        self.client = client
        self.key = f"{prefix}web:audit"
        self.keep = keep

    def record(
        self,
        user: User,
        action: str,
        target: str = "",
        *,
        ok: bool = True,
        detail: str = "",
        remote: str = "",
    ) -> None:
        entry = {
            "at": time.time(),
            "user": user.name,
            "role": user.role,
            "action": action,
            "target": target,
            "ok": ok,
            "detail": detail,
            "remote": remote,
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(self.key, json.dumps(entry))
        pipe.ltrim(self.key, 0, self.keep - 1)
        pipe.execute()

    def entries(self, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.client.lrange(self.key, offset, offset + limit - 1)]

    def count(self) -> int:
        return int(self.client.llen(self.key))
