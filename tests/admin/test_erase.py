"""``ingest-admin erase-customer`` through the real pipeline: Kafka, a consumer, PostgreSQL.

The erase publishes what the 000 API's delete publishes, to the writes topic the
session's gateway and consumer use, so the consumer applies it as it applies the
API's delete: after the writes keyed the same way, and erasing customer, identifiers
and events.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import httpx
import msgspec
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from admin.errors import CommandError
from admin.teams import create_team
from admin.topic_reader import bounds, kafka_clients, topic_partitions
from bench.writes import new_write
from runtime.settings import Settings
from schemas.messages import EventData, Identifiers, WriteMessage, decode_record, encode
from schemas.topics import partition_key
from tests.admin.test_admin import admin, command
from tests.admin.test_dead_letters import topic_records
from tests.conftest import PARTITIONS, Team, settings_env
from tests.pipeline.test_pipeline import email, ledger_outcome, produce
from tests.support import customer_holding, stored_customer


async def erase(settings: Settings, team: Team, *args: str) -> dict[str, Any]:
    """Erase (confirmed, waiting for the consumers); what the command printed."""
    done = await command(
        settings, "erase-customer", "--team", str(team.id), *args, "--yes", "--json", "--wait", "20"
    )
    printed: dict[str, Any] = orjson.loads(done)
    assert printed["outcome"] == "applied", printed
    return printed


async def records(
    settings: Settings, partition: int, upto: int | None = None
) -> list[tuple[int, bytes, Any]]:
    """(offset, key, messages) of the writes topic's ``partition`` before ``upto``
    (None: its end now)."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await reader.start()
    try:
        tp = TopicPartition(settings.writes_topic, partition)
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        if upto is None:
            upto = (await reader.end_offsets([tp]))[tp]
        found = []
        while await reader.position(tp) < upto:
            for record in (await reader.getmany(tp, timeout_ms=1000)).get(tp, []):
                decoded = decode_record(record.value)
                batch = decoded if isinstance(decoded, list) else [decoded]
                found.append((record.offset, record.key, batch))
        return [r for r in found if r[0] < upto]
    finally:
        await reader.stop()


def find(found: list[tuple[int, bytes, Any]], message_id: str) -> tuple[int, bytes, WriteMessage]:
    return next(
        (offset, key, message)
        for offset, key, batch in found
        for message in batch
        if message.id == message_id
    )


async def writes_end(settings: Settings) -> int:
    async with kafka_clients(settings, "erase-test") as kafka:
        partitions = await topic_partitions(kafka.admin, settings.writes_topic)
        return sum(span.end for span in (await bounds(kafka.consumer, partitions)).values())


async def counts(db: asyncpg.Pool, team: Team) -> dict[str, int]:
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM customers WHERE team_id = $1) AS customers,"
        " (SELECT count(*) FROM customer_identifiers WHERE team_id = $1) AS identifiers,"
        " (SELECT count(*) FROM events WHERE team_id = $1) AS events",
        team.id,
    )
    assert row is not None
    return dict(row)


