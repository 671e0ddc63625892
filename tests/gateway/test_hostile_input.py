"""Hostile input on every surface, against the real gateway, consumers and PostgreSQL.

Each class of input that the consumers or PostgreSQL cannot store (issue #11, point 3)
is refused at the door: a 4xx in the error format of the surface's document, with no
message id, so nothing was published. On the batch endpoint the bad item is rejected
(or the whole request, when its envelope cannot be read). The nearest storable values
of each class are accepted, end applied (the consumers record "applied" for every
message id of the answer) and read back equal through the APIs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from admin.teams import create_team
from ingest_gateway.read_model.outcomes import outcomes
from tests.support import created_customer

GROUPS = "/rest-api/customer-interface/v1.0"
EVENTS = "/rest-api/enterprise-interface/v1.0"
WAIT = {"Prefer": "return=representation"}
INT64_MAX = "9223372036854775807"
BEYOND_INT64 = "9223372036854775808"


@dataclass(frozen=True)
class Ctx:
    """A team with a customer (001 needs an existing user) and an event type (003)."""

    team_id: int
    key: str
    store: str
    email: str
    customer_id: str
    type_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-KEY": self.key}


@pytest.fixture(scope="module")
async def ctx(db: asyncpg.Pool, gateway: str) -> Ctx:
    # One team for the module: refused writes publish nothing, accepted ones use new names.
    store = f"hostile-{uuid.uuid4().hex[:12]}"
    async with db.acquire() as conn:
        team_id, key = await create_team(conn, store)
    email = f"existing-{uuid.uuid4().hex[:10]}@example.com"
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as http:
        customer_id = await created_customer(http, db, team_id, {"X-API-KEY": key}, email, name="H")
    type_id = await db.fetchval(
        "INSERT INTO event_types (team_id, name) VALUES ($1, 'hostile') RETURNING id::text",
        team_id,
    )
    return Ctx(team_id, key, store, email, customer_id, type_id)


def new_email() -> str:
    return f"h-{uuid.uuid4().hex[:12]}@example.com"


def refused(response: httpx.Response, status: int = 400) -> str:
    """Assert a refusal in the surface's own error format; its text, lower-cased."""
    assert response.status_code == status, response.text
    assert "x-message-id" not in response.headers, "a refused write must publish nothing"
    body = response.json()
    path = response.request.url.path
    if path.startswith("/api/1.0"):
        assert set(body) == {"error"} and isinstance(body["error"], str), body
        texts = [body["error"]]
    elif path.startswith("/api/v1"):
        assert set(body) == {"errors"} and len(body["errors"]) == 1, body
        error = body["errors"][0]
        assert set(error) == {"message", "description"}, body
        texts = [error["message"], error["description"]]
    elif path.startswith("/rest-api/"):
        assert set(body) == {"error"}, body
        error = body["error"]
        assert error["code"] == status, body
        assert {"code", "message"} <= set(error) <= {"code", "message", "description", "field"}
        texts = [str(v) for v in error.values()]
    elif path.startswith("/core/v3"):
        assert set(body) == {"errors"} and body["errors"], body
        for error in body["errors"]:
            assert {"message"} <= set(error) <= {"field", "message"}, body
        texts = [str(v) for error in body["errors"] for v in error.values()]
    else:
        raise AssertionError(f"no error format known for {path}")
    assert all(isinstance(t, str) and t for t in texts), body
    return " ".join(texts).lower()


def refused_write(response: httpx.Response) -> str:
    """``refused``, or for the batch endpoint its single item rejected; the error text."""
    if response.request.url.path == "/api/1.0/batch" and response.status_code == 200:
        answer = response.json()
        assert answer["accepted"] == 0 and answer["rejected"] == 1, answer
        (item,) = answer["items"]
        assert item["status"] == "rejected" and "id" not in item, answer
        return str(item["error"]).lower()
    return refused(response)


def message_ids(response: httpx.Response) -> list[str]:
    if response.request.url.path == "/api/1.0/batch":
        items = response.json()["items"]
        assert all(i["status"] == "accepted" for i in items), items
        return [i["id"] for i in items]
    header = response.headers.get("x-message-id")
    return header.split(",") if header else []


async def assert_applied(db: asyncpg.Pool, response: httpx.Response) -> list[str]:
    """The write was answered after the consumers applied every message of it."""
    assert response.status_code in (200, 201), response.text
    ids = message_ids(response)
    assert ids, response.headers
    assert await outcomes(db, ids) == dict.fromkeys(ids, "applied")
    return ids


