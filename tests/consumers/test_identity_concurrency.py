"""Identity resolution under concurrency, on the real Kafka and PostgreSQL.

The same seeded workload runs through one consumer and through four consumers on
six partitions, once more with a consumer killed by SIGKILL mid-stream, and once
"with lanes" (issue 21): each message in the main or the overflow topic, each with
its own consumer group, so that a key's writes are applied in another order than
they were accepted. The final stores must be equal customer for customer, event for
event.
"""

from __future__ import annotations

import random
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
        # The overflow lane: a topic and a consumer group of its own.
        self.overflow_topic = f"run.{self.name}.overflow"
        self.overflow_group = f"run.{self.name}.overflow"
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
            {
                self.settings.writes_topic: PARTITIONS,
                self.overflow_topic: PARTITIONS,
                self.settings.dead_letter_topic: 1,
            },
        )
        self.pool = await asyncpg.create_pool(self.url, min_size=1, max_size=2)
        async with self.pool.acquire() as c:
            team_id, _ = await create_team(c, "load")
        return team_id

    def start_consumer(self, overflow: bool = False) -> Process:
        n = len(self.consumers)
        lane = {"writes_topic": self.overflow_topic, "consumer_group": self.overflow_group}
        proc = Process(
            f"{self.name}-consumer-{n}",
            [str(BIN / "ingest-consumer")],
            settings_env(self.settings, **(lane if overflow else {})),
            self.log_dir,
        )
        self.consumers.append(proc)
        return proc

    async def produce(
        self, messages: list[WriteMessage], topics: list[tuple[str, ...]] | None = None
    ) -> None:
        """Produce ``messages`` in order, each to its ``topics`` (default: the main topic)."""
        main = (self.settings.writes_topic,)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )
        await producer.start()
        try:
            futures = [
                await producer.send(topic, encode(m), key=partition_key(m.team_id, m.identifiers))
                for n, m in enumerate(messages)
                for topic in (topics[n] if topics else main)
            ]
            for f in futures:
                await f
        finally:
            await producer.stop()

    async def wait_for_group(self, members: int, group_id: str | None = None) -> None:
        """Every consumer has joined and holds partitions before the workload starts."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap_servers)
        await admin.start()

        async def joined() -> bool:
            (response,) = await admin.describe_consumer_groups(
                [group_id or self.settings.consumer_group]
            )
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


def lanes(
    seed: int, messages: list[WriteMessage], main: str, overflow: str
) -> list[tuple[str, ...]]:
    """The topics of each message, as a gateway switching lanes would choose them.

    Each key keeps its lane for a run of messages and switches at random (a team's
    rate crossing the threshold, either way); a delete goes to both lanes (the
    second copy is a redelivery the ledger skips), so that no write accepted after
    it, in either lane, is applied before it.
    """
    rng = random.Random(seed)
    current: dict[bytes, str] = {}
    topics: list[tuple[str, ...]] = []
    for m in messages:
        key = partition_key(m.team_id, m.identifiers)
        lane = current.get(key) or rng.choice((main, overflow))
        if rng.random() < 0.2:
            lane = overflow if lane == main else main
        current[key] = lane
        topics.append((main, overflow) if m.op == "delete_customer" else (lane,))
    return topics


async def run_with_lanes(
    runs: list[Run], base: Settings, service_urls: tuple[str, str], log_dir: Path
) -> tuple[dict[Any, Any], dict[str, int]]:
    """The workload in two lanes; the overflow lane's consumer starts late, once the
    main lane has applied a third of the workload, so that many writes are applied
    long after writes of their key accepted later. Returns the store and the count
    of each outcome."""
    run = Run(base, service_urls, log_dir)
    runs.append(run)
    team_id = await run.setup()
    messages = generate(SEED, team_id, COUNT)
    distinct = len({m.id for m in messages})
    topics = lanes(SEED, messages, run.settings.writes_topic, run.overflow_topic)
    in_main = len(
        {m.id for m, t in zip(messages, topics, strict=True) if t != (run.overflow_topic,)}
    )
    assert distinct // 4 < in_main < distinct  # both lanes carry a good share
    run.start_consumer()
    await run.wait_for_group(1)
    await run.produce(messages, topics)
    await eventually(lambda: _at_least(run, in_main // 3), timeout=240, interval=0.05)
    run.start_consumer(overflow=True)
    await run.wait_until_processed(distinct)
    assert run.pool is not None
    store = await canonical_store(run.pool, team_id)
    outcomes = {
        r["outcome"]: r["n"]
        for r in await run.pool.fetch(
            "SELECT outcome, count(*) AS n FROM processed_messages GROUP BY 1"
        )
    }
    assert not any(o.startswith("dead_letter") for o in outcomes)
    return store, outcomes


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


async def test_two_lanes_leave_the_store_one_consumer_leaves(
    runs: list[Run], settings: Settings, service_urls: tuple[str, str], log_dir: Path
) -> None:
    single = await run_workload(runs, settings, service_urls, log_dir, consumers=1)
    laned, outcomes = await run_with_lanes(runs, settings, service_urls, log_dir)
    # The rules that order by message id or by window were exercised across lanes:
    # writes accepted before a delete were applied after it, duplicate confirmations
    # and opens of one window were met.
    assert outcomes.get("discarded:erased", 0) > 0, outcomes
    assert outcomes.get("discarded:duplicate_confirmation", 0) > 0, outcomes
    assert outcomes.get("discarded:email_open_window", 0) > 0, outcomes
    kept = [e for value in single.values() for e in value[2] if isinstance(e, str)]
    assert len(kept) > 1000
    assert laned == single
