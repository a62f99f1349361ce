"""Store connections: a store URL (and TLS files) to a redis-py client.

=============================================================  ==========================
URL                                                            client
=============================================================  ==========================
``redis://``, ``unix://``, ``valkey://``, ``valkey+unix://``    one server
``rediss://``, ``valkeys://``                                  one server over TLS
``redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]  the primary of SERVICE as
/SERVICE[/DB]`` (``valkey+sentinel://``)                       the Sentinels name it
``rediss+sentinel://...`` (``valkeys+sentinel://``)            the same, over TLS (to the
                                                               Sentinels and the servers)
=============================================================  ==========================

TLS files: the query parameters redis-py itself reads (``ssl_ca_certs``,
``ssl_certfile``, ``ssl_keyfile``; so every redis-py client built from the
URL has them), or the ``ca``/``cert``/``key`` arguments (``[boss]``
``redis_ca``, ``redis_cert``, ``redis_key``, which ``Config`` folds into the
URL as those parameters). The server's certificate is verified, hostname
included.

Sentinel URLs also take ``sentinel_password`` (the Sentinels' own password,
if they have one), ``socket_timeout`` and ``wait_replicas`` (the
``RedisStore`` option: replicas that must acknowledge each run save, 1 by
default on Sentinel) and ``wait_timeout`` (milliseconds; any URL takes these
two). The client retries a command that met a lost
connection, a timeout or a primary turned replica (``ReadOnlyError``) with
backoff for about ``FAILOVER_SECONDS``, asking the Sentinels for the primary
again each time: a failover is waited out, not raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.connection import SSLConnection
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

__all__ = [
    "FAILOVER_SECONDS",
    "SentinelURL",
    "client_for",
    "failover_retry",
    "is_sentinel",
    "parse_sentinel_url",
    "probe_sentinels",
    "sanitize",
    "with_tls_files",
]

#: about how long a command waits out a failover before it raises
FAILOVER_SECONDS = 20.0

_SENTINEL_SCHEMES = {
    "redis+sentinel": False,
    "valkey+sentinel": False,
    "rediss+sentinel": True,
    "valkeys+sentinel": True,
}
_TLS_SCHEMES = ("rediss", "valkeys", "rediss+sentinel", "valkeys+sentinel")
#: the URL's options for ``RedisStore``, not for redis-py
_OURS = ("wait_replicas", "wait_timeout")
#: our names of the TLS files -> redis-py's
_TLS_KEYS = {"ca": "ssl_ca_certs", "cert": "ssl_certfile", "key": "ssl_keyfile"}


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def is_sentinel(url: str | None) -> bool:
    """Whether ``url`` names a Sentinel-managed primary."""
    return bool(url) and _scheme(url or "") in _SENTINEL_SCHEMES


def sanitize(url: str) -> str:
    """``url`` with its password (and the sentinel password) masked."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        creds, _, hosts = netloc.rpartition("@")
        user, sep, _pw = creds.partition(":")
        netloc = f"{user}:**@{hosts}" if sep else f"**@{hosts}"
    query = [(k, "**" if k == "sentinel_password" else v) for k, v in parse_qsl(parts.query)]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/"), ""))


def with_tls_files(url: str, ca: str = "", cert: str = "", key: str = "") -> str:
    """``url`` with the TLS files as redis-py's query parameters (a TLS URL
    only, and only those not already given in it)."""
    if _scheme(url) not in _TLS_SCHEMES or not (ca or cert or key):
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    have = {k for k, _ in query}
    for name, value in (("ca", ca), ("cert", cert), ("key", key)):
        if value and _TLS_KEYS[name] not in have:
            query.append((_TLS_KEYS[name], value))
    return urlunsplit(parts._replace(query=urlencode(query, safe="/")))


def failover_retry(seconds: float = FAILOVER_SECONDS) -> Retry:
    """A redis-py ``Retry``: exponential backoff with jitter (50 ms up to
    1 s) for about ``seconds``, on lost connections and timeouts."""
    retries = max(1, int(seconds / 0.75))
    return Retry(
        ExponentialWithJitterBackoff(base=0.05, cap=1.0),
        retries,
        supported_errors=(redis.ConnectionError, redis.TimeoutError, OSError),
    )


class _FailoverConnection(SentinelManagedConnection):
    """A connection to the primary that asks the Sentinels where it is at
    every (re)connect. redis-py's own asks only in ``connect()``, which a
    pipeline (and a command sent again after a lost connection) bypasses:
    they reconnect by ``connect_check_health``, which retried the old
    primary's address until it gave up."""

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._sock:
            return
        if self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        # one attempt: the command's own Retry tries again, asking again
        super().connect_check_health(check_health=check_health, retry_socket_connect=False)


class _FailoverSSLConnection(_FailoverConnection, SSLConnection):
    pass


