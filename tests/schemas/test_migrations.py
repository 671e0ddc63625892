"""Migrations that repair stored data, run against a store made by the older ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from schemas.migrate import migrate, migration_files
from tests.conftest import Team, scratch_database


async def test_0006_clamps_stored_times_beyond_years_1_to_9999(
    service_urls: tuple[str, str],
) -> None:
    name = f"ingest_migration_{uuid.uuid4().hex[:8]}"
    async with scratch_database(service_urls[1], name) as url:
        conn = await asyncpg.connect(url)
        try:
            # The store as the migrations before 0006 left it, with a year-0 customer.
            await conn.execute(
                "CREATE TABLE schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for version, sql in migration_files():
                if version.startswith("0006"):
                    break
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            team = await conn.fetchval("INSERT INTO teams (name) VALUES ('t') RETURNING id")
            customer = await conn.fetchval(
                "INSERT INTO customers (team_id, first_seen_at, last_updated_at)"
                " VALUES ($1, '0001-12-31 23:00:00+00 BC', '20000-01-01 00:00:00+00')"
                " RETURNING id",
                team,
            )
            applied = await migrate(url)
            assert applied[0].startswith("0006")
            row = await conn.fetchrow(
                "SELECT first_seen_at, last_updated_at FROM customers WHERE id = $1", customer
            )
            assert row is not None
            assert row["first_seen_at"] == datetime(1, 1, 1, tzinfo=UTC)
            assert row["last_updated_at"] == datetime.max.replace(tzinfo=UTC)
        finally:
            await conn.close()


async def test_times_beyond_years_1_to_9999_cannot_be_stored(db: asyncpg.Pool, team: Team) -> None:
    """The second net under the gateway's and the consumers' own rule."""
    for first_seen in ("0001-12-31 23:00:00+00 BC", "10000-01-01 00:00:00+00"):
        with pytest.raises(asyncpg.CheckViolationError):
            await db.execute(
                "INSERT INTO customers (team_id, first_seen_at, last_updated_at)"
                f" VALUES ($1, '{first_seen}', now())",
                team.id,
            )
