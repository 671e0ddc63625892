"""What the consumers made of accepted writes: their ledger, ``processed_messages``.

The one table of the consumers' the gateway reads: a client that waits for its
write is answered from here (``ingest_gateway.accept``).
"""

from __future__ import annotations

from runtime.pg import Db


async def outcomes(db: Db, message_ids: list[str]) -> dict[str, str]:
    rows = await db.fetch(
        "SELECT message_id::text AS id, outcome FROM processed_messages"
        " WHERE message_id = ANY($1::uuid[])",
        message_ids,
    )
    return {r["id"]: r["outcome"] for r in rows}
