"""The ledger of applied message ids: a redelivered id is skipped, a new one applies.

``apply_batch`` claims a batch's ids with COPY first (the common case: all new) and,
when one was claimed before, rolls back and claims again with ON CONFLICT. These
tests drive that second path on the real PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from consumers import ledger
from consumers.ledger import prune_unless_busy
from consumers.unit_of_work import EventTypeCache, apply_batch
from runtime.settings import Settings
from schemas.messages import EventData, Identifiers, WriteMessage, new_message_id
from tests.conftest import Team, create_topics, settings_env
from tests.support import BIN, Process, eventually, old_message_id

NOW = datetime(2026, 6, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=20)


def event(team: Team, email: str, n: int) -> WriteMessage:
    return WriteMessage(
        id=new_message_id(),
        team_id=team.id,
        op="track_event",
        identifiers=Identifiers(email=email),
        occurred_at=NOW + timedelta(seconds=n),
        received_at=NOW,
        event=EventData(name="page_view", body={"n": n}),
    )


async def stored(db: asyncpg.Pool, team: Team) -> list[int]:
    rows = await db.fetch(
        "SELECT (body->>'n')::int AS n FROM events WHERE team_id = $1 ORDER BY 1", team.id
    )
    return [r["n"] for r in rows]


async def apply(db: asyncpg.Pool, messages: list[WriteMessage]) -> list[str] | None:
    """The ids of the messages the batch applied (None: all were applied before)."""
    async with db.acquire() as conn:
        plan = await apply_batch(conn, messages, EventTypeCache(), WINDOW)
    return None if plan is None else [p.message.id for p in plan.events]


async def test_a_batch_partly_applied_before_applies_only_its_new_messages(
    db: asyncpg.Pool, team: Team
) -> None:
    first = [event(team, "ledger@example.com", n) for n in range(3)]
    assert await apply(db, first) == [m.id for m in first]
    later = [event(team, "ledger@example.com", n) for n in range(3, 5)]
    # Redelivered messages come first, as they would after a crash before the commit.
    assert await apply(db, first + later) == [m.id for m in later]
    assert await stored(db, team) == [0, 1, 2, 3, 4]


async def test_a_batch_applied_before_changes_nothing(db: asyncpg.Pool, team: Team) -> None:
    batch = [event(team, "again@example.com", n) for n in range(4)]
    await apply(db, batch)
    assert await apply(db, batch) is None
    assert await stored(db, team) == [0, 1, 2, 3]


async def test_a_message_twice_in_one_batch_applies_once(db: asyncpg.Pool, team: Team) -> None:
    one, two = event(team, "twice@example.com", 1), event(team, "twice@example.com", 2)
    assert await apply(db, [one, two, one]) == [one.id, two.id]
    assert await stored(db, team) == [1, 2]


async def test_a_dead_letter_produced_back_is_applied(db: asyncpg.Pool, team: Team) -> None:
    # As the dead-letter step records a message it dead-lettered (statements.record_dead_letters).
    message = event(team, "replayed@example.com", 7)
    await db.execute(
        "INSERT INTO processed_messages (message_id, outcome) VALUES ($1, 'dead_letter')",
        uuid.UUID(message.id),
    )
    assert await apply(db, [message]) == [message.id]
    assert await stored(db, team) == [7]
    outcome = await db.fetchval(
        "SELECT outcome FROM processed_messages WHERE message_id = $1", uuid.UUID(message.id)
    )
    assert outcome == "applied"
    assert await apply(db, [message]) is None  # and only once


async def test_only_one_session_prunes_at_a_time(db: asyncpg.Pool) -> None:
    old = old_message_id(30)
    await db.execute(
        "INSERT INTO processed_messages (message_id, processed_at)"
        " VALUES ($1, now() - interval '30 days')",
        old,
    )
    async with db.acquire() as first, db.acquire() as second:
        assert await first.fetchval("SELECT pg_try_advisory_lock($1)", ledger._PRUNE_LOCK)
        try:
            assert await prune_unless_busy(second, 7) is None  # the other session prunes
        finally:
            await first.execute("SELECT pg_advisory_unlock($1)", ledger._PRUNE_LOCK)
        assert (await prune_unless_busy(second, 7) or 0) >= 1
    assert (
        await db.fetchval("SELECT count(*) FROM processed_messages WHERE message_id = $1", old) == 0
    )


async def test_a_running_consumer_forgets_old_message_ids(
    db: asyncpg.Pool, settings: Settings, log_dir: Path, run_id: str
) -> None:
    old, recent = old_message_id(30), uuid.UUID(new_message_id())
    await db.execute(
        "INSERT INTO processed_messages (message_id, processed_at)"
        " VALUES ($1, now() - interval '30 days'), ($2, now())",
        old,
        recent,
    )
    # A consumer of its own (own, empty topic and group) pruning every 0.2 s.
    topic = f"test.{run_id}.prune"
    await create_topics(settings.kafka_bootstrap_servers, {topic: 1})
    env = settings_env(
        settings,
        writes_topic=topic,
        consumer_group=f"test.{run_id}.pruner",
        ledger_retention_days=7,
        ledger_prune_interval_s=0.2,
        metrics_port=0,
    )
    pruner = Process("pruner", [str(BIN / "ingest-consumer")], env, log_dir)
    try:

        async def forgotten() -> bool:
            return not await db.fetchval(
                "SELECT count(*) FROM processed_messages WHERE message_id = $1", old
            )

        await eventually(forgotten)
    finally:
        pruner.stop()
    assert await db.fetchval(
        "SELECT count(*) FROM processed_messages WHERE message_id = $1", recent
    )
