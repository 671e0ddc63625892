"""Tracking plans (issue #22) against the real gateway, Kafka and PostgreSQL: planned,
unplanned and violating events of the 000 and 004 APIs and the official Segment
Python SDK under each mode, checked in ``events`` and ``tracking_violations``; the
``?validate=true`` dry run; a new plan version on every gateway process within
seconds."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import segment.analytics.client as segment  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

from admin import tracking_plans
from admin.blocked_identifiers import block
from runtime.settings import Settings
from schemas.tracking_plans import dumps, parse_plan
from tests.conftest import Team, private_gateway
from tests.support import Process, eventually, free_port

WAIT = {"Prefer": "return=representation"}

ORDER = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "total": {"type": "number", "minimum": 0},
        "coupon": {"type": "string"},
    },
    "required": ["order_id"],
}
TRAITS = {"type": "object", "properties": {"plan": {"enum": ["free", "pro"]}}}


def plan(mode: str = "allow", unplanned: str = "allow", **events: Any) -> dict[str, Any]:
    return {
        "mode": mode,
        "unplanned": unplanned,
        "events": events or {"Order Completed": {"schema": ORDER}},
        "identify": {"schema": TRAITS},
        "group": {"schema": {"type": "object", "properties": {"seats": {"type": "integer"}}}},
    }


async def activate(db: asyncpg.Pool, team: Team, document: dict[str, Any]) -> int:
    """Upload and activate ``document`` as the team's next version; returns the version."""
    async with db.acquire() as conn:
        version = await tracking_plans.upload(conn, team.id, dumps(parse_plan(document)))
        await tracking_plans.activate(conn, team.id, version)
    return version


async def dry_run_version(http: httpx.AsyncClient, team: Team) -> Any:
    answer = await http.post(
        "/api/1.0/events/Probe/probe@example.com/1?validate=true", json={}, headers=team.headers
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["planVersion"]


async def in_force(
    http: httpx.AsyncClient, team: Team, version: int | None, times: int = 1
) -> None:
    """Wait until ``times`` dry runs in a row were checked against ``version``."""

    async def seen() -> bool:
        for _ in range(times):
            if await dry_run_version(http, team) != version:
                return False
        return True

    await eventually(seen, timeout=15)


async def stored(db: asyncpg.Pool, team: Team, name: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT e.id::text, e.body::text FROM events e JOIN event_types t ON t.id = e.event_type_id"
        " WHERE e.team_id = $1 AND t.name = $2 ORDER BY e.id",
        team.id,
        name,
    )
    return [dict(r) for r in rows]


async def violations(db: asyncpg.Pool, team: Team) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT message_id::text, action, event_name, surface, failures, message, library,"
        " attempt, plan_version FROM tracking_violations WHERE team_id = $1 ORDER BY id",
        team.id,
    )
    return [dict(r) for r in rows]


def rules(violation: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["pointer"], f["rule"]) for f in json.loads(violation["failures"])}


async def send_000(http: httpx.AsyncClient, team: Team, name: str, body: Any) -> httpx.Response:
    who = f"u-{uuid.uuid4().hex[:8]}@example.com"
    answer = await http.post(
        f"/api/1.0/events/{name}/{who}/{uuid.uuid4().hex[:6]}?wait=true",
        json=body,
        headers=team.headers,
    )
    assert answer.status_code == 200, answer.text
    return answer


