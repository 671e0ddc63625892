"""The dead-letter limit: a consumer that would refuse nearly everything stops loudly.

The policy is tested without I/O; one test runs a real consumer on its own topics
and group, feeds it only garbage, and checks that it stopped without emptying the
writes topic into the dead-letter topic (and without committing).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumers.dead_letter import DeadLetterLimit, DeadLetterLimitExceeded
from runtime.settings import Settings
from tests.conftest import create_topics, settings_env
from tests.support import BIN, Process, eventually


async def produce_garbage(bootstrap: str, topic: str, count: int = 200) -> None:
    """``count`` records that are not JSON, to partition 0 of ``topic``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        batch = producer.create_batch()
        for i in range(count):
            batch.append(key=None, value=b"not json %d" % i, timestamp=None)
        await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()


def test_a_few_dead_letters_pass() -> None:
    limit = DeadLetterLimit(max_ratio=0.5, window=100)
    for _ in range(50):
        limit.check(messages=10, dead=4)


def test_nothing_trips_before_the_window_is_full() -> None:
    limit = DeadLetterLimit(max_ratio=0.5, window=100)
    for _ in range(9):
        limit.check(messages=10, dead=10)
    with pytest.raises(DeadLetterLimitExceeded, match="100 of the last 100"):
        limit.check(messages=10, dead=10)


def test_the_share_is_of_recent_messages_only() -> None:
    limit = DeadLetterLimit(max_ratio=0.5, window=100)
    limit.check(messages=1000, dead=0)
    # 40 of the last 1,040 dead: under the ratio.
    limit.check(messages=40, dead=40)
    # The clean batch leaves the window once 100 newer messages came: these are all
    # dead, and trip the limit whatever came long before.
    with pytest.raises(DeadLetterLimitExceeded):
        limit.check(messages=60, dead=60)


def test_one_large_batch_of_garbage_trips_at_once() -> None:
    limit = DeadLetterLimit(max_ratio=0.9, window=1000)
    with pytest.raises(DeadLetterLimitExceeded):
        limit.check(messages=2000, dead=1990)


async def test_a_consumer_fed_only_garbage_stops_before_dead_lettering_it(
    settings: Settings, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    writes, dead = f"garbage.{run}.writes", f"garbage.{run}.dlq"
    group = f"garbage.{run}"
    await create_topics(settings.kafka_bootstrap_servers, {writes: 1, dead: 1})
    await produce_garbage(settings.kafka_bootstrap_servers, writes)

    env = settings_env(
        settings,
        writes_topic=writes,
        dead_letter_topic=dead,
        consumer_group=group,
        dead_letter_window=100,
        dead_letter_max_ratio=0.9,
        metrics_port=0,
    )
    consumer = Process("garbage-consumer", [str(BIN / "ingest-consumer")], env, tmp_path)
    try:

        async def stopped_loudly() -> bool:
            return "stopping the consumer" in consumer.log_path.read_text(errors="replace")

        await eventually(stopped_loudly, timeout=60)
    finally:
        consumer.stop()

    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
    )
    await reader.start()
    try:
        partition = TopicPartition(writes, 0)
        assert await reader.committed(partition) is None  # nothing committed
        assert (await reader.end_offsets([TopicPartition(dead, 0)]))[TopicPartition(dead, 0)] == 0
    finally:
        await reader.stop()
    assert "CRITICAL" in consumer.log_path.read_text(errors="replace")
