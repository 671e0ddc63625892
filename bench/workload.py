"""What the benchmark sends: HTTP request templates and the equivalent canonical messages.

Bodies are built once, before the clock starts; the gateway gives every accepted
write a new message id, so sending one body many times still makes distinct events.
Segment's ``/v1/batch`` is the exception: there the client names each write
(``messageId``, from which the gateway derives the message id), so a resent body
would be stored once. Its templates carry the placeholder ``STAMP`` in every
messageId, which the load generator replaces by a per-request counter (``stamp``:
one ``bytes.replace`` of equal length, so the pre-built Content-Length holds); the
bench derives the stored ids from the counters of the accepted requests
(``client_ids``), since Segment's answer carries none.
"""

from __future__ import annotations

import base64
import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import orjson

from bench.writes import new_write
from schemas.messages import (
    EventData,
    Identifiers,
    WriteMessage,
    client_message_id,
    utcnow,
)

Kind = Literal["event", "customer"]

EVENT_NAMES = ("page_view", "add_to_cart", "purchase", "search", "signup")
PLANS = ("free", "silver", "gold")


@dataclass(frozen=True)
class Template:
    """One request: path, JSON body, and the kind of each write it carries, in order."""

    path: str
    body: bytes
    kinds: tuple[Kind, ...]
    # Segment: each write's messageId, with STAMP where each send puts its counter.
    message_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    batch: int  # writes per request; 1 = the single-event endpoint
    mixed: bool = False
    segment: bool = False  # Segment's POST /v1/batch, HTTP Basic auth


SCENARIOS = {
    "single": Scenario("single", "1 event / request", 1),
    "batch10": Scenario("batch10", "batches of 10 events", 10),
    "batch100": Scenario("batch100", "batches of 100 events", 100),
    "batch1000": Scenario("batch1000", "batches of 1,000 events", 1000),
    "mixed": Scenario("mixed", "mixed upserts + events, merges (batches of 100)", 100, True),
    "segment100": Scenario("segment100", "Segment /v1/batch, 100 calls", 100, segment=True),
}

# In a Segment template's messageIds; replaced on every send by the counter in hex.
STAMP = "__STAMP_____"
STAMP_WIDTH = len(STAMP)
_STAMP = STAMP.encode()


def auth_headers(scenario: Scenario, key: str) -> dict[str, str]:
    if scenario.segment:  # the write key as Basic's username, empty password
        return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}
    return {"X-API-KEY": key}


def stamp(raw: bytes, counter: int) -> bytes:
    """``raw`` (a request of a Segment template) with fresh messageIds: ``counter``'s."""
    return raw.replace(_STAMP, b"%0*x" % (STAMP_WIDTH, counter))


def client_ids(team_id: int, template: Template, counter: int) -> Iterator[tuple[Kind, str]]:
    """(kind, message id) of each write of ``template`` sent with ``counter``."""
    value = f"{counter:0{STAMP_WIDTH}x}"
    for kind, message_id in zip(template.kinds, template.message_ids, strict=True):
        yield kind, client_message_id(team_id, message_id.replace(STAMP, value))


def customer_email(run: str, index: int) -> str:
    return f"c{index}.{run}@bench.example.com"


def _event_body(rng: random.Random) -> dict[str, Any]:
    return {
        "amount": round(rng.uniform(1, 500), 2),
        "currency": "EUR",
        "page": f"/products/{rng.randrange(10_000)}",
        "tags": ["bench", rng.choice(("web", "app"))],
    }


def _mixed_item(run: str, rng: random.Random, pool: int) -> tuple[Kind, dict[str, Any]]:
    """A write naming a person by email, by external id, or by both (which merges)."""
    person = rng.randrange(pool)
    how = rng.random()
    names: dict[str, Any] = {}
    if how < 0.45:
        names["email"] = customer_email(run, person)
    elif how < 0.75:
        names["customerExternalId"] = f"x{person}.{run}"
    else:
        names["email"] = customer_email(run, person)
        names["customerExternalId"] = f"x{person}.{run}"
    if rng.random() < 0.3:
        attributes = {"plan": rng.choice(PLANS), "score": rng.randrange(100)}
        return "customer", {"type": "customer", **names, "attributes": attributes}
    event = {"type": "event", **names, "eventName": rng.choice(EVENT_NAMES)}
    return "event", event | {"body": _event_body(rng)}


# -- Segment /v1/batch, as analytics-python sends it ---------------------------------

SEGMENT_LIBRARY = {"name": "analytics-python", "version": "2.3.3"}
# Browsers' agents, forwarded by the server in context.userAgent (a crawler's would
# make the consumers discard the event by the bot rule).
BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Mobile Safari/537.36",
)
SEGMENT_EVENTS = ("Product Viewed", "Product Added", "Products Searched", "Order Completed")
CATEGORIES = ("shoes", "books", "garden", "kitchen", "toys")


def segment_person(run: str, index: int) -> tuple[str, str]:
    """(userId, anonymousId) of person ``index``: the anonymousId a UUIDv4, as SDKs make."""
    digest = hashlib.sha256(f"{run}:{index}".encode()).digest()[:16]
    return f"u{index}.{run}", str(uuid.UUID(bytes=digest, version=4))


def _product(rng: random.Random) -> dict[str, Any]:
    n = rng.randrange(10_000)
    return {
        "product_id": f"p{n}",
        "sku": f"SKU-{n:05d}",
        "category": rng.choice(CATEGORIES),
        "name": f"Product {n}",
        "price": round(rng.uniform(2, 300), 2),
    }


