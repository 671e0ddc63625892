"""Identity resolution, merges, erasure and event rules, through the real Kafka and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from runtime.settings import Settings
from schemas.messages import EventData, GroupData, Identifiers, Operation, WriteMessage, encode
from schemas.topics import partition_key
from tests.conftest import Team
from tests.consumers.workload import message
from tests.support import customer_holding, eventually

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write(
    team: Team,
    at: float = 0,
    op: Operation = "upsert_customer",
    attrs: dict[str, Any] | None = None,
    event: EventData | None = None,
    group: GroupData | None = None,
    **ids: str,
) -> WriteMessage:
    when = T0 + timedelta(minutes=at)
    return message(
        team.id,
        op,
        Identifiers(**ids),
        when,
        None,  # a new UUIDv7, as the gateway makes: acceptance order
        attributes=attrs or {},
        event=event,
        group=group,
    )


@pytest.fixture
async def apply(settings: Settings, gateway: str, db: asyncpg.Pool):  # type: ignore[no-untyped-def]
    """Publish messages (one at a time, in order) and wait until the consumer processed them."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()

    async def run(*messages: WriteMessage) -> None:
        for m in messages:
            await producer.send_and_wait(
                settings.writes_topic, encode(m), key=partition_key(m.team_id, m.identifiers)
            )
        ids = [uuid.UUID(m.id) for m in messages]

        async def done() -> bool:
            n = await db.fetchval(
                "SELECT count(*) FROM processed_messages WHERE message_id = ANY($1)", ids
            )
            return bool(n == len(set(ids)))

        await eventually(done)

    yield run
    await producer.stop()


async def attributes(db: asyncpg.Pool, customer_id: int) -> dict[str, Any]:
    raw = await db.fetchval("SELECT attributes::text FROM customers WHERE id = $1", customer_id)
    return dict(orjson.loads(raw))


async def test_merge_keeps_the_oldest_moves_everything_and_old_id_still_resolves(
    apply: Any, db: asyncpg.Pool, team: Team
) -> None:
    email, phone = f"{unique('m')}@example.com", "+14155550123"
    await apply(
        write(team, at=0, email=email, attrs={"name": "Old", "plan": "free"}),
        write(team, at=5, phone=phone, attrs={"plan": "gold"}),
        write(team, at=6, phone=phone, event=EventData(name="view")),
    )
    older = await customer_holding(db, team.id, "email", email)
    newer = await customer_holding(db, team.id, "phone", phone)
    assert older is not None and newer is not None and older != newer

    await apply(write(team, at=10, email=email, phone=phone))

    assert await customer_holding(db, team.id, "phone", phone) == older
    assert (
        await customer_holding(db, team.id, "customer_id", str(newer)) == older
    )  # old id resolves
    assert await attributes(db, older) == {"name": "Old", "plan": "gold"}  # newest wins
    assert await db.fetchval("SELECT count(*) FROM customers WHERE id = $1", newer) == 0
    assert await db.fetchval("SELECT count(*) FROM events WHERE customer_id = $1", older) == 1
    merge = await db.fetchrow(
        "SELECT merged_customer_id, survivor_customer_id, merged_named_by, survivor_named_by"
        " FROM customer_merges WHERE team_id = $1",
        team.id,
    )
    # Why: the write named the newer one by its phone and the older by its email.
    assert merge is not None and tuple(merge) == (newer, older, ["phone"], ["email"])
    history = await db.fetchrow(
        "SELECT merged_named_by, survivor_named_by FROM customer_merge_history WHERE team_id = $1",
        team.id,
    )
    assert history is not None and tuple(history) == (["phone"], ["email"])

    # A later write by the merged-away id lands on the survivor.
    await apply(write(team, at=11, customer_id=str(newer), attrs={"via": "old id"}))
    assert (await attributes(db, older))["via"] == "old id"


async def test_conflicting_external_ids_never_merge(
    apply: Any, db: asyncpg.Pool, team: Team
) -> None:
    a, b = f"{unique('a')}@example.com", f"{unique('b')}@example.com"
    await apply(
        write(team, at=0, email=a, external_id="ext-a"),
        write(team, at=1, email=b, external_id="ext-b"),
        write(team, at=2, email=b, external_id="ext-a", attrs={"touched": True}),
    )
    first = await customer_holding(db, team.id, "email", a)
    second = await customer_holding(db, team.id, "email", b)
    assert first != second
    assert await customer_holding(db, team.id, "external_id", "ext-a") == first
    assert first is not None and (await attributes(db, first)) == {"touched": True}
    assert (
        await db.fetchval("SELECT count(*) FROM customer_merges WHERE team_id = $1", team.id) == 0
    )


