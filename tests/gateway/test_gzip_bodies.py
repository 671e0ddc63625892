"""``Content-Encoding: gzip`` request bodies on every surface: inflated as they stream in,
capped at ``MAX_BODY_BYTES`` once inflated, refusals in each surface's error format."""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.types import Message

from ingest_gateway.edge.content_encoding import (
    FREE_INFLATION_BYTES,
    MAX_INFLATION_RATIO,
    decoding,
)
from ingest_gateway.web.errors import ApiError
from runtime.settings import Settings
from tests.conftest import Team
from tests.support import eventually, stored_customer

WAIT = {"Prefer": "return=representation"}
# 5 MB of JSON whitespace: a few KiB compressed, over the body limit once inflated.
BOMB = gzip.compress(b"{" + b" " * (Settings().max_body_bytes + 1) + b"}", compresslevel=9)
# A bomb is refused once it inflates beyond what its bytes may (``MAX_INFLATION_RATIO``).
BOMB_REFUSAL = (
    f"The gzip body inflates more than {MAX_INFLATION_RATIO} times its compressed size"
    f" (beyond its first {FREE_INFLATION_BYTES} bytes)"
)


def email() -> str:
    return f"gzip-{uuid.uuid4().hex[:10]}@example.com"


def gzipped(team: Team, content_type: str = "application/json") -> dict[str, str]:
    return {**team.headers, **WAIT, "Content-Encoding": "gzip", "Content-Type": content_type}


def zipped(value: Any) -> bytes:
    return gzip.compress(json.dumps(value).encode())


async def test_the_000_api_reads_gzip_json_and_forms(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    listed, formed = email(), email()
    batch = [{"email": listed, "plan": "gold"}]
    sent = await http.post("/api/1.0/customers", content=zipped(batch), headers=gzipped(team))
    assert sent.status_code == 200, sent.text

    form = gzip.compress(b"name=Zo%C3%AB&plan=free")
    urlencoded = gzipped(team, "application/x-www-form-urlencoded")
    created = await http.post(f"/api/1.0/customer/{formed}", content=form, headers=urlencoded)
    assert created.status_code == 200, created.text
    assert created.json() == {"email": formed, "name": "Zoë", "plan": "free"}

    row = await eventually(lambda: stored_customer(db, team, listed))
    assert json.loads(row["attributes"]) == {"plan": "gold"}
    row = await eventually(lambda: stored_customer(db, team, formed))
    assert json.loads(row["attributes"]) == {"name": "Zoë", "plan": "free"}


async def test_the_batch_endpoint_reads_gzip(http: httpx.AsyncClient, team: Team) -> None:
    items = [{"type": "customer", "email": email(), "attributes": {"plan": "gold"}}]
    body = zipped({"items": items})
    sent = await http.post("/api/1.0/batch", content=body, headers=gzipped(team))
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 1


async def test_refusals_in_each_surface_format(http: httpx.AsyncClient, team: Team) -> None:
    too_large = BOMB_REFUSAL
    assert len(BOMB) < 64 * 1024
    # The 000 format (the batch endpoint's too).
    for path in ("/api/1.0/customers", "/api/1.0/batch"):
        bomb = await http.post(path, content=BOMB, headers=gzipped(team))
        assert (bomb.status_code, bomb.json()) == (413, {"error": too_large})
    # 001's.
    bomb = await http.post("/api/v1/event", content=BOMB, headers=gzipped(team))
    assert bomb.status_code == 413
    assert bomb.json() == {"errors": [{"message": too_large, "description": too_large}]}

    whole = zipped([{"email": email()}])
    for broken in (whole[:-12], b"not gzip at all"):
        corrupt = await http.post("/api/1.0/customers", content=broken, headers=gzipped(team))
        assert corrupt.status_code == 400, corrupt.text
        assert corrupt.json()["error"].startswith("The gzip body is")
    brotli = {**team.headers, "Content-Encoding": "br", "Content-Type": "application/json"}
    refused = await http.post("/api/1.0/customers", content=b"[]", headers=brotli)
    assert refused.status_code == 415
    assert refused.json() == {"error": "Unsupported Content-Encoding 'br'; send gzip or none"}
    twice = [*gzipped(team).items(), ("Content-Encoding", "gzip")]  # gzip of gzip
    stacked = await http.post("/api/1.0/customers", content=gzip.compress(whole), headers=twice)
    assert stacked.status_code == 415, stacked.text
    # Only a body that is read is refused.
    assert (await http.get("/api/1.0/customers", headers=brotli)).status_code == 200


# -- the decoding itself, without the network -------------------------------------------


async def inflate(body: bytes, limit: int, chunk: int) -> bytes:
    """``body`` received ``chunk`` bytes at a time, through ``decoding``."""
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages: list[Message] = [
        {"type": "http.request", "body": part, "more_body": i < len(chunks) - 1}
        for i, part in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0)

    decoded = decoding(receive, b" GZip ", limit)
    out = bytearray()
    while True:
        message = await decoded()
        out += message["body"]
        if not message["more_body"]:
            return bytes(out)


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
async def test_members_inflate_chunk_by_chunk_up_to_the_limit(chunk: int) -> None:
    text = b'{"a": "' + b"x" * 5000 + b'"}'
    members = gzip.compress(text[:100]) + gzip.compress(text[100:])
    assert await inflate(members, len(text), chunk) == text
    with pytest.raises(ApiError) as too_large:
        await inflate(members, len(text) - 1, chunk)
    assert too_large.value.status == 413
    with pytest.raises(ApiError) as truncated:
        await inflate(members[:-5], len(text), chunk)
    assert truncated.value.status == 400
    with pytest.raises(ApiError) as empty:
        await inflate(b"", len(text), chunk)
    assert empty.value.status == 400


async def test_identity_passes_as_sent() -> None:
    async def receive() -> Message:
        return {"type": "http.request", "body": b"as sent"}

    assert decoding(receive, b"identity", 10) is receive


@pytest.mark.parametrize("chunk", [512, 1 << 20])
async def test_a_body_inflating_far_beyond_its_size_is_refused_before_the_limit(
    chunk: int,
) -> None:
    limit = 5 * 1024 * 1024
    bomb = gzip.compress(b" " * (4 * 1024 * 1024), 9)  # ~1,000 times: a bomb, under the limit
    with pytest.raises(ApiError) as refused:
        await inflate(bomb, limit, chunk)
    assert (refused.value.status, refused.value.message) == (413, BOMB_REFUSAL)
    # JSON as clients send it, compressed 10 to 60 times, inflates to the limit.
    rows = [{"email": f"c{i}@example.com", "plan": "gold", "n": i} for i in range(60_000)]
    text = json.dumps(rows).encode()
    assert FREE_INFLATION_BYTES < len(text) < limit
    body = gzip.compress(text, 9)
    assert len(text) / len(body) > 10
    assert await inflate(body, limit, chunk) == text
    # The first MiB is free of the ratio: a small body of one repeated byte is fine.
    small = b'{"a": "' + b"x" * (FREE_INFLATION_BYTES - 20) + b'"}'
    assert await inflate(gzip.compress(small, 9), limit, chunk) == small