def _segment_properties(rng: random.Random, name: str) -> dict[str, Any]:
    if name == "Products Searched":
        return {"query": rng.choice(CATEGORIES) + " " + rng.choice(("sale", "new", "gift"))}
    if name == "Order Completed":
        products = [_product(rng) | {"quantity": rng.randint(1, 3)} for _ in range(3)]
        total = round(sum(p["price"] * p["quantity"] for p in products), 2)
        return {
            "order_id": f"o{rng.randrange(10**9)}",
            "total": total,
            "revenue": round(total / 1.2, 2),
            "currency": "EUR",
            "products": products,
        }
    product = _product(rng) | {"currency": "EUR"}
    if name == "Product Added":
        product |= {"quantity": rng.randint(1, 3), "cart_id": f"cart{rng.randrange(10**6)}"}
    return product


def _segment_context(rng: random.Random) -> dict[str, Any]:
    path = f"/products/{rng.randrange(10_000)}"
    return {
        "library": SEGMENT_LIBRARY,
        "ip": f"198.51.100.{rng.randrange(1, 255)}",
        "userAgent": rng.choice(BROWSER_AGENTS),
        "locale": rng.choice(("en-US", "de-DE", "fr-FR")),
        "page": {
            "path": path,
            "url": f"https://shop.example.com{path}",
            "referrer": "https://www.google.com/",
        },
    }


def _segment_call(run: str, rng: random.Random, pool: int) -> tuple[Kind, dict[str, Any]]:
    """A track (88%) or an identify (12%), its person named by userId, anonymousId or both.

    Tracks of a person before login name only the anonymousId; an identify (at login)
    and later tracks name both, which merges the anonymous customer into the user.
    """
    index = rng.randrange(pool)
    user_id, anonymous_id = segment_person(run, index)
    timestamp = (utcnow() - timedelta(seconds=rng.uniform(0, 5))).isoformat()
    call: dict[str, Any] = {"integrations": {}, "timestamp": timestamp}
    if rng.random() < 0.12:
        traits = {
            "email": customer_email(run, index),
            "name": f"Person {index}",
            "plan": rng.choice(PLANS),
            "logins": rng.randrange(1, 200),
            "created_at": "2024-05-01T12:00:00+00:00",
        }
        call |= {"type": "identify", "userId": user_id, "anonymousId": anonymous_id}
        return "customer", call | {"traits": traits, "context": _segment_context(rng)}
    how = rng.random()
    if how < 0.35:
        call["anonymousId"] = anonymous_id
    elif how < 0.6:
        call["userId"] = user_id
    else:
        call |= {"userId": user_id, "anonymousId": anonymous_id}
    name = rng.choice(SEGMENT_EVENTS)
    call |= {"type": "track", "event": name, "properties": _segment_properties(rng, name)}
    return "event", call | {"context": _segment_context(rng)}


def _segment_template(
    scenario: Scenario, run: str, rng: random.Random, pool: int, seed: int
) -> Template:
    calls: list[dict[str, Any]] = []
    kinds: list[Kind] = []
    message_ids: list[str] = []
    for index in range(scenario.batch):
        kind, call = _segment_call(run, rng, pool)
        # A UUID's shape, as analytics-python's (uuid4), unique per load generator
        # (seed), place in the batch and send (STAMP). Each group but the first starts
        # with a letter or is short, so no run of 19 digits (which would make the
        # gateway walk the JSON for a 64-bit overflow) appears where SDKs' have none.
        message_id = f"{run}-{seed:04x}-4{index:03x}-a{rng.randrange(4096):03x}-{STAMP}"
        calls.append(call | {"messageId": message_id})
        kinds.append(kind)
        message_ids.append(message_id)
    body = orjson.dumps({"batch": calls, "sentAt": utcnow().isoformat()})
    assert body.count(_STAMP) == len(calls)  # the placeholder is nowhere else
    return Template("/v1/batch", body, tuple(kinds), tuple(message_ids))


def templates(scenario: Scenario, run: str, pool: int, count: int, seed: int) -> list[Template]:
    """``count`` distinct requests for ``scenario`` over a pool of ``pool`` customers.

    ``seed``: one per load generator (it names Segment's messageIds apart).
    """
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        if scenario.segment:
            out.append(_segment_template(scenario, run, rng, pool, seed))
            continue
        if scenario.batch == 1 and not scenario.mixed:
            email = customer_email(run, rng.randrange(pool))
            name = rng.choice(EVENT_NAMES)
            path = f"/api/1.0/events/{name}/{email}/ext-{rng.randrange(1_000_000)}"
            out.append(Template(path, orjson.dumps(_event_body(rng)), ("event",)))
            continue
        items: list[dict[str, Any]] = []
        kinds: list[Kind] = []
        for _ in range(scenario.batch):
            if scenario.mixed:
                kind, item = _mixed_item(run, rng, pool)
            else:
                kind = "event"
                item = {
                    "type": "event",
                    "email": customer_email(run, rng.randrange(pool)),
                    "eventName": rng.choice(EVENT_NAMES),
                    "externalId": f"ext-{rng.randrange(1_000_000)}",
                    "body": _event_body(rng),
                }
            items.append(item)
            kinds.append(kind)
        out.append(Template("/api/1.0/batch", orjson.dumps({"items": items}), tuple(kinds)))
    return out


def messages(team_id: int, run: str, pool: int, count: int, seed: int) -> list[WriteMessage]:
    """The canonical messages the gateway makes of the batched-events scenario."""
    rng = random.Random(seed)
    now = utcnow()
    out = []
    for _ in range(count):
        email = customer_email(run, rng.randrange(pool))
        event = EventData(
            name=rng.choice(EVENT_NAMES),
            body=_event_body(rng),
            external_id=f"ext-{rng.randrange(1_000_000)}",
        )
        out.append(
            new_write(
                team_id,
                "track_event",
                Identifiers(email=email),
                received_at=now,
                event=event,
                api="batch_api",
            )
        )
    return out
