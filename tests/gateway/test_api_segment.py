"""The Segment-spec surface (``/v1``) on the real pipeline: calls as the SDKs send them."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from admin.teams import create_team, set_allowed_origins
from ingest_gateway.surfaces import segment_examples as examples
from ingest_gateway.surfaces.segment_api import project_settings, refusal
from runtime.settings import Settings
from schemas.limits import MAX_SEGMENT_MESSAGE_BYTES
from schemas.messages import client_message_id
from tests.conftest import Team, private_gateway
from tests.support import BIN, customer_holding, eventually, free_port

WAIT = {"Prefer": "return=representation"}
ORIGIN = "https://shop.example"


def basic(team: Team) -> dict[str, str]:
    """HTTP Basic as the SDKs send it: the write key as the username, no password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{team.key}:".encode()).decode()}


def uid(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def identifiers_of(db: asyncpg.Pool, customer_id: int) -> set[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT kind, value FROM customer_identifiers"
        " WHERE customer_id = $1 AND kind <> 'customer_id'",  # (every customer has its own)
        customer_id,
    )
    return {(r["kind"], r["value"]) for r in rows}


async def attributes_of(db: asyncpg.Pool, customer_id: int | None) -> dict[str, Any]:
    raw = await db.fetchval("SELECT attributes::text FROM customers WHERE id = $1", customer_id)
    return dict(json.loads(raw)) if raw else {}


async def events_of(db: asyncpg.Pool, team: Team, user_id: str) -> list[asyncpg.Record]:
    """The events of the customer holding ``user_id`` (as external id), oldest first."""
    return await db.fetch(
        "SELECT e.*, t.name AS type_name FROM events e"
        " JOIN event_types t ON t.id = e.event_type_id"
        " JOIN customer_identifiers i ON i.customer_id = e.customer_id"
        " WHERE i.team_id = $1 AND i.kind = 'external_id' AND i.value = $2"
        " ORDER BY e.occurred_at, e.id",
        team.id,
        user_id,
    )


async def one_users_batch(
    http: httpx.AsyncClient,
    team: Team,
    path: str,
    messages: list[dict[str, Any]],
    shared: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> tuple[str, httpx.Response]:
    """POST ``messages`` as a new user's Segment batch with the batch-wide fields
    ``shared`` (sentAt, context, ...); the user's id and the answer (asserted 200)."""
    user_id = uid()
    batch = {"batch": [{**m, "userId": user_id} for m in messages], **shared}
    response = await http.post(path, json=batch, headers={**basic(team), **(headers or {})})
    assert response.status_code == 200, response.text
    return user_id, response


async def sentinel(http: httpx.AsyncClient, db: asyncpg.Pool, team: Team, user_id: str) -> None:
    """Send one more event for ``user_id`` and wait for it: whatever was published for
    that customer before it (same partition) has been applied by then."""
    name = uid("sentinel")
    sent = await http.post(
        "/v1/track", json={"userId": user_id, "event": name}, headers=basic(team)
    )
    assert sent.status_code == 200, sent.text

    async def arrived() -> bool:
        return any(e["type_name"] == name for e in await events_of(db, team, user_id))

    await eventually(arrived)


# -- each call type, stored as mapped ----------------------------------------------


async def test_identify_stores_traits_and_identifiers(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    user_id, anonymous_id = uid(), uid("anon")
    address = f"{uid('Peter')}@Example.com"
    call = {
        "userId": user_id,
        "anonymousId": anonymous_id,
        "traits": {"name": "Peter Gibbons", "email": address, "plan": "premium"},
    }
    response = await http.post("/v1/identify", json=call, headers=basic(team))
    assert response.status_code == 200, response.text
    assert response.json() == examples.SUCCESS == {"success": True}

    customer = await eventually(lambda: customer_holding(db, team.id, "external_id", user_id))
    attributes = await eventually(lambda: attributes_of(db, customer))
    assert attributes["plan"] == "premium" and attributes["name"] == "Peter Gibbons"
    assert await identifiers_of(db, customer) >= {
        ("external_id", user_id),
        ("anonymous_id", anonymous_id),
        ("email", address.lower()),
    }

    # The seed-000 read finds the person by the email of the identify call.
    found = await http.get(f"/api/1.0/customer/{address.lower()}", headers=team.headers)
    assert found.status_code == 200, found.text
    assert found.json()["plan"] == "premium"
    assert found.json()["email"] == address.lower()


async def test_identify_traits_in_context_as_rudderstack_sends_them(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    user_id, address = uid(), f"{uid('ada')}@example.com"
    call = {
        "userId": user_id,
        "context": {"traits": {"email": address, "plan": "free", "seats": 3}},
        "traits": {"plan": "gold"},  # the call's own traits win
    }
    assert (await http.post("/v1/identify", json=call, headers=basic(team))).status_code == 200
    customer = await eventually(lambda: customer_holding(db, team.id, "email", address))
    assert await attributes_of(db, customer) == {"email": address, "plan": "gold", "seats": 3}
    assert await identifiers_of(db, customer) == {("external_id", user_id), ("email", address)}


async def test_an_invalid_trait_email_is_only_a_trait(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    user_id = uid()
    call = {"userId": user_id, "traits": {"email": "not an email"}}
    assert (await http.post("/v1/identify", json=call, headers=basic(team))).status_code == 200
    customer = await eventually(lambda: customer_holding(db, team.id, "external_id", user_id))
    assert (await eventually(lambda: attributes_of(db, customer)))["email"] == "not an email"
    assert await identifiers_of(db, customer) == {("external_id", user_id)}
    # Only identify makes traits.email an identifier.
    track = {"userId": user_id, "event": "x", "traits": {"email": "t@example.com"}}
    assert (await http.post("/v1/track", json=track, headers=basic(team))).status_code == 200
    await sentinel(http, db, team, user_id)
    assert await identifiers_of(db, customer) == {("external_id", user_id)}


async def test_track_page_and_screen_are_events(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    user_id = uid()
    calls: list[tuple[str, dict[str, Any]]] = [
        ("/v1/track", {"event": "Item Purchased", "properties": {"revenue": 14.99}}),
        (
            "/v1/page",
            {
                "name": "Pricing",
                "category": "Docs",
                "properties": {"name": "overridden", "path": "/pricing"},
            },
        ),
        ("/v1/screen", {"name": "Home"}),
    ]
    for i, (path, call) in enumerate(calls):
        timestamp = f"2024-05-01T12:00:0{i}Z"
        sent = await http.post(
            path, json={"userId": user_id, "timestamp": timestamp, **call}, headers=basic(team)
        )
        assert sent.status_code == 200, sent.text

    async def three() -> list[asyncpg.Record] | None:
        found = await events_of(db, team, user_id)
        return found if len(found) == 3 else None

    track, page, screen = await eventually(three)
    assert (track["type_name"], json.loads(track["body"])) == ("Item Purchased", {"revenue": 14.99})
    assert page["type_name"] == "page"
    assert json.loads(page["body"]) == {"name": "Pricing", "category": "Docs", "path": "/pricing"}
    assert (screen["type_name"], json.loads(screen["body"])) == ("screen", {"name": "Home"})
    assert track["occurred_at"] == datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


async def test_events_keep_their_context_with_the_sender_address(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    """Waits on the consumers storing ``events.context``."""
    user_id = uid()
    context = {"library": {"name": "analytics.js", "version": "2.1.0"}, "locale": "en-GB"}
    call = {"userId": user_id, "event": "Signed Up", "context": context}
    assert (await http.post("/v1/track", json=call, headers=basic(team))).status_code == 200
    own_ip = {"userId": user_id, "event": "Own IP", "context": {"ip": "203.0.113.7"}}
    assert (await http.post("/v1/track", json=own_ip, headers=basic(team))).status_code == 200

    async def two() -> list[asyncpg.Record] | None:
        found = await events_of(db, team, user_id)
        return found if len(found) == 2 else None

    stored = {e["type_name"]: e for e in await eventually(two)}
    assert json.loads(stored["Signed Up"]["context"]) == {**context, "ip": "127.0.0.1"}
    assert json.loads(stored["Own IP"]["context"]) == {"ip": "203.0.113.7"}


async def test_events_are_read_through_the_003_api(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    user_id, message_id = uid(), str(uuid.uuid4())
    call = {"userId": user_id, "event": "Viewed", "properties": {"a": 1}, "messageId": message_id}
    assert (await http.post("/v1/track", json=call, headers=basic(team))).status_code == 200
    event_id = client_message_id(team.id, message_id)
    base = "/rest-api/enterprise-interface/v1.0"

    async def read() -> httpx.Response | None:
        got = await http.get(f"{base}/events/{event_id}", headers=team.headers)
        return got if got.status_code == 200 else None

    detail = (await eventually(read)).json()["data"]
    customer = await customer_holding(db, team.id, "external_id", user_id)
    assert detail["customer_id"] == str(customer)
    assert json.loads(detail["data"]) == {"a": 1}
    listed = await http.get(f"{base}/events", headers=team.headers)
    assert listed.status_code == 200
    assert [e["event_id"] for e in listed.json()["data"]["events"]] == [event_id]


async def test_an_anonymous_customer_is_read_like_any_other(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    anonymous_id = uid("anon")
    call = {"anonymousId": anonymous_id, "name": "Home", "properties": {"path": "/"}}
    assert (await http.post("/v1/page", json=call, headers=basic(team))).status_code == 200
    customer = await eventually(lambda: customer_holding(db, team.id, "anonymous_id", anonymous_id))
    assert await identifiers_of(db, customer) == {("anonymous_id", anonymous_id)}
    listed = await http.get("/api/1.0/customers", headers=team.headers)
    assert listed.status_code == 200, listed.text
    assert listed.json()["results"] == [{}]  # no attributes, no email
    events = await http.get("/rest-api/enterprise-interface/v1.0/events", headers=team.headers)
    assert events.status_code == 200, events.text
    [event] = events.json()["data"]["events"]
    assert (event["customer_id"], json.loads(event["data"])) == (
        str(customer),
        {"name": "Home", "path": "/"},
    )


async def test_alias_links_the_anonymous_customer_to_the_identified_one(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    user_id, anonymous_id = uid(), uid("anon")
    browsing = {"anonymousId": anonymous_id, "event": "Browsed"}
    assert (await http.post("/v1/track", json=browsing, headers=basic(team))).status_code == 200
    signed_up = {"userId": user_id, "traits": {"plan": "free"}}
    assert (await http.post("/v1/identify", json=signed_up, headers=basic(team))).status_code == 200
    anonymous = await eventually(
        lambda: customer_holding(db, team.id, "anonymous_id", anonymous_id)
    )
    identified = await eventually(lambda: customer_holding(db, team.id, "external_id", user_id))
    assert anonymous != identified

    alias = {"userId": user_id, "previousId": anonymous_id}
    assert (await http.post("/v1/alias", json=alias, headers=basic(team))).status_code == 200

    async def linked() -> bool:
        anonymous = await customer_holding(db, team.id, "anonymous_id", anonymous_id)
        return anonymous == await customer_holding(db, team.id, "external_id", user_id)

    await eventually(linked)
    assert [e["type_name"] for e in await events_of(db, team, user_id)] == ["Browsed"]


async def test_group_puts_the_customer_in_the_group(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    """Waits on the consumers storing ``customer_groups`` and their members."""
    user_id, group_id = uid(), uid("account")
    call = {"userId": user_id, "groupId": group_id, "traits": {"name": "Initech", "seats": 5}}
    response = await http.post("/v1/group", json=call, headers=basic(team))
    assert response.status_code == 200, response.text

    async def group() -> asyncpg.Record | None:
        return await db.fetchrow(
            "SELECT traits::text AS traits FROM customer_groups"
            " WHERE team_id = $1 AND group_id = $2",
            team.id,
            group_id,
        )

    assert json.loads((await eventually(group))["traits"]) == {"name": "Initech", "seats": 5}
    customer = await customer_holding(db, team.id, "external_id", user_id)
    members = await db.fetch(
        "SELECT customer_id FROM customer_group_members WHERE team_id = $1 AND group_id = $2",
        team.id,
        group_id,
    )
    assert [r["customer_id"] for r in members] == [customer]
    # A group call names no customer attributes.
    assert await attributes_of(db, customer) == {}


# -- batches ------------------------------------------------------------------------


async def test_batch_with_shared_sent_at_and_context(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    messages: list[dict[str, Any]] = [
        {"type": "identify", "traits": {"plan": "gold"}},
        {"type": "track", "event": "Skewed", "originalTimestamp": "2024-05-01T12:00:00Z"},
        {"type": "track", "event": "Own", "context": {"app": "x"}},
    ]
    shared = {
        "sentAt": "2024-05-01T12:00:10Z",
        "context": {"library": {"name": "analytics-python"}},
        "integrations": {"All": False},
    }
    before = datetime.now(UTC)
    user_id, _ = await one_users_batch(http, team, "/v1/import", messages, shared)
    after = datetime.now(UTC)

    async def two() -> list[asyncpg.Record] | None:
        found = await events_of(db, team, user_id)
        return found if len(found) == 2 else None

    stored = {e["type_name"]: e for e in await eventually(two)}
    # receivedAt - (sentAt - originalTimestamp): ten seconds before the gateway got it.
    skewed = stored["Skewed"]
    assert skewed["occurred_at"] == skewed["received_at"] - timedelta(seconds=10)
    assert before - timedelta(seconds=1) <= skewed["received_at"] <= after
    customer = await customer_holding(db, team.id, "external_id", user_id)
    assert (await attributes_of(db, customer))["plan"] == "gold"
    # (events.context: with the consumers' context storage.)
    if skewed["context"] is not None:
        assert json.loads(skewed["context"])["library"] == {"name": "analytics-python"}
        assert json.loads(stored["Own"]["context"]) == {"app": "x", "ip": "127.0.0.1"}


async def test_event_times(http: httpx.AsyncClient, db: asyncpg.Pool, team: Team) -> None:
    user_id = uid()
    calls = {
        "timestamp wins": {
            "timestamp": "2023-01-01T00:00:00+01:00",
            "originalTimestamp": "2020-01-01T00:00:00Z",
            "sentAt": "2020-01-01T00:00:05Z",
        },
        "original alone": {"originalTimestamp": "2022-03-04T05:06:07.250Z"},
        "skew corrected": {
            "originalTimestamp": "2020-01-01T00:00:00Z",
            "sentAt": "2020-01-01T00:01:00Z",
            "receivedAt": "1999-01-01T00:00:00Z",  # the client's: ignored
        },
        "received": {},
    }
    for name, times in calls.items():
        call = {"userId": user_id, "event": name, **times}
        assert (await http.post("/v1/track", json=call, headers=basic(team))).status_code == 200

    async def four() -> dict[str, asyncpg.Record] | None:
        found = await events_of(db, team, user_id)
        return {e["type_name"]: e for e in found} if len(found) == 4 else None

    stored = await eventually(four)
    assert stored["timestamp wins"]["occurred_at"] == datetime(2022, 12, 31, 23, tzinfo=UTC)
    assert stored["original alone"]["occurred_at"] == datetime(
        2022, 3, 4, 5, 6, 7, 250000, tzinfo=UTC
    )
    skewed = stored["skew corrected"]
    assert skewed["occurred_at"] == skewed["received_at"] - timedelta(minutes=1)
    assert stored["received"]["occurred_at"] == stored["received"]["received_at"]


async def test_a_message_id_is_stored_once(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    user_id, message_id = uid(), uid("msg")
    call = {"userId": user_id, "event": "Paid", "messageId": message_id}
    for _ in range(2):
        assert (await http.post("/v1/track", json=call, headers=basic(team))).status_code == 200
    twice = {"batch": [{"type": "track", **call}, {"type": "track", **call}]}
    assert (await http.post("/v1/batch", json=twice, headers=basic(team))).status_code == 200
    await sentinel(http, db, team, user_id)
    paid = [e for e in await events_of(db, team, user_id) if e["type_name"] == "Paid"]
    assert [str(e["id"]) for e in paid] == [client_message_id(team.id, message_id)]


# -- auth ---------------------------------------------------------------------------


async def test_auth_as_the_sdks_send_it(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    user_id = uid()
    call = {"userId": user_id, "event": "Keyed"}
    # analytics.js: writeKey in a text/plain body; a beacon to /v1/t.
    beacon = json.dumps({**call, "writeKey": team.key}).encode()
    for path in ("/v1/track", "/v1/t"):
        sent = await http.post(path, content=beacon, headers={"Content-Type": "text/plain"})
        assert sent.status_code == 200, sent.text
    batch = json.dumps({"batch": [{"type": "track", **call}], "writeKey": team.key}).encode()
    assert (await http.post("/v1/b", content=batch)).status_code == 200
    # The key as the password works too.
    token = base64.b64encode(f":{team.key}".encode()).decode()
    as_password = await http.post(
        "/v1/track", json=call, headers={"Authorization": f"Basic {token}"}
    )
    assert as_password.status_code == 200

    missing = await http.post("/v1/track", json=call)
    assert missing.status_code == 401
    assert missing.json() == examples.UNAUTHORISED
    for headers in (
        {"Authorization": "Basic " + base64.b64encode(b"not-a-key:").decode()},
        {"Authorization": "Basic !!!"},
        httpx.Headers({"Authorization": "Basic \u00e9t\u00e9"}, encoding="latin-1"),  # not ASCII
    ):
        refused = await http.post("/v1/batch", json={"batch": [call]}, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["success"] is False
    unknown = await http.post("/v1/track", json={**call, "writeKey": "nobody-has-this-key"})
    assert unknown.status_code == 401
    assert unknown.json() == refusal(401, "Invalid write key")
    # The other surfaces' X-API-KEY is not this one's convention.
    assert (await http.post("/v1/track", json=call, headers=team.headers)).status_code == 401

    await sentinel(http, db, team, user_id)
    assert len([e for e in await events_of(db, team, user_id) if e["type_name"] == "Keyed"]) == 4


# -- malformed calls ----------------------------------------------------------------

_BAD: list[tuple[str, Any, str]] = [
    ("/v1/track", {"event": "x"}, "userId: userId or anonymousId is required"),
    ("/v1/track", {"userId": "null", "event": "x"}, "userId: 'null' is not a usable identifier"),
    ("/v1/track", {"userId": True, "event": "x"}, "userId: must be a string or an integer"),
    ("/v1/track", {"userId": 1.5, "event": "x"}, "userId: must be a string or an integer"),
    ("/v1/track", {"userId": 1e20, "event": "x"}, "userId: must be a string or an integer"),
    ("/v1/alias", {"userId": "a", "previousId": 2.5e-42}, "previousId: must be a string or"),
    ("/v1/track", {"userId": "a", "event": "x", "sentAt": 5}, "sentAt: must be an ISO 8601"),
    ("/v1/track", {"userId": "a", "event": "x", "writeKey": 5}, "writeKey: must be a string"),
    ("/v1/batch", {"batch": [], "writeKey": 5}, "writeKey: must be a string"),
    (
        "/v1/batch",
        {"batch": [{"type": "track", "userId": "a", "event": "x", "writeKey": [1]}]},
        "batch[0].writeKey: must be a string",
    ),
    ("/v1/track", {"userId": "a"}, "event: is required"),
    ("/v1/track", {"userId": "a", "event": " "}, "event: must be 1 to 255 characters"),
    ("/v1/track", {"userId": "a", "event": "x" * 256}, "event: must be 1 to 255 characters"),
    (
        "/v1/track",
        {"userId": "a", "event": "x", "properties": [1]},
        "properties: must be an object",
    ),
    ("/v1/identify", {"userId": "a", "traits": "gold"}, "traits: must be an object"),
    ("/v1/group", {"userId": "a"}, "groupId: is required"),
    ("/v1/alias", {"userId": "a"}, "previousId: is required"),
    ("/v1/alias", {"previousId": "a"}, "userId: is required"),
    ("/v1/page", {"userId": "a", "name": 7}, "name: must be a string"),
    ("/v1/track", {"userId": "a", "event": "x", "messageId": 5}, "messageId: must be a string"),
    ("/v1/track", {"userId": "a", "event": "x", "messageId": " "}, "messageId: must be 1 to 255"),
    (
        "/v1/track",
        {"userId": "a", "event": "x", "timestamp": "yesterday"},
        "timestamp: must be an ISO 8601 date-time, e.g. 2024-05-01T12:00:00Z",
    ),
    (
        "/v1/track",
        {"userId": "a", "event": "x", "timestamp": "0001-01-01T00:00:00+01:00"},
        "timestamp: must be within the years 1 to 9999 in UTC",
    ),
    (
        "/v1/track",
        {"userId": "a", "event": "x", "properties": {"n": 2**63}},
        "properties.n: JSON integers must be within the signed 64-bit range",
    ),
    (
        "/v1/track",
        {"userId": "a", "event": "x", "properties": {"s": "a\x00b"}},
        "properties.s: JSON strings must not contain the NUL character",
    ),
    ("/v1/track", [1, 2], "Expected a JSON object: one track call"),
    ("/v1/batch", {"batch": {"type": "track"}}, "batch: must be an array of messages"),
    ("/v1/batch", {"batsh": []}, "batch: is required, an array of messages"),
    ("/v1/batch", {"batch": [], "sentAt": "soon"}, "sentAt: must be an ISO 8601 date-time"),
    ("/v1/batch", {"batch": [], "context": 1}, "context: must be an object"),
]


async def test_malformed_calls_are_400_naming_the_field(
    http: httpx.AsyncClient, team: Team
) -> None:
    for path, body, message in _BAD:
        response = await http.post(path, json=body, headers=basic(team))
        assert response.status_code == 400, (path, body, response.text)
        assert response.json()["success"] is False
        assert response.json()["message"].startswith(message), (body, response.json())
        assert "x-message-id" not in response.headers
    for raw in (b"", b"{", b'{"userId": "\xff"}', b'{"userId": "\\ud800", "event": "x"}'):
        response = await http.post("/v1/track", content=raw, headers=basic(team))
        assert response.status_code == 400, (raw, response.text)
    deep: Any = {}
    for _ in range(40):
        deep = {"a": deep}
    nested = await http.post(
        "/v1/track", json={"userId": "a", "event": "x", "properties": deep}, headers=basic(team)
    )
    assert nested.status_code == 400
    assert "nested deeper than" in nested.json()["message"]


async def test_one_bad_message_refuses_the_whole_batch(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    user_id = uid()
    good = [{"type": "track", "userId": user_id, "event": f"good {i}"} for i in range(3)]
    bad = {"type": "track", "userId": "undefined", "event": "bad"}
    response = await http.post("/v1/batch", json={"batch": [*good, bad]}, headers=basic(team))
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "message": "batch[3].userId: 'undefined' is not a usable identifier",
        "code": "invalid_request",
    }
    for where, message in (
        ({"type": "jump", "userId": "a"}, "batch[1].type: must be one of identify, track"),
        ({"type": "track", "userId": "a"}, "batch[1].event: is required"),
        (
            {"type": "track", "userId": "a", "event": "x", "properties": {"deep": {"n": 2**64}}},
            "batch[1].properties.deep.n: JSON integers",
        ),
        ("track", "batch[1]: must be an object"),
    ):
        refused = await http.post(
            "/v1/batch", json={"batch": [good[0], where]}, headers=basic(team)
        )
        assert refused.status_code == 400
        assert refused.json()["message"].startswith(message), refused.json()
    await sentinel(http, db, team, user_id)
    assert [e["type_name"] for e in await events_of(db, team, user_id)][:-1] == []


async def test_limits_are_413(http: httpx.AsyncClient, team: Team) -> None:
    big = {"userId": "a", "event": "x", "properties": {"blob": "x" * MAX_SEGMENT_MESSAGE_BYTES}}
    single = await http.post("/v1/track", json=big, headers=basic(team))
    assert single.status_code == 413
    assert single.json()["success"] is False
    in_batch = await http.post(
        "/v1/batch",
        json={"batch": [{"type": "track", "userId": "a", "event": "x"}, {"type": "track", **big}]},
        headers=basic(team),
    )
    assert in_batch.status_code == 413
    assert in_batch.json()["message"].startswith("batch[1]: larger than the limit of 65536")
    # A batch context counts in each message that inherits it.
    context = {"blob": "x" * (MAX_SEGMENT_MESSAGE_BYTES - 40)}
    inherited = await http.post(
        "/v1/batch",
        json={"batch": [{"type": "track", "userId": "a", "event": "x"}], "context": context},
        headers=basic(team),
    )
    assert inherited.status_code == 413
    many = {"batch": [{"type": "track", "userId": "a", "event": "x"}] * 2501}
    too_many = await http.post("/v1/batch", json=many, headers=basic(team))
    assert too_many.status_code == 413
    assert too_many.json() == {
        "success": False,
        "message": "batch: at most 2500 messages per request",
        "code": "request_too_large",
    }


# -- transport ----------------------------------------------------------------------


async def test_gzip_bodies(http: httpx.AsyncClient, db: asyncpg.Pool, team: Team) -> None:
    user_id = uid()
    gzipped = {**basic(team), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    batch = {"batch": [{"type": "track", "userId": user_id, "event": "Zipped"}]}
    sent = await http.post(
        "/v1/batch", content=gzip.compress(json.dumps(batch).encode()), headers=gzipped
    )
    assert sent.status_code == 200, sent.text
    # Two gzip members in a row are one body (as `cat a.gz b.gz` makes).
    text = json.dumps({"userId": user_id, "event": "Members"}).encode()
    members = gzip.compress(text[:10]) + gzip.compress(text[10:])
    assert (await http.post("/v1/track", content=members, headers=gzipped)).status_code == 200

    # 5 MB of JSON whitespace: a few KiB compressed, over the limit once inflated.
    bomb = gzip.compress(b"{" + b" " * (Settings().max_body_bytes + 1) + b"}", compresslevel=9)
    assert len(bomb) < 64 * 1024
    refused = await http.post("/v1/batch", content=bomb, headers=gzipped)
    assert refused.status_code == 413
    assert "times its compressed size" in refused.json()["message"]

    whole = gzip.compress(json.dumps(batch).encode())
    for broken in (whole[:-12], b"not gzip at all", whole[:10] + b"\x00" * 20 + whole[30:]):
        corrupt = await http.post("/v1/batch", content=broken, headers=gzipped)
        assert corrupt.status_code == 400, corrupt.text
        assert corrupt.json()["success"] is False
    brotli = await http.post(
        "/v1/batch", content=b"{}", headers={**basic(team), "Content-Encoding": "br"}
    )
    assert brotli.status_code == 415

    await sentinel(http, db, team, user_id)
    names = [e["type_name"] for e in await events_of(db, team, user_id)]
    assert names[:2] == ["Zipped", "Members"]


async def test_any_content_type_is_json(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    user_id = uid()
    for content_type in ("text/plain;charset=UTF-8", "application/json", None):
        body = json.dumps({"userId": user_id, "event": f"as {content_type}"}).encode()
        headers = basic(team) | ({"Content-Type": content_type} if content_type else {})
        assert (await http.post("/v1/track", content=body, headers=headers)).status_code == 200
    await sentinel(http, db, team, user_id)
    assert len(await events_of(db, team, user_id)) == 4


# -- CORS ---------------------------------------------------------------------------


async def test_cors_preflight_and_allowed_origins(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    for path in ("/v1/t", "/v1/batch", "/v1/identify", f"/v1/projects/{team.key}/settings"):
        preflight = await http.options(
            path,
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 204, path
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in preflight.headers["access-control-allow-methods"] or "settings" in path
        assert "Content-Type" in preflight.headers["access-control-allow-headers"]
        assert "Authorization" in preflight.headers["access-control-allow-headers"]
        assert int(preflight.headers["access-control-max-age"]) > 0

    call = {"userId": uid(), "event": "Clicked", "writeKey": team.key}
    # Any origin by default.
    elsewhere = await http.post("/v1/track", json=call, headers={"Origin": "https://a.example"})
    assert elsewhere.status_code == 200
    assert elsewhere.headers["access-control-allow-origin"] == "https://a.example"
    # An error the browser can read, too.
    bad = await http.post("/v1/track", json={"writeKey": team.key}, headers={"Origin": ORIGIN})
    assert bad.status_code == 400
    assert bad.headers["access-control-allow-origin"] == ORIGIN

    # A team that names its origins (a new one: the gateway caches a team's origins).
    async with db.acquire() as conn:
        name = uid("shop")
        _, key = await create_team(conn, name)
        await set_allowed_origins(conn, name, [ORIGIN])
    call["writeKey"] = key
    allowed = await http.post("/v1/track", json=call, headers={"Origin": ORIGIN})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    refused = await http.post("/v1/track", json=call, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    assert refused.json() == {
        "success": False,
        "message": "The origin https://evil.example is not allowed to send with this write key",
        "code": "forbidden",
    }
    # Server-side SDKs send no Origin: nothing to check.
    assert (await http.post("/v1/track", json=call)).status_code == 200


# -- settings for analytics.js -------------------------------------------------------


async def test_project_settings_point_analytics_js_here(
    http: httpx.AsyncClient, team: Team
) -> None:
    found = await http.get(
        f"/v1/projects/{team.key}/settings",
        headers={"Host": "localhost:8443", "Origin": ORIGIN},  # (trusted: loopback)
    )
    assert found.status_code == 200
    assert found.headers["access-control-allow-origin"] == "*"
    segment = found.json()["integrations"]["Segment.io"]
    assert segment["apiKey"] == team.key
    assert segment["apiHost"] == "localhost:8443/v1"
    assert segment["protocol"] == "http"
    assert found.json() == project_settings(team.key, segment["apiHost"], "http")
    unknown = await http.get("/v1/projects/nobody-has-this-key/settings")
    assert unknown.status_code == 404
    assert unknown.json() == examples.NOT_FOUND


# -- OpenAPI and outages -------------------------------------------------------------


async def test_openapi_describes_the_surface(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["writeKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "basic")
    for kind in ("identify", "track", "page", "screen", "group", "alias", "batch", "import"):
        operation = document["paths"][f"/v1/{kind}"]["post"]
        assert operation["security"] == [{"writeKey": []}]
        assert {"200", "400", "401", "403", "413", "503"} <= set(operation["responses"])
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema["type"] == "object"
        assert "65536 bytes of JSON per message" in operation["description"]
    assert "/v1/projects/{writeKey}/settings" in document["paths"]
    assert "/v1/t" not in document["paths"]  # the short aliases are not described twice


async def test_broker_down_is_503_in_this_surface_format(
    settings: Settings, tmp_path: Path, team: Team
) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    async with (
        private_gateway(
            settings, tmp_path, "segment-no-broker", "/healthz", kafka_bootstrap_servers=nobody
        ) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        call = {"userId": uid(), "event": "Lost"}
        response = await client.post(
            "/v1/track", json=call, headers={**basic(team), "Origin": ORIGIN}
        )
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.json() == examples.UNAVAILABLE
    assert response.headers["access-control-allow-origin"] == ORIGIN


def test_fuzzed_with_a_write_key(gateway: str, team: Team) -> None:
    """schemathesis on this surface with a valid write key (test_fuzz sends none, so it
    only reaches the 401s here): never a 5xx, never an undocumented status."""
    run = subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{gateway}/openapi.json",
            "--auth",
            f"{team.key}:",
            "--include-path-regex",
            "^/v1/",
            "--checks",
            "not_a_server_error,status_code_conformance",
            "--max-examples",
            "25",
            "--seed",
            "20261202",
            "--max-time",
            "40",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
