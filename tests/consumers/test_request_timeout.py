"""``CONSUMER_REQUEST_TIMEOUT_MS``: its bounds, that it reaches a worker's Kafka
clients (and no one else's), and that a worker with it set still applies writes on
the real Kafka and PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest
from pydantic import ValidationError

from consumers.registry import writes
from consumers.worker import kafka_clients
from runtime.kafka import connection_options, consumer_options
from runtime.settings import SESSION_TIMEOUT_MS, Settings
from schemas.messages import encode
from schemas.topics import partition_key
from tests.conftest import Team, create_topics, settings_env
from tests.pipeline import test_pipeline as pipeline
from tests.support import BIN, Process


def test_the_default_is_aiokafkas_and_the_bounds_keep_its_constraints() -> None:
    assert Settings().consumer_request_timeout_ms == 40_000
    Settings(consumer_request_timeout_ms=SESSION_TIMEOUT_MS + 1)
    # Not above the session timeout: a JoinGroup the broker holds would time out.
    with pytest.raises(ValidationError, match="consumer_request_timeout_ms"):
        Settings(consumer_request_timeout_ms=SESSION_TIMEOUT_MS)
    with pytest.raises(ValidationError, match="consumer_request_timeout_ms"):
        Settings(consumer_request_timeout_ms=300_001)
    with pytest.raises(ValidationError, match="must be less than CONSUMER_REQUEST_TIMEOUT_MS"):
        Settings(consumer_request_timeout_ms=15_000, consumer_fetch_max_wait_ms=15_000)


async def test_the_timeout_reaches_the_workers_consumer_and_dead_letter_producer() -> None:
    settings = Settings(consumer_request_timeout_ms=12_345)
    assert consumer_options(settings) == {
        **connection_options(settings),
        "request_timeout_ms": 12_345,
    }
    # Only the workers': every other client keeps aiokafka's default.
    assert "request_timeout_ms" not in connection_options(settings)

    consumer, producer = kafka_clients(writes(settings), settings)
    try:
        # aiokafka keeps them on private attributes: the client's is what every
        # connection to a broker is opened with (aiokafka/client.py).
        assert consumer._client._request_timeout_ms == 12_345
        assert consumer._session_timeout_ms == SESSION_TIMEOUT_MS
        assert producer.client._request_timeout_ms == 12_345
    finally:
        await consumer.stop()
        await producer.stop()


async def test_a_worker_with_a_short_request_timeout_applies_writes(
    settings: Settings, run_id: str, log_dir: Path, db: asyncpg.Pool, team: Team
) -> None:
    name = f"test.{run_id}.timeout.{uuid.uuid4().hex[:6]}"
    own = settings.model_copy(
        update={
            "writes_topic": f"{name}.writes",
            "writes_overflow_topic": f"{name}.writes.overflow",
            "dead_letter_topic": f"{name}.dlq",
            "consumer_group": f"{name}.consumers",
        }
    )
    await create_topics(
        own.kafka_bootstrap_servers,
        dict.fromkeys([own.writes_topic, own.writes_overflow_topic, own.dead_letter_topic], 2),
    )
    env = settings_env(own, metrics_port=0, consumer_request_timeout_ms=SESSION_TIMEOUT_MS + 1)
    consumer = Process("timeout-consumer", [str(BIN / "ingest-consumer")], env, log_dir)
    try:
        address = pipeline.email()
        message = pipeline.raw_message(team.id, address, plan="gold")
        await pipeline.produce(own, partition_key(team.id, message.identifiers), encode(message))
        assert await pipeline.ledger_outcome(db, message.id) == "applied"
    finally:
        consumer.stop()
    assert consumer.popen.returncode == 0, consumer.tail()
    assert "Traceback" not in consumer.tail(200)
