"""What the consumers made of accepted writes: their ledger, ``processed_messages``.

The one table of the consumers' the gateway reads: a client that waits for its
write is answered from here (``ingest_gateway.write.accept``), polled until every
write it waits for is there or its time ran out (``wait_for_outcomes``).
"""

from __future__ import annotations

import asyncio
import time

from runtime.pg import Db
from schemas.outcomes import Outcome


async def outcomes(db: Db, message_ids: list[str]) -> dict[str, Outcome]:
    rows = await db.fetch(
        "SELECT message_id::text AS id, outcome FROM processed_messages"
        " WHERE message_id = ANY($1::uuid[])",
        message_ids,
    )
    return {r["id"]: Outcome(r["outcome"]) for r in rows}


_POLL_INTERVAL_S = 0.02


async def wait_for_outcomes(
    db: Db, message_ids: list[str], timeout_s: float
) -> dict[str, Outcome] | None:
    """Outcome per message once all are processed, or None when the wait ran out."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await outcomes(db, message_ids)
        if len(found) == len(set(message_ids)):
            return found
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(_POLL_INTERVAL_S)
