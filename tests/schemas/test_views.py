"""The analysts' views (migration 0009): each answers its question on a store the real
gateway and consumers built, merges and an erasure included; team-scoped queries use
indexes; every table, view and column has a comment."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from admin.teams import create_team
from schemas.migrate import migrate
from tests.conftest import Team, scratch_database
from tests.support import customer_holding

ANA, BO, DEE = "ana@x.io", "bo@x.io", "dee@x.io"
PHONE, OTHER_PHONE = "+14155550100", "+14155550111"


@dataclass(frozen=True)
class Store:
    """A team's store after two merges in a chain (bo's customer into the phone's, then
    the phone's into ana's) and an erased customer that had absorbed another."""

    team: Team
    other: Team  # another team, with an event of the same name on the same day
    ana: int  # the survivor of the chain
    phone: int  # merged into ana's by a customer write
    bo: int  # merged into the phone's by a purchase event
    dee: int  # erased, after absorbing the other phone's customer
    other_phone: int
    first_view: str  # event ids: sent for the phone's customer
    late_view: str  # for bo's customer, 23:30 at -02:00, so 2 May in UTC
    purchase: str  # the event that merged bo's customer
    profile_write: str  # the customer write that merged the phone's customer
    dee_write: str  # the customer write that merged the other phone's customer into dee's


async def _send(http: httpx.AsyncClient, team: Team, **item: Any) -> str:
    """One batch item through the gateway, applied by the consumer; its message id."""
    answer = await http.post(
        "/api/1.0/batch?wait=true", json={"items": [item]}, headers=team.headers
    )
    assert answer.status_code == 200, answer.text
    [result] = answer.json()["items"]
    assert result["outcome"] == "applied", result
    return str(result["id"])


async def _holder(db: asyncpg.Pool, team: Team, kind: str, value: str) -> int:
    customer = await customer_holding(db, team.id, kind, value)
    assert customer is not None, (kind, value)
    return customer


async def _new_team(db: asyncpg.Pool, name: str) -> Team:
    async with db.acquire() as conn:
        team_id, key = await create_team(conn, f"{name}-{uuid.uuid4().hex[:12]}")
    return Team(team_id, key)


async def _team_rows(db: asyncpg.Pool, columns: str, view: str, team: Team) -> list[Any]:
    """``columns`` of ``view`` for ``team``, as an analyst asks: ``WHERE team_id = ...``."""
    return await db.fetch(f"SELECT {columns} FROM {view} WHERE team_id = $1", team.id)


@pytest.fixture(scope="module")
async def store(gateway: str, db: asyncpg.Pool) -> AsyncIterator[Store]:
    team, other = await _new_team(db, "views"), await _new_team(db, "views-other")
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:

        async def send(**item: Any) -> str:
            return await _send(http, team, **item)

        await send(
            type="customer",
            email=ANA,
            attributes={"name": "Ana", "plan": "free"},
            occurredAt="2026-05-01T09:00:00Z",
        )
        first_view = await send(
            type="event", phone=PHONE, eventName="view", occurredAt="2026-05-01T09:05:00Z"
        )
        await send(
            type="customer",
            email=BO,
            customerExternalId="u-1",
            attributes={"plan": "gold"},
            occurredAt="2026-05-01T09:10:00Z",
        )
        late_view = await send(
            type="event", email=BO, eventName="view", occurredAt="2026-05-01T23:30:00-02:00"
        )
        ana, phone, bo = (
            await _holder(db, team, "email", ANA),
            await _holder(db, team, "phone", PHONE),
            await _holder(db, team, "email", BO),
        )
        # Names bo's and the phone's customers: bo's (younger) merges into the phone's.
        purchase = await send(
            type="event",
            email=BO,
            phone=PHONE,
            eventName="purchase",
            occurredAt="2026-05-02T08:00:00Z",
        )
        # Names ana's and the phone's: the phone's (younger) merges into ana's.
        profile_write = await send(
            type="customer",
            email=ANA,
            phone=PHONE,
            attributes={"plan": "pro"},
            occurredAt="2026-05-02T09:00:00Z",
        )
        await send(type="event", email=ANA, eventName="view", occurredAt="2026-05-01T10:00:00Z")

        await send(type="customer", email=DEE, occurredAt="2026-05-01T11:00:00Z")
        await send(type="customer", phone=OTHER_PHONE, occurredAt="2026-05-01T12:00:00Z")
        dee, other_phone = (
            await _holder(db, team, "email", DEE),
            await _holder(db, team, "phone", OTHER_PHONE),
        )
        dee_write = await send(type="customer", email=DEE, phone=OTHER_PHONE)
        erased = await http.delete(f"/api/1.0/customer/{DEE}?wait=true", headers=team.headers)
        assert erased.status_code == 200, erased.text

        await _send(
            http,
            other,
            type="event",
            email=ANA,
            eventName="view",
            occurredAt="2026-05-01T09:00:00Z",
        )
    yield Store(
        team=team,
        other=other,
        ana=ana,
        phone=phone,
        bo=bo,
        dee=dee,
        other_phone=other_phone,
        first_view=first_view,
        late_view=late_view,
        purchase=purchase,
        profile_write=profile_write,
        dee_write=dee_write,
    )


async def test_a_customer_has_all_its_identifiers_and_current_traits(
    db: asyncpg.Pool, store: Store
) -> None:
    # As docs/store.md finds one: by any identifier, a merged-away id included.
    by_identifier = (
        "SELECT * FROM customer_profiles WHERE team_id = $1 AND customer_id = ("
        " SELECT customer_id FROM customer_identifiers"
        " WHERE team_id = $1 AND kind = $2 AND value = $3)"
    )
    found = [
        await db.fetchrow(by_identifier, store.team.id, kind, value)
        for kind, value in [("email", BO), ("phone", PHONE), ("customer_id", str(store.bo))]
    ]
    profile = found[0]
    assert profile is not None
    assert all(row is not None and tuple(row) == tuple(profile) for row in found)
    assert profile["customer_id"] == store.ana
    assert profile["emails"] == [ANA, BO]  # in the order first stored
    assert profile["phones"] == [PHONE]
    assert profile["external_id"] == "u-1"
    assert profile["anonymous_ids"] == []
    assert profile["merged_customer_ids"] == sorted([store.phone, store.bo])
    # Per trait, the newest event time: pro (2 May) over gold (bo's) and free.
    assert orjson.loads(profile["attributes"]) == {"name": "Ana", "plan": "pro"}
    assert profile["first_seen_at"] == datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    # Merged-away and erased customers have no profile.
    rows = await _team_rows(db, "customer_id", "customer_profiles", store.team)
    assert [r["customer_id"] for r in rows] == [store.ana]


async def test_events_of_merged_away_customers_show_the_surviving_customer(
    db: asyncpg.Pool, store: Store
) -> None:
    columns = "event_id::text, customer_id, event_type, occurred_on"
    rows = await _team_rows(db, columns, "customer_events", store.team)
    events = {r["event_id"]: (r["customer_id"], r["event_type"], r["occurred_on"]) for r in rows}
    # Sent for the phone's customer (one merge since) and bo's (a chain of two).
    assert events[store.first_view] == (store.ana, "view", date(2026, 5, 1))
    assert events[store.late_view] == (store.ana, "view", date(2026, 5, 2))
    assert events[store.purchase] == (store.ana, "purchase", date(2026, 5, 2))
    assert len(events) == 4  # with ana's own view; the erased customer had none


async def test_daily_counts_by_team_and_type_on_utc_days(db: asyncpg.Pool, store: Store) -> None:
    columns = "day, event_type, events"
    rows = await _team_rows(db, columns, "daily_event_counts", store.team)
    assert {(r["day"], r["event_type"]): r["events"] for r in rows} == {
        (date(2026, 5, 1), "view"): 2,
        (date(2026, 5, 2), "view"): 1,  # 23:30 at -02:00 on 1 May
        (date(2026, 5, 2), "purchase"): 1,
    }
    other = await _team_rows(db, columns, "daily_event_counts", store.other)
    assert [tuple(r) for r in other] == [(date(2026, 5, 1), "view", 1)]


async def test_merges_with_their_reason_and_current_customer(
    db: asyncpg.Pool, store: Store
) -> None:
    columns = (
        "merged_customer_id, survivor_customer_id, current_customer_id, message_id::text,"
        " event_type"
    )
    rows = await _team_rows(db, columns, "customer_merge_history", store.team)
    merges = {r["merged_customer_id"]: tuple(r)[1:] for r in rows}
    assert merges == {
        # Its survivor was merged away since: the current customer is the chain's end.
        store.bo: (store.phone, store.ana, store.purchase, "purchase"),
        # Merged by a customer write, which stores no event.
        store.phone: (store.ana, store.ana, store.profile_write, None),
        # Its survivor was erased, and it with it.
        store.other_phone: (store.dee, None, store.dee_write, None),
    }


# -- plans: team-scoped queries use indexes --------------------------------------------

# A store of 20 teams, large enough that the planner prefers indexes to reading a
# whole table, made in SQL (the plans depend on sizes and statistics, not on who wrote).
_FILL = [
    "INSERT INTO teams (name) SELECT 'plan-' || n FROM generate_series(1, 20) n",
    "INSERT INTO event_types (team_id, name)"
    " SELECT t.id, 'type-' || n FROM teams t, generate_series(1, 10) n",
    "INSERT INTO customers (id, team_id, first_seen_at, last_updated_at)"
    " SELECT t.id * 100000 + n, t.id, '2026-05-01', '2026-05-01'"
    " FROM teams t, generate_series(1, 1000) n",
    "INSERT INTO customer_identifiers (team_id, kind, value, customer_id)"
    " SELECT team_id, 'customer_id', id::text, id FROM customers"
    " UNION ALL SELECT team_id, 'email', id || '@example.com', id FROM customers",
    "INSERT INTO events (id, team_id, customer_id, event_type_id, occurred_at, received_at,"
    "                    version_message_id)"
    " SELECT u, team, team * 100000 + 1 + n % 1000,"
    "        (SELECT min(id) FROM event_types y WHERE y.team_id = team) + n % 10,"
    "        timestamptz '2026-05-01' + n * interval '15 minutes', now(), u"
    "   FROM (SELECT gen_random_uuid() AS u, t.id AS team, n"
    "           FROM teams t, generate_series(1, 3000) n) s",
    "INSERT INTO customer_merges (team_id, merged_customer_id, survivor_customer_id, message_id)"
    " SELECT t.id, t.id * 100000 + 2000 + n, t.id * 100000 + n, gen_random_uuid()"
    " FROM teams t, generate_series(1, 50) n",
]
_TABLES = ["teams", "event_types", "customers", "customer_identifiers", "events", "customer_merges"]


@pytest.fixture(scope="module")
async def planned(service_urls: tuple[str, str]) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a scratch database holding ``_FILL``, vacuumed and analysed."""
    async with scratch_database(service_urls[1], f"ingest_views_{uuid.uuid4().hex[:8]}") as url:
        await migrate(url)
        conn = await asyncpg.connect(url)
        try:
            for statement in _FILL:
                await conn.execute(statement)
            # Vacuumed: index-only scans need the visibility map that autovacuum keeps.
            await conn.execute(f"VACUUM ANALYZE {', '.join(_TABLES)}")
            yield conn
        finally:
            await conn.close()


