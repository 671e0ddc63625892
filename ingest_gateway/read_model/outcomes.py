"""What the consumers made of accepted writes: their ledger, ``processed_messages``.

The one table of the consumers' the gateway reads: a client that waits for its
write is answered from here (``ingest_gateway.write.accept``).
"""

from __future__ import annotations

from runtime.pg import Db
from schemas.outcomes import Outcome


async def outcomes(db: Db, message_ids: list[str]) -> dict[str, Outcome]:
    rows = await db.fetch(
        "SELECT message_id::text AS id, outcome FROM processed_messages"
        " WHERE message_id = ANY($1::uuid[])",
        message_ids,
    )
    return {r["id"]: Outcome(r["outcome"]) for r in rows}
