"""Kafka topic names, the partition key of a write, and which lanes a write goes to."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.messages import Identifiers, WriteMessage

# Precedence of identifier kinds when choosing the partition key. Two writes that
# name the same person by the same first identifier land on one partition, in order.
KEY_PRECEDENCE = ("email", "external_id", "phone", "customer_id", "anonymous_id")


def partition_key(team_id: int, identifiers: Identifiers) -> bytes:
    """Key of a write: the team and its first identifier by precedence."""
    # Unrolled, in KEY_PRECEDENCE's order: asked once per message on the gateway's
    # batch loops and the consumers' decoding.
    if identifiers.email:
        return f"{team_id}:email:{identifiers.email}".encode()
    if identifiers.external_id:
        return f"{team_id}:external_id:{identifiers.external_id}".encode()
    if identifiers.phone:
        return f"{team_id}:phone:{identifiers.phone}".encode()
    if identifiers.customer_id:
        return f"{team_id}:customer_id:{identifiers.customer_id}".encode()
    if identifiers.anonymous_id:
        return f"{team_id}:anonymous_id:{identifiers.anonymous_id}".encode()
    return f"{team_id}:-".encode()


def key_team(key: bytes | None) -> int | None:
    """The team a ``partition_key`` names; None for a key that is not one."""
    head = (key or b"").split(b":", 1)[0]
    # (int() would take b" 7" or b"+7", which no partition key holds)
    return int(head) if head.isdigit() else None


def in_every_lane(message: WriteMessage) -> bool:
    """Whether ``message`` is published to every lane (the writes topic and the
    overflow topic), with one message id: a customer delete (``with_deletes_in_every_lane``
    says why)."""
    return message.op == "delete_customer"


def with_deletes_in_every_lane(
    messages: Sequence[WriteMessage], main: Sequence[WriteMessage], overflow: Sequence[WriteMessage]
) -> tuple[list[WriteMessage], list[WriteMessage]]:
    """``main`` and ``overflow``, a split of ``messages`` between the two lanes, with
    every delete of ``messages`` added to both, in the order of ``messages``.

    The consumers' tombstones order a write accepted *before* a delete but applied
    after it (the write is discarded); a write accepted *after* a delete must not be
    applied before it, or the delete would erase it. A delete in both lanes, with one
    message id, comes before every later write of its key in either lane: whichever
    copy is applied first erases, and the ledger skips the other as a redelivery
    (docs/identity.md, "Lanes and order"). The gateway's lanes, ``ingest-admin
    erase-customer`` and ``replay-dead-letters`` all publish through this.
    """
    in_main = {id(m) for m in main}
    in_overflow = {id(m) for m in overflow}
    return (
        [m for m in messages if id(m) in in_main or in_every_lane(m)],
        [m for m in messages if id(m) in in_overflow or in_every_lane(m)],
    )
