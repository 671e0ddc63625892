"""Canonical writes made outside the gateway: the benchmark's direct Kafka load and the
tests' fixtures.

The gateway builds every write it accepts with ``ingest_gateway.write.build.new_write``
(checked against the consumers' rules); this one checks nothing, so that the benchmark
and the tests can also publish what the gateway would refuse. Imports ``schemas`` only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.messages import Identifiers, Operation, WriteMessage, new_message_id, utcnow


def new_write(
    team_id: int,
    op: Operation,
    identifiers: Identifiers,
    *,
    received_at: datetime | None = None,
    occurred_at: datetime | None = None,
    **fields: Any,
) -> WriteMessage:
    """A new write with its own message id, received now (or at ``received_at``) and
    having happened then unless ``occurred_at`` says otherwise."""
    received = received_at or utcnow()
    return WriteMessage(
        id=new_message_id(),
        team_id=team_id,
        op=op,
        identifiers=identifiers,
        occurred_at=occurred_at or received,
        received_at=received,
        **fields,
    )
