"""CORS for a surface that browsers send to: preflights, ``Access-Control-Allow-Origin``
on the answers, and the team's allowed-origins rule.

A surface opts in route by route (only the Segment spec does: the other API
documents say nothing of browsers):

- ``with_cors(endpoint, name)`` wraps an endpoint: its answers, errors included (in
  the surface's format, ``errors.render_error``), carry the request's ``Origin`` as
  allowed, except a 403 (the origin refused). ``open_to_all``: ``*`` instead.
- ``check_origin(request, team_id)``: 403 unless the request has no ``Origin`` (not
  a browser) or the team allows it (``teams.allowed_origins``; NULL allows any). A
  team's origins are cached as long as a key lookup is (``KEY_CACHE_SECONDS``).
- ``answer_preflights(surface)``: an ``OPTIONS`` route for every path of the
  surface, answering the preflight with the path's methods.

Imports: the routing types, the error layer, the services and the read model's teams.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from ingest_gateway import deps
from ingest_gateway.auth_cache import KEY_CACHE_SECONDS
from ingest_gateway.errors import ApiError, render_error
from ingest_gateway.read_model.teams import allowed_origins
from ingest_gateway.routing import Endpoint, Surface

# What a preflight allows a page to send.
ALLOWED_HEADERS = "Content-Type, Authorization, Content-Encoding"
MAX_AGE_S = 86400

# Allowed origins by team (None: any), and until when that answer holds.
_ORIGINS: dict[int, tuple[list[str] | None, float]] = {}
_MAX_CACHED_TEAMS = 10_000


def with_cors(serve: Endpoint, name: str, *, open_to_all: bool = False) -> Endpoint:
    """``serve``, its answers and errors with the CORS headers; ``name``: the endpoint's
    (OpenAPI's operationId)."""

    async def served(request: Request, **path: str) -> Response:
        try:
            response = await serve(request, **path)
        except Exception as exc:
            rendered = render_error(request, exc)
            if rendered is None:
                raise
            response = rendered
        origin = request.headers.get("origin")
        if open_to_all:
            response.headers["Access-Control-Allow-Origin"] = "*"
        elif origin is not None and response.status_code != 403:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

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
        raise ApiError(403, f"The origin {origin} is not allowed to send with this write key")


def _preflight(methods: str) -> Endpoint:
    async def preflight(request: Request, **_path: str) -> Response:
        headers = {
            "Access-Control-Allow-Origin": request.headers.get("origin") or "*",
            "Access-Control-Allow-Methods": methods,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": str(MAX_AGE_S),
            "Vary": "Origin",
        }
        return Response(status_code=204, headers=headers)

    return preflight


def answer_preflights(surface: Surface) -> None:
    """An ``OPTIONS`` route (unauthenticated, undocumented) for each path of ``surface``
    so far: declare it after the surface's other routes."""
    paths = sorted({route.path for route in surface.routes})
    for path in paths:
        methods = ",".join(sorted({r.method for r in surface.routes if r.path == path}))
        surface.route(
            "OPTIONS",
            path.removeprefix(surface.prefix),
            authenticated=False,
            include_in_schema=False,
        )(_preflight(methods))