@pytest.mark.parametrize("mode", ["allow", "omit", "block"])
async def test_000_api_planned_violating_and_unplanned_events_under_each_mode(
    mode: str, http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    version = await activate(db, team, plan(mode=mode, unplanned="block"))
    await in_force(http, team, version)

    good = await send_000(http, team, "Order Completed", {"order_id": "o-1", "total": 10})
    assert "X-Tracking-Violations" not in good.headers
    bad = await send_000(http, team, "Order Completed", {"order_id": "o-2", "total": "ten"})
    assert bad.headers["X-Tracking-Violations"] == "1"
    unplanned = await send_000(http, team, "order_completed", {"order_id": "o-3"})
    assert unplanned.headers["X-Tracking-Violations"] == "1"
    trait = await http.post(
        f"/api/1.0/customer/t-{uuid.uuid4().hex[:6]}@example.com?wait=true",
        json={"plan": "gold", "name": "Ana"},
        headers=team.headers,
    )
    assert trait.headers["X-Tracking-Violations"] == "1"

    kept = [r["body"] for r in await stored(db, team, "Order Completed")]
    if mode == "allow":
        assert kept == ['{"total": 10, "order_id": "o-1"}', '{"total": "ten", "order_id": "o-2"}']
    elif mode == "omit":
        assert kept == ['{"total": 10, "order_id": "o-1"}', '{"order_id": "o-2"}']
    else:
        assert kept == ['{"total": 10, "order_id": "o-1"}']
    assert await stored(db, team, "order_completed") == []  # unplanned: blocked
    found = await violations(db, team)
    assert [(v["event_name"], v["action"], v["surface"]) for v in found] == [
        ("Order Completed", mode, "customers_api"),
        ("order_completed", "block", "customers_api"),
        ("identify", mode, "customers_api"),
    ]
    assert rules(found[0]) == {("/properties/total", "type")}
    assert rules(found[1]) == {("/event", "unplanned")}
    assert rules(found[2]) == {("/traits/plan", "enum")}
    assert '"total": "ten"' in found[0]["message"]  # the message as sent, even when omitted
    assert all(v["plan_version"] == version for v in found)
    customer_plan = await db.fetchval(
        "SELECT c.attributes->>'plan' FROM customers c WHERE c.team_id = $1 AND"
        " c.attributes ? 'name'",
        team.id,
    )
    assert customer_plan == {"allow": "gold", "omit": None, "block": None}[mode]


async def test_erasing_a_customer_erases_its_violations_too(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    """Violations keep the message as sent, personal data included: a delete takes the
    ones naming the customer with it, and leaves everyone else's."""
    version = await activate(db, team, plan(mode="block"))
    await in_force(http, team, version)
    erased, kept = (f"{n}-{uuid.uuid4().hex[:6]}@example.com" for n in ("gone", "kept"))
    for who in (erased, kept):
        answer = await http.post(
            f"/api/1.0/events/Order Completed/{who}/1?wait=true",
            json={"order_id": 7},  # not a string: blocked
            headers=team.headers,
        )
        assert answer.headers["X-Tracking-Violations"] == "1"
    await http.post(f"/api/1.0/customer/{erased}?wait=true", json={}, headers=team.headers)
    deleted = await http.delete(f"/api/1.0/customer/{erased}?wait=true", headers=team.headers)
    assert deleted.status_code == 200, deleted.text
    left = [json.loads(v["message"])["identifiers"]["email"] for v in await violations(db, team)]
    assert left == [kept]


async def test_004_api_modes_per_event(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    shipped = {"type": "object", "properties": {"items": {"type": "integer"}}}
    version = await activate(
        db,
        team,
        plan(
            mode="allow",
            unplanned="allow",
            order_shipped={"schema": shipped, "mode": "omit"},
            order_refunded={"schema": shipped, "mode": "block"},
        ),
    )
    await in_force(http, team, version)
    name = await db.fetchval("SELECT name FROM teams WHERE id = $1", team.id)
    path = f"/core/v3/stores/{name}/custom_events"

    async def send(kind: str, properties: dict[str, Any]) -> httpx.Response:
        body = {
            "type": kind,
            "id": uuid.uuid4().hex,
            "customer": {"email": f"c-{uuid.uuid4().hex[:6]}@example.com"},
            "properties": properties,
        }
        answer = await http.post(path, json=body, headers={**team.headers, **WAIT})
        assert answer.status_code == 200, answer.text
        return answer

    planned = await send("order_shipped", {"items": 3})
    assert planned.json()["status"] == "stored"
    assert "X-Tracking-Violations" not in planned.headers
    omitted = await send("order_shipped", {"items": "three", "gift": True})
    assert omitted.json()["status"] == "stored"
    assert omitted.json()["properties"] == {"gift": True}
    blocked = await send("order_refunded", {"items": "three"})
    assert blocked.json()["status"] == "blocked"
    assert blocked.headers["X-Tracking-Violations"] == "1"
    unplanned = await send("order_lost", {"why": "rain"})
    assert unplanned.json()["status"] == "stored"  # unplanned allowed, and recorded
    assert await stored(db, team, "order_refunded") == []
    found = await violations(db, team)
    assert [(v["event_name"], v["action"], v["surface"]) for v in found] == [
        ("order_shipped", "omit", "store_events_api"),
        ("order_refunded", "block", "store_events_api"),
        ("order_lost", "allow", "store_events_api"),
    ]


async def test_segment_python_sdk_track_identify_group_against_a_plan(
    gateway: str, http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    version = await activate(db, team, plan(mode="block", unplanned="allow"))
    await in_force(http, team, version)
    client = segment.Client(write_key=team.key, host=gateway, sync_mode=True, max_retries=1)

    def calls() -> None:
        client.track("u-1", "Order Completed", {"order_id": "o-1", "total": 5})
        client.track("u-1", "Order Completed", {"total": -1})  # two rules broken: blocked
        client.track("u-1", "Cart Viewed", {"items": 2})  # unplanned, allowed
        client.identify("u-1", {"plan": "enterprise"})  # blocked
        client.group("u-1", "g-1", {"seats": "many"})  # blocked

    await asyncio.to_thread(calls)

    async def all_recorded() -> list[dict[str, Any]] | None:
        found = await violations(db, team)
        return found if len(found) == 4 else None

    found = await eventually(all_recorded)
    assert [(v["event_name"], v["action"]) for v in found] == [
        ("Order Completed", "block"),
        ("Cart Viewed", "allow"),
        ("identify", "block"),
        ("group", "block"),
    ]
    assert rules(found[0]) == {("/properties", "required"), ("/properties/total", "minimum")}
    assert {v["library"] for v in found[:2]} == {"analytics-python"}
    assert all(v["surface"] == "segment_api" for v in found)
    await eventually(lambda: stored(db, team, "Cart Viewed"))
    assert len(await stored(db, team, "Order Completed")) == 1
    assert (
        await db.fetchval("SELECT count(*) FROM customer_groups WHERE team_id = $1", team.id) == 0
    )


async def test_dry_run_answers_with_the_violations_and_publishes_nothing(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    version = await activate(db, team, plan(mode="block", unplanned="block"))
    await in_force(http, team, version)
    batch = {
        "batch": [
            {"type": "track", "userId": "d-1", "event": "Order Completed", "properties": {}},
            {"type": "track", "userId": "d-1", "event": "Nope"},
            {"type": "identify", "userId": "d-1", "traits": {"plan": "pro"}},
        ]
    }
    answer = await http.post("/v1/batch?validate=true", json=batch, auth=(team.key, ""))
    assert answer.status_code == 200, answer.text
    said = answer.json()
    assert said["dryRun"] is True and said["planVersion"] == version and said["valid"] is False
    assert [(m["event"], m["action"]) for m in said["messages"]] == [
        ("Order Completed", "block"),
        ("Nope", "block"),
        ("upsert_customer", "store"),
    ]
    assert said["messages"][0]["violations"] == [
        {
            "pointer": "/properties",
            "rule": "required",
            "message": '"order_id" is a required property',
        }
    ]
    assert said["messages"][1]["violations"][0]["rule"] == "unplanned"
    # Nothing was published: a write sent after it is the first thing the store has.
    await send_000(http, team, "Order Completed", {"order_id": "after"})
    assert await violations(db, team) == []
    assert await db.fetchval("SELECT count(*) FROM customers WHERE team_id = $1", team.id) == 1


@dataclass(frozen=True)
class TwoProcesses:
    base: str
    metrics_port: int


@pytest.fixture
async def two_processes(
    settings: Settings, tmp_path: Path, consumer: Process
) -> AsyncIterator[TwoProcesses]:
    """Two gateway processes on one port, reading the plans every 0.5 s, with metrics
    on a port of their own."""
    metrics_port = free_port()
    async with private_gateway(
        settings,
        tmp_path,
        "plans-gateway",
        gateway_workers=2,
        tracking_plan_refresh_s=0.5,
        gateway_metrics_port=metrics_port,
    ) as (base, _):
        yield TwoProcesses(base, metrics_port)


async def test_a_new_plan_version_is_in_force_on_every_gateway_process_within_seconds(
    two_processes: TwoProcesses, db: asyncpg.Pool, team: Team
) -> None:
    async with httpx.AsyncClient(base_url=two_processes.base, timeout=30) as http:
        first = await activate(db, team, plan())
        await in_force(http, team, first, times=20)  # 20 in a row: both processes
        started = time.monotonic()
        second = await activate(db, team, plan(unplanned="block"))
        await in_force(http, team, second, times=20)
        assert time.monotonic() - started < 5
        async with db.acquire() as conn:
            await tracking_plans.run(  # ingest-admin plan-rollback
                settings=None,  # type: ignore[arg-type]  # (not needed by a rollback)
                conn=conn,
                args=_args(command="plan-rollback", team=str(team.id)),
            )
        await in_force(http, team, first, times=20)
        # Counted by what the plan did: the first version allows unplanned events.
        for _ in range(3):
            await send_000(http, team, "Unplanned Event", {})

        async def counted() -> bool:
            async with httpx.AsyncClient(timeout=10) as client:
                text = (
                    await client.get(f"http://127.0.0.1:{two_processes.metrics_port}/metrics")
                ).text
            found = {
                sample.labels["action"]: sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "ingest_gateway_tracking_violations_total"
            }
            return found == {"allow": 3.0, "omit": 0.0, "block": 0.0}

        await eventually(counted, timeout=15, interval=0.2)


def _args(**values: Any) -> argparse.Namespace:
    return argparse.Namespace(**values)


async def test_validate_is_a_boolean_as_wait_is(http: httpx.AsyncClient, team: Team) -> None:
    for name in ("validate", "wait"):
        answer = await http.post(
            f"/api/1.0/customer/flag@example.com?{name}=maybe", json={}, headers=team.headers
        )
        assert answer.status_code == 400, answer.text
        assert name in answer.json()["error"]


async def test_validate_is_checked_before_the_body_as_wait_is(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    """A ``validate`` that is no boolean is refused whatever the body holds: before a
    blocked value, and on a batch whose every item was refused (as the OpenAPI types
    it; ``wait`` is read the same way)."""
    address = f"blocked-{uuid.uuid4().hex[:8]}@example.com"
    async with db.acquire() as conn:
        await block(conn, team.id, "email", address)
    items = [{"type": "customer", "email": "not an email"}]
    for name in ("validate", "wait"):
        answer = await http.post(
            f"/api/1.0/customer/{address}?{name}=maybe", json={}, headers=team.headers
        )
        assert answer.status_code == 400, answer.text
        assert name in answer.json()["error"]
        answer = await http.post(
            f"/api/1.0/batch?{name}=null", json={"items": items}, headers=team.headers
        )
        assert answer.status_code == 400, answer.text
        assert name in answer.json()["error"]
    # Without the flag, the blocked value and the refused item are answered as ever.
    answer = await http.post(f"/api/1.0/customer/{address}", json={}, headers=team.headers)
    assert answer.status_code == 400 and "blocked" in answer.json()["error"]
    answer = await http.post("/api/1.0/batch", json={"items": items}, headers=team.headers)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (0, 1)
