"""Forgetting old ids of the ledger of applied message ids (``processed_messages``).

One job: pruning. Each applied message id is claimed once in ``processed_messages``
(``consumers.statements``, in the unit of work), so a redelivered batch changes
nothing. The ledger only has to remember ids Kafka could still redeliver; older
rows are deleted by ``ingest-admin prune-ledger`` and, every
``LEDGER_PRUNE_INTERVAL_S``, by one of the running consumers. The deletes'
tombstones (``delete_tombstones``) only have to outlive the writes accepted before
their delete that could still arrive, the same span: they are pruned with it.
Imports ``runtime.pg``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from runtime.pg import Connection

# pg_try_advisory_lock key: at most one consumer of the group prunes at a time.
_PRUNE_LOCK = 0x6C6564676572  # "ledger"


async def prune_ledger(conn: Connection, older_than_days: int, chunk: int = 50_000) -> int:
    """Delete ``processed_messages`` rows older than the given age, in chunks.

    The ledger only has to remember ids Kafka could still redeliver, so rows older
    than the topic's retention (7 days by default) are safe to forget. Message ids
    are UUIDv7, ordered by time, so the primary key finds the old rows without an
    index on ``processed_at``; small chunks keep each transaction short next to
    running consumers.
    """
    cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    # The smallest UUIDv7 of the cutoff's millisecond: every older id sorts below it.
    boundary = uuid.UUID(int=int(cutoff.timestamp() * 1000) << 80)
    await prune_tombstones(conn, boundary, chunk)
    total = 0
    while True:
        result = await conn.execute(
            "DELETE FROM processed_messages WHERE message_id IN ("
            " SELECT message_id FROM processed_messages"
            " WHERE message_id < $1 AND processed_at < $2 LIMIT $3)",
            boundary,
            cutoff,
            chunk,
        )
        deleted = int(result.split()[-1])
        total += deleted
        if deleted < chunk:
            return total


async def prune_unless_busy(conn: Connection, older_than_days: int) -> int | None:
    """``prune_ledger`` unless another session is pruning now (then None)."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _PRUNE_LOCK):
        return None
    try:
        return await prune_ledger(conn, older_than_days)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _PRUNE_LOCK)


async def prune_tombstones(conn: Connection, boundary: uuid.UUID, chunk: int) -> int:
    """Delete the tombstones of deletes accepted before ``boundary`` (a UUIDv7), in chunks.

    A write accepted before such a delete was accepted before the ledger's cutoff too:
    Kafka no longer holds it, so no tombstone of that age can still discard anything.
    """
    total = 0
    while True:
        result = await conn.execute(
            "DELETE FROM delete_tombstones WHERE (team_id, kind, value) IN ("
            " SELECT team_id, kind, value FROM delete_tombstones"
            " WHERE message_id < $1 LIMIT $2)",
            boundary,
            chunk,
        )
        deleted = int(result.split()[-1])
        total += deleted
        if deleted < chunk:
            return total
