"""The consumers' SQL: set-based statements, one function per concern, no decisions.

Each function runs a fixed number of statements whatever the batch size (``unnest``
arrays, COPY, ``INSERT ... ON CONFLICT``) and none when it has nothing to do; which
rows to write was decided before (``consumers.plan``), and in what order and in
which transaction is ``consumers.unit_of_work``'s job. Two rows with one key in one
``ON CONFLICT`` statement would be an error: the plan hands each key over once.
The plan's new customers have refs (< 0) until ``create_customers`` gives them ids:
the writes that name them take those ids (``ids``).

Concerns, in the order a batch meets them: the ledger (``claim``, ``claim_again``,
``record_outcomes``, ``record_dead_letters``); the locked reads (``lock_customers``,
which reads with ``external_ids`` and ``email_opens`` what the plan compares, and
no more: ``identifier_keys``, ``customers_to_compare``, ``external_ids_named``,
``email_open_span``, pure, tested in ``tests/consumers/test_plan.py``); the writes
(``delete_customers``, ``create_customers``, ``merge_customers``,
``attach_identifiers``, ``update_attributes``, ``upsert_groups``,
``add_memberships``, ``ensure_event_types``, ``insert_events``, ``count_discarded``).

Imports asyncpg, the JSON encoders, ``runtime.pg``, ``schemas`` and the plan's
types (``consumers.plan``).
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

import asyncpg
import msgspec
import orjson

from consumers.plan import (
    EPOCH,
    CustomerState,
    GroupKey,
    GroupState,
    IdentifierKey,
    MembershipKey,
    Merge,
    Plan,
    PlannedEvent,
    StoredEvent,
    email_open_window_of,
    first_identifier,
)
from runtime.pg import Connection
from schemas.messages import WriteMessage
from schemas.outcomes import Outcome, Rule


class ConcurrentChange(Exception):
    """Another transaction changed the identities this batch touches: retry the batch."""


def _dumps_optional(value: Any) -> str | None:
    """``_dumps``, or SQL NULL for a value not given (None, or raw JSON ``null``)."""
    if value is None or (isinstance(value, msgspec.Raw) and bytes(value) == b"null"):
        return None
    return _dumps(value)


def _dumps(value: Any) -> str:
    """JSON text for PostgreSQL; raw JSON (an event body as sent) passes through."""
    if isinstance(value, msgspec.Raw):
        return bytes(value).decode()
    return orjson.dumps(value).decode()


# -- the ledger (processed_messages) ----------------------------------------------


async def claim(conn: Connection, messages: list[WriteMessage]) -> None:
    """Claim every message id with COPY: the cheapest way, for a batch that is all new.

    The outcome is the column's default, ``Outcome.APPLIED``. An id claimed before
    (or twice in the batch) raises ``asyncpg.UniqueViolationError``.
    """
    await conn.copy_records_to_table(
        "processed_messages", columns=["message_id"], records=[(m.id,) for m in messages]
    )


async def claim_again(conn: Connection, messages: list[WriteMessage]) -> set[str]:
    """Claim the ids not claimed before; returns those claimed now.

    Ids applied or discarded before are skipped. A dead letter is claimed again: a
    message dead-lettered earlier and produced back (after a fix) is applied.
    """
    rows = await conn.fetch(
        "INSERT INTO processed_messages (message_id) SELECT unnest($1::uuid[])"
        " ON CONFLICT (message_id) DO UPDATE SET outcome = $2, processed_at = now()"
        "  WHERE processed_messages.outcome = $3"
        " RETURNING message_id",
        list(dict.fromkeys(m.id for m in messages)),  # DO UPDATE may touch a row once
        Outcome.APPLIED,
        Outcome.DEAD_LETTER,
    )
    return {str(r["message_id"]) for r in rows}


async def record_outcomes(conn: Connection, outcomes: dict[str, Outcome]) -> None:
    """Set the outcome of claimed messages that were not simply applied."""
    if outcomes:
        await conn.execute(
            "UPDATE processed_messages p SET outcome = o.outcome"
            " FROM unnest($1::uuid[], $2::text[]) AS o (id, outcome) WHERE p.message_id = o.id",
            list(outcomes),
            list(outcomes.values()),
        )


async def record_dead_letters(db: Connection | asyncpg.Pool, message_ids: list[str]) -> None:
    """Record dead-lettered ids as ``Outcome.DEAD_LETTER``, so waiting clients learn it.

    An id applied meanwhile keeps its outcome. Ids that are not UUIDs (a message
    produced to the topic some other way) cannot be recorded: their letters are in
    the dead-letter topic all the same.
    """
    if not message_ids:
        return
    with contextlib.suppress(asyncpg.DataError):
        await db.execute(
            "INSERT INTO processed_messages (message_id, outcome)"
            " SELECT unnest($1::uuid[]), $2::text"
            " ON CONFLICT (message_id) DO NOTHING",
            message_ids,
            Outcome.DEAD_LETTER,
        )


# -- locked reads -------------------------------------------------------------------


class Locked(NamedTuple):
    """What the plan is given of the store (``consumers.plan.plan_batch``'s arguments)."""

    owners: dict[IdentifierKey, int]
    customers: dict[int, CustomerState]
    tombstones: dict[IdentifierKey, str]


async def lock_customers(
    conn: Connection, messages: list[WriteMessage], email_open_window: timedelta
) -> Locked:
    """The owners of the identifiers ``messages`` name, and their customers, locked,
    with what the plan needs to know of them; three statements at most.

    Reads what ``consumers.plan`` compares, and no more: the tombstones of the
    identifiers named (in the same statement as the owners), the external ids of the
    customers a merge may compare (``customers_to_compare``) that the batch does not
    name itself (``external_ids_named``), and the stored email opens of the windows
    the batch's opens fall in (``email_open_span``).
    """
    owners, customers, tombstones = await _lock_owners(conn, identifier_keys(messages))
    if not customers:
        return Locked(owners, customers, tombstones)
    compared = customers_to_compare(messages, owners)
    if compared:
        # Most customers a Segment call compares own the userId it names: no read for them.
        named = external_ids_named(owners, compared)
        for ref, value in named.items():
            customers[ref].external_ids.add(value)
        unknown = compared - named.keys()
        if unknown:
            for row in await external_ids(conn, unknown):
                customers[row["customer_id"]].external_ids.add(row["value"])
    span = email_open_span(messages, email_open_window)
    if span is not None:
        for row in await email_opens(conn, list(customers), *span):
            customers[row["customer_id"]].email_opens.append((row["occurred_at"], str(row["id"])))
    return Locked(owners, customers, tombstones)


async def _lock_owners(
    conn: Connection, keys: list[IdentifierKey]
) -> tuple[dict[IdentifierKey, int], dict[int, CustomerState], dict[IdentifierKey, str]]:
    """Owners of ``keys`` and their customers, locked ``FOR UPDATE`` in id order, and
    the tombstones of ``keys`` (rows without a customer).

    One statement is enough because an identifier only ever changes hands when its
    customer is deleted (erasure, or being merged away): if a concurrent transaction
    did that, the lock wait ends with the row gone and it is left out, so the key
    looks unowned here. Creating it then collides with the identifier's unique key
    and the batch is retried against the new owner (``ConcurrentChange``); a
    tombstone the erasure left, which this statement's snapshot does not show, is
    found by ``attach_identifiers`` (``ConcurrentChange`` too).
    """
    rows = await conn.fetch(
        """
        WITH k AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])
                                  AS k (team_id, kind, value)),
        locked AS (
            SELECT i.team_id AS key_team, i.kind, i.value, c.id, c.team_id,
                   c.attributes::text AS attributes,
                   c.attribute_times::text AS attribute_times,
                   c.first_seen_at, c.last_updated_at, NULL::uuid AS tombstone
              FROM k
              JOIN customer_identifiers i USING (team_id, kind, value)
              JOIN customers c ON c.id = i.customer_id
             ORDER BY c.id
               FOR UPDATE OF c
        )
        SELECT * FROM locked
        UNION ALL
        SELECT t.team_id, t.kind, t.value, NULL, NULL, NULL, NULL, NULL, NULL, t.message_id
          FROM k JOIN delete_tombstones t USING (team_id, kind, value)
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    tombstones = {
        (r["key_team"], r["kind"], r["value"]): str(r["tombstone"])
        for r in rows
        if r["tombstone"] is not None
    }
    if tombstones:
        rows = [r for r in rows if r["tombstone"] is None]
    owners = {(r["key_team"], r["kind"], r["value"]): r["id"] for r in rows}
    locked = {r["id"]: r for r in rows}
    customers = {
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
    return owners, customers, tombstones


async def external_ids(conn: Connection, customer_ids: set[int]) -> list[asyncpg.Record]:
    """Rows ``(customer_id, value)``: the external ids of the customers."""
    return await conn.fetch(
        "SELECT customer_id, value FROM customer_identifiers"
        " WHERE customer_id = ANY($1::bigint[]) AND kind = 'external_id'",
        sorted(customer_ids),
    )


async def email_opens(
    conn: Connection, customer_ids: list[int], after: datetime, before: datetime
) -> list[asyncpg.Record]:
    """Rows ``(customer_id, occurred_at, id)``: the customers' stored email opens in the
    span (from ``after`` inclusive)."""
    return await conn.fetch(
        "SELECT customer_id, occurred_at, id FROM events WHERE customer_id = ANY($1::bigint[])"
        " AND kind = 'email_open' AND occurred_at >= $2 AND occurred_at < $3",
        customer_ids,
        after,
        before,
    )


def identifier_keys(messages: list[WriteMessage]) -> list[IdentifierKey]:
    """Every identifier the batch names, sorted: the owners to read and lock (of a
    skip-identity write, only the first: the only one it applies by)."""
    keys = set()
    for m in messages:
        if m.skip_identity:
            first = first_identifier(m)
            if first is not None:
                keys.add(first)
        else:
            keys.update((m.team_id, kind, value) for kind, value in m.identifiers.items())
    return sorted(keys)


def customers_to_compare(
    messages: list[WriteMessage], owners: dict[IdentifierKey, int]
) -> set[int]:
    """The stored customers whose external ids the plan needs.

    External ids decide merges, and only a write naming several identifiers can
    merge customers: the customers such a write names are all the plan may compare.
    """
    return {
        owners[key]
        for m in messages
        if m.identifiers.several() and not m.skip_identity
        for kind, value in m.identifiers.items()
        if (key := (m.team_id, kind, value)) in owners
    }


def external_ids_named(owners: dict[IdentifierKey, int], customers: set[int]) -> dict[int, str]:
    """The external id of each of ``customers`` that owns one the batch names.

    A customer holds at most one external id, so that one is all it has: only the
    others' need reading (``customers_to_compare`` minus these).
    """
    return {
        ref: value
        for (_, kind, value), ref in owners.items()
        if kind == "external_id" and ref in customers
    }


def email_open_span(
    messages: list[WriteMessage], email_open_window: timedelta
) -> tuple[datetime, datetime] | None:
    """The span ``[start, end)`` of the fixed windows the batch's email opens fall in
    (``consumers.plan.email_open_window_of``): the stored opens they compete with
    (None: the batch has none, or the window is 0, which keeps every open)."""
    opens = [m.occurred_at for m in messages if m.event and m.event.kind == "email_open"]
    if not opens or not email_open_window:
        return None
    first = email_open_window_of(min(opens), email_open_window)
    last = email_open_window_of(max(opens), email_open_window)
    return EPOCH + first * email_open_window, EPOCH + (last + 1) * email_open_window


# -- writes -------------------------------------------------------------------------


async def delete_customers(conn: Connection, plan: Plan) -> None:
    """Erasure: tombstones on the identifiers (``plan.tombstones``, and every stored
    identifier of the erased customers) and the tracking-plan violations naming them,
    then the customers and their events, identifiers by ``ON DELETE CASCADE``."""
    customer_ids = plan.deleted
    if plan.tombstones or customer_ids:
        named = sorted(plan.tombstones.items())
        erased = sorted(plan.erasures.items())
        # One row per key (ON CONFLICT may touch a row once): the largest delete id.
        # The tracking-plan violations of the erased identifiers, accepted before the
        # delete, go with them: they hold the messages as sent, personal data included.
        await conn.execute(
            """
            WITH erased (team_id, kind, value, message_id) AS (
                SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::uuid[])
                UNION ALL
                SELECT i.team_id, i.kind, i.value, e.message_id
                  FROM unnest($5::bigint[], $6::uuid[]) AS e (customer_id, message_id)
                  JOIN customer_identifiers i USING (customer_id)
            ), tombstoned AS (
                INSERT INTO delete_tombstones AS t (team_id, kind, value, message_id)
                SELECT DISTINCT ON (team_id, kind, value) team_id, kind, value, message_id
                  FROM erased
                 ORDER BY team_id, kind, value, message_id DESC
                ON CONFLICT (team_id, kind, value) DO UPDATE SET message_id = excluded.message_id
                 WHERE t.message_id < excluded.message_id
            )
            DELETE FROM tracking_violations v
             USING erased e
             WHERE v.team_id = e.team_id
               AND v.message -> 'identifiers' @> jsonb_build_object(e.kind, e.value)
               AND accepted_at(v.message_id, v.received_at) < accepted_at(e.message_id, NULL)
            """,
            [k[0] for k, _ in named],
            [k[1] for k, _ in named],
            [k[2] for k, _ in named],
            [m for _, m in named],
            [c for c, _ in erased],
            [m for _, m in erased],
        )
    if customer_ids:
        # Events explicitly: the hot table has no foreign key.
        await conn.execute("DELETE FROM events WHERE customer_id = ANY($1::bigint[])", customer_ids)
        await conn.execute("DELETE FROM customers WHERE id = ANY($1::bigint[])", customer_ids)


async def create_customers(conn: Connection, created: list[CustomerState]) -> dict[int, int]:
    """Insert the new customers; returns their ids by plan ref (< 0)."""
    if not created:
        return {}
    rows = await conn.fetch(
        "SELECT nextval(pg_get_serial_sequence('customers', 'id')) AS id"
        " FROM generate_series(1, $1)",
        len(created),
    )
    ids = {customer.ref: row["id"] for customer, row in zip(created, rows, strict=True)}
    await conn.execute(
        """
        INSERT INTO customers (id, team_id, attributes, attribute_times,
                               first_seen_at, last_updated_at)
        SELECT id, team_id, a::jsonb, v::jsonb, f, l
          FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[],
                      $5::timestamptz[], $6::timestamptz[]) AS u (id, team_id, a, v, f, l)
        """,
        list(ids.values()),
        [c.team_id for c in created],
        [_dumps(c.attributes) for c in created],
        [_dumps(c.versions) for c in created],
        [c.first_seen_at for c in created],
        [c.last_updated_at for c in created],
    )
    return ids


async def merge_customers(conn: Connection, merges: list[Merge], ids: dict[int, int]) -> None:
    """Move identifiers and events to the survivors, record the merges, delete the merged."""
    if not merges:
        return
    merged = [m.merged_id for m in merges]
    survivors = [ids.get(m.survivor_ref, m.survivor_ref) for m in merges]
    # Memberships by insert, not update: survivor and merged may share a group.
    await conn.execute(
        """
        INSERT INTO customer_group_members (team_id, group_id, customer_id, joined_at)
        SELECT g.team_id, g.group_id, m.survivor, min(g.joined_at)
          FROM customer_group_members g
          JOIN unnest($1::bigint[], $2::bigint[]) AS m (merged, survivor)
            ON g.customer_id = m.merged
         GROUP BY 1, 2, 3
         ORDER BY 1, 2, 3
        ON CONFLICT (team_id, group_id, customer_id)
        DO UPDATE SET joined_at = least(customer_group_members.joined_at, excluded.joined_at)
        """,
        merged,
        survivors,
    )
    for table in ("customer_identifiers", "events"):
        await conn.execute(
            f"""
            UPDATE {table} t SET customer_id = m.survivor
              FROM unnest($1::bigint[], $2::bigint[]) AS m (merged, survivor)
             WHERE t.customer_id = m.merged
            """,
            merged,
            survivors,
        )
    await conn.execute(
        """
        INSERT INTO customer_merges (team_id, merged_customer_id, survivor_customer_id,
                                     message_id, merged_named_by, survivor_named_by)
        SELECT t, m, s, id, string_to_array(mb, ','), string_to_array(sb, ',')
          FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::uuid[], $5::text[],
                      $6::text[]) AS u (t, m, s, id, mb, sb)
        """,
        [m.team_id for m in merges],
        merged,
        survivors,
        [m.message_id for m in merges],
        # (an array of arrays of different lengths is no PostgreSQL array: joined)
        [",".join(m.merged_named_by) for m in merges],
        [",".join(m.survivor_named_by) for m in merges],
    )
    await conn.execute("DELETE FROM customers WHERE id = ANY($1::bigint[])", merged)


def identifiers_to_attach(plan: Plan, ids: dict[int, int]) -> list[tuple[int, str, str, int]]:
    """The plan's new identifiers, with ``ids`` (new customer ref -> stored id) applied,
    and each new customer's own ``customer_id`` identifier (its stored id as text):
    every stored customer is known by its id, and a new one has it only now."""
    identifiers = [(t, k, v, ids[ref] if ref < 0 else ref) for t, k, v, ref in plan.identifiers]
    identifiers += [(c.team_id, "customer_id", str(ids[c.ref]), ids[c.ref]) for c in plan.created]
    return identifiers


async def attach_identifiers(conn: Connection, plan: Plan, ids: dict[int, int]) -> None:
    """Insert ``identifiers_to_attach``; ``ConcurrentChange`` if one of them was
    created by another transaction since the owners were read, or was given a newer
    tombstone (a concurrent delete erased its customer while this batch waited for
    the lock: the write may have been accepted before that delete)."""
    identifiers = identifiers_to_attach(plan, ids)
    if not identifiers:
        return
    # The batch's own deletes wrote tombstones before this statement: those are known.
    known = {k: max(m, plan.tombstones.get(k, m)) for k, m in plan.tombstones_read.items()}
    known = plan.tombstones | known
    row = await conn.fetchrow(
        """
        WITH ins AS (
            INSERT INTO customer_identifiers (team_id, kind, value, customer_id)
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[])
            ON CONFLICT DO NOTHING
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM ins) AS inserted,
               EXISTS (SELECT FROM unnest($1, $2, $3, $5::uuid[]) AS k (team_id, kind, value, seen)
                         JOIN delete_tombstones t USING (team_id, kind, value)
                        WHERE k.seen IS NULL OR t.message_id > k.seen) AS tombstoned
        """,
        [i[0] for i in identifiers],
        [i[1] for i in identifiers],
        [i[2] for i in identifiers],
        [i[3] for i in identifiers],
        [known.get(i[:3]) for i in identifiers],
    )
    assert row is not None
    if row["inserted"] != len(identifiers) or row["tombstoned"]:
        raise ConcurrentChange("an identifier was created or erased concurrently")


async def update_attributes(conn: Connection, updated: list[CustomerState]) -> None:
    """Rewrite the stored customers the plan changed (attributes, versions, times)."""
    if updated:
        await conn.execute(
            """
            UPDATE customers c
               SET attributes = u.a::jsonb, attribute_times = u.v::jsonb,
                   first_seen_at = u.f, last_updated_at = u.l
              FROM unnest($1::bigint[], $2::text[], $3::text[],
                          $4::timestamptz[], $5::timestamptz[]) AS u (id, a, v, f, l)
             WHERE c.id = u.id
            """,
            [c.ref for c in updated],
            [_dumps(c.attributes) for c in updated],
            [_dumps(c.versions) for c in updated],
            [c.first_seen_at for c in updated],
            [c.last_updated_at for c in updated],
        )


async def upsert_groups(conn: Connection, groups: dict[GroupKey, GroupState]) -> None:
    """Create or update the batch's groups, in key order (they are shared rows).

    Each trait is written when its version (``consumers.rules.version``) is at
    least the stored one's: the stored group is combined in SQL, never read.
    """
    if not groups:
        return
    keys = sorted(groups)
    states = [groups[k] for k in keys]
    await conn.execute(
        """
        INSERT INTO customer_groups AS g (team_id, group_id, traits, trait_times,
                                          first_seen_at, last_updated_at)
        SELECT team_id, group_id, t::jsonb, v::jsonb, f, l
          FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                      $5::timestamptz[], $6::timestamptz[]) AS u (team_id, group_id, t, v, f, l)
        ON CONFLICT (team_id, group_id) DO UPDATE SET
            traits = g.traits || coalesce(
                (SELECT jsonb_object_agg(n.key, n.value) FROM jsonb_each(excluded.traits) n
                  WHERE excluded.trait_times ->> n.key COLLATE "C"
                        >= coalesce(g.trait_times ->> n.key, '')), '{}'),
            trait_times = g.trait_times || coalesce(
                (SELECT jsonb_object_agg(n.key, n.value) FROM jsonb_each(excluded.trait_times) n
                  WHERE n.value #>> '{}' COLLATE "C"
                        >= coalesce(g.trait_times ->> n.key, '')), '{}'),
            first_seen_at = least(g.first_seen_at, excluded.first_seen_at),
            last_updated_at = greatest(g.last_updated_at, excluded.last_updated_at)
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [_dumps(g.traits) for g in states],
        [_dumps(g.versions) for g in states],
        [g.first_seen_at for g in states],
        [g.last_updated_at for g in states],
    )


