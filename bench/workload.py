"""What the benchmark sends: HTTP request templates and the equivalent canonical messages.

Bodies are built once, before the clock starts; the gateway gives every accepted
write a new message id, so sending one body many times still makes distinct events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from schemas.messages import EventData, Identifiers, WriteMessage, new_write, utcnow

Kind = Literal["event", "customer"]

EVENT_NAMES = ("page_view", "add_to_cart", "purchase", "search", "signup")
PLANS = ("free", "silver", "gold")


@dataclass(frozen=True)
class Template:
    """One request: path, JSON body, and the kind of each write it carries, in order."""

    path: str
    body: bytes
    kinds: tuple[Kind, ...]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    batch: int  # writes per request; 1 = the single-event endpoint
    mixed: bool = False


SCENARIOS = {
    "single": Scenario("single", "1 event / request", 1),
    "batch10": Scenario("batch10", "batches of 10 events", 10),
    "batch100": Scenario("batch100", "batches of 100 events", 100),
    "batch1000": Scenario("batch1000", "batches of 1,000 events", 1000),
    "mixed": Scenario("mixed", "mixed upserts + events, merges (batches of 100)", 100, True),
}


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


def templates(scenario: Scenario, run: str, pool: int, count: int, seed: int) -> list[Template]:
    """``count`` distinct requests for ``scenario`` over a pool of ``pool`` customers."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
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
