"""Examples, JSON Schemas and answers of the Segment-spec surface (``segment_api``).

Data only: the calls as Segment's HTTP tracking API documents them, and example
answers in the surface's error format (``segment_api.refusal``); shared by
the surface's OpenAPI description and its tests. Imports ``schemas`` only (its JSON
Schemas are made of ``schemas.json_schemas``' parts).
"""

from __future__ import annotations

from typing import Any

from schemas.json_schemas import (
    DATE_TIME_UTC,
    EXTERNAL_ID,
    IDENTIFIER_TEXT,
    INT64,
    INTEGER_ID,
    JSON_OBJECT,
    JSON_VALUE,
    NAME,
    NO_NUL,
    NULL,
    TEXT,
    UNREAD_FIELDS,
    nullable,
    object_of,
)
from schemas.limits import MAX_SEGMENT_BATCH_MESSAGES, MAX_SEGMENT_MESSAGE_BYTES

CONTEXT: dict[str, Any] = {
    "ip": "203.0.113.7",
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
    "library": {"name": "analytics.js", "version": "2.1.0"},
    "page": {"path": "/pricing", "url": "https://example.com/pricing"},
}

IDENTIFY: dict[str, Any] = {
    "userId": "97980cfea0067",
    "anonymousId": "507f191e810c19729de860ea",
    "traits": {"name": "Peter Gibbons", "email": "peter@example.com", "plan": "premium"},
    "context": CONTEXT,
    "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093db",
    "timestamp": "2024-05-01T12:00:00.000Z",
}
TRACK: dict[str, Any] = {
    "userId": "97980cfea0067",
    "event": "Item Purchased",
    "properties": {"name": "Leap to Conclusions Mat", "revenue": 14.99},
    "context": CONTEXT,
    "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093dc",
    "originalTimestamp": "2024-05-01T12:00:00.000Z",
    "sentAt": "2024-05-01T12:00:01.000Z",
}
PAGE: dict[str, Any] = {
    "anonymousId": "507f191e810c19729de860ea",
    "name": "Pricing",
    "category": "Docs",
    "properties": {"path": "/pricing", "referrer": "https://example.com/"},
    "context": CONTEXT,
}
SCREEN: dict[str, Any] = {
    "userId": "97980cfea0067",
    "name": "Home",
    "properties": {"variation": "blue signup button"},
}
GROUP: dict[str, Any] = {
    "userId": "97980cfea0067",
    "groupId": "0e8c78ea9d97a7b8185e8632",
    "traits": {"name": "Initech", "industry": "Technology", "employees": 329},
}
ALIAS: dict[str, Any] = {"previousId": "507f191e810c19729de860ea", "userId": "97980cfea0067"}
BATCH: dict[str, Any] = {
    "batch": [
        {"type": "identify", **IDENTIFY},
        {"type": "track", **TRACK},
        {"type": "page", **PAGE},
    ],
    "sentAt": "2024-05-01T12:00:01.000Z",
    "context": {"library": {"name": "analytics-python", "version": "2.3.3"}},
}

SUCCESS: dict[str, Any] = {"success": True}
# Refusals, as ``segment_api.refusal`` makes them: a message and Segment's ``code``.
_NO: dict[str, Any] = {"success": False}
INVALID = _NO | {"message": "batch[1].event: is required", "code": "invalid_request"}
UNAUTHORISED = _NO | {"message": "Missing write key", "code": "unauthorized"}
NOT_FOUND = _NO | {"message": "No project has this write key", "code": "not_found"}
FORBIDDEN = _NO | {
    "message": "The origin https://elsewhere.example is not allowed to send with this write key",
    "code": "forbidden",
}
UNSUPPORTED = _NO | {"code": "unsupported_encoding"}
UNSUPPORTED["message"] = "Unsupported Content-Encoding 'br'; send gzip or none"
TOO_LARGE = _NO | {
    "message": f"batch[0]: larger than the limit of {MAX_SEGMENT_MESSAGE_BYTES} bytes of JSON",
    "code": "request_too_large",
}
UNAVAILABLE = _NO | {"code": "service_unavailable"}
UNAVAILABLE["message"] = "Service unavailable: the write was not accepted, please retry"

