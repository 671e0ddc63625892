"""``ingest-admin`` commands for event groups (seed 002), written straight to PostgreSQL.

    ingest-admin create-event-group TEAM TEXT_ID NAME [--state N]
    ingest-admin list-event-groups TEAM              groups with their event types
    ingest-admin add-event-types TEAM GROUP TYPE...  put event types (by name) in a group;
                                                     types not seen yet are created
    ingest-admin remove-event-types TEAM GROUP TYPE...
    ingest-admin delete-event-group TEAM GROUP

TEAM is a team's name or id, GROUP a group's text id (or its id). The same
operations are in the HTTP API under ``/rest-api/customer-interface/v1.0`` (docs/api.md,
"002: event groups"), and both run the gateway's queries of them
(``ingest_gateway.read_model.event_groups``): that, its paging
(``ingest_gateway.read_model.paging``), asyncpg, ``runtime.pg`` and ``admin.errors``
are all this module imports.
"""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from admin.errors import CommandError
from ingest_gateway.read_model import event_groups as q
from ingest_gateway.read_model.paging import Paging
from runtime.pg import Connection

COMMANDS = frozenset(
    {
        "create-event-group",
        "list-event-groups",
        "add-event-types",
        "remove-event-types",
        "delete-event-group",
    }
)


def add_parsers(sub: Any) -> None:
    """Add the commands to ``ingest-admin``'s subparsers."""
    create = sub.add_parser("create-event-group", help="create an event group")
    create.add_argument("team", help="team name or id")
    create.add_argument("text_id")
    create.add_argument("name")
    create.add_argument("--state", type=int, default=1)
    listing = sub.add_parser("list-event-groups", help="list a team's event groups")
    listing.add_argument("team", help="team name or id")
    for command, help_text in (
        ("add-event-types", "put event types (by name) in a group"),
        ("remove-event-types", "take event types (by name) out of a group"),
    ):
        members = sub.add_parser(command, help=help_text)
        members.add_argument("team", help="team name or id")
        members.add_argument("group", help="group text id or id")
        members.add_argument("types", nargs="+", metavar="type", help="event type name")
    delete = sub.add_parser("delete-event-group", help="delete an event group")
    delete.add_argument("team", help="team name or id")
    delete.add_argument("group", help="group text id or id")


async def _group(conn: Connection, team_id: int, reference: str) -> asyncpg.Record:
    group = await q.group_by_reference(conn, team_id, reference)
    if group is None:
        raise CommandError(f"no event group {reference!r}")
    return group


async def run(conn: Connection, args: argparse.Namespace, team_id: int) -> str:
    """Run one of ``COMMANDS`` for the team; returns what to print."""
    if args.command == "create-event-group":
        try:
            row = await q.create_group(conn, team_id, args.name, args.text_id, args.state)
        except asyncpg.UniqueViolationError as exc:
            raise CommandError(f"the team has an event group {args.text_id!r} already") from exc
        return f"event group {row['text_id']} (id {row['event_group_id']})"
    if args.command == "list-event-groups":
        every_group = Paging("g.id", descending=False, offset=0, count=1_000_000)
        _, groups = await q.list_groups(conn, team_id, every_group, name=None, text_id=None)
        lines = ["id\ttext_id\tname\tstate\tevent types"]
        for g in groups:
            types = await q.group_event_types(conn, team_id, int(g["event_group_id"]))
            names = ", ".join(t["name"] for t in types)
            lines.append(
                f"{g['event_group_id']}\t{g['text_id']}\t{g['name']}\t{g['state']}\t{names}"
            )
        return "\n".join(lines)
    group = await _group(conn, team_id, args.group)
    group_id = int(group["event_group_id"])
    if args.command == "delete-event-group":
        await q.delete_group(conn, team_id, group_id)
        return f"deleted event group {group['text_id']}"
    if args.command == "add-event-types":
        async with conn.transaction():
            ids = await q.ensure_event_types(conn, team_id, args.types)
            added = await q.add_members(conn, team_id, group_id, list(ids.values()))
        return f"added {added} event type(s) to {group['text_id']}"
    ids = await q.ensure_event_types(conn, team_id, args.types)
    removed = await q.remove_members(conn, team_id, group_id, list(ids.values()))
    return f"removed {removed} event type(s) from {group['text_id']}"
