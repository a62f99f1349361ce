"""One JSON call to a forge's REST API: GitHub, GitLab or Gerrit.

The launchers' look-ups (``engine.launchers.forge_api``: GET a pull
request, its files, an author's permission) and the reporters
(``engine.reporters.forges``: POST a status, a check run, a review) speak
to the same APIs with the same rules, kept here once:

* the headers each forge wants (:func:`github_headers`,
  :func:`gitlab_headers`) and a ``User-Agent`` naming the caller;
* Gerrit's HTTP password, as basic or digest authentication, and the
  ``)]}'`` line Gerrit puts before every JSON answer;
* what a failure is: a :class:`ForgeHTTPError` saying ``METHOD URL: code
  detail``, ``transient`` when the API answered 5xx or 429 or not at all
  (worth retrying later), not transient for any other answer (401, 403,
  404, 422: retrying will not help); ``status`` is the HTTP code.

``urllib`` from the standard library does the calls: one request at a time
per caller, no connection pool to keep, and no dependency for the few
calls a launcher or reporter makes per change.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

__all__ = ["ForgeHTTPError", "call", "github_headers", "gitlab_headers"]


class ForgeHTTPError(Exception):
    """A call that failed: ``reason`` says how, ``transient`` whether a
    later attempt may succeed, ``status`` the HTTP code (None: no answer)."""

    def __init__(self, reason: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.status = status


def github_headers(token: str) -> dict[str, str]:
    """GitHub's REST API headers for ``token`` (any kind of token)."""
    return {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }


def gitlab_headers(token: str) -> dict[str, str]:
    """GitLab's REST API headers for a project or personal access token."""
    return {"PRIVATE-TOKEN": token}


def call(
    method: str,
    url: str,
    *,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    agent: str,
    user: str = "",
    password: str = "",
    digest: bool = False,
    gerrit: bool = False,
    strict: bool = False,
) -> tuple[Any, Mapping[str, str]]:
    """``method url`` with ``body`` as JSON (none for None); the answer's
    JSON (None when empty, or not JSON and not ``strict``) and its headers.

    ``user``/``password``: HTTP authentication (basic, or ``digest``).
    ``gerrit``: strip Gerrit's ``)]}'`` guard line. ``strict``: an answer
    that is not JSON is a transient :class:`ForgeHTTPError` (a proxy's
    error page), not None. Raises :class:`ForgeHTTPError`."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    req.add_header("User-Agent", agent)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    handlers: list[Any] = []
    if user:
        if digest:
            mgr = urllib.request.HTTPPasswordMgrWithDefaultRealm()
            mgr.add_password(None, url, user, password)
            handlers.append(urllib.request.HTTPDigestAuthHandler(mgr))
        else:
            token = f"{user}:{password}".encode()
            req.add_header("Authorization", "Basic " + base64.b64encode(token).decode())
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as resp:
            raw, answer_headers = resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace").strip()
        raise ForgeHTTPError(
            f"{method} {url}: {exc.code} {detail}",
            transient=exc.code >= 500 or exc.code == 429,
            status=exc.code,
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ForgeHTTPError(f"{method} {url}: {reason}", transient=True) from None
    if gerrit and raw.startswith(b")]}'"):
        raw = raw[4:]
    if not raw.strip():
        return None, answer_headers
    try:
        return json.loads(raw), answer_headers
    except ValueError:
        if strict:
            raise ForgeHTTPError(f"{method} {url}: not JSON", transient=True) from None
        return None, answer_headers
