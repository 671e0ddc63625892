"""Batched writes: events and customer upserts, many per request, answered per item.

``POST /api/1.0/batch`` with ``{"items": [...]}``; each item is either

- ``{"type": "event", "email": ..., "eventName": ..., "externalId": ..., "body": {...}}``
- ``{"type": "customer", "email": ..., "attributes": {...}}``

and names its customer by ``email``, ``phone``, ``customerId`` and/or
``customerExternalId`` (several at once assert they are one person), each by the
rules of ``schemas.identity``: an item naming a junk value (``N/A``, ``unknown``,
...) or one its team blocked (``ingest-admin block-identifier``) is rejected. Optional:
``occurredAt`` (RFC 3339 with a time zone, as ``schemas.times`` reads it; default:
when received), and for events ``eventId`` (a client id: a later item with the same
id replaces the event).

The answer is ``{"accepted": n, "rejected": m, "items": [...]}`` with one entry per
item, in order: ``{"index", "status": "accepted", "id"}`` or ``{"index", "status":
"rejected", "error"}``. A bad item never fails the others; the accepted ones are
published together and the answer (200) comes once Kafka acknowledged all of them
(503 and nothing to trust when it did not: retry with ``eventId`` to stay idempotent).

Limits (docs/api.md, "Batch endpoint"): ``MAX_BATCH_ITEMS`` items (default 5,000) and
``MAX_BODY_BYTES`` bytes (default 5 MB) per request, ``MAX_ITEM_BYTES`` bytes per
item (default 32 KB), JSON nested at most ``MAX_JSON_DEPTH`` levels; every item keeps
the rules of ``ingest_gateway.write.validation`` (64-bit integers, no NUL, UTF-8, times in
years 1 to 9999 UTC, names and ids of at most 255 characters), or it is rejected.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ingest_gateway.edge.body import parse_json
from ingest_gateway.edge.pacing import Pacer
from ingest_gateway.surfaces.common import responses, write_body
from ingest_gateway.web import deps
from ingest_gateway.web.errors import ApiError
from ingest_gateway.web.responses import JSON
from ingest_gateway.web.routing import Surface
from ingest_gateway.write.accept import accept
from ingest_gateway.write.blocked_values import team_blocked
from ingest_gateway.write.build import Blocked, Received, identifiers_or_400, new_write, received
from ingest_gateway.write.validation import (
    DEPTH_RULE,
    check_containers,
    check_json,
    check_utf8,
    needs_walk,
)
from runtime.settings import Settings
from schemas import json_schemas as js
from schemas.limits import INT64_MAX, INT64_MIN, MAX_NAME_LENGTH
from schemas.messages import EventData, Identifiers, Operation, WriteMessage
from schemas.times import InvalidTime, parse_time

PREFIX = "/api/1.0"
API = "batch_api"

# The 000 surface's prefix and error format (``customers_api``), a tag of its own.
surface = Surface(PREFIX, "Batch API (api/1.0)", None)


class _Envelope(msgspec.Struct):
    # Items stay raw here so that each is decoded (and refused) on its own.
    items: list[msgspec.Raw]


# Ids may be JSON numbers; like every JSON integer, within the signed 64-bit range.
_Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]


class _Named(msgspec.Struct, kw_only=True, rename="camel", forbid_unknown_fields=True):
    email: str | None = None
    phone: str | None = None
    customer_id: str | _Int64 | None = None
    customer_external_id: str | _Int64 | None = None
    occurred_at: str | None = None  # read by ``schemas.times.parse_time``

    def identifiers(self) -> Identifiers:
        return Identifiers(
            email=self.email,
            phone=self.phone,
            customer_id=None if self.customer_id is None else str(self.customer_id),
            external_id=(
                None if self.customer_external_id is None else str(self.customer_external_id)
            ),
        )


class _EventItem(_Named, tag="event", tag_field="type"):
    event_name: str
    external_id: str | _Int64 | None = None
    event_id: str | None = None
    # Kept as sent: the gateway only checks it (``_event_body``), and re-encoding a
    # parsed copy would cost as much as parsing it did.
    body: msgspec.Raw = msgspec.Raw(b"{}")


class _CustomerItem(_Named, tag="customer", tag_field="type"):
    attributes: dict[str, Any] = {}


_item_decoder = msgspec.json.Decoder(_EventItem | _CustomerItem)
_envelope_decoder = msgspec.json.Decoder(_Envelope)


class ItemError(Exception):
    """One item cannot be accepted; the others go on."""


# Errors name the item's own fields rather than the canonical message's.
_ITEM_FIELDS = {
    "occurred_at": "occurredAt",
    "event.name": "eventName",
    "event.client_event_id": "eventId",
    "event.external_id": "externalId",
}


def _event_body(body: msgspec.Raw, settings: Settings) -> Any:
    """The event body, once checked.

    The body is kept as sent (msgspec skipped it: only its UTF-8 needs checking) and
    parsed only when its bytes show it may matter (``needs_walk``: deep, an escaped
    NUL, long numbers or exponents) or name a user agent (``build.new_write`` reads
    it); a parsed body is published as parsed, so that no number goes to the store in
    a form it cannot read back.
    """
    data = bytes(body)
    if data[:1] != b"{":
        raise ItemError("body must be a JSON object")
    max_depth = settings.max_json_depth
    mentions_agent = b"user_agent" in data or b"userAgent" in data
    if not mentions_agent and not needs_walk(data, max_depth, kept_as_sent=True):
        check_utf8(data, "The event body")
        return body
    return parse_json(data, max_depth, "The event body")


def _message(
    received: Received, team_id: int, raw: bytes, settings: Settings, blocked: Blocked
) -> WriteMessage:
    if len(raw) > settings.max_item_bytes:
        raise ItemError(f"The item is larger than the limit of {settings.max_item_bytes} bytes")
    try:
        item = _item_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ItemError(f"Invalid item: {exc}") from exc
    except RecursionError as exc:
        raise ItemError(DEPTH_RULE.format(max_depth=settings.max_json_depth)) from exc
    try:
        occurred_at = (
            None if item.occurred_at is None else parse_time(item.occurred_at, naive_is_utc=False)
        )
    except InvalidTime as exc:
        raise ItemError(f"Invalid occurredAt: {exc.reason}") from exc
    try:
        # (the team's blocked values checked here, to reject the item alone)
        identifiers = identifiers_or_400(item.identifiers(), blocked)
        op: Operation = "upsert_customer"
        attributes, event = None, None
        if isinstance(item, _EventItem):
            name = item.event_name
            if not name.strip() or len(name) > MAX_NAME_LENGTH or "\x00" in name:
                raise ItemError(f"The event name must be 1 to {MAX_NAME_LENGTH} characters")
            external_id = None if item.external_id is None else str(item.external_id)
            op, event = (
                "track_event",
                EventData(
                    name=name,
                    body=_event_body(item.body, settings),
                    external_id=external_id,
                    client_event_id=item.event_id,
                ),
            )
        else:
            if needs_walk(raw, settings.max_json_depth):
                check_json(item.attributes, settings.max_json_depth)
            attributes = item.attributes
        return new_write(
            received,
            team_id,
            op,
            identifiers,
            occurred_at,
            attributes=attributes,
            event=event,
            names=_ITEM_FIELDS,
            identifiers_normalised=True,
        )
    except ApiError as exc:
        raise ItemError(exc.message) from exc


_BODY_EXAMPLE = {
    "items": [
        {
            "type": "event",
            "email": "george@example.com",
            "eventName": "purchase",
            "eventId": "order-1",
            "occurredAt": "2024-05-01T12:00:00Z",
            "body": {"amount": 12.5},
        },
        {"type": "customer", "email": "george@example.com", "attributes": {"plan": "gold"}},
    ]
}
_RESULT_EXAMPLE = {
    "accepted": 1,
    "rejected": 1,
    "items": [
        {"index": 0, "status": "accepted", "id": "0192f0a4-7b1e-7c3e-9d2a-0c1b2d3e4f50"},
        {"index": 1, "status": "rejected", "error": "Invalid email: not an email address"},
    ],
}


# The body as OpenAPI describes it (``_EventItem``, ``_CustomerItem``; each item is
# decoded on its own, so a bad one is rejected alone, in the 200 answer). JSON null
# stands for a field left out.
_NAMED = {
    "email": js.nullable(js.EMAIL),
    "phone": js.nullable(
        {
            "type": "string",
            "description": "a phone number: E.164 (Phone), or a form with its country code"
            " that the phonenumbers library reads as a valid number (+1 415-555-2671)",
        }
    ),
    "customerId": js.nullable(js.CUSTOMER_ID),
    "customerExternalId": js.nullable({"anyOf": [js.EXTERNAL_ID, js.INTEGER_ID]}),
    "occurredAt": js.nullable(js.DATE_TIME),
}
# At least one identifier names the customer (several at once assert one person).
_ONE_NAMED = [
    {"properties": {name: {"not": js.NULL}}, "required": [name]}
    for name in ("email", "phone", "customerId", "customerExternalId")
]


def _item(kind: str, properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", *required],
        "properties": {"type": {"const": kind}, **_NAMED, **properties},
        "additionalProperties": False,
        "anyOf": _ONE_NAMED,
    }


_BODY_SCHEMA = js.object_of(
    {
        "items": {
            "type": "array",
            "minItems": 1,
            "description": "events and customers; an item that breaks its schema (or a"
            " limit: MAX_ITEM_BYTES, 32 KB by default) is rejected alone, in the 200 answer."
            " At most MAX_BATCH_ITEMS (a setting, 5,000 by default) items: 413 beyond.",
            "items": {
                "oneOf": [
                    _item(
                        "event",
                        {
                            "eventName": js.NAME,
                            "externalId": js.nullable(
                                {"anyOf": [{"type": "string", "pattern": js.NO_NUL}, js.INT64]}
                            ),
                            "eventId": js.nullable(js.TEXT),
                            "body": js.JSON_OBJECT,
                        },
                        "eventName",
                    ),
                    _item("customer", {"attributes": js.JSON_OBJECT}),
                ]
            },
        }
    },
    "items",
    **js.UNREAD_FIELDS,
)


@surface.post(
    "/batch",
    summary="Batch of events and customer upserts, with per-item results",
    openapi_extra=write_body({"an event and a customer": _BODY_EXAMPLE}, schema=_BODY_SCHEMA),
    responses=responses(
        (200, "Every item accepted or rejected on its own", _RESULT_EXAMPLE),
        (202, "As 200; the wait for the consumers (?wait=true) ran out", _RESULT_EXAMPLE),
        ("4XX", "Not a batch, or beyond a limit", {"error": "The batch has no items"}),
        (503, "Kafka did not acknowledge: nothing accepted", {"error": "Service unavailable"}),
    ),
)
async def batch(team_id: int, request: Request) -> Response:
    settings: Settings = deps.settings(request)
    raw = await request.body()
    try:
        envelope = _envelope_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ApiError(400, f'Expected {{"items": [...]}}: {exc}') from exc
    except RecursionError as exc:
        raise ApiError(400, DEPTH_RULE.format(max_depth=settings.max_json_depth)) from exc
    if not envelope.items:
        raise ApiError(400, "The batch has no items")
    if len(envelope.items) > settings.max_batch_items:
        raise ApiError(413, f"At most {settings.max_batch_items} items per request")
    check_containers(raw)
    pacer = Pacer()
    # (the path is fixed: ``received`` checks it once for every item)
    request_received = received(request, API)
    blocked = await team_blocked(request, team_id)
    messages: list[WriteMessage] = []
    results: list[dict[str, Any]] = []
    for index, item in enumerate(envelope.items):
        if pacer.due(len(item)):
            await pacer.turn()
        try:
            message = _message(request_received, team_id, bytes(item), settings, blocked)
        except ItemError as exc:
            results.append({"index": index, "status": "rejected", "error": str(exc)})
            continue
        messages.append(message)
        results.append({"index": index, "status": "accepted", "id": message.id})
    accepted = await accept(request, messages, refused=len(results) - len(messages))
    if accepted.outcomes is not None:
        for result in results:
            if "id" in result:
                result["outcome"] = accepted.outcomes.get(result["id"], "unknown")
    answer = {"accepted": len(messages), "rejected": len(results) - len(messages), "items": results}
    return JSON(answer, status_code=202 if accepted.timed_out else 200)
