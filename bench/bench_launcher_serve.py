"""Benchmark: the webhook server (``boss launcher serve``) against a bare
Flask endpoint, and its memory under a 300 MB POST.

Two servers, each its own process on werkzeug's threaded server, driven in
one run by the same client (threads, one connection per delivery, as
werkzeug closes each):

* **boss launcher serve**: the real command, with an INI: a signed GitHub
  push (a real delivery of ``/work/shared/payloads/github/push__with-new-branch.payload.json``
  when there, else a small one) with a fresh ``X-GitHub-Delivery`` each:
  size check, HMAC check, header redaction, the delivery's claim in Redis
  (``SET NX``), normalisation, the process store, the Eiffel event and the
  launch item published on the broker (the embedded Valkey, started here,
  or ``--broker rabbitmq``), the claim's result stored.
* **bare Flask**: ``POST /hook`` that reads the body and answers 202 JSON.

deliveries/s = deliveries / wall time, ``--deliveries`` each after a
warm-up, ``--concurrency`` client threads.

Memory: the server's RSS (``/proc/<pid>/status``: ``VmRSS`` idle, ``VmHWM``
the peak) before and after a 300 MB POST, unsigned (answered 401 before
the body is read), signed with a ``Content-Length`` (413 before reading)
and signed and chunked (read up to ``max_body``, 25 MiB, then 413).
Target: the peak stays under idle + 50 MB. ``--bare-memory`` also sends the
unsigned 300 MB POST to the bare endpoint (which reads it all), for
contrast.

Run: ``python bench/bench_launcher_serve.py [--deliveries 2000]
[--concurrency 8] [--broker embedded|rabbitmq] [--bare-memory]``. The
numbers are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret"
MB = 1024 * 1024
PAYLOADS = Path(os.environ.get("BOSS_PAYLOADS_DIR", "/work/shared/payloads"))

BARE_APP = """
import sys
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

app = Flask("bare")

@app.post("/hook")
def hook():
    body = request.get_data()
    return jsonify({"status": "ok", "bytes": len(body)}), 202

