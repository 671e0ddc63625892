"""``ingest-gateway``: serve the gateway with uvicorn (uvloop and httptools)."""

from __future__ import annotations

import logging

import uvicorn

from ingest_gateway.edge.server import RequestDeadlineProtocol
from runtime.settings import get_settings, warn_unknown_settings


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    warn_unknown_settings()  # once here, not again in each uvicorn worker
    settings = get_settings()
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
        access_log=False,
        log_level="info",
    )


if __name__ == "__main__":
    main()
