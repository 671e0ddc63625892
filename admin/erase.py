"""``ingest-admin erase-customer``: erase a customer the way the API's delete does.

    ingest-admin erase-customer --team TEAM (--email E | --external-id ID | --phone P
                 | --anonymous-id ID | --customer-id N) [--wait SECONDS] [--yes] [--json]

Not a ``DELETE`` in PostgreSQL: the command publishes the write the 000 API's
``DELETE /api/1.0/customer/{email}`` publishes, made by the same builder
(``build.new_write``: a ``delete_customer`` message naming the customer by one
identifier, normalised as the gateway normalises it, junk refused), in a record made
as the gateway makes it (``publisher.group_records``: the partition key of
``schemas.topics.partition_key``, the team and that identifier), acknowledged by
every in-sync replica, in both lanes as the gateway publishes a delete. So the
consumers apply it as they apply the API's delete, in order with that customer's
writes named the same way: a write accepted before is
applied before and erased with the customer; one accepted after starts a new
customer (docs/identity.md, "Delete"). Erased: the customer, its identifiers,
attributes and events.

**Which identifier the delete names.** The customer holding the identifier given
is looked up first, in the team (a customer id that was merged away resolves to the
customer it went into). The delete names that customer as the API's delete would,
by the identifier its writes are keyed by: the first kind it holds of email,
external id, phone, customer id, anonymous id (``KEY_PRECEDENCE``; the one given if
it is of that kind, else the oldest). So erasing by phone a customer who has an
email publishes the API's delete of that email, ordered with the writes keyed by it.
When nobody holds the identifier given (yet), the delete names it as given; a
customer id must be held. One message, in one partition: writes keyed by another of
the customer's identifiers are not ordered with it (Kafka orders within a
partition), and the delete erases whoever holds the identifier it names when it is
applied.

The team (``--team``, a name or id) scopes every query and the message. Before
publishing, the command shows what the delete will erase as the store has it now
(the customer, its identifiers, its number of events; or that none holds the
identifier yet) and asks, as ``purge-dead-letters`` does (``--yes``). ``--wait
SECONDS`` then waits for the consumers to apply it (``processed_messages``).
Values a team blocked are not refused here, unlike in the API: a customer may hold
one from before it was blocked, and erasing it is still owed.

Imports the gateway's builder and record maker (``ingest_gateway.write``) and its
``ApiError`` (a refused identifier), the read model's lookups and wait, ``runtime``,
``schemas``, ``admin.errors``, ``admin.teams`` and ``admin.terminal``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from admin.errors import CommandError
from admin.teams import find_team
from admin.terminal import confirm, to_json
from ingest_gateway.read_model.events import customer_for_identifier
from ingest_gateway.read_model.outcomes import wait_for_outcomes
from ingest_gateway.web.errors import ApiError
from ingest_gateway.write.build import Received, identifiers_or_400, new_write
from ingest_gateway.write.publisher import MemoPartitioner, group_records, message_limit
from runtime.kafka import acked_producer
from runtime.pg import Connection
from runtime.settings import Settings
from schemas.identity import KINDS
from schemas.messages import Identifiers, WriteMessage, utcnow
from schemas.topics import KEY_PRECEDENCE, with_deletes_in_every_lane

COMMANDS = frozenset({"erase-customer"})

# Recorded on the message as the API it came through.
API = "ingest_admin"


def add_parsers(sub: Any) -> None:
    """Add the command to ``ingest-admin``'s subparsers."""
    erase = sub.add_parser(
        "erase-customer",
        help="erase a customer and its events, in order with its writes (asks first)",
    )
    erase.add_argument("--team", required=True, help="team name or id")
    named = erase.add_mutually_exclusive_group(required=True)
    for kind in KINDS:
        named.add_argument(f"--{kind.replace('_', '-')}", dest=kind, metavar="VALUE")
    erase.add_argument(
        "--wait", type=float, metavar="SECONDS", help="wait for the consumers to apply it"
    )
    erase.add_argument("--yes", action="store_true", help="do not ask")
    erase.add_argument("--json", action="store_true", help="print JSON (the plan on stderr)")


@dataclass(frozen=True)
class Target:
    """Who the delete names, and what the store holds under that name now."""

    team: str
    team_id: int
    given: Identifiers  # the identifier asked for, normalised
    named: Identifiers  # the one the delete names
    customer: int | None
    identifiers: list[tuple[str, str]]
    events: int

    def describe(self) -> str:
        lines = [f"erase-customer: team {self.team} (id {self.team_id}), {_shown(self.given)}"]
        if self.customer is None:
            lines.append(
                "  no customer holds it now; the delete names it so, and erases the customer"
                " a write keyed the same way creates before it"
            )
            return "\n".join(lines)
        held = ", ".join(f"{k} {v}" for k, v in self.identifiers)
        lines += [
            f"  held by customer {self.customer}: {self.events} event(s); identifiers: {held}",
            f"  the delete names it by {_shown(self.named)}, as its writes are keyed",
        ]
        return "\n".join(lines)


