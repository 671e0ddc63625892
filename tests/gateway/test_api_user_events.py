"""Seed 001 (the ``event/`` endpoint with user and event objects) on the real pipeline."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx

from ingest_gateway.surfaces.user_events_examples import (
    CREATED as CREATED,
)
from ingest_gateway.surfaces.user_events_examples import (
    MISSING_EVENT as MISSING_EVENT,
)
from tests.conftest import Team
from tests.gateway.api_shapes import assert_shape
from tests.support import created_customer, eventually

PATH = "/api/v1/event/"
WAIT = {"Prefer": "return=representation"}

# The document's examples (its emails are hidden by its web page; any will do).
UPDATE_EXAMPLE = {
    "user": {"email": "alexandru@example.com"},
    "event": {"update": {"firstname": "alexandru"}},
}
GENERIC_EXAMPLE = {
    "user": {"email": "alexandru@example.com"},
    "event": {"generic": {"generic": {"event_name": "my_event", "firstname": "alexandru"}}},
}


def email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


async def existing_user(http: httpx.AsyncClient, db: asyncpg.Pool, team: Team, address: str) -> str:
    """Create the user (the document requires one) and return its customer id."""
    return await created_customer(http, db, team.id, team.headers, address, name="Alex")


async def events_of(db: asyncpg.Pool, team: Team, kind: str) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT e.*, t.name AS type_name FROM events e JOIN event_types t ON t.id = e.event_type_id"
        " WHERE e.team_id = $1 AND e.kind = $2 ORDER BY e.occurred_at",
        team.id,
        kind,
    )


async def attributes(db: asyncpg.Pool, team: Team, address: str) -> dict[str, Any]:
    raw = await db.fetchval(
        "SELECT c.attributes::text FROM customers c JOIN customer_identifiers i"
        " ON i.customer_id = c.id WHERE i.team_id = $1 AND i.kind = 'email' AND i.value = $2",
        team.id,
        address,
    )
    return dict(json.loads(raw)) if raw else {}


async def test_update_example(http: httpx.AsyncClient, db: asyncpg.Pool, team: Team) -> None:
    await existing_user(http, db, team, "alexandru@example.com")
    response = await http.post(PATH, json=UPDATE_EXAMPLE, headers=team.headers)
    assert response.status_code == 200
    assert response.json() == CREATED

    async def updated() -> bool:
        return (await attributes(db, team, "alexandru@example.com")).get("firstname") == "alexandru"

    await eventually(updated)
    [event] = await eventually(lambda: events_of(db, team, "update"))
    assert json.loads(event["body"]) == {"firstname": "alexandru"}


async def test_generic_example(http: httpx.AsyncClient, db: asyncpg.Pool, team: Team) -> None:
    await existing_user(http, db, team, "alexandru@example.com")
    response = await http.post(PATH, json=GENERIC_EXAMPLE, headers=team.headers)
    assert response.status_code == 200
    assert response.json() == CREATED
    [event] = await eventually(lambda: events_of(db, team, "generic"))
    assert event["type_name"] == "my_event"
    assert json.loads(event["body"]) == {"firstname": "alexandru"}

    # The same event without the second "generic" level is read the same way.
    flat = {"user": GENERIC_EXAMPLE["user"], "event": {"generic": {"event_name": "my_event"}}}
    assert (await http.post(PATH, json=flat, headers=team.headers)).status_code == 200


async def test_missing_event_is_the_documented_400(http: httpx.AsyncClient, team: Team) -> None:
    for body in (
        {"user": {"email": "alexandru@example.com"}},
        {"user": {"email": "alexandru@example.com"}, "event": {}},
        {"user": {"email": "alexandru@example.com"}, "event": None},
    ):
        response = await http.post(PATH, json=body, headers=team.headers)
        assert response.status_code == 400
        assert response.json() == MISSING_EVENT


async def test_the_user_must_exist(http: httpx.AsyncClient, db: asyncpg.Pool, team: Team) -> None:
    address = email()
    response = await http.post(
        PATH, json={"user": {"email": address}, "event": {"update": {"a": 1}}}, headers=team.headers
    )
    assert response.status_code == 404
    assert_shape(response.json(), MISSING_EVENT)
    assert response.json()["errors"][0]["message"] == "User not found"
    assert "x-message-id" not in response.headers  # nothing was published
    for unknown in ("999999999", "85bc5819e09dab95437552ce79"):
        response = await http.post(
            PATH, json={"user": {"_id": unknown}, "event": {"login": {}}}, headers=team.headers
        )
        assert response.status_code == 404
    missing_user = await http.post(PATH, json={"event": {"update": {}}}, headers=team.headers)
    assert missing_user.status_code == 400
    assert missing_user.json()["errors"][0]["message"] == "Missing user information"
    assert await attributes(db, team, address) == {}


async def test_login_by_id_sets_attributes_and_login_time(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    cid = await existing_user(http, db, team, address)
    response = await http.post(
        PATH,
        json={"user": {"_id": cid}, "event": {"login": {"plan": "gold"}}},
        headers={**team.headers, **WAIT},
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results["message"] == "Event created"
    assert results["_id"] == "Event was created for the specified user"
    [stored] = results["events"]
    assert stored["customer_id"] == cid
    assert json.loads(stored["data"]) == {"plan": "gold"}
    stored_attributes = await attributes(db, team, address)
    assert stored_attributes["plan"] == "gold"
    assert len(stored_attributes["lastLoginDate"]) == len("2019-08-05 23:00:15")

    # With both _id and an email, login adds the email to that user.
    other = email()
    response = await http.post(
        PATH,
        json={"user": {"_id": cid, "email": other}, "event": {"login": {}}},
        headers={**team.headers, **WAIT},
    )
    assert response.status_code == 200
    assert (await attributes(db, team, other))["plan"] == "gold"


async def test_confirmations_are_deduplicated_by_order_id(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    await existing_user(http, db, team, address)
    body = {"user": {"email": address}, "event": {"confirmation": {"orderId": "A-1", "total": 9}}}
    first = await http.post(PATH, json=body, headers={**team.headers, **WAIT})
    assert first.json()["results"]["message"] == "Event created"
    second = await http.post(PATH, json=body, headers={**team.headers, **WAIT})
    assert second.status_code == 200
    assert second.json()["results"]["message"] == "Event discarded"
    assert second.json()["results"]["discarded"] == ["duplicate_confirmation"]
    [kept] = await events_of(db, team, "confirmation")
    assert kept["order_id"] == "A-1"


async def test_email_opens_at_most_one_per_20_minutes(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    await existing_user(http, db, team, address)
    body = {"user": {"email": address}, "event": {"email_open": {"campaign": "spring"}}}
    answers = [
        (await http.post(PATH, json=body, headers={**team.headers, **WAIT})).json()["results"]
        for _ in range(2)
    ]
    assert answers[0]["message"] == "Event created"
    assert answers[1]["discarded"] == ["email_open_window"]
    assert len(await events_of(db, team, "email_open")) == 1


async def test_events_from_bots_are_not_stored(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    await existing_user(http, db, team, address)
    bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    response = await http.post(
        PATH,
        json={"user": {"email": address}, "event": {"page_view": {"url": "/"}}},
        headers={**team.headers, **WAIT, "User-Agent": bot},
    )
    assert response.status_code == 200
    assert response.json()["results"]["discarded"] == ["bot"]
    assert await events_of(db, team, "custom") == []


async def test_other_named_events_and_several_in_one_request(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    address = email()
    await existing_user(http, db, team, address)
    response = await http.post(
        PATH,
        json={
            "user": {"email": address},
            "event": {"add_to_cart": {"sku": "X-1"}, "update": {"cart": 1}},
        },
        headers={**team.headers, **WAIT},
    )
    assert response.status_code == 200
    assert len(response.json()["results"]["events"]) == 2
    [custom] = await events_of(db, team, "custom")
    assert custom["type_name"] == "add_to_cart"
    assert (await attributes(db, team, address))["cart"] == 1
    bad = await http.post(
        PATH, json={"user": {"email": address}, "event": {"update": "x"}}, headers=team.headers
    )
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["message"] == "Invalid event information"
