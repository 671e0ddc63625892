"""Reading Kafka topics between offsets, for ``ingest-admin``'s repair tools.

One job: the clients a command reads with (``kafka_clients``: a consumer it assigns
partitions to itself, never subscribed, so it joins no group and moves nobody's
offsets; and an admin client), the partitions of a topic (``topic_partitions``),
where each partition starts and ends, by offset or by time (``bounds``), and the
records between a partition's position and an end chosen beforehand
(``read_until``), so that records arriving meanwhile wait for the next run. The
dead-letter commands, the replay and ``lag`` use it. Imports Kafka's client,
``runtime.kafka``, ``runtime.settings`` and ``admin.errors``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    GroupCoordinatorNotAvailableError,
    NotCoordinatorForGroupError,
)

from admin.errors import CommandError
from runtime.kafka import connection_options
from runtime.settings import Settings

# Nothing arrives although the partitions have records left: the broker is away.
IDLE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Clients:
    consumer: AIOKafkaConsumer
    admin: AIOKafkaAdminClient


@asynccontextmanager
async def kafka_clients(
    settings: Settings, client_id: str, group: str | None = None
) -> AsyncIterator[Clients]:
    """A started consumer that commits only when told to (``group``: where it may;
    None: nowhere), an offset no longer in the log read from the start; and an admin
    client."""
    options = connection_options(settings)
    consumer = AIOKafkaConsumer(
        **options,
        group_id=group,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    admin = AIOKafkaAdminClient(**options, client_id=client_id)
    await consumer.start()
    try:
        await admin.start()
        try:
            yield Clients(consumer, admin)
        finally:
            await admin.close()
    finally:
        await consumer.stop()


async def topic_partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic``, in order; ``CommandError`` when there is no such topic.

    (Asked of every topic: a broker that creates topics on demand would create one
    asked for by name.)
    """
    for described in await admin.describe_topics():
        if described["topic"] == topic:
            numbers = sorted(p["partition"] for p in described["partitions"])
            return [TopicPartition(topic, n) for n in numbers]
    raise CommandError(f"no topic {topic!r}")


@dataclass(frozen=True)
class Span:
    """The offsets ``[start, end)`` of one partition a command reads."""

    start: int
    end: int


async def bounds(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> dict[TopicPartition, Span]:
    """Each partition's records now, or those stamped in ``[since_ms, until_ms)`` by
    Kafka's time index: from the first record stamped at or after ``since_ms`` to
    before the first stamped at or after ``until_ms``."""
    starts: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    if since_ms is not None:
        starts = await _offsets_at(consumer, since_ms, ends)
    if until_ms is not None:
        ends = await _offsets_at(consumer, until_ms, ends)
    return {tp: Span(starts[tp], max(starts[tp], ends[tp])) for tp in partitions}


async def _offsets_at(
    consumer: AIOKafkaConsumer, at_ms: int, ends: dict[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """The offset of the first record stamped at or after ``at_ms`` (else the end)."""
    found = await consumer.offsets_for_times(dict.fromkeys(ends, at_ms))
    return {tp: ends[tp] if hit is None else int(hit.offset) for tp, hit in found.items()}


# A group's coordinator is being elected or loaded (a broker's first group, as on a
# fresh cluster, creates the offsets topic first): asked again, it answers.
_COORDINATOR_MOVING = (
    GroupCoordinatorNotAvailableError,
    CoordinatorLoadInProgressError,
    NotCoordinatorForGroupError,
)
COORDINATOR_WAIT_S = 30.0


async def group_offsets(
    admin: AIOKafkaAdminClient, group: str, partitions: list[TopicPartition] | None = None
) -> dict[TopicPartition, Any]:
    """``list_consumer_group_offsets``, asked again while the coordinator is moving."""
    deadline = time.monotonic() + COORDINATOR_WAIT_S
    while True:
        try:
            found: dict[TopicPartition, Any] = await admin.list_consumer_group_offsets(
                group, partitions=partitions
            )
            return found
        except _COORDINATOR_MOVING:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def committed(
    admin: AIOKafkaAdminClient, group: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The offsets ``group`` committed for ``partitions`` (None where it has none)."""
    found = await group_offsets(admin, group, partitions)
    offsets = {tp: found[tp].offset if tp in found else -1 for tp in partitions}
    return {tp: None if offset < 0 else int(offset) for tp, offset in offsets.items()}


def seek_to(consumer: AIOKafkaConsumer, spans: dict[TopicPartition, Span]) -> None:
    """Assign the partitions of ``spans`` and put each at its start."""
    consumer.assign(list(spans))
    for tp, span in spans.items():
        consumer.seek(tp, span.start)


async def read_until(
    consumer: Any, ends: dict[TopicPartition, int]
) -> AsyncGenerator[dict[TopicPartition, list[Any]], None]:
    """Fetched batches, from each partition's position up to (not including) its end
    in ``ends``; records at or past it are left out. ``CommandError`` when nothing
    arrives for ``IDLE_TIMEOUT_S`` although records are left."""
    pending = {tp for tp, end in ends.items() if await consumer.position(tp) < end}
    last_read = time.monotonic()
    while pending:
        batches = await consumer.getmany(*pending, timeout_ms=500)
        if not batches:
            if time.monotonic() - last_read > IDLE_TIMEOUT_S:
                raise CommandError(
                    f"nothing read from Kafka for {IDLE_TIMEOUT_S:.0f} s"
                    " although records were left to read (what was done before stays done)"
                )
            continue
        last_read = time.monotonic()
        yield {tp: [r for r in records if r.offset < ends[tp]] for tp, records in batches.items()}
        pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