async def test_delete_erases_everything_and_a_later_event_starts_afresh(
    apply: Any, db: asyncpg.Pool, team: Team
) -> None:
    email = f"{unique('d')}@example.com"
    await apply(
        write(team, at=0, email=email, phone="+14155550199", attrs={"name": "X"}),
        write(team, at=1, email=email, event=EventData(name="view", body={"secret": 1})),
    )
    gone = await customer_holding(db, team.id, "email", email)
    await apply(write(team, at=2, op="delete_customer", email=email))
    assert await db.fetchval("SELECT count(*) FROM customers WHERE id = $1", gone) == 0
    assert (
        await db.fetchval("SELECT count(*) FROM customer_identifiers WHERE customer_id = $1", gone)
        == 0
    )
    assert await db.fetchval("SELECT count(*) FROM events WHERE customer_id = $1", gone) == 0
    assert await customer_holding(db, team.id, "phone", "+14155550199") is None

    await apply(write(team, at=3, email=email, event=EventData(name="signup")))
    fresh = await customer_holding(db, team.id, "email", email)
    assert fresh is not None and fresh != gone
    assert await attributes(db, fresh) == {}


async def test_client_event_id_the_later_accepted_version_wins_whatever_its_time(
    apply: Any, db: asyncpg.Pool, team: Team
) -> None:
    email, event_id = f"{unique('c')}@example.com", unique("evt")

    def version(at: float, v: int) -> WriteMessage:
        return write(
            team,
            at=at,
            op="track_event",
            email=email,
            event=EventData(name="order_shipped", client_event_id=event_id, body={"v": v}),
        )

    # Accepted in this order (message ids are UUIDv7): the last one has the oldest time
    # of the three but was accepted last, so it is the one kept (document 004).
    v1, v2, v3 = version(1, 1), version(3, 2), version(2, 3)
    await apply(v1)
    await apply(v3)
    await apply(v2)  # accepted before v3, applied after it: ignored
    rows = await db.fetch(
        "SELECT id, body::text FROM events WHERE team_id = $1 AND client_event_id = $2",
        team.id,
        event_id,
    )
    assert len(rows) == 1
    assert orjson.loads(rows[0]["body"]) == {"v": 3}
    assert str(rows[0]["id"]) == v1.id  # the event keeps its id across versions


async def test_event_rules_discard_and_count(apply: Any, db: asyncpg.Pool, team: Team) -> None:
    email = f"{unique('r')}@example.com"
    order = unique("order")
    bot = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
    confirm = EventData(name="confirmation", kind="confirmation", order_id=order)
    opened = EventData(name="email_open", kind="email_open")
    bot_event = WriteMessage(
        id=str(uuid.uuid4()),
        team_id=team.id,
        op="track_event",
        identifiers=Identifiers(email=email),
        occurred_at=T0,
        received_at=T0,
        event=EventData(name="view"),
        user_agent=bot,
    )
    await apply(
        write(team, at=0, op="track_event", email=email, event=confirm),
        write(team, at=1, op="track_event", email=email, event=confirm),
        write(team, at=0, op="track_event", email=email, event=opened),
        write(team, at=10, op="track_event", email=email, event=opened),
        write(team, at=25, op="track_event", email=email, event=opened),
        bot_event,
    )
    kinds = await db.fetch(
        "SELECT kind, count(*) FROM events WHERE team_id = $1 GROUP BY kind ORDER BY kind", team.id
    )
    assert [tuple(r) for r in kinds] == [("confirmation", 1), ("email_open", 2)]
    counts = await db.fetch(
        "SELECT rule, count FROM discarded_events WHERE team_id = $1 ORDER BY rule", team.id
    )
    assert [tuple(r) for r in counts] == [
        ("bot", 1),
        ("duplicate_confirmation", 1),
        ("email_open_window", 1),
    ]


async def test_event_types_are_per_team(apply: Any, db: asyncpg.Pool, team: Team) -> None:
    name = unique("type")
    await apply(
        write(
            team, op="track_event", email=f"{unique('t')}@example.com", event=EventData(name=name)
        ),
        write(
            team, op="track_event", email=f"{unique('t')}@example.com", event=EventData(name=name)
        ),
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM event_types WHERE team_id = $1 AND name = $2", team.id, name
        )
        == 1
    )


# -- anonymous ids (Segment's anonymousId) and groups --------------------------------


async def identifiers_of(db: asyncpg.Pool, customer_id: int) -> set[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT kind, value FROM customer_identifiers WHERE customer_id = $1"
        " AND kind <> 'customer_id'",
        customer_id,
    )
    return {(r["kind"], r["value"]) for r in rows}


