"""``ingest-consumer``: run consumer workers of the group (``--processes N``, default 1)."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import signal

import uvloop
from prometheus_client import start_http_server

from consumers.worker import run_worker
from schemas.config import get_settings


def _run_one(metrics_port: int) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
    )
    if metrics_port:
        start_http_server(metrics_port)
    uvloop.run(run_worker(get_settings()))


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="ingest-consumer", description=__doc__)
    parser.add_argument("--processes", type=int, default=settings.consumer_processes)
    args = parser.parse_args()
    if args.processes == 1:
        _run_one(settings.metrics_port)
        return
    # Each process is a member of the consumer group; Kafka spreads the partitions.
    workers = [
        multiprocessing.Process(
            target=_run_one,
            args=(settings.metrics_port + i if settings.metrics_port else 0,),
            name=f"consumer-{i}",
        )
        for i in range(args.processes)
    ]
    for w in workers:
        w.start()

    def forward(signum: int, _frame: object) -> None:
        for w in workers:
            if w.pid:
                w.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for w in workers:
        w.join()


if __name__ == "__main__":
    main()
