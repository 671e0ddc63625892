"""Authentication: a team API key in ``X-API-KEY``, ``?apiKey=`` or HTTP Basic (as password)."""

from __future__ import annotations

import base64
import binascii

import asyncpg
from starlette.requests import Request

from ingest_gateway.auth_cache import KeyCache
from ingest_gateway.deps import services
from ingest_gateway.errors import ApiError
from ingest_gateway.read_model.teams import team_of_key
from schemas.keys import hash_api_key


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key") or request.query_params.get("apiKey")
    if key:
        return key.strip()
    authorization = request.headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        _username, _, password = decoded.partition(":")
        return password or None
    return None


async def team_for_key(pool: asyncpg.Pool, cache: KeyCache, key: str) -> int | None:
    digest = hash_api_key(key)
    team_id = cache.get(digest)
    if team_id is not None:
        return team_id
    found = await team_of_key(pool, digest)
    if found is not None:
        cache.put(digest, found)
    return found


async def require_team(request: Request) -> int:
    key = presented_key(request)
    if not key:
        raise ApiError(
            401,
            "Missing API key",
            "Send the team API key in the X-API-KEY header, the apiKey query parameter "
            "or as the password of HTTP Basic authentication.",
        )
    found = services(request)
    team_id = await team_for_key(found.db, found.key_cache, key)
    if team_id is None:
        raise ApiError(401, "Invalid API key", "The API key is unknown or was revoked.")
    return team_id
