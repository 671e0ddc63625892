"""Errors raised by routes, rendered in the error format of the API they came through.

Each API document has its own error envelope; a route raises ``ApiError`` and the
handler renders it with the formatter registered for the request's path prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request

from ingest_gateway.responses import JSON

ErrorFormatter = Callable[[int, str, str | None, str | None], Any]


class ApiError(Exception):
    """An error answer: HTTP status, a message, and optionally a description and field."""

    def __init__(
        self, status: int, message: str, description: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.description = description
        self.field = field


class RequestTooLarge(Exception):
    """The request body passed the configured byte limit."""


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge the write in time: the write is not accepted."""


def default_format(status: int, message: str, description: str | None, field: str | None) -> Any:
    return {"error": message}


_formatters: list[tuple[str, ErrorFormatter]] = []


def register_error_format(path_prefix: str, formatter: ErrorFormatter) -> None:
    """Make errors under ``path_prefix`` render with ``formatter`` (longest prefix wins)."""
    _formatters.append((path_prefix, formatter))
    _formatters.sort(key=lambda item: len(item[0]), reverse=True)


def formatter_for(path: str) -> ErrorFormatter:
    for prefix, formatter in _formatters:
        if path.startswith(prefix):
            return formatter
    return default_format


def error_response(request: Request, error: ApiError) -> JSON:
    body = formatter_for(request.url.path)(
        error.status, error.message, error.description, error.field
    )
    headers = {"WWW-Authenticate": 'Basic realm="ingest"'} if error.status == 401 else None
    return JSON(body, status_code=error.status, headers=headers)
