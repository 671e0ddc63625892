"""A team's blocked identifier values, enforced on every new write before it is published.

``ingest-admin block-identifier`` fills the table ``blocked_identifiers``; every write
passes ``accept``, which asks ``unblocked``: a message naming a blocked value is
refused (``ApiError(400)``, in the surface's format) before anything is published,
except on the Segment surface (``IGNORES_BLOCKED``), where the blocked value is
dropped and the call kept when another identifier remains. The batch endpoint checks
its items itself (``build.identifiers_or_400`` with the team's list) to reject only
the item. A team's list is
read through the read model and cached for ``KEY_CACHE_SECONDS`` (while PostgreSQL
is away, the last list read holds): a change takes effect within that time, and a
team without blocked values costs one dict lookup per request. Only new writes are
checked: messages already published (or published within that time) are applied as
they are.

Imports the services (``web.deps``), the key cache's lifetime, the refusal
(``build.blocked_error``), the read model's list of blocked values, ``runtime.pg``
(the store away) and ``schemas``.
"""

from __future__ import annotations

import time

import msgspec
from starlette.requests import Request

from ingest_gateway.read_model.teams import blocked_identifiers
from ingest_gateway.web import deps
from ingest_gateway.web.auth_cache import KEY_CACHE_SECONDS
from ingest_gateway.write.build import Blocked, blocked_error
from runtime.pg import UNAVAILABLE, is_unavailable
from schemas.messages import Identifiers, WriteMessage

# The APIs whose writes are kept without a blocked identifier when another remains
# (the Segment spec: Segment keeps a blocked value in the payload, not as an id).
IGNORES_BLOCKED = frozenset({"segment_api"})

# Blocked (kind, value) pairs by team, and until when that answer holds.
_BLOCKED: dict[int, tuple[Blocked, float]] = {}
_MAX_CACHED_TEAMS = 10_000


async def team_blocked(request: Request, team_id: int) -> Blocked:
    """The team's blocked identifiers as (kind, value) pairs, normalised; cached for
    ``KEY_CACHE_SECONDS``, and the last list read while PostgreSQL is away."""
    hit = _BLOCKED.get(team_id)
    now = time.monotonic()
    if hit is not None and now <= hit[1]:
        return hit[0]
    try:
        blocked = await blocked_identifiers(deps.db(request), team_id)
    except UNAVAILABLE as exc:
        if hit is None or not is_unavailable(exc):
            raise
        blocked = hit[0]
    if len(_BLOCKED) > _MAX_CACHED_TEAMS:
        _BLOCKED.clear()
    _BLOCKED[team_id] = (blocked, now + KEY_CACHE_SECONDS)
    return blocked


def _unblocked(message: WriteMessage, blocked: Blocked) -> WriteMessage:
    """``message``, or ``ApiError(400)`` when it names a blocked value; for the APIs in
    ``IGNORES_BLOCKED``, without the blocked values if it names someone else too."""
    named = message.identifiers.items()
    kept = [(kind, value) for kind, value in named if (kind, value) not in blocked]
    if len(kept) == len(named):
        return message
    if kept and message.api in IGNORES_BLOCKED:
        return msgspec.structs.replace(message, identifiers=Identifiers(**dict(kept)))
    kind, value = next(pair for pair in named if pair in blocked)
    raise blocked_error(kind, value)


async def unblocked(request: Request, messages: list[WriteMessage]) -> list[WriteMessage]:
    """``messages`` without their team's blocked values (``_unblocked``), or
    ``ApiError(400)`` for the first that names one."""
    blocked = await team_blocked(request, messages[0].team_id)
    return [_unblocked(message, blocked) for message in messages] if blocked else messages
