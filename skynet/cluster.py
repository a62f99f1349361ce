"""One view over several SkyNET hosts.

Each host serves its own pools (``GET /participants``); a host configured
with peers (``[skynet] hosts``: their API base URLs) fetches theirs in
parallel, with a timeout each, and tags every pool with the host it runs
on. A peer that does not answer is listed with its error; it never breaks
the view.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["fetch_peer", "merge"]


def fetch_peer(url: str, timeout: float) -> dict[str, Any]:
    """``{"url", "host", "ok": True, "participants": [...]}`` of one peer, or
    ``{"url", "ok": False, "error": ...}``."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/participants", timeout=timeout) as resp:
            data = json.loads(resp.read().decode("utf-8"))
        pools = data["participants"]
        host = data.get("host") or url
    except urllib.error.HTTPError as exc:
        return {"url": url, "ok": False, "error": f"HTTP {exc.code} {exc.reason}"}
    except urllib.error.URLError as exc:
        return {"url": url, "ok": False, "error": f"unreachable: {exc.reason}"}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"url": url, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    for pool in pools:
        pool["host"] = host
    return {"url": url, "host": host, "ok": True, "participants": pools}


def merge(
    local_host: str, local_pools: list[dict[str, Any]], peers: tuple[str, ...], timeout: float
) -> dict[str, Any]:
    """The cluster view: ``{"hosts": [...], "participants": [...]}``, every
    pool with its ``host``; peers fetched in parallel."""
    for pool in local_pools:
        pool["host"] = local_host
    hosts: list[dict[str, Any]] = [
        {
            "host": local_host,
            "url": None,
            "ok": True,
            "local": True,
            "participants": len(local_pools),
        }
    ]
    pools = list(local_pools)
    if peers:
        with ThreadPoolExecutor(max_workers=min(8, len(peers))) as pool:
            results = list(pool.map(lambda u: fetch_peer(u, timeout), peers))
        for result in results:
            found = result.pop("participants", None)
            if found is not None:
                pools.extend(found)
                result["participants"] = len(found)
            result["local"] = False
            hosts.append(result)
    return {"hosts": hosts, "participants": pools}
