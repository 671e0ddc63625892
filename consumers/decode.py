"""Decoding Kafka records into canonical messages; the undecodable become dead letters.

One job: records to ``WriteMessage``s, and the dead letter of a message. A record
holds one message or a JSON array of messages (``schemas.messages``). An
undecodable record is one dead letter with its original bytes; a message of an array
that is invalid is one dead letter holding just that message, and the others go on.
Imports msgspec, ``schemas`` and ``consumers.dead_letter``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from consumers.dead_letter import DeadLetter
from schemas.identity import identifiers_refusal
from schemas.limits import message_refusal
from schemas.messages import (
    WIRE_VERSION,
    WriteMessage,
    decode,
    decode_record_for_apply,
    encode,
    is_array,
    split_array,
)
from schemas.topics import partition_key


def _refusal(message: WriteMessage) -> str | None:
    """Why a decoded message cannot be applied, or None.

    The same rules the gateway applies before it publishes (``schemas.identity``,
    ``schemas.limits``): what it answered 2xx for passes here; what was produced to
    the topic some other way is dead-lettered with the rule it breaks.
    """
    if message.v > WIRE_VERSION:
        return f"unsupported wire version {message.v}"
    reason = identifiers_refusal(message.identifiers)
    if reason is not None:
        return reason
    broken = message_refusal(message)
    return None if broken is None else f"{broken[0]}: {broken[1]}"


def message_value(record: Any, message: WriteMessage) -> tuple[bytes, bytes | None]:
    """(value, key) of a dead letter for ``message``, taken from ``record``.

    A message that travelled alone keeps its record's original bytes; one from an
    array is re-encoded on its own, under its own partition key.
    """
    value = getattr(record, "value", None)
    if value is not None and not is_array(value):
        return value, getattr(record, "key", None)
    return encode(message), partition_key(message.team_id, message.identifiers)


def letter_for(record: Any, message: WriteMessage, reason: str) -> DeadLetter:
    """The dead letter of ``message``, decoded from ``record`` (as ``message_value``)."""
    value, key = message_value(record, message)
    return DeadLetter.of(record, value, key, reason, message.id)


def _decode_items(
    record: Any, items: list[bytes], good: list[tuple[Any, WriteMessage]], dead: list[DeadLetter]
) -> None:
    """An array that did not decode as a whole: decode item by item, isolating the bad."""
    for item in items:
        try:
            message = decode(item)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            dead.append(
                DeadLetter.of(record, item, record.key, f"undecodable message: {exc}", None)
            )
            continue
        reason = _refusal(message)
        if reason is None:
            good.append((record, message))
        else:
            key = partition_key(message.team_id, message.identifiers)
            dead.append(DeadLetter.of(record, item, key, reason, message.id))


def decode_records(
    records: Iterable[Any],
) -> tuple[list[tuple[Any, WriteMessage]], list[DeadLetter]]:
    """(record, message) pairs in order, and dead letters for what cannot be applied.

    Never raises for a record: whatever goes wrong while decoding one (not only
    msgspec's errors) makes it a dead letter, and the others go on.
    """
    good: list[tuple[Any, WriteMessage]] = []
    dead: list[DeadLetter] = []
    for record in records:
        good_so_far, dead_so_far = len(good), len(dead)
        try:
            _decode_record(record, good, dead)
        except Exception as exc:  # a poison record must never stop the partition
            # The whole record becomes one dead letter, with its original bytes.
            del good[good_so_far:], dead[dead_so_far:]
            reason = f"undecodable message: {type(exc).__name__}: {exc}"
            dead.append(DeadLetter.of(record, record.value or b"", record.key, reason, None))
    return good, dead


def _decode_record(
    record: Any, good: list[tuple[Any, WriteMessage]], dead: list[DeadLetter]
) -> None:
    raw = record.value or b""
    try:
        decoded = decode_record_for_apply(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        items = split_array(raw)
        if items:
            _decode_items(record, items, good, dead)
        else:
            dead.append(DeadLetter.of(record, raw, record.key, f"undecodable message: {exc}", None))
        return
    if isinstance(decoded, WriteMessage):
        reason = _refusal(decoded)
        if reason is None:
            good.append((record, decoded))
        else:
            dead.append(DeadLetter.of(record, raw, record.key, reason, decoded.id))
        return
    if not decoded:
        dead.append(DeadLetter.of(record, raw, record.key, "empty array of messages", None))
    for message in decoded:
        reason = _refusal(message)
        if reason is None:
            good.append((record, message))
        else:
            dead.append(letter_for(record, message, reason))
