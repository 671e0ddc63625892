"""The canonical write message, and how messages travel in Kafka records.

Every API surface of the gateway translates its request into one or more
``WriteMessage`` values; the consumers only ever see these. The JSON encoding is
the wire contract on the Kafka topic; adding optional fields is compatible,
renaming or removing them is not (bump ``v``).

**Records.** The value of a record on the writes topic is either

* one message, as a JSON object (``encode``), or
* a JSON array of messages (``encode_many``) that all belong to the record's
  partition: each message's own partition key (``schemas.topics.partition_key``)
  hashes, with Kafka's default partitioner (murmur2 of the key, modulo the
  partition count), to the partition the record is in. Their order in the array
  is their order in the partition.

The record's key is the key of its first message (tools that show keys still see
one); consumers never route by it. So every message naming a customer the same way
still lands in one partition, in order, whether it travelled alone or in an array.
Consumers accept both forms (``decode_record``) and commit a record's offset only
once all of its messages are applied or dead-lettered; a message of an array that
cannot be applied is dead-lettered alone, as its own JSON object.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import uuid_utils

from schemas.violations import Tracking

WIRE_VERSION = 1

Operation = Literal["upsert_customer", "delete_customer", "track_event"]

# Kinds of event with rules of their own in the consumers (docs/identity.md, "Event rules").
EventKind = Literal["custom", "update", "login", "confirmation", "email_open", "generic"]


class Identifiers(msgspec.Struct, omit_defaults=True, frozen=True):
    """Ways a write names a customer. Values are already normalised by the gateway."""

    email: str | None = None
    external_id: str | None = None
    phone: str | None = None
    customer_id: str | None = None
    # A device's or browser's id before the person is known (Segment's anonymousId).
    # A customer may hold many; one that holds nothing else is an anonymous customer.
    anonymous_id: str | None = None

    def _email_only(self) -> bool:
        return (
            self.external_id is None
            and self.phone is None
            and self.customer_id is None
            and self.anonymous_id is None
        )

    def items(self) -> list[tuple[str, str]]:
        """(kind, value) pairs that are set, in key precedence order."""
        if self._email_only():
            # Most writes name a customer by email alone: the consumers' hot path.
            return [("email", self.email)] if self.email else []
        pairs = (
            ("email", self.email),
            ("external_id", self.external_id),
            ("phone", self.phone),
            ("customer_id", self.customer_id),
            ("anonymous_id", self.anonymous_id),
        )
        return [(kind, value) for kind, value in pairs if value]

    def several(self) -> bool:
        """Whether more than one identifier is set (only such a write can merge)."""
        if self._email_only():
            return False
        return len(self.items()) > 1


class EventData(msgspec.Struct, omit_defaults=True, frozen=True):
    name: str
    body: Any = {}
    kind: EventKind = "custom"
    external_id: str | None = None
    # A client-chosen id: a later message with the same id replaces the event.
    client_event_id: str | None = None
    order_id: str | None = None
    source: str | None = None
    properties: list[dict[str, Any]] | None = None
    # Where and how the event was sent (Segment's ``context``: ip, userAgent, library,
    # page, ...), stored beside the body in ``events.context``.
    context: dict[str, Any] | None = None


class GroupData(msgspec.Struct, omit_defaults=True, frozen=True):
    """The customer belongs to a group (an account, Segment's ``group`` call) with
    these traits; traits combine per trait by newest event time, like attributes."""

    group_id: str
    traits: dict[str, Any] = {}


class WriteMessage(msgspec.Struct, omit_defaults=True, frozen=True):
    id: str
    team_id: int
    op: Operation
    identifiers: Identifiers
    occurred_at: datetime
    received_at: datetime
    attributes: dict[str, Any] = {}
    event: EventData | None = None
    group: GroupData | None = None
    # False where the API requires an existing customer (the ``event/`` endpoint).
    create_if_missing: bool = True
    user_agent: str | None = None
    api: str = ""
    # Set by the gateway for a team under the "skip identity" control (``ingest-admin
    # control``): the write applies to the customer its first identifier names (by
    # ``schemas.topics.KEY_PRECEDENCE``), with no merge and no other identifier attached.
    skip_identity: bool = False
    v: int = WIRE_VERSION
    # The tracking plan's verdict, when the message broke it or was replayed (issue #22).
    tracking: Tracking | None = None


NO_CONTEXT = msgspec.Raw(b"null")


class AppliedEventData(EventData, frozen=True, omit_defaults=True):
    """``EventData`` as the consumers decode it: the body stays raw JSON bytes.

    The store keeps the body as sent, so parsing it only to serialise it again for
    PostgreSQL would be wasted work on the consumers' hot path.
    """

    body: msgspec.Raw = msgspec.Raw(b"{}")
    # Raw as well; msgspec has no ``Raw | None``, so no context is JSON ``null``.
    context: msgspec.Raw = NO_CONTEXT  # type: ignore[assignment]


class AppliedWriteMessage(WriteMessage, frozen=True, omit_defaults=True):
    """``WriteMessage`` as the consumers decode it (see ``AppliedEventData``)."""

    event: AppliedEventData | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(WriteMessage)
_record_decoder = msgspec.json.Decoder(WriteMessage | list[WriteMessage])
_items_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_applied_record_decoder = msgspec.json.Decoder(AppliedWriteMessage | list[AppliedWriteMessage])


def encode(message: WriteMessage) -> bytes:
    return _encoder.encode(message)


def decode(raw: bytes) -> WriteMessage:
    """Decode and type-check one message; raises ``msgspec.ValidationError``/``DecodeError``."""
    return _decoder.decode(raw)


def encode_many(encoded: list[bytes]) -> bytes:
    """A record value from already encoded messages: the message itself when alone."""
    if len(encoded) == 1:
        return encoded[0]
    return b"[" + b",".join(encoded) + b"]"


def decode_record_for_apply(raw: bytes) -> AppliedWriteMessage | list[AppliedWriteMessage]:
    """``decode_record`` for the consumers: event bodies stay raw (``AppliedEventData``)."""
    decoded: AppliedWriteMessage | list[AppliedWriteMessage] = _applied_record_decoder.decode(raw)
    return decoded


def decode_record(raw: bytes) -> WriteMessage | list[WriteMessage]:
    """Decode a record value (a message or an array of them); raises like ``decode``."""
    decoded: WriteMessage | list[WriteMessage] = _record_decoder.decode(raw)
    return decoded


def split_array(raw: bytes) -> list[bytes] | None:
    """The items of a record value holding a JSON array, each as its own bytes.

    None when ``raw`` is not a JSON array. Used to isolate the one bad message
    of an array that does not decode as a whole.
    """
    if raw.lstrip()[:1] != b"[":
        return None
    try:
        return [bytes(item) for item in _items_decoder.decode(raw)]
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def is_array(raw: bytes | None) -> bool:
    """Whether a record value is an array of messages (rather than one message)."""
    return raw is not None and raw.lstrip()[:1] == b"["


def new_message_id() -> str:
    """A unique, time-ordered id (UUIDv7) for an accepted write."""
    return str(uuid_utils.uuid7())


def client_message_id(team_id: int, client_id: str) -> str:
    """The message id of a write the client named itself (Segment's ``messageId``).

    The same for every resend of that call, so the consumers' ledger of applied ids
    (``processed_messages``) makes the resend a no-op: a duplicate is accepted and not
    stored twice. A UUIDv8 (RFC 9562) from a SHA-256 of the team and the client's id,
    so two teams' ids never meet. Unlike the gateway's own UUIDv7 ids it is not
    ordered by time: what orders writes by acceptance uses ``acceptance_order``.
    """
    # The first 16 bytes of the digest, in hex, with the version and variant bits set
    # on the digits that hold them (the 13th and the 17th). Formatted by hand: a
    # uuid.UUID object per message was most of this function's cost on the Segment
    # surface's hot path (one call per message), then the bytes edited before hex.
    h = hashlib.sha256(f"{team_id}\x00{client_id}".encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-8{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


# A hex digit with its two high bits set to RFC 9562's variant, 10.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def acceptance_order(message: WriteMessage) -> str:
    """A key that orders writes by when the gateway accepted them, whatever lane or
    replay brought them to a consumer: the message id when it is the gateway's UUIDv7
    (its first 48 bits are the acceptance time in milliseconds); for an id the client
    named (Segment's ``messageId``, a replayed violation's: not ordered by time), the
    acceptance time ``received_at`` in the same form, the id after it. Comparable with
    the gateway's ids as strings."""
    message_id = message.id
    if message_id[14] == "7":
        return message_id
    ms = f"{int(message.received_at.timestamp() * 1000):012x}"
    return f"{ms[:8]}-{ms[8:]}-7{message_id[15:]}"


def utcnow() -> datetime:
    return datetime.now(UTC)
