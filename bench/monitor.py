"""Sampling during a run: the consumer group's progress and lag, and CPU per component."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.procs import process_table, tree_cpu


@dataclass
class Sample:
    t: float  # epoch seconds
    committed: int  # sum of the group's committed offsets: messages applied in PostgreSQL
    end: int  # sum of the partitions' end offsets: messages accepted into Kafka
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def lag(self) -> int:
        return max(self.end - self.committed, 0)


class GroupProbe:
    """Committed and end offsets of one topic and consumer group."""

    def __init__(self, bootstrap: str, topic: str, group: str, partitions: int) -> None:
        self.topic = topic
        self.group = group
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-probe")
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, client_id="bench-probe", enable_auto_commit=False
        )

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def offsets(self) -> tuple[int, int]:
        """(committed, end) summed over the partitions."""
        committed = await self._admin.list_consumer_group_offsets(self.group)
        ends = await self._consumer.end_offsets(self.partitions)
        done = sum(max(meta.offset, 0) for tp, meta in committed.items() if tp.topic == self.topic)
        return done, sum(ends.values())


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
    return Sample(time.time(), committed, end, cpu.sample())
