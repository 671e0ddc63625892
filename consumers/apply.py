"""Apply a batch of canonical writes in one PostgreSQL transaction, set-based.

Per batch, whatever its size, about a dozen statements run:

1. claim the message ids in ``processed_messages`` (a redelivered id is skipped);
2. read the owners of every identifier the batch names and lock those customers
   (``FOR UPDATE``, in id order): a concurrent merge or delete in another consumer
   is waited for and seen, never overwritten;
3. ``plan.plan_batch`` decides in Python what to create, merge, update, delete;
4. the plan is written with ``unnest`` arrays and ``INSERT ... ON CONFLICT``.

Correctness under concurrency comes from PostgreSQL: the unique key on identifiers
makes two consumers that create the same identifier at once collide, and the loser's
transaction is retried (as are deadlocks and serialization failures) by ``worker``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import orjson

from consumers.plan import CustomerState, IdentifierKey, Plan, plan_batch
from runtime.pg import Connection
from schemas.messages import WriteMessage


class ConcurrentChange(Exception):
    """Another transaction changed the identities this batch touches: retry the batch."""


def _dumps(value: Any) -> str:
    """JSON text for PostgreSQL; raw JSON (an event body as sent) passes through."""
    if isinstance(value, msgspec.Raw):
        return bytes(value).decode()
    return orjson.dumps(value).decode()


class EventTypeCache:
    """Event type ids by (team, name). Filled only after a commit, so never stale."""

    def __init__(self) -> None:
        self.ids: dict[tuple[int, str], int] = {}


async def _read_locked_identities(
    conn: Connection, keys: list[IdentifierKey]
) -> tuple[dict[IdentifierKey, int], dict[int, asyncpg.Record]]:
    """Owners of ``keys`` and their customer rows, locked ``FOR UPDATE`` in id order.

    One statement is enough because an identifier only ever changes hands when its
    customer is deleted (erasure, or being merged away): if a concurrent transaction
    did that, the lock wait ends with the row gone and it is left out, so the key
    looks unowned here. Creating it then collides with the identifier's unique key
    and the batch is retried against the new owner (``ConcurrentChange``).
    """
    rows = await conn.fetch(
        """
        SELECT i.team_id AS key_team, i.kind, i.value, c.id, c.team_id,
               c.attributes::text AS attributes, c.attribute_times::text AS attribute_times,
               c.first_seen_at, c.last_updated_at
          FROM unnest($1::bigint[], $2::text[], $3::text[]) AS k (team_id, kind, value)
          JOIN customer_identifiers i USING (team_id, kind, value)
          JOIN customers c ON c.id = i.customer_id
         ORDER BY c.id
           FOR UPDATE OF c
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    owners = {(r["key_team"], r["kind"], r["value"]): r["id"] for r in rows}
    return owners, {r["id"]: r for r in rows}


async def _customer_states(
    conn: Connection,
    locked: dict[int, asyncpg.Record],
    owners: dict[IdentifierKey, int],
    messages: list[WriteMessage],
    email_open_window: timedelta,
) -> dict[int, CustomerState]:
    ids = list(locked)
    states = {
        cid: CustomerState(
            ref=cid,
            team_id=row["team_id"],
            attributes=orjson.loads(row["attributes"]),
            versions=orjson.loads(row["attribute_times"]),
            first_seen_at=row["first_seen_at"],
            last_updated_at=row["last_updated_at"],
        )
        for cid, row in locked.items()
    }
    if not ids:
        return states
    # External ids decide merges, and only a write naming several identifiers can
    # merge customers (plan.py); the customers it names are all the plan may compare.
    multi = {
        owners[key]
        for m in messages
        if m.identifiers.several()
        for kind, value in m.identifiers.items()
        if (key := (m.team_id, kind, value)) in owners
    }
    if multi:
        for row in await conn.fetch(
            "SELECT customer_id, value FROM customer_identifiers"
            " WHERE customer_id = ANY($1::bigint[]) AND kind = 'external_id'",
            sorted(multi),
        ):
            states[row["customer_id"]].external_ids.add(row["value"])
    opens = [m.occurred_at for m in messages if m.event and m.event.kind == "email_open"]
    if opens:
        for row in await conn.fetch(
            "SELECT customer_id, occurred_at FROM events WHERE customer_id = ANY($1::bigint[])"
            " AND kind = 'email_open' AND occurred_at > $2 AND occurred_at < $3",
            ids,
            min(opens) - email_open_window,
            max(opens) + email_open_window,
        ):
            states[row["customer_id"]].email_opens.append(row["occurred_at"])
    return states


