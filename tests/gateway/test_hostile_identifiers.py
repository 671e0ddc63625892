"""Identifiers that could merge strangers (issue 17, point 3), on the real gateway,
consumers and PostgreSQL.

Two strangers who send the same junk-like identifier (``N/A``, ``(null)``, ``0.0``,
``undefined`` + a zero-width space, ...) stay two customers on every surface that
takes identifiers: the write is refused in the surface's own format (the batch
endpoint rejects the item), or, on the Segment surface, the junk id is ignored and
the call kept on the stranger's other identifier. A value a team blocked
(``ingest-admin block-identifier``) is refused for that team and accepted for
another. The policy itself is tested without I/O in ``tests/schemas/test_identifiers.py``.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import asyncpg
import httpx
import pytest

from admin.blocked_identifiers import block
from admin.teams import create_team
from ingest_gateway.read_model.outcomes import outcomes
from ingest_gateway.web import deps
from ingest_gateway.web.auth_cache import KEY_CACHE_SECONDS
from ingest_gateway.web.errors import ApiError
from ingest_gateway.write import blocked_values
from schemas.identity import is_junk
from schemas.messages import Identifiers, WriteMessage, utcnow
from tests.conftest import Team
from tests.gateway.test_hostile_input import refused, refused_write
from tests.schemas.test_identifiers import SENT_JUNK as JUNK  # (the look-alikes)
from tests.support import created_customer, customer_holding, eventually

WAIT = {"Prefer": "return=representation"}
EVENTS = "/rest-api/enterprise-interface/v1.0"
ZWSP = "\u200b"

# For ids that are our customer ids (001's _id, 003's customer_id, batch customerId).
JUNK_NUMBERS = ["0", "-1", "0.0", "00", "N/A", " (null)", ZWSP]


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@dataclass(frozen=True)
class Strangers:
    """A team with two customers who have nothing in common."""

    team: Team
    store: str  # the team's name: its 004 store's app_key
    emails: tuple[str, str]
    ids: tuple[str, str]  # their customer ids
    type_id: str  # a 003 event type


@pytest.fixture(scope="module")
async def strangers(db: asyncpg.Pool, gateway: str) -> Strangers:
    store = uid("strangers")
    async with db.acquire() as conn:
        team_id, key = await create_team(conn, store)
    team = Team(team_id, key)
    emails = (f"{uid('ann')}@example.com", f"{uid('bob')}@example.com")
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        ids = [await created_customer(http, db, team_id, team.headers, e) for e in emails]
    type_id = await db.fetchval(
        "INSERT INTO event_types (team_id, name) VALUES ($1, 'visit') RETURNING id::text", team_id
    )
    return Strangers(team, store, emails, (ids[0], ids[1]), type_id)


async def assert_still_strangers(db: asyncpg.Pool, s: Strangers) -> None:
    """Two customers still, and no identifier of the team is junk."""
    first, second = [await customer_holding(db, s.team.id, "email", e) for e in s.emails]
    assert first is not None and second is not None and first != second
    assert (str(first), str(second)) == s.ids
    rows = await db.fetch(
        "SELECT kind, value FROM customer_identifiers WHERE team_id = $1", s.team.id
    )
    assert rows and not [(r["kind"], r["value"]) for r in rows if is_junk(r["value"])]


async def assert_applied(db: asyncpg.Pool, response: httpx.Response) -> None:
    """Accepted, and answered after the consumers applied every message of it."""
    assert response.status_code == 200, response.text
    ids = response.headers["x-message-id"].split(",")
    assert await outcomes(db, ids) == dict.fromkeys(ids, "applied")


def segment_refused(response: httpx.Response) -> str:
    """A refusal in the Segment surface's format; its message, lower-cased."""
    assert response.status_code == 400, response.text
    assert "x-message-id" not in response.headers
    body = response.json()
    assert body["success"] is False and body["code"] == "invalid_request", body
    return str(body["message"]).lower()


# -- junk shared by two strangers, on each surface -----------------------------------


