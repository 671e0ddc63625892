"""Teams: which team an API key belongs to, its name, the origins it allows (CORS) and
the identifier values it blocked (``ingest-admin block-identifier``)."""

from __future__ import annotations

import asyncpg

from runtime.pg import Db


async def team_of_key(db: Db, digest: bytes) -> int | None:
    """The team whose active key has this digest (``schemas.keys.hash_api_key``)."""
    found = await db.fetchval(
        "SELECT team_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", digest
    )
    return None if found is None else int(found)


async def team_name(db: Db, team_id: int) -> str:
    return str(await db.fetchval("SELECT name FROM teams WHERE id = $1", team_id))


async def allowed_origins(db: Db, team_id: int) -> list[str] | None:
    """The browser origins allowed to send with the team's write key; None: any origin."""
    found = await db.fetchval("SELECT allowed_origins FROM teams WHERE id = $1", team_id)
    return None if found is None else [str(origin) for origin in found]


async def blocked_identifiers(db: Db, team_id: int) -> frozenset[tuple[str, str]]:
    """The team's blocked identifiers as (kind, value) pairs, stored normalised
    (``schemas.identity.normalise_kind``): compare them with ``Identifiers.items()``."""
    try:
        rows = await db.fetch(
            "SELECT kind, value FROM blocked_identifiers WHERE team_id = $1", team_id
        )
    except asyncpg.UndefinedTableError:
        # A gateway started before migration 0008: nothing can be blocked yet, and
        # every write answered 500 until the migration ran would be worse.
        return frozenset()
    return frozenset((str(r["kind"]), str(r["value"])) for r in rows)
