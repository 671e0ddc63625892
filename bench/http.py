"""A minimal HTTP/1.1 keep-alive client on asyncio streams.

The load generators share two cores with everything they measure, so they send
pre-built request bytes and read just the status line, Content-Length and body:
an order of magnitude less CPU per request than a general client such as httpx.
"""

from __future__ import annotations

import asyncio
import contextlib


def build_request(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class HttpError(Exception):
    """The connection broke or the answer was not HTTP/1.1 as expected."""


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        self._reader, self._writer = reader, writer
        return reader, writer

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one pre-built request; (status, body). Reconnects once on a stale socket."""
        for attempt in (0, 1):
            if self._reader is None or self._writer is None:
                reader, writer = await self._open()
            else:
                reader, writer = self._reader, self._writer
            try:
                writer.write(raw)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                lower = head.lower()
                at = lower.find(b"\r\ncontent-length:")
                if at < 0:
                    raise HttpError("answer without Content-Length")
                end = lower.find(b"\r\n", at + 2)
                length = int(lower[at + 17 : end].strip())
                body = await reader.readexactly(length) if length else b""
                if b"\r\nconnection: close" in lower:
                    await self.close()
                return status, body
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                await self.close()
                if attempt:
                    raise HttpError(str(exc)) from exc
        raise HttpError("unreachable")

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
