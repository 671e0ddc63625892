"""``ingest-consumer``: run consumer workers of the group (``--processes N``, default
``CONSUMER_PROCESSES``) and of the overflow lane's group (``--overflow-processes M``,
default ``CONSUMER_OVERFLOW_PROCESSES``), each in a child process that is restarted
when it exits (see ``consumers/supervisor.py``).

One job: the command line. The parent imports ``supervisor``, ``lanes``,
``exit_codes``, prometheus_client and ``runtime``'s settings and logs only; a child
imports ``worker`` (and with it the clients) when it starts."""

from __future__ import annotations

import argparse
import os
import sys

import prometheus_client

from consumers.exit_codes import STOPPED_FOR_A_PERSON
from consumers.lanes import LANES, Lane
from consumers.supervisor import ChildSpec, RestartPolicy, Supervisor, watch_supervisor
from runtime import logs
from runtime.settings import get_settings, warn_unknown_settings


def _child_argv(index: int, lane: Lane) -> list[str]:
    # Children are new interpreters started with subprocess, not multiprocessing:
    # nothing of the parent's state is inherited (fork after an event loop or
    # threads exist is unsafe, and a child must start as clean after its tenth
    # restart as after its first), the parent needs no event loop, resource
    # tracker or pickling, and each child's command line in `ps` names it. -P
    # keeps the working directory off sys.path, so the child imports the same
    # installed package as the parent wherever it was started.
    return [sys.executable, "-P", "-m", "consumers", "--child", str(index), "--lane", lane]


def _run_child(index: int, lane: Lane) -> None:
    """One worker: a member of its lane's consumer group, with its own metrics port."""
    # Imported here: the supervising parent never loads the Kafka and PostgreSQL clients.
    import uvloop

    from consumers.worker import run_worker

    settings = get_settings()
    logs.configure(settings.log_format, _name(index, lane))
    watch_supervisor()
    if lane == "overflow":
        # On a busy host the main lane's workers get the CPU first: the overflow lane
        # is where the floods are.
        os.nice(settings.consumer_overflow_nice)
    port = settings.metrics_port + index if settings.metrics_port else 0
    uvloop.run(run_worker(settings, lane, port))


def _name(index: int, lane: Lane) -> str:
    return f"consumer-{index}" if lane == "main" else f"consumer-{index}-overflow"


def _processes(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return n


def main() -> int:
    parser = argparse.ArgumentParser(prog="ingest-consumer", description=__doc__)
    parser.add_argument(
        "--processes",
        type=_processes,
        help="worker processes of the main lane (default: CONSUMER_PROCESSES)",
    )
    parser.add_argument(
        "--overflow-processes",
        type=_processes,
        help="worker processes of the overflow lane (default: CONSUMER_OVERFLOW_PROCESSES)",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lane", choices=LANES, default="main", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _run_child(args.child, args.lane)
        return 0
    settings = get_settings()  # invalid settings fail here, before any child starts
    logs.configure(settings.log_format, "supervisor")
    # Here only: the workers inherit this environment, and restart often.
    warn_unknown_settings()
    processes = settings.consumer_processes if args.processes is None else args.processes
    overflow = args.overflow_processes
    if overflow is None:
        overflow = settings.consumer_overflow_processes
    if processes + overflow == 0:
        parser.error("no worker to run: --processes and --overflow-processes are both 0")
    if settings.supervisor_metrics_port:
        # prometheus_client's own server (a thread): the supervisor has no event loop.
        prometheus_client.start_http_server(settings.supervisor_metrics_port)
    # Each process is a member of its lane's consumer group; Kafka spreads the partitions.
    main_lane: list[Lane] = ["main"]
    overflow_lane: list[Lane] = ["overflow"]
    lanes = main_lane * processes + overflow_lane * overflow
    children = [ChildSpec(_name(i, lane), _child_argv(i, lane)) for i, lane in enumerate(lanes)]
    supervisor = Supervisor(children, RestartPolicy.from_settings(settings), {STOPPED_FOR_A_PERSON})
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
