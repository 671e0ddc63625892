"""Seed 002 (event groups) replayed, and the group configuration (API and ingest-admin)."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import uuid

import asyncpg
import httpx

from ingest_gateway.surfaces.event_groups_examples import (
    LIST as LIST_EXAMPLE,
)
from runtime.settings import Settings
from tests.conftest import Team, settings_env
from tests.gateway.api_shapes import assert_shape
from tests.support import BIN, REPO

BASE = "/rest-api/customer-interface/v1.0"

DETAIL_EXAMPLE = {
    "data": {
        "event_group_id": "86e05affc7a7abefc513ab400",
        "name": "Shopping Cart",
        "text_id": "shopping_cart",
        "state": 1,
    }
}


def document_headers(team: Team) -> dict[str, str]:
    """The document's request headers, with our key as the Basic password."""
    token = base64.b64encode(f"customer_interface:{team.key}".encode()).decode()
    return {
        "Cache-Control": "no-cache",
        "Authorization": f"Basic {token}",
        "Content-Type": "application/json",
    }


async def create_documented_groups(http: httpx.AsyncClient, team: Team) -> list[str]:
    ids = []
    for group in LIST_EXAMPLE["data"]["event_groups"]:
        body = {k: group[k] for k in ("name", "text_id", "state")}
        response = await http.post(f"{BASE}/event-groups", json=body, headers=team.headers)
        assert response.status_code == 201
        assert response.json()["data"] == {
            **body,
            "event_group_id": response.json()["data"]["event_group_id"],
        }
        ids.append(response.json()["data"]["event_group_id"])
    return ids


async def test_list_example(http: httpx.AsyncClient, team: Team) -> None:
    ids = await create_documented_groups(http, team)
    response = await http.get(f"{BASE}/event-groups", headers=document_headers(team))
    assert response.status_code == 200
    answer = response.json()
    assert_shape(answer, LIST_EXAMPLE)
    documented = LIST_EXAMPLE["data"]["event_groups"]
    assert answer["data"]["event_groups"] == [
        {**group, "event_group_id": group_id}
        for group, group_id in zip(documented, ids, strict=True)
    ]
    assert answer["data"]["total_items"] == 4


async def test_detail_example_and_404(http: httpx.AsyncClient, team: Team) -> None:
    ids = await create_documented_groups(http, team)
    response = await http.get(f"{BASE}/event-groups/{ids[0]}", headers=document_headers(team))
    assert response.status_code == 200
    assert response.json() == {"data": {**DETAIL_EXAMPLE["data"], "event_group_id": ids[0]}}

    for unknown in ("86e05affc7a7abefc513ab400", "999999999", "99999999999999999999999"):
        missing = await http.get(f"{BASE}/event-groups/{unknown}", headers=document_headers(team))
        assert missing.status_code == 404
        assert missing.json() == {
            "error": {"code": 404, "message": f"Event group {unknown} was not found"}
        }


async def test_paging_sorting_and_filters(http: httpx.AsyncClient, team: Team) -> None:
    await create_documented_groups(http, team)
    headers = document_headers(team)

    async def names(**params: str | int) -> tuple[list[str], int]:
        response = await http.get(f"{BASE}/event-groups", params=params, headers=headers)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        return [g["name"] for g in data["event_groups"]], data["total_items"]

    assert await names(sort_field="name", sort_direction="ASC") == (
        ["Points", "Shipments", "Shopping Cart", "Tasks"],
        4,
    )
    assert await names(sort_field="name", sort_direction="desc", count=2, offset=1) == (
        ["Shopping Cart", "Shipments"],
        4,
    )
    assert await names(name="sh") == (["Shopping Cart", "Shipments"], 2)
    assert await names(name="CART") == (["Shopping Cart"], 1)
    assert await names(text_id="tasks") == (["Tasks"], 1)
    assert await names(text_id="task") == ([], 0)
    assert await names(offset=10) == ([], 4)

    for params, field in (
        ({"sort_direction": "UP"}, "sort_direction"),
        ({"sort_field": "colour"}, "sort_field"),
        ({"count": "-1"}, "count"),
        ({"count": "many"}, "count"),
    ):
        response = await http.get(f"{BASE}/event-groups", params=params, headers=headers)
        assert response.status_code == 400
        assert response.json()["error"]["field"] == field


