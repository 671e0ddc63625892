"""What a write must keep to so that it can be stored and read back: the contract.

The gateway refuses at the door a request that breaks one of these rules
(``ingest_gateway.write.validation``); a consumer can dead-letter a message that breaks
one (``message_refusal``) instead of failing on it in PostgreSQL or in a reader.
The rules come from what the store and its readers hold:

* integers: PostgreSQL's ``bigint``, and what orjson encodes and msgspec, asyncpg
  and every JSON reader of the store decode alike: the signed 64-bit range;
* times: what Python's ``datetime`` holds (the readers), years 1 to 9999 in UTC;
* text: PostgreSQL ``text`` and ``jsonb`` refuse NUL (``\\u0000``) and text that is
  not Unicode (lone surrogates, which neither UTF-8 nor ``jsonb`` can carry);
* names and ids that PostgreSQL indexes (event names, client event ids, order ids,
  sources, identifiers): at most 255 characters, well within a btree entry.

Identifiers have rules of their own (``schemas.identity``, which uses these).

The limits of a request that are no setting live here too, so that every limit a
surface applies has one home (docs/limits.md): the length of names and ids every
surface checks (``MAX_NAME_LENGTH``), and the Segment spec's per message and per
batch (``MAX_SEGMENT_MESSAGE_BYTES``, ``MAX_SEGMENT_BATCH_MESSAGES``). Limits a
deployment may change are settings (``runtime.settings``: ``MAX_BODY_BYTES``, ...).

Only the standard library and ``schemas.messages`` are imported here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.messages import WriteMessage

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_NAME_LENGTH = 255
# The Segment spec (``ingest_gateway.surfaces.segment_api``): bytes of JSON per
# message, counting a batch's context it inherits, and messages per batch. (Segment's
# own are 32 KB and 500 KB a batch.)
MAX_SEGMENT_MESSAGE_BYTES = 64 * 1024
MAX_SEGMENT_BATCH_MESSAGES = 2500
# Objects and arrays one request may make the gateway build: parsing costs most per
# container (~0.3 us each), so this bounds the work of any body within the size
# limit to about that of a legitimate 5 MB batch (docs: limits and bounded work).
MAX_JSON_CONTAINERS = 200_000
# Values of any kind one request may make the gateway build (~20 ns each, strings and
# numbers): counted as its commas and containers, an upper bound of its values less one.
MAX_JSON_VALUES = 1_000_000
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)

NUL_RULE = "must not contain the NUL character (\\u0000)"
SURROGATE_RULE = "must be Unicode text (it has a lone surrogate)"
INT_RULE = f"must be an integer from {INT64_MIN} to {INT64_MAX} (signed 64-bit)"
TIME_RULE = "must be within the years 1 to 9999 in UTC"
ZONE_RULE = "needs a time zone (e.g. 2024-05-01T12:00:00Z)"
NAME_RULE = f"must be 1 to {MAX_NAME_LENGTH} characters"
LONG_RULE = f"must be at most {MAX_NAME_LENGTH} characters"


def text_refusal(value: str) -> str | None:
    """Why PostgreSQL could not store ``value`` as text, or None."""
    if "\x00" in value:
        return NUL_RULE
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return SURROGATE_RULE
    return None


def int_refusal(value: int) -> str | None:
    return None if INT64_MIN <= value <= INT64_MAX else INT_RULE


def json_id(value: object) -> str | None:
    """An id as a JSON document may send it, as text: a string as it is, or a signed
    64-bit integer's digits (an integral float is that integer, to JSON Schema as to
    JSON; a boolean is no integer here); None for anything else."""
    if type(value) is str:
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and not int_refusal(value):
        return str(value)
    return None


def time_refusal(moment: datetime) -> str | None:
    """Why an event time cannot be stored: no zone, or outside years 1 to 9999 in UTC."""
    if moment.tzinfo is UTC:  # the common case, in range by construction
        return None
    if moment.utcoffset() is None:
        return ZONE_RULE
    # Aware datetimes compare by their UTC value, without converting (which would
    # overflow for 0001-01-01T00:00:00+01:00, the last hour of year 0 in UTC).
    return None if EARLIEST <= moment <= LATEST else TIME_RULE


def bigint_id(text: str) -> int | None:
    """The positive ``bigint`` an id names in ASCII decimal digits, or None."""
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        return None
    digits = text.lstrip("0")
    if len(digits) > len(str(INT64_MAX)):  # also keeps int() away from huge strings
        return None
    number = int(digits or "0")
    return number if 0 < number <= INT64_MAX else None


def _name_refusal(value: str, *, required: bool) -> str | None:
    if len(value) > MAX_NAME_LENGTH:
        return LONG_RULE
    if required and not value.strip():
        return NAME_RULE
    return text_refusal(value)


def message_refusal(message: WriteMessage) -> tuple[str, str] | None:
    """(field, rule) of the first rule a message's times, names and ids break, or None.

    Times must be within range, names and ids storable text. Identifiers are checked
    by ``schemas.identity.identifiers_refusal``. JSON values (attributes, event bodies,
    properties) are checked where they are parsed, not here: the gateway walks them
    once (``ingest_gateway.write.validation.check_json``) when it reads a request.
    """
    # On the batch endpoint's hot path: cheap checks first, nothing built per call.
    reason = time_refusal(message.occurred_at)
    if reason is not None:
        return "occurred_at", reason
    reason = time_refusal(message.received_at)
    if reason is not None:
        return "received_at", reason
    group = message.group
    if group is not None and (reason := _name_refusal(group.group_id, required=True)):
        return "group.group_id", reason
    event = message.event
    if event is None:
        return None
    reason = _name_refusal(event.name, required=True)
    if reason is not None:
        return "event.name", reason
    if event.client_event_id is not None or event.order_id is not None or event.source:
        for field, value in (
            ("event.client_event_id", event.client_event_id),
            ("event.order_id", event.order_id),
            ("event.source", event.source),
        ):
            if value is not None and (reason := _name_refusal(value, required=False)):
                return field, reason
    # Not indexed, so of any length; but text PostgreSQL can store.
    if event.external_id is not None and (reason := text_refusal(event.external_id)):
        return "event.external_id", reason
    return None
