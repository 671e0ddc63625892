"""SIGTERM drains the gateway: it stops accepting, answers what it has, flushes the producer."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import asyncpg
import httpx

from runtime.settings import Settings
from tests.conftest import Team, private_gateway
from tests.support import eventually


async def test_sigterm_answers_the_requests_in_flight_and_loses_none(
    settings: Settings, consumer: object, db: asyncpg.Pool, team: Team, tmp_path: Path
) -> None:
    # A long linger keeps the writes in the publisher when SIGTERM arrives: the
    # answers can only come if shutdown flushes them to Kafka first.
    async with private_gateway(settings, tmp_path, "draining-gateway", publish_linger_ms=500) as (
        base,
        proc,
    ):
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            writes = [
                asyncio.create_task(
                    http.post(
                        f"/api/1.0/customer/drain-{uuid.uuid4().hex[:10]}@example.com",
                        json={"n": i},
                        headers=team.headers,
                    )
                )
                for i in range(30)
            ]
            await asyncio.sleep(0.2)  # the requests are in, their messages lingering
            proc.popen.send_signal(signal.SIGTERM)
            answers = await asyncio.gather(*writes, return_exceptions=True)
        # uvicorn re-raises the signal once its graceful shutdown is done.
        assert proc.popen.wait(timeout=30) in (0, -signal.SIGTERM), proc.tail()
        assert "Application shutdown complete" in proc.tail()
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    statuses = {a.status_code for a in answers if isinstance(a, httpx.Response)}
    assert statuses == {200}, [a.text for a in answers if isinstance(a, httpx.Response)]
    ids = [uuid.UUID(a.headers["x-message-id"]) for a in answers if isinstance(a, httpx.Response)]

    async def all_applied() -> bool:
        found = await db.fetchval(
            "SELECT count(*) FROM processed_messages WHERE message_id = ANY($1::uuid[])", ids
        )
        return bool(found == len(ids))

    await eventually(all_applied)
