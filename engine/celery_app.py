"""The project's Celery app: an engine worker is a Celery worker.

``boss worker`` runs ``app.worker_main`` with a bootstep (``EngineStep``)
that starts the engine's threads (``engine.worker.EngineWorker``) when the
worker starts and stops them, after the message in hand, on a warm shutdown
(SIGTERM, ``celery control shutdown``). Celery brings what a fleet of
workers needs: process supervision of the pool, remote control and
inspection (``celery -A engine.celery_app inspect ping``), events, and a
standard way to run N workers on M hosts.

Participants' replies and launch items are *not* Celery task messages: they
are plain JSON on the engine's queue (``docs/wire-protocol.md``), consumed
by the bootstep's threads, so a participant needs no Celery. For Python
clients that prefer Celery, the task ``boss.apply`` takes the same JSON
body.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from typing import Any

from celery import Celery, bootsteps

from engine.broker import (
    BrokerTLSError,
    Publisher,
    check_tls,
    is_redis,
    redis_transport_options,
    tls_options,
)
from engine.config import Config
from engine.worker import EngineWorker

log = logging.getLogger("boss.worker")

__all__ = ["app", "configure", "start_worker"]

app = Celery("boss", set_as_current=False)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_backend=None,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


def configure(config: Config) -> Celery:
    """Point the app at the configured broker (starting the embedded Valkey
    when there is no configuration)."""
    url = config.resolved_broker_url()
    app.conf.broker_url = url
    app.conf.task_default_queue = config.engine_queue + ".tasks"
    app.conf.broker_transport_options = redis_transport_options(config) if is_redis(url) else {}
    tls = tls_options(config, url)  # TLS to RabbitMQ, as every other connection
    app.conf.broker_use_ssl = tls.get("ssl", False)
    app.conf.broker_login_method = tls.get("login_method")
    app.boss_config = config  # type: ignore[attr-defined]
    return app


class EngineStep(bootsteps.StartStopStep):
    """Starts and stops the engine's threads with the Celery worker."""

    label = "BOSS engine"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.engine_worker: EngineWorker | None = None

    def start(self, parent: Any) -> None:
        config: Config = getattr(parent.app, "boss_config", None) or Config.load()
        self.engine_worker = EngineWorker(config).start()
        parent.boss_engine = _current["worker"] = self.engine_worker

    def stop(self, parent: Any) -> None:
        if self.engine_worker is not None:
            self.engine_worker.stop()
            self.engine_worker = None

    shutdown = stop


app.steps["worker"].add(EngineStep)

_local = threading.local()
#: the engine worker of this process (set by the bootstep), whose identity
#: and heartbeat the ``boss.apply`` task shares
_current: dict[str, EngineWorker] = {}


@app.task(name="boss.apply")
def apply(body: dict[str, Any] | str) -> str:
    """Apply one engine message (the JSON of the wire protocol)."""
    service = getattr(_local, "service", None)
    if service is None:
        worker = _current.get("worker")
        if worker is None:  # not in a `boss worker`: a worker of our own, not started
            config: Config = getattr(app, "boss_config", None) or Config.load()
            worker = _current["worker"] = EngineWorker(config)
        service = _local.service = worker.service(
            Publisher(worker.config), f"task-{threading.get_ident()}"
        )
    return service.handle(body if isinstance(body, str) else json.dumps(body))


def start_worker(config: Config, *, loglevel: str = "INFO", hostname: str | None = None) -> None:
    """Run a Celery worker with the engine bootstep until it is shut down.
    Raises ``BrokerTLSError`` (logged) when TLS to the broker fails."""
    configure(config)
    try:
        check_tls(config, app.conf.broker_url)
    except BrokerTLSError as exc:
        log.error("%s", exc)
        raise
    # the worker's threads (consumers, timers, heartbeat, Celery's loop) hand
    # the GIL over within 0.5 ms (not 5) when one waits on a socket reply
    sys.setswitchinterval(0.0005)
    argv = [
        "worker",
        "--pool=solo",
        "--without-gossip",
        "--without-mingle",
        f"--loglevel={loglevel}",
        f"--hostname={hostname or 'boss@' + socket.gethostname()}",
        "--queues",
        app.conf.task_default_queue,
    ]
    app.worker_main(argv)