def _scans(plan: dict[str, Any], table: str = "") -> Iterator[tuple[str, str, str]]:
    """(node type, table, index) of every scan in an EXPLAIN (FORMAT JSON) plan (a
    Bitmap Index Scan's table is its Bitmap Heap Scan's)."""
    table = plan.get("Relation Name", table)
    if "Relation Name" in plan or "Index Name" in plan:
        yield plan["Node Type"], table, plan.get("Index Name", "")
    for child in plan.get("Plans", []):
        yield from _scans(child, table)


_LARGE = {"customers", "customer_identifiers", "events", "customer_merges"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("SELECT * FROM customer_profiles WHERE team_id = 5", ("Index", "customers_team_id_idx")),
        ("SELECT * FROM customer_events WHERE team_id = 5", ("Index", "events_pkey")),
        (
            "SELECT * FROM customer_events WHERE team_id = 5 AND occurred_on >= '2026-05-25'",
            ("Index", "events_team_day_idx"),
        ),
        (
            "SELECT * FROM daily_event_counts WHERE team_id = 5",
            ("Index Only Scan", "events_team_day_idx"),
        ),
        (
            "SELECT * FROM daily_event_counts WHERE team_id = 5 AND day >= '2026-05-25'",
            ("Index Only Scan", "events_team_day_idx"),
        ),
        (
            "SELECT * FROM customer_merge_history WHERE team_id = 5",
            ("Index", "customer_merges_team_idx"),
        ),
    ],
)
async def test_team_scoped_queries_use_indexes(
    planned: asyncpg.Connection, query: str, expected: tuple[str, str]
) -> None:
    [plan] = orjson.loads(await planned.fetchval(f"EXPLAIN (FORMAT JSON) {query}"))
    scans = list(_scans(plan["Plan"]))
    assert not [s for s in scans if s[0] == "Seq Scan" and s[1] in _LARGE], scans
    node, index = expected
    assert any(node in s[0] and s[2] == index for s in scans), scans


# -- comments ----------------------------------------------------------------------------


async def test_every_table_view_and_column_has_a_comment(db: asyncpg.Pool) -> None:
    missing = await db.fetch(
        """
        SELECT c.relname, a.attname
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace
          LEFT JOIN pg_attribute a
                 ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
           AND (obj_description(c.oid, 'pg_class') IS NULL
                OR col_description(c.oid, a.attnum) IS NULL)
        """
    )
    assert not [tuple(r) for r in missing]
