"""A process's own HTTP port for operators: metrics, liveness, readiness.

A consumer worker serves it on ``METRICS_PORT + i``, the consumers' supervisor on
``SUPERVISOR_METRICS_PORT``, every gateway worker on ``GATEWAY_METRICS_PORT`` (all of
them on the one port, ``reuse_port``: whichever answers sums every worker's metrics).

- ``GET /metrics``: Prometheus metrics (``metrics_registry``): this process's, or,
  when ``PROMETHEUS_MULTIPROC_DIR`` is set (a gateway of several workers), the sum
  over every process writing there.
- ``GET /healthz``: liveness. Served on the worker's own event loop, so it answers
  only while the loop runs: a worker stuck in a blocking call fails it.
- ``GET /readyz``: readiness, checked when asked: PostgreSQL answers a query and
  a Kafka broker answers a metadata request. ``503`` with the failing side ``false``
  otherwise (the worker itself keeps retrying; this only tells an operator why it
  is not making progress).

A few lines of asyncio rather than prometheus_client's thread server: the answers
must come from the loop that does the work, and there are only three paths. Imports
orjson and prometheus_client.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

Check = Callable[[], Awaitable[object]]
CHECK_TIMEOUT_S = 2.0


async def _passes(check: Check) -> bool:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await check()
    except Exception:  # any failure of a check is "not ready", never a crash
        return False
    return True


def metrics_registry() -> CollectorRegistry:
    """What ``/metrics`` shows: the process's metrics, or all processes' in multiprocess
    mode (prometheus_client's, for the gateway's uvicorn workers)."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class HealthServer:
    def __init__(self, port: int, checks: dict[str, Check], *, reuse_port: bool = False) -> None:
        self.port = port
        self.checks = checks
        self.reuse_port = reuse_port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve,
            "0.0.0.0",  # noqa: S104
            self.port,
            reuse_port=self.reuse_port,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, path: str) -> tuple[int, bytes, bytes]:
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST.encode(), generate_latest(metrics_registry())
        if path == "/healthz":
            return 200, b"application/json", b'{"alive":true}'
        if path == "/readyz":
            results = {name: await _passes(check) for name, check in self.checks.items()}
            status = 200 if all(results.values()) else 503
            return status, b"application/json", orjson.dumps(results)
        return 404, b"text/plain", b"not found"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):  # a broken probe must not disturb the worker
            async with asyncio.timeout(CHECK_TIMEOUT_S * 3):
                request_line = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # headers are not needed
                parts = request_line.split()
                path = parts[1].decode().split("?")[0] if len(parts) > 1 else "/"
                status, content_type, body = await self._answer(path)
                writer.write(
                    b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                    b"connection: close\r\n\r\n"
                    % (status, b"OK" if status == 200 else b"-", content_type, len(body))
                    + body
                )
                await writer.drain()
        writer.close()
