"""The ``event/`` endpoint of seed 001 (user + event objects), API version 1.

Path: ``POST /api/v1/event/`` (also without the trailing slash, which the gateway
strips). The document gives only "endpoint base ``event/``, version 1"; ``/api/v1``
sits beside the Postman collection's ``/api/1.0`` and never collides with it.

Body: ``{"user": {"email": ...} | {"_id": ...}, "event": {<type>: {...}, ...}}``.
``_id`` is our customer id (a decimal string; merged-away ids still resolve). Each
type in ``event`` becomes one canonical ``track_event`` write with
``create_if_missing=False``:

- ``update`` / ``login``: the fields become customer attributes; ``login`` also sets
  ``lastLoginDate`` (``YYYY-MM-DD HH:MM:SS`` UTC, the attribute and format the
  Postman collection asks for) unless sent. Given both ``_id`` and ``email``, the
  email is added to that customer, as the document's login does for anonymous users.
- ``generic``: ``{"event_name": ..., fields...}`` (also nested once more as the
  document's example shows: ``{"generic": {"generic": {...}}}``), kind ``generic``.
- ``confirmation``: kind ``confirmation``, deduplicated by ``orderId`` in the consumers.
- ``email_open`` (or ``emailOpen``): at most one per customer per 20 minutes.
- any other name: an event of that name (kind ``custom``).

Events from bots are discarded by the consumers: the agent is the event's
``user_agent``/``userAgent`` field, else a browser's ``User-Agent`` header.

The user must exist: the gateway checks PostgreSQL first and answers 404 in the
document's format, ``{"errors": [{"message", "description"}]}``, the format of
every error here. Success: 200 ``{"results": {"message": "Event created", "email":
"Event was created for the specified user"}}`` (the key is ``_id`` for users named
by ``_id``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ingest_gateway.edge.body import read_json
from ingest_gateway.read_model.events import customer_for_identifier, event_view, events_by_ids
from ingest_gateway.surfaces import user_events_examples as examples
from ingest_gateway.surfaces.common import responses, write_body
from ingest_gateway.web import deps
from ingest_gateway.web.errors import ApiError
from ingest_gateway.web.routing import Surface
from ingest_gateway.write.accept import accept
from ingest_gateway.write.build import new_write, received
from schemas.identity import InvalidIdentifier, normalise_customer_id, normalise_email
from schemas.json_schemas import (
    CUSTOMER_ID,
    EMAIL,
    INT64,
    JSON_OBJECT,
    NAME,
    NULL,
    TEXT,
    not_blank,
    object_of,
)
from schemas.limits import MAX_NAME_LENGTH
from schemas.messages import EventData, EventKind, Identifiers, WriteMessage, utcnow
from schemas.outcomes import DISCARDED_PREFIX, Outcome

PREFIX = "/api/v1"
API = "user_events_api"
LOGIN_ATTRIBUTE = "lastLoginDate"


def _error(status: int, message: str, description: str | None, field: str | None) -> Any:
    return {"errors": [{"message": message, "description": description or message}]}


surface = Surface(PREFIX, "User events (seed 001)", _error)

# Event types with rules of their own, by name without case, "_" or "-".
_KINDS: dict[str, EventKind] = {
    "update": "update",
    "login": "login",
    "generic": "generic",
    "confirmation": "confirmation",
    "emailopen": "email_open",
}
# What a field holds when it is left out, as clients send it.
_ABSENT: tuple[Any, ...] = (None, "")
# Request metadata that is not a customer attribute.
_AGENT_FIELDS = ("user_agent", "userAgent")


def _kind(type_name: str) -> EventKind:
    return _KINDS.get(type_name.lower().replace("_", "").replace("-", ""), "custom")


def _user(payload: dict[str, Any]) -> tuple[Identifiers, str]:
    """The user's identifiers and the key that named it (``email`` or ``_id``); null
    or "" stands for a key left out."""
    user = payload.get("user")
    email = user.get("email") if isinstance(user, dict) else None
    raw_id = user.get("_id") if isinstance(user, dict) else None
    if email in _ABSENT and raw_id in _ABSENT:
        raise ApiError(
            400,
            "Missing user information",
            "Please send a user object with email or _id along with the event",
        )
    address = None
    if email not in _ABSENT:
        invalid = ApiError(400, "Invalid user information", f"{email!r} is not an email address")
        if not isinstance(email, str):
            raise invalid
        try:
            address = normalise_email(email)
        except InvalidIdentifier as exc:
            raise invalid from exc
    customer_id = None
    if raw_id not in _ABSENT:
        # An _id that is not one of our ids names nobody.
        not_found = ApiError(404, "User not found", f"No user has _id {raw_id!r}.")
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
            raise not_found
        try:
            customer_id = normalise_customer_id(str(raw_id))
        except InvalidIdentifier as exc:
            raise not_found from exc
    return Identifiers(email=address, customer_id=customer_id), "_id" if customer_id else "email"


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH:
        raise ApiError(
            400,
            "Invalid event information",
            f"{what} must be a string of 1 to {MAX_NAME_LENGTH} characters",
        )
    return value.strip()


def _order_id(fields: dict[str, Any]) -> str | None:
    """``orderId`` (else ``order_id``): each, when sent, a string or a number."""
    found = None
    for field in ("order_id", "orderId"):
        value = fields.get(field)
        if value in _ABSENT:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ApiError(
                400, "Invalid event information", f"{field} must be a string or a number"
            )
        found = str(value)
    return found


def _writes(
    request: Request, team_id: int, identifiers: Identifiers, events: dict[str, Any]
) -> list[WriteMessage]:
    now = utcnow()
    messages = []
    for type_name, fields in events.items():
        if not isinstance(fields, dict):
            raise ApiError(
                400, "Invalid event information", f"The {type_name!r} event must be an object"
            )
        kind = _kind(type_name)
        attributes: dict[str, Any] = {}
        order_id = None
        name: str
        if kind in ("update", "login"):
            name = kind
            attributes = {k: v for k, v in fields.items() if k not in _AGENT_FIELDS}
            if kind == "login":
                attributes.setdefault(LOGIN_ATTRIBUTE, now.strftime("%Y-%m-%d %H:%M:%S"))
            body = fields
        elif kind == "generic":
            if set(fields) == {"generic"} and isinstance(fields["generic"], dict):
                fields = fields["generic"]  # the document's example nests it twice
            name = _name(fields.get("event_name"), "generic.event_name")
            body = {k: v for k, v in fields.items() if k != "event_name"}
        elif kind == "confirmation":
            name, body, order_id = "confirmation", fields, _order_id(fields)
        elif kind == "email_open":
            name, body = "email_open", fields
        else:
            name, body = _name(type_name, "The event type"), fields
        messages.append(
            new_write(
                received(request, API),
                team_id,
                "track_event",
                identifiers,
                attributes=attributes,
                event=EventData(name=name, body=body, kind=kind, order_id=order_id),
                occurred_at=now,
                create_if_missing=False,
            )
        )
    return messages


# -- the body as OpenAPI describes it --------------------------------------------------


def _kind_name(kind: str) -> str:
    """A pattern of the event type names ``_kind`` reads as ``kind``: without case, with
    any ``_`` and ``-`` around and between the letters."""
    letters = "[_-]*".join(f"[{c.upper()}{c}]" for c in kind.replace("_", ""))
    return f"^[_-]*{letters}[_-]*$"


_ABSENT_SCHEMA = {"enum": list(_ABSENT)}
_GENERIC = object_of({"event_name": NAME}, "event_name")
_ORDER_ID = {"anyOf": [TEXT, INT64, NULL]}
_USER = object_of(
    {
        "email": {"anyOf": [EMAIL, _ABSENT_SCHEMA]},
        "_id": {"anyOf": [CUSTOMER_ID, _ABSENT_SCHEMA]},
    },
    description="the user, by email or by our customer id (an _id that is none: 404)",
    anyOf=[
        {"properties": {field: {"not": _ABSENT_SCHEMA}}, "required": [field]}
        for field in ("email", "_id")
    ],
)
_EVENTS = {
    "type": "object",
    "description": "event types (update, login, generic, confirmation, email_open, or any"
    f" name of 1 to {MAX_NAME_LENGTH} characters: an event of that name) with their fields",
    "minProperties": 1,
    "propertyNames": {"maxLength": MAX_NAME_LENGTH, "pattern": not_blank()},
    "patternProperties": {
        _kind_name("generic"): {
            "anyOf": [
                _GENERIC,
                {
                    "type": "object",
                    "properties": {"generic": _GENERIC},
                    "required": ["generic"],
                    "maxProperties": 1,
                },
            ]
        },
        _kind_name("confirmation"): object_of({"orderId": _ORDER_ID, "order_id": _ORDER_ID}),
    },
    "additionalProperties": JSON_OBJECT,
}
_BODY_SCHEMA = object_of({"user": _USER, "event": _EVENTS}, "user", "event")


@surface.post(
    "/event",
    summary="Create new event",
    openapi_extra=write_body(
        schema=_BODY_SCHEMA,
        examples={
            "update": {
                "user": {"email": "alexandru@example.com"},
                "event": {"update": {"firstname": "alexandru"}},
            },
            "generic": {
                "user": {"email": "alexandru@example.com"},
                "event": {
                    "generic": {"generic": {"event_name": "my_event", "firstname": "alexandru"}}
                },
            },
            "confirmation": {
                "user": {"_id": "42"},
                "event": {"confirmation": {"orderId": "A-1001", "total": 99.5}},
            },
            "email open": {
                "user": {"email": "alexandru@example.com"},
                "event": {"email_open": {"campaign": "spring"}},
            },
        },
    ),
    responses=responses(
        (200, "Event created", examples.CREATED),
        (
            202,
            "Accepted; the wait for the consumers ran out",
            {"results": {"message": "Event accepted", "message_ids": ["0190..."]}},
        ),
        ("4XX", "Missing event information", examples.MISSING_EVENT),
        ("4XX", "User not found", examples.NO_USER),
    ),
)
async def create_event(team_id: int, request: Request) -> Response:
    payload = await read_json(request, deps.settings(request).max_json_depth)
    if not isinstance(payload, dict):
        raise ApiError(400, "Invalid request", "Send a JSON object with user and event")
    identifiers, named_by = _user(payload)
    events = payload.get("event")
    if not isinstance(events, dict) or not events:
        raise ApiError(
            400, "Missing event information", "Please send event information along with user"
        )
    messages = _writes(request, team_id, identifiers, events)

    db = deps.db(request)
    kind, value = (
        ("customer_id", identifiers.customer_id)
        if identifiers.customer_id
        else (
            "email",
            identifiers.email,
        )
    )
    if await customer_for_identifier(db, team_id, kind, value or "") is None:
        raise ApiError(404, "User not found", "The user must exist in the database beforehand.")

    accepted = await accept(request, messages)
    results: dict[str, Any] = {
        "message": "Event created",
        named_by: "Event was created for the specified user",
    }
    if accepted.timed_out:
        answer = {"message": "Event accepted", "message_ids": accepted.message_ids}
        return accepted.respond({"results": answer})
    if accepted.outcomes is not None:
        outcomes = accepted.outcomes
        if Outcome.DISCARDED_UNKNOWN_CUSTOMER in outcomes.values():
            raise ApiError(404, "User not found", "The user no longer exists.")
        applied = [m.id for m in messages if outcomes.get(m.id) == Outcome.APPLIED]
        discarded = sorted(
            {o.removeprefix(DISCARDED_PREFIX) for o in outcomes.values()} - {Outcome.APPLIED}
        )
        if not applied:
            results["message"] = "Event discarded"
        results["events"] = [event_view(r) for r in await events_by_ids(db, team_id, applied)]
        if discarded:
            results["discarded"] = discarded
    return accepted.respond({"results": results})
