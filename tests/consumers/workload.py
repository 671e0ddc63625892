"""A randomised (seeded) workload of overlapping identities, and a canonical view of a store.

Built so that its final state does not depend on how partitions interleave:
writes link identifiers of one person only (so merges are unions), attributes are
last-writer-wins by event time, and a person who is ever deleted is only ever
named by email (so all of their writes share one partition and stay ordered).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from schemas.messages import EventData, Identifiers, Operation, WriteMessage, new_message_id

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def message(
    team_id: int,
    op: Operation,
    identifiers: Identifiers,
    at: datetime,
    message_id: str | None = None,
    **fields: Any,
) -> WriteMessage:
    """A write of the team that occurred, and was received, at ``at`` (a new UUIDv7 id
    unless ``message_id`` is given)."""
    return WriteMessage(
        id=message_id or new_message_id(),
        team_id=team_id,
        op=op,
        identifiers=identifiers,
        occurred_at=at,
        received_at=at,
        **fields,
    )


@dataclass(frozen=True)
class Person:
    email: str
    phone: str | None
    external_id: str | None
    deletable: bool


def people(rng: random.Random, count: int) -> list[Person]:
    result = []
    for i in range(count):
        deletable = i % 5 == 0
        result.append(
            Person(
                email=f"p{i}@example.com",
                phone=None if deletable or i % 3 == 0 else f"+1415555{i:04d}",
                external_id=None if deletable or i % 2 == 0 else f"ext-{i}",
                deletable=deletable,
            )
        )
    rng.shuffle(result)
    return result


def _identifiers(rng: random.Random, person: Person) -> Identifiers:
    named = {"email": person.email}
    if person.phone:
        named["phone"] = person.phone
    if person.external_id:
        named["external_id"] = person.external_id
    kinds = rng.sample(sorted(named), k=rng.randint(1, len(named)))
    return Identifiers(**{k: named[k] for k in kinds})


def generate(seed: int, team_id: int, count: int, population: int = 60) -> list[WriteMessage]:
    """``count`` messages plus replays (the same ids again) at the end."""
    rng = random.Random(seed)
    crowd = people(rng, population)
    messages: list[WriteMessage] = []
    for n in range(count):
        person = rng.choice(crowd)
        # Distinct event times: last-writer-wins never needs the tie-break.
        when = T0 + timedelta(seconds=rng.randint(0, 86_400 * 30), microseconds=n)
        roll = rng.random()
        ids = _identifiers(rng, person)
        if person.deletable and roll < 0.08:
            op, attrs, event = "delete_customer", {}, None
        elif roll < 0.5:
            op, event = "upsert_customer", None
            attrs = {rng.choice(["plan", "name", "score", "city"]): rng.randint(0, 1000)}
        else:
            op, attrs = "track_event", {}
            event = EventData(name=rng.choice(["view", "click", "buy"]), body={"n": n})
        message_id = str(uuid.UUID(int=rng.getrandbits(128)))
        messages.append(
            message(team_id, op, ids, when, message_id, attributes=attrs, event=event)  # type: ignore[arg-type]
        )
    replays = rng.sample(messages, k=count // 10)
    return messages + replays


async def canonical_store(db: asyncpg.Pool | asyncpg.Connection, team_id: int) -> dict[Any, Any]:
    """Customers keyed by their set of identifiers (ids differ between runs, people do not)."""
    rows = await db.fetch(
        """
        SELECT c.id, c.attributes::text AS attributes, c.first_seen_at,
               (SELECT array_agg(i.kind || ':' || i.value ORDER BY i.kind, i.value)
                  FROM customer_identifiers i
                 WHERE i.customer_id = c.id AND i.kind <> 'customer_id') AS identifiers,
               (SELECT array_agg(e.id::text ORDER BY e.id)
                  FROM events e WHERE e.customer_id = c.id) AS events
          FROM customers c WHERE c.team_id = $1
        """,
        team_id,
    )
    store: dict[Any, Any] = {}
    for r in rows:
        key = tuple(r["identifiers"] or ())
        assert key not in store, f"two customers hold {key}"
        store[key] = (orjson.loads(r["attributes"]), r["first_seen_at"], tuple(r["events"] or ()))
    return store
