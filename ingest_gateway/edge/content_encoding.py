"""A request body's ``Content-Encoding``, undone as the body streams in, for every surface.

``decoding`` wraps an ASGI ``receive`` (``body.BodyLimitMiddleware`` calls it when
the request names an encoding): ``gzip`` (or ``x-gzip``, one member or several in a
row) is inflated chunk by chunk, and refused with 413 as soon as what it inflates to
passes the body limit, or ``MAX_INFLATION_RATIO`` times the compressed bytes received
(beyond its first MiB), so a bomb never inflates; a broken or truncated stream is
400; ``identity`` passes as sent; any other encoding is 415 once the body is read. The
errors are ``ApiError``: each surface renders them in its own format.

Imports: the error layer only.
"""

from __future__ import annotations

import zlib

from starlette.types import Message, Receive

from ingest_gateway.web.errors import ApiError

_GZIP = 16 + zlib.MAX_WBITS
# What a compressed body may inflate to beyond its first MiB: at most this many times
# the compressed bytes received so far. JSON batches compress 5 to 30 times; deflate
# allows ~1,000, which only a bomb reaches (a few KB of gzip that would cost the
# gateway 5 MB of parsing each).
MAX_INFLATION_RATIO = 200
FREE_INFLATION_BYTES = 1024 * 1024


class GzipInflater:
    """Inflates a gzip stream chunk by chunk; ``ApiError(413)`` once the output passes
    ``limit`` bytes, ``ApiError(400)`` when the stream is broken."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0  # inflated so far
        self.fed = 0  # compressed bytes received so far
        self._inflater = zlib.decompressobj(_GZIP)

    def _room(self) -> int:
        if self.size > self.limit:
            raise ApiError(
                413,
                f"The request body is larger than the limit of {self.limit} bytes"
                " once decompressed",
            )
        ratio_limit = max(FREE_INFLATION_BYTES, MAX_INFLATION_RATIO * self.fed)
        if self.size > ratio_limit:
            raise ApiError(
                413,
                f"The gzip body inflates more than {MAX_INFLATION_RATIO} times its"
                f" compressed size (beyond its first {FREE_INFLATION_BYTES} bytes)",
            )
        return min(self.limit, ratio_limit) + 1 - self.size  # >= 1: 0 means "no limit"

    def _inflated(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        return chunk

    def feed(self, data: bytes) -> bytes:
        self.fed += len(data)
        out = bytearray()
        try:
            while data:
                out += self._inflated(self._inflater.decompress(data, self._room()))
                if self._inflater.eof:  # another member may follow
                    data = self._inflater.unused_data
                    if data:
                        self._inflater = zlib.decompressobj(_GZIP)
                else:
                    data = self._inflater.unconsumed_tail
            self._room()
        except zlib.error as exc:
            raise ApiError(400, f"The gzip body is corrupt: {exc}") from exc
        return bytes(out)

    def finish(self) -> bytes:
        try:
            rest = self._inflated(self._inflater.flush(self._room()))
        except zlib.error as exc:
            raise ApiError(400, f"The gzip body is corrupt: {exc}") from exc
        self._room()
        if not self._inflater.eof:
            raise ApiError(400, "The gzip body is truncated")
        return rest


def decoding(receive: Receive, content_encoding: bytes, limit: int) -> Receive:
    """``receive`` with the body's ``Content-Encoding`` undone, inflated to at most ``limit``
    bytes."""
    encoding = content_encoding.decode("latin-1").strip().lower()
    if encoding in ("", "identity"):
        return receive
    if encoding not in ("gzip", "x-gzip"):

        async def refused() -> Message:
            raise ApiError(415, f"Unsupported Content-Encoding {encoding!r}; send gzip or none")

        return refused
    inflater = GzipInflater(limit)

    async def inflated() -> Message:
        message = await receive()
        if message["type"] != "http.request":
            return message
        body = inflater.feed(message.get("body", b""))
        if not message.get("more_body", False):
            body += inflater.finish()
        return {**message, "body": body}

    return inflated
