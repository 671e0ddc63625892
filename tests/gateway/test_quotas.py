"""Per-team quotas (issue #21, point 1), against the real gateway, Kafka and PostgreSQL:
429 with ``Retry-After`` and the ``RateLimit`` fields in each API's error format,
nothing published beyond the quota, and one total for the team across processes."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from admin.teams import create_team
from runtime.settings import Settings
from tests.conftest import Team, private_gateway
from tests.support import Process, eventually, stored_customer


async def set_quota(db: asyncpg.Pool, team: Team, rate: float, burst: int) -> None:
    await db.execute(
        "UPDATE teams SET events_per_second = $2, burst = $3 WHERE id = $1", team.id, rate, burst
    )


@pytest.fixture
async def quick_gateway(
    settings: Settings, tmp_path: Path, consumer: Process
) -> AsyncIterator[str]:
    """Two gateway processes that read quotas every 0.2 s (and the consumers)."""
    async with private_gateway(
        settings, tmp_path, "quota-gateway", gateway_workers=2, quota_refresh_s=0.2
    ) as (base, _):
        yield base


async def first_refusal(
    http: httpx.AsyncClient, team: Team, within_s: float = 10
) -> httpx.Response:
    """Single writes until one is refused: the quota reaches the gateway within its
    refresh (0.2 s), and a write takes a few milliseconds, so this polls by time."""
    deadline = time.monotonic() + within_s
    n = 0
    while time.monotonic() < deadline:
        n += 1
        answer = await http.post(
            f"/api/1.0/customer/q{n}-{uuid.uuid4().hex[:6]}@example.com",
            json={"n": n},
            headers=team.headers,
        )
        if answer.status_code == 429:
            return answer
        assert answer.status_code == 200, answer.text
    raise AssertionError(f"no 429 within {within_s} s ({n} writes)")


async def test_beyond_the_quota_a_write_gets_429_with_retry_after_and_is_not_published(
    quick_gateway: str, db: asyncpg.Pool, team: Team
) -> None:
    await set_quota(db, team, rate=1, burst=3)
    async with httpx.AsyncClient(base_url=quick_gateway, timeout=30) as http:
        refused = await first_refusal(http, team)
        assert refused.headers["Retry-After"].isdigit() and int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["RateLimit-Policy"] == '"team";q=3;w=3'
        assert refused.headers["RateLimit"].startswith('"team";r=0;t=')
        assert refused.json() == {"error": refused.json()["error"]}  # the 000 API's format
        assert "quota is 1 events per second" in refused.json()["error"]

        # What was refused is not stored, even once later writes of its customer are.
        address = f"refused-{uuid.uuid4().hex[:6]}@example.com"
        again = await http.post(f"/api/1.0/customer/{address}", json={"a": 1}, headers=team.headers)
        assert again.status_code == 429

        async def accepted() -> httpx.Response | None:
            answer = await http.post(
                f"/api/1.0/customer/{address}?wait=true", json={"b": 2}, headers=team.headers
            )
            return answer if answer.status_code == 200 else None

        await eventually(accepted, timeout=10, interval=0.5)
    row = await stored_customer(db, team, address)
    assert row is not None and "a" not in row["attributes"]


async def test_each_api_answers_429_in_its_own_format_and_a_batch_counts_its_events(
    quick_gateway: str, db: asyncpg.Pool, team: Team
) -> None:
    await set_quota(db, team, rate=1, burst=4)
    segment_auth = {"Authorization": "Basic " + base64.b64encode(f"{team.key}:".encode()).decode()}
    async with httpx.AsyncClient(base_url=quick_gateway, timeout=30) as http:
        await first_refusal(http, team)  # the quota is in force, the bucket empty
        track = {"type": "track", "userId": "u1", "event": "Quota"}
        segment = await http.post("/v1/track", json=track, headers=segment_auth)
        assert segment.status_code == 429 and segment.headers["Retry-After"]
        assert segment.json()["success"] is False
        assert segment.json()["code"] == "too_many_requests"

        # A batch larger than the burst can never pass: 413, not a 429 to retry forever.
        calls = [{**track, "messageId": f"m{n}"} for n in range(5)]
        batch = await http.post("/v1/batch", json={"batch": calls}, headers=segment_auth)
        assert batch.status_code == 413 and "smaller batches" in batch.text


async def test_two_gateway_processes_hold_one_total_for_the_team(
    quick_gateway: str, db: asyncpg.Pool, settings: Settings
) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        team_id, key = await create_team(conn, f"quota-{uuid.uuid4().hex[:8]}")
    finally:
        await conn.close()
    team = Team(team_id, key)
    rate, burst = 20.0, 20
    await set_quota(db, team, rate=rate, burst=burst)
    async with httpx.AsyncClient(base_url=quick_gateway, timeout=30) as warm:
        await first_refusal(warm, team)  # the quota is in force, the bucket empty
    await db.execute("DELETE FROM team_quota_buckets WHERE team_id = $1", team.id)  # full again

    accepted = 0
    started = time.monotonic()
    deadline = started + 4.0
    last_accepted = started

    async def client(n: int) -> None:
        nonlocal accepted, last_accepted
        # A connection each: the kernel spreads them over both processes.
        async with httpx.AsyncClient(base_url=quick_gateway, timeout=30) as http:
            i = 0
            while time.monotonic() < deadline:
                i += 1
                answer = await http.post(
                    f"/api/1.0/customer/c{n}-{i}@example.com", json={}, headers=team.headers
                )
                assert answer.status_code in (200, 429), answer.text
                if answer.status_code == 200:
                    accepted += 1
                    last_accepted = time.monotonic()

    await asyncio.gather(*(client(n) for n in range(8)))
    # Until the last write accepted: on a loaded machine the answers to the writes sent
    # just before the deadline come well after it, and no token they took is younger.
    elapsed = last_accepted - started
    expected = burst + rate * elapsed
    print(f"QUOTA accepted {accepted} in {elapsed:.2f} s, quota allows {expected:.1f}")
    assert abs(accepted - expected) <= 0.1 * expected, (accepted, expected)
