"""Transactions PostgreSQL aborts are retried; what cannot apply is isolated, the rest applies."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

import consumers.steps as steps
from consumers.faults import Stopping
from consumers.steps import Apply
from consumers.unit_of_work import apply_batch
from runtime.settings import Settings
from schemas.messages import Identifiers, WriteMessage
from tests.conftest import Team

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def upsert(team: Team, **attributes: Any) -> WriteMessage:
    return WriteMessage(
        id=str(uuid.uuid4()),
        team_id=team.id,
        op="upsert_customer",
        identifiers=Identifiers(email=f"{uuid.uuid4().hex[:8]}@example.com"),
        occurred_at=NOW,
        received_at=NOW,
        attributes=attributes,
    )


async def applied(db: asyncpg.Pool, messages: list[WriteMessage]) -> dict[str, str]:
    rows = await db.fetch(
        "SELECT message_id::text AS id, outcome FROM processed_messages"
        " WHERE message_id = ANY($1::uuid[])",
        [m.id for m in messages],
    )
    return {r["id"]: r["outcome"] for r in rows}


async def test_deadlock_and_serialization_failures_are_retried(
    db: asyncpg.Pool, settings: Settings, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    aborts = [
        asyncpg.DeadlockDetectedError("deadlock detected"),
        asyncpg.SerializationError("could not serialize access"),
    ]

    async def aborted_twice(*args: Any) -> Any:
        if aborts:
            raise aborts.pop(0)
        return await apply_batch(*args)

    monkeypatch.setattr(steps, "apply_batch", aborted_twice)
    messages = [upsert(team, n=i) for i in range(3)]
    dead = await Apply(db, settings, asyncio.Event()).apply([(None, m) for m in messages])
    assert dead == [] and aborts == []
    assert await applied(db, messages) == {m.id: "applied" for m in messages}


async def test_a_message_postgresql_refuses_is_isolated_and_the_rest_applies(
    db: asyncpg.Pool, settings: Settings, team: Team
) -> None:
    good_before, good_after = upsert(team, ok=1), upsert(team, ok=2)
    poison = upsert(team, bad="nul \x00 in jsonb")
    dead = await Apply(db, settings, asyncio.Event()).apply(
        [(None, good_before), (None, poison), (None, good_after)]
    )
    assert [d.message_id for d in dead] == [poison.id]
    assert "UntranslatableCharacter" in dead[0].reason
    assert await applied(db, [good_before, good_after, poison]) == {
        good_before.id: "applied",
        good_after.id: "applied",
    }


async def test_a_broken_connection_is_waited_out_however_often_not_dead_lettered(
    db: asyncpg.Pool, settings: Settings, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More failures than MAX_TRANSACTION_RETRIES: infrastructure has no retry limit.
    failures: list[Exception] = [
        asyncpg.InternalClientError("cannot switch to state 15; another operation is in progress"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        ConnectionRefusedError("connection refused"),
    ] * settings.max_transaction_retries

    async def unavailable_for_a_while(*args: Any) -> Any:
        if failures:
            raise failures.pop(0)
        return await apply_batch(*args)

    monkeypatch.setattr(steps, "apply_batch", unavailable_for_a_while)
    quick = settings.model_copy(update={"retry_backoff_max_s": 0.01})
    messages = [upsert(team, n=i) for i in range(3)]
    dead = await Apply(db, quick, asyncio.Event()).apply([(None, m) for m in messages])
    assert dead == [] and failures == []
    assert await applied(db, messages) == {m.id: "applied" for m in messages}


async def test_a_python_error_on_one_message_isolates_it(
    db: asyncpg.Pool, settings: Settings, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison = upsert(team, n=-1)

    async def type_error_on_poison(conn: Any, messages: list[WriteMessage], *rest: Any) -> Any:
        if poison in messages:
            raise TypeError("Integer exceeds 64-bit range")
        return await apply_batch(conn, messages, *rest)

    monkeypatch.setattr(steps, "apply_batch", type_error_on_poison)
    good = [upsert(team, n=i) for i in range(4)]
    items = [(None, m) for m in [good[0], good[1], poison, good[2], good[3]]]
    dead = await Apply(db, settings, asyncio.Event()).apply(items)
    assert [d.message_id for d in dead] == [poison.id]
    assert dead[0].reason == "TypeError: Integer exceeds 64-bit range"
    assert await applied(db, good) == {m.id: "applied" for m in good}


async def test_a_stop_during_an_outage_ends_the_wait(
    db: asyncpg.Pool, settings: Settings, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def always_unavailable(*args: Any) -> Any:
        raise ConnectionRefusedError("connection refused")

    monkeypatch.setattr(steps, "apply_batch", always_unavailable)
    stopping = asyncio.Event()
    applier = Apply(db, settings, stopping)
    applying = asyncio.create_task(applier.apply([(None, upsert(team, n=1))]))
    await asyncio.sleep(0.05)  # let it fail once and wait
    assert not applying.done()
    stopping.set()
    with pytest.raises(Stopping):
        await asyncio.wait_for(applying, timeout=2)
