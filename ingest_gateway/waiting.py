"""Optional wait for the consumers: ``Prefer: return=representation`` or ``?wait=true``.

Writes answer as soon as Kafka acknowledged them. A client that needs the stored
result asks to wait; the gateway then polls the consumers' ledger of processed
messages, bounded by ``WAIT_TIMEOUT_S``, and answers 202 with the message id when
the wait runs out.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
from starlette.requests import Request

from ingest_gateway.read_model.customers import outcomes

_POLL_INTERVAL_S = 0.02


def wants_wait(request: Request) -> bool:
    prefer = request.headers.get("prefer")
    if prefer and "return=representation" in prefer.lower():
        return True
    # Parsing the query string costs more than the rest of this check: most writes
    # have none, or no ``wait`` in it.
    if b"wait" not in request.scope.get("query_string", b""):
        return False
    return request.query_params.get("wait", "").lower() in {"1", "true", "yes"}


async def wait_for_outcomes(
    db: asyncpg.Pool, message_ids: list[str], timeout_s: float
) -> dict[str, str] | None:
    """Outcome per message once all are processed, or None when the wait ran out."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await outcomes(db, message_ids)
        if len(found) == len(set(message_ids)):
            return found
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(_POLL_INTERVAL_S)