async def test_anonymous_customer_is_merged_into_the_one_it_is_identified_as(
    apply: Any, db: asyncpg.Pool, team: Team
) -> None:
    anon, user = unique("anon"), unique("user")
    # Before sign-up: an anonymous customer with an event and a trait.
    await apply(
        write(team, at=1, anonymous_id=anon, attrs={"theme": "dark"}),
        write(team, at=2, op="track_event", anonymous_id=anon, event=EventData(name="Viewed")),
    )
    anonymous = await customer_holding(db, team.id, "anonymous_id", anon)
    assert anonymous is not None
    # The user signs up elsewhere first (an older identified customer), then identify
    # links the browser's anonymous id to them.
    await apply(write(team, at=0, external_id=user, attrs={"plan": "pro"}))
    identified = await customer_holding(db, team.id, "external_id", user)
    assert identified is not None and identified != anonymous
    await apply(write(team, at=3, external_id=user, anonymous_id=anon))

    assert (
        await customer_holding(db, team.id, "anonymous_id", anon) == identified
    )  # oldest survives
    assert await identifiers_of(db, identified) == {("external_id", user), ("anonymous_id", anon)}
    assert await attributes(db, identified) == {"plan": "pro", "theme": "dark"}
    assert await db.fetchval("SELECT count(*) FROM customers WHERE id = $1", anonymous) == 0
    assert await db.fetchval("SELECT count(*) FROM events WHERE customer_id = $1", identified) == 1
    merged = await db.fetchval(
        "SELECT survivor_customer_id FROM customer_merges WHERE merged_customer_id = $1",
        anonymous,
    )
    assert merged == identified
    # Later anonymous events of that browser land on the identified customer.
    await apply(write(team, at=4, op="track_event", anonymous_id=anon, event=EventData(name="B")))
    assert await db.fetchval("SELECT count(*) FROM events WHERE customer_id = $1", identified) == 2


async def test_two_identified_users_sharing_an_anonymous_id_are_not_merged(
    apply: Any, db: asyncpg.Pool, team: Team
) -> None:
    shared, alice, bob = unique("device"), unique("alice"), unique("bob")
    await apply(
        write(team, at=0, external_id=alice, anonymous_id=shared),
        # Bob logs in on Alice's device: same anonymous id, another identified user.
        write(team, at=1, external_id=bob, anonymous_id=shared, attrs={"name": "Bob"}),
    )
    first, second = (
        await customer_holding(db, team.id, "external_id", alice),
        await customer_holding(db, team.id, "external_id", bob),
    )
    assert first is not None and second is not None and first != second
    # The two writes travel in two partitions (keyed by user): whichever is applied
    # first keeps the device's id; the other user is neither merged nor given it.
    assert await customer_holding(db, team.id, "anonymous_id", shared) in {first, second}
    assert (
        await db.fetchval(
            "SELECT count(*) FROM customer_identifiers WHERE team_id = $1 AND value = $2",
            team.id,
            shared,
        )
        == 1
    )
    assert await attributes(db, second) == {"name": "Bob"}
    assert await attributes(db, first) == {}


async def test_group_traits_combine_by_event_time_and_membership_follows_merges(
    apply: Any, db: asyncpg.Pool, team: Team
) -> None:
    anon, user, account = unique("anon"), unique("user"), unique("acct")

    def grouped(at: float, traits: dict[str, Any], **ids: str) -> WriteMessage:
        group = GroupData(group_id=account, traits=traits)
        when = T0 + timedelta(minutes=at)
        return message(team.id, "upsert_customer", Identifiers(**ids), when, group=group)

    await apply(
        grouped(5, {"name": "Initech", "plan": "pro"}, external_id=user),
        grouped(2, {"plan": "free", "seats": 3}, anonymous_id=anon),  # older: plan stays
    )
    row = await db.fetchrow(
        "SELECT traits::text, first_seen_at, last_updated_at FROM customer_groups"
        " WHERE team_id = $1 AND group_id = $2",
        team.id,
        account,
    )
    assert row is not None
    assert orjson.loads(row["traits"]) == {"name": "Initech", "plan": "pro", "seats": 3}
    assert (row["first_seen_at"], row["last_updated_at"]) == (
        T0 + timedelta(minutes=2),
        T0 + timedelta(minutes=5),
    )
    # Both the anonymous and the identified customer are members; once linked, one is.
    await apply(write(team, at=6, external_id=user, anonymous_id=anon))
    members = await db.fetch(
        "SELECT customer_id, joined_at FROM customer_group_members"
        " WHERE team_id = $1 AND group_id = $2",
        team.id,
        account,
    )
    survivor = await customer_holding(db, team.id, "external_id", user)
    assert [(r["customer_id"], r["joined_at"]) for r in members] == [
        (survivor, T0 + timedelta(minutes=2))
    ]


async def test_event_context_is_stored_beside_the_body(
    apply: Any, db: asyncpg.Pool, team: Team
) -> None:
    anon = unique("anon")
    context = {"ip": "203.0.113.9", "library": {"name": "analytics-python", "version": "2"}}
    await apply(
        write(
            team,
            at=1,
            op="track_event",
            anonymous_id=anon,
            event=EventData(name="Signed Up", body={"plan": "pro"}, context=context),
        )
    )
    row = await db.fetchrow(
        "SELECT body::text, context::text FROM events e JOIN customer_identifiers i"
        " ON i.customer_id = e.customer_id WHERE i.team_id = $1 AND i.value = $2",
        team.id,
        anon,
    )
    assert row is not None
    assert orjson.loads(row["body"]) == {"plan": "pro"}
    assert orjson.loads(row["context"]) == context
