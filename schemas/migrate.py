"""Apply the versioned SQL migrations in ``schemas/migrations`` (``ingest-migrate``).

Each file ``NNNN_name.sql`` runs once, in order, in its own transaction, and is
recorded in ``schema_migrations``. An advisory lock lets several processes call
this at start-up without racing.
"""

from __future__ import annotations

import asyncio
import logging
from importlib import resources

import asyncpg

from runtime.settings import get_settings

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 7_446_001  # arbitrary, fixed advisory-lock key


def migration_files() -> list[tuple[str, str]]:
    folder = resources.files("schemas") / "migrations"
    files = sorted((p for p in folder.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)
    return [(p.name.removesuffix(".sql"), p.read_text()) for p in files]


async def migrate(database_url: str) -> list[str]:
    """Apply pending migrations; returns the versions applied now."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for version, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            log.info("applied migration %s", version)
            applied.append(version)
        return applied
    finally:
        await conn.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    applied = asyncio.run(migrate(get_settings().database_url))
    print(f"migrations applied: {', '.join(applied) if applied else 'none pending'}")


if __name__ == "__main__":
    main()
