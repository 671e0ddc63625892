"""``ingest-admin control``: a team's runtime controls, and the list of every team's.

    ingest-admin control TEAM                     show the team's controls
    ingest-admin control TEAM CONTROL [...]       set exactly these controls
    ingest-admin control TEAM none                lift them all
    ingest-admin list-controls                    teams with controls or a quota

CONTROL is one of ``skip-identity``, ``overflow``, ``drop``, ``dead-letter``
(``drop`` and ``dead-letter`` exclude each other); what each does is in
``ingest_gateway/write/controls.py`` and docs/operations.md, "Runtime controls".
Every gateway process reads them every ``QUOTA_REFRESH_S`` (2 s by default) and logs
the change it takes up: no restart. Throttling is the quota (``ingest-admin
set-quota``). Imports ``admin.errors``, ``admin.teams`` and ``runtime.pg``.
"""

from __future__ import annotations

import argparse
from typing import Any

from admin.errors import CommandError
from admin.teams import find_team
from runtime.pg import Connection

COMMANDS = frozenset({"control", "list-controls"})

# As typed on the command line -> as stored in ``teams.controls``.
CONTROLS = {
    "skip-identity": "skip_identity",
    "overflow": "overflow",
    "drop": "drop",
    "dead-letter": "dead_letter",
}


def add_parsers(sub: Any) -> None:
    """Add the commands to ``ingest-admin``'s subparsers."""
    control = sub.add_parser("control", help="show or set a team's runtime controls")
    control.add_argument("team", help="the team's name or id")
    control.add_argument(
        "controls",
        nargs="*",
        type=_control,  # (not choices=: argparse refuses an empty list against them)
        metavar="CONTROL",
        help=f"{', '.join(CONTROLS)}; none: lift them all; nothing: show them",
    )
    sub.add_parser("list-controls", help="teams with runtime controls or a quota of their own")


def _control(value: str) -> str:
    if value not in CONTROLS and value != "none":
        raise argparse.ArgumentTypeError(f"not one of {', '.join(CONTROLS)}, none: {value!r}")
    return value


async def run(conn: Connection, args: argparse.Namespace) -> str:
    """Run ``control`` or ``list-controls``; returns what to print."""
    if args.command == "list-controls":
        return await _list(conn)
    team_id = await find_team(conn, args.team)
    if not args.controls:
        current = await conn.fetchval("SELECT controls FROM teams WHERE id = $1", team_id)
        return f"team {team_id}: {_shown(current)}"
    if "none" in args.controls and len(args.controls) > 1:
        raise CommandError("none goes alone")
    wanted = sorted({CONTROLS[c] for c in args.controls if c != "none"})
    if {"drop", "dead_letter"} <= set(wanted):
        raise CommandError("drop and dead-letter exclude each other")
    before = await conn.fetchval(
        "UPDATE teams t SET controls = $2, controls_changed_at = now()"
        " FROM teams old WHERE t.id = $1 AND old.id = t.id RETURNING old.controls",
        team_id,
        wanted,
    )
    return (
        f"team {team_id}: {_shown(wanted)} (was {_shown(before)});"
        " every gateway takes it up within QUOTA_REFRESH_S"
    )


async def _list(conn: Connection) -> str:
    rows = await conn.fetch(
        "SELECT id, name, controls, controls_changed_at, events_per_second, burst FROM teams"
        " WHERE controls <> '{}' OR events_per_second IS NOT NULL ORDER BY id"
    )
    if not rows:
        return "no team has controls or a quota of its own"
    lines = ["team  name  controls  since  quota"]
    for r in rows:
        quota = "default" if r["events_per_second"] is None else f"{r['events_per_second']:g}/s"
        if r["burst"] is not None:
            quota += f" burst {r['burst']}"
        since = r["controls_changed_at"].isoformat() if r["controls_changed_at"] else "-"
        lines.append(f"{r['id']}  {r['name']}  {_shown(r['controls'])}  {since}  {quota}")
    return "\n".join(lines)


def _shown(controls: list[str]) -> str:
    named = {stored: typed for typed, stored in CONTROLS.items()}
    return ", ".join(named[c] for c in controls) or "no controls"
