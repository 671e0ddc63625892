"""The ceilings: the same messages straight into Kafka, the same batches straight into PostgreSQL.

Each runs in processes of its own, like the gateway and the consumers they stand in for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import msgspec
import uvloop

from bench.workload import messages
from consumers import timestamps
from consumers.unit_of_work import EventTypeCache, apply_batch
from ingest_gateway.write.publisher import Publisher
from runtime.settings import Settings
from schemas.messages import new_message_id


@dataclass(frozen=True)
class CeilingResult:
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


async def _timed(
    duration_s: float, work: Callable[[float], Awaitable[int]], close: Callable[[], Awaitable[None]]
) -> CeilingResult:
    """Time ``work(deadline)``, which returns how many messages it wrote, then ``close()``."""
    deadline = time.perf_counter() + duration_s
    started = time.perf_counter()
    try:
        done = await work(deadline)
    finally:
        elapsed = time.perf_counter() - started
        await close()
    return CeilingResult(done, elapsed)


async def _raw_kafka(
    settings: Settings, topic: str, team_id: int, run: str, pool: int, duration_s: float
) -> CeilingResult:
    templates = messages(team_id, run, pool, 20_000, seed=7)
    # The gateway's own publisher (records of many messages per partition), no HTTP.
    publisher = Publisher(settings.model_copy(update={"writes_topic": topic}))
    await publisher.start()
    group = 100

    async def sender(offset: int, deadline: float) -> int:
        i = offset
        while time.perf_counter() < deadline:
            chunk = [templates[(i + k) % len(templates)] for k in range(group)]
            await publisher.publish(chunk)
            i += group
        return i - offset

    async def senders(deadline: float) -> int:
        return sum(await asyncio.gather(*(sender(k * 2500, deadline) for k in range(8))))

    return await _timed(duration_s, senders, publisher.stop)


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

    async def applier(deadline: float) -> int:
        i = 0
        while time.perf_counter() < deadline:
            chunk = [
                msgspec.structs.replace(templates[(i + k) % len(templates)], id=new_message_id())
                for k in range(batch)
            ]
            i += batch
            await apply_batch(conn, chunk, types, window)
        return i

    return await _timed(duration_s, applier, conn.close)


def raw_postgres(
    settings: Settings, team_id: int, run: str, pool: int, duration_s: float, batch: int
) -> CeilingResult:
    """Apply batches of those messages with the consumers' own ``apply_batch``, no Kafka."""
    return uvloop.run(_raw_postgres(settings, team_id, run, pool, duration_s, batch))
