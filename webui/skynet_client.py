"""A small client of SkyNET's REST API (``skynet.api``), one base URL per
host (``[web] skynet_urls``), with the bearer token for writes
(``[web] skynet_token``). Standard library only (``urllib``).

A host that does not answer is reported as ``{"url", "error"}``: a view of
the pools must not fail because one host is away.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

__all__ = ["SkynetClient", "SkynetError"]


class SkynetError(Exception):
    """A SkyNET call failed: ``status`` (0: no answer) and SkyNET's message."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class SkynetClient:
    def __init__(self, urls: list[str], token: str = "", timeout: float = 3.0) -> None:
        self.urls = urls
        self.token = token
        self.timeout = timeout

    def _call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if method != "GET" and self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error") or str(exc)
            except (ValueError, AttributeError):
                message = str(exc)
            raise SkynetError(f"SkyNET at {url}: {message}", exc.code) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise SkynetError(f"SkyNET at {url} does not answer: {exc}") from None

    def hosts(self) -> list[dict[str, Any]]:
        """``[{"url", "host", "participants": [...]}]`` or ``{"url", "error"}``."""
        out = []
        for url in self.urls:
            try:
                body = self._call("GET", f"{url}/participants")
                out.append(
                    {
                        "url": url,
                        "host": body.get("host"),
                        "participants": body.get("participants", []),
                    }
                )
            except SkynetError as exc:
                out.append({"url": url, "error": str(exc)})
        return out

    def _url(self, url: str) -> str:
        url = url.rstrip("/")
        if url not in self.urls:
            raise SkynetError(f"{url} is not a configured SkyNET host ([web] skynet_urls)", 400)
        return url

    def set_running(self, url: str, name: str, running: bool) -> Any:
        return self._call(
            "POST", f"{self._url(url)}/participants/{name}/running", {"running": running}
        )

    def scale(self, url: str, name: str, instances: int) -> Any:
        return self._call(
            "POST", f"{self._url(url)}/participants/{name}/scale", {"instances": instances}
        )
