"""Examples of document 003 (events with property records), as the document gives them.

Shared by the surface's OpenAPI description and its tests.
"""

from __future__ import annotations

from typing import Any

_ID = {"type": "string", "description": "a decimal id", "pattern": "^[0-9]+$"}
CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["event"],
    "properties": {
        "event": {
            "type": "object",
            "required": ["event_type_id", "customer_id"],
            "properties": {
                "event_type_id": _ID,
                "customer_id": _ID,
                "external_id": {"type": "string"},
                "data": {"type": "string", "description": "a JSON object, as text"},
            },
        },
        "property_records": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["property_id", "property_value"],
                "properties": {
                    "property_id": {"type": "string"},
                    "property_value": {"type": "string"},
                },
            },
        },
    },
}

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
