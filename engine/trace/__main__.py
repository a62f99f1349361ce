"""``python -m engine.trace [--threads N] [--batch N] [--steplogs N] [--loglevel L]
[--metrics-port P]``: run trace aggregators (and step-log writers) in this process
(the engine worker's aggregator child; ``boss aggregator`` is the same for
operators). Configuration comes from ``$BOSS_CONFIG`` and the ``BOSS_*``
environment, as for every command;
``log_format`` applies. ``--metrics-port``: serve the aggregator's
Prometheus metrics there (``engine.telemetry``; the engine worker passes
its ``metrics_port`` + 1)."""

from __future__ import annotations

import argparse

from engine import telemetry
from engine.config import Config
from engine.logformat import configure_logging
from engine.store import open_store
from engine.trace.aggregator import run_aggregators


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m engine.trace", description=__doc__)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--steplogs", type=int, default=None, help="step-log writers (default: 1 if step_logs)"
    )
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="serve /metrics on this port (0: none)"
    )
    args = parser.parse_args(argv)
    config = Config.load()
    configure_logging(args.loglevel, config.log_format)
    if args.metrics_port:
        telemetry.serve(telemetry.TRACE, args.metrics_port, config.metrics_address)
    store = open_store(config.resolved_redis_url(), prefix=config.key_prefix)
    run_aggregators(
        config, store.client, threads=args.threads, batch=args.batch, steplogs=args.steplogs
    )


if __name__ == "__main__":
    main()
