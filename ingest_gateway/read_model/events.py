"""Events and event types as the APIs read them; customers as far as writes check them."""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import asyncpg
import orjson

from ingest_gateway.read_model.paging import Paging, page
from runtime.pg import Db
from schemas.limits import INT64_MAX, INT64_MIN

# Public sort fields of the event list (seed 003) -> SQL. Only these reach SQL text.
EVENT_SORT_COLUMNS = {
    "event_id": "e.id",
    "created_at": "e.occurred_at",
    "event_type_id": "e.event_type_id",
    "customer_id": "e.customer_id",
    "external_id": "e.external_id",
}

_EVENT_COLUMNS = """
    e.id::text AS event_id, e.event_type_id::text AS event_type_id,
    e.customer_id::text AS customer_id, e.external_id, e.body::text AS body,
    to_char(e.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS created_at
"""


def _int_or_text(text: str) -> int | str:
    if len(text) <= 20:  # a sign and 19 digits: int() stays cheap
        number = int(text)
        if INT64_MIN <= number <= INT64_MAX:
            return number
    return text


def _float_or_text(text: str) -> float | str:
    number = float(text)
    return number if math.isfinite(number) else text


def stored_json(text: str) -> Any:
    """JSON as the store holds it, read back; never fails on what ``jsonb`` holds.

    ``jsonb`` keeps numbers that neither a double nor a 64-bit integer can (rows
    stored before the gateway refused them, ``1e400``): those read back as their
    decimal text rather than failing the read.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text, parse_int=_int_or_text, parse_float=_float_or_text)


def compact_json(text: str | None) -> str:
    """jsonb text as PostgreSQL prints it (``{"a": 1}``) to the compact form (``{"a":1}``).

    Text orjson cannot read or write again (numbers beyond a double, nesting beyond
    its limits) stays as PostgreSQL printed it: valid JSON all the same.
    """
    if not text:
        return "{}"
    try:
        return orjson.dumps(orjson.loads(text)).decode()
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return text


def event_view(row: asyncpg.Record) -> dict[str, Any]:
    """An event in the fields of seed 003, whichever API wrote it.

    ``data`` is the event body as a JSON string; ``secondary_external_id`` is not
    kept by the store (always null) and ``state`` is 1, the only state an event has.
    """
    return {
        "event_id": row["event_id"],
        "event_type_id": row["event_type_id"],
        "customer_id": row["customer_id"],
        "external_id": row["external_id"],
        "data": compact_json(row["body"]),
        "created_at": row["created_at"],
        "secondary_external_id": None,
        "state": 1,
    }


async def customer_for_identifier(db: Db, team_id: int, kind: str, value: str) -> int | None:
    """The customer holding an identifier (kind ``customer_id`` resolves merged-away ids)."""
    found = await db.fetchval(
        "SELECT customer_id FROM customer_identifiers"
        " WHERE team_id = $1 AND kind = $2 AND value = $3",
        team_id,
        kind,
        value,
    )
    return None if found is None else int(found)


async def event_type_and_customer(
    db: Db, team_id: int, event_type_id: int, customer_id: str
) -> tuple[str | None, int | None]:
    """(event type name, customer) for an event write, in one round trip."""
    row = await db.fetchrow(
        """
        SELECT (SELECT name FROM event_types WHERE team_id = $1 AND id = $2) AS type_name,
               (SELECT customer_id FROM customer_identifiers
                 WHERE team_id = $1 AND kind = 'customer_id' AND value = $3) AS customer
        """,
        team_id,
        event_type_id,
        customer_id,
    )
    assert row is not None
    customer = row["customer"]
    return row["type_name"], None if customer is None else int(customer)


async def list_events(
    db: Db, team_id: int, paging: Paging, *, event_type_id: int | None
) -> tuple[int, list[asyncpg.Record]]:
    """(total matching, one page). ``paging.sort_column`` comes from ``EVENT_SORT_COLUMNS``."""
    assert paging.sort_column in EVENT_SORT_COLUMNS.values()
    where, args = "e.team_id = $1", [team_id]
    if event_type_id is not None:
        where, args = where + " AND e.event_type_id = $2", [team_id, event_type_id]
    return await page(db, "events e", _EVENT_COLUMNS, where, args, paging, "e.id", "NULLS LAST")


async def get_event(db: Db, team_id: int, event_id: uuid.UUID) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {_EVENT_COLUMNS}, e.properties::text AS properties"
        " FROM events e WHERE e.team_id = $1 AND e.id = $2",
        team_id,
        event_id,
    )


def property_records(row: asyncpg.Record) -> list[dict[str, Any]]:
    """The event's property records: as sent to seed 003, else one per top-level body field."""
    if row["properties"]:
        records: list[dict[str, Any]] = stored_json(row["properties"])
        return records
    body = stored_json(row["body"]) if row["body"] else {}
    if not isinstance(body, dict):
        return []
    return [{"property_id": name, "property_value": value} for name, value in body.items()]


async def event_by_client_id(db: Db, team_id: int, client_event_id: str) -> asyncpg.Record | None:
    """A client-identified event (seed 004's ``id``) with its type name."""
    return await db.fetchrow(
        """
        SELECT e.client_event_id, t.name AS type, e.source, e.customer_id::text AS customer_id,
               e.body::text AS body, e.occurred_at, e.version_message_id::text AS message_id
          FROM events e JOIN event_types t ON t.id = e.event_type_id
         WHERE e.team_id = $1 AND e.client_event_id = $2
        """,
        team_id,
        client_event_id,
    )


async def events_by_ids(db: Db, team_id: int, event_ids: list[str]) -> list[asyncpg.Record]:
    """Events by id (the message id that created them), in id order."""
    return await db.fetch(
        f"SELECT {_EVENT_COLUMNS} FROM events e"
        " WHERE e.team_id = $1 AND e.id = ANY($2::uuid[]) ORDER BY e.id",
        team_id,
        event_ids,
    )
