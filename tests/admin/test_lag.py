"""``ingest-admin lag``: a consumer group's lag per partition on the real Kafka."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from admin.topic_reader import kafka_clients
from runtime.settings import Settings
from tests.admin.test_admin import admin, command
from tests.conftest import create_topics, settings_env
from tests.support import eventually


async def lag_of(settings: Settings, *args: str) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(await command(settings, "lag", "--json", *args))
    return found


def rows(found: dict[str, Any]) -> list[tuple[int, int | None, int, int]]:
    return [(p["partition"], p["committed"], p["end"], p["lag"]) for p in found["partitions"]]


async def test_lag_per_partition_committed_against_the_end(settings: Settings, run_id: str) -> None:
    topic = f"test.{run_id}.lag.{uuid.uuid4().hex[:6]}"
    group = f"{topic}.group"
    own = settings.model_copy(update={"writes_topic": topic, "consumer_group": group})
    await create_topics(settings.kafka_bootstrap_servers, {topic: 2})
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for partition, count in ((0, 3), (1, 2)):
            for n in range(count):
                await producer.send_and_wait(topic, f"{n}".encode(), partition=partition)
    finally:
        await producer.stop()

    # A group nobody is in yet: everything still to read.
    assert rows(await lag_of(own)) == [(0, None, 3, 3), (1, None, 2, 2)]

    # The group commits one record of partition 0 (as the replay does: assigned,
    # without joining); then a member joins.
    async with kafka_clients(own, "lag-test", group) as committer:
        committer.consumer.assign([TopicPartition(topic, 0)])
        await committer.consumer.commit({TopicPartition(topic, 0): 1})
    empty = await lag_of(own)
    assert (empty["state"], empty["members"]) == ("Empty", 0)
    assert rows(empty) == [(0, 1, 3, 2), (1, None, 2, 2)]

    member = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        client_id="lag-test",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await member.start()
    try:

        async def assigned() -> dict[str, Any] | None:
            found = await lag_of(own)
            owners = [p["owner"] for p in found["partitions"]]
            return found if found["state"] == "Stable" and all(owners) else None

        found = await eventually(assigned)
        assert (found["group"], found["members"]) == (group, 1)
        assert rows(found) == [(0, 1, 3, 2), (1, None, 2, 2)]
        assert found["total_lag"] == 4
        assert all(re.fullmatch(r"lag-test-\S+@\S+", p["owner"]) for p in found["partitions"])

        # For people, through the command line, with the group and topic as settings.
        printed = admin(settings.database_url, "lag", env=settings_env(own))
        assert printed.returncode == 0, printed.stderr
        lines = printed.stdout.splitlines()
        assert lines[0] == f"group {group}: Stable, 1 member(s)"
        assert re.fullmatch(rf"{re.escape(topic)}\s+0\s+1\s+3\s+2\s+lag-test-\S+", lines[2])
        assert re.fullmatch(rf"{re.escape(topic)}\s+1\s+-\s+2\s+2\s+lag-test-\S+", lines[3])
        assert lines[-1] == "total lag: 4"
    finally:
        await member.stop()

    # Another group's view, of a topic named.
    other = await lag_of(settings, "--group", f"{group}.other", "--topic", topic)
    assert (other["state"], other["total_lag"]) == ("Dead", 5)


async def test_the_overflow_lane_is_its_own_group_on_its_own_topic(
    settings: Settings, run_id: str
) -> None:
    name = f"test.{run_id}.lag.{uuid.uuid4().hex[:6]}"
    own = settings.model_copy(
        update={"writes_overflow_topic": f"{name}.overflow", "consumer_group": name}
    )
    await create_topics(settings.kafka_bootstrap_servers, {own.writes_overflow_topic: 1})
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for n in range(2):
            await producer.send_and_wait(own.writes_overflow_topic, f"{n}".encode(), partition=0)
    finally:
        await producer.stop()
    found = await lag_of(own, "--lane", "overflow")
    assert found["group"] == f"{name}.overflow"
    assert rows(found) == [(0, None, 2, 2)]
