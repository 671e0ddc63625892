"""The gateway's request (``web.request``) reads headers and bodies as Starlette's does."""

from __future__ import annotations

import asyncio

import pytest
import starlette.requests
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope

from ingest_gateway.web.request import Request

HEADERS = [
    (b"content-type", b"application/json"),
    (b"x-api-key", b"first"),
    (b"x-api-key", b"second"),
    (b"user-agent", b"caf\xe9"),  # latin-1, as ASGI servers pass it
]


def _scope() -> Scope:
    return {"type": "http", "method": "POST", "path": "/", "headers": list(HEADERS)}


def _receiving(*messages: Message) -> Receive:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return receive


@pytest.mark.parametrize(
    "name", ["x-api-key", "X-Api-Key", "content-type", "user-agent", "prefer", "Prefer"]
)
def test_header_lookups_answer_as_starlettes(name: str) -> None:
    ours, theirs = Request(_scope()).headers, starlette.requests.Request(_scope()).headers
    assert ours.get(name) == theirs.get(name)
    assert ours.get(name, "default") == theirs.get(name, "default")
    assert (name in ours) == (name in theirs)
    if name in theirs:
        assert ours[name] == theirs[name]
    else:
        with pytest.raises(KeyError):
            ours[name]
    assert ours.getlist(name) == theirs.getlist(name)


def test_the_first_of_repeated_headers_wins() -> None:
    assert Request(_scope()).headers["x-api-key"] == "first"


@pytest.mark.parametrize(
    "chunks",
    [[b""], [b'{"a": 1}'], [b'{"a"', b": ", b"1}"], [b"", b"x", b""]],
)
def test_body_in_one_or_many_messages(chunks: list[bytes]) -> None:
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def read() -> tuple[bytes, bytes, bytes]:
        ours = Request(_scope(), _receiving(*messages))
        theirs = starlette.requests.Request(_scope(), _receiving(*messages))
        return await ours.body(), await ours.body(), await theirs.body()

    first, again, starlettes = asyncio.run(read())
    assert first == again == starlettes == b"".join(chunks)


def test_a_disconnect_while_reading_is_starlettes_client_disconnect() -> None:
    receive = _receiving(
        {"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}
    )
    request = Request(_scope(), receive)
    with pytest.raises(ClientDisconnect):
        asyncio.run(request.body())


def test_a_stream_read_before_cannot_be_read_again() -> None:
    async def read() -> None:
        request = Request(_scope(), _receiving({"type": "http.request", "body": b"x"}))
        async for _ in request.stream():
            pass
        await request.body()

    with pytest.raises(RuntimeError, match="Stream consumed"):
        asyncio.run(read())