# -- JSON on every surface ---------------------------------------------------------

# Where a surface puts free-form JSON: the hole takes a JSON object of fields.
HOLE = b"@FIELDS@"
TEXT_HOLE = b"@FIELDS-AS-JSON-TEXT@"  # the same object, as the text of a JSON string


@dataclass(frozen=True)
class Surface:
    method: str
    path: str
    body: bytes
    # Where the fields end up: the customer's attributes ("customer"), one attribute
    # ("customer.extra"), the event body ("event"), one body field ("event.p"), nowhere.
    stored: str | None
    existing_user: bool = False
    primitives_only: bool = False  # 004: properties are primitive values


SURFACES = {
    "000 customer": Surface("POST", "/api/1.0/customer/{email}", HOLE, "customer"),
    "000 customers": Surface(
        "POST", "/api/1.0/customers", b'[{"email": "{email}", "extra": @FIELDS@}]', "customer.extra"
    ),
    "000 event": Surface("POST", "/api/1.0/events/hostile/{email}/ext-1", HOLE, "event"),
    "001 update": Surface(
        "POST",
        "/api/v1/event",
        b'{"user": {"email": "{email}"}, "event": {"update": @FIELDS@}}',
        "customer",
        existing_user=True,
    ),
    "001 custom event": Surface(
        "POST",
        "/api/v1/event",
        b'{"user": {"email": "{email}"}, "event": {"viewed": @FIELDS@}}',
        "event",
        existing_user=True,
    ),
    "002 event group": Surface(
        "POST",
        f"{GROUPS}/event-groups",
        b'{"name": "Hostile", "text_id": "{uid}", "extra": @FIELDS@}',
        None,
    ),
    "003 property record": Surface(
        "POST",
        f"{EVENTS}/events",
        b'{"event": {"event_type_id": "{type_id}", "customer_id": "{customer_id}"},'
        b' "property_records": [{"property_id": "p", "property_value": @FIELDS@}]}',
        "event.p",
    ),
    "003 event.data as JSON text": Surface(
        "POST",
        f"{EVENTS}/events",
        b'{"event": {"event_type_id": "{type_id}", "customer_id": "{customer_id}",'
        b' "data": @FIELDS-AS-JSON-TEXT@}}',
        "event",
    ),
    "004 event properties": Surface(
        "POST",
        "/core/v3/stores/{store}/custom_events",
        b'{"type": "hostile", "id": "{uid}", "customer": {"email": "{email}"},'
        b' "properties": @FIELDS@}',
        "event",
        primitives_only=True,
    ),
    "004 customer properties": Surface(
        "POST",
        "/core/v3/stores/{store}/custom_events",
        b'{"type": "hostile", "id": "{uid}",'
        b' "customer": {"email": "{email}", "properties": @FIELDS@}}',
        "customer",
        primitives_only=True,
    ),
    "batch event body": Surface(
        "POST",
        "/api/1.0/batch",
        b'{"items": [{"type": "event", "email": "{email}", "eventName": "hostile",'
        b' "body": @FIELDS@}]}',
        "event",
    ),
    "batch customer attributes": Surface(
        "POST",
        "/api/1.0/batch",
        b'{"items": [{"type": "customer", "email": "{email}", "attributes": @FIELDS@}]}',
        "customer",
    ),
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes
    email: str


def request_for(ctx: Ctx, surface: Surface, fields: bytes) -> Request:
    email = ctx.email if surface.existing_user else new_email()
    names = {
        "{email}": email,
        "{uid}": uuid.uuid4().hex,
        "{store}": ctx.store,
        "{type_id}": ctx.type_id,
        "{customer_id}": ctx.customer_id,
    }
    path, body = surface.path, surface.body
    for name, value in names.items():
        path, body = path.replace(name, value), body.replace(name.encode(), value.encode())
    as_text = b'"' + fields.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    body = body.replace(TEXT_HOLE, as_text).replace(HOLE, fields)
    return Request(surface.method, path, body, email)


async def send(
    http: httpx.AsyncClient, ctx: Ctx, request: Request, *, wait: bool = False
) -> httpx.Response:
    headers = {**ctx.headers, "Content-Type": "application/json", **(WAIT if wait else {})}
    return await http.request(request.method, request.path, content=request.body, headers=headers)


HOSTILE_FIELDS = {
    # name: (fields, a word the refusal must say, or None where the parser's words vary)
    "integer above int64": (b'{"v": ' + BEYOND_INT64.encode() + b"}", "64-bit"),
    "integer below int64": (b'{"v": -9223372036854775809}', "64-bit"),
    "2**70 in a list": (b'{"v": [1, 1180591620717411303424]}', "64-bit"),
    "integer of 400 digits": (b'{"v": 1' + b"0" * 400 + b"}", "64-bit"),
    "1e400": (b'{"v": 1e400}', "range"),
    "-1e400": (b'{"v": -1e400}', "range"),
    "NUL in a string": (b'{"v": "a\\u0000b"}', "nul"),
    "NUL in a name": (b'{"a\\u0000b": 1}', "nul"),
    "invalid UTF-8": (b'{"v": "caf\xe9"}', "utf-8"),
    "lone high surrogate": (b'{"v": "\\ud800"}', None),
    "lone low surrogate": (b'{"v": "\\udc00x"}', None),
}

# The nearest storable values: int64's bounds, the largest double, a number that rounds
# to 0, 19 digits within range, non-ASCII text with a surrogate pair, an escaped
# backslash before "u0000" (text, not a NUL), and (where objects may go) nesting.
STORABLE_VALUES = {
    "max": INT64_MAX.encode(),
    "min": b"-9223372036854775808",
    "big": b"1.7976931348623157e308",
    "tiny": b"1e-400",
    "long": b"1000000000000000000",
    "text": b'"J\xc3\xbcrgen \\ud83d\\ude00"',
    "escaped": b'"a\\\\u0000b"',
}
NESTED_VALUE = b'{"d": ' * 20 + b"1" + b"}" * 20


def storable_fields(surface: Surface) -> bytes:
    values = (
        STORABLE_VALUES if surface.primitives_only else {**STORABLE_VALUES, "deep": NESTED_VALUE}
    )
    return b"{" + b", ".join(b'"' + k.encode() + b'": ' + v for k, v in values.items()) + b"}"


@pytest.mark.parametrize("case", sorted(HOSTILE_FIELDS))
@pytest.mark.parametrize("surface", sorted(SURFACES))
async def test_hostile_json_is_refused_at_the_door(
    http: httpx.AsyncClient, ctx: Ctx, surface: str, case: str
) -> None:
    fields, word = HOSTILE_FIELDS[case]
    response = await send(http, ctx, request_for(ctx, SURFACES[surface], fields))
    if response.request.url.path == "/api/1.0/batch" and response.status_code == 400:
        text = refused(response)  # the envelope itself could not be read
    else:
        text = refused_write(response)
    if word is not None:
        assert word in text, text


async def stored_fields(
    http: httpx.AsyncClient, ctx: Ctx, surface: Surface, request: Request, ids: list[str]
) -> Any:
    """The fields as the APIs read them back from the store."""
    if surface.stored in ("customer", "customer.extra"):
        read = await http.get(f"/api/1.0/customer/{request.email}", headers=ctx.headers)
        assert read.status_code == 200, read.text
        attributes = read.json()
        return attributes if surface.stored == "customer" else attributes["extra"]
    (event_id,) = ids
    read = await http.get(f"{EVENTS}/events/{event_id}", headers=ctx.headers)
    assert read.status_code == 200, read.text
    body = json.loads(read.json()["data"]["data"])
    return body if surface.stored == "event" else body["p"]


@pytest.mark.parametrize("surface", sorted(SURFACES))
async def test_the_storable_extremes_are_applied_and_read_back(
    http: httpx.AsyncClient, db: asyncpg.Pool, ctx: Ctx, surface: str
) -> None:
    spec = SURFACES[surface]
    fields = storable_fields(spec)
    request = request_for(ctx, spec, fields)
    response = await send(http, ctx, request, wait=True)
    expected = json.loads(fields)
    assert expected["tiny"] == 0.0 and expected["escaped"] == "a\\u0000b"
    if spec.stored is None:  # written to PostgreSQL directly, no message
        assert response.status_code == 201, response.text
        return
    ids = await assert_applied(db, response)
    stored = await stored_fields(http, ctx, spec, request, ids)
    if spec.stored == "customer":
        stored = {k: v for k, v in stored.items() if k in expected}
    assert stored == expected


@pytest.mark.parametrize("surface", sorted(set(SURFACES) - {"000 customer"}))
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"v=1&w=caf%C3%A9"),
        (
            "multipart/form-data; boundary=b0undary",
            b'--b0undary\r\nContent-Disposition: form-data; name="v"\r\n\r\n1\r\n--b0undary--\r\n',
        ),
        ("application/json; charset=utf-16", '{"v": 1}'.encode("utf-16")),
    ],
    ids=["urlencoded", "multipart", "utf-16 JSON"],
)
async def test_json_surfaces_refuse_other_content_types(
    http: httpx.AsyncClient, ctx: Ctx, surface: str, content_type: str, body: bytes
) -> None:
    request = request_for(ctx, SURFACES[surface], b"{}")
    response = await http.request(
        request.method,
        request.path,
        content=body,
        headers={**ctx.headers, "Content-Type": content_type},
    )
    refused(response)


