"""The gateway as served: its surfaces in one route table, behind the edge's layers.

``create_app`` (uvicorn's factory) stacks, outermost first: the Postman path
clean-up, the CORS headers of the surfaces browsers send to (outside the body limit,
so that its 413 has them too), the streamed body limit, then ``Gateway``, which
starts and stops the process's services (the ASGI lifespan) and hands every request
to the route table.

A new API dialect is one surface module added to ``SURFACES``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest_gateway import metrics
from ingest_gateway.edge.body import BodyLimitMiddleware
from ingest_gateway.edge.postman_paths import PostmanPathMiddleware
from ingest_gateway.metrics import RequestMetrics
from ingest_gateway.surfaces import (
    batch_api,
    customers_api,
    enterprise_events_api,
    event_groups_api,
    segment_api,
    store_events_api,
    user_events_api,
)
from ingest_gateway.web import health, openapi
from ingest_gateway.web.access_log import AccessLog
from ingest_gateway.web.auth_cache import KeyCache
from ingest_gateway.web.cors import CorsHeaders, cors_prefixes
from ingest_gateway.web.deps import SCOPE_KEY, Services
from ingest_gateway.web.errors import render_error
from ingest_gateway.web.routing import RequestObserver, Route, Routes, Surface
from ingest_gateway.write.controls import TeamControls
from ingest_gateway.write.lanes import Lanes
from ingest_gateway.write.publisher import Publisher
from ingest_gateway.write.quotas import Quotas
from ingest_gateway.write.tracking import TrackingPlans
from runtime.gc import tune_gc
from runtime.health_server import HealthServer
from runtime.pg import is_unavailable
from runtime.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Each surface with the name its requests are counted under (the metrics' label).
SURFACES: dict[str, Surface] = {
    "000": customers_api.surface,
    "batch": batch_api.surface,
    "001": user_events_api.surface,
    "002": event_groups_api.surface,
    "003": enterprise_events_api.surface,
    "004": store_events_api.surface,
    "segment": segment_api.surface,
    "health": health.surface,
}


def named_routes() -> dict[str, list[Route]]:
    """Every route the gateway serves by the name of its surface: the surfaces', then
    the OpenAPI pages (``openapi``)."""
    named = {name: surface.routes for name, surface in SURFACES.items()}
    table = [route for routes in named.values() for route in routes]
    return named | {"openapi": openapi.surface(table).routes}


def create_app(settings: Settings | None = None) -> ASGIApp:
    settings = settings or get_settings()
    named = named_routes()
    table = [route for routes in named.values() for route in routes]
    observer = None
    observers: list[RequestObserver] = []
    if settings.gateway_metrics_port:
        observer = RequestMetrics(named.items())
        metrics.enable(observer)
        observers.append(observer)
    if settings.access_log:
        observers.append(AccessLog())
    served: ASGIApp = Gateway(settings, Routes(table, render_error, observers), observer)
    served = BodyLimitMiddleware(served, max_bytes=settings.max_body_bytes)
    served = CorsHeaders(served, cors_prefixes())
    return PostmanPathMiddleware(served)


class Gateway:
    """Starts the services at the lifespan's start, stops them at its end; serves requests."""

    def __init__(self, settings: Settings, routes: Routes, observer: RequestMetrics | None) -> None:
        self.settings = settings
        self.routes = routes
        self.observer = observer
        self.services: Services | None = None
        # The operator port and the sampling of gauges, when metrics are on.
        self._metrics: MetricsPort | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http" or self.services is None:
            return  # no websockets; no request is served before the start-up
        scope[SCOPE_KEY] = self.services
        await self.routes(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.services = await _start(self.settings)
                    if self.observer is not None:
                        self._metrics = MetricsPort(self.services, self.observer)
                        await self._metrics.start()
                except Exception as exc:
                    log.exception("the gateway could not start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._metrics is not None:
                    await self._metrics.stop()
                if self.services is not None:
                    await _stop(self.services)
                await send({"type": "lifespan.shutdown.complete"})
                return


class MetricsPort:
    """``GATEWAY_METRICS_PORT``: the metrics (every worker listens; any answers for all)
    and the gauges sampled each second."""

    def __init__(self, services: Services, observer: RequestMetrics) -> None:
        settings = services.settings

        async def postgres() -> bool:
            return await services.db.fetchval("SELECT true") is True

        self._sampling = metrics.Sampler(observer, lambda: services.publisher.ready, postgres)
        self._server = HealthServer(settings.gateway_metrics_port, {}, reuse_port=True)

    async def start(self) -> None:
        await self._server.start()
        self._sampling.start()

    async def stop(self) -> None:
        await self._sampling.stop()
        await self._server.stop()
        metrics.forget_process()


async def _start(settings: Settings) -> Services:
    db = await _create_pool(settings)
    publisher = Publisher(settings)
    await publisher.start()
    quotas = Quotas(settings, db)
    quotas.start()
    controls = TeamControls(settings, db)
    controls.start()
    plans = TrackingPlans(settings, db)
    plans.start()
    tune_gc()
    return Services(
        settings=settings,
        db=db,
        publisher=publisher,
        key_cache=KeyCache(),
        quotas=quotas,
        controls=controls,
        lanes=Lanes(settings),
        plans=plans,
    )


async def _stop(services: Services) -> None:
    await services.controls.stop()
    await services.quotas.stop()
    await services.plans.stop()
    await services.publisher.stop()
    # A connection still borrowed by a request that hangs must not hold the shutdown:
    # close within the timeout, then cut what is left.
    try:
        await asyncio.wait_for(services.db.close(), services.settings.db_timeout_s)
    except TimeoutError:
        services.db.terminate()


async def _create_pool(settings: Settings) -> asyncpg.Pool:
    """The gateway's pool; it starts while PostgreSQL is down (and answers 503 until it is up)."""
    options: dict[str, Any] = {
        "max_size": settings.db_pool_max,
        # A PostgreSQL that does not answer becomes a 503, not a request held forever.
        "timeout": settings.db_timeout_s,
        "command_timeout": settings.db_timeout_s,
    }
    try:
        return await asyncpg.create_pool(
            settings.database_url, min_size=settings.db_pool_min, **options
        )
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.warning("PostgreSQL not reachable at start (%s); connecting on demand", exc)
        return await asyncpg.create_pool(settings.database_url, min_size=0, **options)
