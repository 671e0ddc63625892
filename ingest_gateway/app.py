"""The FastAPI application: lifespan (Kafka producer, PostgreSQL pool), middleware, errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ingest_gateway.auth import KeyCache
from ingest_gateway.body import BodyLimitMiddleware
from ingest_gateway.errors import (
    ApiError,
    BrokerUnavailable,
    RequestTooLarge,
    error_response,
)
from ingest_gateway.fast_routes import FastWrites
from ingest_gateway.publisher import Publisher
from ingest_gateway.responses import JSON
from ingest_gateway.routes import (
    batch_api,
    customers_api,
    enterprise_events_api,
    event_groups_api,
    store_events_api,
    user_events_api,
)
from runtime.gc import tune_gc
from runtime.pg import UNAVAILABLE, is_unavailable
from runtime.settings import Settings, get_settings

log = logging.getLogger(__name__)


class PostmanPathMiddleware:
    """Tolerates what clients built from the Postman collection send.

    Its URLs end in ``{{debug}}`` (left literally when the variable is unset) and
    sometimes a trailing slash; both are stripped before routing.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            cleaned = _cleaned(path, ("{{debug}}",), "/")
            if cleaned != path:
                # The raw path is cleaned the same way, not rebuilt from the decoded
                # one: it is what says whether the client sent valid UTF-8.
                raw = _cleaned(scope.get("raw_path") or path.encode(), _RAW_DEBUG, b"/")
                scope = dict(scope, path=cleaned, raw_path=raw)
        await self.app(scope, receive, send)


# How ``{{debug}}`` arrives in a raw path: as typed, or percent-encoded either case.
_RAW_DEBUG = (b"{{debug}}", b"%7B%7Bdebug%7D%7D", b"%7b%7bdebug%7d%7d")

AnyStr = TypeVar("AnyStr", str, bytes)


def _cleaned(path: AnyStr, debug_spellings: tuple[AnyStr, ...], slash: AnyStr) -> AnyStr:
    """``path`` without ``{{debug}}`` and without a trailing slash (the root stays)."""
    for debug in debug_spellings:
        path = path.replace(debug, path[:0])
    if len(path) > 1:
        path = path.rstrip(slash) or slash
    return path


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The gateway as served: the API (``build_api``) behind its outer layers.

    Outermost first: fix the path, limit the body, then serve the hot write routes
    without FastAPI's routing, dependency resolution and middleware stack; every
    other request goes through FastAPI.
    """
    settings = settings or get_settings()
    api = build_api(settings)
    # (customers_api and batch_api are the first routers included: nothing before
    # them matches these.)
    fast = [
        (method, route.path, route.endpoint)
        for module in (customers_api, batch_api)
        for route in module.router.routes
        if isinstance(route, APIRoute) and route.endpoint in module.FAST_ENDPOINTS
        for method in sorted(route.methods or ())
    ]
    handlers = {k: v for k, v in api.exception_handlers.items() if isinstance(k, type)}
    served: ASGIApp = FastWrites(api, routes=fast, handlers=handlers)
    served = BodyLimitMiddleware(served, max_bytes=settings.max_body_bytes)
    return PostmanPathMiddleware(served)


def build_api(settings: Settings) -> FastAPI:
    """The FastAPI application: routes, OpenAPI, exception handlers, lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.key_cache = KeyCache()
        app.state.db = await _create_pool(settings)
        app.state.publisher = Publisher(settings)
        await app.state.publisher.start()
        tune_gc()
        try:
            yield
        finally:
            await app.state.publisher.stop()
            # A connection still borrowed by a request that hangs must not hold the
            # shutdown: close within the timeout, then cut what is left.
            try:
                await asyncio.wait_for(app.state.db.close(), settings.db_timeout_s)
            except TimeoutError:
                app.state.db.terminate()

    app = FastAPI(
        title="Customer-event ingestion gateway",
        version="0.1.0",
        description=(
            "Accepts customer and event writes, publishes them to Kafka and answers once "
            "the broker acknowledged them; reads come from the PostgreSQL store."
        ),
        lifespan=lifespan,
        default_response_class=JSON,
    )
    app.include_router(customers_api.router)
    app.include_router(batch_api.router)
    app.include_router(user_events_api.router)
    app.include_router(event_groups_api.router)
    app.include_router(enterprise_events_api.router)
    app.include_router(store_events_api.router)

    _document_unavailable(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        """Liveness: the process serves requests (restart it when this fails)."""
        return JSON({"alive": True})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        """Readiness: writes can be accepted (the broker answers) and PostgreSQL answers."""
        state = request.app.state
        kafka = bool(state.publisher.ready)
        try:
            async with asyncio.timeout(2):
                postgres = await state.db.fetchval("SELECT true") is True
        except Exception as exc:
            if not (is_unavailable(exc) or isinstance(exc, TimeoutError)):
                raise
            postgres = False
        ready = kafka and postgres
        return JSON({"kafka": kafka, "postgres": postgres}, status_code=200 if ready else 503)

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(RequestTooLarge)
    async def on_too_large(request: Request, exc: RequestTooLarge) -> Response:
        limit = settings.max_body_bytes
        return error_response(
            request, ApiError(413, f"The request body is larger than the limit of {limit} bytes")
        )

    @app.exception_handler(BrokerUnavailable)
    async def on_broker_down(request: Request, exc: BrokerUnavailable) -> Response:
        response = error_response(
            request,
            ApiError(
                503,
                "Service unavailable: the write was not accepted, please retry",
                "The message broker did not acknowledge the write in time.",
            ),
        )
        response.headers["Retry-After"] = "1"
        return response

    async def on_store_down(request: Request, exc: Exception) -> Response:
        if not is_unavailable(exc):
            raise exc
        log.warning("PostgreSQL unavailable: %s: %s", type(exc).__name__, exc)
        response = error_response(
            request,
            ApiError(
                503,
                "Service unavailable: please retry",
                "The store did not answer; nothing was accepted.",
            ),
        )
        response.headers["Retry-After"] = "1"
        return response

    for unavailable in UNAVAILABLE:
        app.add_exception_handler(unavailable, on_store_down)

    @app.exception_handler(ClientDisconnect)
    async def on_client_gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client left mid-body (or a read deadline closed it): nothing was
        # accepted, and nobody is there to read an answer. Not an error of ours.
        log.info("client disconnected before its request was read: %s", request.url.path)
        return Response(status_code=400)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        message = f"Invalid parameter {field}: {first.get('msg')}" if field else "Invalid request"
        return error_response(request, ApiError(400, message, field=field))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "Not found", 405: "Method not allowed"}
        message = messages.get(exc.status_code, str(exc.detail))
        response = error_response(request, ApiError(exc.status_code, message))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    return app


def _document_unavailable(app: FastAPI) -> None:
    """Every operation may answer 503 (Kafka or PostgreSQL away): say so in the OpenAPI."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.setdefault("responses", {}).setdefault(
                        "503",
                        {
                            "description": "Kafka or PostgreSQL unavailable: nothing was"
                            " accepted; retry after the Retry-After header's seconds",
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        },
                    )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


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
