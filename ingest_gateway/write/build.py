"""The one builder of a canonical write: every surface's ``WriteMessage`` comes from here.

A surface reads its request, names the customer and hands ``new_write`` everything
at once: what the request shares (``Received``: when it arrived, its browser
User-Agent, the API), the team, the operation, the identifiers, the time, the
attributes, the event or group, and the client's message id if it named one.
``new_write`` makes the message (its id: the client's, else a new UUIDv7) and
checks it against the rules the consumers apply (``validation.check_message``); a
broken rule is ``ApiError(400)`` naming the surface's own field (``names``).

It is cheap enough for the batch and Segment loops (thousands of messages a
request): one call, the message built directly, nothing copied.

Also here: the identifiers a surface names, normalised and none of them junk or
blocked by the team (``identifiers_or_400``), and the end user's agent
(``browser_agent``, ``declared_user_agent``).

Imports ``write.validation``, the error layer (``ApiError``) and ``schemas``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec
from starlette.requests import Request

from ingest_gateway.web.errors import ApiError
from ingest_gateway.write.validation import check_message, check_path
from schemas import messages
from schemas.identity import InvalidIdentifier, normalised
from schemas.messages import EventData, GroupData, Identifiers, Operation, WriteMessage

_NO_ATTRIBUTES: dict[str, Any] = {}


class Received(msgspec.Struct, frozen=True):
    """What every write of one request shares: when the gateway received it, the
    request's own User-Agent when it counts as the end user's (``browser_agent``),
    and the API it came through (recorded on each message). (A Struct: one a request,
    made in C.)"""

    at: datetime
    agent: str | None
    api: str


def received(request: Request, api: str) -> Received:
    """The request as ``new_write`` needs it, its path checked once (path parameters
    become identifiers and event names: ``validation.check_path``)."""
    made = Received(messages.utcnow(), browser_agent(request), api)
    check_path(request.scope)
    return made


def new_write(
    received: Received,
    team_id: int,
    op: Operation,
    identifiers: Identifiers,
    occurred_at: datetime | None = None,
    *,
    attributes: dict[str, Any] | None = None,
    event: EventData | None = None,
    group: GroupData | None = None,
    message_id: str | None = None,
    user_agent: str | None = None,
    create_if_missing: bool = True,
    names: Mapping[str, str] | None = None,
    identifiers_normalised: bool = False,
    fields_checked: bool = False,
) -> WriteMessage:
    """The canonical write, or ``ApiError(400)`` when a consumer would refuse it.

    ``occurred_at`` defaults to the receive time; ``message_id`` to a new one;
    ``user_agent`` to one the event body declares, else the request's
    (``Received.agent``). ``names`` maps canonical fields to the surface's own in a
    refusal. ``identifiers_normalised``: the identifiers come from
    ``schemas.identity``'s normalisation in the same breath (``identifiers_or_400``,
    or per field), so their rule is not checked twice. ``fields_checked``: the
    surface read every field the consumers' rules cover by those rules (times parsed
    by ``schemas.times``, names and ids by ``schemas.limits``' and the identifier
    policy's), refusing in its own words: nothing is checked twice (the Segment
    surface, whose loop builds thousands of messages a request).
    """
    if user_agent is None:
        user_agent = (declared_user_agent(event.body) if event else None) or received.agent
    message = WriteMessage(
        id=messages.new_message_id() if message_id is None else message_id,
        team_id=team_id,
        op=op,
        identifiers=identifiers,
        occurred_at=occurred_at or received.at,
        received_at=received.at,
        attributes=_NO_ATTRIBUTES if attributes is None else attributes,
        event=event,
        group=group,
        create_if_missing=create_if_missing,
        user_agent=user_agent,
        api=received.api,
    )
    if fields_checked:
        return message
    return check_message(message, names, identifiers=not identifiers_normalised)


# A team's blocked (kind, value) pairs, normalised (``blocked_values.team_blocked``).
Blocked = frozenset[tuple[str, str]]
NONE_BLOCKED: Blocked = frozenset()


def identifiers_or_400(identifiers: Identifiers, blocked: Blocked = NONE_BLOCKED) -> Identifiers:
    """``identifiers`` normalised (``schemas.identity``: no junk), or ``ApiError(400)``;
    also when one of them is among the team's ``blocked`` values."""
    checked = normalised(identifiers)  # cached: customers come back
    if isinstance(checked, InvalidIdentifier):
        field, reason = checked.field, checked.reason
        raise ApiError(400, f"Invalid {field}: {reason}", reason, field=field)
    if not checked.items():
        raise ApiError(400, "Missing customer identifier", "Name the customer by email or id.")
    if blocked:
        for kind, value in checked.items():
            if (kind, value) in blocked:
                raise blocked_error(kind, value)
    return checked


def blocked_error(kind: str, value: str) -> ApiError:
    """The refusal of an identifier value the team blocked."""
    return ApiError(
        400,
        f"Invalid {kind}: {value!r} is blocked for this team",
        "The team's administrators blocked this value: it names no customer.",
        field=kind,
    )


def browser_agent(request: Request) -> str | None:
    """The request's own User-Agent when it is a browser's (``Mozilla/...``), else None.

    Server-side integrations post with HTTP libraries (curl, python-requests, ...)
    that crawler lists flag as bots, so only a browser's counts as the end user's;
    integrations forward the visitor's agent in the event body (``declared_user_agent``).
    """
    header = request.headers.get("user-agent", "")
    return header if header.startswith("Mozilla/") else None


def declared_user_agent(event_body: Any) -> str | None:
    """The visitor's agent an integration forwards in ``event_body`` (``user_agent`` or
    ``userAgent``), or None."""
    if isinstance(event_body, dict):
        # (unrolled: the batch and Segment loops ask once per message)
        declared = event_body.get("user_agent")
        if isinstance(declared, str) and declared:
            return declared
        declared = event_body.get("userAgent")
        if isinstance(declared, str) and declared:
            return declared
    return None
