"""Examples of document 001 (user + event objects), as the document gives them.

Shared by the surface's OpenAPI description and its tests.
"""

from __future__ import annotations

from typing import Any

CREATED: dict[str, Any] = {
    "results": {"message": "Event created", "email": "Event was created for the specified user"}
}

MISSING_EVENT: dict[str, Any] = {
    "errors": [
        {
            "message": "Missing event information",
            "description": "Please send event information along with user",
        }
    ]
}

NO_USER: dict[str, Any] = {
    "errors": [
        {
            "message": "User not found",
            "description": "The user must exist in the database beforehand.",
        }
    ]
}
