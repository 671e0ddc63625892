"""One scenario of Segment-spec calls for every SDK, and what it must leave in PostgreSQL.

Each SDK test sends ``Scenario.calls()`` through its SDK, unchanged (the calls are
Segment's own JSON shapes, camelCase, as ``@segment/analytics-node`` takes them),
then ``verify`` reads the store. Every call names its ``messageId``, so its write is
found by id: the gateway's message id of a client-named call is
``client_message_id(team, messageId)``, which is also the stored event's id.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson

from schemas.messages import client_message_id
from tests.support import eventually

# Long enough for a few hundred messages through one consumer on a busy 2-core machine.
STORE_TIMEOUT_S = 60.0

TRAITS = {"email": "", "name": "Ada Lovelace", "plan": "pro", "logins": 3}
ORDER = {"total": 42.5, "currency": "EUR", "items": [{"sku": "a-1", "qty": 2}]}
PAGE: dict[str, Any] = {
    "category": "Docs",
    "name": "Install",
    "properties": {"path": "/docs/install"},
}
SCREEN: dict[str, Any] = {"name": "Home", "properties": {"tab": "feed"}}
GROUP_TRAITS = {"name": "Acme Inc", "employees": 40, "plan": "enterprise"}


class Scenario:
    """The ids of one run: a user known by id, email and an anonymous id, a group, and
    an anonymous visitor (``previous_id``) that an alias call ties to the user."""

    def __init__(self, bulk: int = 300) -> None:
        self.bulk = bulk
        self.tag = tag = uuid.uuid4().hex[:10]
        self.user_id = f"user-{tag}"
        self.anonymous_id = f"anon-{tag}"
        self.previous_id = f"visitor-{tag}"
        self.email = f"ada-{tag}@example.com"
        self.group_id = f"group-{tag}"

    def message_id(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def calls(self) -> list[dict[str, Any]]:
        """``singles()``, then ``bulk_calls()``."""
        return self.singles() + self.bulk_calls()

    def singles(self) -> list[dict[str, Any]]:
        """Every call type once, and a resend of one of them."""
        user = {"userId": self.user_id}
        order = {"type": "track", **user, "event": "Order Completed", "properties": ORDER}
        singles: list[dict[str, Any]] = [
            {
                "type": "identify",
                **user,
                "anonymousId": self.anonymous_id,
                "traits": {**TRAITS, "email": self.email},
            },
            order,
            {"type": "page", **user, **PAGE},
            {"type": "screen", **user, **SCREEN},
            {"type": "group", **user, "groupId": self.group_id, "traits": GROUP_TRAITS},
            {
                "type": "track",
                "anonymousId": self.previous_id,
                "event": "Browsed",
                "properties": {"sku": "a-1"},
            },
            {"type": "alias", "previousId": self.previous_id, **user},
        ]
        named = [{**call, "messageId": self.message_id(str(n))} for n, call in enumerate(singles)]
        # A client's retry of the order: the same messageId, stored once.
        named.append(named[1])
        # Fresh copies: SDKs may add to the dicts they are given.
        return list(orjson.loads(orjson.dumps(named)))

    def bulk_calls(self) -> list[dict[str, Any]]:
        """``bulk`` tracks of the user."""
        return [
            {
                "type": "track",
                "userId": self.user_id,
                "event": "Bulk Item",
                "properties": {"i": i},
                "messageId": self.message_id(f"bulk-{i}"),
            }
            for i in range(self.bulk)
        ]


def store_ids(team_id: int, calls: list[dict[str, Any]]) -> dict[str, str]:
    """The gateway's message id (an event's id too) of each call, by its messageId."""
    return {c["messageId"]: client_message_id(team_id, c["messageId"]) for c in calls}


async def applied(db: asyncpg.Pool, message_ids: list[str]) -> None:
    """Wait until the consumers are done with every message; fail on any not applied."""

    async def outcomes() -> dict[str, str] | None:
        rows = await db.fetch(
            "SELECT message_id::text AS id, outcome FROM processed_messages"
            " WHERE message_id = ANY($1::uuid[])",
            message_ids,
        )
        return {r["id"]: r["outcome"] for r in rows} if len(rows) == len(message_ids) else None

    try:
        found = await eventually(outcomes, timeout=STORE_TIMEOUT_S, interval=0.2)
    except AssertionError:
        rows = await db.fetch(
            "SELECT message_id::text AS id FROM processed_messages"
            " WHERE message_id = ANY($1::uuid[])",
            message_ids,
        )
        raise AssertionError(
            f"{len(message_ids) - len(rows)} of {len(message_ids)} messages never reached"
            f" the store within {STORE_TIMEOUT_S}s"
        ) from None
    failed = {k: v for k, v in found.items() if v != "applied"}
    assert not failed, f"messages not applied: {failed}"


async def customer_holding(db: asyncpg.Pool, team_id: int, kind: str, value: str) -> Any:
    """The customer row holding identifier ``kind``=``value``, with all its identifiers."""
    row = await db.fetchrow(
        "SELECT c.id, c.attributes::text AS attributes,"
        "       (SELECT array_agg(o.kind || ':' || o.value) FROM customer_identifiers o"
        "         WHERE o.customer_id = c.id) AS identifiers"
        "  FROM customer_identifiers i JOIN customers c ON c.id = i.customer_id"
        " WHERE i.team_id = $1 AND i.kind = $2 AND i.value = $3",
        team_id,
        kind,
        value,
    )
    assert row is not None, f"no customer of team {team_id} holds {kind} {value!r}"
    return row


async def stored_events(db: asyncpg.Pool, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The stored events with these ids: customer, type name, body and context."""
    rows = await db.fetch(
        "SELECT e.id::text AS id, e.customer_id, t.name, e.body::text AS body,"
        "       e.context::text AS context"
        "  FROM events e JOIN event_types t ON t.id = e.event_type_id"
        " WHERE e.id = ANY($1::uuid[])",
        ids,
    )
    return {
        r["id"]: {
            "customer_id": r["customer_id"],
            "name": r["name"],
            "body": orjson.loads(r["body"]),
            "context": orjson.loads(r["context"]) if r["context"] else None,
        }
        for r in rows
    }


