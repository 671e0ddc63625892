"""Event groups (seed 002) and the event types in them: reads and configuration writes.

Groups are team configuration, not customer traffic, so they are written here
directly (by the API and ``ingest-admin``), not through Kafka and the consumers.
Event types are normally created by the consumers when an event of a new name
arrives; creating one here first is safe (``ON CONFLICT DO NOTHING`` on both sides).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from ingest_gateway.read_model.paging import Paging, page
from runtime.pg import Db

GROUP_SORT_COLUMNS = {
    "event_group_id": "g.id",
    "name": "g.name",
    "text_id": "g.text_id",
    "state": "g.state",
    "created_at": "g.created_at",
}

_GROUP_COLUMNS = "g.id::text AS event_group_id, g.name, g.text_id, g.state"


def group_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "event_group_id": row["event_group_id"],
        "name": row["name"],
        "text_id": row["text_id"],
        "state": row["state"],
    }


def _group_filters(team_id: int, name: str | None, text_id: str | None) -> tuple[str, list[Any]]:
    where, args = ["g.team_id = $1"], list[Any]([team_id])
    if name:
        args.append(name)
        # strpos, not LIKE: a name filter with % or _ means those characters.
        where.append(f"strpos(lower(g.name), lower(${len(args)})) > 0")
    if text_id:
        args.append(text_id)
        where.append(f"g.text_id = ${len(args)}")
    return " AND ".join(where), args


async def list_groups(
    db: Db, team_id: int, paging: Paging, *, name: str | None, text_id: str | None
) -> tuple[int, list[asyncpg.Record]]:
    """(total matching, one page). ``paging.sort_column`` comes from ``GROUP_SORT_COLUMNS``."""
    assert paging.sort_column in GROUP_SORT_COLUMNS.values()
    where, args = _group_filters(team_id, name, text_id)
    return await page(db, "event_groups g", _GROUP_COLUMNS, where, args, paging, "g.id")


async def get_group(db: Db, team_id: int, group_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {_GROUP_COLUMNS} FROM event_groups g WHERE g.team_id = $1 AND g.id = $2",
        team_id,
        group_id,
    )


async def group_by_reference(db: Db, team_id: int, reference: str) -> asyncpg.Record | None:
    """A group by its text id, or by its id when no text id matches."""
    return await db.fetchrow(
        f"SELECT {_GROUP_COLUMNS} FROM event_groups g"
        " WHERE g.team_id = $1 AND (g.text_id = $2 OR g.id::text = $2)"
        " ORDER BY g.text_id = $2 DESC LIMIT 1",
        team_id,
        reference,
    )


async def create_group(db: Db, team_id: int, name: str, text_id: str, state: int) -> asyncpg.Record:
    """Raises ``asyncpg.UniqueViolationError`` when the team has the text id already."""
    row = await db.fetchrow(
        "INSERT INTO event_groups (team_id, name, text_id, state) VALUES ($1, $2, $3, $4)"
        " RETURNING id::text AS event_group_id, name, text_id, state",
        team_id,
        name,
        text_id,
        state,
    )
    assert row is not None
    return row


async def update_group(
    db: Db, team_id: int, group_id: int, changes: dict[str, Any]
) -> asyncpg.Record | None:
    """Set ``name``, ``text_id`` and/or ``state``; None when the group is unknown."""
    return await db.fetchrow(
        """
        UPDATE event_groups SET name = coalesce($3, name), text_id = coalesce($4, text_id),
                                state = coalesce($5, state)
         WHERE team_id = $1 AND id = $2
        RETURNING id::text AS event_group_id, name, text_id, state
        """,
        team_id,
        group_id,
        changes.get("name"),
        changes.get("text_id"),
        changes.get("state"),
    )


async def delete_group(db: Db, team_id: int, group_id: int) -> bool:
    result = await db.execute(
        "DELETE FROM event_groups WHERE team_id = $1 AND id = $2", team_id, group_id
    )
    return result != "DELETE 0"


async def group_event_types(db: Db, team_id: int, group_id: int) -> list[asyncpg.Record]:
    return await db.fetch(
        """
        SELECT t.id::text AS event_type_id, t.name
          FROM event_group_members m
          JOIN event_groups g ON g.id = m.event_group_id
          JOIN event_types t ON t.id = m.event_type_id
         WHERE g.team_id = $1 AND g.id = $2 AND t.team_id = $1
         ORDER BY t.name
        """,
        team_id,
        group_id,
    )


async def add_members(db: Db, team_id: int, group_id: int, event_type_ids: list[int]) -> int:
    """Put event types in a group; only the team's own group and types. Returns rows added."""
    result = await db.execute(
        """
        INSERT INTO event_group_members (event_group_id, event_type_id)
        SELECT g.id, t.id FROM event_groups g
          JOIN event_types t ON t.team_id = g.team_id AND t.id = ANY($3::bigint[])
         WHERE g.team_id = $1 AND g.id = $2
        ON CONFLICT DO NOTHING
        """,
        team_id,
        group_id,
        event_type_ids,
    )
    return int(result.split()[-1])


async def remove_members(db: Db, team_id: int, group_id: int, event_type_ids: list[int]) -> int:
    result = await db.execute(
        """
        DELETE FROM event_group_members m USING event_groups g
         WHERE g.id = m.event_group_id AND g.team_id = $1 AND g.id = $2
           AND m.event_type_id = ANY($3::bigint[])
        """,
        team_id,
        group_id,
        event_type_ids,
    )
    return int(result.split()[-1])


async def ensure_event_types(db: Db, team_id: int, names: list[str]) -> dict[str, int]:
    """Ids of the named event types, creating the missing ones."""
    await db.execute(
        "INSERT INTO event_types (team_id, name) SELECT $1, unnest($2::text[])"
        " ON CONFLICT DO NOTHING",
        team_id,
        names,
    )
    rows = await db.fetch(
        "SELECT id, name FROM event_types WHERE team_id = $1 AND name = ANY($2::text[])",
        team_id,
        names,
    )
    return {r["name"]: int(r["id"]) for r in rows}


async def event_type(db: Db, team_id: int, event_type_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(
        "SELECT id::text AS event_type_id, name FROM event_types WHERE team_id = $1 AND id = $2",
        team_id,
        event_type_id,
    )


async def list_event_types(
    db: Db, team_id: int, *, name: str | None, offset: int, count: int
) -> tuple[int, list[asyncpg.Record]]:
    where, args = "team_id = $1", list[Any]([team_id])
    if name:
        where, args = where + " AND strpos(lower(name), lower($2)) > 0", [team_id, name]
    total = int(await db.fetchval(f"SELECT count(*) FROM event_types WHERE {where}", *args))
    n = len(args)
    rows = await db.fetch(
        f"SELECT id::text AS event_type_id, name FROM event_types WHERE {where}"
        f" ORDER BY id OFFSET ${n + 1} LIMIT ${n + 2}",
        *args,
        offset,
        count,
    )
    return total, rows