class _Redelivered(Exception):
    """A message id of the batch was claimed before: claim again, one by one."""


async def _claim(
    conn: Connection, messages: list[WriteMessage], first_try: bool
) -> list[WriteMessage]:
    """Messages not applied before, each once, in batch order.

    On the first try the ids are COPYed into ``processed_messages``: almost every
    batch is new, and COPY skips ``ON CONFLICT``'s check and the returned ids. A
    redelivered id breaks the unique key; ``apply_batch`` then rolls back and claims
    with ``ON CONFLICT``, which skips the ids applied before, except dead letters: a
    message dead-lettered earlier and produced back (after a fix) is applied.
    """
    if first_try:
        try:
            await conn.copy_records_to_table(
                "processed_messages", columns=["message_id"], records=[(m.id,) for m in messages]
            )
        except asyncpg.UniqueViolationError as exc:
            raise _Redelivered from exc
        return messages
    fresh = {
        str(r["message_id"])
        for r in await conn.fetch(
            "INSERT INTO processed_messages (message_id) SELECT unnest($1::uuid[])"
            " ON CONFLICT (message_id) DO UPDATE SET outcome = 'applied', processed_at = now()"
            # A dead letter produced back after a fix is applied this time.
            "  WHERE processed_messages.outcome = 'dead_letter'"
            " RETURNING message_id",
            list(dict.fromkeys(m.id for m in messages)),  # DO UPDATE may touch a row once
        )
    }
    todo = []
    for message in messages:
        if message.id in fresh:
            fresh.discard(message.id)
            todo.append(message)
    return todo


async def _write_customers(conn: Connection, plan: Plan) -> dict[int, int]:
    """Deletes, creates, merges, identifiers, attribute updates. Returns ref -> id."""
    if plan.deleted:
        # Erasure: events explicitly (no foreign key on the hot table), identifiers by
        # ON DELETE CASCADE.
        await conn.execute("DELETE FROM events WHERE customer_id = ANY($1::bigint[])", plan.deleted)
        await conn.execute("DELETE FROM customers WHERE id = ANY($1::bigint[])", plan.deleted)
    ids: dict[int, int] = {}
    if plan.created:
        new_ids = await conn.fetch(
            "SELECT nextval(pg_get_serial_sequence('customers', 'id')) AS id"
            " FROM generate_series(1, $1)",
            len(plan.created),
        )
        for customer, row in zip(plan.created, new_ids, strict=True):
            ids[customer.ref] = row["id"]
        await conn.execute(
            """
            INSERT INTO customers (id, team_id, attributes, attribute_times,
                                   first_seen_at, last_updated_at)
            SELECT id, team_id, a::jsonb, v::jsonb, f, l
              FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                          $5::timestamptz[], $6::timestamptz[]) AS u (id, team_id, a, v, f, l)
            """,
            [ids[c.ref] for c in plan.created],
            [c.team_id for c in plan.created],
            [_dumps(c.attributes) for c in plan.created],
            [_dumps(c.versions) for c in plan.created],
            [c.first_seen_at for c in plan.created],
            [c.last_updated_at for c in plan.created],
        )

    def real(ref: int) -> int:
        return ids[ref] if ref < 0 else ref

    if plan.merges:
        merged = [m.merged_id for m in plan.merges]
        survivors = [real(m.survivor_ref) for m in plan.merges]
        await conn.execute(
            """
            UPDATE customer_identifiers i SET customer_id = m.survivor
              FROM unnest($1::bigint[], $2::bigint[]) AS m (merged, survivor)
             WHERE i.customer_id = m.merged
            """,
            merged,
            survivors,
        )
        await conn.execute(
            """
            UPDATE events e SET customer_id = m.survivor
              FROM unnest($1::bigint[], $2::bigint[]) AS m (merged, survivor)
             WHERE e.customer_id = m.merged
            """,
            merged,
            survivors,
        )
        await conn.execute(
            """
            INSERT INTO customer_merges (team_id, merged_customer_id, survivor_customer_id,
                                         message_id)
            SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::uuid[])
            """,
            [m.team_id for m in plan.merges],
            merged,
            survivors,
            [m.message_id for m in plan.merges],
        )
        await conn.execute("DELETE FROM customers WHERE id = ANY($1::bigint[])", merged)

    identifiers = [(t, k, v, real(ref)) for t, k, v, ref in plan.identifiers]
    identifiers += [(c.team_id, "customer_id", str(ids[c.ref]), ids[c.ref]) for c in plan.created]
    if identifiers:
        inserted = await conn.fetchval(
            """
            WITH ins AS (
                INSERT INTO customer_identifiers (team_id, kind, value, customer_id)
                SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[])
                ON CONFLICT DO NOTHING
                RETURNING 1
            ) SELECT count(*) FROM ins
            """,
            [i[0] for i in identifiers],
            [i[1] for i in identifiers],
            [i[2] for i in identifiers],
            [i[3] for i in identifiers],
        )
        if inserted != len(identifiers):
            # Another consumer created one of these identifiers since we read the owners.
            raise ConcurrentChange("an identifier was created concurrently")

    if plan.updated:
        await conn.execute(
            """
            UPDATE customers c
               SET attributes = u.a::jsonb, attribute_times = u.v::jsonb,
                   first_seen_at = u.f, last_updated_at = u.l
              FROM unnest($1::bigint[], $2::text[], $3::text[],
                          $4::timestamptz[], $5::timestamptz[]) AS u (id, a, v, f, l)
             WHERE c.id = u.id
            """,
            [c.ref for c in plan.updated],
            [_dumps(c.attributes) for c in plan.updated],
            [_dumps(c.versions) for c in plan.updated],
            [c.first_seen_at for c in plan.updated],
            [c.last_updated_at for c in plan.updated],
        )
    return ids


