"""Seed 000 (the Postman collection) replayed: every request and response example.

The requests are built from the collection itself (``tests/data``, a verbatim
copy): its URLs with ``{{debug}}`` left in as Postman leaves an unset variable,
its headers (the collection-level ``Authorization: Bearer test`` included where a
request inherits it) and its bodies (multipart form, raw JSON, JSON under a form
content type). Only the host and the API key are ours.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.conftest import Team
from tests.gateway.api_shapes import assert_shape
from tests.support import eventually, stored_customer

COLLECTION = json.loads(
    (Path(__file__).parent / "data" / "seed_000_postman_collection.json").read_text()
)


def _items(node: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for item in node.get("item", []):
        found.extend(_items(item) if "item" in item else [item])
    return found


ITEMS = {item["name"]: item for item in _items(COLLECTION)}


def _url(url: Any) -> str:
    """The request path as Postman sends it: path variables filled, ``{{debug}}`` kept."""
    if isinstance(url, str):
        return url.replace("{{HOST}}", "")
    raw: str = url["raw"].replace("{{HOST}}", "")
    for variable in url.get("variable", []):
        raw = raw.replace(f":{variable['key']}", variable["value"])
    return raw


def replay(request: dict[str, Any], team: Team) -> dict[str, Any]:
    """httpx arguments for a collection request, with our API key."""
    headers = {}
    for header in request.get("header", []):
        value = team.key if header["key"].lower() == "x-api-key" else header["value"]
        headers[header["key"]] = value
    if request.get("auth", {}).get("type") != "noauth":
        headers["Authorization"] = "Bearer " + COLLECTION["auth"]["bearer"]["token"]
    args: dict[str, Any] = {"method": request["method"], "url": _url(request["url"])}
    body = request.get("body")
    if body and body["mode"] == "formdata":
        args["files"] = {f["key"]: (None, f["value"]) for f in body["formdata"]}
    elif body and body["mode"] == "raw" and body["raw"]:
        args["content"] = body["raw"].encode()
    args["headers"] = headers
    return args


def documented(example: dict[str, Any], email: str | None = None) -> Any:
    text = example["body"]
    return json.loads(text.replace(":email", email) if email else text)


async def send(http: httpx.AsyncClient, request: dict[str, Any], team: Team) -> httpx.Response:
    return await http.request(**replay(request, team))


async def seed(http: httpx.AsyncClient, team: Team, email: str, **attributes: str) -> None:
    response = await http.post(
        f"/api/1.0/customer/{email}?wait=true", data=attributes, headers=team.headers
    )
    assert response.status_code == 200


async def test_get_customer_data_example(http: httpx.AsyncClient, team: Team) -> None:
    item = ITEMS["Get customer data"]
    example = next(r for r in item["response"] if r["code"] == 200)
    expected = documented(example)
    await seed(http, team, expected["email"], **{k: v for k, v in expected.items() if k != "email"})

    response = await send(http, item["request"], team)
    assert response.status_code == example["code"]
    assert response.json() == expected


async def test_customer_not_found_example(http: httpx.AsyncClient, team: Team) -> None:
    item = ITEMS["Get customer data"]
    example = next(r for r in item["response"] if r["code"] == 404)
    response = await send(http, example["originalRequest"], team)
    assert response.status_code == 404
    assert response.json() == documented(example, "george.olah@selgora.com")


async def test_create_or_update_customer_examples(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    item = ITEMS["Create or Update Customer"]
    sent = {f["key"]: f["value"] for f in item["request"]["body"]["formdata"]}
    for request in [item["request"]] + [r["originalRequest"] for r in item["response"]]:
        response = await send(http, request, team)
        assert response.status_code == 200
        expected = documented(item["response"][0], "name@yourcompany.com")
        assert_shape(response.json(), expected)
        assert response.json() == {"email": "name@yourcompany.com", **sent}

    row = await eventually(lambda: stored_customer(db, team, "name@yourcompany.com"))
    assert json.loads(row["attributes"]) == sent


async def test_delete_customer_example(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    item = ITEMS["Delete a customer"]
    await seed(http, team, "someval2u3e@selgora.com", name="Someone")
    response = await send(http, item["request"], team)
    assert response.status_code == 200
    assert response.json() == documented(item["response"][0])

    async def gone() -> bool:
        return await stored_customer(db, team, "someval2u3e@selgora.com") is None

    await eventually(gone)


async def test_list_customers_example(http: httpx.AsyncClient, team: Team) -> None:
    item = ITEMS["Get a list of customers"]
    expected = documented(item["response"][0])
    # Pages are in creation order: 15 customers, then the documented five one by one
    # (so that they are 16th to 20th), then one more so that a next page exists.
    filler = [{"email": f"c{i:02d}@example.com", "name": f"Customer {i}"} for i in range(15)]
    waited = {**team.headers, "Prefer": "return=representation"}
    assert (await http.post("/api/1.0/customers", json=filler, headers=waited)).status_code == 200
    for customer in [*expected["results"], {"email": "last@example.com"}]:
        response = await http.post("/api/1.0/customers", json=[customer], headers=waited)
        assert response.status_code == 200

    response = await send(http, item["request"], team)
    assert response.status_code == 200
    answer = response.json()
    assert_shape(answer, expected)
    assert answer["results"] == expected["results"]
    assert answer["metadata"] == {
        **expected["metadata"],
        "numberOfResults": 21,
        "nextPageUrl": str(http.base_url).rstrip("/")
        + "/api/1.0/customers?startingFrom=20&itemsPerPage=5",
    }


async def test_batch_create_update_example(http: httpx.AsyncClient, team: Team) -> None:
    item = ITEMS["Batch Create/Update Customers"]
    # The documented answer shows George's stored plan and last login beside what was sent.
    await seed(
        http,
        team,
        "george.olah@selgora.com",
        pricingPlan="gold",
        lastloginDate="2019-06-24 00:00:00",
    )
    response = await send(http, item["request"], team)
    assert response.status_code == 200
    expected = documented(item["response"][0])
    answer = response.json()
    assert len(answer) == len(expected)
    for actual, doc in zip(answer, expected, strict=True):
        assert_shape(actual, doc)
    sent = json.loads(item["request"]["body"]["raw"])
    assert answer[0] == {**sent[0], "pricingPlan": "gold", "lastloginDate": "2019-06-24 00:00:00"}
    assert answer[1] == sent[1]


async def test_batch_delete_example(http: httpx.AsyncClient, team: Team) -> None:
    item = ITEMS["Batch Delete Customers"]
    response = await send(http, item["request"], team)
    assert response.status_code == 200
    assert response.json() == documented(item["response"][0])

    await seed(http, team, "george.olah@selgora.com", name="George")
    response = await send(http, item["response"][0]["originalRequest"], team)
    assert response.json() == {
        "deletedCustomers": ["george.olah@selgora.com"],
        "couldNotDelete": ["hello@selgora.com"],
    }


async def test_create_event_example(http: httpx.AsyncClient, db: asyncpg.Pool, team: Team) -> None:
    item = ITEMS["Create event"]
    example = item["response"][0]
    response = await send(http, example["originalRequest"], team)
    assert response.status_code == 200
    expected = documented(example)
    expected["id"] = "ids are strings (message ids) in this gateway"
    answer = response.json()
    assert_shape(answer, expected)
    assert answer["eventName"] == "task.created"
    assert answer["externalId"] == "3321"
    assert answer["body"] == json.loads(example["originalRequest"]["body"]["raw"])

    async def stored() -> asyncpg.Record | None:
        return await db.fetchrow(
            "SELECT e.external_id, t.name FROM events e JOIN event_types t"
            " ON t.id = e.event_type_id WHERE e.team_id = $1 AND e.id = $2",
            team.id,
            uuid.UUID(answer["id"]),
        )

    row = await eventually(stored)
    assert (row["name"], row["external_id"]) == ("task.created", "3321")
    assert await stored_customer(db, team, "george.olah@selgora.com") is not None


async def test_every_collection_request_is_covered() -> None:
    assert set(ITEMS) == {
        "Get customer data",
        "Create or Update Customer",
        "Delete a customer",
        "Get a list of customers",
        "Batch Create/Update Customers",
        "Batch Delete Customers",
        "Create event",
    }
