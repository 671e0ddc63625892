"""``ingest-consumer``: run consumer workers of the group (``--processes N``, default
``CONSUMER_PROCESSES``), each in a child process that is restarted when it exits
(see ``consumers/supervisor.py``).

One job: the command line. The parent imports ``supervisor`` only; a child imports
``worker`` (and with it the clients) when it starts."""

from __future__ import annotations

import argparse
import sys

import prometheus_client

from consumers.exit_codes import STOPPED_FOR_A_PERSON
from consumers.supervisor import ChildSpec, RestartPolicy, Supervisor, watch_supervisor
from runtime import logs
from runtime.settings import get_settings, warn_unknown_settings


def _child_argv(index: int) -> list[str]:
    # Children are new interpreters started with subprocess, not multiprocessing:
    # nothing of the parent's state is inherited (fork after an event loop or
    # threads exist is unsafe, and a child must start as clean after its tenth
    # restart as after its first), the parent needs no event loop, resource
    # tracker or pickling, and each child's command line in `ps` names it. -P
    # keeps the working directory off sys.path, so the child imports the same
    # installed package as the parent wherever it was started.
    return [sys.executable, "-P", "-m", "consumers", "--child", str(index)]


def _run_child(index: int) -> None:
    """One worker: a member of the consumer group, with its own metrics port."""
    # Imported here: the supervising parent never loads the Kafka and PostgreSQL clients.
    import uvloop

    from consumers.worker import run_worker

    settings = get_settings()
    logs.configure(settings.log_format, f"consumer-{index}")
    watch_supervisor()
    port = settings.metrics_port + index if settings.metrics_port else 0
    uvloop.run(run_worker(settings, port))


def _processes(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def main() -> int:
    parser = argparse.ArgumentParser(prog="ingest-consumer", description=__doc__)
    parser.add_argument(
        "--processes", type=_processes, help="worker processes (default: CONSUMER_PROCESSES)"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _run_child(args.child)
        return 0
    settings = get_settings()  # invalid settings fail here, before any child starts
    logs.configure(settings.log_format, "supervisor")
    # Here only: the workers inherit this environment, and restart often.
    warn_unknown_settings()
    processes = args.processes or settings.consumer_processes
    if settings.supervisor_metrics_port:
        # prometheus_client's own server (a thread): the supervisor has no event loop.
        prometheus_client.start_http_server(settings.supervisor_metrics_port)
    # Each process is a member of the consumer group; Kafka spreads the partitions.
    children = [ChildSpec(f"consumer-{i}", _child_argv(i)) for i in range(processes)]
    supervisor = Supervisor(children, RestartPolicy.from_settings(settings), {STOPPED_FOR_A_PERSON})
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