server = make_server("127.0.0.1", 0, app, threaded=True)
print(server.server_port, flush=True)
server.serve_forever()
"""


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def rss(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid``, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            values[key] = int(value.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"]


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def drive(port: int, path: str, make: Any, n: int, concurrency: int) -> tuple[float, dict]:
    """Send ``n`` deliveries (``make()`` -> body, headers); deliveries/s and
    the count of each status."""
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def one(_: int) -> None:
        body, headers = make()
        status = post(port, path, body, headers)
        with lock:
            statuses[status] = statuses.get(status, 0) + 1

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    return n / (time.perf_counter() - t0), statuses


def big_post(port: int, path: str, size: int, headers: dict[str, str], chunked: bool) -> str:
    """Stream ``size`` bytes of zeros; returns the status (or what went wrong)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    head = f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    head += (
        "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {size}\r\n"
    ) + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    block = b"0" * MB
    try:
        sock.sendall(head.encode() + b"\r\n")
        sent = 0
        while sent < size:
            if chunked:
                sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            else:
                sock.sendall(block)
            sent += len(block)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
        outcome = "sent all"
    except OSError as exc:
        outcome = f"closed by the server after {sent // MB} MB ({type(exc).__name__})"
    try:
        answer = sock.recv(200).split(b"\r\n", 1)[0].decode(errors="replace")
    except OSError as exc:
        answer = type(exc).__name__
    sock.close()
    return f"{answer or '(no answer)'}; {outcome}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--broker", choices=("embedded", "rabbitmq"), default="embedded")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--redis-url", default="", help="default: the embedded Valkey")
    parser.add_argument("--bare-memory", action="store_true")
    args = parser.parse_args(argv)

    from engine.embedded import EmbeddedValkey

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    valkey = EmbeddedValkey(tmp / "valkey").start()
    prefix = f"bench-serve-{uuid.uuid4().hex[:8]}"
    redis_url = args.redis_url or valkey.url
    broker = (
        args.amqp_url
        if args.broker == "rabbitmq"
        else "redis+socket://" + valkey.url.removeprefix("unix://")
    )
    push_file = PAYLOADS / "github" / "push__with-new-branch.payload.json"
    if push_file.exists():
        push = push_file.read_bytes()
    else:
        push = json.dumps(
            {
                "ref": "refs/heads/main",
                "after": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
                "repository": {
                    "full_name": "baxterthehacker/public-repo",
                    "clone_url": "https://github.com/baxterthehacker/public-repo.git",
                },
                "sender": {"login": "jane"},
            }
        ).encode()
    project = json.loads(push)["repository"]["full_name"]
    store = tmp / "store" / project
    store.mkdir(parents=True)
    (store / "GITHUB_PUSH.build.yaml").write_text("name: build\nsteps:\n  - build\n")
    port = free_port()
    ini = tmp / "boss.ini"
    ini.write_text(
        f"[boss]\nredis_url = {redis_url}\nbroker_url = {broker}\n"
        f"key_prefix = {prefix}:\nengine_queue = {prefix}.engine\n"
        f"deadletter_queue = {prefix}.deadletter\nevent_exchange = {prefix}.eiffel\n"
        f"trace_queue = {prefix}.trace\nstate_dir = {tmp}\n"
        f"[launchers]\ngithub_secret = {SECRET}\nprocess_store = {tmp / 'store'}\n"
        f"bind = 127.0.0.1:{port}\n"
    )
    boss = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bossapp.cli",
            "-c",
            str(ini),
            "launcher",
            "serve",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "serve.log", "wb"),  # noqa: SIM115
    )
    bare = subprocess.Popen(
        [sys.executable, "-c", BARE_APP], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        bare_port = int(bare.stdout.readline())  # type: ignore[union-attr]
        wait_port(port)

        def delivery() -> tuple[bytes, dict[str, str]]:
            return push, {
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": sign(push),
            }

        print(f"body: {len(push)} bytes ({push_file.name if push_file.exists() else 'built in'})")
        print(f"broker: {args.broker}; store: {'machine Redis' if args.redis_url else 'embedded'}")
        drive(port, "/hooks/github", delivery, args.warmup, args.concurrency)
        drive(bare_port, "/hook", delivery, args.warmup, args.concurrency)
        results = {}
        # alternate, twice each, and keep the better of each (this VM's noise)
        for round_ in range(2):
            for name, p, path in (
                ("boss launcher serve", port, "/hooks/github"),
                ("bare Flask", bare_port, "/hook"),
            ):
                rate, statuses = drive(p, path, delivery, args.deliveries, args.concurrency)
                print(f"  round {round_ + 1} {name:<20} {rate:8.0f} deliveries/s {statuses}")
                results[name] = max(results.get(name, 0.0), rate)
        ratio = results["boss launcher serve"] / results["bare Flask"]
        print(f"{'boss launcher serve':<22} {results['boss launcher serve']:8.0f} deliveries/s")
        print(f"{'bare Flask':<22} {results['bare Flask']:8.0f} deliveries/s")
        print(f"ratio: {ratio:.2f}")
        # a repeat of a delivery: answered from Redis, nothing launched
        body, headers = delivery()
        post(port, "/hooks/github", body, headers)
        rate, statuses = drive(
            port, "/hooks/github", lambda: (body, headers), args.deliveries, args.concurrency
        )
        print(f"{'repeats (200 already)':<22} {rate:8.0f} deliveries/s {statuses}")

        # memory
        time.sleep(0.5)
        idle, _ = rss(boss.pid)
        print(f"\nmemory of boss launcher serve: idle RSS {idle / MB:.1f} MB")
        size = 300 * MB
        signed_headers = {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(b"whatever"),
        }
        for label, headers, chunked in (
            ("unsigned, Content-Length", {"X-GitHub-Event": "push"}, False),
            ("signed, Content-Length", signed_headers, False),
            ("signed, chunked", signed_headers, True),
        ):
            answer = big_post(port, "/hooks/github", size, headers, chunked)
            time.sleep(0.3)
            now, peak = rss(boss.pid)
            print(
                f"  300 MB {label:<26} {answer}\n"
                f"    RSS now {now / MB:.1f} MB, peak {peak / MB:.1f} MB "
                f"(peak - idle: {(peak - idle) / MB:.1f} MB; target < 50)"
            )
        if args.bare_memory:
            b_idle, _ = rss(bare.pid)
            answer = big_post(bare_port, "/hook", size, {}, False)
            _, b_peak = rss(bare.pid)
            print(
                f"  bare Flask, 300 MB: {answer}; idle {b_idle / MB:.1f} MB, "
                f"peak {b_peak / MB:.1f} MB"
            )
        return 0
    finally:
        for proc in (boss, bare):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if args.broker == "rabbitmq":
            import kombu

            with kombu.Connection(args.amqp_url) as conn:
                channel = conn.channel()
                for queue in (f"{prefix}.engine", f"{prefix}.deadletter", f"{prefix}.trace"):
                    try:
                        channel.queue_delete(queue)
                    except Exception:
                        channel = conn.channel()
                with contextlib.suppress(Exception):
                    channel.exchange_delete(f"{prefix}.eiffel")
        valkey.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