async def add_memberships(
    conn: Connection, memberships: dict[MembershipKey, datetime], ids: dict[int, int]
) -> None:
    """Put customers in groups (``ids``: new customer ref -> stored id); a customer
    already in the group keeps the earliest time it joined."""
    if not memberships:
        return
    rows = sorted(
        (team, group_id, ids.get(ref, ref), joined_at)
        for (team, group_id, ref), joined_at in memberships.items()
    )
    await conn.execute(
        """
        INSERT INTO customer_group_members (team_id, group_id, customer_id, joined_at)
        SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::timestamptz[])
        ON CONFLICT (team_id, group_id, customer_id)
        DO UPDATE SET joined_at = least(customer_group_members.joined_at, excluded.joined_at)
        """,
        *(list(column) for column in zip(*rows, strict=True)),
    )


async def ensure_event_types(
    conn: Connection, keys: list[tuple[int, str]]
) -> dict[tuple[int, str], int]:
    """Ids of the event types ``(team_id, name)``, creating the missing ones."""
    teams, names = [k[0] for k in keys], [k[1] for k in keys]
    await conn.execute(
        "INSERT INTO event_types (team_id, name)"
        " SELECT * FROM unnest($1::bigint[], $2::text[]) ON CONFLICT DO NOTHING",
        teams,
        names,
    )
    rows = await conn.fetch(
        "SELECT t.id, t.team_id, t.name FROM event_types t"
        " JOIN unnest($1::bigint[], $2::text[]) AS k (team_id, name) USING (team_id, name)",
        teams,
        names,
    )
    return {(r["team_id"], r["name"]): r["id"] for r in rows}