@pytest.mark.parametrize("junk", JUNK)
@pytest.mark.parametrize("field", ["customerExternalId", "phone"])
async def test_batch_items_naming_junk_are_rejected(
    http: httpx.AsyncClient, db: asyncpg.Pool, strangers: Strangers, field: str, junk: str
) -> None:
    ann, bob = strangers.emails
    items = [
        {"type": "customer", "email": ann, field: junk, "attributes": {"plan": "gold"}},
        {"type": "event", "email": bob, field: junk, "eventName": "visit"},
    ]
    answer = await http.post(
        "/api/1.0/batch?wait=true", json={"items": items}, headers=strangers.team.headers
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] == 0 and body["rejected"] == 2, body
    assert all("not a usable identifier" in i["error"] for i in body["items"]), body
    await assert_still_strangers(db, strangers)


@pytest.mark.parametrize(
    "address", ["null", "undefined" + ZWSP, "(null)", "0.0", "a@.", "a@b.", "a@.com", " @x.io"]
)
async def test_000_refuses_junk_and_broken_addresses(
    http: httpx.AsyncClient, db: asyncpg.Pool, strangers: Strangers, address: str
) -> None:
    headers = strangers.team.headers
    for path in (f"/api/1.0/customer/{address}", f"/api/1.0/events/visit/{address}/e-1"):
        # Both strangers would send it: neither is accepted.
        for _ in strangers.emails:
            assert "email" in refused(await http.post(path, json={}, headers=headers))
    customers = [{"email": address, "name": "Ann"}, {"email": address, "name": "Bob"}]
    answer = await http.post("/api/1.0/customers", json=customers, headers=headers)
    assert answer.status_code in (200, 400), answer.text
    assert "x-message-id" not in answer.headers
    await assert_still_strangers(db, strangers)


# Writes in which each stranger names the same junk customer id: (path, the body for
# an email and the junk, the check of the refusal), and what the refusal names.
JUNK_ID_WRITES = [
    pytest.param(
        "/api/1.0/batch",
        lambda email, junk: {"items": [{"type": "customer", "email": email, "customerId": junk}]},
        refused_write,
        "customer_id",
        id="batch-customerId",
    ),
    pytest.param(
        "/api/v1/event",
        lambda email, junk: {
            "user": {"email": email, "_id": junk},
            "event": {"update": {"plan": "x"}},
        },
        partial(refused, status=404),  # (a junk _id names nobody)
        "user",
        id="001-_id",
    ),
]


@pytest.mark.parametrize("junk", JUNK_NUMBERS)
@pytest.mark.parametrize(("path", "write", "refusal", "names"), JUNK_ID_WRITES)
async def test_writes_naming_a_junk_customer_id_are_refused(
    http: httpx.AsyncClient,
    db: asyncpg.Pool,
    strangers: Strangers,
    path: str,
    write: Callable[[str, str], Any],
    refusal: Callable[[httpx.Response], str],
    names: str,
    junk: str,
) -> None:
    for email in strangers.emails:
        response = await http.post(path, json=write(email, junk), headers=strangers.team.headers)
        assert names in refusal(response)
    await assert_still_strangers(db, strangers)


async def test_001_refuses_a_junk_email(
    http: httpx.AsyncClient, db: asyncpg.Pool, strangers: Strangers
) -> None:
    junk_email = {"user": {"email": "N/A"}, "event": {"update": {"plan": "x"}}}
    response = await http.post("/api/v1/event", json=junk_email, headers=strangers.team.headers)
    assert "n/a" in refused(response)
    await assert_still_strangers(db, strangers)


@pytest.mark.parametrize("junk", JUNK_NUMBERS)
async def test_003_refuses_a_junk_customer_id(
    http: httpx.AsyncClient, db: asyncpg.Pool, strangers: Strangers, junk: str
) -> None:
    body = {"event": {"event_type_id": strangers.type_id, "customer_id": junk}}
    response = await http.post(f"{EVENTS}/events", json=body, headers=strangers.team.headers)
    assert "customer_id" in refused(response, 422)
    await assert_still_strangers(db, strangers)


