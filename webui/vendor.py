"""Fetch the web UI's JavaScript libraries from the npm registry (run once by
a maintainer; the results are committed under ``webui/static/vendor/``, so
users need no build step and no network).

    python -m webui.vendor            # fetch, check, copy
    python -m webui.vendor --check    # only check the committed files' sha256

Each library is pinned by version and by the sha512 ``integrity`` the
registry publishes for its tarball; the copied files are pinned by sha256
(``static/vendor/SHA256SUMS``), so a re-run that would change a byte fails loudly. The tarball
is fetched with ``npm pack`` (the ordinary client, honouring the machine's
npm configuration) and read with ``tarfile``: nothing of the package is run.

Why these (see ``docs/webui.md``): Cytoscape.js draws and lets one pan,
zoom and click graphs (definitions, traceability); cytoscape-dagre (dagre
bundled) lays out directed graphs top to bottom, which is what a process
and a trace are; Chart.js draws the time series and bar charts of the
health and lead-time pages. All MIT-licensed, all shipped as one minified
UMD file each: about 0.7 MB together.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "static" / "vendor"

#: package -> (version, tarball integrity (sha512, as the registry gives it), files)
PACKAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "cytoscape": (
        "3.34.4",
        "sha512-msY99tMY8iWTg+sIPGfSqDcPNOt4xcj+v/K/7qUFaCUxxlqnMkUYLBjRUzn9W5CU/R2hrmtJa5+"
        "UtovrEM2ctg==",
        ("dist/cytoscape.min.js", "LICENSE"),
    ),
    "cytoscape-dagre": (
        "4.0.1",
        "sha512-hyNdh8Vp1nwzBcjHnM4c71G81bFhPmQYLXD2HM9AZIvl+8TrMzWEOPW45hF/XOBQiEguPcDQzi6"
        "VrXR1XBcXOA==",
        ("dist/cytoscape-dagre.min.js", "LICENSE"),
    ),
    "chart.js": (
        "4.6.1",
        "sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANF"
        "NYtRi61g==",
        ("dist/chart.umd.min.js", "LICENSE.md"),
    ),
}

#: the sha256 of every committed file (``<package>/<basename>``), written by ``vendor``
_LOCK = VENDOR / "SHA256SUMS"


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch(package: str, version: str, integrity: str, tmp: Path) -> Path:
    """``npm pack package@version`` into ``tmp``; checked against ``integrity``."""
    subprocess.run(
        ["npm", "pack", f"{package}@{version}", "--silent"],
        cwd=tmp,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tarball = next(tmp.glob(f"{package.replace('/', '-').lstrip('@')}-{version}.tgz"))
    got = _integrity(tarball.read_bytes())
    if got != integrity:
        raise SystemExit(f"{package}@{version}: integrity {got} != pinned {integrity}")
    return tarball


def vendor() -> None:
    sums: list[str] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for package, (version, integrity, files) in PACKAGES.items():
            tarball = fetch(package, version, integrity, tmp)
            out = VENDOR / package
            out.mkdir(parents=True, exist_ok=True)
            with tarfile.open(tarball) as tar:
                for member in files:
                    fh = tar.extractfile(f"package/{member}")
                    if fh is None:
                        raise SystemExit(f"{package}: no {member} in the tarball")
                    data = fh.read()
                    target = out / Path(member).name
                    target.write_bytes(data)
                    sums.append(f"{hashlib.sha256(data).hexdigest()}  {package}/{target.name}")
            (out / "VERSION").write_text(f"{package}@{version} {integrity}\n")
    _LOCK.write_text("\n".join(sums) + "\n")
    print(f"vendored {len(PACKAGES)} packages into {VENDOR}")


def check() -> int:
    """Compare the committed files with ``SHA256SUMS``; the number that differ."""
    bad = 0
    for line in _LOCK.read_text().splitlines():
        digest, _, name = line.partition("  ")
        path = VENDOR / name
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            print(f"MISMATCH {name}")
            bad += 1
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the committed files")
    args = parser.parse_args(argv)
    if args.check:
        return 1 if check() else 0
    vendor()
    return 1 if check() else 0


if __name__ == "__main__":
    sys.exit(main())
