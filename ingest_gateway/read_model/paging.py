"""One page of a team's rows, sorted, with the total: the /rest-api lists' shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from runtime.pg import Db


@dataclass(frozen=True)
class Paging:
    """Which page: ``sort_column`` is an SQL expression from an allow-list, never input."""

    sort_column: str
    descending: bool
    offset: int
    count: int


async def page(
    db: Db,
    source: str,
    columns: str,
    where: str,
    args: list[Any],
    paging: Paging,
    tiebreak: str,
    nulls: str = "",
) -> tuple[int, list[asyncpg.Record]]:
    """(total matching ``where``, the page) of ``source`` (a table and its alias).

    ``tiebreak`` (a unique column) keeps pages stable; ``nulls``: ``"NULLS LAST"``
    where the sort column may be null.
    """
    total = int(await db.fetchval(f"SELECT count(*) FROM {source} WHERE {where}", *args))
    if paging.count == 0 or paging.offset >= total:
        return total, []
    direction = "DESC" if paging.descending else "ASC"
    n = len(args)
    rows = await db.fetch(
        f"SELECT {columns} FROM {source} WHERE {where}"
        f" ORDER BY {paging.sort_column} {direction} {nulls}, {tiebreak} {direction}"
        f" OFFSET ${n + 1} LIMIT ${n + 2}",
        *args,
        paging.offset,
        paging.count,
    )
    return total, rows
