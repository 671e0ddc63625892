"""Transactions PostgreSQL aborts are retried; what cannot apply is isolated, the rest applies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

import consumers.worker as worker
from consumers.apply import apply_batch
from consumers.worker import BatchApplier
from schemas.config import Settings
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

    monkeypatch.setattr(worker, "apply_batch", aborted_twice)
    messages = [upsert(team, n=i) for i in range(3)]
    dead = await BatchApplier(db, settings).apply([(None, m) for m in messages])
    assert dead == [] and aborts == []
    assert await applied(db, messages) == {m.id: "applied" for m in messages}


async def test_a_message_postgresql_refuses_is_isolated_and_the_rest_applies(
    db: asyncpg.Pool, settings: Settings, team: Team
) -> None:
    good_before, good_after = upsert(team, ok=1), upsert(team, ok=2)
    poison = upsert(team, bad="nul \x00 in jsonb")
    dead = await BatchApplier(db, settings).apply(
        [(None, good_before), (None, poison), (None, good_after)]
    )
    assert [d.message_id for d in dead] == [poison.id]
    assert "UntranslatableCharacter" in dead[0].reason
    assert await applied(db, [good_before, good_after, poison]) == {
        good_before.id: "applied",
        good_after.id: "applied",
    }
