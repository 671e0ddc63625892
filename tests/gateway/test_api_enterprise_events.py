"""Seed 003 (events with property records) replayed on the real pipeline."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import asyncpg
import httpx

from ingest_gateway.surfaces.enterprise_events_examples import (
    CREATE as CREATE_EXAMPLE,
)
from ingest_gateway.surfaces.enterprise_events_examples import (
    EVENT as EVENT_EXAMPLE,
)
from ingest_gateway.surfaces.enterprise_events_examples import (
    LIST as LIST_EXAMPLE,
)
from tests.conftest import Team
from tests.gateway.api_shapes import assert_shape
from tests.support import created_customer, eventually

BASE = "/rest-api/enterprise-interface/v1.0"
WAIT = {"Prefer": "return=representation"}

CREATED_EXAMPLE = {"data": {"event_id": "85c7c9d1ccf6c6dfed34edc8d2"}}


def document_headers(team: Team) -> dict[str, str]:
    token = base64.b64encode(f"enterprise_interface:{team.key}".encode()).decode()
    return {
        "Content-Type": "application/json",
        "Accept-Language": "cs, en-gb;q=0.8",
        "Authorization": f"Basic {token}",
    }


async def customer_and_type(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team, type_name: str = "purchase"
) -> tuple[str, str]:
    address = f"user-{uuid.uuid4().hex[:10]}@example.com"
    customer_id = await created_customer(http, db, team.id, team.headers, address, name="E")
    made = await http.post(
        "/rest-api/customer-interface/v1.0/event-types",
        json={"name": type_name},
        headers=team.headers,
    )
    return str(customer_id), made.json()["data"]["event_type_id"]


def request_for(customer_id: str, type_id: str, external_id: str = "aaabbbccc") -> dict[str, Any]:
    """The document's request with our ids in place of its."""
    event = {**CREATE_EXAMPLE["event"], "event_type_id": type_id, "customer_id": customer_id}
    return {**CREATE_EXAMPLE, "event": {**event, "external_id": external_id}}


