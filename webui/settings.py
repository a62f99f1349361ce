"""The web UI's settings: the ``[web]`` section of the BOSS configuration
file plus ``BOSS_WEB_*`` environment variables, read by ``engine.settings``
(the one loader of ``[boss]``, ``[skynet]``, ``[launchers]``, ...).

Where a value comes from, first match wins: an explicit argument, the
environment (``BOSS_WEB_BIND``, ``BOSS_WEB_ANONYMOUS``, ... one variable per
key), the file's ``[web]`` section (the file ``boss`` reads), the defaults
below. Nothing is required: ``boss web`` runs on the embedded default.

::

    [web]
    bind = 127.0.0.1:8080
    secret_key =                 ; empty: generated once, kept in <state_dir>/web-secret
    anonymous = auto             ; anonymous visitors may look (never act); auto: only
                                 ; when bound to a loopback address
    session_lifetime = 12h       ; a session ends after this long without a request
    login_limit_user = 10 per 15 minutes     ; failed log-ins per user name, then 429
    login_limit_address = 40 per 15 minutes  ; failed log-ins per client address, then 429
    metrics_token =              ; a bearer token for /metrics (Prometheus)
    trusted_header = X-Remote-User
    trusted_proxies = 127.0.0.1 ::1
    proxy_admins = alice bob
    skynet_urls = http://build1:8765 http://build2:8765
    skynet_token = s3cret
    index_fields = *             ; launch fields indexed for filtering (names, or *)
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from engine.config import Config, ConfigError
from engine.settings import Section, positive, setting, to_bool, to_duration

__all__ = ["WebConfig", "secret_key"]


def _auto_bool(raw: str) -> bool | None:
    """``auto`` (or empty): None; else a boolean."""
    if raw.strip().lower() in ("", "auto"):
        return None
    return to_bool(raw)


def _limit(value: str) -> None:
    """A rate limit in ``limits`` notation (``10 per 15 minutes``, ``5/minute``)."""
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ValueError(f"not a rate limit ({value!r}: write e.g. '10 per 15 minutes')") from None


@dataclass(frozen=True)
class WebConfig(Section):
    """``WebConfig.load(path, environ=None, **overrides)`` (``engine.settings.Section``)."""

    SECTION: ClassVar[str] = "web"
    ENV_PREFIX: ClassVar[str] = "BOSS_WEB_"
    #: ``load(path)`` of a path that is not a file: the environment and defaults
    MISSING_OK: ClassVar[bool] = True

    #: where ``boss web`` listens: ``host:port``
    bind: str = "127.0.0.1:8080"
    #: the session cookie's signing key; empty: generated once and kept in
    #: ``<state_dir>/web-secret`` (mode 0600)
    secret_key: str = ""
    #: anonymous visitors may see every page (never act); false: log in first;
    #: ``auto`` (the default, None): only when ``bind`` is a loopback address
    anonymous: bool | None = setting(None, coerce=_auto_bool)
    #: a reverse proxy's header naming the authenticated user (empty: off)
    trusted_header: str = ""
    #: the proxies whose ``trusted_header`` is believed (addresses, space separated)
    trusted_proxies: str = "127.0.0.1 ::1"
    #: users authenticated by the proxy who are admins (local users have a role)
    proxy_admins: str = ""
    #: SkyNET REST APIs to show and control, one per host (space separated)
    skynet_urls: str = ""
    #: the bearer token for SkyNET writes (start, stop, scale)
    skynet_token: str = ""
    #: seconds before a SkyNET host that does not answer is shown as down
    skynet_timeout: float = 3.0
    #: launch fields indexed for filtering the run list: names, or ``*`` for
    #: every top-level scalar field (strings up to 200 characters)
    index_fields: str = "*"
    #: rows per page of the lists
    page_size: int = 50
    #: the run list's rows change as their transitions arrive (server-sent
    #: events); its counts and new rows are fetched again at most this often
    poll_interval: float = 2.0
    #: audit entries kept (the oldest are dropped)
    audit_max: int = 100_000
    #: the cookie is sent over HTTPS only (set behind a TLS proxy)
    secure_cookies: bool = False
    #: a logged-in session ends after this long without a request (seconds or
    #: ``12h``, ``30m``); sliding: every request starts it again
    session_lifetime: float = setting(43200.0, coerce=to_duration, check=positive("seconds"))
    #: failed log-ins allowed per user name (``limits`` notation); then 429
    login_limit_user: str = setting("10 per 15 minutes", check=_limit)
    #: failed log-ins allowed per client address; then 429
    login_limit_address: str = setting("40 per 15 minutes", check=_limit)
    #: a bearer token that reads ``/metrics`` whatever ``anonymous`` says
    #: (Prometheus: ``authorization: {credentials: ...}``); empty: none
    metrics_token: str = ""

    # -- derived -------------------------------------------------------------
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.bind.rpartition(":")
        try:
            return host.strip("[]") or "127.0.0.1", int(port)
        except ValueError:
            raise ConfigError(f"[web] bind = {self.bind!r}: not host:port", "bind") from None

    @property
    def anonymous_read(self) -> bool:
        """Whether anonymous visitors may look: ``anonymous`` when set, else
        only when ``bind`` is a loopback address."""
        if self.anonymous is not None:
            return bool(self.anonymous)
        return self.loopback

    @property
    def loopback(self) -> bool:
        """Whether ``bind`` is a loopback address (``127.0.0.0/8``, ``::1``, localhost)."""
        host = self.bind.rpartition(":")[0].strip("[]") or "127.0.0.1"
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def skynet_hosts(self) -> list[str]:
        return [u.rstrip("/") for u in self.skynet_urls.replace(",", " ").split() if u]

    @property
    def proxies(self) -> set[str]:
        return set(self.trusted_proxies.replace(",", " ").split())

    @property
    def admins_by_proxy(self) -> set[str]:
        return set(self.proxy_admins.replace(",", " ").split())

    @property
    def indexed(self) -> set[str] | None:
        """The launch fields to index; None: every scalar one."""
        names = set(self.index_fields.replace(",", " ").split())
        return None if "*" in names else names


def secret_key(web: WebConfig, config: Config) -> str:
    """``web.secret_key``, else the one kept under the state directory
    (generated on first use, readable by its owner only)."""
    if web.secret_key:
        return web.secret_key
    from engine.embedded import default_state_dir

    state = Path(config.state_dir) if config.state_dir else default_state_dir()
    state.mkdir(parents=True, exist_ok=True)
    path = state / "web-secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key
