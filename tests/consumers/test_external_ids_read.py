"""Which external ids ``apply_batch`` reads before a merge decision, on the real PostgreSQL.

A customer holds at most one external id: one the batch names is known from the
locked owners, so only the customers it compares without naming theirs are read.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from consumers import statements
from consumers.unit_of_work import EventTypeCache, apply_batch
from schemas.messages import Identifiers, WriteMessage, new_message_id
from tests.conftest import Team
from tests.support import customer_holding

T0 = datetime(2026, 7, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=20)


def write(team: Team, at: int, **ids: str) -> WriteMessage:
    return WriteMessage(
        id=new_message_id(),
        team_id=team.id,
        op="upsert_customer",
        identifiers=Identifiers(**ids),
        occurred_at=T0 + timedelta(minutes=at),
        received_at=T0,
        attributes={"at": at},
    )


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """The customer ids of every ``statements.external_ids`` read."""
    seen: list[set[int]] = []
    real = statements.external_ids

    async def spy(conn: Any, customer_ids: set[int]) -> list[asyncpg.Record]:
        seen.append(set(customer_ids))
        return await real(conn, customer_ids)

    monkeypatch.setattr(statements, "external_ids", spy)
    return seen


async def apply(db: asyncpg.Pool, *messages: WriteMessage) -> None:
    async with db.acquire() as conn:
        await apply_batch(conn, list(messages), EventTypeCache(), WINDOW)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def two_customers(
    db: asyncpg.Pool, team: Team, first: dict[str, str], second: dict[str, str]
) -> tuple[int, int]:
    """Two stored customers, the first older, named by these identifiers."""
    ids = []
    for at, named in enumerate((first, second)):
        await apply(db, write(team, at, **named))
        kind, value = next(iter(named.items()))
        customer = await customer_holding(db, team.id, kind, value)
        assert customer is not None
        ids.append(customer)
    assert ids[0] != ids[1]
    return ids[0], ids[1]


async def test_a_customer_named_by_its_external_id_is_not_read(
    db: asyncpg.Pool, team: Team, reads: list[set[int]]
) -> None:
    user, device, other = unique("u"), unique("d"), unique("d")
    await apply(db, write(team, 0, external_id=user, anonymous_id=device))
    reads.clear()
    # As a Segment track naming userId and a new anonymousId: attached, nothing read.
    await apply(db, write(team, 1, external_id=user, anonymous_id=other))
    assert reads == []
    owner = await customer_holding(db, team.id, "external_id", user)
    assert await customer_holding(db, team.id, "anonymous_id", other) == owner


async def test_a_compared_customer_whose_external_id_is_not_named_is_read_and_kept_apart(
    db: asyncpg.Pool, team: Team, reads: list[set[int]]
) -> None:
    alice, bob, device = unique("alice"), unique("bob"), unique("d")
    first, second = await two_customers(
        db, team, {"external_id": alice, "anonymous_id": device}, {"external_id": bob}
    )
    reads.clear()
    # Bob on Alice's device: Alice's customer is compared without her id named.
    await apply(db, write(team, 2, external_id=bob, anonymous_id=device))
    assert reads == [{first}]
    assert await customer_holding(db, team.id, "anonymous_id", device) == first
    assert await customer_holding(db, team.id, "external_id", bob) == second
    merges = await db.fetchval("SELECT count(*) FROM customer_merges WHERE team_id = $1", team.id)
    assert merges == 0


async def test_an_anonymous_customer_is_read_and_merged(
    db: asyncpg.Pool, team: Team, reads: list[set[int]]
) -> None:
    user, device = unique("u"), unique("d")
    anonymous, _ = await two_customers(db, team, {"anonymous_id": device}, {"external_id": user})
    reads.clear()
    await apply(db, write(team, 2, external_id=user, anonymous_id=device))
    assert reads == [{anonymous}]
    # The anonymous customer is the older: it survives and takes the user's id.
    assert await customer_holding(db, team.id, "external_id", user) == anonymous
    assert await customer_holding(db, team.id, "anonymous_id", device) == anonymous
