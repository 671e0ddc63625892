"""Teams: which team an API key belongs to, its name, and the origins it allows (CORS)."""

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


async def allowed_origins(db: Db, team_id: int) -> list[str] | None:
    """The browser origins allowed to send with the team's write key; None: any origin."""
    found = await db.fetchval("SELECT allowed_origins FROM teams WHERE id = $1", team_id)
    return None if found is None else [str(origin) for origin in found]