# -- forms: urlencoded and multipart, with any charset -----------------------------


def multipart(
    parts: list[tuple[bytes, bytes, bytes | None]], charset: str | None = None
) -> tuple[str, bytes]:
    """(content type, body) of a multipart form; each part: name, value, its own charset."""
    boundary = b"h0stile-b0undary"
    body = b""
    for name, value, part_charset in parts:
        body += b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name + b'"\r\n'
        if part_charset is not None:
            body += b"Content-Type: text/plain; charset=" + part_charset + b"\r\n"
        body += b"\r\n" + value + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    content_type = "multipart/form-data; boundary=" + boundary.decode()
    return content_type + (f"; charset={charset}" if charset else ""), body


URLENCODED = "application/x-www-form-urlencoded"
HOSTILE_FORMS = {
    "urlencoded: invalid UTF-8 escape": (URLENCODED, b"v=caf%E9", "utf-8"),
    "urlencoded: invalid UTF-8 byte": (URLENCODED, b"v=caf\xe9", "utf-8"),
    "urlencoded: NUL in a value": (URLENCODED, b"v=a%00b", "nul"),
    "urlencoded: NUL in a name": (URLENCODED, b"a%00b=1", "nul"),
    "urlencoded utf-7: lone surrogate": (f"{URLENCODED}; charset=utf-7", b"v=%2B2AA-", "surrogate"),
    "urlencoded: unknown charset": (f"{URLENCODED}; charset=no-such-set", b"v=1", "charset"),
    "multipart: invalid UTF-8": (*multipart([(b"v", b"caf\xe9", None)]), "utf-8"),
    "multipart: NUL in a value": (*multipart([(b"v", b"a\x00b", None)]), "nul"),
    "multipart: NUL in a name": (*multipart([(b"a\x00b", b"1", None)]), "nul"),
    "multipart utf-16: odd bytes": (*multipart([(b"v", b"abc", None)], "utf-16"), "utf-16"),
    "multipart utf-16 part: odd bytes": (*multipart([(b"v", b"abc", b"utf-16")]), "utf-16"),
    "multipart utf-7: lone surrogate": (*multipart([(b"v", b"+2AA-", None)], "utf-7"), "surrogate"),
    "multipart punycode: undecodable": (
        *multipart([(b"v", b"\\ud800", None)], "punycode"),
        "punycode",
    ),
    "multipart: unknown charset": (*multipart([(b"v", b"1", None)], "no-such-set"), "charset"),
    "multipart: not a text encoding": (*multipart([(b"v", b"1", None)], "hex"), "charset"),
    "multipart: no boundary": ("multipart/form-data", b"--x\r\n\r\n", "multipart"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FORMS))
