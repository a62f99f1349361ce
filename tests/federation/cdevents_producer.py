"""A CDEvents producer, as a Tekton or Jenkins CDEvents plugin is: it posts
one CloudEvent in binary mode (the ``ce-*`` headers, the CDEvent as the
body) to a BOSS site's federation endpoint, with the bearer token and the
peer name that site gave it. It imports nothing from BOSS: the event is
written by hand from the CDEvents 0.3.0 spec (``artifact.packaged``, or
``artifact.published``).

    python tests/federation/cdevents_producer.py URL --token T --site tekton \\
        --artifact pkg:generic/tekton-built@1.0 [--kind packaged|published]

Prints the site's answer (JSON) and exits 0 on a 2xx answer, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any

SPEC = "0.3.0"


def cdevent(artifact: str, kind: str, source: str) -> dict[str, Any]:
    """The CDEvent of an artifact packaged (or published) by ``source``."""
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
    return {
        "context": {
            "version": SPEC,
            "id": str(uuid.uuid4()),
            "source": source,
            "type": f"dev.cdevents.artifact.{kind}.{SPEC}",
            "timestamp": now.replace("+00:00", "Z"),
        },
        "subject": {
            "id": artifact,
            "source": source,
            "type": "artifact",
            "content": {"change": {"id": "tekton-change-1", "source": source}}
            if kind == "packaged"
            else {},
        },
        "customData": {"producer": "tekton-pipelines"},
        "customDataContentType": "application/json",
    }


def post(
    url: str, event: dict[str, Any], token: str, site: str, timeout: float = 30
) -> tuple[int, Any]:
    """POST ``event`` in CloudEvents binary mode; ``(status, answer)``."""
    ctx = event["context"]
    headers = {
        "Content-Type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": ctx["id"],
        "ce-source": ctx["source"],
        "ce-type": ctx["type"],
        "ce-time": ctx["timestamp"],
        "Authorization": f"Bearer {token}",
        "X-Boss-Site": site,
    }
    body = json.dumps(event).encode()
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="the site's POST /federation/v1/events")
    parser.add_argument("--token", required=True)
    parser.add_argument("--site", required=True, help="this producer's peer name at the site")
    parser.add_argument("--artifact", required=True, help="the artifact's purl")
    parser.add_argument("--kind", choices=("packaged", "published"), default="packaged")
    parser.add_argument("--source", default="https://tekton.example/pipelines/build")
    args = parser.parse_args(argv)
    event = cdevent(args.artifact, args.kind, args.source)
    status, answer = post(args.url, event, args.token, args.site)
    print(json.dumps({"status": status, "id": event["context"]["id"], "answer": answer}))
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
