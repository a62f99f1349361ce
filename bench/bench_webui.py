"""Benchmark: the web UI's list pages with many runs in the store.

Seeds ``--runs`` runs (default 10,000) through ``Engine.launch`` on an
embedded Valkey (a dispatcher that drops workitems: the runs wait at their
first step; one in 20 fails at once, so the error pages have work too),
launch fields ``project`` (one of 50) and ``n``; a third are recorded as
launched from the UI by one of five users. Then it asks the app (Flask's
test client: the server's own time, no network) for each list page
``--repeat`` times and prints the median and p90 in milliseconds:

* ``/api/runs`` and ``/runs`` (HTML): newest page, page 100, by status, by
  process name, by project, by project and status, by an indexed field,
  "mine";
* ``/api/errors`` (grouped, the newest 2,000 errors) and ``/errors``;
* ``/metrics``.

The first filtered request indexes the launch fields of every run
(``webui.runindex.RunIndex.catch_up``): its time is printed apart.

Run: ``python bench/bench_webui.py [--runs 10000] [--repeat 30]``. The
numbers are in docs/webui.md. The target: at most 200 ms of server time per
list page at the median.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.config import Config
from engine.embedded import EmbeddedValkey
from engine.engine import Engine
from engine.store import RedisStore

DEF = "name: pipeline\nsteps:\n  - build\n  - test\n"
BROKEN = "name: broken\nsteps:\n  - error: the build host is down\n"


class _Drop:
    def dispatch(self, effect: Any) -> None:
        pass

    def cancel(self, effect: Any) -> None:
        pass


def seed(engine: Engine, index: Any, n: int) -> float:
    t0 = time.perf_counter()
    engine.register("build")
    engine.register("test")
    rng = random.Random(7)
    for i in range(n):
        source = BROKEN if i % 20 == 0 else DEF
        wfid = engine.launch(source, {"project": f"project-{rng.randrange(50)}", "n": i})
        if i % 3 == 0:
            index.set_owner(wfid, f"user{i % 5}")
    return time.perf_counter() - t0


def timed(client: Any, url: str, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (url, r.status_code, r.data[:300])
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)

    from webui.app import create_app
    from webui.settings import WebConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench-webui-"))
    server = EmbeddedValkey(tmp / "valkey").start()
    prefix = f"bench-webui:{uuid.uuid4().hex[:8]}:"
    try:
        store = RedisStore(server.url, prefix=prefix)
        config = Config.load(
            None,
            environ={},
            redis_url=server.url,
            broker_url="redis+socket://" + server.url.removeprefix("unix://"),
            key_prefix=prefix,
            state_dir=str(tmp),
            process_dir=str(tmp / "processes"),
        )
        app = create_app(config, web=WebConfig(secret_key="bench"), store=store, publisher=object())
        svc = app.extensions["boss"]
        engine = Engine(store, dispatcher=_Drop())
        took = seed(engine, svc.index, args.runs)
        print(f"seeded {args.runs} runs in {took:.1f}s ({args.runs / took:.0f}/s)")
        t0 = time.perf_counter()
        svc.index.catch_up(force=True)
        print(f"first catch-up of the field index: {(time.perf_counter() - t0) * 1000:.0f} ms")
        client = app.test_client()
        login = app.test_client()
        with app.app_context():
            svc.users.add("user1", "bench-password", "user")
        token = login.get("/api/me").json["csrf_token"]
        login.post(
            "/login", data={"username": "user1", "password": "bench-password", "csrf_token": token}
        )
        pages = [
            ("newest page", "/api/runs"),
            ("page 100 (offset 5,000)", "/api/runs?offset=5000&limit=50"),
            ("status=error", "/api/runs?status=error"),
            ("name=pipeline", "/api/runs?name=pipeline"),
            ("project=project-7", "/api/runs?project=project-7"),
            ("project + status=error", "/api/runs?project=project-7&status=error"),
            ("field n=4242", "/api/runs?field=n=4242"),
            ("name + project, page 3", "/api/runs?name=pipeline&project=project-3&offset=100"),
            ("HTML /runs", "/runs"),
            ("HTML /runs?project=project-7", "/runs?project=project-7"),
            ("/api/errors (grouped)", "/api/errors"),
            ("HTML /errors", "/errors"),
            ("/metrics", "/metrics"),
        ]
        print(f"{'page':<34} {'p50 ms':>8} {'p90 ms':>8}")
        for label, url in pages:
            p50, p90 = timed(client, url, args.repeat)
            print(f"{label:<34} {p50:8.1f} {p90:8.1f}")
        p50, p90 = timed(login, "/api/runs?mine=1", args.repeat)
        print(f"{'mine (user1)':<34} {p50:8.1f} {p90:8.1f}")
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
