"""Poison pills produced straight to Kafka (bypassing the gateway's checks).

Each class of message that once killed the consumer (issue #11) is produced ahead of
a good message on the same partition. The consumer must dead-letter the bad one
with its reason and original bytes, apply the good one, and stay up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import msgspec
import orjson
import pytest

from consumers import timestamps
from runtime.settings import Settings
from schemas.messages import EventData, WriteMessage, encode
from schemas.topics import partition_key
from tests.conftest import Team
from tests.pipeline.test_pipeline import (
    DeadLetters,
    email,
    ledger_outcome,
    produce,
    raw_message,
)
from tests.support import Process, stored_customer

PLACEHOLDER = 987654321987


def event_message(team_id: int, address: str, body: object) -> WriteMessage:
    event = EventData(name="poison.test", body=body)
    return msgspec.structs.replace(raw_message(team_id, address), op="track_event", event=event)


def attribute_beyond_int64(team_id: int, address: str) -> tuple[WriteMessage, bytes]:
    message = raw_message(team_id, address, big=PLACEHOLDER)
    return message, encode(message).replace(str(PLACEHOLDER).encode(), str(2**70).encode())


def body_with_invalid_utf8(team_id: int, address: str) -> tuple[WriteMessage, bytes]:
    message = event_message(team_id, address, {"text": "PLACEHOLDER"})
    return message, encode(message).replace(b"PLACEHOLDER", b"\xff\xfe\xfd")


def body_with_lone_surrogate(team_id: int, address: str) -> tuple[WriteMessage, bytes]:
    message = event_message(team_id, address, {"text": "PLACEHOLDER"})
    return message, encode(message).replace(b"PLACEHOLDER", b"\\ud800")


def event_time_in_year_zero(team_id: int, address: str) -> tuple[WriteMessage, bytes]:
    # 0001-01-01T00:00:00+01:00 is 0000-12-31T23:00:00 UTC: beyond Python's datetime.
    year_one = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    message = msgspec.structs.replace(
        raw_message(team_id, address, kept="no"), occurred_at=year_one
    )
    return message, encode(message)


POISONS = {
    "attribute beyond int64": (attribute_beyond_int64, b"64"),
    "event body with invalid UTF-8": (body_with_invalid_utf8, b"UnicodeDecodeError"),
    "event body with a lone surrogate": (body_with_lone_surrogate, b"undecodable message"),
    "event time in year 0 UTC": (event_time_in_year_zero, b"occurred_at: must be within the years"),
}


@pytest.mark.parametrize("kind", list(POISONS))
async def test_a_poison_pill_is_dead_lettered_and_the_partition_moves_on(
    kind: str, settings: Settings, gateway: str, consumer: Process, db: asyncpg.Pool, team: Team
) -> None:
    make, reason = POISONS[kind]
    address = email()
    bad, value = make(team.id, address)
    good = raw_message(team.id, address, ok=True)
    key = partition_key(team.id, good.identifiers)  # one partition: the bad one comes first
    async with DeadLetters(settings) as dlq:
        await produce(settings, key, value, encode(good))
        assert await ledger_outcome(db, good.id) == "applied"
        letters = await dlq.wait_for(value)
    assert reason in letters[value]["reason"], letters[value]["reason"]
    assert letters[value]["source"].startswith(settings.writes_topic.encode())
    if not reason.startswith(b"undecodable"):  # (an undecodable message has no id to record)
        assert await ledger_outcome(db, bad.id) == "dead_letter"
    row = await stored_customer(db, team, address)
    assert row is not None
    assert orjson.loads(row["attributes"]) == {"ok": True}
    assert consumer.popen.poll() is None, consumer.tail()


async def test_a_stored_time_beyond_pythons_range_is_read_back(database_url: str) -> None:
    """The consumers' timestamptz decoder maps what Python cannot hold to its bounds."""
    conn = await asyncpg.connect(database_url)
    try:
        await timestamps.install(conn)
        row = await conn.fetchrow(
            "SELECT '0001-12-31 23:00:00+00 BC'::timestamptz,"
            " '20000-01-01 00:00:00+00'::timestamptz, 'infinity'::timestamptz"
        )
    finally:
        await conn.close()
    assert row is not None
    low, high, infinite = row
    assert low == datetime.min.replace(tzinfo=UTC)
    assert high == infinite == datetime.max.replace(tzinfo=UTC)
