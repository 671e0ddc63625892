"""Building canonical writes and accepting them: publish, then optionally wait.

The one path every surface's write takes: ``new_write`` (the canonical message,
checked against what the consumers accept), ``accept`` (2xx only after Kafka
acknowledged it; with ``Prefer: return=representation`` or ``?wait=true``, then
also after the consumers applied it, bounded by ``WAIT_TIMEOUT_S``), and the
answer (``Accepted.respond``: 202 with the message id when the wait ran out).

**Blocked identifiers.** ``accept`` is also where a team's blocked identifier values
(``ingest-admin block-identifier``, table ``blocked_identifiers``) are enforced, as
every write passes here: a message naming one is refused (``ApiError(400)``, in the
surface's format) before anything is published, except on the Segment surface
(``IGNORES_BLOCKED``), where the blocked value is dropped and the call kept when
another identifier remains. The batch endpoint checks its items itself
(``check_not_blocked``) to reject only the item. A team's list is read through the
read model and cached for ``KEY_CACHE_SECONDS`` (while PostgreSQL is away, the last
list read holds): a change takes effect within that time, and a team without
blocked values costs one dict lookup per request. Only new writes are checked:
messages already published (or published within that time) are applied as they are.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from starlette.requests import Request

from ingest_gateway.read_model.outcomes import outcomes
from ingest_gateway.read_model.teams import blocked_identifiers
from ingest_gateway.web import deps
from ingest_gateway.web.auth_cache import KEY_CACHE_SECONDS
from ingest_gateway.web.errors import ApiError
from ingest_gateway.web.responses import JSON
from ingest_gateway.write.validation import check_message, check_path
from runtime.pg import UNAVAILABLE, is_unavailable
from schemas import messages
from schemas.identity import InvalidIdentifier, normalised
from schemas.messages import (
    EventData,
    Identifiers,
    Operation,
    WriteMessage,
)
from schemas.outcomes import Outcome


def end_user_agent(request: Request, event_body: Any = None) -> str | None:
    """The user agent of the person behind the write, for the bot rule.

    Server-side integrations post with HTTP libraries (curl, python-requests, ...)
    that crawler lists flag as bots, so the request's own User-Agent counts only
    when it is a browser's (``Mozilla/...``); integrations forward the visitor's
    agent in the event body as ``user_agent`` or ``userAgent``.
    """
    declared = declared_user_agent(event_body)
    if declared is not None:
        return declared
    header = request.headers.get("user-agent", "")
    return header if header.startswith("Mozilla/") else None


def declared_user_agent(event_body: Any) -> str | None:
    """The visitor's agent an integration forwards in ``event_body`` (``user_agent`` or
    ``userAgent``), or None: ``end_user_agent`` without the request's own."""
    if isinstance(event_body, dict):
        for field in ("user_agent", "userAgent"):
            declared = event_body.get(field)
            if isinstance(declared, str) and declared:
                return declared
    return None


def identifiers_or_400(identifiers: Identifiers) -> Identifiers:
    checked = normalised(identifiers)  # cached: customers come back
    if isinstance(checked, InvalidIdentifier):
        field, reason = checked.field, checked.reason
        raise ApiError(400, f"Invalid {field}: {reason}", reason, field=field)
    if not checked.items():
        raise ApiError(400, "Missing customer identifier", "Name the customer by email or id.")
    return checked


def new_write(
    request: Request,
    team_id: int,
    op: Operation,
    identifiers: Identifiers,
    *,
    attributes: dict[str, Any] | None = None,
    event: EventData | None = None,
    occurred_at: datetime | None = None,
    create_if_missing: bool = True,
    api: str,
) -> WriteMessage:
    """The canonical write, or ``ApiError(400)`` when a consumer would refuse it."""
    check_path(request.scope)  # path parameters become identifiers and event names
    message = messages.new_write(
        team_id,
        op,
        identifiers,
        occurred_at=occurred_at,
        attributes=attributes or {},
        event=event,
        create_if_missing=create_if_missing,
        user_agent=end_user_agent(request, event.body if event else None),
        api=api,
    )
    return check_message(message)


@dataclass(frozen=True)
class Accepted:
    message_ids: list[str]
    # Outcome per message id when the client asked to wait and the consumers finished.
    outcomes: dict[str, Outcome] | None
    waited: bool

    @property
    def timed_out(self) -> bool:
        return self.waited and self.outcomes is None

    @property
    def headers(self) -> dict[str, str]:
        """``X-Message-Id``: the accepted writes' ids (for at most 20 of them)."""
        ids = self.message_ids
        return {"X-Message-Id": ",".join(ids)} if ids and len(ids) <= 20 else {}

    def outcome(self, message_id: str) -> str:
        """What the consumers made of a write the client waited for ("" if unknown)."""
        return (self.outcomes or {}).get(message_id, "")

    def respond(self, body: Any, status_code: int = 200) -> JSON:
        """The answer to an accepted write: ``202`` instead when the wait ran out."""
        status = 202 if self.timed_out else status_code
        return JSON(body, status_code=status, headers=self.headers)


async def accept(request: Request, messages: list[WriteMessage]) -> Accepted:
    """Publish (2xx only after Kafka acknowledged), then wait if the client asked to;
    ``ApiError(400)`` when a message names a value its team blocked."""
    services = deps.services(request)
    if messages:
        blocked = await team_blocked(request, messages[0].team_id)
        if blocked:
            messages = [_unblocked(message, blocked) for message in messages]
        await services.publisher.publish(messages)
    ids = [m.id for m in messages]
    if not wants_wait(request) or not ids:
        return Accepted(ids, None, waited=False)
    found = await wait_for_outcomes(services.db, ids, services.settings.wait_timeout_s)
    return Accepted(ids, found, waited=True)


# -- the team's blocked identifier values ----------------------------------------

Blocked = frozenset[tuple[str, str]]

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


def _blocked_error(kind: str, value: str) -> ApiError:
    return ApiError(
        400,
        f"Invalid {kind}: {value!r} is blocked for this team",
        "The team's administrators blocked this value: it names no customer.",
        field=kind,
    )


def check_not_blocked(identifiers: Identifiers, blocked: Blocked) -> None:
    """``ApiError(400)`` when one of ``identifiers`` is in ``blocked`` (``team_blocked``)."""
    if blocked:
        for kind, value in identifiers.items():
            if (kind, value) in blocked:
                raise _blocked_error(kind, value)


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
    raise _blocked_error(kind, value)


# -- the optional wait for the consumers ---------------------------------------

_POLL_INTERVAL_S = 0.02


def wants_wait(request: Request) -> bool:
    prefer = request.headers.get("prefer")
    if prefer and "return=representation" in prefer.lower():
        return True
    # Parsing the query string costs more than the rest of this check: most writes
    # have none, or no ``wait`` in it.
    if b"wait" not in request.scope.get("query_string", b""):
        return False
    return request.query_params.get("wait", "").lower() in {"1", "true", "yes"}


async def wait_for_outcomes(
    db: asyncpg.Pool, message_ids: list[str], timeout_s: float
) -> dict[str, Outcome] | None:
    """Outcome per message once all are processed, or None when the wait ran out."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await outcomes(db, message_ids)
        if len(found) == len(set(message_ids)):
            return found
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(_POLL_INTERVAL_S)
