"""A team's blocked identifier values (``ingest-admin`` commands): like Segment's
"blocked values", beyond the built-in junk list of ``schemas.identity``.

    ingest-admin block-identifier --team TEAM --kind KIND --value VALUE
    ingest-admin unblock-identifier --team TEAM --kind KIND --value VALUE
    ingest-admin list-blocked-identifiers --team TEAM

KIND is one of ``schemas.identity.KINDS`` (``email``, ``external_id``, ``phone``,
``customer_id``, ``anonymous_id``; Segment's ``userId`` is the ``external_id``).
Values are stored as that kind normalises (``normalise_kind``: an email
lower-cased, a phone in E.164, ids NFKC and trimmed), so ``' QA-1 '`` blocks
``QA-1``; a value the built-in list refuses already is not stored.

The gateway refuses a write naming a blocked value for that team (on the Segment
surface it ignores the value when another identifier remains;
``ingest_gateway.write.accept``), within ``KEY_CACHE_SECONDS`` (10 s) of a change. Writes
published before are applied as they were sent.

Imports ``schemas.identity``, ``runtime.pg``, ``admin.errors`` and ``admin.teams``
(``find_team``); it writes the ``blocked_identifiers`` table directly.
"""

from __future__ import annotations

import argparse
from typing import Any

from admin.errors import CommandError
from admin.teams import find_team
from runtime.pg import Connection
from schemas.identity import (
    KINDS,
    InvalidIdentifier,
    JunkIdentifier,
    clean,
    normalise_kind,
)

COMMANDS = frozenset({"block-identifier", "unblock-identifier", "list-blocked-identifiers"})


def add_parsers(sub: Any) -> None:
    """Add the commands to ``ingest-admin``'s subparsers."""
    for command, help_text in (
        ("block-identifier", "never let this value name a customer of the team"),
        ("unblock-identifier", "let a blocked value name customers again"),
    ):
        parser = sub.add_parser(command, help=help_text)
        parser.add_argument("--team", required=True, help="team name or id")
        parser.add_argument("--kind", required=True, choices=KINDS)
        parser.add_argument("--value", required=True)
    listing = sub.add_parser("list-blocked-identifiers", help="a team's blocked values")
    listing.add_argument("--team", required=True, help="team name or id")


async def run(conn: Connection, args: argparse.Namespace) -> str:
    """Run one of ``COMMANDS``; returns what to print."""
    team_id = await find_team(conn, args.team)
    if args.command == "block-identifier":
        value = await block(conn, team_id, args.kind, args.value)
        return f"blocked {args.kind} {value!r}"
    if args.command == "unblock-identifier":
        value = await unblock(conn, team_id, args.kind, args.value)
        return f"unblocked {args.kind} {value!r}"
    return await list_blocked(conn, team_id)


def blocked_form(kind: str, value: str) -> str:
    """``value`` as it is stored: normalised as ``kind``; ``CommandError`` when no
    identifier of that kind could be it, or the built-in junk list refuses it."""
    try:
        return normalise_kind(kind, value)
    except JunkIdentifier as exc:
        raise CommandError(
            f"{value!r} is refused for every team already (schemas.identity junk)"
        ) from exc
    except InvalidIdentifier as exc:
        raise CommandError(f"{value!r} is no {kind}: {exc.reason}") from exc


async def block(conn: Connection, team_id: int, kind: str, value: str) -> str:
    """Block ``value`` (normalised as ``kind``) for the team; returns it as stored."""
    stored = blocked_form(kind, value)
    await conn.execute(
        "INSERT INTO blocked_identifiers (team_id, kind, value) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        team_id,
        kind,
        stored,
    )
    return stored


async def unblock(conn: Connection, team_id: int, kind: str, value: str) -> str:
    """Unblock ``value``; returns it as it was stored, ``CommandError`` if not blocked."""
    try:
        stored = blocked_form(kind, value)
    except CommandError:
        # Stored before a rule refused it: found as cleaned (emails compared lower-case).
        try:
            stored = clean(kind, value)
        except InvalidIdentifier as exc:
            raise CommandError(f"{value!r} is not blocked") from exc
        stored = stored.lower() if kind == "email" else stored
    deleted = await conn.fetchval(
        "DELETE FROM blocked_identifiers WHERE team_id = $1 AND kind = $2 AND value = $3"
        " RETURNING value",
        team_id,
        kind,
        stored,
    )
    if deleted is None:
        raise CommandError(f"{kind} {stored!r} is not blocked")
    return str(deleted)


async def list_blocked(conn: Connection, team_id: int) -> str:
    """The team's blocked values as a tab-separated table: kind, value, when blocked."""
    rows = await conn.fetch(
        "SELECT kind, value, created_at FROM blocked_identifiers WHERE team_id = $1"
        " ORDER BY kind, value",
        team_id,
    )
    lines = [f"{r['kind']}\t{r['value']}\t{r['created_at']:%Y-%m-%d}" for r in rows]
    return "\n".join(["kind\tvalue\tblocked", *lines])
