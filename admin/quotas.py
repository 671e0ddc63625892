"""``ingest-admin set-quota``: a team's quota, events per second and burst.

    ingest-admin set-quota TEAM --events-per-second R [--burst B]
    ingest-admin set-quota TEAM --default        the settings' TEAM_EVENTS_PER_SECOND / TEAM_BURST

``--events-per-second 0`` lifts the team's quota. Every gateway process reads quotas
every ``QUOTA_REFRESH_S`` (2 s by default): no restart. Enforcement is
``ingest_gateway/write/quotas.py``. Imports ``admin.errors``, ``admin.teams`` and ``runtime.pg``.
"""

from __future__ import annotations

import argparse
from typing import Any

from admin.errors import CommandError
from admin.teams import find_team
from runtime.pg import Connection

COMMANDS = frozenset({"set-quota"})


def _not_negative(value: str) -> float:
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError("must be a number, 0 or more")
    return number


def add_parsers(sub: Any) -> None:
    """Add the command to ``ingest-admin``'s subparsers."""
    quota = sub.add_parser("set-quota", help="set a team's events per second and burst")
    quota.add_argument("team", help="the team's name or id")
    quota.add_argument(
        "--events-per-second", type=_not_negative, help="the rate; 0: no quota for the team"
    )
    quota.add_argument(
        "--burst", type=_not_negative, help="events at once beyond the rate (default: a second)"
    )
    quota.add_argument(
        "--default", action="store_true", help="back to the settings' TEAM_EVENTS_PER_SECOND"
    )


async def run(conn: Connection, args: argparse.Namespace) -> str:
    """Run ``set-quota``; returns what to print."""
    if args.default == (args.events_per_second is not None):
        raise CommandError("give either --events-per-second (and --burst) or --default")
    if args.default and args.burst is not None:
        raise CommandError("--burst goes with --events-per-second")
    team_id = await find_team(conn, args.team)
    burst = None if args.burst is None else int(args.burst)
    await conn.execute(
        "UPDATE teams SET events_per_second = $2, burst = $3 WHERE id = $1",
        team_id,
        args.events_per_second,
        burst,
    )
    # The shared bucket starts again from the new quota's burst.
    await conn.execute("DELETE FROM team_quota_buckets WHERE team_id = $1", team_id)
    if args.default:
        return f"team {team_id}: the default quota (TEAM_EVENTS_PER_SECOND, TEAM_BURST)"
    if args.events_per_second == 0:
        return f"team {team_id}: no quota"
    shown = "one second of it" if burst is None else f"{burst}"
    return f"team {team_id}: {args.events_per_second:g} events per second, burst {shown}"
