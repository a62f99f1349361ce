"""axe-core (Deque's accessibility engine) for the browser tests: found in,
or installed into, a cache directory outside the repository with npm, and
run inside a Playwright page.

* :func:`axe_script` returns ``axe.min.js``: ``$BOSS_TEST_CACHE`` (default
  ``~/.cache/boss-test``) ``/axe-core/<version>``, installed there with
  ``npm install --prefix`` (the ordinary client, pinned version, no install
  scripts) and checked against the registry's sha512 integrity of the
  tarball (npm's own lock, ``node_modules/.package-lock.json``). No npm:
  the test skips saying why, or fails when ``BOSS_REQUIRE_BROWSER=1`` (as
  ``chromium_path`` does).
* :func:`serve_axe` makes a browser context answer ``/__axe/axe.min.js``
  (on the site under test) with that file, and :func:`run_axe` adds it to
  the page as a ``<script src>`` and runs ``axe.run``. The pages' CSP is
  ``script-src 'self'``: an inline script (``add_script_tag(content=...)``)
  is refused unless the context bypasses the CSP (``bypass_csp=True``).
  Served from the page's own origin (a Playwright route: nothing reaches
  the app), the script is allowed by the CSP as it is, so the pages are
  checked, and photographed, under the policy users get.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.webui.test_browser import _unavailable

#: pinned: the version and the sha512 integrity the npm registry gives for its tarball
AXE_VERSION = "4.14.1"
AXE_INTEGRITY = (
    "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNt"
    "uFooJpZe37OgudVGtQ=="
)
#: the path the browser asks for; a context route answers it (see :func:`serve_axe`)
AXE_PATH = "/__axe/axe.min.js"
#: impacts that fail a page (axe's scale: minor, moderate, serious, critical)
FAILING = ("serious", "critical")


def cache_dir() -> Path:
    base = os.environ.get("BOSS_TEST_CACHE") or str(Path.home() / ".cache" / "boss-test")
    return Path(base) / "axe-core" / AXE_VERSION


def _installed(prefix: Path) -> Path | None:
    script = prefix / "node_modules" / "axe-core" / "axe.min.js"
    lock = prefix / "node_modules" / ".package-lock.json"
    if not script.is_file() or not lock.is_file():
        return None
    entry = json.loads(lock.read_text()).get("packages", {}).get("node_modules/axe-core", {})
    if entry.get("version") != AXE_VERSION:
        return None
    if entry.get("integrity") != AXE_INTEGRITY:
        raise RuntimeError(
            f"axe-core in {prefix}: integrity {entry.get('integrity')} != pinned {AXE_INTEGRITY}"
        )
    return script


def axe_script() -> Path:
    """``axe.min.js`` of the pinned axe-core, installed with npm when missing."""
    prefix = cache_dir()
    found = _installed(prefix)
    if found is not None:
        return found
    npm = shutil.which("npm")
    if npm is None:
        _unavailable(f"npm is not installed: cannot install axe-core@{AXE_VERSION} into {prefix}")
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".lock", "w") as lock:  # one installer at a time (xdist, parallel runs)
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _installed(prefix)
        if found is not None:
            return found
        run = subprocess.run(
            [
                str(npm),
                "install",
                "--prefix",
                str(prefix),
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--save-exact",
                f"axe-core@{AXE_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if run.returncode != 0:
            _unavailable(f"npm install axe-core@{AXE_VERSION} failed: {run.stderr[-500:]}")
    found = _installed(prefix)
    if found is None:
        _unavailable(f"npm install axe-core@{AXE_VERSION} left no axe.min.js in {prefix}")
    return found


def serve_axe(context: Any, base_url: str) -> None:
    """Answer ``base_url + AXE_PATH`` in ``context`` with axe-core (a route:
    same origin for the CSP, nothing reaches the app)."""
    body = axe_script().read_bytes()
    context.route(
        base_url + AXE_PATH,
        lambda route: route.fulfill(
            status=200, body=body, headers={"content-type": "text/javascript; charset=utf-8"}
        ),
    )


def run_axe(page: Any, base_url: str) -> list[dict[str, Any]]:
    """axe's violations on the page as it is now (WCAG 2.x A and AA and
    best practices: axe's default rules). ``serve_axe`` must have been
    called on the page's context."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(url=base_url + AXE_PATH)
    result: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const r = await window.axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => ({target: n.target, impact: n.impact,
                                         summary: n.failureSummary}))}));
        }"""
    )
    return result


def failing(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in violations if v["impact"] in FAILING]


def describe(violations: list[dict[str, Any]], *, nodes: int = 8) -> str:
    """One line per violation and per node: the rule, its impact, the selector."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']}")
        for n in v["nodes"][:nodes]:
            target = " ".join(" >>> ".join(t) if isinstance(t, list) else t for t in n["target"])
            lines.append(f"    {target}")
        if len(v["nodes"]) > nodes:
            lines.append(f"    ... and {len(v['nodes']) - nodes} more")
    return "\n".join(lines)
