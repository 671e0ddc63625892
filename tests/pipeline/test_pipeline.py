"""The pipeline end to end on the real Kafka and PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import orjson
import uuid_utils
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2

from bench.writes import new_write
from runtime.settings import Settings
from schemas.messages import (
    Identifiers,
    WriteMessage,
    encode,
    encode_many,
)
from schemas.topics import partition_key
from tests.conftest import PARTITIONS, Team
from tests.support import eventually, stored_customer


def email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


async def write_customer(
    http: httpx.AsyncClient, team: Team, path_email: str, **body: Any
) -> httpx.Response:
    """``POST /api/1.0/customer/{path_email}`` as ``team`` (``data=`` or ``json=``)."""
    return await http.post(f"/api/1.0/customer/{path_email}", headers=team.headers, **body)


async def test_customer_write_ends_as_rows_in_postgres(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    response = await write_customer(
        http, team, address.upper(), data={"name": "George", "pricingPlan": "gold"}
    )
    assert response.status_code == 200
    assert response.json() == {"email": address, "name": "George", "pricingPlan": "gold"}
    message_id = response.headers["x-message-id"]
    assert uuid.UUID(message_id).version == 7

    row = await eventually(lambda: stored_customer(db, team, address))
    assert orjson.loads(row["attributes"]) == {"name": "George", "pricingPlan": "gold"}
    assert row["first_seen_at"] <= row["last_updated_at"]

    read = await http.get(f"/api/1.0/customer/{address}", headers=team.headers)
    assert read.status_code == 200
    assert read.json() == {"email": address, "name": "George", "pricingPlan": "gold"}


async def test_json_attributes_merge_into_the_existing_customer(
    http: httpx.AsyncClient, team: Team
) -> None:
    address = email()
    first = await write_customer(
        http, team, f"{address}?wait=true", json={"name": "A", "plan": "x"}
    )
    assert first.status_code == 200
    second = await http.post(
        f"/api/1.0/customer/{address}",
        json={"plan": "y", "projects": 4},
        headers={**team.headers, "Prefer": "return=representation"},
    )
    assert second.json() == {"email": address, "name": "A", "plan": "y", "projects": 4}


async def test_event_creates_customer_and_event_type(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    body = {"key": "value", "key2": [{"key3": "nested"}], "n": 1.5}
    response = await http.post(
        f"/api/1.0/events/task.created/{address}/3321", json=body, headers=team.headers
    )
    assert response.status_code == 200
    answer = response.json()
    assert answer == {
        "id": answer["id"],
        "eventName": "task.created",
        "externalId": "3321",
        "body": body,
    }

    async def stored_event() -> asyncpg.Record | None:
        return await db.fetchrow(
            "SELECT e.*, t.name AS type_name FROM events e"
            " JOIN event_types t ON t.id = e.event_type_id WHERE e.id = $1",
            uuid.UUID(answer["id"]),
        )

    event = await eventually(stored_event)
    assert event["type_name"] == "task.created"
    assert event["external_id"] == "3321"
    assert orjson.loads(event["body"]) == body
    assert event["received_at"] <= event["stored_at"]
    customer = await stored_customer(db, team, address)
    assert customer is not None and event["customer_id"] == customer["id"]


async def test_unknown_customer_is_the_documented_404(http: httpx.AsyncClient, team: Team) -> None:
    response = await http.get("/api/1.0/customer/nobody@example.com", headers=team.headers)
    assert response.status_code == 404
    assert response.json() == {"error": "Customer with email nobody@example.com was not found."}


async def test_api_key_in_header_or_query_and_401_otherwise(
    http: httpx.AsyncClient, team: Team
) -> None:
    path = "/api/1.0/customer/nobody@example.com"
    assert (await http.get(path, params={"apiKey": team.key})).status_code == 404
    missing = await http.get(path)
    assert missing.status_code == 401
    assert missing.json() == {"error": "Missing API key"}
    wrong = await http.get(path, headers={"X-API-KEY": "not-a-key-of-anyone"})
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "Invalid API key"}


async def test_teams_never_see_each_other(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    from admin.teams import create_team

    async with db.acquire() as conn:
        _, other_key = await create_team(conn, f"other-{uuid.uuid4().hex[:8]}")
    address = email()
    await http.post(f"/api/1.0/customer/{address}?wait=1", json={"a": 1}, headers=team.headers)
    other = await http.get(f"/api/1.0/customer/{address}", headers={"X-API-KEY": other_key})
    assert other.status_code == 404


def raw_message(team_id: int, address: str, **attributes: object) -> WriteMessage:
    return new_write(
        team_id, "upsert_customer", Identifiers(email=address), attributes=dict(attributes)
    )


async def test_a_batch_delivered_twice_changes_nothing(
    settings: Settings, gateway: str, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    messages = [raw_message(team.id, address, step=i) for i in range(5)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for _ in range(2):
            for m in messages:
                await producer.send_and_wait(
                    settings.writes_topic, encode(m), key=partition_key(m.team_id, m.identifiers)
                )
        # A marker after both copies: once it is applied, both copies were.
        marker = raw_message(team.id, address, done=True)
        await producer.send_and_wait(
            settings.writes_topic, encode(marker), key=partition_key(team.id, marker.identifiers)
        )
    finally:
        await producer.stop()

    async def marker_applied() -> bool:
        return bool(
            await db.fetchval(
                "SELECT count(*) FROM processed_messages WHERE message_id = $1",
                uuid.UUID(marker.id),
            )
        )

    await eventually(marker_applied)
    row = await stored_customer(db, team, address)
    assert row is not None
    assert orjson.loads(row["attributes"]) == {"step": 4, "done": True}
    counts = await db.fetchrow(
        "SELECT count(*) AS customers,"
        " (SELECT count(*) FROM customer_identifiers WHERE team_id = $1) AS identifiers"
        " FROM customers WHERE team_id = $1",
        team.id,
    )
    assert counts is not None
    assert dict(counts) == {"customers": 1, "identifiers": 2}  # email + own customer id


class DeadLetters:
    """The dead-letter topic read from its start: value -> headers of each letter."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = AIOKafkaConsumer(
            settings.dead_letter_topic,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=f"dlq-reader-{uuid_utils.uuid4()}",
        )
        self.letters: dict[bytes, dict[str, bytes]] = {}

    async def __aenter__(self) -> DeadLetters:
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def wait_for(self, *values: bytes) -> dict[bytes, dict[str, bytes]]:
        async def arrived() -> bool:
            batch = await self.consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for r in records:
                    self.letters[r.value] = dict(r.headers)
            return all(v in self.letters for v in values)

        await eventually(arrived)
        return self.letters


