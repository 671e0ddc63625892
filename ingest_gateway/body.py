"""Request bodies: a byte limit enforced on the stream, and JSON with a depth limit."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest_gateway.errors import ApiError, RequestTooLarge, formatter_for
from ingest_gateway.responses import JSON


def too_large_response(scope: Scope, max_bytes: int) -> JSON:
    message = f"The request body is larger than the limit of {max_bytes} bytes"
    return JSON(formatter_for(scope["path"])(413, message, None, None), status_code=413)


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes``, counting streamed bytes (Content-Length can lie)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await too_large_response(scope, self.max_bytes)(scope, receive, send)
                return
        seen = 0
        limit = self.max_bytes

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise RequestTooLarge
            return message

        await self.app(scope, limited_receive, send)


def check_depth(value: Any, max_depth: int) -> None:
    """Raise ``ApiError(400)`` when containers nest deeper than ``max_depth``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise ApiError(400, f"JSON nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def check_storable(value: Any) -> None:
    """PostgreSQL jsonb refuses NUL characters; refuse them here, not in a consumer."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ApiError(400, "JSON strings must not contain the NUL character (\\u0000)")
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_json(raw: bytes, max_depth: int) -> Any:
    if not raw.strip():
        raise ApiError(400, "The request body is empty; JSON was expected")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson refuses lone surrogates and nesting past 1024 levels too.
        raise ApiError(400, f"The request body is not valid JSON: {exc}") from exc
    check_depth(value, max_depth)
    check_storable(value)
    return value


async def read_json(request: Request, max_depth: int) -> Any:
    return parse_json(await request.body(), max_depth)


async def read_key_values(request: Request, max_depth: int) -> dict[str, Any]:
    """Attributes sent as a JSON object, urlencoded form or multipart form."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await request.form()
        pairs = {key: value for key, value in form.items() if isinstance(value, str)}
        check_storable(pairs)
        return pairs
    raw = await request.body()
    if content_type == "application/x-www-form-urlencoded" and not raw.lstrip().startswith(b"{"):
        try:
            pairs = dict(parse_qsl(raw.decode(), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError as exc:
            raise ApiError(400, "The form body is not valid UTF-8") from exc
        check_storable(pairs)
        return pairs
    if not raw.strip():
        return {}
    value = parse_json(raw, max_depth)
    if not isinstance(value, dict):
        raise ApiError(400, "Expected a JSON object of key: value pairs")
    return value
