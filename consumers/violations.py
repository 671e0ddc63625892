"""Tracking-plan violations, kept in the batch's transaction (issue #22).

A message that broke its team's tracking plan arrives carrying the gateway's
verdict (``schemas.violations.Tracking``). ``record`` writes one
``tracking_violations`` row per such message (the message as sent, before any
omission, and each failed rule) and hands back the messages to apply: all but the
blocked, whose outcome is ``blocked``. It runs after the claim, in the same
transaction, so a redelivered batch records nothing twice, and a violation is kept
exactly when the rest of its batch is.

Imports msgspec, ``consumers.statements`` (the outcomes), ``runtime.pg`` and
``schemas``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from consumers import statements
from runtime.pg import Connection
from schemas.messages import WriteMessage
from schemas.outcomes import Outcome

_INSERT = """
INSERT INTO tracking_violations (team_id, message_id, original_message_id, attempt,
    plan_version, action, op, event_name, surface, failures, message, library,
    library_version, occurred_at, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb, $12, $13, $14, $15)
ON CONFLICT (team_id, message_id) DO NOTHING
"""


async def record(conn: Connection, messages: list[WriteMessage]) -> list[WriteMessage]:
    """Record the violations ``messages`` carry; returns the messages to apply, in order."""
    if all(m.tracking is None for m in messages):
        return messages
    rows = [_row(m) for m in messages if m.tracking is not None and m.tracking.failures]
    if rows:
        await conn.executemany(_INSERT, rows)
    blocked = {
        m.id: Outcome.BLOCKED
        for m in messages
        if m.tracking is not None and m.tracking.action == "block" and m.tracking.failures
    }
    await statements.record_outcomes(conn, blocked)
    return [m for m in messages if m.id not in blocked]


def _row(message: WriteMessage) -> tuple[Any, ...]:
    tracking = message.tracking
    assert tracking is not None
    event = message.event
    if event is not None:
        name = event.name
    elif message.group is not None:
        name = "group"
    else:
        name = "identify" if message.op == "upsert_customer" else message.op
    library, version = _library(event.context if event is not None else None)
    return (
        message.team_id,
        message.id,
        tracking.replay_of or message.id,
        tracking.attempt,
        tracking.plan_version,
        tracking.action,
        message.op,
        name,
        message.api,
        msgspec.json.encode(tracking.failures).decode(),
        as_sent(message).decode(),
        library,
        version,
        message.occurred_at,
        message.received_at,
    )


def as_sent(message: WriteMessage) -> bytes:
    """The message as the client sent it: without the verdict, the omitted parts back."""
    tracking = message.tracking
    bare = msgspec.structs.replace(message, tracking=None)
    encoded = msgspec.json.encode(bare)
    if tracking is None or not tracking.omitted:
        return encoded
    whole: dict[str, Any] = msgspec.json.decode(encoded)
    omitted = tracking.omitted
    if "properties" in omitted and isinstance(whole.get("event"), dict):
        whole["event"]["body"] = {**whole["event"].get("body", {}), **omitted["properties"]}
    if "traits" in omitted:
        whole["attributes"] = {**whole.get("attributes", {}), **omitted["traits"]}
    if "group_traits" in omitted and isinstance(whole.get("group"), dict):
        whole["group"]["traits"] = {**whole["group"].get("traits", {}), **omitted["group_traits"]}
    return msgspec.json.encode(whole)


def _library(context: Any) -> tuple[str | None, str | None]:
    """The client library's name and version in an event's context (Segment's)."""
    if isinstance(context, msgspec.Raw):
        if bytes(context) in (b"null", b"") or b'"library"' not in bytes(context):
            return None, None
        context = msgspec.json.decode(context)
    library = context.get("library") if isinstance(context, dict) else None
    if not isinstance(library, dict):
        return None, None
    name, version = library.get("name"), library.get("version")
    return (
        name if isinstance(name, str) else None,
        version if isinstance(version, str) else None,
    )
