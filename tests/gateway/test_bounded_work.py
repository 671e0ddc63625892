"""Bounded work per request (issue #17, point 1), against the real gateway.

The worst bodies we could construct within the limits (``bench.bounded_work``), sent
with and without a key while ``/healthz`` is polled on the same gateway process: each
is refused with a 4xx, nothing published, and the gateway keeps answering ``/healthz``
(before the fix, one 5 KB gzip body held the event loop for 2.7 s). The figures per
surface, beside legitimate bodies of the same size, come from ``make bench`` and are
in docs/limits.md; the bound asserted here is generous, so that the test fails on a
regression in kind (the whole body parsed or walked in one go), not on a slow machine.
"""

from __future__ import annotations

import gzip
import json

import asyncpg
import httpx
import pytest

from bench.bounded_work import Body, hostile_bodies, measure
from ingest_gateway.write.validation import containers
from schemas.limits import MAX_JSON_CONTAINERS
from tests.conftest import Team
from tests.gateway.test_api_segment import basic, events_of, uid
from tests.support import eventually

# Far above what a request that gives the event loop turns costs, far below the
# 2.7 s the whole-body parse and walk cost before.
HEALTHZ_BOUND_S = 0.5
NAMES = [body.name for body in hostile_bodies("key")]


def _named(team: Team, name: str) -> Body:
    return {body.name: body for body in hostile_bodies(team.key, team.id)}[name]


def test_the_bodies_are_as_hostile_as_claimed(team: Team) -> None:
    bomb = _named(team, "segment: gzip bomb, no key")
    assert len(bomb.body) < 16 * 1024
    assert len(gzip.decompress(bomb.body)) > 5_000_000
    assert containers(_named(team, "segment: bomb inflated, key").body) > 6 * MAX_JSON_CONTAINERS


@pytest.mark.parametrize("name", NAMES)
async def test_the_worst_bodies_never_hold_the_gateway(
    gateway: str, http: httpx.AsyncClient, team: Team, name: str
) -> None:
    body = _named(team, name)
    measured = await measure(gateway, body, repeats=3)
    assert set(measured.statuses) == {body.status}, measured
    assert measured.healthz_max < HEALTHZ_BOUND_S, measured
    # Nothing was published: a refused request names no message.
    response = await http.post(body.path, content=body.body, headers=body.headers)
    assert "x-message-id" not in response.headers


# -- stored bytes bounded by received bytes (issue #17, point 2) -------------------------


def _inheriting_batch(user_id: str, messages: int, context_bytes: int) -> bytes:
    context = {"library": {"name": "analytics-python"}, "pad": "c" * context_bytes}
    calls = [
        {
            "type": "track",
            "userId": user_id,
            "event": "Inherits",
            "messageId": f"{user_id}-{i}",
            "properties": {"sku": "s" * 150},
        }
        for i in range(messages)
    ]
    return json.dumps({"batch": calls, "context": context}).encode()


async def test_a_shared_context_cannot_make_the_store_grow_beyond_twice_the_request(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    # The case: 40 messages inheriting ~60 KB each from a ~64 KB request.
    user_id = uid()
    amplifying = _inheriting_batch(user_id, 40, 60_000)
    refused = await http.post("/v1/batch", content=amplifying, headers=basic(team))
    assert refused.status_code == 413, refused.text
    assert refused.json()["message"].startswith("context: the batch's context")
    assert "x-message-id" not in refused.headers

    # As much inheritance as the bound allows is accepted, and stored within it.
    sent = _inheriting_batch(user_id, 8, 120)
    accepted = await http.post("/v1/batch", content=sent, headers=basic(team))
    assert accepted.status_code == 200, accepted.text

    async def eight() -> list[asyncpg.Record] | None:
        found = await events_of(db, team, user_id)
        return found if len(found) == 8 else None

    stored = await eventually(eight)
    stored_json = sum(len(e["body"]) + len(e["context"] or "") for e in stored)
    assert stored_json <= 2 * len(sent), (stored_json, len(sent))
    assert all("pad" in json.loads(e["context"]) for e in stored)
