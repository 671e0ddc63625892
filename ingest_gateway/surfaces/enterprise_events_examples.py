"""Examples of document 003 (events with property records), as the document gives them.

Shared by the surface's OpenAPI description and its tests; the request's JSON Schema
is made of ``schemas.json_schemas``' parts.
"""

from __future__ import annotations

from typing import Any

from schemas.json_schemas import (
    CUSTOMER_ID,
    INT64,
    JSON_OBJECT,
    JSON_VALUE,
    NULL,
    not_blank,
    nullable,
    object_of,
)
from schemas.limits import MAX_NAME_LENGTH

MAX_PROPERTY_RECORDS = 1000

# Ids as JSON strings (or numbers): an unknown one is 422, which no schema can foresee.
_TYPE_ID = CUSTOMER_ID | {"description": "the id of one of the team's event types"}
_TEXT_ID = {"type": "string", "maxLength": MAX_NAME_LENGTH, "pattern": not_blank()}
CREATE_SCHEMA: dict[str, Any] = object_of(
    {
        "event": object_of(
            {
                "event_type_id": _TYPE_ID,
                "customer_id": CUSTOMER_ID
                | {"description": "the id of one of the team's customers"},
                "external_id": nullable({"anyOf": [_TEXT_ID, INT64]}),
                "secondary_external_id": NULL | {"description": "not stored: null or left out"},
                "data": nullable(
                    {
                        "anyOf": [
                            JSON_OBJECT,
                            {
                                "type": "string",
                                "format": "json-object",
                                "description": "a JSON object (a JsonObject), as its JSON"
                                " text: what no pattern can say, the format names",
                            },
                        ]
                    }
                ),
            },
            "event_type_id",
            "customer_id",
        ),
        "property_records": nullable(
            {
                "type": "array",
                "maxItems": MAX_PROPERTY_RECORDS,
                "items": object_of(
                    {"property_id": {"anyOf": [_TEXT_ID, INT64]}, "property_value": JSON_VALUE},
                    "property_id",
                    "property_value",
                ),
            }
        ),
    },
    "event",
)

CREATE: dict[str, Any] = {
    "event": {
        "event_type_id": "8bed991c68a470e7aaeffbf048",
        "customer_id": "85bc5819e09dab95437552ce79",
        "external_id": "aaabbbccc",
    },
    "property_records": [{"property_id": "has_purchase", "property_value": "true"}],
}

EVENT: dict[str, Any] = {
    "event_id": "8bed991c68a470e7aaeffbf048",
    "event_type_id": "8bed991c68a470e7aaeffbf048",
    "customer_id": "85bc5819e09dab95437552ce79",
    "external_id": "157613",
    "data": '{"test":10,"test2":20}',
    "created_at": "2017-06-20 16:59:49",
    "secondary_external_id": None,
    "state": 1,
}

LIST: dict[str, Any] = {
    "data": {
        "events": [
            EVENT,
            {
                **EVENT,
                "event_id": "8bda8a4854394325e2748a5005",
                "external_id": "3624",
                "created_at": "2018-04-20 15:58:04",
            },
        ],
        "total_items": 114,
    }
}

RECORDS: dict[str, Any] = {
    "data": {
        "property_records": [{"property_id": "has_purchase", "property_value": "true"}],
        "total_items": 1,
    }
}

UNKNOWN_TYPE: dict[str, Any] = {
    "error": {
        "code": 422,
        "message": "Unknown event_type_id '8bed991c68a470e7aaeffbf048'",
        "field": "event.event_type_id",
    }
}

NOT_FOUND: dict[str, Any] = {
    "error": {"code": 404, "message": "Event 8bed991c68a470e7aaeffbf048 was not found"}
}

BAD_SORT: dict[str, Any] = {
    "error": {"code": 400, "message": "Invalid sort_field 'x'", "field": "sort_field"}
}
