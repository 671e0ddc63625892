"""Sampling during a run: the consumer group's progress and lag, and CPU per component."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.procs import process_table, tree_cpu

_items = msgspec.json.Decoder(list[msgspec.Raw])


class MessageCounter:
    """Messages per record of the writes topic, read from its start.

    A record carries one message or an array of them (``schemas.messages``), so
    offsets count records; this turns an offset into the number of messages before it.
    """

    def __init__(self, kafka: dict[str, Any], topic: str, partitions: int) -> None:
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._prefix: dict[int, list[int]] = {p: [0] for p in range(partitions)}
        self._consumer = AIOKafkaConsumer(
            **kafka,
            client_id="bench-counter",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Few, large fetches: the broker's CPU is measured, this reader is not.
            fetch_min_bytes=1024 * 1024,
            fetch_max_wait_ms=500,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.assign(self.partitions)
        await self._consumer.seek_to_beginning(*self.partitions)
        self._task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=20_000)
            for tp, records in batches.items():
                prefix = self._prefix[tp.partition]
                for record in records:
                    while len(prefix) <= record.offset:  # no gaps expected; be safe
                        prefix.append(prefix[-1])
                    value = record.value or b""
                    n = len(_items.decode(value)) if value[:1] == b"[" else 1
                    prefix.append(prefix[-1] + n)

    def messages(self, partition: int, offset: int) -> int:
        """Messages in the records before ``offset`` (extrapolated past what was read)."""
        prefix = self._prefix[partition]
        if offset < len(prefix):
            return prefix[max(offset, 0)]
        read = len(prefix) - 1
        per_record = prefix[-1] / read if read else 1.0
        return prefix[-1] + round((offset - read) * per_record)

    async def caught_up(self, offsets: dict[int, int], within_s: float = 10.0) -> None:
        """Wait until every record before ``offsets`` was read (or the time ran out)."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if all(len(self._prefix[p]) > o for p, o in offsets.items()):
                return
            await asyncio.sleep(0.05)


@dataclass
class Sample:
    t: float  # epoch seconds
    committed_offsets: dict[int, int]  # per partition: the group's committed offset
    end_offsets: dict[int, int]  # per partition: the end offset (records accepted)
    counter: MessageCounter | None = None
    cpu: dict[str, float] = field(default_factory=dict)

    def _messages(self, offsets: dict[int, int]) -> int:
        if self.counter is None:
            return sum(offsets.values())
        return sum(self.counter.messages(p, o) for p, o in offsets.items())

    @property
    def committed(self) -> int:
        """Messages applied in PostgreSQL (offsets commit after the transaction)."""
        return self._messages(self.committed_offsets)

    @property
    def end(self) -> int:
        """Messages accepted into Kafka."""
        return self._messages(self.end_offsets)

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


class GroupProbe:
    """Committed and end offsets of one topic and consumer group, counted in messages."""

    def __init__(self, kafka: dict[str, Any], topic: str, group: str, partitions: int) -> None:
        self.topic = topic
        self.group = group
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.counter = MessageCounter(kafka, topic, partitions)
        self._admin = AIOKafkaAdminClient(**kafka, client_id="bench-probe")
        self._consumer = AIOKafkaConsumer(
            **kafka, client_id="bench-probe", enable_auto_commit=False
        )

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()
        await self.counter.start()

    async def stop(self) -> None:
        await self.counter.stop()
        await self._consumer.stop()
        await self._admin.close()

    async def offsets(self) -> tuple[dict[int, int], dict[int, int]]:
        """(committed, end) offsets per partition."""
        committed = await self._admin.list_consumer_group_offsets(self.group)
        ends = await self._consumer.end_offsets(self.partitions)
        done = {tp.partition: 0 for tp in self.partitions}
        for tp, meta in committed.items():
            if tp.topic == self.topic:
                done[tp.partition] = max(meta.offset, 0)
        return done, {tp.partition: end for tp, end in ends.items()}


class CpuProbe:
    """CPU seconds of named process trees (a component may be several processes)."""

    def __init__(self) -> None:
        self.roots: dict[str, list[int]] = {}

    def set(self, name: str, pids: list[int]) -> None:
        self.roots[name] = pids

    def sample(self) -> dict[str, float]:
        table = process_table()
        return {
            name: sum(tree_cpu(pid, table) for pid in pids) for name, pids in self.roots.items()
        }


async def sample(probe: GroupProbe, cpu: CpuProbe) -> Sample:
    committed, end = await probe.offsets()
    return Sample(time.time(), committed, end, probe.counter, cpu.sample())