async def test_erase_by_email_is_the_apis_delete_in_order_after_the_customers_writes(
    settings: Settings, http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    # Accepted, not waited for: the erase follows them at once.
    written = await http.post(
        f"/api/1.0/customer/{address}", data={"plan": "gold"}, headers=team.headers
    )
    event = await http.post(f"/api/1.0/events/signup/{address}/x1", json={}, headers=team.headers)
    assert (written.status_code, event.status_code) == (200, 200), event.text

    erased = await erase(settings, team, "--email", f"  {address.upper()} ")
    assert erased["given"] == erased["named"] == {"email": address}  # normalised
    assert await counts(db, team) == {"customers": 0, "identifiers": 0, "events": 0}

    # On the writes topic: after the customer's writes, in their partition, keyed
    # and built as the API's own delete (of another customer, for comparison).
    other = email()
    await http.post(f"/api/1.0/customer/{other}?wait=true", headers=team.headers)
    api_delete = await http.delete(f"/api/1.0/customer/{other}", headers=team.headers)
    found = await records(settings, erased["partition"], erased["offset"] + 1)
    offset, key, ours = find(found, erased["message_id"])
    assert offset == erased["offset"]
    for accepted in (written, event):
        assert find(found, accepted.headers["X-Message-Id"])[0] < offset
    assert key == partition_key(team.id, Identifiers(email=address))
    # In the overflow lane too, with the same message id, as the gateway's deletes.
    overflow = await topic_records(settings, settings.writes_overflow_topic)
    assert (key, encode(ours)) in overflow
    theirs = await published(
        settings,
        db,
        api_delete.headers["X-Message-Id"],
        partition_key(team.id, Identifiers(email=other)),
    )
    assert ours == msgspec.structs.replace(
        theirs,
        id=ours.id,
        identifiers=Identifiers(email=address),
        occurred_at=ours.occurred_at,
        received_at=ours.received_at,
        api="ingest_admin",
    )

    # A write after the erase starts a new customer, as after the API's delete.
    again = await http.post(
        f"/api/1.0/customer/{address}?wait=true", data={"plan": "silver"}, headers=team.headers
    )
    assert again.json() == {"email": address, "plan": "silver"}


async def published(settings: Settings, db: asyncpg.Pool, message: str, key: bytes) -> WriteMessage:
    """The message as published under ``key`` (Kafka's default partitioner), once applied."""
    assert await ledger_outcome(db, message) == "applied"
    partition = (murmur2(key) & 0x7FFFFFFF) % PARTITIONS
    return find(await records(settings, partition), message)[2]


@pytest.mark.parametrize(
    ("kind", "typed"),
    [
        ("email", "  {email}"),
        ("external_id", "{external_id}"),
        ("phone", "+1 (415) 555-0100"),
        ("anonymous_id", "{anonymous_id}\u200b"),
        ("customer_id", "{customer_id}"),
    ],
)
async def test_erase_by_any_identifier_kind(
    settings: Settings, gateway: str, db: asyncpg.Pool, team: Team, kind: str, typed: str
) -> None:
    named = Identifiers(
        email=email(),
        external_id=f"u-{uuid.uuid4().hex[:8]}",
        phone="+14155550100",
        anonymous_id=f"a-{uuid.uuid4().hex[:8]}",
    )
    written = new_write(team.id, "upsert_customer", named, attributes={"plan": "gold"})
    tracked = new_write(team.id, "track_event", named, event=EventData(name="signup"))
    await produce(settings, partition_key(team.id, named), encode(written), encode(tracked))
    assert await ledger_outcome(db, tracked.id) == "applied"
    customer = await customer_holding(db, team.id, "email", named.email or "")
    assert await counts(db, team) == {"customers": 1, "identifiers": 5, "events": 1}

    values = {**dict(named.items()), "customer_id": str(customer)}
    erased = await erase(settings, team, f"--{kind.replace('_', '-')}", typed.format(**values))
    assert erased["customer"] == customer
    # Named as the API's delete names it, by its email: what its writes are keyed by.
    assert erased["named"] == {"email": named.email}
    assert await counts(db, team) == {"customers": 0, "identifiers": 0, "events": 0}


async def test_a_customer_without_email_is_named_by_the_next_kind_its_writes_are_keyed_by(
    settings: Settings, gateway: str, db: asyncpg.Pool, team: Team
) -> None:
    named = Identifiers(phone="+14155550100", anonymous_id=f"a-{uuid.uuid4().hex[:8]}")
    written = new_write(team.id, "upsert_customer", named, attributes={"plan": "gold"})
    await produce(settings, partition_key(team.id, named), encode(written))
    assert await ledger_outcome(db, written.id) == "applied"
    erased = await erase(settings, team, "--anonymous-id", named.anonymous_id or "")
    assert erased["named"] == {"phone": "+14155550100"}
    assert await counts(db, team) == {"customers": 0, "identifiers": 0, "events": 0}
    found = await records(settings, erased["partition"], erased["offset"] + 1)
    assert find(found, written.id)[0] < erased["offset"]  # keyed alike, so after it


async def test_every_query_is_the_teams_and_nothing_is_published_unasked(
    settings: Settings, http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    await http.post(f"/api/1.0/customer/{address}?wait=true", headers=team.headers)
    customer = await customer_holding(db, team.id, "email", address)
    async with db.acquire() as conn:
        other_id, _ = await create_team(conn, f"other-{uuid.uuid4().hex[:8]}")
    other = Team(other_id, key="")

    # Another team's customer id names nobody in this team; its email is erased in
    # this team only (nobody there).
    with pytest.raises(CommandError, match=f"has no customer {customer}"):
        await command(
            settings, "erase-customer", "--team", str(other.id), "--customer-id", str(customer)
        )
    printed = await command(
        settings,
        "erase-customer",
        "--team",
        str(other.id),
        "--email",
        address,
        "--yes",
        "--wait",
        "20",
    )
    published, applied = printed.splitlines()
    assert re.fullmatch(
        rf"published message \S+: {re.escape(settings.writes_topic)} partition \d offset \d+",
        published,
    )
    assert applied == "applied by the consumers: applied"
    assert await stored_customer(db, team, address) is not None

    with pytest.raises(CommandError, match="Invalid email"):
        await command(settings, "erase-customer", "--team", str(team.id), "--email", "null")
    with pytest.raises(CommandError, match="no team named"):
        await command(settings, "erase-customer", "--team", "no-such-team", "--email", address)

    # Without --yes and without a terminal: the plan, and nothing published.
    before = await writes_end(settings)
    unasked = admin(
        settings.database_url,
        "erase-customer",
        "--team",
        str(team.id),
        "--email",
        address,
        env=settings_env(settings),
    )
    assert unasked.returncode == 1
    assert unasked.stdout.splitlines() == [
        f"erase-customer: team {team.id} (id {team.id}), email {address}",
        f"  held by customer {customer}: 0 event(s); identifiers: email {address},"
        f" customer_id {customer}",
        f"  the delete names it by email {address}, as its writes are keyed",
    ]
    assert "not confirmed" in unasked.stderr
    assert await writes_end(settings) == before
