"""Decoding Kafka records into canonical messages; the undecodable become dead letters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from consumers.dead_letter import DeadLetter
from schemas.identity import InvalidIdentifier, normalise
from schemas.messages import WIRE_VERSION, WriteMessage, decode


def decode_records(
    records: Iterable[Any],
) -> tuple[list[tuple[Any, WriteMessage]], list[DeadLetter]]:
    """(record, message) pairs in order, and dead letters for what cannot be applied."""
    good: list[tuple[Any, WriteMessage]] = []
    dead: list[DeadLetter] = []
    for record in records:
        reason = None
        message = None
        try:
            message = decode(record.value)
            if message.v > WIRE_VERSION:
                reason = f"unsupported wire version {message.v}"
            elif normalise(message.identifiers) != message.identifiers:
                reason = "identifiers are not normalised"
            elif not message.identifiers.items():
                reason = "no customer identifier"
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            reason = f"undecodable message: {exc}"
        except InvalidIdentifier as exc:
            reason = f"invalid identifier: {exc}"
        if reason is None and message is not None:
            good.append((record, message))
        else:
            dead.append(
                DeadLetter(
                    value=record.value or b"",
                    key=record.key,
                    reason=reason or "unknown",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    message_id=message.id if message else None,
                )
            )
    return good, dead