async def test_hostile_forms_are_refused(http: httpx.AsyncClient, ctx: Ctx, case: str) -> None:
    content_type, body, word = HOSTILE_FORMS[case]
    response = await http.post(
        f"/api/1.0/customer/{new_email()}",
        content=body,
        headers={**ctx.headers, "Content-Type": content_type},
    )
    assert word in refused(response)


JURGEN = {"name": "Jürgen"}
STORABLE_FORMS: dict[str, tuple[str, bytes, dict[str, str]]] = {
    "urlencoded UTF-8": (
        URLENCODED,
        b"name=J%C3%BCrgen&emoji=%F0%9F%98%80",
        {"name": "Jürgen", "emoji": "\U0001f600"},
    ),
    "urlencoded latin-1": (f"{URLENCODED}; charset=iso-8859-1", b"name=J%FCrgen", JURGEN),
    "multipart UTF-8": (*multipart([(b"name", "Jürgen".encode(), None)]), JURGEN),
    "multipart utf-16": (
        *multipart([(b"name", "Jürgen".encode("utf-16"), None)], "utf-16"),
        JURGEN,
    ),
    "multipart latin-1 part": (*multipart([(b"name", b"J\xfcrgen", b"latin-1")]), JURGEN),
    "multipart cp1252 part": (
        *multipart([(b"name", b"J\xc3\xbcrgen", None), (b"price", b"\x80 5", b"cp1252")]),
        {"name": "Jürgen", "price": "€ 5"},
    ),
    "multipart with a file": (
        "multipart/form-data; boundary=zz",
        b'--zz\r\nContent-Disposition: form-data; name="name"\r\n\r\nJ\xc3\xbcrgen\r\n'
        b'--zz\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x00\xff\xfe\r\n--zz--\r\n",
        JURGEN,
    ),
}


