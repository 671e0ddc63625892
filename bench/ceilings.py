"""The ceilings: the same messages straight into Kafka, the same batches straight into PostgreSQL.

Each runs in processes of its own, like the gateway and the consumers they stand in for.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import msgspec
import uvloop

from bench.workload import messages
from consumers import timestamps
from consumers.apply import EventTypeCache, apply_batch
from ingest_gateway.publisher import Publisher
from runtime.settings import Settings
from schemas.messages import new_message_id


@dataclass(frozen=True)
class CeilingResult:
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


async def _raw_kafka(
    settings: Settings, topic: str, team_id: int, run: str, pool: int, duration_s: float
) -> CeilingResult:
    templates = messages(team_id, run, pool, 20_000, seed=7)
    # The gateway's own publisher (records of many messages per partition), no HTTP.
    publisher = Publisher(settings.model_copy(update={"writes_topic": topic}))
    await publisher.start()
    sent = 0
    group = 100
    deadline = time.perf_counter() + duration_s

    async def sender(offset: int) -> None:
        nonlocal sent
        i = offset
        while time.perf_counter() < deadline:
            chunk = [templates[(i + k) % len(templates)] for k in range(group)]
            await publisher.publish(chunk)
            i += group
            sent += group

    started = time.perf_counter()
    try:
        await asyncio.gather(*(sender(k * 2500) for k in range(8)))
    finally:
        elapsed = time.perf_counter() - started
        await publisher.stop()
    return CeilingResult(sent, elapsed)


def raw_kafka(
    settings: Settings, topic: str, team_id: int, run: str, pool: int, duration_s: float
) -> CeilingResult:
    """Publish the batched-events scenario's messages, 100 per call, with the gateway's
    ``Publisher`` (aiokafka, acks=all, idempotent), no HTTP."""
    return uvloop.run(_raw_kafka(settings, topic, team_id, run, pool, duration_s))


async def _raw_postgres(
    settings: Settings, team_id: int, run: str, pool: int, duration_s: float, batch: int
) -> CeilingResult:
    templates = messages(team_id, run, pool, 20_000, seed=11)
    conn = await asyncpg.connect(settings.database_url)
    await timestamps.install(conn)  # as the consumers' connections
    types = EventTypeCache()
    window = timedelta(seconds=settings.email_open_window_s)
    applied = 0
    i = 0
    deadline = time.perf_counter() + duration_s
    started = time.perf_counter()
    try:
        while time.perf_counter() < deadline:
            chunk = [
                msgspec.structs.replace(templates[(i + k) % len(templates)], id=new_message_id())
                for k in range(batch)
            ]
            i += batch
            await apply_batch(conn, chunk, types, window)
            applied += batch
    finally:
        elapsed = time.perf_counter() - started
        await conn.close()
    return CeilingResult(applied, elapsed)


def raw_postgres(
    settings: Settings, team_id: int, run: str, pool: int, duration_s: float, batch: int
) -> CeilingResult:
    """Apply batches of those messages with the consumers' own ``apply_batch``, no Kafka."""
    return uvloop.run(_raw_postgres(settings, team_id, run, pool, duration_s, batch))