async def ledger_outcome(db: asyncpg.Pool, message_id: str) -> str:
    """The outcome the consumers recorded for a message, once recorded.

    For a dead letter the ledger is written after the letter was acknowledged (a
    crash in between redelivers it to the dead-letter topic rather than losing it).
    """

    async def outcome() -> str | None:
        found: str | None = await db.fetchval(
            "SELECT outcome FROM processed_messages WHERE message_id = $1", uuid.UUID(message_id)
        )
        return found

    return await eventually(outcome)


async def produce(settings: Settings, key: bytes, *values: bytes) -> None:
    """Produce ``values`` in order under ``key`` (one partition) to the writes topic."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(settings.writes_topic, value, key=key)
    finally:
        await producer.stop()


async def test_bad_message_goes_to_dead_letter_topic_and_the_partition_moves_on(
    settings: Settings, gateway: str, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    good = raw_message(team.id, address, ok=True)
    key = partition_key(team.id, good.identifiers)  # same partition: bad one comes first
    poison = b'{"id": "not a message"'
    nul = raw_message(team.id, address, bad="nul\x00char")  # jsonb refuses NUL
    async with DeadLetters(settings) as dlq:
        await produce(settings, key, poison, encode(nul), encode(good))
        row = await eventually(lambda: stored_customer(db, team, address))
        assert orjson.loads(row["attributes"]) == {"ok": True}

        letters = await dlq.wait_for(poison, encode(nul))
    assert letters[poison]["reason"].startswith(b"undecodable message")
    assert b"UntranslatableCharacter" in letters[encode(nul)]["reason"]
    assert letters[poison]["source"].startswith(settings.writes_topic.encode())
    assert await ledger_outcome(db, nul.id) == "dead_letter"


async def test_consumer_serves_prometheus_metrics_with_lag(
    http: httpx.AsyncClient, team: Team, consumer_metrics_port: int, settings: Settings
) -> None:
    await http.post(f"/api/1.0/customer/{email()}?wait=1", json={"m": 1}, headers=team.headers)

    async def metrics() -> str | None:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"http://127.0.0.1:{consumer_metrics_port}/metrics")).text
        lag = f'ingest_consumer_lag_records{{partition="0",topic="{settings.writes_topic}"}}'
        return text if lag in text and "ingest_consumer_last_committed_timestamp" in text else None

    text = await eventually(metrics)
    applied = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("ingest_consumer_messages_total ")
    )
    assert applied >= 1
    for name in ("batch_duration_seconds_count", "batch_messages_count", "records_total"):
        assert f"ingest_consumer_{name}" in text


async def test_a_record_of_many_messages_applies_in_order_and_dead_letters_one_alone(
    settings: Settings, gateway: str, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    first = raw_message(team.id, address, step=1, kept="first")
    nul = raw_message(team.id, address, bad="nul\x00char")  # jsonb refuses NUL
    last = raw_message(team.id, address, step=2)
    value = encode_many([encode(first), encode(nul), encode(last)])
    key = partition_key(team.id, first.identifiers)
    partition = (murmur2(key) & 0x7FFFFFFF) % PARTITIONS
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        async with DeadLetters(settings) as dlq:
            await producer.send_and_wait(settings.writes_topic, value, key=key, partition=partition)
            assert await ledger_outcome(db, last.id) == "applied"
            row = await stored_customer(db, team, address)
            assert row is not None
            assert orjson.loads(row["attributes"]) == {"step": 2, "kept": "first"}
            letters = await dlq.wait_for(encode(nul))
        assert value not in letters  # the message alone, not its record
        assert b"UntranslatableCharacter" in letters[encode(nul)]["reason"]
        assert await ledger_outcome(db, nul.id) == "dead_letter"
    finally:
        await producer.stop()