@pytest.mark.parametrize("case", sorted(STORABLE_FORMS))
async def test_forms_in_any_charset_are_decoded_applied_and_read_back(
    http: httpx.AsyncClient, db: asyncpg.Pool, ctx: Ctx, case: str
) -> None:
    content_type, body, expected = STORABLE_FORMS[case]
    email = new_email()
    response = await http.post(
        f"/api/1.0/customer/{email}",
        content=body,
        headers={**ctx.headers, "Content-Type": content_type, **WAIT},
    )
    await assert_applied(db, response)
    read = await http.get(f"/api/1.0/customer/{email}", headers=ctx.headers)
    assert read.json() == {"email": email, **expected}


# -- NUL in paths and query filters --------------------------------------------------


async def test_invalid_utf8_in_path_parameters_is_refused(
    http: httpx.AsyncClient, db: asyncpg.Pool, ctx: Ctx
) -> None:
    email = new_email()
    for method, path in [
        ("POST", f"/api/1.0/events/view%FF/{email}/ext-1"),
        ("POST", f"/api/1.0/events/view/{email}/ext%E9"),
        ("POST", "/api/1.0/customer/caf%E9@example.com"),
        ("DELETE", "/api/1.0/customer/caf%E9@example.com"),
        # As clients built from the Postman collection send them (the path is cleaned).
        ("POST", "/api/1.0/customer/caf%E9@example.com/"),
        ("POST", "/api/1.0/customer/caf%E9@example.com{{debug}}"),
        ("POST", "/api/1.0/customer/caf%E9@example.com%7B%7Bdebug%7D%7D"),
    ]:
        assert "utf-8" in refused(await http.request(method, path, headers=ctx.headers, json={}))
    # The same characters, percent-encoded as UTF-8, are stored as sent.
    stored = await http.post(
        f"/api/1.0/events/caf%C3%A9/{email}/%C3%A9?wait=true", json={}, headers=ctx.headers
    )
    (event_id,) = await assert_applied(db, stored)
    row = await db.fetchrow(
        "SELECT t.name, e.external_id FROM events e JOIN event_types t ON t.id = e.event_type_id"
        " WHERE e.team_id = $1 AND e.id = $2",
        ctx.team_id,
        uuid.UUID(event_id),
    )
    assert row is not None and (row["name"], row["external_id"]) == ("café", "é")


async def test_nul_in_path_parameters_is_refused(http: httpx.AsyncClient, ctx: Ctx) -> None:
    email = new_email()
    for method, path, status, word in [
        ("POST", f"/api/1.0/events/view%00x/{email}/ext-1", 400, "nul"),
        ("POST", f"/api/1.0/events/view/{email}/ext%00x", 400, "nul"),
        ("POST", "/api/1.0/customer/a%00b@example.com", 400, "nul"),
        ("DELETE", "/api/1.0/customer/a%00b@example.com", 400, "nul"),
        ("GET", "/api/1.0/customer/a%00b@example.com", 404, None),
        ("GET", f"{GROUPS}/event-groups/1%00", 404, None),
        ("GET", f"{EVENTS}/events/%00", 404, None),
        ("POST", f"/core/v3/stores/{ctx.store}%00/custom_events", 403, None),
    ]:
        response = await http.request(method, path, headers=ctx.headers, json={})
        text = refused(response, status)
        if word is not None:
            assert word in text, (path, text)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"{GROUPS}/event-groups?name=a%00b", "name"),
        (f"{GROUPS}/event-groups?text_id=%00", "text_id"),
        (f"{GROUPS}/event-types?name=x%00", "name"),
        (f"{EVENTS}/events?event_type_id=1%00", "event_type_id"),
        (f"{EVENTS}/events?sort_field=%00", "sort_field"),
    ],
)
async def test_nul_in_query_filters_is_refused(
    http: httpx.AsyncClient, ctx: Ctx, path: str, field: str
) -> None:
    response = await http.get(path, headers=ctx.headers)
    assert field in refused(response)
    assert response.json()["error"].get("field") == field


