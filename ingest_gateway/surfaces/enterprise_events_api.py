"""Events with property records (seed 003), under ``/rest-api/enterprise-interface/v1.0``.

- ``POST /events`` ``{"event": {"event_type_id", "customer_id", "external_id"},
  "property_records": [{"property_id", "property_value"}]}`` answers 201
  ``{"data": {"event_id"}}`` once Kafka acknowledged the write. The id is the write's
  message id, which becomes ``events.id``: it is valid at once (``GET`` finds it as
  soon as the consumers applied it). ``event_type_id`` and ``customer_id`` must name
  the team's event type and customer (checked in PostgreSQL before publishing):
  otherwise 422 naming the field, and nothing is written.
- ``GET /events`` (``count``, ``offset``, ``sort_field``, ``sort_direction``,
  ``event_type_id``), ``GET /events/{event_id}``, ``GET /events/{event_id}/property-records``.

Events are shown in the document's fields whichever API wrote them: ``data`` is the
event body as a JSON string (for events written here, ``{property_id: property_value}``
of the records, over an optional ``event.data`` object), ``created_at`` the event time
in UTC, ``secondary_external_id`` null (the store does not keep one; a non-null value
is refused rather than dropped) and ``state`` 1.

Auth and errors as seed 002: Basic (API key as password) or ``X-API-KEY``;
``{"error": {"code", "message", "description"?, "field"?}}``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from ingest_gateway.edge.body import parse_json, read_json
from ingest_gateway.read_model import events as q
from ingest_gateway.surfaces import enterprise_events_examples as examples
from ingest_gateway.surfaces.common import (
    Page,
    SortedPage,
    found,
    list_responses,
    paging,
    responses,
    rest_api_error,
    row_id,
    sort_fields,
    write_body,
)
from ingest_gateway.web import deps
from ingest_gateway.web.errors import ApiError
from ingest_gateway.web.responses import JSON
from ingest_gateway.web.routing import Surface
from ingest_gateway.write.accept import accept
from ingest_gateway.write.build import new_write, received
from ingest_gateway.write.validation import QueryText
from schemas.identity import InvalidIdentifier, normalise_customer_id
from schemas.limits import MAX_NAME_LENGTH, json_id
from schemas.messages import EventData, Identifiers
from schemas.outcomes import Outcome

PREFIX = "/rest-api/enterprise-interface/v1.0"
API = "enterprise_events_api"
MAX_PROPERTY_RECORDS = examples.MAX_PROPERTY_RECORDS

surface = Surface(PREFIX, "Events (seed 003)", rest_api_error)

# -- examples from the document ---------------------------------------------------


# -- create ----------------------------------------------------------------------


def _invalid(field: str, rule: str) -> ApiError:
    return ApiError(400, f"Invalid {field}: {rule}", field=field)


def _id_text(value: Any) -> str | None:
    """Ids may come as JSON strings or integers (``limits.json_id``); they are
    strings, trimmed, from here on."""
    text = json_id(value)
    return None if text is None else text.strip()


def _records(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid("property_records", "must be an array of property records")
    if len(value) > MAX_PROPERTY_RECORDS:
        raise _invalid("property_records", f"at most {MAX_PROPERTY_RECORDS} records")
    records = []
    for i, record in enumerate(value):
        field = f"property_records[{i}]"
        if not isinstance(record, dict):
            raise _invalid(field, "must be an object with property_id and property_value")
        property_id = _id_text(record.get("property_id"))
        if not property_id or len(property_id) > MAX_NAME_LENGTH:
            raise _invalid(f"{field}.property_id", f"required, 1 to {MAX_NAME_LENGTH} characters")
        if "property_value" not in record:
            raise _invalid(f"{field}.property_value", "required")
        records.append({"property_id": property_id, "property_value": record["property_value"]})
    return records


def _data(value: Any, max_depth: int) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):  # the document shows data as a JSON string
        # Read as a body is: the same rules (depth, numbers, NUL) hold inside it.
        try:
            value = parse_json(value.encode(), max_depth, "event.data")
        except ApiError as exc:
            where = f"event.data.{exc.field}" if exc.field else "event.data"
            raise ApiError(400, exc.message, exc.description, field=where) from exc
    if not isinstance(value, dict):
        raise _invalid("event.data", "must be a JSON object or its JSON text")
    return value


@surface.post(
    "/events",
    summary="Create a new event",
    status_code=201,
    openapi_extra=write_body({"document example": examples.CREATE}, schema=examples.CREATE_SCHEMA),
    responses=responses(
        (201, "Created", {"data": {"event_id": "85c7c9d1ccf6c6dfed34edc8d2"}}),
        (201, "Created, with Prefer: return=representation", {"data": examples.EVENT}),
        (202, "Accepted; the wait for the consumers ran out", {"data": {"event_id": "0190..."}}),
        ("4XX", "Unknown event type", examples.UNKNOWN_TYPE),
    ),
)
async def create_event(team_id: int, request: Request) -> Response:
    max_depth = deps.settings(request).max_json_depth
    payload = await read_json(request, max_depth)
    if not isinstance(payload, dict):
        raise ApiError(400, "Expected a JSON object with event and property_records")
    event = payload.get("event")
    if not isinstance(event, dict):
        raise _invalid("event", "required, an Event object")
    raw_type_id = _id_text(event.get("event_type_id"))
    if not raw_type_id:
        raise _invalid("event.event_type_id", "required, the id of an event type")
    raw_customer_id = _id_text(event.get("customer_id"))
    if not raw_customer_id:
        raise _invalid("event.customer_id", "required, the id of a customer")
    external_id = _id_text(event.get("external_id"))
    if event.get("external_id") is not None and (
        not external_id or len(external_id) > MAX_NAME_LENGTH
    ):
        raise _invalid("event.external_id", f"a string of 1 to {MAX_NAME_LENGTH} characters")
    if event.get("secondary_external_id") is not None:
        raise _invalid("event.secondary_external_id", "not supported; send null or leave out")
    records = _records(payload.get("property_records"))
    body = _data(event.get("data"), max_depth) | {
        r["property_id"]: r["property_value"] for r in records
    }

    db = deps.db(request)
    unknown_type = ApiError(
        422, f"Unknown event_type_id {raw_type_id!r}", field="event.event_type_id"
    )
    unknown_customer = ApiError(
        422, f"Unknown customer_id {raw_customer_id!r}", field="event.customer_id"
    )
    type_id = row_id(raw_type_id)
    if type_id is None:  # ids are decimal strings: this one names no event type
        raise unknown_type
    try:
        customer_id = normalise_customer_id(raw_customer_id)
    except InvalidIdentifier as exc:
        raise unknown_customer from exc
    type_name, customer = await q.event_type_and_customer(db, team_id, type_id, customer_id)
    if type_name is None:
        raise unknown_type
    if customer is None:
        raise unknown_customer

    message = new_write(
        received(request, API),
        team_id,
        "track_event",
        Identifiers(customer_id=customer_id),
        event=EventData(
            name=type_name, body=body, external_id=external_id, properties=records or None
        ),
        create_if_missing=False,
    )
    accepted = await accept(request, [message])
    created = {"data": {"event_id": message.id}}
    if accepted.timed_out:
        return accepted.respond(created)
    if accepted.outcomes is not None:
        outcome = accepted.outcome(message.id)
        if outcome == Outcome.DISCARDED_UNKNOWN_CUSTOMER:  # deleted since the check above
            raise unknown_customer
        if outcome != Outcome.APPLIED:
            return accepted.respond({"data": {"event_id": message.id, "outcome": outcome}})
        row = await q.get_event(db, team_id, uuid.UUID(message.id))
        if row is not None:
            return accepted.respond({"data": q.event_view(row)}, 201)
    return accepted.respond(created, 201)


# -- reads -----------------------------------------------------------------------


def _event_uuid(event_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(event_id)
    except ValueError as exc:
        raise ApiError(404, f"Event {event_id} was not found") from exc


class EventsQuery(SortedPage):
    sort_field: Annotated[str, sort_fields(q.EVENT_SORT_COLUMNS, "event_id")] | None = None
    event_type_id: Annotated[
        QueryText,
        Meta(description="The id of an event type", examples=["8bed991c68a470e7aaeffbf048"]),
    ] = None


@surface.get(
    "/events",
    summary="Get information about all events",
    query=EventsQuery,
    responses=list_responses("Events", examples.LIST, examples.BAD_SORT),
)
async def list_events(team_id: int, request: Request, query: EventsQuery) -> Response:
    page = paging(query, q.EVENT_SORT_COLUMNS, "event_id")
    type_id = None
    if query.event_type_id:
        type_id = row_id(query.event_type_id)
        if type_id is None:  # no event type has such an id: nothing matches
            return JSON({"data": {"events": [], "total_items": 0}})
    total, rows = await q.list_events(deps.db(request), team_id, page, event_type_id=type_id)
    return JSON({"data": {"events": [q.event_view(r) for r in rows], "total_items": total}})


@surface.get(
    "/events/{event_id}",
    summary="Get information about a specific event",
    responses=responses(
        (200, "Event", {"data": examples.EVENT}), ("4XX", "Unknown event", examples.NOT_FOUND)
    ),
)
async def get_event(event_id: str, team_id: int, request: Request) -> Response:
    row = found(
        await q.get_event(deps.db(request), team_id, _event_uuid(event_id)), f"Event {event_id}"
    )
    return JSON({"data": q.event_view(row)})


@surface.get(
    "/events/{event_id}/property-records",
    summary="Get a list of all property records of an event",
    query=Page,
    responses=responses(
        (200, "Property records", examples.RECORDS), ("4XX", "Unknown", examples.NOT_FOUND)
    ),
)
async def get_property_records(
    event_id: str, team_id: int, request: Request, query: Page
) -> Response:
    offset, count = query.offset, query.count
    row = found(
        await q.get_event(deps.db(request), team_id, _event_uuid(event_id)), f"Event {event_id}"
    )
    records = q.property_records(row)
    page = records[offset : offset + count]
    return JSON({"data": {"property_records": page, "total_items": len(records)}})