async def _event_type_ids(
    conn: Connection, cache: EventTypeCache, wanted: set[tuple[int, str]]
) -> dict[tuple[int, str], int]:
    known = {k: cache.ids[k] for k in wanted if k in cache.ids}
    missing = sorted(wanted - known.keys())
    if missing:
        teams, names = [k[0] for k in missing], [k[1] for k in missing]
        await conn.execute(
            "INSERT INTO event_types (team_id, name)"
            " SELECT * FROM unnest($1::bigint[], $2::text[]) ON CONFLICT DO NOTHING",
            teams,
            names,
        )
        for row in await conn.fetch(
            "SELECT t.id, t.team_id, t.name FROM event_types t"
            " JOIN unnest($1::bigint[], $2::text[]) AS k (team_id, name) USING (team_id, name)",
            teams,
            names,
        ):
            known[(row["team_id"], row["name"])] = row["id"]
    return known


_EVENT_COLUMNS = """id, team_id, customer_id, event_type_id, kind, external_id, client_event_id,
                    order_id, source, body, properties, occurred_at, received_at,
                    version_message_id, stored_at"""
# stored_at is the clock at the insert, near the commit (now() is the transaction's start):
# stored_at - received_at is the ingest-to-queryable latency the benchmark reports.
_COPY_COLUMNS = [
    "id",
    "team_id",
    "customer_id",
    "event_type_id",
    "kind",
    "external_id",
    "client_event_id",
    "order_id",
    "source",
    "body",
    "properties",
    "occurred_at",
    "received_at",
    "version_message_id",
]
_EVENT_ROWS = """
    SELECT id, team_id, customer_id, event_type_id, kind, external_id, client_event_id,
           order_id, source, body::jsonb, properties::jsonb, occurred_at, received_at, id,
           clock_timestamp()
      FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
                  $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                  $12::timestamptz[], $13::timestamptz[])
        AS u (id, team_id, customer_id, event_type_id, kind, external_id, client_event_id,
              order_id, source, body, properties, occurred_at, received_at)
"""