# -- ids, counts and paging offsets ------------------------------------------------


async def test_offsets_counts_and_ids_beyond_bigint_are_refused_not_500(
    http: httpx.AsyncClient, db: asyncpg.Pool, ctx: Ctx
) -> None:
    huge = "9" * 5000
    event = await http.post(
        f"/api/1.0/events/paged/{new_email()}/x?wait=true", json={}, headers=ctx.headers
    )
    (event_id,) = await assert_applied(db, event)
    group = await http.post(
        f"{GROUPS}/event-groups",
        json={"name": "G", "text_id": uuid.uuid4().hex},
        headers=ctx.headers,
    )
    group_id = group.json()["data"]["event_group_id"]
    lists = [
        ("/api/1.0/customers", "startingFrom"),
        (f"{GROUPS}/event-groups", "offset"),
        (f"{GROUPS}/event-types", "offset"),
        (f"{EVENTS}/events", "offset"),
        (f"{EVENTS}/events/{event_id}/property-records", "offset"),
    ]
    for path, parameter in lists:
        for value in (BEYOND_INT64, huge, "-1"):
            response = await http.get(f"{path}?{parameter}={value}", headers=ctx.headers)
            assert parameter.lower() in refused(response), (path, value)
        last = await http.get(f"{path}?{parameter}={INT64_MAX}", headers=ctx.headers)
        assert last.status_code == 200, (path, last.text)
    for path, parameter in [
        ("/api/1.0/customers", "itemsPerPage"),
        (f"{GROUPS}/event-groups", "count"),
        (f"{EVENTS}/events", "count"),
    ]:
        response = await http.get(f"{path}?{parameter}={huge}", headers=ctx.headers)
        assert parameter.lower() in refused(response), path
    for method, path in [
        ("GET", f"{GROUPS}/event-groups/{huge}"),
        ("GET", f"{GROUPS}/event-groups/{BEYOND_INT64}"),
        ("PATCH", f"{GROUPS}/event-groups/{huge}"),
        ("DELETE", f"{GROUPS}/event-groups/{huge}"),
        ("GET", f"{GROUPS}/event-groups/{huge}/event-types"),
        ("PUT", f"{GROUPS}/event-groups/{group_id}/event-types/{huge}"),
        ("DELETE", f"{GROUPS}/event-groups/{group_id}/event-types/{BEYOND_INT64}"),
    ]:
        response = await http.request(method, path, headers=ctx.headers, json={"name": "x"})
        refused(response, 404)
    # An event type filter that can name no event type matches nothing.
    for value in (huge, BEYOND_INT64):
        listed = await http.get(f"{EVENTS}/events?event_type_id={value}", headers=ctx.headers)
        assert listed.json() == {"data": {"events": [], "total_items": 0}}


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ({"event_type_id": "9" * 5000}, 422),
        ({"event_type_id": BEYOND_INT64}, 422),
        ({"customer_id": "9" * 5000}, 422),
        ({"customer_id": BEYOND_INT64}, 422),
        ({"customer_id": "١٢"}, 422),  # digits, but not ASCII ones
        ({"customer_id": "²"}, 422),
    ],
)
async def test_003_ids_that_cannot_be_bigints_name_nothing(
    http: httpx.AsyncClient, ctx: Ctx, event: dict[str, str], status: int
) -> None:
    body = {"event": {"event_type_id": ctx.type_id, "customer_id": ctx.customer_id, **event}}
    response = await http.post(f"{EVENTS}/events", json=body, headers=ctx.headers)
    field = next(iter(event))
    assert f"event.{field}" in refused(response, status)