async def test_create_example_then_read_it_back(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    customer_id, type_id = await customer_and_type(http, db, team)
    response = await http.post(
        f"{BASE}/events", json=request_for(customer_id, type_id), headers=document_headers(team)
    )
    assert response.status_code == 201
    assert_shape(response.json(), CREATED_EXAMPLE)
    event_id = response.json()["data"]["event_id"]
    assert uuid.UUID(event_id).version == 7
    assert response.headers["x-message-id"] == event_id

    async def read() -> httpx.Response | None:
        got = await http.get(f"{BASE}/events/{event_id}", headers=document_headers(team))
        return got if got.status_code == 200 else None

    detail = (await eventually(read)).json()
    assert_shape(detail, {"data": EVENT_EXAMPLE})
    assert set(detail["data"]) == set(EVENT_EXAMPLE)
    assert detail["data"] | {"created_at": None} == {
        "event_id": event_id,
        "event_type_id": type_id,
        "customer_id": customer_id,
        "external_id": "aaabbbccc",
        "data": '{"has_purchase":"true"}',
        "created_at": None,
        "secondary_external_id": None,
        "state": 1,
    }
    assert len(detail["data"]["created_at"]) == len("2017-06-20 16:59:49")

    records = await http.get(f"{BASE}/events/{event_id}/property-records", headers=team.headers)
    assert records.status_code == 200
    assert records.json() == {
        "data": {
            "property_records": [{"property_id": "has_purchase", "property_value": "true"}],
            "total_items": 1,
        }
    }


async def test_list_example(http: httpx.AsyncClient, db: asyncpg.Pool, team: Team) -> None:
    customer_id, type_id = await customer_and_type(http, db, team)
    _, other_type = await customer_and_type(http, db, team, "other")
    ids = []
    for external_id in ("157613", "3624", "99"):
        created = await http.post(
            f"{BASE}/events",
            json=request_for(customer_id, type_id, external_id),
            headers={**team.headers, **WAIT},
        )
        assert created.status_code == 201
        ids.append(created.json()["data"]["event_id"])
    await http.post(
        f"{BASE}/events",
        json=request_for(customer_id, other_type),
        headers={**team.headers, **WAIT},
    )

    response = await http.get(
        f"{BASE}/events",
        params={"event_type_id": type_id, "count": 2},
        headers=document_headers(team),
    )
    assert response.status_code == 200
    answer = response.json()
    assert_shape(answer, LIST_EXAMPLE)
    assert answer["data"]["total_items"] == 3
    assert [e["event_id"] for e in answer["data"]["events"]] == ids[:2]
    assert [e["external_id"] for e in answer["data"]["events"]] == ["157613", "3624"]

    async def external_ids(**params: str | int) -> list[str]:
        got = await http.get(f"{BASE}/events", params=params, headers=team.headers)
        assert got.status_code == 200, got.text
        return [e["external_id"] for e in got.json()["data"]["events"]]

    assert await external_ids(
        sort_field="external_id", sort_direction="DESC", event_type_id=type_id
    ) == [
        "99",
        "3624",
        "157613",
    ]
    assert await external_ids(sort_field="created_at", sort_direction="DESC", count=1) == [
        "aaabbbccc"
    ]
    assert len(await external_ids()) == 4
    assert await external_ids(event_type_id="8bed991c68a470e7aaeffbf048") == []
    bad = await http.get(f"{BASE}/events", params={"sort_field": "colour"}, headers=team.headers)
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "sort_field"


async def test_unknown_type_or_customer_is_422_and_nothing_is_written(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    customer_id, type_id = await customer_and_type(http, db, team)
    cases = [
        (CREATE_EXAMPLE, "event.event_type_id"),  # the document's own ids name nothing here
        (request_for(customer_id, "999999"), "event.event_type_id"),
        (request_for("999999", type_id), "event.customer_id"),
        (request_for("85bc5819e09dab95437552ce79", type_id), "event.customer_id"),
    ]
    for body, field in cases:
        response = await http.post(f"{BASE}/events", json=body, headers=team.headers)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["field"] == field
        assert "x-message-id" not in response.headers
    for body, field in (
        ({"event": {"customer_id": customer_id}}, "event.event_type_id"),
        ({"event": {"event_type_id": type_id}}, "event.customer_id"),
        ({"property_records": []}, "event"),
        (
            {**request_for(customer_id, type_id), "property_records": [{"property_value": 1}]},
            "property_records[0].property_id",
        ),
    ):
        response = await http.post(f"{BASE}/events", json=body, headers=team.headers)
        assert response.status_code == 400
        assert response.json()["error"]["field"] == field
    assert await db.fetchval("SELECT count(*) FROM events WHERE team_id = $1", team.id) == 0


async def test_wait_returns_the_stored_event(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    customer_id, type_id = await customer_and_type(http, db, team)
    body = request_for(customer_id, type_id)
    body["event"]["data"] = {"test": 10}
    response = await http.post(f"{BASE}/events", json=body, headers={**team.headers, **WAIT})
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["event_id"] == response.headers["x-message-id"]
    assert json.loads(data["data"]) == {"test": 10, "has_purchase": "true"}


async def test_events_of_every_api_are_listed(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    sent = await http.post(
        "/api/1.0/events/task.created/someone@example.com/3321?wait=true",
        json={"key": "value"},
        headers=team.headers,
    )
    event_id = sent.json()["id"]
    detail = await http.get(f"{BASE}/events/{event_id}", headers=team.headers)
    assert detail.status_code == 200
    assert detail.json()["data"]["external_id"] == "3321"
    assert detail.json()["data"]["data"] == '{"key":"value"}'
    records = await http.get(f"{BASE}/events/{event_id}/property-records", headers=team.headers)
    assert records.json()["data"]["property_records"] == [
        {"property_id": "key", "property_value": "value"}
    ]
    for unknown in ("8bed991c68a470e7aaeffbf048", str(uuid.uuid4())):
        missing = await http.get(f"{BASE}/events/{unknown}", headers=team.headers)
        assert missing.status_code == 404
        assert missing.json() == {
            "error": {"code": 404, "message": f"Event {unknown} was not found"}
        }
