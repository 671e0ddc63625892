"""``/healthz`` (liveness) and ``/readyz`` (readiness) of a gateway process."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from ingest_gateway.web import deps
from ingest_gateway.web.responses import JSON
from ingest_gateway.web.routing import Surface
from runtime.pg import is_unavailable

surface = Surface("", None, None)


@surface.get("/healthz", authenticated=False, include_in_schema=False)
async def healthz(request: Request) -> Response:
    """Liveness: the process serves requests (restart it when this fails)."""
    return JSON({"alive": True})


@surface.get("/readyz", authenticated=False, include_in_schema=False)
async def readyz(request: Request) -> Response:
    """Readiness: writes can be accepted (the broker answers) and PostgreSQL answers."""
    services = deps.services(request)
    kafka = services.publisher.ready
    try:
        async with asyncio.timeout(2):
            postgres = await services.db.fetchval("SELECT true") is True
    except Exception as exc:
        if not (is_unavailable(exc) or isinstance(exc, TimeoutError)):
            raise
        postgres = False
    ready = kafka and postgres
    return JSON({"kafka": kafka, "postgres": postgres}, status_code=200 if ready else 503)
