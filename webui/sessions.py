"""Server-side session state: a logged-in session is a random id in Redis.

The signed cookie (Flask's session) says *which* session this is; Redis
says whether it is still alive, and for whom::

    web:sess:<sid>       the user's name; expires after ``[web] session_lifetime``
                         without a request (every request sets the expiry again:
                         ``GETEX``, one round trip)
    web:usess:<name>     set of that user's session ids (the expired ones are
                         pruned at each log-in; no expiry of its own, so a
                         session kept alive by activity is always in it)

Logging out deletes the session's key; changing a user's password (``boss
web user passwd``) or removing the user deletes every session of theirs. A
copied cookie whose session is gone is worth nothing: the request is
anonymous. Logging in makes a new id (no fixation).
"""

from __future__ import annotations

import secrets

import redis

__all__ = ["SessionStore"]


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SessionStore:
    """Live sessions of local users (see the module docstring)."""

    def __init__(self, client: redis.Redis, prefix: str, lifetime: float = 43200.0) -> None:
        self.client = client
        self.prefix = f"{prefix}web:"
        self.lifetime = max(1, int(lifetime))

    def _key(self, sid: str) -> str:
        return f"{self.prefix}sess:{sid}"

    def _user_key(self, name: str) -> str:
        return f"{self.prefix}usess:{name}"

    def create(self, name: str) -> str:
        """A new session id for ``name``."""
        sid = secrets.token_urlsafe(32)
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self._key(sid), name, ex=self.lifetime)
        pipe.sadd(self._user_key(name), sid)
        pipe.execute()
        self._prune(name)
        return sid

    def user(self, sid: str) -> str | None:
        """The user of a live session (its expiry starts again), else None."""
        if not sid:
            return None
        raw = self.client.getex(self._key(sid), ex=self.lifetime)
        return None if raw is None else _s(raw)

    def end(self, sid: str) -> None:
        """End one session (log out)."""
        if not sid:
            return
        name = self.client.get(self._key(sid))
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self._key(sid))
        if name is not None:
            pipe.srem(self._user_key(_s(name)), sid)
        pipe.execute()

    def end_all(self, name: str) -> int:
        """End every session of ``name`` (password changed, user removed)."""
        sids = [_s(s) for s in self.client.smembers(self._user_key(name))]
        pipe = self.client.pipeline(transaction=True)
        for sid in sids:
            pipe.delete(self._key(sid))
        pipe.delete(self._user_key(name))
        results = pipe.execute()
        return sum(int(r) for r in results[:-1])

    def sessions(self, name: str) -> list[str]:
        """The live session ids of ``name``."""
        self._prune(name)
        return sorted(_s(s) for s in self.client.smembers(self._user_key(name)))

    def _prune(self, name: str) -> None:
        """Forget the ids of ``name``'s sessions that have expired."""
        sids = [_s(s) for s in self.client.smembers(self._user_key(name))]
        if not sids:
            return
        pipe = self.client.pipeline(transaction=False)
        for sid in sids:
            pipe.exists(self._key(sid))
        dead = [sid for sid, alive in zip(sids, pipe.execute(), strict=True) if not alive]
        if dead:
            self.client.srem(self._user_key(name), *dead)
