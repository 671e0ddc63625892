"""POST /api/1.0/batch on the real services: per-item results, limits, rows in PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import orjson

from runtime.settings import Settings
from tests.conftest import Team
from tests.support import eventually


def email() -> str:
    return f"batch-{uuid.uuid4().hex[:10]}@example.com"


async def stored_event_ids(db: asyncpg.Pool, ids: list[str]) -> set[str]:
    rows = await db.fetch("SELECT id::text AS id FROM events WHERE id = ANY($1::uuid[])", ids)
    return {r["id"] for r in rows}


async def test_events_and_customers_in_one_batch_end_as_rows(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    items = [
        {"type": "customer", "email": address, "attributes": {"name": "George", "plan": "gold"}},
        {
            "type": "event",
            "email": address,
            "eventName": "purchase",
            "externalId": "order-1",
            "body": {"amount": 12.5, "items": [{"sku": "a"}]},
        },
        {
            "type": "event",
            "email": address.upper(),
            "eventName": "purchase",
            "body": {"amount": 3},
            "occurredAt": "2024-05-01T12:00:00Z",
        },
    ]
    response = await http.post("/api/1.0/batch", json={"items": items}, headers=team.headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["accepted"] == 3 and answer["rejected"] == 0
    assert [r["index"] for r in answer["items"]] == [0, 1, 2]
    assert all(
        r["status"] == "accepted" and uuid.UUID(r["id"]).version == 7 for r in answer["items"]
    )
    event_ids = [answer["items"][1]["id"], answer["items"][2]["id"]]

    async def both_stored() -> set[str] | None:
        found = await stored_event_ids(db, event_ids)
        return found if len(found) == 2 else None

    await eventually(both_stored)
    rows = await db.fetch(
        "SELECT e.external_id, e.body::text AS body, e.occurred_at, t.name,"
        "       c.attributes::text AS attributes"
        "  FROM events e JOIN event_types t ON t.id = e.event_type_id"
        "  JOIN customers c ON c.id = e.customer_id"
        " WHERE e.id = ANY($1::uuid[]) ORDER BY e.occurred_at DESC",
        event_ids,
    )
    # One customer (the email is case-insensitive) with its attributes and both events.
    assert {r["name"] for r in rows} == {"purchase"}
    assert rows[0]["external_id"] == "order-1"
    assert orjson.loads(rows[0]["body"]) == {"amount": 12.5, "items": [{"sku": "a"}]}
    assert rows[1]["occurred_at"].isoformat() == "2024-05-01T12:00:00+00:00"
    assert orjson.loads(rows[0]["attributes"]) == {"name": "George", "plan": "gold"}
    assert rows[0]["attributes"] == rows[1]["attributes"]


async def test_a_bad_item_does_not_fail_the_others(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team, settings: Settings
) -> None:
    good = {"type": "event", "email": email(), "eventName": "signup", "body": {}}
    too_deep: dict[str, Any] = {}
    for _ in range(settings.max_json_depth):
        too_deep = {"d": too_deep}
    items = [
        good,
        {"type": "event", "email": "not-an-email", "eventName": "signup"},
        {"type": "event", "email": email()},  # no event name
        {"type": "event", "eventName": "signup"},  # no customer
        {"type": "gift", "email": email()},
        {"type": "event", "email": email(), "eventName": "x", "body": {"s": "a\u0000b"}},
        {"type": "event", "email": email(), "eventName": "x", "occurredAt": "2024-05-01T12:00:00"},
        "not an object",
        {"type": "customer", "email": email(), "attributes": {"deep": [[[[[[[[]]]]]]]]}},
        {"type": "event", "email": email(), "eventName": "x", "body": too_deep},
        {"type": "event", "email": email(), "eventName": "x", "body": ["not", "an object"]},
        good,
    ]
    response = await http.post("/api/1.0/batch", json={"items": items}, headers=team.headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    statuses = [r["status"] for r in answer["items"]]
    assert statuses == ["accepted"] + ["rejected"] * 7 + ["accepted"] + ["rejected"] * 2 + [
        "accepted"
    ]
    assert answer["accepted"] == 3 and answer["rejected"] == 9
    for result in answer["items"]:
        assert ("id" in result) == (result["status"] == "accepted")
        assert ("error" in result) == (result["status"] == "rejected")
    assert "email" in answer["items"][1]["error"]
    assert "NUL" in answer["items"][5]["error"]
    assert "time zone" in answer["items"][6]["error"]
    assert "nested deeper" in answer["items"][9]["error"]
    assert "JSON object" in answer["items"][10]["error"]
    ids = [r["id"] for r in answer["items"] if r["status"] == "accepted"]
    event_ids = [ids[0], ids[2]]

    async def stored() -> set[str] | None:
        found = await stored_event_ids(db, event_ids)
        return found if len(found) == 2 else None

    await eventually(stored)


async def test_wait_reports_each_outcome(http: httpx.AsyncClient, team: Team) -> None:
    items = [
        {"type": "event", "email": email(), "eventName": "opened", "body": {"n": i}}
        for i in range(3)
    ]
    response = await http.post(
        "/api/1.0/batch?wait=true", json={"items": items}, headers=team.headers
    )
    assert response.status_code == 200, response.text
    assert [r["outcome"] for r in response.json()["items"]] == ["applied"] * 3


async def test_the_user_agent_in_an_event_body_is_the_end_users(
    http: httpx.AsyncClient, team: Team
) -> None:
    crawler = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    items = [
        {"type": "event", "email": email(), "eventName": "view", "body": {"user_agent": crawler}},
        {"type": "event", "email": email(), "eventName": "view", "body": {"userAgent": crawler}},
        {"type": "event", "email": email(), "eventName": "view", "body": {"page": "/"}},
    ]
    response = await http.post(
        "/api/1.0/batch?wait=true", json={"items": items}, headers=team.headers
    )
    assert response.status_code == 200, response.text
    outcomes = [r["outcome"] for r in response.json()["items"]]
    assert outcomes == ["discarded:bot", "discarded:bot", "applied"]


async def test_envelope_errors_and_limits(
    http: httpx.AsyncClient, team: Team, settings: Settings
) -> None:
    post = http.post
    url = "/api/1.0/batch"
    assert (await post(url, json=[{"type": "event"}], headers=team.headers)).status_code == 400
    assert (await post(url, json={"items": []}, headers=team.headers)).status_code == 400
    assert (await post(url, content=b"{not json", headers=team.headers)).status_code == 400
    too_many = [{"type": "customer", "email": email()}] * (settings.max_batch_items + 1)
    response = await post(url, json={"items": too_many}, headers=team.headers)
    assert response.status_code == 413
    assert str(settings.max_batch_items) in response.json()["error"]
    big = {"type": "event", "email": email(), "eventName": "big", "body": {"s": "x" * 40_000}}
    response = await post(url, json={"items": [big]}, headers=team.headers)
    assert response.status_code == 200
    assert response.json()["items"][0]["status"] == "rejected"
    assert "larger than" in response.json()["items"][0]["error"]
    huge = b'{"items": ["' + b"x" * (settings.max_body_bytes + 10) + b'"]}'
    assert (await post(url, content=huge, headers=team.headers)).status_code == 413
    assert (await post(url, json={"items": [big]})).status_code == 401