def _shown(identifiers: Identifiers) -> str:
    return " ".join(*identifiers.items())


async def run(settings: Settings, conn: Connection, args: argparse.Namespace) -> str:
    """Run ``erase-customer``; returns what to print."""
    if args.wait is not None and args.wait <= 0:
        raise CommandError("--wait must be more than 0 seconds")
    kind = next(kind for kind in KINDS if getattr(args, kind) is not None)
    target = await find_target(conn, args.team, kind, getattr(args, kind))
    confirm(target.describe(), args.yes, out=sys.stderr if args.json else None)
    message = delete_message(target)
    partition, offset = await publish(settings, message)
    outcome = None
    if args.wait is not None:
        found = await wait_for_outcomes(conn, [message.id], args.wait)
        outcome = None if found is None else str(found[message.id])
    if args.json:
        return to_json(
            {
                "team_id": target.team_id,
                "given": dict(target.given.items()),
                "named": dict(target.named.items()),
                "customer": target.customer,
                "message_id": message.id,
                "topic": settings.writes_topic,
                "partition": partition,
                "offset": offset,
                "outcome": outcome,
            }
        )
    lines = [
        f"published message {message.id}: {settings.writes_topic} partition {partition}"
        f" offset {offset}"
    ]
    if args.wait is not None:
        lines.append(
            f"not applied within {args.wait:g} s (it will be: the write is in Kafka)"
            if outcome is None
            else f"applied by the consumers: {outcome}"
        )
    return "\n".join(lines)


async def find_target(conn: Connection, team: str, kind: str, value: str) -> Target:
    """Who the delete names (the module docstring says how), and what the store
    holds under that name in ``team`` now."""
    team_id = await find_team(conn, team)
    given = _normalised(Identifiers(**{kind: value}))
    ((_, normalised),) = given.items()
    customer = await customer_for_identifier(conn, team_id, kind, normalised)
    if kind == "customer_id" and customer is None:
        raise CommandError(f"team {team} has no customer {normalised}")
    held = [] if customer is None else await identifiers_of(conn, team_id, customer)
    # By the kind its writes are keyed by; the one given if it is of that kind.
    named = Identifiers(**dict(held[:1])) if held and held[0][0] != kind else given
    events = 0
    if customer is not None:
        events = await conn.fetchval(
            "SELECT count(*) FROM events WHERE team_id = $1 AND customer_id = $2",
            team_id,
            customer,
        )
    return Target(team, team_id, given, named, customer, held, int(events))


def _normalised(identifiers: Identifiers) -> Identifiers:
    try:
        return identifiers_or_400(identifiers)
    except ApiError as exc:
        raise CommandError(exc.message) from None


async def identifiers_of(conn: Connection, team_id: int, customer: int) -> list[tuple[str, str]]:
    """The customer's identifiers, by key precedence, the oldest of a kind first."""
    rows = await conn.fetch(
        "SELECT kind, value FROM customer_identifiers WHERE team_id = $1 AND customer_id = $2"
        " ORDER BY array_position($3::text[], kind), created_at, value",
        team_id,
        customer,
        list(KEY_PRECEDENCE),
    )
    return [(r["kind"], r["value"]) for r in rows]


def delete_message(target: Target) -> WriteMessage:
    """The API's delete of the customer ``target`` names."""
    received = Received(utcnow(), None, API)
    return new_write(
        received, target.team_id, "delete_customer", target.named, identifiers_normalised=True
    )


async def publish(settings: Settings, message: WriteMessage) -> tuple[int, int]:
    """Publish ``message`` as the gateway publishes a delete, to both lanes
    (``schemas.topics.with_deletes_in_every_lane``); its (partition, offset) in the
    main lane's topic once both are acknowledged."""
    lanes = with_deletes_in_every_lane([message], [message], ())
    producer = acked_producer(settings, "ingest-admin-erase")
    await producer.start()
    try:
        placed = []
        for topic, lane in zip(
            (settings.writes_topic, settings.writes_overflow_topic), lanes, strict=True
        ):
            if not lane:
                continue
            partitions = len(await producer.partitions_for(topic))
            ((partition, key, value),) = group_records(
                lane,
                partitions,
                settings.producer_record_max_bytes,
                MemoPartitioner(),
                message_limit(settings),
            )
            sent = await producer.send_and_wait(topic, value=value, key=key, partition=partition)
            placed.append((int(sent.partition), int(sent.offset)))
        return placed[0]
    finally:
        await producer.stop()
