"""CORS for a surface that browsers send to: preflights, ``Access-Control-Allow-Origin``
on every answer, and the team's allowed-origins rule.

A surface opts in with ``answer_preflights(surface)`` (only the Segment spec does: the
other API documents say nothing of browsers); its prefix is then a CORS prefix.

- ``CorsHeaders``, an ASGI middleware outside the body limit: every answer under a
  CORS prefix to a request with an ``Origin`` carries that origin in
  ``Access-Control-Allow-Origin`` (and ``Vary: Origin``), whatever produced it: an
  endpoint, an error rendered by the route table (400, 401, 404, 405, 415, 503), the
  413 the body limit answers before the app is called, a 500 (answered here when the
  app raised before answering). Nothing between the server and the route can answer
  without it. Not covered: what the HTTP server answers itself, outside the app
  (a malformed request, the 408 of a deadline, the 503 beyond ``MAX_CONNECTIONS``).
- ``check_origin(request, team_id)``: 403 unless the request has no ``Origin`` (not
  a browser) or the team allows it (``teams.allowed_origins``; NULL allows any). That
  403 is the one answer without ``Access-Control-Allow-Origin``: the page may not read
  it (the request marks its scope, ``REFUSED_ORIGIN``; the status alone does not say
  why). A team's origins are cached as long as a key lookup is (``KEY_CACHE_SECONDS``).
- ``Origin: null`` (sandboxed iframes, ``file://`` pages, some redirects) is never
  reflected: ``null`` is not one origin but any opaque one, so naming it as allowed
  would allow them all under a name that looks like a choice. It gets ``*`` instead,
  which says what is true: anyone may read these answers (they hold nothing but the
  outcome, and a write key in a page is public), and none allows credentials (a
  browser shows a page no answer to a credentialed request under ``*``). A team that
  lists its origins refuses it (403).
- ``with_cors(endpoint, name)`` names a route's endpoint (OpenAPI's operationId);
  ``open_to_all``: its answers and errors carry ``*`` instead of the origin.
- ``answer_preflights(surface)``: an ``OPTIONS`` route for every path of the
  surface, answering the preflight with the path's methods (the origin, or ``*``).

Cost, measured in-process (200,000 calls, best of 5): +0.5 us a request outside the
CORS prefixes (one more call and a ``startswith``); +1.7 us under them with an
``Origin`` (a pass over the headers, a wrapped ``send``), what the two header
assignments of the former per-endpoint wrapper cost (1.8 us).

Imports: the routing types, the error layer and its JSON answer, the services, the key
cache's lifetime and the read model's teams.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest_gateway.read_model.teams import allowed_origins
from ingest_gateway.web import deps
from ingest_gateway.web.auth_cache import KEY_CACHE_SECONDS
from ingest_gateway.web.errors import ApiError, formatter_for, render_error
from ingest_gateway.web.responses import JSON
from ingest_gateway.web.routing import Endpoint, Surface

# What a preflight allows a page to send.
ALLOWED_HEADERS = "Content-Type, Authorization, Content-Encoding"
MAX_AGE_S = 86400
# Set in a request's scope when its origin is refused: its answer allows no origin.
REFUSED_ORIGIN = "ingest.cors_refused"

# The path prefixes of the surfaces that answer preflights.
_PREFIXES: list[str] = []

# Allowed origins by team (None: any), and until when that answer holds.
_ORIGINS: dict[int, tuple[list[str] | None, float]] = {}
_MAX_CACHED_TEAMS = 10_000

_ALLOW_ORIGIN = b"access-control-allow-origin"
_VARY_ORIGIN = (b"vary", b"Origin")


def cors_prefixes() -> tuple[str, ...]:
    """The prefixes of the surfaces that answer preflights (so far)."""
    return tuple(_PREFIXES)


class CorsHeaders:
    """Adds ``Access-Control-Allow-Origin`` to every answer under ``prefixes`` to a
    request with an ``Origin``, unless the answer has one or the origin was refused."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...]) -> None:
        self.app = app
        # "/v1" covers "/v1" and "/v1/...", not "/v1beta".
        self.prefixes = prefixes
        self.under = tuple(prefix + "/" for prefix in prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (
            scope["path"].startswith(self.under) or scope["path"] in self.prefixes
        ):
            await self.app(scope, receive, send)
            return
        origin = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
                break
        if origin is None:  # not a browser's request
            await self.app(scope, receive, send)
            return
        allow = b"*" if origin.lower() == b"null" else origin  # never "null"
        started = False

        async def send_allowing(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = message.get("headers", [])
                if not scope.get(REFUSED_ORIGIN) and all(n != _ALLOW_ORIGIN for n, _ in headers):
                    message = {
                        **message,
                        "headers": [*headers, (_ALLOW_ORIGIN, allow), _VARY_ORIGIN],
                    }
            await send(message)

        try:
            await self.app(scope, receive, send_allowing)
        except Exception:
            # A bug: answered here so that the page sees the 500, then raised to the
            # server (which logs it and closes the connection).
            if not started:
                body = formatter_for(scope["path"])(500, "Internal server error", None, None)
                await JSON(body, status_code=500)(scope, receive, send_allowing)
            raise


def with_cors(serve: Endpoint, name: str, *, open_to_all: bool = False) -> Endpoint:
    """``serve`` named ``name`` (OpenAPI's operationId); ``open_to_all``: its answers and
    errors with ``Access-Control-Allow-Origin: *``, whatever the origin."""

    async def named(request: Request, **path: str) -> Response:
        return await serve(request, **path)

    async def open_to_any(request: Request, **path: str) -> Response:
        try:
            response = await serve(request, **path)
        except Exception as exc:
            rendered = render_error(request, exc)
            if rendered is None:
                raise
            response = rendered
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    served = open_to_any if open_to_all else named
    served.__name__ = served.__qualname__ = name
    return served


async def check_origin(request: Request, team_id: int) -> None:
    """``ApiError(403)`` when the request comes from an origin the team does not allow."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser: nothing to check
    hit = _ORIGINS.get(team_id)
    if hit is None or hit[1] < time.monotonic():
        if len(_ORIGINS) > _MAX_CACHED_TEAMS:
            _ORIGINS.clear()
        allowed = await allowed_origins(deps.db(request), team_id)
        hit = (allowed, time.monotonic() + KEY_CACHE_SECONDS)
        _ORIGINS[team_id] = hit
    if hit[0] is not None and origin not in hit[0]:
        request.scope[REFUSED_ORIGIN] = True
        raise ApiError(403, f"The origin {origin} is not allowed to send with this write key")


def _preflight(methods: str) -> Endpoint:
    async def preflight(request: Request, **_path: str) -> Response:
        origin = request.headers.get("origin")
        headers = {
            "Access-Control-Allow-Origin": (
                "*" if origin is None or origin.lower() == "null" else origin
            ),
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": str(MAX_AGE_S),
            "Vary": "Origin",
        }
        return Response(status_code=204, headers=headers)

    return preflight


def answer_preflights(surface: Surface) -> None:
    """An ``OPTIONS`` route (unauthenticated, undocumented) for each path of ``surface``
    so far (declare it after the surface's other routes), and ``surface``'s prefix a
    CORS prefix (``CorsHeaders``)."""
    if surface.prefix not in _PREFIXES:
        _PREFIXES.append(surface.prefix)
    paths = sorted({route.path for route in surface.routes})
    for path in paths:
        methods = ",".join(sorted({r.method for r in surface.routes if r.path == path}))
        surface.route(
            "OPTIONS",
            path.removeprefix(surface.prefix),
            authenticated=False,
            include_in_schema=False,
        )(_preflight(methods))
