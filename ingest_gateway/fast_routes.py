"""The hottest write routes served without FastAPI's routing and dependency resolution.

Under single-write load about a third of the gateway's CPU went to FastAPI's
machinery around the endpoint (route matching through the included routers,
``solve_dependencies``, the exception and exit-stack layers), not to the write.
``FastWrites`` sits inside the gateway's own middlewares (path clean-up, body limit)
and, for a listed method and path, calls the route's own endpoint function with
the path parameters and the team of the API key, exactly as FastAPI would, and
renders errors with the app's own exception handlers. The FastAPI routes stay
registered, so OpenAPI is unchanged, and everything else goes through FastAPI.

It wraps the FastAPI application from outside (``app.create_app``): FastAPI's own
middleware stack (error pages, telemetry hooks, its body limit) costs another 8% of
a single write's CPU, and the hot routes need none of it.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ingest_gateway.auth import require_team

Endpoint = Callable[..., Awaitable[Response]]
ErrorHandler = Callable[[Request, Any], Awaitable[Response] | Response]

_PARAM = re.compile(r"{(\w+)}")


def path_pattern(path: str) -> re.Pattern[str]:
    """The regular expression of a route path, as Starlette's ``str`` convertor has it."""
    parts = _PARAM.split(path)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(regex)


class FastWrites:
    """Serves ``(method, path) -> endpoint(**path_params, team_id, request)`` directly."""

    def __init__(
        self,
        app: FastAPI,
        routes: list[tuple[str, str, Endpoint]],
        handlers: dict[Any, ErrorHandler],
    ) -> None:
        self.app = app
        self.routes = [(method, path_pattern(path), endpoint) for method, path, endpoint in routes]
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            for route_method, pattern, endpoint in self.routes:
                if method == route_method and (match := pattern.fullmatch(path)):
                    await self._serve(endpoint, match.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self,
        endpoint: Endpoint,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        # As Starlette does on the way in: endpoints reach app.state through the request.
        scope["app"] = self.app
        request = Request(scope, receive, send)
        try:
            # As FastAPI: the dependency (the API key) first, then the endpoint.
            team_id = await require_team(request)
            response = await endpoint(**params, team_id=team_id, request=request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> ErrorHandler | None:
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None
