"""A randomised (seeded) workload of overlapping identities, and a canonical view of a store.

Built so that its final state does not depend on how partitions interleave:
writes link identifiers of one person only (so merges are unions), attributes and
group traits are last-writer-wins by event time, and a person who is ever deleted
is only ever named by email (so all of their writes share one partition and stay
ordered). That restriction stays with lanes: a delete's tombstones discard a write
accepted before it and applied after it, but such a write naming the person beside
another identifier would, applied before the delete, have merged another customer
into the one erased; discarding it cannot reproduce that erasure.

Message ids grow in generation order, as the gateway's UUIDv7s grow in acceptance
order: the rules that order by message id (deletes, duplicate confirmations, 004's
client events) see the workload's order.

Events with rules of their own are in it too: confirmations sent again with the same
order id (a client retrying), email opens minutes apart (several per window), and
004-style events with a client id sent in several versions.

People browse anonymously first, as with a Segment SDK: each has devices
(anonymous ids), and writes naming only a device create anonymous customers that
later writes naming the device with an email, phone or user id merge into the
person (they travel in other partitions, keyed by that identifier). People also
join groups (accounts) with traits.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from schemas.messages import (
    EventData,
    GroupData,
    Identifiers,
    Operation,
    WriteMessage,
    new_message_id,
)

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
    devices: tuple[str, ...] = ()


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
                devices=() if deletable else tuple(f"anon-{i}-{d}" for d in range(i % 3 + 1)),
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
    if person.devices:
        named["anonymous_id"] = rng.choice(person.devices)
    kinds = rng.sample(sorted(named), k=rng.randint(1, len(named)))
    return Identifiers(**{k: named[k] for k in kinds})


def _special_event(
    rng: random.Random, person: Person, n: int, when: datetime
) -> tuple[Identifiers, datetime, EventData]:
    """An event a rule of its own applies to, for ``person``."""
    tag = person.email.split("@")[0]
    roll = rng.random()
    if roll < 0.35:
        # A few orders per person, each confirmed more than once.
        order = f"order-{tag}-{rng.randint(0, 3)}"
        return (
            _identifiers(rng, person),
            when,
            EventData(name="confirmation", kind="confirmation", order_id=order, body={"n": n}),
        )
    if roll < 0.7:
        # Opens of a few campaigns, minutes apart: several per 20-minute window. Named by
        # email only: the window is per customer, and the email's is the person's.
        base = T0 + timedelta(days=rng.randint(0, 2), hours=rng.randint(0, 2))
        at = base + timedelta(minutes=rng.randint(0, 90), microseconds=n)
        return (
            Identifiers(email=person.email),
            at,
            EventData(name="email_open", kind="email_open", body={"n": n}),
        )
    client_id = f"ce-{tag}-{rng.randint(0, 3)}"
    return (
        _identifiers(rng, person),
        when,
        EventData(name="viewed", client_event_id=client_id, body={"n": n}),
    )


def generate(seed: int, team_id: int, count: int, population: int = 60) -> list[WriteMessage]:
    """``count`` messages plus replays (the same ids again) at the end."""
    rng = random.Random(seed)
    crowd = people(rng, population)
    messages: list[WriteMessage] = []
    ids_in_order = sorted(str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(count))
    for n in range(count):
        person = rng.choice(crowd)
        # Distinct event times: last-writer-wins never needs the tie-break.
        when = T0 + timedelta(seconds=rng.randint(0, 86_400 * 30), microseconds=n)
        roll = rng.random()
        ids = _identifiers(rng, person)
        group = None
        if person.deletable and roll < 0.08:
            op, attrs, event = "delete_customer", {}, None
        elif roll < 0.4:
            op, event = "upsert_customer", None
            attrs = {rng.choice(["plan", "name", "score", "city"]): rng.randint(0, 1000)}
        elif roll < 0.5:
            op, attrs, event = "upsert_customer", {}, None
            group = GroupData(
                group_id=f"acct-{rng.randint(0, 7)}",
                traits={rng.choice(["tier", "seats"]): rng.randint(0, 1000)},
            )
        elif roll < 0.75:
            op, attrs = "track_event", {}
            event = EventData(name=rng.choice(["view", "click", "buy"]), body={"n": n})
        else:
            op, attrs = "track_event", {}
            ids, when, event = _special_event(rng, person, n, when)
        message_id = ids_in_order[n]
        messages.append(
            message(team_id, op, ids, when, message_id, attributes=attrs, event=event, group=group)  # type: ignore[arg-type]
        )
    replays = rng.sample(messages, k=count // 10)
    return messages + replays


async def canonical_store(db: asyncpg.Pool | asyncpg.Connection, team_id: int) -> dict[Any, Any]:
    """Customers keyed by their set of identifiers (ids differ between runs, people do not),
    with their attributes, first-seen time and the events kept (by the message id of
    the version stored: which copy of a confirmation, which open of a window, which
    version of a client event); groups with traits and members."""
    rows = await db.fetch(
        """
        SELECT c.id, c.attributes::text AS attributes, c.first_seen_at,
               (SELECT array_agg(i.kind || ':' || i.value ORDER BY i.kind, i.value)
                  FROM customer_identifiers i
                 WHERE i.customer_id = c.id AND i.kind <> 'customer_id') AS identifiers,
               (SELECT array_agg(e.version_message_id::text ORDER BY e.version_message_id)
                  FROM events e WHERE e.customer_id = c.id) AS events
          FROM customers c WHERE c.team_id = $1
        """,
        team_id,
    )
    store: dict[Any, Any] = {}
    keys: dict[int, tuple[str, ...]] = {}
    for r in rows:
        key = keys[r["id"]] = tuple(r["identifiers"] or ())
        assert key not in store, f"two customers hold {key}"
        store[key] = (orjson.loads(r["attributes"]), r["first_seen_at"], tuple(r["events"] or ()))
    groups = await db.fetch(
        """
        SELECT g.group_id, g.traits::text AS traits, g.first_seen_at, g.last_updated_at,
               (SELECT array_agg(m.customer_id ORDER BY m.customer_id)
                  FROM customer_group_members m
                 WHERE m.team_id = g.team_id AND m.group_id = g.group_id) AS members
          FROM customer_groups g WHERE g.team_id = $1
        """,
        team_id,
    )
    for g in groups:
        # Members by who they are (their identifiers), not by id.
        members = sorted(keys[m] for m in g["members"] or ())
        store[("group", g["group_id"])] = (
            orjson.loads(g["traits"]),
            (g["first_seen_at"], g["last_updated_at"]),
            tuple(members),
        )
    return store
