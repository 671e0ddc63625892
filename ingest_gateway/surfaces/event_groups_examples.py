"""Examples of document 002 (event groups), as the document gives them.

Shared by the surface's OpenAPI description and its tests.
"""

from __future__ import annotations

from typing import Any

GROUP: dict[str, Any] = {
    "event_group_id": "86e05affc7a7abefcd513ab400",
    "name": "Shopping Cart",
    "text_id": "shopping_cart",
    "state": 1,
}

LIST: dict[str, Any] = {
    "data": {
        "event_groups": [
            GROUP,
            {
                "event_group_id": "83d1d11ea3884a5d33253fe214",
                "name": "Tasks",
                "text_id": "tasks",
                "state": 1,
            },
            {
                "event_group_id": "8dcc271b9b80de8b3d1a525052",
                "name": "Points",
                "text_id": "points",
                "state": 1,
            },
            {
                "event_group_id": "81c6c712e8888c73d480cbbdb0",
                "name": "Shipments",
                "text_id": "shipments",
                "state": 1,
            },
        ],
        "total_items": 4,
    }
}

NOT_FOUND: dict[str, Any] = {"error": {"code": 404, "message": "Event group 42 was not found"}}

BAD_SORT: dict[str, Any] = {
    "error": {
        "code": 400,
        "message": "Invalid sort_direction; one of: ASC, DESC",
        "field": "sort_direction",
    }
}

UNAUTHORISED: dict[str, Any] = {"error": {"code": 401, "message": "Missing API key"}}

TYPES: dict[str, Any] = {
    "data": {"event_types": [{"event_type_id": "7", "name": "cart.updated"}], "total_items": 1}
}
