"""The edges of issue #17, point 5, against the real gateway (and the CORS layer alone).

- Every answer of the Segment surface (``/v1``) to a browser's ``Origin`` carries
  ``Access-Control-Allow-Origin``, errors included: the 413 of a declared
  Content-Length (answered before the app is called), of a streamed body and of a
  gzip bomb, 400, 401, 404, 405, 415; only a team's refused origin (403) carries
  none. Other surfaces do no CORS.
- ``Origin: null`` is never reflected: ``*`` (the answers hold nothing private and
  allow no credentials); a team that lists its origins refuses it.
- The settings analytics.js loads name ``PUBLIC_BASE_URL``, else a trusted Host
  (``TRUSTED_HOSTS``, loopback by default), never another: ``Host: evil.example`` is
  421 without a trace of it. So does the customer list's ``nextPageUrl`` (every page
  of it is 421 for such a Host, the last one too).
- An integer query parameter is an optional sign and ASCII digits: ``1e3``, ``1.0``,
  `` 1``, a fullwidth 1 and the like are 400 naming the parameter, on every surface that
  has one.
"""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from admin.teams import create_team, set_allowed_origins
from ingest_gateway.surfaces import segment_api
from ingest_gateway.surfaces.segment_api import refusal
from ingest_gateway.web.cors import REFUSED_ORIGIN, CorsHeaders
from ingest_gateway.web.hosts import UNTRUSTED
from runtime.settings import Settings
from tests.conftest import Team, private_gateway

ORIGIN = "https://shop.example"
GROUPS = "/rest-api/customer-interface/v1.0"
EVENTS = "/rest-api/enterprise-interface/v1.0"


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def allows(response: httpx.Response, origin: str = ORIGIN) -> None:
    """The answer lets a page from ``origin`` read it, and says it varies by Origin."""
    assert response.headers.get("access-control-allow-origin") == origin, (
        response.status_code,
        response.headers,
    )
    assert "origin" in response.headers.get("vary", "").lower(), response.headers


# -- CORS headers on every answer ---------------------------------------------------


async def test_413_of_a_declared_length_can_be_read_by_the_page(
    http: httpx.AsyncClient, team: Team
) -> None:
    too_large = b'{"batch": [], "blob": "' + b"x" * Settings().max_body_bytes + b'"}'
    for path in ("/v1/batch", "/v1/t"):
        declared = await http.post(
            path, content=too_large, headers={**basic(team.key), "Origin": ORIGIN}
        )
        assert declared.status_code == 413
        assert declared.json() == refusal(
            413, f"The request body is larger than the limit of {Settings().max_body_bytes} bytes"
        )
        allows(declared)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(6):
            yield b" " * (1024 * 1024)

    streamed = await http.post(
        "/v1/batch", content=chunks(), headers={**basic(team.key), "Origin": ORIGIN}
    )
    assert streamed.status_code == 413
    allows(streamed)


async def test_every_error_of_the_surface_can_be_read_by_the_page(
    http: httpx.AsyncClient, team: Team
) -> None:
    origin = {"Origin": ORIGIN}
    keyed = {**basic(team.key), **origin}
    gzipped = {**keyed, "Content-Encoding": "gzip", "Content-Type": "text/plain"}
    bomb = gzip.compress(b"{" + b" " * (Settings().max_body_bytes + 1) + b"}", compresslevel=9)
    answers = {
        "no key": (401, await http.post("/v1/track", json={"event": "x"}, headers=origin)),
        "unknown key": (401, await http.post("/v1/t", json={"writeKey": "nobody"}, headers=origin)),
        "broken JSON": (400, await http.post("/v1/batch", content=b"{not json", headers=keyed)),
        "bad call": (400, await http.post("/v1/track", json={"userId": "u"}, headers=keyed)),
        "gzip bomb": (413, await http.post("/v1/batch", content=bomb, headers=gzipped)),
        "broken gzip": (400, await http.post("/v1/batch", content=b"not gzip", headers=gzipped)),
        "brotli": (
            415,
            await http.post(
                "/v1/batch", content=b"{}", headers={**keyed, "Content-Encoding": "br"}
            ),
        ),
        "no such route": (404, await http.post("/v1/nothing-here", json={}, headers=keyed)),
        "no such method": (405, await http.get("/v1/track", headers=keyed)),
        "unknown project": (404, await http.get("/v1/projects/nobody/settings", headers=origin)),
    }
    for name, (status, response) in answers.items():
        assert response.status_code == status, (name, response.text)
        assert response.json()["success"] is False, name
        if "project" in name:  # the settings are open to any origin
            assert response.headers["access-control-allow-origin"] == "*", name
        else:
            allows(response)
    # The write key of a browser-facing surface only: others do no CORS.
    elsewhere = await http.get("/api/1.0/customers", headers={**team.headers, **origin})
    assert elsewhere.status_code == 200
    assert "access-control-allow-origin" not in elsewhere.headers


