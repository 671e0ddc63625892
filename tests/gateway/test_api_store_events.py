"""Seed 004 (custom customer events per store) on the real pipeline: every stated rule."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import Team
from tests.support import eventually

WAIT = {"Prefer": "return=representation"}


async def store_path(db: asyncpg.Pool, team: Team) -> str:
    """The team's name is its store's app_key."""
    name = await db.fetchval("SELECT name FROM teams WHERE id = $1", team.id)
    return f"/core/v3/stores/{name}/custom_events"


def event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": "quiz_app",
        "type": "order_shipped",
        "timestamp": "2024-05-01T10:00:00Z",
        "id": str(uuid.uuid4()),
        "customer": {
            "external_id": f"ext-{uuid.uuid4().hex[:8]}",
            "email": f"user-{uuid.uuid4().hex[:8]}@example.com",
            "properties": {"vip": True, "first_order_date": "2023-11-02", "orders": 3},
        },
        "properties": {"order_id": "1001", "items": 3, "total": 59.9, "gift": False},
    }
    body.update(overrides)
    return body


async def stored_event(db: asyncpg.Pool, team: Team, client_id: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        "SELECT e.*, t.name AS type_name, c.attributes::text AS customer_attributes"
        " FROM events e JOIN event_types t ON t.id = e.event_type_id"
        " JOIN customers c ON c.id = e.customer_id"
        " WHERE e.team_id = $1 AND e.client_event_id = $2",
        team.id,
        client_id,
    )


async def test_create_an_event_for_the_store(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    body = event()
    response = await http.post(await store_path(db, team), json=body, headers=team.headers)
    assert response.status_code == 200
    assert response.json() == {
        "id": body["id"],
        "type": "order_shipped",
        "source": "quiz_app",
        "timestamp": "2024-05-01T10:00:00Z",
        "status": "accepted",
        "message_id": response.headers["x-message-id"],
    }
    row = await eventually(lambda: stored_event(db, team, body["id"]))
    assert row["type_name"] == "order_shipped"
    assert row["source"] == "quiz_app"
    assert row["occurred_at"].isoformat() == "2024-05-01T10:00:00+00:00"
    assert json.loads(row["body"]) == body["properties"]
    assert json.loads(row["customer_attributes"]) == body["customer"]["properties"]
    identifiers = await db.fetch(
        "SELECT kind, value FROM customer_identifiers"
        " WHERE customer_id = $1 AND kind <> 'customer_id'",
        row["customer_id"],
    )
    assert {(r["kind"], r["value"]) for r in identifiers} == {
        ("external_id", body["customer"]["external_id"]),
        ("email", body["customer"]["email"]),
    }


async def test_an_event_with_a_known_id_replaces_it(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    path = await store_path(db, team)
    first = event()
    assert (await http.post(path, json=first, headers={**team.headers, **WAIT})).status_code == 200
    second = event(
        id=first["id"],
        type="order_delivered",
        timestamp="2024-05-02T10:00:00+02:00",
        customer={"phone_number": "+14155552671"},
        properties={"carrier": "ups"},
    )
    response = await http.post(path, json=second, headers={**team.headers, **WAIT})
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "stored"
    assert answer["type"] == "order_delivered"
    assert answer["timestamp"] == "2024-05-02T08:00:00Z"
    assert answer["properties"] == {"carrier": "ups"}
    count = await db.fetchval(
        "SELECT count(*) FROM events WHERE team_id = $1 AND client_event_id = $2",
        team.id,
        first["id"],
    )
    assert count == 1
    # The document: "Overrides existing event when ID value already exists". A resend
    # with an older timestamp is accepted later, so it replaces the stored event.
    older = await http.post(
        path, json={**first, "type": "order_old"}, headers={**team.headers, **WAIT}
    )
    assert older.json()["status"] == "stored"
    assert older.json()["type"] == "order_old"
    assert older.json()["timestamp"] == "2024-05-01T10:00:00Z"


async def test_timestamp_defaults_to_now_and_offsetless_means_utc(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    path = await store_path(db, team)
    body = event()
    del body["timestamp"]
    del body["source"]
    answer = (await http.post(path, json=body, headers=team.headers)).json()
    assert answer["source"] is None
    moment = datetime.fromisoformat(answer["timestamp"])
    assert abs(moment - datetime.now(UTC)) < timedelta(minutes=1)
    assert answer["timestamp"].endswith("Z")
    naive = (
        await http.post(path, json=event(timestamp="2024-05-01T10:00:00"), headers=team.headers)
    ).json()
    assert naive["timestamp"] == "2024-05-01T10:00:00Z"


async def test_customer_by_phone_or_email_alone(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    path = await store_path(db, team)
    for customer in ({"phone_number": "+447911123456"}, {"email": "Only@Example.com"}):
        body = event(customer=customer)
        response = await http.post(path, json=body, headers={**team.headers, **WAIT})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "stored"


async def test_app_key_is_the_callers_store(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    by_id = await http.post(
        f"/core/v3/stores/{team.id}/custom_events", json=event(), headers=team.headers
    )
    assert by_id.status_code == 200
    other = await http.post(
        "/core/v3/stores/someone-else/custom_events", json=event(), headers=team.headers
    )
    assert other.status_code == 403
    assert other.json() == {
        "errors": [
            {
                "field": "app_key",
                "message": "The API key does not give access to store 'someone-else'",
            }
        ]
    }


INVALID = [
    ({"source": "Quiz App"}, "source", "snake_case"),
    ({"source": ""}, "source", "must not be empty"),
    ({"source": "a" * 256}, "source", "at most 255"),
    ({"type": None}, "type", "is required"),
    ({"type": ""}, "type", "must not be empty"),
    ({"type": "OrderShipped"}, "type", "snake_case"),
    ({"type": "order__shipped"}, "type", "snake_case"),
    ({"type": "x" * 256}, "type", "at most 255"),
    ({"type": 5}, "type", "must be a string"),
    ({"timestamp": "yesterday"}, "timestamp", "ISO 8601"),
    ({"timestamp": 1714557600}, "timestamp", "ISO 8601"),
    ({"id": None}, "id", "is required"),
    ({"id": ""}, "id", "1 to 255"),
    ({"id": 7}, "id", "1 to 255"),
    ({"customer": None}, "customer", "is required"),
    ({"customer": {}}, "customer", "external_id, phone_number or email"),
    (
        {"customer": {"email": "a@example.com", "phone_number": "+14155552671"}},
        "customer",
        "only one of phone_number or email",
    ),
    ({"customer": {"phone_number": "4155552671"}}, "customer.phone_number", "E.164"),
    ({"customer": {"phone_number": "+1 415 555 2671"}}, "customer.phone_number", "E.164"),
    ({"customer": {"phone_number": "+10000000000"}}, "customer.phone_number", "valid"),
    ({"customer": {"email": "not-an-email"}}, "customer.email", "email"),
    ({"customer": {"external_id": "null"}}, "customer.external_id", "usable"),
    (
        {"customer": {"email": "a@example.com", "properties": {"plan": None}}},
        "customer.properties.plan",
        "null",
    ),
    (
        {"customer": {"email": "a@example.com", "properties": {"first name": "A"}}},
        "customer.properties.first name",
        "underscores",
    ),
    (
        {"customer": {"email": "a@example.com", "properties": {"tags": ["a"]}}},
        "customer.properties.tags",
        "primitive",
    ),
    ({"customer": {"email": "a@example.com", "properties": "x"}}, "customer.properties", "object"),
    ({"properties": {"total": None}}, "properties.total", "null"),
    ({"properties": {"items": {"sku": "1"}}}, "properties.items", "primitive"),
    ({"properties": [1]}, "properties", "object"),
]


@pytest.mark.parametrize(("change", "field", "rule"), INVALID)
async def test_each_rule_is_a_400_naming_field_and_rule(
    http: httpx.AsyncClient,
    db: asyncpg.Pool,
    team: Team,
    change: dict[str, Any],
    field: str,
    rule: str,
) -> None:
    body = event(**change)
    response = await http.post(await store_path(db, team), json=body, headers=team.headers)
    assert response.status_code == 400, response.text
    errors = response.json()["errors"]
    assert any(e["field"] == field and rule in e["message"] for e in errors), errors
    assert "x-message-id" not in response.headers


async def test_all_problems_are_reported_at_once(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    body = {"type": "Bad Type", "customer": {"phone_number": "123"}, "properties": {"a": None}}
    response = await http.post(await store_path(db, team), json=body, headers=team.headers)
    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} == {
        "type",
        "id",
        "customer.phone_number",
        "properties.a",
    }
