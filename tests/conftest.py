"""Fixtures: the real Kafka and PostgreSQL, and the pipeline's processes on them.

The services come from ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL`` (``make
test`` starts local ones and exports them). Where a Docker engine answers and
neither is set, testcontainers starts them instead. Each test session gets its
own database and topics, so tests never see a running ``make run`` pipeline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from admin.teams import create_team
from admin.topics import ensure_topics
from bench.databases import drop_database
from runtime.settings import Settings
from schemas.migrate import migrate
from tests.support import BIN, Process, free_port, wait_for_http

PARTITIONS = 6


def _docker_works() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def service_urls() -> Iterator[tuple[str, str]]:
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    database = os.environ.get("DATABASE_URL")
    if kafka and database:
        yield kafka, database
        return
    if not _docker_works():
        pytest.exit(
            "KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL are not set and no Docker engine "
            "answers: run the suite with `make test`, which starts local services.",
            returncode=2,
        )
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with KafkaContainer() as k, PostgresContainer("postgres:15", driver=None) as p:
        yield k.get_bootstrap_server(), p.get_connection_url()


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@asynccontextmanager
async def scratch_database(admin_url: str, name: str) -> AsyncIterator[str]:
    """A new, empty database ``name`` beside ``admin_url``'s; its URL; dropped after."""
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await drop_database(admin_url, name)


@pytest.fixture(scope="session")
async def database_url(service_urls: tuple[str, str], run_id: str) -> AsyncIterator[str]:
    """A fresh database for this session, migrated; dropped at the end."""
    async with scratch_database(service_urls[1], f"ingest_test_{run_id}") as url:
        await migrate(url)
        yield url


async def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    # One copy whatever the shell says: the tests' brokers are single nodes (the
    # replicated cluster's tests make their own topics).
    single = Settings(
        kafka_bootstrap_servers=bootstrap, kafka_replication_factor=1, kafka_min_insync_replicas=1
    )
    await ensure_topics(single, topics)


@pytest.fixture(scope="session")
async def settings(service_urls: tuple[str, str], database_url: str, run_id: str) -> Settings:
    writes, dead = f"test.{run_id}.writes", f"test.{run_id}.dlq"
    overflow = f"{writes}.overflow"
    await create_topics(service_urls[0], {writes: PARTITIONS, overflow: PARTITIONS, dead: 1})
    return Settings(
        kafka_bootstrap_servers=service_urls[0],
        database_url=database_url,
        writes_topic=writes,
        writes_overflow_topic=overflow,
        dead_letter_topic=dead,
        consumer_group=f"test.{run_id}.consumers",
        gateway_port=free_port(),
        wait_timeout_s=20,
        consumer_poll_timeout_ms=50,
    )


def settings_env(settings: Settings, **overrides: Any) -> dict[str, str]:
    """The environment that makes a pipeline process use ``settings``."""
    values = settings.model_dump() | overrides
    return {
        k.upper(): v.get_secret_value() if isinstance(v, SecretStr) else str(v)
        for k, v in values.items()
        if v is not None
    }


@asynccontextmanager
async def private_gateway(
    settings: Settings, log_dir: Path, name: str, ready: str = "/readyz", **overrides: Any
) -> AsyncIterator[tuple[str, Process]]:
    """A gateway of the test's own on a free port, with ``overrides`` of ``settings``.

    Yields its base URL and process once ``ready`` answers 200; stops it after.
    """
    port = free_port()
    env = settings_env(settings, gateway_port=port, **overrides)
    proc = Process(name, [str(BIN / "ingest-gateway")], env, log_dir)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_for_http(f"{base}{ready}", proc)
        yield base, proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def consumer_metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def consumer(settings: Settings, log_dir: Path, consumer_metrics_port: int) -> Iterator[Process]:
    env = settings_env(settings, metrics_port=consumer_metrics_port)
    proc = Process("consumer", [str(BIN / "ingest-consumer")], env, log_dir)
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
async def gateway(settings: Settings, log_dir: Path, consumer: Process) -> AsyncIterator[str]:
    """Base URL of a running gateway, with a consumer applying what it publishes."""
    proc = Process("gateway", [str(BIN / "ingest-gateway")], settings_env(settings), log_dir)
    base = f"http://127.0.0.1:{settings.gateway_port}"
    await wait_for_http(f"{base}/readyz", proc)
    yield base
    proc.stop()


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@dataclass(frozen=True)
class Team:
    id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-KEY": self.key}


@pytest.fixture
async def team(db: asyncpg.Pool) -> Team:
    """A new team for each test: tests never see each other's customers."""
    async with db.acquire() as conn:
        team_id, key = await create_team(conn, f"team-{uuid.uuid4().hex[:12]}")
    return Team(team_id, key)


@pytest.fixture
async def http(gateway: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        yield client