async def test_a_refused_origin_is_the_one_answer_without_allow_origin(
    http: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    async with db.acquire() as conn:
        name = f"edges-{uuid.uuid4().hex[:12]}"
        _, key = await create_team(conn, name)
        await set_allowed_origins(conn, name, [ORIGIN])
    call = {"userId": "u-1", "event": "Clicked"}
    for origin in ("https://evil.example", "null"):
        refused = await http.post("/v1/track", json=call, headers={**basic(key), "Origin": origin})
        assert refused.status_code == 403, origin
        assert "access-control-allow-origin" not in refused.headers, origin
    allowed = await http.post("/v1/track", json=call, headers={**basic(key), "Origin": ORIGIN})
    assert allowed.status_code == 200
    allows(allowed)


# -- Origin: null ---------------------------------------------------------------------


async def test_origin_null_is_never_reflected(http: httpx.AsyncClient, team: Team) -> None:
    for origin in ("null", "NULL"):
        preflight = await http.options(
            "/v1/batch",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in preflight.headers
        call = {"userId": "u-null", "event": "Sandboxed", "writeKey": team.key}
        answers = [
            await http.post("/v1/track", json=call, headers={"Origin": origin}),
            await http.post("/v1/track", json={"event": "x"}, headers={"Origin": origin}),
            await http.post("/v1/nothing-here", headers={"Origin": origin}),
        ]
        assert [a.status_code for a in answers] == [200, 401, 404]
        for answer in answers:
            allows(answer, "*")
            assert "access-control-allow-credentials" not in answer.headers


# -- apiHost: never an untrusted Host ----------------------------------------------------


@asynccontextmanager
async def private_client(
    settings: Settings, tmp_path: Path, name: str, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a gateway of the test's own, with ``overrides`` of ``settings``."""
    async with (
        private_gateway(settings, tmp_path, name, **overrides) as (base, _),
        httpx.AsyncClient(base_url=base, timeout=30) as client,
    ):
        yield client


def api_host(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 200, response.text
    segment = response.json()["integrations"]["Segment.io"]
    return segment["apiHost"], segment["protocol"]


def misdirected(response: httpx.Response) -> None:
    assert response.status_code == 421, response.text
    assert response.json() == refusal(421, UNTRUSTED)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["access-control-allow-origin"] == "*"
    assert "evil" not in response.text


HOSTILE_HOSTS = [
    "evil.example",
    "evil.example:8080",
    "127.0.0.1.evil.example",
    "localhost@evil.example",
    "localhost:80/evil.example",
    "localhost evil.example",
]


async def test_settings_never_name_an_untrusted_host(http: httpx.AsyncClient, team: Team) -> None:
    settings = f"/v1/projects/{team.key}/settings"
    for host in HOSTILE_HOSTS:
        misdirected(await http.get(settings, headers={"Host": host}))
    # (before the key is looked up: an unknown one is 421 too, not 404)
    misdirected(await http.get("/v1/projects/nobody/settings", headers={"Host": "evil.example"}))
    # Loopback, trusted by default; headers proxies set are not read.
    for host in ("localhost:8080", "127.0.0.1", "[::1]:80", "LocalHost"):
        found = await http.get(settings, headers={"Host": host, "X-Forwarded-Host": "evil.example"})
        assert api_host(found) == (f"{host}/v1", "http")
        assert found.headers["vary"] == "Host"


async def test_settings_with_trusted_hosts(settings: Settings, tmp_path: Path, team: Team) -> None:
    trusted = "ingest.example.com:8443, a.example"
    async with private_client(settings, tmp_path, "trusted-hosts", trusted_hosts=trusted) as client:
        path = f"/v1/projects/{team.key}/settings"
        for host in ("ingest.example.com:8443", "INGEST.example.com:8443", "a.example:1"):
            assert api_host(await client.get(path, headers={"Host": host})) == (
                f"{host}/v1",
                "http",
            )
        # The list replaces the loopback default; another port is another authority.
        for host in ("ingest.example.com:8444", "ingest.example.com", "localhost", *HOSTILE_HOSTS):
            misdirected(await client.get(path, headers={"Host": host}))


async def test_a_public_base_url_names_the_gateway(
    settings: Settings, tmp_path: Path, http: httpx.AsyncClient, team: Team
) -> None:
    await two_customers(http, team)
    public = "https://ingest.example.com/in/"
    async with private_client(settings, tmp_path, "public-base", public_base_url=public) as client:
        path = f"/v1/projects/{team.key}/settings"
        for host in ("evil.example", "localhost:8080"):
            found = await client.get(path, headers={"Host": host})
            assert api_host(found) == ("ingest.example.com/in/v1", "https")
            assert "evil" not in found.text
            assert "host" not in found.headers.get("vary", "").lower()
            page = await client.get(FIRST_PAGE, headers={**team.headers, "Host": host})
            assert next_page(page) == f"https://ingest.example.com/in{NEXT_PAGE}"
            assert "evil" not in page.text
            assert "host" not in page.headers.get("vary", "").lower()


# nextPageUrl of the customer list names the gateway by the same rule.
FIRST_PAGE = "/api/1.0/customers?itemsPerPage=1"
NEXT_PAGE = "/api/1.0/customers?startingFrom=1&itemsPerPage=1"


async def two_customers(http: httpx.AsyncClient, team: Team) -> None:
    """Two customers for ``team`` (stored): its first page of one has a next page."""
    for _ in range(2):
        email = f"c-{uuid.uuid4().hex[:12]}@example.com"
        created = await http.post(f"/api/1.0/customer/{email}?wait=true", headers=team.headers)
        assert created.status_code == 200, created.text


def next_page(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["metadata"]["nextPageUrl"])


async def test_next_page_url_never_names_an_untrusted_host(
    http: httpx.AsyncClient, team: Team
) -> None:
    await two_customers(http, team)
    for host in HOSTILE_HOSTS:
        for page in (FIRST_PAGE, NEXT_PAGE):  # (the last page too: it names no next page)
            refused = await http.get(page, headers={**team.headers, "Host": host})
            assert refused.status_code == 421, refused.text
            assert refused.json() == {"error": UNTRUSTED}
            assert refused.headers["cache-control"] == "no-store"
            assert "evil" not in refused.text
    # Loopback, trusted by default; headers proxies set are not read.
    for host in ("localhost:8080", "127.0.0.1", "[::1]:80", "LocalHost"):
        headers = {**team.headers, "Host": host, "X-Forwarded-Host": "evil.example"}
        found = await http.get(FIRST_PAGE, headers=headers)
        assert next_page(found) == f"http://{host}{NEXT_PAGE}"
        assert found.headers["vary"] == "Host"


# -- integer query parameters ---------------------------------------------------------


INTEGER_PARAMETERS = [
    ("/api/1.0/customers", "startingFrom"),
    ("/api/1.0/customers", "itemsPerPage"),
    (f"{GROUPS}/event-groups", "count"),
    (f"{GROUPS}/event-groups", "offset"),
    (f"{GROUPS}/event-types", "count"),
    (f"{GROUPS}/event-types", "offset"),
    (f"{EVENTS}/events", "count"),
    (f"{EVENTS}/events", "offset"),
    (f"{EVENTS}/events/1/property-records", "count"),
    (f"{EVENTS}/events/1/property-records", "offset"),
]
NOT_INTEGERS = [
    "1e3", "1E3", "1e0", "1.0", "10.", " 1", "1 ", "\t1", "１", "٣", "1_000", "0x10", "", "+", "-",
    "1,0", "١٢", "²",
]  # fmt: skip


def error_text(response: httpx.Response) -> str:
    """The refusal's text in whichever of the surfaces' formats it came."""
    body: Any = response.json()
    error = body.get("error")
    if isinstance(error, str):  # api/1.0
        return error
    assert isinstance(error, dict), body  # /rest-api
    assert error["code"] == response.status_code, body
    return json.dumps(error)


@pytest.mark.parametrize(("path", "parameter"), INTEGER_PARAMETERS)
async def test_integer_query_parameters_are_integers(
    http: httpx.AsyncClient, team: Team, path: str, parameter: str
) -> None:
    for value in NOT_INTEGERS:
        refused = await http.get(path, params={parameter: value}, headers=team.headers)
        assert refused.status_code == 400, (value, refused.text)
        text = error_text(refused)
        assert f"Invalid parameter {parameter}: an integer is ASCII digits" in text, (value, text)
    if "property-records" in path:
        return  # (no such event: 404 once the parameters are read)
    for value in ("10", "+10", "010", "0"):
        if parameter == "itemsPerPage" and value == "0":
            continue  # (at least 1)
        found = await http.get(path, params={parameter: value}, headers=team.headers)
        assert found.status_code == 200, (value, found.text)
    out_of_range = await http.get(path, params={parameter: "-1"}, headers=team.headers)
    assert out_of_range.status_code == 400
    assert parameter in error_text(out_of_range)


# -- the CORS layer alone ---------------------------------------------------------------


async def answered(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    """What ``CorsHeaders(app)`` sends for a GET of ``path`` with ``headers``."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    await CorsHeaders(app, (segment_api.PREFIX,))(scope, receive, send)
    return sent


def answer_with(status: int, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if status == 403:
            scope[REFUSED_ORIGIN] = True
        await send({"type": "http.response.start", "status": status, "headers": headers or []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


def header(messages: list[Message], name: bytes) -> list[bytes]:
    return [v for n, v in messages[0]["headers"] if n == name]


async def test_cors_layer_adds_allow_origin_where_and_only_where_it_should() -> None:
    origin = [(b"origin", ORIGIN.encode())]
    ok = await answered(answer_with(200), "/v1/t", origin)
    assert header(ok, b"access-control-allow-origin") == [ORIGIN.encode()]
    assert header(ok, b"vary") == [b"Origin"]
    assert header(await answered(answer_with(200), "/v1", origin), b"vary") == [b"Origin"]
    for path in ("/v1beta/t", "/api/1.0/customers", "/"):  # not a CORS prefix
        assert (await answered(answer_with(200), path, origin))[0]["headers"] == []
    assert (await answered(answer_with(200), "/v1/t", []))[0]["headers"] == []  # no browser
    assert (await answered(answer_with(403), "/v1/t", origin))[0]["headers"] == []  # refused
    starred = await answered(
        answer_with(200, [(b"access-control-allow-origin", b"*")]), "/v1", origin
    )
    assert header(starred, b"access-control-allow-origin") == [b"*"]  # kept as it is


async def test_cors_layer_answers_a_500_the_page_can_read() -> None:
    async def bug(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("a bug")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/t", "headers": [(b"origin", b"null")]}
    with pytest.raises(RuntimeError):  # still raised: the server logs it
        await CorsHeaders(bug, (segment_api.PREFIX,))(scope, receive, send)
    assert sent[0]["status"] == 500
    assert (b"access-control-allow-origin", b"*") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == refusal(500, "Internal server error")
