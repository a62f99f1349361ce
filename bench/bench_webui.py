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

In the browser (headless Chromium: Debian's ``chromium`` driven by
Playwright, as the browser tests do), the app served by werkzeug's threaded
server (``webui.serve.make_boss_server``) in a thread:

* ``--browser``: the runs page and two run pages (a run waiting at its first
  step, a run in error) are loaded ``--loads`` times each (after two loads
  not counted; the browser's cache warm, as for a user going back and
  forth) and the time until each is *ready* is printed, p50 and p90: from
  the navigation's start (``performance.timeOrigin``) to the first moment
  after ``DOMContentLoaded`` at which the page's main data is in it (the
  runs page: a row ``#runs-body tr[data-wfid]``; a run page: its definition
  graph laid out, ``#defgraph[data-ready="1"]``), taken in the page by a
  ``MutationObserver`` (an init script), not by Python around ``goto``.
  Beside it, ``responseStart`` (the server's answer begins) and
  ``DOMContentLoaded``. The target: ready in at most 300 ms at p90.
* ``--sse``: ``--browsers`` pages (100 by default; one browser context each,
  spread over ``--processes`` Chromium processes) open the runs page, whose
  rows follow the server-sent events of ``GET /api/stream`` (``[web]
  poll_interval`` is set to a minute, so that a page that would poll
  cannot show the change first); then the newest run is paused and
  resumed through the engine ``--transitions`` times, and for each the
  time from the transition's entry in the store's transitions stream (its
  id is its time) to the moment the row shows the new status is taken in
  every page (a ``MutationObserver``, ``performance.timeOrigin +
  performance.now()``). Printed: how many pages saw it, p50, p90 and the
  slowest, and when a plain HTTP client reading the stream beside them got
  it (the server's share). The target: all 100 within 1 s. Without
  ``/api/stream`` the mode fails saying so.

    python bench/bench_webui.py --browser [--loads 30]
    python bench/bench_webui.py --sse [--browsers 100 --processes 4]

The modes may be combined; ``--browser`` and ``--sse`` skip the server-time
table unless ``--server`` is given too.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
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


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (``q`` in 0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


def server_times(app: Any, svc: Any, repeat: int) -> None:
    """The list pages' server time (Flask's test client, no network)."""
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
        p50, p90 = timed(client, url, repeat)
        print(f"{label:<34} {p50:8.1f} {p90:8.1f}")
    p50, p90 = timed(login, "/api/runs?mine=1", repeat)
    print(f"{'mine (user1)':<34} {p50:8.1f} {p90:8.1f}")


# -- in the browser ------------------------------------------------------------------

#: where a page's main data is, by path: the page is ready once this is in it
READY = {
    "runs": "#runs-body tr[data-wfid]",
    "run": '#defgraph[data-ready="1"]',
}

#: an init script: records ``window.__bossReady`` (ms since the navigation's
#: start) the first moment after DOMContentLoaded that the page's selector matches
READY_SCRIPT = """(() => {
  const ready = %s;
  const sel = location.pathname === "/runs" ? ready.runs
    : location.pathname.startsWith("/runs/") ? ready.run : null;
  if (!sel) return;
  window.__bossReady = null;
  let observer = null;
  const mark = () => {
    if (window.__bossReady != null || document.readyState === "loading") return;
    if (!document.querySelector(sel)) return;
    window.__bossReady = performance.now();
    if (observer) observer.disconnect();
  };
  observer = new MutationObserver(mark);
  observer.observe(document, {childList: true, subtree: true, attributes: true});
  document.addEventListener("DOMContentLoaded", mark);
})();"""

#: in a page: watch ``tr[data-wfid=wfid]`` until it shows ``status``; the
#: epoch ms when it did in ``window.__bossSeen``
WATCH_SCRIPT = """([wfid, status]) => {
  window.__bossSeen = null;
  if (window.__bossWatch) window.__bossWatch.disconnect();
  const shows = () => {
    const row = document.querySelector('tr[data-wfid="' + CSS.escape(wfid) + '"]');
    if (!row) return false;
    const badge = row.querySelector(".badge") || row;
    return badge.textContent.trim().split(/\\s+/).includes(status);
  };
  const mark = () => {
    if (window.__bossSeen == null && shows()) {
      window.__bossSeen = performance.timeOrigin + performance.now();
      window.__bossWatch.disconnect();
    }
  };
  window.__bossWatch = new MutationObserver(mark);
  window.__bossWatch.observe(document.body,
    {childList: true, subtree: true, characterData: true, attributes: true});
  return shows();
}"""


def chromium() -> str:
    """Debian's chromium (``apt-get install chromium``), as the browser tests use."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no chromium: apt-get install chromium (Debian's package)")


def serve(app: Any) -> tuple[Any, str]:
    """The app on werkzeug's threaded server in a thread: (server, its URL)."""
    from webui.serve import make_boss_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    server = make_boss_server("127.0.0.1", 0, app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def launch_browser(pw: Any) -> Any:
    return pw.chromium.launch(
        executable_path=chromium(), args=["--no-sandbox", "--disable-dev-shm-usage"]
    )


def browser_times(app: Any, wfids: dict[str, str], loads: int) -> None:
    """The runs page and run pages, ready in the browser (see the docstring)."""
    from playwright.sync_api import sync_playwright

    server, url = serve(app)
    try:
        with sync_playwright() as pw:
            browser = launch_browser(pw)
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            context.add_init_script(READY_SCRIPT % json.dumps(READY))
            page = context.new_page()
            page.set_default_timeout(30_000)
            targets = [("/runs (newest 50 of all)", "/runs")] + [
                (f"/runs/WFID ({what})", f"/runs/{wfid}") for what, wfid in wfids.items()
            ]
            print(f"in the browser, {loads} loads each (ms from the navigation's start)")
            print(
                f"{'page':<34} {'ready p50':>10} {'ready p90':>10}"
                f" {'response p50':>13} {'DCL p50':>8}"
            )
            for label, path in targets:
                ready, response, dcl = [], [], []
                for i in range(loads + 2):
                    answer = page.goto(url + path, wait_until="domcontentloaded")
                    if answer is None or answer.status != 200:
                        raise SystemExit(f"{path}: answered {answer and answer.status}")
                    page.wait_for_function("() => window.__bossReady != null", polling=20)
                    got = page.evaluate(
                        """() => { const n = performance.getEntriesByType("navigation")[0];
                                   return [window.__bossReady, n.responseStart,
                                           n.domContentLoadedEventStart]; }"""
                    )
                    if i >= 2:
                        ready.append(got[0])
                        response.append(got[1])
                        dcl.append(got[2])
                print(
                    f"{label:<34} {statistics.median(ready):10.1f} {percentile(ready, 0.9):10.1f}"
                    f" {statistics.median(response):13.1f} {statistics.median(dcl):8.1f}"
                )
            browser.close()
    finally:
        server.shutdown()


def _check_stream(url: str) -> None:
    """Fail saying why when the app has no server-sent-events endpoint."""
    try:
        with urllib.request.urlopen(url + "/api/stream", timeout=5) as r:
            kind = r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raise SystemExit(
            f"--sse: GET /api/stream answered {exc.code}: this app has no server-sent-events "
            "stream (the runs page's live updates), nothing to measure"
        ) from None
    if not kind.startswith("text/event-stream"):
        raise SystemExit(f"--sse: GET /api/stream is {kind!r}, not text/event-stream")


def _wait(until: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not until():
        if time.monotonic() > end:
            raise SystemExit(f"--sse: timed out waiting for {what}")
        time.sleep(0.05)


class StreamProbe(threading.Thread):
    """A plain HTTP client on ``/api/stream`` beside the browsers: when each
    transition of ``wfid`` reaches a client that does nothing else (the
    server's share of the browsers' time)."""

    def __init__(self, url: str, wfid: str) -> None:
        super().__init__(daemon=True, name="sse-probe")
        self.url = url
        self.wfid = wfid
        #: (epoch seconds when it arrived, status)
        self.arrivals: list[tuple[float, str]] = []

    def run(self) -> None:
        with urllib.request.urlopen(self.url + "/api/stream", timeout=600) as r:
            event = ""
            for raw in r:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "transition":
                    data = json.loads(line[5:])
                    if data.get("wfid") == self.wfid and data.get("kind", "run") == "run":
                        self.arrivals.append((time.time(), str(data.get("status"))))
                elif not line:
                    event = ""

    def first(self, status: str, after: float) -> float | None:
        return next((t for t, s in self.arrivals if s == status and t >= after), None)


def sse_fanout(
    app: Any,
    engine: Engine,
    store: Any,
    browsers: int,
    processes: int,
    transitions: int,
    settle: float = 5.0,
) -> None:
    """One transition, seen by ``browsers`` runs pages (see the docstring)."""
    from playwright.sync_api import sync_playwright

    server, url = serve(app)
    try:
        _check_stream(url)
        wfid = engine.list_runs(limit=1)[0].wfid  # the newest: the first row of /runs
        key = getattr(store, "transitions_key", None)
        with sync_playwright() as pw:
            chromes = [launch_browser(pw) for _ in range(max(1, processes))]
            pages: list[Any] = []
            t0 = time.perf_counter()
            for i in range(browsers):
                context = chromes[i % len(chromes)].new_context(
                    viewport={"width": 1440, "height": 900}
                )
                page = context.new_page()
                page.set_default_timeout(60_000)
                page.goto(url + "/runs")
                page.wait_for_selector(f'tr[data-wfid="{wfid}"]', state="attached")
                pages.append(page)
            print(
                f"{len(pages)} runs pages open in {len(chromes)} Chromium processes "
                f"({time.perf_counter() - t0:.1f} s); watching run {wfid}"
            )
            hub = app.extensions.get("boss_live")
            if hub is not None:
                _wait(lambda: hub.subscribers >= len(pages), 30, "every page's stream to connect")
                print(f"stream subscribers: {hub.subscribers}")
            probe = StreamProbe(url, wfid)
            probe.start()
            time.sleep(settle)  # the last pages opened finish their scripts
            print(
                f"{'transition':<22} {'seen by':>8} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8}"
                f" {'plain client ms':>16}"
            )
            worst = 0.0
            for n in range(transitions):
                op, status = (engine.pause, "paused") if n % 2 == 0 else (engine.resume, "running")
                for page in pages:
                    page.evaluate(WATCH_SCRIPT, [wfid, status])
                before = time.time()
                op(wfid)
                stored = before
                if key is not None:  # the transition's entry: its id is when it was stored
                    top = store.client.xrevrange(key, "+", "-", count=1)
                    if top:
                        stored = int(top[0][0].decode().split("-")[0]) / 1000
                # the pages take their own times: asked rarely, not to load the machine
                deadline = time.monotonic() + 15
                seen: list[float | None] = [None] * len(pages)
                time.sleep(1.5)
                while True:
                    for i, page in enumerate(pages):
                        if seen[i] is None:
                            seen[i] = page.evaluate("() => window.__bossSeen")
                    if all(s is not None for s in seen) or time.monotonic() > deadline:
                        break
                    time.sleep(1.0)
                lags = [s - stored * 1000 for s in seen if s is not None]
                arrived = probe.first(status, before - 0.001)
                plain = f"{(arrived - stored) * 1000:16.0f}" if arrived else f"{'-':>16}"
                if lags:
                    worst = max(worst, max(lags))
                    print(
                        f"{op.__name__ + ' -> ' + status:<22} {len(lags):>4}/{len(pages):<3}"
                        f" {statistics.median(lags):8.0f} {percentile(lags, 0.9):8.0f}"
                        f" {max(lags):8.0f} {plain}"
                    )
                else:
                    print(f"{op.__name__ + ' -> ' + status:<22} {0:>4}/{len(pages):<3} (none)")
                time.sleep(1.0)
            print(f"slowest page over every transition: {worst:.0f} ms")
            for chrome in chromes:
                chrome.close()
    finally:
        server.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30, help="server-time requests per page")
    parser.add_argument("--server", action="store_true", help="the server-time table (default)")
    parser.add_argument("--browser", action="store_true", help="page ready times in Chromium")
    parser.add_argument("--loads", type=int, default=30, help="--browser: loads per page")
    parser.add_argument("--sse", action="store_true", help="one transition in many browsers")
    parser.add_argument("--browsers", type=int, default=100, help="--sse: pages")
    parser.add_argument("--processes", type=int, default=4, help="--sse: Chromium processes")
    parser.add_argument("--transitions", type=int, default=6, help="--sse: transitions")
    args = parser.parse_args(argv)
    if not (args.browser or args.sse):
        args.server = True

    from webui.app import create_app
    from webui.settings import WebConfig

    tmp = Path(tempfile.mkdtemp(prefix="bench-webui-"))
    server = EmbeddedValkey(tmp / "valkey").start()
    prefix = f"bench-webui:{uuid.uuid4().hex[:8]}:"
    app: Any = None
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
        # the list's polling once a minute under --sse: only the stream shows a change
        web = WebConfig(secret_key="bench", poll_interval=60 if args.sse else 2)
        app = create_app(config, web=web, store=store, publisher=object())
        svc = app.extensions["boss"]
        engine = Engine(store, dispatcher=_Drop())
        took = seed(engine, svc.index, args.runs)
        print(f"seeded {args.runs} runs in {took:.1f}s ({args.runs / took:.0f}/s)")
        t0 = time.perf_counter()
        svc.index.catch_up(force=True)
        print(f"first catch-up of the field index: {(time.perf_counter() - t0) * 1000:.0f} ms")
        if args.server:
            server_times(app, svc, args.repeat)
        if args.browser:
            newest = engine.list_runs(limit=40)
            waiting = next(r.wfid for r in newest if r.status == "running")
            failed = next(r.wfid for r in newest if r.status == "error")
            browser_times(app, {"waiting at a step": waiting, "in error": failed}, args.loads)
        if args.sse:
            sse_fanout(app, engine, store, args.browsers, args.processes, args.transitions)
        return 0
    finally:
        # streams the browsers left open (live lists, step logs) end with the
        # store: what their threads say then is not the bench's business
        for name in ("werkzeug", "webui.live"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        if app is not None:  # the live stream's reader first: it reads the store
            hub = app.extensions.get("boss_live")
            if hub is not None:
                hub.close()
            app.extensions["boss"].close()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
