"""Teams: which team an API key belongs to, and a team's name."""

from __future__ import annotations

from runtime.pg import Db


async def team_of_key(db: Db, digest: bytes) -> int | None:
    """The team whose active key has this digest (``schemas.keys.hash_api_key``)."""
    found = await db.fetchval(
        "SELECT team_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", digest
    )
    return None if found is None else int(found)


async def team_name(db: Db, team_id: int) -> str:
    return str(await db.fetchval("SELECT name FROM teams WHERE id = $1", team_id))