async def test_basic_auth_and_api_key(http: httpx.AsyncClient, team: Team) -> None:
    assert (await http.get(f"{BASE}/event-groups", headers=team.headers)).status_code == 200
    wrong = base64.b64encode(b"customer_interface:not-the-key").decode()
    response = await http.get(f"{BASE}/event-groups", headers={"Authorization": f"Basic {wrong}"})
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": 401,
            "message": "Invalid API key",
            "description": "The API key is unknown or was revoked.",
        }
    }
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_group_configuration_api(http: httpx.AsyncClient, team: Team) -> None:
    [cart, *_] = await create_documented_groups(http, team)
    duplicate = await http.post(
        f"{BASE}/event-groups",
        json={"name": "Again", "text_id": "shopping_cart"},
        headers=team.headers,
    )
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["field"] == "text_id"
    invalid = await http.post(f"{BASE}/event-groups", json={"name": ""}, headers=team.headers)
    assert invalid.status_code == 400

    # An event type that the consumers created from traffic, and one created here.
    sent = await http.post(
        f"/api/1.0/events/cart.updated/{uuid.uuid4().hex[:8]}@example.com/1?wait=true",
        json={},
        headers=team.headers,
    )
    assert sent.status_code == 200
    found = await http.post(
        f"{BASE}/event-types", json={"name": "cart.updated"}, headers=team.headers
    )
    made = await http.post(
        f"{BASE}/event-types", json={"name": "cart.emptied"}, headers=team.headers
    )
    assert found.status_code == made.status_code == 201
    listed = await http.get(f"{BASE}/event-types", params={"name": "cart"}, headers=team.headers)
    assert listed.json()["data"]["total_items"] == 2
    types = {t["name"]: t["event_type_id"] for t in listed.json()["data"]["event_types"]}
    assert found.json()["data"]["event_type_id"] == types["cart.updated"]

    for type_id in types.values():
        put = await http.put(
            f"{BASE}/event-groups/{cart}/event-types/{type_id}", headers=team.headers
        )
        assert put.status_code == 204
    members = await http.get(f"{BASE}/event-groups/{cart}/event-types", headers=team.headers)
    assert members.json() == {
        "data": {
            "event_types": [
                {"event_type_id": types["cart.emptied"], "name": "cart.emptied"},
                {"event_type_id": types["cart.updated"], "name": "cart.updated"},
            ],
            "total_items": 2,
        }
    }
    removed = await http.delete(
        f"{BASE}/event-groups/{cart}/event-types/{types['cart.emptied']}", headers=team.headers
    )
    assert removed.status_code == 204
    unknown_type = await http.put(
        f"{BASE}/event-groups/{cart}/event-types/999999", headers=team.headers
    )
    assert unknown_type.status_code == 404

    renamed = await http.patch(
        f"{BASE}/event-groups/{cart}", json={"name": "Cart", "state": 0}, headers=team.headers
    )
    assert renamed.json()["data"] == {
        "event_group_id": cart,
        "name": "Cart",
        "text_id": "shopping_cart",
        "state": 0,
    }
    assert (
        await http.delete(f"{BASE}/event-groups/{cart}", headers=team.headers)
    ).status_code == 204
    assert (await http.get(f"{BASE}/event-groups/{cart}", headers=team.headers)).status_code == 404


async def test_another_team_sees_none_of_it(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    from admin.teams import create_team

    [cart, *_] = await create_documented_groups(http, team)
    async with db.acquire() as conn:
        _, other_key = await create_team(conn, f"other-{uuid.uuid4().hex[:8]}")
    other = {"X-API-KEY": other_key}
    assert (await http.get(f"{BASE}/event-groups/{cart}", headers=other)).status_code == 404
    listed = await http.get(f"{BASE}/event-groups", headers=other)
    assert listed.json() == {"data": {"event_groups": [], "total_items": 0}}


async def test_ingest_admin_event_group_commands(
    http: httpx.AsyncClient, db: asyncpg.Pool, settings: Settings, team: Team
) -> None:
    team_name = await db.fetchval("SELECT name FROM teams WHERE id = $1", team.id)

    async def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [str(BIN / "ingest-admin"), *args],
            env={**settings_env(settings), "PATH": str(BIN)},
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )

    created = await admin("create-event-group", team_name, "shipments", "Shipments")
    assert created.returncode == 0, created.stderr
    added = await admin(
        "add-event-types", team_name, "shipments", "order.shipped", "order.delivered"
    )
    assert "added 2 event type(s)" in added.stdout
    listing = await admin("list-event-groups", team_name)
    assert "shipments\tShipments\t1\torder.delivered, order.shipped" in listing.stdout
    again = await admin("create-event-group", team_name, "shipments", "Shipments")
    assert again.returncode == 1 and "already" in again.stderr

    response = await http.get(
        f"{BASE}/event-groups", params={"text_id": "shipments"}, headers=team.headers
    )
    [group] = response.json()["data"]["event_groups"]
    members = await http.get(
        f"{BASE}/event-groups/{group['event_group_id']}/event-types", headers=team.headers
    )
    assert [t["name"] for t in members.json()["data"]["event_types"]] == [
        "order.delivered",
        "order.shipped",
    ]
    removed = await admin("remove-event-types", team_name, "shipments", "order.shipped")
    assert "removed 1" in removed.stdout
    deleted = await admin("delete-event-group", team_name, "shipments")
    assert deleted.returncode == 0
    assert (await admin("delete-event-group", team_name, "shipments")).returncode == 1


async def test_a_null_state_on_create_is_the_default(http: httpx.AsyncClient, team: Team) -> None:
    """Found by the fuzz run: ``"state": null`` answered 500."""
    created = await http.post(
        f"{BASE}/event-groups",
        json={"name": "Nulls", "text_id": f"nulls_{team.id}", "state": None},
        headers=team.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["data"]["state"] == 1


async def test_a_state_written_as_an_integral_float_is_that_integer(
    http: httpx.AsyncClient, team: Team
) -> None:
    """Found by the fuzz run: 2.0 is an integer to JSON Schema, and was refused."""
    created = await http.post(
        f"{BASE}/event-groups",
        json={"name": "Floats", "text_id": f"floats_{team.id}", "state": 2.0},
        headers=team.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["data"]["state"] == 2
    refused = await http.post(
        f"{BASE}/event-groups",
        json={"name": "Halves", "text_id": f"halves_{team.id}", "state": 2.5},
        headers=team.headers,
    )
    assert refused.status_code == 400, refused.text