_EVENT_COLUMNS = """id, team_id, customer_id, event_type_id, kind, external_id, client_event_id,
                    order_id, source, body, properties, context, occurred_at, received_at,
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
    "context",
    "occurred_at",
    "received_at",
    "version_message_id",
]
_EVENT_ROWS = """
    SELECT id, team_id, customer_id, event_type_id, kind, external_id, client_event_id,
           order_id, source, body::jsonb, properties::jsonb, context::jsonb, occurred_at,
           received_at, id, clock_timestamp()
      FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
                  $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                  $13::timestamptz[], $14::timestamptz[])
        AS u (id, team_id, customer_id, event_type_id, kind, external_id, client_event_id,
              order_id, source, body, properties, context, occurred_at, received_at)
"""

# An event stored again: every column but its key and id from the new version.
_REPLACE_EVENT = """customer_id = excluded.customer_id, event_type_id = excluded.event_type_id,
    kind = excluded.kind, external_id = excluded.external_id, source = excluded.source,
    body = excluded.body, properties = excluded.properties, context = excluded.context,
    occurred_at = excluded.occurred_at, received_at = excluded.received_at,
    version_message_id = excluded.version_message_id, stored_at = excluded.stored_at"""


async def insert_events(
    conn: Connection,
    events: list[PlannedEvent],
    ids: dict[int, int],
    type_ids: dict[tuple[int, str], int],
) -> tuple[list[WriteMessage], list[StoredEvent]]:
    """Insert the planned events; returns those whose order id the store already held
    with an earlier message id, and the stored ones an earlier copy replaced.

    Four statements at most, by the event's unique key: plain events by COPY; events
    with an order id keep the earliest-accepted copy (smallest message id) whichever
    is applied first (the stored copies are locked and read first, so that the one
    replaced is known); client-identified events keep the later-accepted version (by
    message id). ``ConcurrentChange`` when a copy another transaction stored since
    the read was replaced.
    """
    groups: dict[str, list[list[Any]]] = defaultdict(lambda: [[] for _ in range(14)])
    for planned in events:
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
            _dumps_optional(e.properties),
            _dumps_optional(e.context),
            m.occurred_at,
            m.received_at,
        )
        for column, value in zip(groups[group], values, strict=True):
            column.append(value)
    refused: list[WriteMessage] = []
    displaced: list[StoredEvent] = []
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
        columns = groups["order"]
        stored = {
            (r["team_id"], r["order_id"]): StoredEvent(r["team_id"], str(r["id"]), r["occurred_at"])
            for r in await conn.fetch(
                "SELECT e.team_id, e.order_id, e.id, e.occurred_at FROM events e"
                " JOIN unnest($1::bigint[], $2::text[]) AS k (team_id, order_id)"
                "   USING (team_id, order_id)"
                " WHERE e.order_id IS NOT NULL ORDER BY 1, 2 FOR UPDATE OF e",
                columns[1],
                columns[7],
            )
        }
        rows = await conn.fetch(
            f"""
            INSERT INTO events ({_EVENT_COLUMNS}) {_EVENT_ROWS}
            ON CONFLICT (team_id, order_id) WHERE order_id IS NOT NULL
            DO UPDATE SET id = excluded.id, {_REPLACE_EVENT}
            -- The earliest-accepted copy is kept, whichever is applied first.
            WHERE excluded.id < events.id
            RETURNING id, team_id, order_id, xmax = 0 AS inserted
            """,
            *columns,
        )
        kept = {str(r["id"]) for r in rows}
        for r in rows:
            if not r["inserted"]:
                # Updated: it replaced a stored copy, which must be the one read.
                replaced = stored.get((r["team_id"], r["order_id"]))
                if replaced is None:
                    raise ConcurrentChange("a confirmation was stored concurrently")
                displaced.append(replaced)
        refused = [
            p.message
            for p in events
            if (e := p.message.event)
            and e.order_id
            and not e.client_event_id
            and p.message.id not in kept
        ]
    if "client" in groups:
        await conn.execute(
            f"""
            INSERT INTO events ({_EVENT_COLUMNS}) {_EVENT_ROWS}
            ON CONFLICT (team_id, client_event_id) WHERE client_event_id IS NOT NULL
            DO UPDATE SET {_REPLACE_EVENT}
            -- The later-accepted write wins, whatever its event time (document 004).
            WHERE events.version_message_id < excluded.version_message_id
            """,
            *groups["client"],
        )
    return refused, displaced


async def remove_events(conn: Connection, removed: list[StoredEvent]) -> None:
    """Delete stored events a rule now takes out (``Plan.removed_opens``)."""
    if removed:
        await conn.execute(
            "DELETE FROM events e USING unnest($1::bigint[], $2::uuid[]) AS r (team_id, id)"
            " WHERE e.team_id = r.team_id AND e.id = r.id",
            [r.team_id for r in removed],
            [r.id for r in removed],
        )


async def count_discarded(conn: Connection, discarded: Counter[tuple[int, Rule, date]]) -> None:
    """Add the batch's discards to the per team, rule and day counters."""
    if discarded:
        keys = sorted(discarded)  # fixed order: counters are shared rows
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
            [discarded[k] for k in keys],
        )
