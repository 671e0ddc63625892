"""The consumers' timestamptz codec agrees with asyncpg's own, both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import asyncpg

from consumers import timestamps

VALUES = [
    datetime(2026, 11, 23, 15, 4, 5, 123456, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before the wire's epoch
    datetime(2026, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    datetime(2000, 1, 1, tzinfo=UTC),
]


async def test_values_written_and_read_are_those_of_asyncpgs_codec(db: asyncpg.Pool) -> None:
    async with db.acquire() as native:
        expected = [await native.fetchval("SELECT $1::timestamptz::text", v) for v in VALUES]
    async with db.acquire() as conn:
        await timestamps.install(conn)
        try:
            written = [await conn.fetchval("SELECT $1::timestamptz::text", v) for v in VALUES]
            read = [await conn.fetchval("SELECT $1::text::timestamptz", e) for e in expected]
            infinite = await conn.fetchval("SELECT 'infinity'::timestamptz")
        finally:
            await conn.reset_type_codec("timestamptz", schema="pg_catalog")
    assert written == expected
    assert read == VALUES
    assert infinite == datetime.max.replace(tzinfo=UTC)


def test_a_naive_datetime_counts_as_utc() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert timestamps.encode(naive) == timestamps.encode(naive.replace(tzinfo=UTC))
