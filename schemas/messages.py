"""The canonical write message.

Every API surface of the gateway translates its request into one or more
``WriteMessage`` values; the consumers only ever see these. The JSON encoding is
the wire contract on the Kafka topic; adding optional fields is compatible,
renaming or removing them is not (bump ``v``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import uuid_utils

WIRE_VERSION = 1

Operation = Literal["upsert_customer", "delete_customer", "track_event"]

# Kinds of event with rules of their own in the consumers (see README "Event rules").
EventKind = Literal["custom", "update", "login", "confirmation", "email_open", "generic"]


class Identifiers(msgspec.Struct, omit_defaults=True, frozen=True):
    """Ways a write names a customer. Values are already normalised by the gateway."""

    email: str | None = None
    external_id: str | None = None
    phone: str | None = None
    customer_id: str | None = None

    def items(self) -> list[tuple[str, str]]:
        """(kind, value) pairs that are set, in key precedence order."""
        pairs = (
            ("email", self.email),
            ("external_id", self.external_id),
            ("phone", self.phone),
            ("customer_id", self.customer_id),
        )
        return [(kind, value) for kind, value in pairs if value]


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


class WriteMessage(msgspec.Struct, omit_defaults=True, frozen=True):
    id: str
    team_id: int
    op: Operation
    identifiers: Identifiers
    occurred_at: datetime
    received_at: datetime
    attributes: dict[str, Any] = {}
    event: EventData | None = None
    # False where the API requires an existing customer (the ``event/`` endpoint).
    create_if_missing: bool = True
    user_agent: str | None = None
    api: str = ""
    v: int = WIRE_VERSION


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(WriteMessage)


def encode(message: WriteMessage) -> bytes:
    return _encoder.encode(message)


def decode(raw: bytes) -> WriteMessage:
    """Decode and type-check one message; raises ``msgspec.ValidationError``/``DecodeError``."""
    return _decoder.decode(raw)


def new_message_id() -> str:
    """A unique, time-ordered id (UUIDv7) for an accepted write."""
    return str(uuid_utils.uuid7())


def utcnow() -> datetime:
    return datetime.now(UTC)
