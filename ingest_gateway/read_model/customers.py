"""Reads from the PostgreSQL store. Every query is scoped to the caller's team."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from runtime.pg import Db

# The customer's primary email: the oldest email identifier it holds.
_PRIMARY_EMAIL = """
    (SELECT e.value FROM customer_identifiers e
      WHERE e.customer_id = c.id AND e.kind = 'email'
      ORDER BY e.created_at, e.value LIMIT 1)
"""


def flat_customer(attributes: Any, email: str | None) -> dict[str, Any]:
    """The customer as one flat object of its attributes, as the customer API shows it."""
    attrs = orjson.loads(attributes) if isinstance(attributes, str | bytes) else attributes
    flat: dict[str, Any] = {"email": email} if email else {}
    flat.update(attrs)
    if email:
        flat["email"] = email
    return flat


async def customer_by_identifier(
    db: asyncpg.Pool | asyncpg.Connection, team_id: int, kind: str, value: str
) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"""
        SELECT c.id, c.attributes::text AS attributes, c.first_seen_at, c.last_updated_at,
               {_PRIMARY_EMAIL} AS email
          FROM customer_identifiers i
          JOIN customers c ON c.id = i.customer_id AND c.team_id = i.team_id
         WHERE i.team_id = $1 AND i.kind = $2 AND i.value = $3
        """,
        team_id,
        kind,
        value,
    )


async def existing_identifiers(
    db: asyncpg.Pool, team_id: int, kind: str, values: list[str]
) -> set[str]:
    rows = await db.fetch(
        "SELECT value FROM customer_identifiers"
        " WHERE team_id = $1 AND kind = $2 AND value = ANY($3::text[])",
        team_id,
        kind,
        values,
    )
    return {r["value"] for r in rows}


async def count_customers(db: asyncpg.Pool, team_id: int) -> int:
    return int(await db.fetchval("SELECT count(*) FROM customers WHERE team_id = $1", team_id))


async def list_customers(
    db: asyncpg.Pool, team_id: int, offset: int, limit: int
) -> list[asyncpg.Record]:
    # Ordered by id, which only grows: pages stay stable while customers are added.
    return await db.fetch(
        f"""
        SELECT c.id, c.attributes::text AS attributes, {_PRIMARY_EMAIL} AS email
          FROM customers c
         WHERE c.team_id = $1
         ORDER BY c.id
         OFFSET $2 LIMIT $3
        """,
        team_id,
        offset,
        limit,
    )


async def customers_by_email(db: Db, team_id: int, emails: list[str]) -> dict[str, dict[str, Any]]:
    """The flat customers of ``emails``, by email (the emails no customer has are left out)."""
    rows = await db.fetch(
        "SELECT i.value, c.attributes::text AS attributes"
        "  FROM customer_identifiers i JOIN customers c ON c.id = i.customer_id"
        " WHERE i.team_id = $1 AND i.kind = 'email' AND i.value = ANY($2::text[])",
        team_id,
        emails,
    )
    return {r["value"]: flat_customer(r["attributes"], r["value"]) for r in rows}