async def identified_user(
    db: asyncpg.Pool, team_id: int, scenario: Scenario, others: list[tuple[str, str]]
) -> Any:
    """The user's customer row, checked to hold its email and ``others`` (kind, value)
    identifiers, and the identify's ``TRAITS`` as attributes."""
    user = await customer_holding(db, team_id, "external_id", scenario.user_id)
    held = set(user["identifiers"])
    for kind, value in [("email", scenario.email), *others]:
        assert f"{kind}:{value}" in held, f"user does not hold {kind} {value}: {held}"
    assert_contains(
        orjson.loads(user["attributes"]),
        {k: v for k, v in TRAITS.items() if k != "email"},
        "identify traits in customers.attributes",
    )
    return user


def assert_contains(found: dict[str, Any], expected: dict[str, Any], what: str) -> None:
    missing = {k: v for k, v in expected.items() if found.get(k) != v}
    assert not missing, f"{what}: expected {missing}, stored {found}"


def assert_sent_by(event: dict[str, Any], library: str) -> None:
    context = event["context"] or {}
    assert (context.get("library") or {}).get("name") == library, (
        f"{event['name']}: context.library is not {library!r}: {context}"
    )


async def verify(db: asyncpg.Pool, team_id: int, scenario: Scenario, library: str) -> None:
    """Everything ``scenario.calls()``, sent by ``library``, must leave in the store."""
    calls = scenario.calls()
    ids = store_ids(team_id, calls)
    await applied(db, list(dict.fromkeys(ids.values())))

    user = await identified_user(
        db,
        team_id,
        scenario,
        # The alias tied the earlier visitor to the user.
        [("anonymous_id", scenario.anonymous_id), ("anonymous_id", scenario.previous_id)],
    )

    events = await stored_events(db, list(ids.values()))
    order, page, screen, browsed = (events.get(ids[scenario.message_id(n)]) for n in "1235")
    assert order and page and screen and browsed, f"events missing: {events}"
    assert order["name"] == "Order Completed" and order["body"] == ORDER, order
    assert page["name"] == "page", page
    assert_contains(page["body"], {**PAGE["properties"], "name": "Install"}, "page body")
    assert page["body"].get("category") == "Docs", page
    assert screen["name"] == "screen", screen
    assert_contains(screen["body"], {**SCREEN["properties"], "name": "Home"}, "screen body")
    assert browsed["name"] == "Browsed", browsed
    for event in (order, page, screen, browsed):
        assert event["customer_id"] == user["id"], f"{event} is not the user's ({user['id']})"
        assert_sent_by(event, library)

    bulk = [events.get(ids[scenario.message_id(f"bulk-{i}")]) for i in range(scenario.bulk)]
    assert all(bulk), f"{sum(not e for e in bulk)} of {scenario.bulk} bulk events missing"
    assert sorted(e["body"]["i"] for e in bulk if e) == list(range(scenario.bulk))
    assert {e["customer_id"] for e in bulk if e} == {user["id"]}

    # The resent order was stored once.
    orders = await db.fetchval(
        "SELECT count(*) FROM events e JOIN event_types t ON t.id = e.event_type_id"
        " WHERE e.team_id = $1 AND t.name = 'Order Completed'",
        team_id,
    )
    assert orders == 1, f"{orders} 'Order Completed' events stored for one messageId"

    group = await db.fetchrow(
        "SELECT traits::text AS traits FROM customer_groups WHERE team_id = $1 AND group_id = $2",
        team_id,
        scenario.group_id,
    )
    assert group is not None, f"no customer_groups row for {scenario.group_id}"
    assert orjson.loads(group["traits"]) == GROUP_TRAITS, group
    members = await db.fetch(
        "SELECT customer_id FROM customer_group_members WHERE team_id = $1 AND group_id = $2",
        team_id,
        scenario.group_id,
    )
    assert [m["customer_id"] for m in members] == [user["id"]], members
