"""What every API surface shares: its error format for 401/404/405/413/deep JSON, and
the OpenAPI description listing every documented endpoint with the documents' examples."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.settings import Settings
from tests.conftest import Team, create_topics, private_gateway
from tests.support import created_customer

# One write endpoint per document, and the shape of its error answers.
SURFACES: dict[str, dict[str, Any]] = {
    "000": {
        "write": "/api/1.0/customers",
        "unknown": "/api/1.0/nothing-here",
        "wrong_method": ("PATCH", "/api/1.0/customers"),
        "error": lambda message: {"error": message},
    },
    "001": {
        "write": "/api/v1/event/",
        "unknown": "/api/v1/nothing-here",
        "wrong_method": ("GET", "/api/v1/event/"),
        "error": lambda message: {"errors": [{"message": message, "description": message}]},
    },
    "002": {
        "write": "/rest-api/customer-interface/v1.0/event-groups",
        "unknown": "/rest-api/customer-interface/v1.0/nothing-here",
        "wrong_method": ("PUT", "/rest-api/customer-interface/v1.0/event-groups"),
        "error": lambda message: {"error": {"code": CODE, "message": message}},
    },
    "003": {
        "write": "/rest-api/enterprise-interface/v1.0/events",
        "unknown": "/rest-api/enterprise-interface/v1.0/nothing-here",
        "wrong_method": ("DELETE", "/rest-api/enterprise-interface/v1.0/events"),
        "error": lambda message: {"error": {"code": CODE, "message": message}},
    },
    "004": {
        "write": "/core/v3/stores/{team}/custom_events",
        "unknown": "/core/v3/nothing-here",
        "wrong_method": ("GET", "/core/v3/stores/{team}/custom_events"),
        "error": lambda message: {"errors": [{"message": message}]},
    },
}
CODE = 0  # replaced per answer: the /rest-api documents' errors carry the status


def expect(surface: str, response: httpx.Response, status: int, message: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    if "error" in body and isinstance(body["error"], dict):
        assert body["error"]["code"] == status
        body["error"]["code"] = CODE
        body["error"].pop("description", None)  # optional, free text
    shape: Callable[[str], Any] = SURFACES[surface]["error"]
    if message is None:  # compare the envelope only
        message = _message(body)
    if surface == "001" and body["errors"][0]["description"] != message:
        body["errors"][0]["description"] = message  # a description of its own is fine
    assert body == shape(message), body


def _message(body: Any) -> str:
    if "errors" in body:
        return str(body["errors"][0]["message"])
    error = body["error"]
    return str(error["message"] if isinstance(error, dict) else error)


@pytest.fixture
async def paths(team: Team, db: Any) -> AsyncIterator[dict[str, dict[str, Any]]]:
    name = await db.fetchval("SELECT name FROM teams WHERE id = $1", team.id)
    yield {
        key: {
            **value,
            "write": value["write"].format(team=name),
            "wrong_method": (value["wrong_method"][0], value["wrong_method"][1].format(team=name)),
        }
        for key, value in SURFACES.items()
    }


@pytest.mark.parametrize("surface", sorted(SURFACES))
async def test_errors_in_the_documents_format(
    http: httpx.AsyncClient, team: Team, paths: dict[str, dict[str, Any]], surface: str
) -> None:
    p = paths[surface]
    expect(surface, await http.get(p["unknown"], headers=team.headers), 404, "Not found")
    method, path = p["wrong_method"]
    wrong = await http.request(method, path, headers=team.headers)
    expect(surface, wrong, 405, "Method not allowed")
    expect(surface, await http.post(p["write"], json={}), 401, "Missing API key")

    deep: Any = "x"
    for _ in range(40):
        deep = {"a": deep}
    too_deep = await http.post(p["write"], content=json.dumps(deep), headers=team.headers)
    expect(surface, too_deep, 400, "JSON nested deeper than 32 levels")
    broken = await http.post(p["write"], content=b"{not json", headers=team.headers)
    expect(surface, broken, 400)

    huge = b'{"a": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    too_large = await http.post(p["write"], content=huge, headers=team.headers)
    expect(surface, too_large, 413, "The request body is larger than the limit of 5242880 bytes")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(6):
            yield b" " * (1024 * 1024)

    streamed = await http.post(p["write"], content=chunks(), headers=team.headers)
    expect(surface, streamed, 413, "The request body is larger than the limit of 5242880 bytes")


DOCUMENTED = {
    # (method, path): a string the document's example puts in the description
    ("get", "/api/1.0/customer/{email}"): "lastloginDate",
    ("post", "/api/1.0/customer/{email}"): "hasFinishedOnboarding",
    ("delete", "/api/1.0/customer/{email}"): "success",
    ("get", "/api/1.0/customers"): "Mr. Buck Torp",
    ("post", "/api/1.0/customers"): "secondary_email",
    ("delete", "/api/1.0/customers"): "couldNotDelete",
    ("post", "/api/1.0/events/{event_name}/{customer_email}/{external_id}"): "multilevel",
    ("post", "/api/v1/event"): "my_event",
    ("get", "/rest-api/customer-interface/v1.0/event-groups"): "Shopping Cart",
    ("get", "/rest-api/customer-interface/v1.0/event-groups/{event_group_id}"): "shopping_cart",
    ("post", "/rest-api/enterprise-interface/v1.0/events"): "aaabbbccc",
    ("get", "/rest-api/enterprise-interface/v1.0/events"): "3624",
    ("get", "/rest-api/enterprise-interface/v1.0/events/{event_id}"): "157613",
    (
        "get",
        "/rest-api/enterprise-interface/v1.0/events/{event_id}/property-records",
    ): "has_purchase",
    ("post", "/core/v3/stores/{app_key}/custom_events"): "order_shipped",
}
QUERY_PARAMETERS = {
    ("get", "/api/1.0/customers"): {"startingFrom", "itemsPerPage"},
    ("get", "/rest-api/customer-interface/v1.0/event-groups"): {
        "count",
        "offset",
        "sort_field",
        "sort_direction",
        "name",
        "text_id",
    },
    ("get", "/rest-api/enterprise-interface/v1.0/events"): {
        "count",
        "offset",
        "sort_field",
        "sort_direction",
        "event_type_id",
    },
}


async def test_openapi_lists_every_documented_endpoint_with_examples(
    http: httpx.AsyncClient,
) -> None:
    spec = (await http.get("/openapi.json")).json()
    for (method, path), sample in DOCUMENTED.items():
        operation = spec["paths"][path][method]
        text = json.dumps(operation)
        assert sample in text, (method, path)
        assert "examples" in text or "example" in text, (method, path)
        assert "422" not in operation["responses"], (method, path)  # bad input is 400 here
        if (
            method in {"post"}
            and path != "/api/1.0/events/{event_name}/{customer_email}/{external_id}"
        ):
            assert operation["requestBody"]["required"] in (True, False)
            assert operation["requestBody"]["content"], (method, path)
        names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert QUERY_PARAMETERS.get((method, path), set()) <= names, (method, path)


@pytest.fixture(scope="module")
async def unconsumed_gateway(settings: Settings, run_id: str, log_dir: Path) -> AsyncIterator[str]:
    """A second gateway publishing to a topic no consumer reads: every wait runs out."""
    topic = f"test.{run_id}.unread"
    await create_topics(settings.kafka_bootstrap_servers, {topic: 1})
    async with private_gateway(
        settings, log_dir, "gateway-unconsumed", writes_topic=topic, wait_timeout_s=0.3
    ) as (base, _):
        yield base


async def test_a_wait_that_runs_out_answers_202_with_the_message_id(
    http: httpx.AsyncClient, unconsumed_gateway: str, db: Any, team: Team
) -> None:
    address = f"waiting-{uuid.uuid4().hex[:8]}@example.com"
    customer_id = await created_customer(http, db, team.id, team.headers, address)
    type_id = await db.fetchval(
        "INSERT INTO event_types (team_id, name) VALUES ($1, 'waited') RETURNING id", team.id
    )
    name = await db.fetchval("SELECT name FROM teams WHERE id = $1", team.id)
    writes = [
        ("/api/v1/event/", {"user": {"email": address}, "event": {"update": {"a": 1}}}),
        (
            "/rest-api/enterprise-interface/v1.0/events",
            {"event": {"event_type_id": str(type_id), "customer_id": str(customer_id)}},
        ),
        (
            f"/core/v3/stores/{name}/custom_events",
            {"type": "waited", "id": "w-1", "customer": {"email": address}},
        ),
        (f"/api/1.0/customer/{address}", {"a": 1}),
    ]
    async with httpx.AsyncClient(base_url=unconsumed_gateway, timeout=30) as other:
        for path, body in writes:
            response = await other.post(
                path, json=body, headers={**team.headers, "Prefer": "return=representation"}
            )
            assert response.status_code == 202, (path, response.text)
            message_id = response.headers["x-message-id"]
            assert uuid.UUID(message_id).version == 7
            assert message_id in response.text, path


async def test_wait_is_a_boolean_and_nothing_else(http: httpx.AsyncClient, team: Team) -> None:
    address = f"wait-{uuid.uuid4().hex[:8]}@example.com"
    for value in ("null", "", "maybe"):
        refused = await http.post(
            f"/api/1.0/customer/{address}?wait={value}", data={"a": "1"}, headers=team.headers
        )
        assert refused.status_code == 400, (value, refused.text)
        assert refused.json() == {"error": "Invalid parameter wait: true or false"}
    for value in ("false", "0", "TRUE"):
        taken = await http.post(
            f"/api/1.0/customer/{address}?wait={value}", data={"a": "1"}, headers=team.headers
        )
        assert taken.status_code == 200, (value, taken.text)