@pytest.mark.parametrize("user_id", ["9" * 5000, BEYOND_INT64, "²", "١٢"])
async def test_001_user_ids_that_cannot_be_bigints_name_nobody(
    http: httpx.AsyncClient, ctx: Ctx, user_id: str
) -> None:
    body = {"user": {"_id": user_id}, "event": {"update": {"a": 1}}}
    refused(await http.post("/api/v1/event", json=body, headers=ctx.headers), 404)


async def test_001_a_user_id_number_beyond_int64_is_refused(
    http: httpx.AsyncClient, ctx: Ctx
) -> None:
    body = b'{"user": {"_id": ' + BEYOND_INT64.encode() + b'}, "event": {"update": {}}}'
    headers = {**ctx.headers, "Content-Type": "application/json"}
    assert "64-bit" in refused(await http.post("/api/v1/event", content=body, headers=headers))


# -- the batch: items that could not be stored ---------------------------------------


def item(**fields: Any) -> dict[str, Any]:
    return {"type": "event", "email": new_email(), "eventName": "hostile", **fields}


@pytest.mark.parametrize(
    ("bad", "word"),
    [
        (item(eventId="a\u0000b"), "nul"),
        (item(externalId="a\u0000b"), "nul"),
        (item(eventId="x" * 3000), "255"),  # beyond what the unique index can hold
        (item(eventName="a\u0000b"), "event name"),
        (item(customerId=BEYOND_INT64), "customer_id"),
        (item(customerId="9" * 5000), "customer_id"),
        (item(customerId="²"), "customer_id"),
        (item(customerId=int(BEYOND_INT64)), "9223372036854775807"),
        (item(externalId=int(BEYOND_INT64)), "9223372036854775807"),
        (item(customerExternalId=int(BEYOND_INT64)), "9223372036854775807"),
        (item(occurredAt="0001-01-01T00:00:00+01:00"), "1 to 9999"),
        (item(occurredAt="9999-12-31T23:59:59-00:01"), "1 to 9999"),
    ],
)
async def test_batch_items_that_could_not_be_stored_are_rejected_alone(
    http: httpx.AsyncClient, db: asyncpg.Pool, ctx: Ctx, bad: dict[str, Any], word: str
) -> None:
    good = item(body={"ok": True})
    response = await http.post(
        "/api/1.0/batch?wait=true", json={"items": [bad, good]}, headers=ctx.headers
    )
    assert response.status_code == 200, response.text
    rejected, accepted = response.json()["items"]
    assert rejected["status"] == "rejected" and word in rejected["error"].lower(), rejected
    assert accepted["status"] == "accepted" and accepted["outcome"] == "applied", accepted


# -- event times -----------------------------------------------------------------------

OUT_OF_RANGE_TIMES = [
    "0001-01-01T00:00:00+01:00",  # 0000-12-31T23:00:00 in UTC
    "0001-01-01T00:59:59.999999+01:00",
    "9999-12-31T23:59:59-00:01",  # 10000-01-01 in UTC
    "9999-12-31T20:00:00-05:00",
]
EDGE_TIMES = {
    "0001-01-01T00:00:00Z": "0001-01-01 00:00:00",
    "0001-01-01T01:00:00+01:00": "0001-01-01 00:00:00",
    "9999-12-31T23:59:59.999999Z": "9999-12-31 23:59:59",
    "9999-12-31T22:59:59-01:00": "9999-12-31 23:59:59",
}


@pytest.mark.parametrize("moment", OUT_OF_RANGE_TIMES)
async def test_004_a_timestamp_beyond_years_1_to_9999_in_utc_is_refused(
    http: httpx.AsyncClient, ctx: Ctx, moment: str
) -> None:
    body = {
        "type": "t",
        "id": uuid.uuid4().hex,
        "timestamp": moment,
        "customer": {"email": "a@b.io"},
    }
    response = await http.post(
        f"/core/v3/stores/{ctx.store}/custom_events", json=body, headers=ctx.headers
    )
    assert "1 to 9999" in refused(response)
    assert response.json()["errors"] == [
        {"field": "timestamp", "message": "must be within the years 1 to 9999 in UTC"}
    ]


@pytest.mark.parametrize("moment", OUT_OF_RANGE_TIMES)
async def test_batch_an_occurred_at_beyond_years_1_to_9999_in_utc_is_rejected(
    http: httpx.AsyncClient, ctx: Ctx, moment: str
) -> None:
    response = await http.post(
        "/api/1.0/batch", json={"items": [item(occurredAt=moment)]}, headers=ctx.headers
    )
    assert "occurredat" in refused_write(response)


