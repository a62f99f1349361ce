"""``python -m engine.trace [--threads N] [--batch N] [--steplogs N] [--loglevel L]``:
run trace aggregators (and step-log writers) in this process (the engine worker's aggregator child;
``boss aggregator`` is the same for operators). Configuration comes from
``$BOSS_CONFIG`` and the ``BOSS_*`` environment, as for every command."""

from __future__ import annotations

import argparse
import logging

from engine.config import Config
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
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = Config.load()
    store = open_store(config.resolved_redis_url(), prefix=config.key_prefix)
    run_aggregators(
        config, store.client, threads=args.threads, batch=args.batch, steplogs=args.steplogs
    )


if __name__ == "__main__":
    main()
