"""Request bodies: a byte limit enforced on the stream, a ``Content-Encoding`` undone
under the same limit (``ingest_gateway.edge.content_encoding``); JSON, urlencoded and
multipart forms read strictly, with the rules of ``ingest_gateway.write.validation``.

Every reader of a body (these, and a surface's own ``request.body()``) reads it
through ``BodyLimitMiddleware``: no surface sees a body still encoded, or one beyond
the limit.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest_gateway.edge.content_encoding import decoding
from ingest_gateway.edge.pacing import SLICE_BYTES, Pacer
from ingest_gateway.web.errors import ApiError, RequestTooLarge, formatter_for
from ingest_gateway.web.responses import JSON
from ingest_gateway.write.validation import (
    DEPTH_RULE,
    JSON_NUMBER_RULE,
    OutsideStrings,
    check_containers,
    check_json_text,
    decode_text,
    json_text_problem,
    might_break,
    refuse_json_text,
)

# As Starlette's form parser: fields per multipart body.
MAX_FORM_FIELDS = 1000


def too_large_response(scope: Scope, max_bytes: int) -> JSON:
    """The 413 of a declared Content-Length over the limit, before the app is called."""
    error = RequestTooLarge(max_bytes).api_error()
    body = formatter_for(scope["path"])(error.status, error.message, None, None)
    return JSON(body, status_code=error.status)


def _declares_more_than(value: bytes, limit: int) -> bool:
    # A Content-Length of thousands of digits is beyond any limit, and int() of it fails.
    digits = value.lstrip(b"0")
    return value.isdigit() and (len(digits) > len(str(limit)) or int(digits or b"0") > limit)


# Where the bytes of the body received so far are left, for the metrics.
BODY_BYTES_KEY = "ingest.body_bytes"


class BodyLimitMiddleware:
    """Refuses bodies over ``max_bytes``, counting streamed bytes (Content-Length can lie);
    a body with a ``Content-Encoding`` is decoded as it streams, to at most ``max_bytes``
    too. A request without one costs a comparison per header (the loop is there anyway)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # A Content-Length with fewer digits than the limit is within it.
        self._digits = len(str(max_bytes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoding = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                if len(value) >= self._digits and _declares_more_than(value, self.max_bytes):
                    await too_large_response(scope, self.max_bytes)(scope, receive, send)
                    return
            elif name == b"content-encoding":  # twice: stacked codings, as one list
                encoding = value if encoding is None else encoding + b"," + value
        seen = 0
        limit = self.max_bytes

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                scope[BODY_BYTES_KEY] = seen
                if seen > limit:
                    raise RequestTooLarge(limit)
            return message

        if encoding is None:
            await self.app(scope, limited_receive, send)
        else:
            await self.app(scope, decoding(limited_receive, encoding, limit), send)


_json = msgspec.json.Decoder()


def _decoded(raw: bytes, max_depth: int, what: str) -> Any:
    """``raw`` parsed, or ``ApiError`` when it is not JSON."""
    if not raw.strip():
        raise ApiError(400, f"{what} is empty; JSON was expected")
    try:
        return _json.decode(raw)
    except msgspec.ValidationError as exc:  # a number beyond a double, or 4300 digits
        raise ApiError(400, f"{JSON_NUMBER_RULE}: {exc}") from exc
    except msgspec.DecodeError as exc:  # also invalid UTF-8 and lone surrogates
        raise ApiError(400, f"{what} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ApiError(400, DEPTH_RULE.format(max_depth=max_depth)) from exc


def parse_json(raw: bytes, max_depth: int, what: str = "The request body") -> Any:
    """``raw`` as JSON that keeps every rule, or ``ApiError(400)`` saying why not.

    msgspec rather than orjson: it keeps integers beyond 64 bits exact (orjson makes
    them floats), so that they are refused rather than silently changed. The rules are
    read from the text (``validation.check_json_text``): the value is walked only
    when one is broken, to name where. For a message or an item of a body whose cost
    its reader bounded (``validation.check_containers``); a whole body is read with
    ``read_json``, which bounds it and gives the event loop turns while it checks.
    """
    try:  # (the usual case in one call: the Segment loop parses each of its messages)
        value = _json.decode(raw)
    except (msgspec.MsgspecError, RecursionError):
        value = _decoded(raw, max_depth, what)  # (raises, saying why)
    if might_break(raw, max_depth):  # (most texts stop here: no call beyond)
        check_json_text(raw, value, max_depth)
    return value


async def _body_json(raw: bytes, max_depth: int) -> Any:
    """A whole body as JSON that keeps every rule: its cost bounded before parsing
    (``validation.check_containers``), its text outside strings read a slice at a time,
    with turns of the event loop in between."""
    check_containers(raw)
    value = _decoded(raw, max_depth, "The request body")
    if might_break(raw, max_depth):
        pacer = Pacer()
        outside = OutsideStrings(raw)
        while read := outside.feed(SLICE_BYTES):
            await pacer.worked(read)
        found = json_text_problem(raw, outside.result(), max_depth)
        if found is not None:
            refuse_json_text(raw, value, found, max_depth)
    return value


async def read_json(request: Request, max_depth: int) -> Any:
    """The request body as JSON that keeps every rule (``parse_json``), for any size."""
    return await _body_json(await request.body(), max_depth)


def _charset(content_type: str | bytes, default: str = "utf-8") -> str:
    """The charset a Content-Type declares, else ``default``."""
    _, options = parse_options_header(content_type)
    charset = options.get(b"charset")
    return default if charset is None else charset.decode("latin-1")


def _urlencoded(raw: bytes, charset: str) -> dict[str, str]:
    # Split and unquoted byte for byte (latin-1 maps each byte to one character), then
    # decoded strictly: a %E9 that is not UTF-8 is refused, not replaced by U+FFFD.
    fields = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1"):
        field = decode_text(name.encode("latin-1"), charset, "form field name")
        fields[field] = decode_text(value.encode("latin-1"), charset, field)
    return fields


@lru_cache(maxsize=64)
def _ascii_compatible(charset: str) -> bool:
    probe = bytes(range(32, 127))
    try:
        return probe.decode(charset) == probe.decode("ascii")
    except (LookupError, ValueError):
        return False


class _MultipartFields:
    """The text fields of a multipart body, each decoded strictly in its own charset.

    A part's charset is the one its Content-Type declares, else the request's, else
    UTF-8 (RFC 7578 4.4). Field names sit in the part headers: they are read in the
    request's charset when that one writes ASCII as ASCII, else as UTF-8. File parts
    (with a filename) are not attributes and are left out.
    """

    def __init__(self, charset: str) -> None:
        self.charset = charset
        self.names_charset = charset if _ascii_compatible(charset) else "utf-8"
        self.fields: dict[str, str] = {}
        self._count = 0
        self._headers: dict[bytes, bytes] = {}
        self._header = (b"", b"")
        self._data = bytearray()

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_part_data": self._part_data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._headers, self._header, self._data = {}, (b"", b""), bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header = (self._header[0] + data[start:end], self._header[1])

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._header = (self._header[0], self._header[1] + data[start:end])

    def _header_end(self) -> None:
        self._headers[self._header[0].lower()] = self._header[1]
        self._header = (b"", b"")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._data += data[start:end]

    def _end(self) -> None:
        _, disposition = parse_options_header(self._headers.get(b"content-disposition"))
        if b"name" not in disposition:
            raise ApiError(400, "A multipart part has no name in its Content-Disposition")
        if b"filename" in disposition:
            return
        self._count += 1
        if self._count > MAX_FORM_FIELDS:
            raise ApiError(400, f"At most {MAX_FORM_FIELDS} multipart fields")
        name = decode_text(disposition[b"name"], self.names_charset, "form field name")
        charset = _charset(self._headers.get(b"content-type", b""), self.charset)
        self.fields[name] = decode_text(bytes(self._data), charset, name)


def _multipart(raw: bytes, content_type: str) -> dict[str, str]:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise ApiError(400, "The multipart body declares no boundary in its Content-Type")
    reader = _MultipartFields(_charset(content_type))
    try:
        parser = MultipartParser(boundary, reader.callbacks())
        parser.write(raw)
        parser.finalize()
    except FormParserError as exc:
        raise ApiError(400, f"Invalid multipart body: {exc}") from exc
    return reader.fields


async def read_key_values(request: Request, max_depth: int) -> dict[str, Any]:
    """Attributes sent as a JSON object, urlencoded form or multipart form (any charset)."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";")[0].strip().lower()
    raw = await request.body()
    if media == "multipart/form-data":
        return _multipart(raw, content_type)
    if media == "application/x-www-form-urlencoded" and not raw.lstrip().startswith(b"{"):
        return _urlencoded(raw, _charset(content_type))
    if not raw.strip():
        return {}
    value = await _body_json(raw, max_depth)
    if not isinstance(value, dict):
        raise ApiError(400, "Expected a JSON object of key: value pairs")
    return value