@pytest.mark.parametrize("moment", sorted(EDGE_TIMES))
async def test_the_first_and_last_moments_are_applied_and_read_back(
    http: httpx.AsyncClient, db: asyncpg.Pool, ctx: Ctx, moment: str
) -> None:
    store = await http.post(
        f"/core/v3/stores/{ctx.store}/custom_events",
        json={
            "type": "t",
            "id": uuid.uuid4().hex,
            "timestamp": moment,
            "customer": {"email": new_email()},
        },
        headers={**ctx.headers, **WAIT},
    )
    assert store.json()["status"] == "stored", store.text
    batch = await http.post(
        "/api/1.0/batch?wait=true", json={"items": [item(occurredAt=moment)]}, headers=ctx.headers
    )
    for response in (store, batch):
        (event_id,) = await assert_applied(db, response)
        read = await http.get(f"{EVENTS}/events/{event_id}", headers=ctx.headers)
        assert read.json()["data"]["created_at"] == EDGE_TIMES[moment]


# -- JSON inside text fields -------------------------------------------------------------


def nested(depth: int) -> str:
    return '{"d": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [33, 500, 2000])
async def test_003_event_data_as_json_text_nested_too_deep_is_refused(
    http: httpx.AsyncClient, ctx: Ctx, depth: int
) -> None:
    event = {"event_type_id": ctx.type_id, "customer_id": ctx.customer_id, "data": nested(depth)}
    response = await http.post(f"{EVENTS}/events", json={"event": event}, headers=ctx.headers)
    assert "nested deeper than 32 levels" in refused(response)


async def test_003_event_data_as_json_text_at_the_depth_limit_is_applied(
    http: httpx.AsyncClient, db: asyncpg.Pool, ctx: Ctx
) -> None:
    event = {"event_type_id": ctx.type_id, "customer_id": ctx.customer_id, "data": nested(32)}
    response = await http.post(
        f"{EVENTS}/events", json={"event": event}, headers={**ctx.headers, **WAIT}
    )
    (event_id,) = await assert_applied(db, response)
    assert json.loads(response.json()["data"]["data"]) == json.loads(nested(32))
    read = await http.get(f"{EVENTS}/events/{event_id}", headers=ctx.headers)
    assert read.status_code == 200


# -- text an index cannot hold -------------------------------------------------------------


async def test_001_an_order_id_too_long_to_index_is_refused(
    http: httpx.AsyncClient, ctx: Ctx
) -> None:
    body = {"user": {"email": ctx.email}, "event": {"confirmation": {"orderId": "x" * 3000}}}
    assert "255" in refused(await http.post("/api/v1/event", json=body, headers=ctx.headers))


@pytest.fixture
async def stored_row_with_a_huge_number(db: asyncpg.Pool, ctx: Ctx) -> AsyncIterator[str]:
    """An event stored before the gateway refused such numbers (jsonb holds 1e400)."""
    event_id = str(uuid.uuid4())
    await db.execute(
        "INSERT INTO events (id, team_id, customer_id, event_type_id, body, occurred_at,"
        "                    received_at, version_message_id)"
        ' VALUES ($1, $2, $3, $4, \'{"x": 1e400, "y": 2}\', now(), now(), $1)',
        uuid.UUID(event_id),
        ctx.team_id,
        int(ctx.customer_id),
        int(ctx.type_id),
    )
    yield event_id
    await db.execute(
        "DELETE FROM events WHERE team_id = $1 AND id = $2", ctx.team_id, uuid.UUID(event_id)
    )


async def test_an_event_stored_with_a_number_json_cannot_hold_still_reads(
    http: httpx.AsyncClient, ctx: Ctx, stored_row_with_a_huge_number: str
) -> None:
    event_id = stored_row_with_a_huge_number
    read = await http.get(f"{EVENTS}/events/{event_id}", headers=ctx.headers)
    assert read.status_code == 200, read.text
    assert read.json()["data"]["data"].startswith('{"x": 1000')
    listed = await http.get(f"{EVENTS}/events?count=1000", headers=ctx.headers)
    assert listed.status_code == 200, listed.text
    records = await http.get(f"{EVENTS}/events/{event_id}/property-records", headers=ctx.headers)
    assert records.status_code == 200, records.text
    assert records.json()["data"]["property_records"][1] == {
        "property_id": "y",
        "property_value": 2,
    }
