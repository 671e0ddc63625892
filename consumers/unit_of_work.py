"""Apply a batch of canonical writes in one PostgreSQL transaction: the unit of work.

One job: the order of a batch's transaction. It gathers what the plan needs, asks
``consumers.plan`` once for the batch's decisions and writes them; what to write
is the plan's alone, and every statement is in ``consumers.statements``. Per
batch, whatever its size, about a dozen statements run:

1. claim the message ids in ``processed_messages`` (a redelivered id is skipped),
   then record the tracking-plan violations the messages carry and leave the
   blocked ones out (``consumers.violations``);
2. lock the customers: read the owners of every identifier the batch names and
   lock those customers (``FOR UPDATE``, in id order), so that a concurrent merge
   or delete in another consumer is waited for and seen, never overwritten; then
   read what the plan needs of them: the tombstones deletes left on those
   identifiers (in the same statement), the email opens of the windows the batch's
   opens fall in, and the external ids of the customers a merge may compare
   (``statements.lock_customers``);
3. plan: ``consumers.plan.plan_batch`` decides in Python, in one call, what to
   create, merge, update, delete, store and discard;
4. write the plan, set-based, and the ledger's outcomes.

Correctness under concurrency comes from PostgreSQL: the unique key on identifiers
makes two consumers that create the same identifier at once collide, and the loser's
transaction is retried (as are deadlocks and serialization failures) by the apply
step (``consumers.steps``).

Imports ``consumers.plan``, ``consumers.statements``, ``consumers.violations``,
``runtime.pg`` and ``schemas``.
"""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from consumers import statements, violations
from consumers.plan import Plan, plan_batch
from runtime.pg import Connection
from schemas.messages import WriteMessage


class EventTypeCache:
    """Event type ids by (team, name). Filled only after a commit, so never stale."""

    def __init__(self) -> None:
        self.ids: dict[tuple[int, str], int] = {}


class _Redelivered(Exception):
    """A message id of the batch was claimed before: claim again, skipping it."""


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
    type_ids: dict[tuple[int, str], int] = {}
    async with conn.transaction():
        todo = await _claim(conn, messages, first_try)
        todo = await violations.record(conn, todo)  # tracking plans: blocked ones left out
        if not todo:
            return None
        locked = await statements.lock_customers(conn, todo, email_open_window)
        decided = plan_batch(
            todo, locked.owners, locked.customers, email_open_window, locked.tombstones
        )
        type_ids = await _write(conn, decided, event_types)
    event_types.ids.update(type_ids)
    return decided


async def _claim(
    conn: Connection, messages: list[WriteMessage], first_try: bool
) -> list[WriteMessage]:
    """Messages not applied before, each once, in batch order.

    On the first try every id is claimed by COPY: almost every batch is new, and
    COPY skips ``ON CONFLICT``'s check and the returned ids. A redelivered id
    breaks the unique key; ``apply_batch`` then rolls back and claims again with
    ``ON CONFLICT`` (``statements.claim_again``), which skips the ids applied before.
    """
    if first_try:
        try:
            await statements.claim(conn, messages)
        except asyncpg.UniqueViolationError as exc:
            raise _Redelivered from exc
        return messages
    fresh = await statements.claim_again(conn, messages)
    todo = []
    for message in messages:
        if message.id in fresh:
            fresh.discard(message.id)
            todo.append(message)
    return todo


async def _write(
    conn: Connection, decided: Plan, event_types: EventTypeCache
) -> dict[tuple[int, str], int]:
    """Write the plan, in this order; returns the ids of the event types it used."""
    await statements.delete_customers(conn, decided)
    ids = await statements.create_customers(conn, decided.created)
    await statements.merge_customers(conn, decided.merges, ids)
    await statements.attach_identifiers(conn, decided, ids)
    await statements.update_attributes(conn, decided.updated)
    await statements.upsert_groups(conn, decided.groups)
    await statements.add_memberships(conn, decided.memberships, ids)
    type_ids: dict[tuple[int, str], int] = {}
    if decided.events:
        wanted = {
            (p.message.team_id, p.message.event.name) for p in decided.events if p.message.event
        }
        type_ids = {k: event_types.ids[k] for k in wanted if k in event_types.ids}
        missing = sorted(wanted - type_ids.keys())
        if missing:
            type_ids.update(await statements.ensure_event_types(conn, missing))
        refused, displaced = await statements.insert_events(conn, decided.events, ids, type_ids)
        decided.discard_stored_confirmations(refused, displaced)
    await statements.remove_events(conn, decided.removed_opens)
    await statements.count_discarded(conn, decided.discarded)
    await statements.record_outcomes(conn, decided.outcomes)
    return type_ids