@dataclass(frozen=True, slots=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    options: dict[str, str] = field(default_factory=dict)


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse ``redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,...]/SERVICE[/DB][?...]``;
    ValueError names what is wrong."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SENTINEL_SCHEMES:
        raise ValueError(f"not a Sentinel URL: {sanitize(url)}")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        creds, _, netloc = netloc.rpartition("@")
        user, sep, pw = creds.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if sep else None
    sentinels = []
    for item in netloc.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep:
            host, port = item.strip(), "26379"
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ValueError(f"bad Sentinel address {item!r} in {sanitize(url)}")
        sentinels.append((host, int(port)))
    segments = [s for s in path.split("/") if s]
    if not segments or len(segments) > 2:
        raise ValueError(f"a Sentinel URL names the service: .../SERVICE[/DB], not {sanitize(url)}")
    db = segments[1] if len(segments) == 2 else "0"
    if not db.isdigit():
        raise ValueError(f"bad database number {db!r} in {sanitize(url)}")
    return SentinelURL(
        sentinels=sentinels,
        service=unquote(segments[0]),
        db=int(db),
        username=username,
        password=password,
        tls=_SENTINEL_SCHEMES[scheme.lower()],
        options=dict(parse_qsl(query)),
    )


def _tls_kwargs(options: dict[str, str], ca: str, cert: str, key: str) -> dict[str, Any]:
    out: dict[str, Any] = {"ssl": True, "ssl_cert_reqs": "required", "ssl_check_hostname": True}
    for name, value in (("ca", ca), ("cert", cert), ("key", key)):
        value = value or options.get(_TLS_KEYS[name], "")
        if value:
            out[_TLS_KEYS[name]] = value
    return out


#: seconds a store command may wait for its answer, and a connection for
#: the server, unless the URL says (``?socket_timeout=``)
DEFAULT_SOCKET_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5.0


def client_for(
    url: str, *, ca: str = "", cert: str = "", key: str = "", **options: Any
) -> tuple[redis.Redis, dict[str, str]]:
    """A redis-py client for a store URL (see the module docstring), and
    the URL's own options redis-py does not read (``wait_replicas``,
    ``wait_timeout``).
    ``options`` go to the connections (``socket_timeout``...)."""
    from engine.store.redis_store import normalise_url

    if not is_sentinel(url):
        url = with_tls_files(normalise_url(url), ca, cert, key)
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        ours = {k: v for k, v in query if k in _OURS}
        if ours:
            query = [(k, v) for k, v in query if k not in _OURS]
            url = urlunsplit(parts._replace(query=urlencode(query, safe="/")))
        if _scheme(url) == "rediss":
            options.setdefault("ssl_check_hostname", True)
        # a store that stops answering (its host cut off) is an error in
        # seconds, not a wait until TCP gives up (about 15 minutes); longer
        # than the longest blocking read (the web UI's XREAD, 5 s). The
        # URL's own socket_timeout=... wins.
        options.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
        options.setdefault("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        return redis.Redis.from_url(url, **options), ours
    parsed = parse_sentinel_url(url)
    opts = dict(parsed.options)
    ours = {k: opts.pop(k) for k in _OURS if k in opts}
    conn: dict[str, Any] = {
        "socket_timeout": float(opts.get("socket_timeout", 5.0)),
        "socket_connect_timeout": float(opts.get("socket_connect_timeout", 2.0)),
    }
    conn.update(options)
    tls = _tls_kwargs(opts, ca, cert, key) if parsed.tls else {}
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": conn["socket_timeout"],
        "socket_connect_timeout": conn["socket_connect_timeout"],
        **tls,
    }
    # one try per ask: the command's Retry asks again (nested retries
    # would multiply into minutes when nothing answers)
    sentinel_kwargs["retry"] = Retry(NoBackoff(), 0)
    if opts.get("sentinel_password"):
        sentinel_kwargs["password"] = opts["sentinel_password"]
    manager = Sentinel(parsed.sentinels, sentinel_kwargs=sentinel_kwargs)
    kwargs: dict[str, Any] = {
        "connection_class": _FailoverSSLConnection if parsed.tls else _FailoverConnection,
        "db": parsed.db,
        "username": parsed.username,
        "password": parsed.password,
        "retry": failover_retry(),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError],
        **tls,
        **conn,
    }
    client = manager.master_for(parsed.service, **kwargs)
    return client, ours


def probe_sentinels(url: str, *, timeout: float = 2.0) -> list[str]:
    """Ask each Sentinel of ``url`` for its primary, once: a line per
    Sentinel saying what it answered or why it did not (for ``boss doctor``:
    redis-py's "No master found" keeps the causes to itself)."""
    parsed = parse_sentinel_url(url)
    opts = parsed.options
    kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if parsed.tls:
        kwargs.update(_tls_kwargs(opts, "", "", ""))
    if opts.get("sentinel_password"):
        kwargs["password"] = opts["sentinel_password"]
    out = []
    for host, port in parsed.sentinels:
        client = redis.Redis(host=host, port=port, **kwargs)
        try:
            addr = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", parsed.service)
            if addr is None:
                found = "no such service"
            else:
                found = "primary at " + ":".join(_text(a) for a in addr)
            out.append(f"Sentinel {host}:{port}: {found}")
        except (redis.RedisError, OSError) as exc:
            out.append(f"Sentinel {host}:{port}: {exc}")
        finally:
            client.close()
    return out


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