@pytest.mark.parametrize("junk", JUNK)
async def test_004_refuses_junk_identifiers(
    http: httpx.AsyncClient, db: asyncpg.Pool, strangers: Strangers, junk: str
) -> None:
    path = f"/core/v3/stores/{strangers.store}/custom_events"
    for email in strangers.emails:
        for customer in ({"external_id": junk, "email": email}, {"email": junk}):
            body = {"type": "visit", "id": uid("e"), "customer": customer}
            response = await http.post(path, json=body, headers=strangers.team.headers)
            assert "not a usable identifier" in refused(response)
    await assert_still_strangers(db, strangers)


@pytest.mark.parametrize("junk", [*JUNK, 0, 0.0, -1])
async def test_segment_ignores_a_junk_anonymous_id_beside_a_user_id(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team, junk: Any
) -> None:
    """Segment keeps a blocked value in the payload without making it an identifier:
    the calls are kept, on two customers, and nobody holds the junk id."""
    ann, bob = uid("ann"), uid("bob")
    identify = {"type": "identify", "userId": ann, "anonymousId": junk, "traits": {"n": 1}}
    track = {"type": "track", "userId": bob, "anonymousId": junk, "event": "Visited"}
    sent = await http.post(
        "/v1/batch", json={"batch": [identify, track]}, headers=basic(team.key) | WAIT
    )
    await assert_applied(db, sent)
    first = await customer_holding(db, team.id, "external_id", ann)
    second = await customer_holding(db, team.id, "external_id", bob)
    assert first is not None and second is not None and first != second
    kinds = await db.fetch(
        "SELECT DISTINCT kind FROM customer_identifiers WHERE team_id = $1", team.id
    )
    assert {r["kind"] for r in kinds} == {"external_id", "customer_id"}


@pytest.mark.parametrize("junk", JUNK)
async def test_segment_ignores_a_junk_user_id_beside_an_anonymous_id(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team, junk: str
) -> None:
    ann, bob = uid("anon"), uid("anon")
    for anonymous_id, path in ((ann, "/v1/page"), (bob, "/v1/track")):
        call = {"userId": junk, "anonymousId": anonymous_id, "event": "x", "name": "Home"}
        await assert_applied(db, await http.post(path, json=call, headers=basic(team.key) | WAIT))
    first = await customer_holding(db, team.id, "anonymous_id", ann)
    second = await customer_holding(db, team.id, "anonymous_id", bob)
    assert first is not None and second is not None and first != second
    assert await customer_holding(db, team.id, "external_id", junk.strip()) is None


@pytest.mark.parametrize("junk", JUNK)
async def test_segment_refuses_a_call_with_no_usable_identifier(
    http: httpx.AsyncClient, team: Team, junk: str
) -> None:
    headers = basic(team.key)
    alone = await http.post("/v1/track", json={"anonymousId": junk, "event": "x"}, headers=headers)
    assert "anonymousid" in segment_refused(alone)
    both = {"userId": junk, "anonymousId": junk, "event": "x"}
    assert "userid" in segment_refused(await http.post("/v1/track", json=both, headers=headers))
    # An alias links its two ids: a junk one is never ignored there.
    alias = {"type": "alias", "userId": uid("u"), "previousId": junk}
    refusal = segment_refused(
        await http.post("/v1/batch", json={"batch": [alias]}, headers=headers)
    )
    assert refusal.startswith("batch[0].previousid")


