"""Custom customer events per store (seed 004): ``POST /core/v3/stores/{app_key}/custom_events``.

The document shows the body and the ``app_key`` path parameter but no path; this
one follows the store-scoped layout of the vendor's other endpoints
(``/stores/{store_id}/...``). ``app_key`` names the store, and a store is a team:
it must be the caller's team name (or its numeric id), else 403. Give a team the
store's app key as its name (``ingest-admin create-team <app_key>``).

Body fields and the rules enforced (each failure is a 400 naming field and rule,
all failures of a request at once, as ``{"errors": [{"field", "message"}]}``, the
format of every error here):

- ``source``: optional; snake_case, 1 to 255 characters.
- ``type``: required; snake_case, 1 to 255 characters. The event's type (name).
- ``timestamp``: ISO 8601 as RFC 3339 writes a date-time (``schemas.times``: an
  offset with seconds exact; a date alone, a week or ordinal date, a comma fraction
  or a number is refused); now when absent; without an offset it is UTC; within the
  years 1 to 9999 in UTC (what the store's readers hold).
- ``id``: required string, 1 to 255 characters. An event with an id the team used
  before replaces that event (the newer event time wins).
- ``customer``: required; ``external_id``, or else exactly one of ``phone_number``
  (E.164) or ``email``; ``properties``: primitive values (no null, no objects or
  arrays), names without spaces. They become customer attributes.
- ``properties``: the event's data; primitive values (string, boolean, integer,
  float, ISO date as a string), no null.

The page shows no answer. This one is 200 ``{"id", "type", "source", "timestamp",
"status": "accepted", "message_id"}`` once Kafka acknowledged the write. Asked to
wait, it answers after the consumers: ``"status": "stored"`` with the stored event
(``customer.customer_id``, ``properties``), ``"superseded"`` when a version of that
id accepted later is kept instead (shown), ``"discarded:<rule>"``, or 202
``"pending"`` when the wait runs out.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ingest_gateway.edge.body import read_json
from ingest_gateway.read_model.events import event_by_client_id, stored_json
from ingest_gateway.read_model.teams import team_name
from ingest_gateway.surfaces.common import responses, write_body
from ingest_gateway.web import deps
from ingest_gateway.web.errors import ApiError
from ingest_gateway.web.responses import JSON
from ingest_gateway.web.routing import Surface
from ingest_gateway.write.accept import accept
from ingest_gateway.write.build import new_write, received
from schemas.identity import (
    InvalidIdentifier,
    normalise_email,
    normalise_external_id,
    normalise_phone,
)
from schemas.json_schemas import (
    DATE_TIME_UTC,
    EMAIL,
    EXTERNAL_ID,
    FRACTION,
    INT64,
    NAME,
    NO_NUL,
    PHONE,
    not_blank,
    nullable,
    object_of,
)
from schemas.limits import MAX_NAME_LENGTH
from schemas.messages import EventData, Identifiers, utcnow
from schemas.outcomes import Outcome
from schemas.times import InvalidTime, format_time, parse_time

PREFIX = "/core/v3"
API = "store_events_api"


def _error(status: int, message: str, description: str | None, field: str | None) -> Any:
    error = {"field": field, "message": message} if field else {"message": message}
    return {"errors": [error]}


surface = Surface(PREFIX, "Custom customer events per store (seed 004)", _error)

_SNAKE_CASE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_SNAKE_RULE = "must be snake_case: lower-case letters and digits joined by single underscores"
_PRIMITIVE_RULE = "must be a primitive value: string, boolean, integer, float or ISO date"

# Team names by id: a name never changes (ingest-admin has no rename), so cache it.
_TEAM_NAMES: dict[int, tuple[str, float]] = {}
_TEAM_NAME_TTL_S = 60.0


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})


def _snake(problems: _Problems, payload: dict[str, Any], field: str, *, required: bool) -> str:
    value = payload.get(field)
    if value is None:
        if required:
            problems.add(field, "is required")
        return ""
    if not isinstance(value, str):
        problems.add(field, "must be a string")
    elif not value:
        problems.add(field, "must not be empty")
    elif len(value) > MAX_NAME_LENGTH:
        problems.add(field, f"must be at most {MAX_NAME_LENGTH} characters")
    elif not _SNAKE_CASE.fullmatch(value):
        problems.add(field, _SNAKE_RULE)
    else:
        return value
    return ""


def _timestamp(problems: _Problems, value: Any) -> datetime | None:
    """The event time in UTC (``schemas.times``: without an offset, UTC), or None."""
    if value is None:
        return None
    try:
        return parse_time(value, naive_is_utc=True)
    except InvalidTime as exc:
        problems.add("timestamp", exc.reason)
        return None


def _primitives(
    problems: _Problems, value: Any, field: str, *, names_without_spaces: bool
) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(field, "must be a JSON object of name: primitive value pairs")
        return {}
    for name, item in value.items():
        where = f"{field}.{name}"
        if not name.strip():
            problems.add(where, "property names must not be empty")
        elif names_without_spaces and " " in name:
            problems.add(where, "property names must use underscores (_) instead of spaces")
        if item is None:
            problems.add(where, "null values are not supported")
        elif not isinstance(item, str | bool | int | float):
            problems.add(where, _PRIMITIVE_RULE)
    return value


def _identifier(problems: _Problems, customer: dict[str, Any], field: str) -> str | None:
    value = customer.get(field)
    if value is None:
        return None
    where = f"customer.{field}"
    if not isinstance(value, str):
        problems.add(where, "must be a string")
        return None
    if field == "phone_number" and not _E164.fullmatch(value):
        problems.add(where, "must be in E.164 format, e.g. +14155552671")
        return None
    normalise = {
        "external_id": normalise_external_id,
        "phone_number": normalise_phone,
        "email": normalise_email,
    }[field]
    try:
        return normalise(value)
    except InvalidIdentifier as exc:
        problems.add(where, exc.reason)
        return None


def _customer(problems: _Problems, value: Any) -> tuple[Identifiers, dict[str, Any]]:
    if not isinstance(value, dict):
        problems.add("customer", "is required: an object with external_id, phone_number or email")
        return Identifiers(), {}
    external_id = _identifier(problems, value, "external_id")
    phone = _identifier(problems, value, "phone_number")
    email = _identifier(problems, value, "email")
    if value.get("external_id") is None:
        has_phone, has_email = value.get("phone_number") is not None, value.get("email") is not None
        if has_phone and has_email:
            problems.add(
                "customer",
                "without external_id, identify the customer by only one of phone_number or email",
            )
        elif not has_phone and not has_email:
            problems.add("customer", "identify the customer by external_id, phone_number or email")
    properties = _primitives(
        problems, value.get("properties"), "customer.properties", names_without_spaces=True
    )
    return Identifiers(email=email, external_id=external_id, phone=phone), properties


async def _check_store(request: Request, team_id: int, app_key: str) -> None:
    hit = _TEAM_NAMES.get(team_id)
    if hit is None or hit[1] < time.monotonic():
        name = await team_name(deps.db(request), team_id)
        hit = (name, time.monotonic() + _TEAM_NAME_TTL_S)
        _TEAM_NAMES[team_id] = hit
    if app_key not in (hit[0], str(team_id)):
        raise ApiError(
            403, f"The API key does not give access to store {app_key!r}", field="app_key"
        )


_EXAMPLE = {
    "source": "quiz_app",
    "type": "order_shipped",
    "timestamp": "2024-05-01T10:00:00Z",
    "id": "5b0c4a5e-3c2d-4f7e-9b1a-2f6d8e9c0a11",
    "customer": {
        "external_id": "7283901",
        "email": "jane@example.com",
        "properties": {"vip": True, "first_order_date": "2023-11-02"},
    },
    "properties": {"order_id": "1001", "items": 3, "total": 59.9, "gift": False},
}
_BY_PHONE = {
    "type": "quiz_completed",
    "id": "quiz-42",
    "customer": {"phone_number": "+14155552671"},
    "properties": {"score": 8},
}
_ACCEPTED = {
    "id": "5b0c4a5e-3c2d-4f7e-9b1a-2f6d8e9c0a11",
    "type": "order_shipped",
    "source": "quiz_app",
    "timestamp": "2024-05-01T10:00:00Z",
    "status": "accepted",
    "message_id": "0190f6a2-7c41-7d2e-9a1b-3c4d5e6f7a8b",
}
_INVALID = {
    "errors": [
        {"field": "type", "message": _SNAKE_RULE},
        {"field": "customer.phone_number", "message": "must be in E.164 format, e.g. +14155552671"},
    ]
}


# -- the body as OpenAPI describes it --------------------------------------------------

_SNAKE_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_LENGTH,
    "pattern": f"^{_SNAKE_CASE.pattern}$",
    "description": "snake_case: lower-case letters and digits joined by single underscores",
}
_PRIMITIVE = {
    "anyOf": [{"type": "string", "pattern": NO_NUL}, {"type": "boolean"}, INT64, FRACTION]
}


def _primitives_schema(description: str, without: str = "") -> dict[str, Any]:
    """An object of primitive values (no null), its names not blank (nor holding ``without``)."""
    return nullable(
        {
            "type": "object",
            "description": description,
            "propertyNames": {"pattern": not_blank(without)},
            "additionalProperties": _PRIMITIVE,
        }
    )


def _only(field: str, other: str) -> dict[str, Any]:
    """``field`` names the customer, ``other`` does not (absent or null)."""
    string = {"properties": {field: {"type": "string"}}, "required": [field]}
    return string | {"not": {"properties": {other: {"type": "string"}}, "required": [other]}}


_CUSTOMER = object_of(
    {
        "external_id": nullable(EXTERNAL_ID),
        "email": nullable(EMAIL),
        "phone_number": nullable(PHONE),
        "properties": _primitives_schema(
            "the customer's attributes: primitive values, names without spaces", " "
        ),
    },
    description="external_id, or else exactly one of phone_number or email (null: absent)",
    anyOf=[
        {"properties": {"external_id": {"type": "string"}}, "required": ["external_id"]},
        _only("phone_number", "email"),
        _only("email", "phone_number"),
    ],
)
_BODY_SCHEMA = object_of(
    {
        "type": _SNAKE_NAME | {"description": "the event's type (its name), snake_case"},
        "id": NAME | {"description": "a later write with this id replaces the event"},
        "timestamp": nullable(DATE_TIME_UTC),
        "source": nullable(_SNAKE_NAME),
        "customer": _CUSTOMER,
        "properties": _primitives_schema("the event's data: primitive values"),
    },
    "type",
    "id",
    "customer",
)


@surface.post(
    "/stores/{app_key}/custom_events",
    summary="Create or update custom customer event",
    path_schemas={
        "app_key": {"type": "string", "description": "the caller's team name or id (else 403)"}
    },
    openapi_extra=write_body(
        {"by external id": _EXAMPLE, "by phone number": _BY_PHONE},
        schema=_BODY_SCHEMA,
    ),
    responses=responses(
        (200, "Accepted (Kafka acknowledged the write)", _ACCEPTED),
        (
            200,
            "Stored (with Prefer: return=representation or ?wait=true)",
            {
                **_ACCEPTED,
                "status": "stored",
                "customer": {"customer_id": "17"},
                "properties": _EXAMPLE["properties"],
            },
        ),
        (202, "Accepted; the wait for the consumers ran out", {**_ACCEPTED, "status": "pending"}),
        ("4XX", "Invalid fields", _INVALID),
        (
            "4XX",
            "Not this caller's store",
            {
                "errors": [
                    {
                        "field": "app_key",
                        "message": "The API key does not give access to store 'other'",
                    }
                ]
            },
        ),
    ),
)
async def create_or_update_event(app_key: str, team_id: int, request: Request) -> Response:
    await _check_store(request, team_id, app_key)
    payload = await read_json(request, deps.settings(request).max_json_depth)
    if not isinstance(payload, dict):
        raise ApiError(400, "Expected a JSON object")
    problems = _Problems()
    source = _snake(problems, payload, "source", required=False)
    event_type = _snake(problems, payload, "type", required=True)
    occurred_at = _timestamp(problems, payload.get("timestamp"))
    event_id = payload.get("id")
    if event_id is None:
        problems.add("id", "is required")
    elif not isinstance(event_id, str) or not event_id.strip() or len(event_id) > MAX_NAME_LENGTH:
        problems.add("id", f"must be a string of 1 to {MAX_NAME_LENGTH} characters")
    identifiers, attributes = _customer(problems, payload.get("customer"))
    properties = _primitives(
        problems, payload.get("properties"), "properties", names_without_spaces=False
    )
    if problems.items:
        return JSON({"errors": problems.items}, status_code=400)
    assert isinstance(event_id, str)

    occurred_at = occurred_at or utcnow()
    message = new_write(
        received(request, API),
        team_id,
        "track_event",
        identifiers,
        attributes=attributes,
        event=EventData(
            name=event_type, body=properties, client_event_id=event_id, source=source or None
        ),
        occurred_at=occurred_at,
    )
    accepted = await accept(request, [message])
    answer: dict[str, Any] = {
        "id": event_id,
        "type": event_type,
        "source": source or None,
        "timestamp": format_time(occurred_at),
        "status": "accepted",
        "message_id": message.id,
    }
    if accepted.timed_out:
        return accepted.respond(answer | {"status": "pending"})
    if accepted.outcomes is not None:
        outcome = accepted.outcome(message.id)
        row = await event_by_client_id(deps.db(request), team_id, event_id)
        if outcome != Outcome.APPLIED or row is None:
            return accepted.respond(answer | {"status": outcome or "unknown"})
        # A version accepted later (a later message id) may be kept instead of this one.
        kept = row["message_id"] == message.id
        stored = {
            "id": row["client_event_id"],
            "type": row["type"],
            "source": row["source"],
            "timestamp": format_time(row["occurred_at"]),
            "customer": {"customer_id": row["customer_id"]},
            "properties": stored_json(row["body"]),
            "status": "stored" if kept else "superseded",
        }
        return accepted.respond(answer | stored)
    return accepted.respond(answer)
