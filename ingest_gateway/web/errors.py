"""Errors raised by routes, rendered in the error format of the API they came through.

Each API document has its own error envelope; a route raises ``ApiError`` and the
handler renders it with the formatter registered for the request's path prefix.
The write path's domain errors become status codes here and nowhere else
(``render_error``): a message too large for a record 413, the broker or the store
away 503 with ``Retry-After``.

Imports the responses, the write path's domain errors (``ingest_gateway.write.sink``,
``ingest_gateway.write.quotas``) and ``runtime.pg`` (which errors mean the store is away).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ingest_gateway.web.responses import JSON, DryRun
from ingest_gateway.write.quotas import BeyondBurst, QuotaExceeded
from ingest_gateway.write.sink import BrokerUnavailable, MessageTooLarge
from runtime.pg import is_unavailable

log = logging.getLogger(__name__)

ErrorFormatter = Callable[[int, str, str | None, str | None], Any]


class ApiError(Exception):
    """An error answer: HTTP status, a message, and optionally a description and field."""

    def __init__(
        self,
        status: int,
        message: str,
        description: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.description = description
        self.field = field
        self.headers = headers


class RequestTooLarge(Exception):
    """The request body passed the configured byte limit (``limit`` bytes)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit

    def api_error(self) -> ApiError:
        return ApiError(413, f"The request body is larger than the limit of {self.limit} bytes")


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
    headers = dict(error.headers or {})
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="ingest"'
    return JSON(body, status_code=error.status, headers=headers or None)


def _unavailable(request: Request, message: str, description: str) -> JSON:
    response = error_response(request, ApiError(503, message, description))
    response.headers["Retry-After"] = "1"
    return response


def render_error(request: Request, exc: Exception) -> Response | None:
    """The answer for an exception an endpoint raised, or None for a bug (a 500).

    Bad input is the endpoint's ``ApiError``; an outage is 503 with ``Retry-After``
    in the surface's format, whichever service is away.
    """
    if isinstance(exc, ApiError):
        return error_response(request, exc)
    if isinstance(exc, DryRun):  # ?validate=true: the tracking plan's verdicts
        return JSON(exc.body)
    if isinstance(exc, RequestTooLarge):
        return error_response(request, exc.api_error())
    if isinstance(exc, MessageTooLarge | BeyondBurst):
        return error_response(request, ApiError(413, str(exc)))
    if isinstance(exc, QuotaExceeded):
        return error_response(request, ApiError(429, str(exc), headers=exc.headers))
    if isinstance(exc, BrokerUnavailable):
        return _unavailable(
            request,
            "Service unavailable: the write was not accepted, please retry",
            "The message broker did not acknowledge the write in time.",
        )
    if is_unavailable(exc):
        log.warning("PostgreSQL unavailable: %s: %s", type(exc).__name__, exc)
        return _unavailable(
            request,
            "Service unavailable: please retry",
            "The store did not answer; nothing was accepted.",
        )
    if isinstance(exc, ClientDisconnect):
        # The client left mid-body (or a read deadline closed it): nothing was
        # accepted, and nobody is there to read an answer. Not an error of ours.
        log.info("client disconnected before its request was read: %s", request.url.path)
        return Response(status_code=400)
    return None