async def test_a_leading_space_or_invisible_character_names_the_same_customer(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    """' 1' and '1' are one person: trimmed (and NFKC, invisible characters removed),
    never stored apart as two customers."""
    email, external_id = f"{uid('one')}@example.com", uid("ext")
    items = [
        {"type": "customer", "email": email, "customerExternalId": f" {external_id}"},
        {"type": "customer", "customerExternalId": f"{external_id}{ZWSP}", "attributes": {"a": 1}},
        {"type": "customer", "customerExternalId": f"\u00a0{external_id}\t"},
    ]
    answer = await http.post(
        "/api/1.0/batch?wait=true", json={"items": items}, headers=team.headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 3, answer.text
    customer = await customer_holding(db, team.id, "email", email)
    assert customer is not None
    assert await customer_holding(db, team.id, "external_id", external_id) == customer
    call = {"userId": f" {external_id}{ZWSP}", "event": "x"}
    await assert_applied(
        db, await http.post("/v1/track", json=call, headers=basic(team.key) | WAIT)
    )
    rows = await db.fetch(
        "SELECT kind, value FROM customer_identifiers WHERE team_id = $1 AND kind <> 'customer_id'",
        team.id,
    )
    assert {(r["kind"], r["value"]) for r in rows} == {
        ("email", email),
        ("external_id", external_id),
    }


# -- a team's blocked values -----------------------------------------------------------


async def test_a_blocked_value_is_refused_for_its_team_and_accepted_for_another(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    async with db.acquire() as conn:
        other_id, other_key = await create_team(conn, uid("other"))
        shared, address = uid("qa-user"), f"{uid('qa')}@example.com"
        # Blocked before the team's first write: no list of it is cached yet.
        assert await block(conn, team.id, "external_id", f" {shared} ") == shared
        assert await block(conn, team.id, "email", address.upper()) == address
        assert await block(conn, team.id, "anonymous_id", shared) == shared
    other = Team(other_id, other_key)
    store = await db.fetchval("SELECT name FROM teams WHERE id = $1", team.id)
    other_store = await db.fetchval("SELECT name FROM teams WHERE id = $1", other.id)

    # Batch: the item alone is rejected, the others accepted.
    items = [
        {"type": "customer", "email": f"{uid('ann')}@example.com", "customerExternalId": shared},
        {"type": "customer", "email": f"{uid('bob')}@example.com"},
    ]
    answer = (
        await http.post("/api/1.0/batch?wait=true", json={"items": items}, headers=team.headers)
    ).json()
    assert [i["status"] for i in answer["items"]] == ["rejected", "accepted"], answer
    assert "is blocked for this team" in answer["items"][0]["error"]
    answer = (
        await http.post("/api/1.0/batch?wait=true", json={"items": items}, headers=other.headers)
    ).json()
    assert answer["accepted"] == 2, answer

    # 000: the email, in the surface's format.
    response = await http.post(f"/api/1.0/customer/{address}", data={}, headers=team.headers)
    assert "blocked" in refused(response)
    response = await http.post(
        f"/api/1.0/customer/{address}?wait=true", data={}, headers=other.headers
    )
    assert response.status_code == 200, response.text

    # 004.
    body = {"type": "visit", "id": uid("e"), "customer": {"external_id": shared}}
    response = await http.post(
        f"/core/v3/stores/{store}/custom_events", json=body, headers=team.headers
    )
    assert "blocked" in refused(response)
    body = {"type": "visit", "id": uid("e"), "customer": {"external_id": shared}}
    response = await http.post(
        f"/core/v3/stores/{other_store}/custom_events", json=body, headers=other.headers
    )
    assert response.status_code == 200, response.text

    # Segment: a blocked id beside another is ignored (two strangers stay two), alone 400.
    ann, bob = uid("anon"), uid("anon")
    for anonymous_id in (ann, bob):
        call = {"userId": shared, "anonymousId": anonymous_id, "event": "x"}
        await assert_applied(
            db, await http.post("/v1/track", json=call, headers=basic(team.key) | WAIT)
        )
    first = await customer_holding(db, team.id, "anonymous_id", ann)
    second = await customer_holding(db, team.id, "anonymous_id", bob)
    assert first is not None and second is not None and first != second
    alone = await http.post(
        "/v1/track", json={"userId": shared, "event": "x"}, headers=basic(team.key)
    )
    assert "blocked" in segment_refused(alone)
    call = {"userId": uid("u"), "anonymousId": shared, "event": "x"}
    await assert_applied(
        db, await http.post("/v1/track", json=call, headers=basic(team.key) | WAIT)
    )
    call = {"userId": shared, "event": "x"}
    await assert_applied(
        db, await http.post("/v1/track", json=call, headers=basic(other.key) | WAIT)
    )

    assert await customer_holding(db, team.id, "external_id", shared) is None
    assert await customer_holding(db, team.id, "anonymous_id", shared) is None
    assert await customer_holding(db, team.id, "email", address) is None
    assert await customer_holding(db, other.id, "external_id", shared) is not None
    assert await customer_holding(db, other.id, "email", address) is not None


async def test_a_value_blocked_later_is_refused_within_the_cache_time(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    """Gateways read a team's list again after ``KEY_CACHE_SECONDS``: the surfaces that
    name existing customers (001 by email, 003 by customer id) refuse them then."""
    email = f"{uid('later')}@example.com"
    customer_id = await created_customer(http, db, team.id, team.headers, email)
    type_id = await db.fetchval(
        "INSERT INTO event_types (team_id, name) VALUES ($1, 'visit') RETURNING id::text", team.id
    )
    async with db.acquire() as conn:
        await block(conn, team.id, "email", email)
        await block(conn, team.id, "customer_id", customer_id)

    update = {"user": {"email": email}, "event": {"update": {"plan": "x"}}}
    event = {"event": {"event_type_id": type_id, "customer_id": customer_id}}

    async def refused_now() -> bool:
        by_email = await http.post("/api/v1/event", json=update, headers=team.headers)
        by_id = await http.post(f"{EVENTS}/events", json=event, headers=team.headers)
        if by_email.status_code != 400 or by_id.status_code != 400:
            assert {by_email.status_code, by_id.status_code} <= {200, 201, 400}
            return False  # still the list read before the block
        return "blocked" in refused(by_email) and "blocked" in refused(by_id)

    await eventually(refused_now, timeout=KEY_CACHE_SECONDS + 10, interval=0.5)


# -- the gateway's rule and cache, without I/O -----------------------------------------


def write(api: str, identifiers: Identifiers) -> WriteMessage:
    now = utcnow()
    return WriteMessage(
        id=str(uuid.uuid4()),
        team_id=1,
        op="upsert_customer",
        identifiers=identifiers,
        occurred_at=now,
        received_at=now,
        api=api,
    )


def test_a_blocked_value_is_dropped_only_where_the_api_keeps_the_write() -> None:
    blocked = frozenset({("external_id", "qa"), ("anonymous_id", "kiosk")})
    named = Identifiers(external_id="qa", anonymous_id="device-1")
    kept = blocked_values._unblocked(write("segment_api", named), blocked)
    assert kept.identifiers == Identifiers(anonymous_id="device-1")
    with pytest.raises(ApiError) as refusal:  # nothing usable left
        blocked_values._unblocked(write("segment_api", Identifiers(anonymous_id="kiosk")), blocked)
    assert refusal.value.status == 400 and "'kiosk' is blocked" in refusal.value.message
    with pytest.raises(ApiError):  # every other API refuses the write
        blocked_values._unblocked(write("batch_api", named), blocked)
    untouched = write("batch_api", Identifiers(external_id="qa-2", email="qa@x.io"))
    assert blocked_values._unblocked(untouched, blocked) is untouched


async def test_the_blocked_list_is_cached_and_outlives_an_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[int] = []
    failure: list[Exception] = []

    async def read(_db: Any, team_id: int) -> frozenset[tuple[str, str]]:
        reads.append(team_id)
        if failure:
            raise failure[0]
        return frozenset({("external_id", "qa")})

    monkeypatch.setattr(blocked_values, "blocked_identifiers", read)
    monkeypatch.setattr(deps, "db", lambda _request: None)
    request: Any = None
    team_id = -int(uuid.uuid4().int % 10**9) - 1  # a team no other test caches

    first = await blocked_values.team_blocked(request, team_id)
    assert first == {("external_id", "qa")}
    assert await blocked_values.team_blocked(request, team_id) is first and len(reads) == 1

    blocked_values._BLOCKED[team_id] = (first, 0.0)  # the cache time is over
    failure.append(OSError("connection refused"))  # and PostgreSQL is away
    assert await blocked_values.team_blocked(request, team_id) is first  # the last list holds
    assert len(reads) == 2
    assert await blocked_values.team_blocked(request, team_id) is first and len(reads) == 2

    blocked_values._BLOCKED.pop(team_id)  # never read: nothing to fall back on, so 503
    with pytest.raises(OSError):
        await blocked_values.team_blocked(request, team_id)
