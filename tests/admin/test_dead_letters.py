"""``ingest-admin replay-dead-letters`` (and ``list-`` and ``show-dead-letter`` on
what a consumer dead-lettered) on the real Kafka and PostgreSQL.

The letters come from a consumer of the test's own, on topics of their own: a replay
reads a whole dead-letter topic, and the session's is shared by every test.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from admin.dead_letters import GROUP
from admin.topic_reader import bounds, kafka_clients, read_until, seek_to, topic_partitions
from bench.writes import new_write
from runtime.settings import Settings
from schemas.messages import Identifiers, WriteMessage, encode
from schemas.topics import partition_key
from tests.admin.test_admin import admin, command
from tests.conftest import Team, create_topics, settings_env
from tests.pipeline import test_pipeline as pipeline
from tests.support import BIN, Process, customer_holding, eventually, stored_customer


@pytest.fixture
async def replay_settings(settings: Settings, run_id: str) -> Settings:
    """The session's settings with a writes and a dead-letter topic of this test's own."""
    name = f"test.{run_id}.replay.{uuid.uuid4().hex[:6]}"
    topics = {"writes_topic": f"{name}.writes", "dead_letter_topic": f"{name}.dlq"}
    await create_topics(settings.kafka_bootstrap_servers, dict.fromkeys(topics.values(), 2))
    return settings.model_copy(update={**topics, "consumer_group": f"{name}.consumers"})


@pytest.fixture
def replay_consumer(replay_settings: Settings, log_dir: Path) -> Iterator[Process]:
    env = settings_env(replay_settings, metrics_port=0)
    proc = Process("replay-consumer", [str(BIN / "ingest-consumer")], env, log_dir)
    yield proc
    proc.stop()


async def dlq_offsets(settings: Settings) -> tuple[dict[int, int], dict[int, int]]:
    """(the replay group's committed offsets, the ends) of the dead-letter topic, by partition."""
    client = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await client.start()
    await reader.start()
    try:
        committed = await client.list_consumer_group_offsets(GROUP)
        partitions = [TopicPartition(settings.dead_letter_topic, p) for p in range(2)]
        ends = await reader.end_offsets(partitions)
    finally:
        await reader.stop()
        await client.close()
    topic = settings.dead_letter_topic
    return (
        {tp.partition: o.offset for tp, o in committed.items() if tp.topic == topic},
        {tp.partition: end for tp, end in ends.items()},
    )


async def writes_end(settings: Settings) -> int:
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await reader.start()
    try:
        partitions = [TopicPartition(settings.writes_topic, p) for p in range(2)]
        return sum((await reader.end_offsets(partitions)).values())
    finally:
        await reader.stop()


async def test_dead_letters_replayed_after_the_fix_apply_once(
    replay_settings: Settings, replay_consumer: Process, db: asyncpg.Pool
) -> None:
    s = replay_settings
    env = settings_env(s)
    # A team that does not exist (yet): the store's foreign key refuses its customer.
    missing_team = 2**62 + uuid.uuid4().int % 2**40
    address = pipeline.email()
    orphan = pipeline.raw_message(missing_team, address, plan="gold")
    poison = b'{"id": "not a message"'  # dead-lettered too, and never fixable
    async with pipeline.DeadLetters(s) as dlq:
        await pipeline.produce(
            s, partition_key(missing_team, orphan.identifiers), encode(orphan), poison
        )
        letters = await dlq.wait_for(encode(orphan), poison)
    assert b"ForeignKeyViolation" in letters[encode(orphan)]["reason"]
    assert await pipeline.ledger_outcome(db, orphan.id) == "dead_letter"

    # The letters as the consumer wrote them, counted by reason and shown whole.
    listing = orjson.loads(await command(s, "list-dead-letters", "--json"))
    assert {(r["class"], r["reason"], r["letters"]) for r in listing["reasons"]} == {
        ("apply_failed", "ForeignKeyViolationError", 1),
        ("undecodable", "undecodable message", 1),
    }
    fk = next(r for r in listing["reasons"] if r["class"] == "apply_failed")["samples"][0]
    shown = orjson.loads(
        await command(s, "show-dead-letter", f"{fk['partition']}:{fk['offset']}", "--json")
    )
    assert base64.b64decode(shown["value_base64"]) == encode(orphan)
    assert base64.b64decode(shown["key_base64"]) == partition_key(missing_team, orphan.identifiers)
    assert shown["source"].startswith(f"{s.writes_topic}/")
    assert [name for name, _ in shown["headers"]] == ["reason", "source"]

    # A dry run shows the letters and changes nothing.
    before = await writes_end(s)
    dry = admin(s.database_url, "replay-dead-letters", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "ForeignKeyViolationError" in dry.stdout and "undecodable message" in dry.stdout
    assert f"from {s.writes_topic}/" in dry.stdout
    assert repr(encode(orphan)[:40])[:-1] in dry.stdout  # the first bytes of the value
    assert dry.stdout.splitlines()[-1] == (
        "dry run: would replay 2 dead letter(s), skip 0; nothing produced or committed"
    )
    limited = admin(s.database_url, "replay-dead-letters", "--dry-run", "--limit", "1", env=env)
    assert "would replay 1 dead letter(s), skip 0" in limited.stdout, limited.stderr
    assert await writes_end(s) == before
    assert (await dlq_offsets(s))[0] == {}  # nothing committed

    # The fix: the team is created. Only the letters it fixes are replayed.
    await db.execute(
        "INSERT INTO teams (id, name) OVERRIDING SYSTEM VALUE VALUES ($1, $2)",
        missing_team,
        f"restored-{missing_team}",
    )
    replay = admin(
        s.database_url, "replay-dead-letters", "--reason-contains", "foreignkey", env=env
    )
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.strip() == "replayed 1 dead letter(s), skipped 1"

    row = await eventually(lambda: stored_customer(db, Team(missing_team, key=""), address))
    assert await pipeline.ledger_outcome(db, orphan.id) == "applied"  # (the same transaction)
    assert orjson.loads(row["attributes"]) == {"plan": "gold"}
    assert await db.fetchval("SELECT count(*) FROM customers WHERE team_id = $1", missing_team) == 1

    # The group's offsets are at the end of the topic: a second run finds nothing.
    committed, ends = await dlq_offsets(s)
    assert committed == {p: end for p, end in ends.items() if end}
    again = admin(s.database_url, "replay-dead-letters", env=env)
    assert again.stdout.strip() == "replayed 0 dead letter(s), skipped 0", again.stderr
    assert replay_consumer.popen.poll() is None, replay_consumer.tail()


@pytest.fixture
async def lanes_settings(settings: Settings, run_id: str) -> Settings:
    """The session's settings with writes, overflow and dead-letter topics of this
    test's own (2 partitions each) and consumer groups of its own."""
    name = f"test.{run_id}.lanes.{uuid.uuid4().hex[:6]}"
    topics = {
        "writes_topic": f"{name}.writes",
        "writes_overflow_topic": f"{name}.writes.overflow",
        "dead_letter_topic": f"{name}.dlq",
    }
    await create_topics(settings.kafka_bootstrap_servers, dict.fromkeys(topics.values(), 2))
    return settings.model_copy(update={**topics, "consumer_group": f"{name}.consumers"})


async def topic_records(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes]]:
    """(key, value) of every record of ``topic`` now."""
    async with kafka_clients(settings, "replay-test") as kafka:
        spans = await bounds(kafka.consumer, await topic_partitions(kafka.admin, topic))
        seek_to(kafka.consumer, spans)
        found = []
        async for batch in read_until(kafka.consumer, {tp: s.end for tp, s in spans.items()}):
            found += [(r.key, r.value) for records in batch.values() for r in records]
        return found


async def put_letters(settings: Settings, *messages: WriteMessage) -> None:
    """Each message as a dead letter, as the gateway's dead_letter control writes one."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for message in messages:
            await producer.send_and_wait(
                settings.dead_letter_topic,
                encode(message),
                key=partition_key(message.team_id, message.identifiers),
                headers=[("reason", b"the team's dead_letter control"), ("source", b"gateway")],
            )
    finally:
        await producer.stop()


async def test_a_replayed_delete_goes_to_both_lanes_as_the_gateway_publishes_it(
    lanes_settings: Settings, log_dir: Path, db: asyncpg.Pool, team: Team
) -> None:
    s = lanes_settings
    address = pipeline.email()
    named = Identifiers(email=address)
    written = new_write(team.id, "upsert_customer", named, attributes={"plan": "gold"})
    await pipeline.produce(s, partition_key(team.id, named), encode(written))
    delete = new_write(team.id, "delete_customer", named)
    # Dead-lettered too, and no delete: replayed to the main lane only.
    upsert = new_write(team.id, "upsert_customer", Identifiers(email=pipeline.email()))
    await put_letters(s, delete, upsert)

    dry = (await command(s, "replay-dead-letters", "--dry-run")).splitlines()
    assert sum("(a delete: to both lanes)" in line for line in dry) == 1
    assert dry[-1] == (
        "dry run: would replay 2 dead letter(s), 1 of them to both lanes (a delete), skip 0;"
        " nothing produced or committed"
    )

    consumer = Process(
        "lanes-consumer",
        [str(BIN / "ingest-consumer")],
        settings_env(s, metrics_port=0, consumer_overflow_processes=1),
        log_dir,
    )
    try:
        assert await pipeline.ledger_outcome(db, written.id) == "applied"
        replayed = await command(s, "replay-dead-letters")
        assert (
            replayed == "replayed 2 dead letter(s), 1 of them to both lanes (a delete), skipped 0"
        )

        # One message id in both lanes, under its partition key, as the gateway
        # publishes a delete; the other letter in the main lane only.
        main = await topic_records(s, s.writes_topic)
        assert (partition_key(team.id, named), encode(delete)) in main
        assert (partition_key(team.id, upsert.identifiers), encode(upsert)) in main
        assert await topic_records(s, s.writes_overflow_topic) == [
            (partition_key(team.id, named), encode(delete))
        ]

        # Applied once, by whichever lane came first: the customer is erased.
        assert await pipeline.ledger_outcome(db, delete.id) == "applied"
        assert await pipeline.ledger_outcome(db, upsert.id) == "applied"
        assert await stored_customer(db, team, address) is None
        assert await customer_holding(db, team.id, "email", address) is None
    finally:
        consumer.stop()
    assert consumer.popen.returncode == 0, consumer.tail()
