"""A minimal HTTP/1.1 keep-alive client on an asyncio protocol.

The load generators share two cores with everything they measure, so they send
pre-built request bytes and parse just the status line, Content-Length and body,
straight from the protocol's buffer (no stream reader, no header objects): a small
fraction of the CPU per request of a general client such as httpx.
"""

from __future__ import annotations

import asyncio


def build_request(method: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class HttpError(Exception):
    """The connection broke or the answer was not HTTP/1.1 as expected."""


class _Answers(asyncio.Protocol):
    """Collects one answer at a time: (status, body, the server will close)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            waiter.set_exception(HttpError("answer without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else len(head)])
        total = end + 4 + length
        if len(buffer) < total:
            return
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        waiter.set_result((int(head[9:12]), body, b"\r\nconnection: close" in head))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(f"connection lost: {exc}"))


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._answers: _Answers | None = None

    async def _open(self) -> _Answers:
        loop = asyncio.get_running_loop()
        transport, answers = await loop.create_connection(_Answers, self.host, self.port)
        # uvloop may call connection_made after create_connection has returned.
        answers.transport = transport
        self._answers = answers
        return answers

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one pre-built request; (status, body). Reconnects once on a stale socket."""
        for attempt in (0, 1):
            answers = self._answers
            if answers is None or answers.lost:
                try:
                    answers = await self._open()
                except OSError as exc:
                    raise HttpError(str(exc)) from exc
            assert answers.transport is not None
            answers.waiter = asyncio.get_running_loop().create_future()
            answers.transport.write(raw)
            try:
                status, body, closing = await answers.waiter
            except HttpError:
                await self.close()
                if attempt:
                    raise
                continue
            if closing:
                await self.close()
            return status, body
        raise HttpError("unreachable")

    async def close(self) -> None:
        answers, self._answers = self._answers, None
        if answers is not None and answers.transport is not None:
            answers.transport.close()
