"""Identity resolution under concurrency, on the real Kafka and PostgreSQL.

The same seeded workload runs through one consumer and through four consumers on
six partitions, and once more with a consumer killed by SIGKILL mid-stream; the
final stores must be equal customer for customer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from admin.teams import create_team
from bench.databases import drop_database
from runtime.settings import Settings
from schemas.messages import WriteMessage, encode
from schemas.migrate import migrate
from schemas.topics import partition_key
from tests.conftest import PARTITIONS, create_topics, settings_env
from tests.consumers.workload import canonical_store, generate
from tests.support import BIN, Process, eventually

SEED = 20261123
COUNT = 6000


class Run:
    """A fresh database and topic, consumer processes on them, and the workload."""

    def __init__(self, base: Settings, service_urls: tuple[str, str], log_dir: Path) -> None:
        self.name = uuid.uuid4().hex[:8]
        self.admin_url = service_urls[1]
        self.database = f"ingest_run_{self.name}"
        self.url = self.admin_url.rsplit("/", 1)[0] + f"/{self.database}"
        self.settings = base.model_copy(
            update={
                "database_url": self.url,
                "writes_topic": f"run.{self.name}.writes",
                "dead_letter_topic": f"run.{self.name}.dlq",
                "consumer_group": f"run.{self.name}",
                "consumer_max_records": 500,
            }
        )
        self.log_dir = log_dir
        self.consumers: list[Process] = []
        self.pool: asyncpg.Pool | None = None

    async def setup(self) -> int:
        conn = await asyncpg.connect(self.admin_url)
        await conn.execute(f'CREATE DATABASE "{self.database}"')
        await conn.close()
        await migrate(self.url)
        await create_topics(
            self.settings.kafka_bootstrap_servers,
            {self.settings.writes_topic: PARTITIONS, self.settings.dead_letter_topic: 1},
        )
        self.pool = await asyncpg.create_pool(self.url, min_size=1, max_size=2)
        async with self.pool.acquire() as c:
            team_id, _ = await create_team(c, "load")
        return team_id

    def start_consumer(self) -> Process:
        n = len(self.consumers)
        proc = Process(
            f"{self.name}-consumer-{n}",
            [str(BIN / "ingest-consumer")],
            settings_env(self.settings),
            self.log_dir,
        )
        self.consumers.append(proc)
        return proc

    async def produce(self, messages: list[WriteMessage]) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )
        await producer.start()
        try:
            futures = [
                await producer.send(
                    self.settings.writes_topic,
                    encode(m),
                    key=partition_key(m.team_id, m.identifiers),
                )
                for m in messages
            ]
            for f in futures:
                await f
        finally:
            await producer.stop()

    async def wait_for_group(self, members: int) -> None:
        """Every consumer has joined and holds partitions before the workload starts."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap_servers)
        await admin.start()

        async def joined() -> bool:
            (response,) = await admin.describe_consumer_groups([self.settings.consumer_group])
            group = response.groups[0]
            return group[2] == "Stable" and len(group[5]) == members

        try:
            await eventually(joined, timeout=60, interval=0.2)
        finally:
            await admin.close()

    async def processed(self) -> int:
        assert self.pool is not None
        return int(await self.pool.fetchval("SELECT count(*) FROM processed_messages"))

    async def wait_until_processed(self, expected: int) -> None:
        async def done() -> bool:
            for c in self.consumers:
                if c.popen.poll() is not None and c.popen.returncode not in (-9,):
                    raise AssertionError(f"{c.name} exited:\n{c.tail()}")
            return await self.processed() >= expected

        await eventually(done, timeout=240, interval=0.2)

    async def close(self) -> None:
        for c in self.consumers:
            c.stop()
        if self.pool:
            await self.pool.close()
        await drop_database(self.admin_url, self.database)


@pytest.fixture
async def runs(
    settings: Settings, service_urls: tuple[str, str], log_dir: Path
) -> AsyncIterator[list[Run]]:
    created: list[Run] = []

    yield created
    for r in created:
        await r.close()


async def run_workload(
    runs: list[Run],
    base: Settings,
    service_urls: tuple[str, str],
    log_dir: Path,
    consumers: int,
    kill_midway: bool = False,
) -> dict[Any, Any]:
    run = Run(base, service_urls, log_dir)
    runs.append(run)
    team_id = await run.setup()
    messages = generate(SEED, team_id, COUNT)
    distinct = len({m.id for m in messages})
    for _ in range(consumers):
        run.start_consumer()
    await run.wait_for_group(consumers)
    await run.produce(messages)
    if kill_midway:
        await eventually(lambda: _at_least(run, distinct // 4), timeout=240, interval=0.05)
        victim = run.consumers[0]
        victim.crash()
        assert await run.processed() < distinct, "the workload finished before the kill"
        run.start_consumer()
    await run.wait_until_processed(distinct)
    assert run.pool is not None
    store = await canonical_store(run.pool, team_id)
    dead = await run.pool.fetchval(
        "SELECT count(*) FROM processed_messages WHERE outcome LIKE 'dead_letter%'"
    )
    assert dead == 0
    return store


async def _at_least(run: Run, n: int) -> bool:
    return await run.processed() >= n


async def test_four_consumers_on_six_partitions_equal_one_consumer(
    runs: list[Run], settings: Settings, service_urls: tuple[str, str], log_dir: Path
) -> None:
    single = await run_workload(runs, settings, service_urls, log_dir, consumers=1)
    parallel = await run_workload(runs, settings, service_urls, log_dir, consumers=4)
    assert len(single) > 20  # the workload really built many customers
    assert any(len(key) > 1 for key in single)  # and merged identities
    # Anonymous devices were identified: merged into people named otherwise too.
    linked = [k for k in single if any(i.startswith("anonymous_id:") for i in k)]
    assert any(len(k) > 1 for k in linked)
    assert any(k[0] == "group" for k in single)  # and groups with members were built
    assert parallel == single


async def test_consumer_killed_mid_batch_leaves_the_same_store(
    runs: list[Run], settings: Settings, service_urls: tuple[str, str], log_dir: Path
) -> None:
    single = await run_workload(runs, settings, service_urls, log_dir, consumers=1)
    killed = await run_workload(
        runs, settings, service_urls, log_dir, consumers=2, kill_midway=True
    )
    assert killed == single