# -- JSON Schemas ------------------------------------------------------------------
# JSON null stands for a field left out, as the surface reads it.

# An id as sent: text that cleans (IdentifierText) or a number; junk allowed, and ignored
# beside a usable userId or anonymousId (_USABLE).
_ID: dict[str, Any] = {"anyOf": [IDENTIFIER_TEXT, INT64, NULL]}
_USABLE_ID: dict[str, Any] = {"anyOf": [EXTERNAL_ID, INTEGER_ID]}
_TIME = nullable(DATE_TIME_UTC)
_OBJECT = nullable(JSON_OBJECT)
_IGNORED = JSON_VALUE | {"description": "accepted and ignored"}
_COMMON: dict[str, Any] = {
    "userId": _ID | {"description": "your id of the person (a string or a number)"},
    "anonymousId": _ID | {"description": "the device's or browser's id before the person is known"},
    "messageId": nullable(NAME)
    | {"description": "the client's id of the call: a resend with the same id is stored once"},
    "timestamp": _TIME | {"description": "when it happened (else derived from originalTimestamp)"},
    "originalTimestamp": _TIME | {"description": "the device's clock at the call"},
    "sentAt": _TIME | {"description": "the device's clock when sent (corrects its skew)"},
    "receivedAt": JSON_VALUE | {"description": "ignored: the gateway's own receive time is used"},
    "context": _OBJECT
    | {
        "description": "where and how it was sent (ip defaults to the sender's address;"
        " userAgent is the end user's agent)"
    },
    "integrations": _IGNORED,
    "writeKey": nullable({"type": "string", "pattern": NO_NUL})
    | {"description": "the write key, when not sent as the username of HTTP Basic"},
    "type": JSON_VALUE | {"description": "ignored: the path gives the call's type"},
}
# userId or anonymousId names the customer: at least one of them usable.
_ONE_ID = [
    {"properties": {field: _USABLE_ID}, "required": [field]} for field in ("userId", "anonymousId")
]


def _call(
    name: str, properties: dict[str, Any], required: tuple[str, ...] = (), *, any_id: bool = True
) -> dict[str, Any]:
    more: dict[str, Any] = {"anyOf": _ONE_ID} if any_id else {}
    return object_of(
        _COMMON | properties,
        *required,
        description=f"{'an' if name[0] in 'aeiou' else 'a'} {name} call",
        **more,
    )


_NAME = nullable(TEXT)
CALL_SCHEMAS: dict[str, dict[str, Any]] = {
    "identify": _call("identify", {"traits": _OBJECT}),
    "track": _call("track", {"event": NAME, "properties": _OBJECT}, ("event",)),
    "page": _call("page", {"name": _NAME, "category": _NAME, "properties": _OBJECT}),
    "screen": _call("screen", {"name": _NAME, "category": _NAME, "properties": _OBJECT}),
    "group": _call("group", {"groupId": _USABLE_ID, "traits": _OBJECT}, ("groupId",)),
    "alias": _call(
        "alias",
        {"userId": _USABLE_ID, "previousId": _USABLE_ID, "anonymousId": _IGNORED},
        ("userId", "previousId"),
        any_id=False,
    ),
}
CALL_EXAMPLES: dict[str, dict[str, Any]] = {
    "identify": IDENTIFY,
    "track": TRACK,
    "page": PAGE,
    "screen": SCREEN,
    "group": GROUP,
    "alias": ALIAS,
}


def _typed(kind: str) -> dict[str, Any]:
    schema = dict(CALL_SCHEMAS[kind])
    schema["properties"] = schema["properties"] | {"type": {"const": kind}}
    schema["required"] = ["type", *schema.get("required", [])]
    return schema


BATCH_SCHEMA: dict[str, Any] = object_of(
    {
        "batch": {
            "type": "array",
            "maxItems": MAX_SEGMENT_BATCH_MESSAGES,
            "items": {"oneOf": [_typed(kind) for kind in CALL_SCHEMAS]},
        },
        "sentAt": _COMMON["sentAt"],
        "context": _OBJECT | {"description": "for the messages that have none"},
        "integrations": UNREAD_FIELDS["additionalProperties"],
        "writeKey": _COMMON["writeKey"],
    },
    "batch",
    **UNREAD_FIELDS,
)
