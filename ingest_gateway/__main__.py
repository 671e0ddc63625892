"""``ingest-gateway``: serve the gateway with uvicorn (uvloop and httptools)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

import uvicorn

from ingest_gateway.edge.server import RequestDeadlineProtocol
from runtime import logs
from runtime.settings import Settings, get_settings, warn_unknown_settings


def main() -> None:
    settings = get_settings()
    logs.configure(settings.log_format, "gateway")
    warn_unknown_settings()  # once here, not again in each uvicorn worker
    with _metrics_shared_by_workers(settings):
        _serve(settings)


@contextlib.contextmanager
def _metrics_shared_by_workers(settings: Settings) -> Iterator[None]:
    """With several workers and metrics on: prometheus_client's multiprocess mode, in a
    folder of this run's own that the workers (spawned after this) write to and that is
    removed at the end; any worker's ``/metrics`` then sums all of them."""
    if settings.gateway_workers == 1 or not settings.gateway_metrics_port:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="ingest-gateway-metrics-") as folder:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        yield


def _serve(settings: Settings) -> None:
    uvicorn.run(
        "ingest_gateway.app:create_app",
        factory=True,
        host=settings.gateway_host,
        port=settings.gateway_port,
        workers=settings.gateway_workers,
        loop="uvloop",
        # httptools with deadlines on receiving each request (HEADER_TIMEOUT_S,
        # BODY_TIMEOUT_S). A class, not a name: uvicorn pickles it by reference into
        # each worker process, where it reads the settings from the environment.
        http=RequestDeadlineProtocol,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        # uvicorn answers 503 once the open connections, the asking one included,
        # reach its limit (or as many requests are in flight): + 1 so that
        # MAX_CONNECTIONS connections are served.
        limit_concurrency=settings.max_connections + 1,
        access_log=False,  # the gateway's own, ACCESS_LOG, names the request id
        log_config=logs.logging_config(settings.log_format, "gateway"),
        log_level="info",
    )


if __name__ == "__main__":
    main()
