"""The naive alternative: a minimal FastAPI app writing each request straight to PostgreSQL.

What a user might write instead of the pipeline: no broker, pydantic models, and per
item a lookup-or-create of the customer and an insert of the event, row by row, in
one transaction per request. Same store, same answers as the gateway's single-event
and batch calls, so the benchmark sends it the same requests.

    NAIVE_DATABASE_URL=... NAIVE_TEAM_ID=1 uvicorn bench.naive_app:app
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from pydantic import BaseModel

TEAM_ID = int(os.environ.get("NAIVE_TEAM_ID", "1"))


class Item(BaseModel):
    type: str = "event"
    email: str
    eventName: str
    externalId: str | None = None
    body: dict[str, Any] = {}


class Batch(BaseModel):
    items: list[Item]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.db = await asyncpg.create_pool(os.environ["NAIVE_DATABASE_URL"], max_size=10)
    yield
    await app.state.db.close()


app = FastAPI(lifespan=lifespan)


async def _customer(conn: Any, email: str, now: datetime) -> int:
    found = await conn.fetchval(
        "SELECT customer_id FROM customer_identifiers"
        " WHERE team_id = $1 AND kind = 'email' AND value = $2",
        TEAM_ID,
        email,
    )
    if found is not None:
        return int(found)
    customer_id = await conn.fetchval(
        "INSERT INTO customers (team_id, first_seen_at, last_updated_at)"
        " VALUES ($1, $2, $2) RETURNING id",
        TEAM_ID,
        now,
    )
    await conn.execute(
        "INSERT INTO customer_identifiers (team_id, kind, value, customer_id)"
        " VALUES ($1, 'email', $2, $3) ON CONFLICT DO NOTHING",
        TEAM_ID,
        email,
        customer_id,
    )
    return int(customer_id)


async def _event_type(conn: Any, name: str) -> int:
    select = "SELECT id FROM event_types WHERE team_id = $1 AND name = $2"
    found = await conn.fetchval(select, TEAM_ID, name)
    if found is None:
        await conn.execute(
            "INSERT INTO event_types (team_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            TEAM_ID,
            name,
        )
        found = await conn.fetchval(select, TEAM_ID, name)
    return int(found)


async def _event(conn: Any, item: Item) -> str:
    now = datetime.now(UTC)
    email = item.email.strip().lower()
    customer_id = await _customer(conn, email, now)
    type_id = await _event_type(conn, item.eventName)
    event_id = str(uuid.uuid4())
    await conn.execute(
        "INSERT INTO events (id, team_id, customer_id, event_type_id, external_id, body,"
        " occurred_at, received_at, version_message_id)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $7, $1)",
        event_id,
        TEAM_ID,
        customer_id,
        type_id,
        item.externalId,
        orjson.dumps(item.body).decode(),
        now,
    )
    return event_id


@app.post("/api/1.0/events/{event_name}/{email}/{external_id}")
async def create_event(event_name: str, email: str, external_id: str, request: Request) -> Any:
    body = orjson.loads(await request.body() or b"{}")
    item = Item(email=email, eventName=event_name, externalId=external_id, body=body)
    async with request.app.state.db.acquire() as conn, conn.transaction():
        event_id = await _event(conn, item)
    return {"id": event_id, "eventName": event_name, "externalId": external_id, "body": body}


@app.post("/api/1.0/batch")
async def batch(payload: Batch, request: Request) -> Any:
    results = []
    async with request.app.state.db.acquire() as conn, conn.transaction():
        for index, item in enumerate(payload.items):
            event_id = await _event(conn, item)
            results.append({"index": index, "status": "accepted", "id": event_id})
    return {"accepted": len(results), "rejected": 0, "items": results}
