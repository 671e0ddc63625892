"""Kafka topic names and the partition key of a write."""

from __future__ import annotations

from schemas.messages import Identifiers

# Precedence of identifier kinds when choosing the partition key. Two writes that
# name the same person by the same first identifier land on one partition, in order.
KEY_PRECEDENCE = ("email", "external_id", "phone", "customer_id", "anonymous_id")


def partition_key(team_id: int, identifiers: Identifiers) -> bytes:
    """Key of a write: the team and its first identifier by precedence."""
    for kind in KEY_PRECEDENCE:
        value = getattr(identifiers, kind)
        if value:
            return f"{team_id}:{kind}:{value}".encode()
    return f"{team_id}:-".encode()
