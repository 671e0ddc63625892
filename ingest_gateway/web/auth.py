"""Authentication: which team a request's key belongs to, and where each surface reads it.

The API key of the 000 to 004 surfaces is in ``X-API-KEY``, ``?apiKey=`` or HTTP
Basic's password (``presented_key``); Segment's SDKs send their write key as Basic's
username (``basic_username``). ``team_of`` turns a key into its team or a 401.

Imports: the services, the key cache, the error layer, the read model's key lookup,
the key digest (``schemas.keys``) and ``runtime.logs``.
"""

from __future__ import annotations

import base64

import asyncpg
from starlette.requests import Request

from ingest_gateway.read_model.teams import team_of_key
from ingest_gateway.web.auth_cache import KeyCache
from ingest_gateway.web.deps import services
from ingest_gateway.web.errors import ApiError
from runtime import logs
from schemas.keys import hash_api_key

_SEND_API_KEY = (
    "Send the team API key in the X-API-KEY header, the apiKey query parameter "
    "or as the password of HTTP Basic authentication."
)


def _basic(request: Request) -> tuple[str, str] | None:
    """HTTP Basic's (username, password), None without Basic credentials; ValueError
    when they are not base64 of UTF-8 text."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not credentials.strip():
        return None
    decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    username, _, password = decoded.partition(":")
    return username, password


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key") or request.query_params.get("apiKey")
    if key:
        return key.strip()
    try:
        basic = _basic(request)
    except ValueError:
        return None
    return (basic[1] or None) if basic else None


def basic_username(request: Request, name: str = "write key") -> str | None:
    """The key as HTTP Basic's username (or its password, when that is empty); None
    without Basic credentials, ``ApiError(401)`` when they are not base64."""
    try:
        basic = _basic(request)
    except ValueError as exc:
        raise ApiError(401, f"Invalid {name}: the Basic credentials are not base64") from exc
    if basic is None:
        return None
    username, password = basic
    return username.strip() or password.strip() or None


async def team_for_key(pool: asyncpg.Pool, cache: KeyCache, key: str) -> int | None:
    digest = hash_api_key(key)
    team_id = cache.get(digest)
    if team_id is not None:
        return team_id
    found = await team_of_key(pool, digest)
    if found is not None:
        cache.put(digest, found)
    return found


async def team_of(request: Request, key: str | None, *, name: str, how: str) -> int:
    """The team of ``key``, else ``ApiError(401)``: "Missing ``name``" (``how`` says how
    to send one) or "Invalid ``name``"."""
    if not key:
        raise ApiError(401, f"Missing {name}", how)
    found = services(request)
    team_id = await team_for_key(found.db, found.key_cache, key)
    if team_id is None:
        raise ApiError(401, f"Invalid {name}", f"The {name} is unknown or was revoked.")
    request.scope[logs.TEAM_KEY] = team_id  # named on the request's log lines
    return team_id


async def require_team(request: Request) -> int:
    """The team of the request's API key (``presented_key``), else 401."""
    return await team_of(request, presented_key(request), name="API key", how=_SEND_API_KEY)
