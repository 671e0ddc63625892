"""Slow and abusive clients: deadlines on receiving a request, keep-alive, the connection cap.

The gateway here has timeouts of a few seconds, each different (and different from
uvicorn's default keep-alive of 5 s), so a closed connection tells which one closed
it; it runs two worker processes, which proves the protocol reaches uvicorn's spawned
workers. Clients speak HTTP/1.1 on raw sockets, to send exactly what a slow or
abusive client sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.settings import Settings
from tests.conftest import Team, private_gateway
from tests.support import Process, eventually

pytestmark = pytest.mark.services

HEADER_S = 1.0
BODY_S = 2.0
KEEP_ALIVE_S = 3
# How late a timer may fire on a loaded 2-core machine. HEADER_S + LATE_S stays below
# KEEP_ALIVE_S, and KEEP_ALIVE_S + LATE_S below uvicorn's default keep-alive (5 s).
LATE_S = 1.5
DRIP_S = 0.2  # a trickling client sends one byte this often
CAP = 3  # MAX_CONNECTIONS of the capped gateway


@pytest.fixture(scope="module")
async def slow_gateway(settings: Settings, log_dir: Path) -> AsyncIterator[tuple[str, Process]]:
    """A gateway with short deadlines, in two worker processes."""
    async with private_gateway(
        settings,
        log_dir,
        "gateway-slow-clients",
        gateway_workers=2,
        header_timeout_s=HEADER_S,
        body_timeout_s=BODY_S,
        keep_alive_timeout_s=KEEP_ALIVE_S,
    ) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def port(slow_gateway: tuple[str, Process]) -> int:
    return int(slow_gateway[0].rsplit(":", 1)[1])


@pytest.fixture(scope="module")
async def capped_port(settings: Settings, log_dir: Path) -> AsyncIterator[int]:
    """A gateway serving at most CAP connections, which it keeps alive for long."""
    async with private_gateway(
        settings, log_dir, "gateway-capped", max_connections=CAP, keep_alive_timeout_s=60
    ) as (base, _):
        yield int(base.rsplit(":", 1)[1])


async def kept_alive(port: int) -> Conn:
    """A connection that has had one request answered, and is kept alive."""
    conn = await Conn.open(port)
    await conn.send(request("GET", "/healthz"))
    assert (await conn.response())[0] == 200
    return conn


class Conn:
    """One client connection on a raw socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next answer: status, headers (lower-case names), body."""
        async with asyncio.timeout(30):
            head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            fields = (line.partition(":") for line in lines[1:] if line)
            headers = {name.strip().lower(): value.strip() for name, _, value in fields}
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(lines[0].split()[1]), headers, body

    async def until_closed(self, within: float) -> bytes:
        """All the server sends until it closes the connection; fail after ``within`` s."""
        received = bytearray()
        try:
            async with asyncio.timeout(within):
                while chunk := await self.reader.read(65536):
                    received += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            raise AssertionError(f"still open after {within} s; got {bytes(received)!r}") from None
        return bytes(received)

    async def drip_until_closed(self, data: bytes, within: float) -> tuple[bytes, int]:
        """Send ``data`` a byte every DRIP_S s while waiting for the server to close.

        What the server sent, and how many bytes went out before it closed.
        """
        closed = asyncio.Event()

        async def read() -> bytes:
            try:
                return await self.until_closed(within)
            finally:
                closed.set()

        reading = asyncio.create_task(read())
        sent = 0
        for byte in data:
            # The pace of the client, and a prompt stop once the server closed.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), DRIP_S)
            if closed.is_set():
                break
            try:
                await self.send(bytes([byte]))
            except ConnectionError:
                break
            sent += 1
        return await reading, sent

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    if method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def customer_write(team: Team, body: bytes) -> bytes:
    return request(
        "POST",
        "/api/1.0/customer/slow@example.com",
        body,
        X_API_KEY=team.key,
        Content_Type="application/json",
    )


def assert_closed_in_time(started: float, timeout: float) -> None:
    elapsed = time.monotonic() - started
    assert timeout - 0.05 <= elapsed <= timeout + LATE_S, f"closed after {elapsed:.2f} s"


def assert_408(received: bytes) -> None:
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert b"\r\nconnection: close\r\n" in received.lower(), received


async def test_a_connection_that_sends_nothing_is_closed_within_the_header_timeout(
    port: int,
) -> None:
    started = time.monotonic()
    conn = await Conn.open(port)
    assert await conn.until_closed(HEADER_S + LATE_S) == b""  # nothing to answer
    assert_closed_in_time(started, HEADER_S)


async def test_half_the_headers_then_a_stall_gets_408_within_the_header_timeout(
    port: int,
) -> None:
    started = time.monotonic()
    conn = await Conn.open(port)
    await conn.send(b"POST /api/1.0/customers HTTP/1.1\r\nHost: test\r\nContent-Le")
    assert_408(await conn.until_closed(HEADER_S + LATE_S))
    assert_closed_in_time(started, HEADER_S)


async def test_headers_trickled_byte_by_byte_get_408_within_the_header_timeout(
    port: int,
) -> None:
    # A finished request first: the next one's deadline counts from its first byte.
    conn = await kept_alive(port)
    started = time.monotonic()
    received, sent = await conn.drip_until_closed(
        b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 1000, HEADER_S + LATE_S
    )
    assert_408(received)
    assert_closed_in_time(started, HEADER_S)
    assert sent >= HEADER_S / DRIP_S - 2  # it kept sending all along


async def test_blank_lines_between_requests_do_not_hold_a_connection(port: int) -> None:
    conn = await Conn.open(port)
    await conn.send(request("GET", "/healthz"))
    assert (await conn.response())[0] == 200
    # Each byte restarts uvicorn's keep-alive timer, and the parser skips blank lines
    # before a request without starting one: only the header deadline ends this.
    started = time.monotonic()
    received, sent = await conn.drip_until_closed(b"\r\n" * 500, HEADER_S + LATE_S)
    assert received == b""  # no request began: nothing to answer
    assert_closed_in_time(started, HEADER_S)
    assert sent >= HEADER_S / DRIP_S - 2


async def test_a_body_trickled_byte_by_byte_gets_408_within_the_body_timeout(
    port: int, slow_gateway: tuple[str, Process], team: Team
) -> None:
    conn = await Conn.open(port)
    body = b'{"firstname": "' + b"a" * 1000 + b'"}'
    head = customer_write(team, body)[: -len(body)]
    await conn.send(head)
    started = time.monotonic()
    received, sent = await conn.drip_until_closed(body, BODY_S + LATE_S)
    assert_408(received)
    assert_closed_in_time(started, BODY_S)
    assert sent >= BODY_S / DRIP_S - 2  # well past the header deadline, still sending
    # The app saw the client go; that is no error of the gateway's.
    log = slow_gateway[1].log_path.read_text(errors="replace")
    assert "Exception in ASGI application" not in log, log[-3000:]


async def test_a_body_trickled_after_an_early_answer_is_cut_off_at_the_body_timeout(
    port: int,
) -> None:
    # No API key: the gateway answers 401 before reading the body; the client goes on.
    conn = await Conn.open(port)
    body = b"x" * 1000
    await conn.send(request("POST", "/api/1.0/customers", body)[: -len(body)])
    started = time.monotonic()
    status, _, _ = await conn.response()
    assert status == 401
    received, _ = await conn.drip_until_closed(body, BODY_S + LATE_S)
    assert received == b""  # answered already: no 408 after it
    assert_closed_in_time(started, BODY_S)


async def test_a_keep_alive_client_is_unaffected(port: int, team: Team) -> None:
    """Requests over longer than any deadline, some of them sent in slow parts."""
    conn = await Conn.open(port)
    body = b'{"firstname": "Ana"}'
    write = customer_write(team, body)
    began = time.monotonic()
    for i in range(4):
        if i % 2:
            await conn.send(write)
        else:
            # Headers complete after HEADER_S / 2, the body HEADER_S after them: the
            # request takes longer than HEADER_S, each part within its own deadline.
            cut = write.index(b"\r\n") + 2
            for part in (write[:cut], write[cut : -len(body)], body[:10], body[10:]):
                await conn.send(part)
                await asyncio.sleep(HEADER_S / 2)  # a slow client, not a waiting test
        status, headers, answer = await conn.response()
        assert status == 200, answer
        assert headers.get("connection") != "close"
        await asyncio.sleep(HEADER_S / 2)  # the client's own pause between requests
    assert time.monotonic() - began > HEADER_S + BODY_S  # past any per-connection deadline
    await conn.send(request("GET", "/healthz"))
    assert (await conn.response())[0] == 200  # still the same connection
    await conn.close()


async def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(
    port: int,
) -> None:
    conn = await kept_alive(port)
    started = time.monotonic()
    assert await conn.until_closed(KEEP_ALIVE_S + LATE_S) == b""
    assert_closed_in_time(started, KEEP_ALIVE_S)


async def test_connections_beyond_the_cap_are_answered_503(capped_port: int) -> None:
    async def healthz(conn: Conn) -> int:
        await conn.send(request("GET", "/healthz"))
        return (await conn.response())[0]

    # CAP connections, each seen by the server (it answered them), and kept open.
    served = [await Conn.open(capped_port) for _ in range(CAP)]
    for conn in served:
        assert await healthz(conn) == 200
    extra = await Conn.open(capped_port)
    assert await healthz(extra) == 503
    assert await extra.until_closed(5) == b""  # and the server lets it go

    await served.pop().close()

    async def a_new_connection_is_served() -> bool:
        conn = await Conn.open(capped_port)
        try:
            return await healthz(conn) == 200
        finally:
            await conn.close()

    await eventually(a_new_connection_is_served, timeout=10)
    for conn in served:
        assert await healthz(conn) == 200  # the ones kept open were never disturbed
        await conn.close()