async def _write_events(
    conn: Connection,
    plan: Plan,
    ids: dict[int, int],
    type_ids: dict[tuple[int, str], int],
) -> None:
    groups: dict[str, list[list[Any]]] = defaultdict(lambda: [[] for _ in range(13)])
    for planned in plan.events:
        m = planned.message
        e = m.event
        assert e is not None
        group = "client" if e.client_event_id else "order" if e.order_id else "plain"
        values = (
            m.id,
            m.team_id,
            ids.get(planned.customer_ref, planned.customer_ref),
            type_ids[(m.team_id, e.name)],
            e.kind,
            e.external_id,
            e.client_event_id,
            e.order_id,
            e.source,
            _dumps(e.body),
            None if e.properties is None else _dumps(e.properties),
            m.occurred_at,
            m.received_at,
        )
        for column, value in zip(groups[group], values, strict=True):
            column.append(value)
    if "plain" in groups:
        # Most events: COPY, the cheapest way in. No conflict is possible: the message
        # ids were claimed in processed_messages by this transaction.
        columns = groups["plain"]
        await conn.copy_records_to_table(
            "events",
            columns=_COPY_COLUMNS,
            records=zip(*columns, columns[0], strict=True),
        )
    if "order" in groups:
        kept = {
            str(r["id"])
            for r in await conn.fetch(
                f"INSERT INTO events ({_EVENT_COLUMNS}) {_EVENT_ROWS}"
                " ON CONFLICT (team_id, order_id) WHERE order_id IS NOT NULL DO NOTHING"
                " RETURNING id",
                *groups["order"],
            )
        }
        for planned in plan.events:
            m = planned.message
            if m.event and m.event.order_id and not m.event.client_event_id and m.id not in kept:
                plan.outcomes[m.id] = "discarded:duplicate_confirmation"
                plan.discarded[(m.team_id, "duplicate_confirmation", m.occurred_at.date())] += 1
    if "client" in groups:
        # A newer version (event time, then message id) replaces the stored event;
        # an older or identical one leaves it as it is.
        await conn.execute(
            f"""
            INSERT INTO events ({_EVENT_COLUMNS}) {_EVENT_ROWS}
            ON CONFLICT (team_id, client_event_id) WHERE client_event_id IS NOT NULL
            DO UPDATE SET customer_id = excluded.customer_id,
                          event_type_id = excluded.event_type_id, kind = excluded.kind,
                          external_id = excluded.external_id, source = excluded.source,
                          body = excluded.body, properties = excluded.properties,
                          occurred_at = excluded.occurred_at, received_at = excluded.received_at,
                          version_message_id = excluded.version_message_id,
                          stored_at = excluded.stored_at
            WHERE (events.occurred_at, events.version_message_id)
                < (excluded.occurred_at, excluded.version_message_id)
            """,
            *groups["client"],
        )


async def _write_bookkeeping(conn: Connection, plan: Plan) -> None:
    if plan.discarded:
        keys = sorted(plan.discarded)  # fixed order: counters are shared rows
        await conn.execute(
            """
            INSERT INTO discarded_events (team_id, rule, day, count)
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::date[], $4::bigint[])
            ON CONFLICT (team_id, rule, day)
            DO UPDATE SET count = discarded_events.count + excluded.count
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [plan.discarded[k] for k in keys],
        )
    if plan.outcomes:
        await conn.execute(
            "UPDATE processed_messages p SET outcome = o.outcome"
            " FROM unnest($1::uuid[], $2::text[]) AS o (id, outcome) WHERE p.message_id = o.id",
            list(plan.outcomes),
            list(plan.outcomes.values()),
        )


async def apply_batch(
    conn: Connection,
    messages: list[WriteMessage],
    event_types: EventTypeCache,
    email_open_window: timedelta,
) -> Plan | None:
    """Apply ``messages`` (in order) in one transaction. None when all were applied before."""
    first_try = True
    while True:
        try:
            return await _apply_once(conn, messages, event_types, email_open_window, first_try)
        except _Redelivered:
            first_try = False


async def _apply_once(
    conn: Connection,
    messages: list[WriteMessage],
    event_types: EventTypeCache,
    email_open_window: timedelta,
    first_try: bool,
) -> Plan | None:
    new_types: dict[tuple[int, str], int] = {}
    async with conn.transaction():
        todo = await _claim(conn, messages, first_try)
        if not todo:
            return None
        keys = sorted(
            {(m.team_id, kind, value) for m in todo for kind, value in m.identifiers.items()}
        )
        owners, locked = await _read_locked_identities(conn, keys)
        states = await _customer_states(conn, locked, owners, todo, email_open_window)
        plan = plan_batch(todo, owners, states, email_open_window)
        ids = await _write_customers(conn, plan)
        if plan.events:
            wanted = {
                (p.message.team_id, p.message.event.name) for p in plan.events if p.message.event
            }
            new_types = await _event_type_ids(conn, event_types, wanted)
            await _write_events(conn, plan, ids, new_types)
        await _write_bookkeeping(conn, plan)
    event_types.ids.update(new_types)
    return plan
