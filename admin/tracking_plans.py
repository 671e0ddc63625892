"""``ingest-admin`` for tracking plans and their violations (issue #22).

    ingest-admin plan-upload TEAM FILE [--format native|segment] [--mode M]
                 [--unplanned allow|block] [--activate]      a new version; prints it
    ingest-admin plan-show TEAM [--version N]                the active one by default
    ingest-admin plan-diff TEAM OLD NEW                      a unified diff of two versions
    ingest-admin plan-activate TEAM VERSION|none             within TRACKING_PLAN_REFRESH_S
    ingest-admin plan-rollback TEAM                          back to the version active before
    ingest-admin violations TEAM [--days N] [--json]         failures per event, property, rule
    ingest-admin replay-violations TEAM [--event NAME] [--since TIME] [--limit N]
                 [--dry-run]                                 send blocked messages again

**Replay.** The blocked violations not replayed yet (``replayed_at IS NULL``), in the
order they were received (so in their original order per customer), each as its row's
``message`` holds it now (an analyst may have fixed it with ``UPDATE``), checked
against the team's active plan with the gateway's own code and produced to the writes
topic (``acks=all``) under its customer's partition key, then marked replayed. A
replay's message id is derived from the first attempt's id and the attempt number: a
replay interrupted before the marking and run again sends the same ids, which the
consumers' ledger applies once. A replayed message that breaks the plan again is
recorded as a new row (``attempt`` + 1, ``original_message_id`` the first's); the row
replayed keeps its history.

Imports ``admin``'s helpers, ``runtime`` and ``schemas``: no gateway, no consumer code.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from admin.errors import CommandError
from admin.teams import find_team
from admin.terminal import parse_time, table, to_json
from runtime.kafka import acked_producer
from runtime.pg import Connection
from runtime.settings import Settings
from schemas import messages
from schemas.messages import WriteMessage
from schemas.topics import partition_key
from schemas.tracking_plans import CompiledPlan, PlanError, dumps, from_segment, parse_plan
from schemas.violations import Tracking

COMMANDS = frozenset(
    {
        "plan-upload",
        "plan-show",
        "plan-diff",
        "plan-activate",
        "plan-rollback",
        "violations",
        "replay-violations",
    }
)
MODES = ("allow", "omit", "block")


def add_parsers(sub: Any) -> None:
    """Add the commands to ``ingest-admin``'s subparsers."""
    upload = sub.add_parser("plan-upload", help="upload a new version of a team's tracking plan")
    upload.add_argument("team", help="the team's name or id")
    upload.add_argument("file", type=Path, help="the plan (JSON); - for stdin")
    upload.add_argument(
        "--format",
        choices=("native", "segment"),
        default="native",
        help="native (docs/tracking-plans.md) or a Segment Protocols export",
    )
    upload.add_argument("--mode", choices=MODES, help="(segment) the plan's mode; default allow")
    upload.add_argument(
        "--unplanned", choices=("allow", "block"), help="(segment) unplanned events; default allow"
    )
    upload.add_argument("--activate", action="store_true", help="make it active at once")
    show = sub.add_parser("plan-show", help="print a version of a team's tracking plan")
    show.add_argument("team")
    show.add_argument("--version", type=int, help="default: the active version")
    diff = sub.add_parser("plan-diff", help="what changed between two versions")
    diff.add_argument("team")
    diff.add_argument("old", type=int)
    diff.add_argument("new", type=int)
    activate = sub.add_parser("plan-activate", help="make a version the team's active plan")
    activate.add_argument("team")
    activate.add_argument("version", help="a version, or none: no plan")
    rollback = sub.add_parser("plan-rollback", help="activate the version active before")
    rollback.add_argument("team")
    summary = sub.add_parser("violations", help="summarise a team's tracking-plan violations")
    summary.add_argument("team")
    summary.add_argument("--days", type=int, default=7, help="the last N days (default 7)")
    summary.add_argument("--json", action="store_true")
    replay = sub.add_parser(
        "replay-violations", help="send blocked messages again, checked against the active plan"
    )
    replay.add_argument("team")
    replay.add_argument("--event", help="only this event name (identify, group for those)")
    replay.add_argument("--since", help="only received since TIME (ISO 8601, or 2h, 3d)")
    replay.add_argument("--limit", type=int, metavar="N", help="at most N messages")
    replay.add_argument("--dry-run", action="store_true", help="print the verdicts; send nothing")


async def run(settings: Settings, conn: Connection, args: argparse.Namespace) -> str:
    """Run one of the commands; returns what to print."""
    team_id = await find_team(conn, args.team)
    if args.command == "plan-upload":
        return await _upload(conn, team_id, args)
    if args.command == "plan-show":
        version = args.version or await active_version(conn, team_id)
        if version is None:
            raise CommandError("the team has no active plan; name a --version")
        return dumps(await load_plan(conn, team_id, version))
    if args.command == "plan-diff":
        old = dumps(await load_plan(conn, team_id, args.old)).splitlines()
        new = dumps(await load_plan(conn, team_id, args.new)).splitlines()
        names = f"version {args.old}", f"version {args.new}"
        return "\n".join(difflib.unified_diff(old, new, *names, lineterm="")) or "no difference"
    if args.command == "plan-activate":
        version = None if args.version.lower() == "none" else _version(args.version)
        return await activate(conn, team_id, version)
    if args.command == "plan-rollback":
        return await _rollback(conn, team_id)
    if args.command == "violations":
        return await _summary(conn, team_id, args.days, args.json)
    since = None
    if args.since:
        since = datetime.fromtimestamp(parse_time(args.since) / 1000, UTC)
    replayed = await replay(settings, conn, team_id, args.event, since, args.limit, args.dry_run)
    return "\n".join(replayed.lines)


def _version(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CommandError(f"not a version: {text!r}") from None


# -- plans ------------------------------------------------------------------------------


async def _upload(conn: Connection, team_id: int, args: argparse.Namespace) -> str:
    # (a small file, read once by a command line: no event loop to keep free)
    raw = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    try:
        if args.format == "segment":
            plan = from_segment(json.loads(raw), args.mode or "allow", args.unplanned or "allow")
        else:
            if args.mode or args.unplanned:
                raise CommandError("--mode and --unplanned are for --format segment; the plan says")
            plan = parse_plan(raw)
    except (PlanError, json.JSONDecodeError) as exc:
        raise CommandError(str(exc)) from exc
    version = await upload(conn, team_id, plan_json=dumps(plan), source=args.format)
    said = f"uploaded version {version} ({len(plan.events)} events)"
    if args.activate:
        said += "\n" + await activate(conn, team_id, version)
    return said


async def upload(conn: Connection, team_id: int, plan_json: str, source: str = "native") -> int:
    """Store a checked plan as the team's next version; returns the version."""
    async with conn.transaction():
        # The team's row lock orders concurrent uploads: versions are 1, 2, ... per team.
        await conn.execute("SELECT 1 FROM teams WHERE id = $1 FOR UPDATE", team_id)
        version: int = await conn.fetchval(
            "INSERT INTO tracking_plans (team_id, version, plan, source)"
            " SELECT $1, coalesce(max(version), 0) + 1, $2::jsonb, $3"
            " FROM tracking_plans WHERE team_id = $1 RETURNING version",
            team_id,
            plan_json,
            source,
        )
    return version


async def load_plan(conn: Connection, team_id: int, version: int) -> Any:
    text = await conn.fetchval(
        "SELECT plan::text FROM tracking_plans WHERE team_id = $1 AND version = $2",
        team_id,
        version,
    )
    if text is None:
        raise CommandError(f"the team has no plan version {version}")
    return parse_plan(text)


async def active_version(conn: Connection, team_id: int) -> int | None:
    version: int | None = await conn.fetchval(
        "SELECT version FROM tracking_plan_active WHERE team_id = $1", team_id
    )
    return version


async def activate(conn: Connection, team_id: int, version: int | None) -> str:
    """Make ``version`` (None: no plan) the team's active plan."""
    if version is not None:
        await load_plan(conn, team_id, version)  # (exists)
    await conn.execute(
        "INSERT INTO tracking_plan_activations (team_id, version) VALUES ($1, $2)", team_id, version
    )
    what = "no plan" if version is None else f"plan version {version}"
    return f"{what} active; every gateway process follows within TRACKING_PLAN_REFRESH_S"


async def _rollback(conn: Connection, team_id: int) -> str:
    rows = await conn.fetch(
        "SELECT version FROM tracking_plan_activations WHERE team_id = $1 ORDER BY id DESC",
        team_id,
    )
    if not rows:
        raise CommandError("the team never activated a plan")
    current = rows[0]["version"]
    before = next((r["version"] for r in rows[1:] if r["version"] != current), None)
    return await activate(conn, team_id, before)


# -- violations -------------------------------------------------------------------------


async def _summary(conn: Connection, team_id: int, days: int, as_json: bool) -> str:
    since = datetime.now(UTC) - timedelta(days=days)
    rows = await conn.fetch(
        "SELECT event_name, pointer, rule, action, count(*) AS failures,"
        " count(DISTINCT message_id) AS messages, min(received_at) AS first_seen,"
        " max(received_at) AS last_seen"
        " FROM tracking_violation_failures WHERE team_id = $1 AND received_at >= $2"
        " GROUP BY event_name, pointer, rule, action ORDER BY failures DESC, event_name, pointer",
        team_id,
        since,
    )
    pending = await conn.fetchval(
        "SELECT count(*) FROM tracking_violations WHERE team_id = $1"
        " AND action = 'block' AND replayed_at IS NULL",
        team_id,
    )
    found = [dict(r) for r in rows]
    if as_json:
        return to_json({"failures": found, "blocked_not_replayed": pending})
    if not found:
        return f"no violations in the last {days} days"
    header = ("event", "pointer", "rule", "action", "failures", "messages", "first", "last")
    lines = [
        (
            r["event_name"],
            r["pointer"],
            r["rule"],
            r["action"],
            r["failures"],
            r["messages"],
            r["first_seen"].isoformat(timespec="seconds"),
            r["last_seen"].isoformat(timespec="seconds"),
        )
        for r in found
    ]
    return table(header, lines) + f"\n{pending} blocked messages not replayed yet"


# -- replay ----------------------------------------------------------------------------


class Replayed(msgspec.Struct):
    sent: int = 0
    still_violating: int = 0
    lines: list[str] = []


async def replay(
    settings: Settings,
    conn: Connection,
    team_id: int,
    event: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    dry_run: bool = False,
) -> Replayed:
    """Send the team's blocked violations again, as the module docstring says."""
    rows = await conn.fetch(
        "SELECT id, message_id, original_message_id, attempt, message::text AS message"
        " FROM tracking_violations"
        " WHERE team_id = $1 AND action = 'block' AND replayed_at IS NULL"
        " AND ($2::text IS NULL OR event_name = $2)"
        " AND ($3::timestamptz IS NULL OR received_at >= $3)"
        " ORDER BY received_at, id LIMIT $4",
        team_id,
        event,
        since,
        limit,
    )
    version = await active_version(conn, team_id)
    plan = CompiledPlan(version, await load_plan(conn, team_id, version)) if version else None
    done = Replayed()
    outgoing: list[tuple[int, str, WriteMessage]] = []
    for row in rows:
        try:
            message = msgspec.json.decode(row["message"], type=WriteMessage)
        except msgspec.ValidationError as exc:
            done.lines.append(
                f"violation {row['id']}: not a message after the fix ({exc}); skipped"
            )
            continue
        if message.team_id != team_id:
            done.lines.append(f"violation {row['id']}: team_id changed; skipped")
            continue
        attempt = row["attempt"] + 1
        original = str(row["original_message_id"])
        new_id = messages.client_message_id(team_id, f"replay:{original}:{attempt}")
        message = msgspec.structs.replace(
            message, id=new_id, tracking=Tracking(version, replay_of=original, attempt=attempt)
        )
        checked = plan.check(message) if plan is not None else message
        verdict = (
            checked.tracking.action if checked.tracking and checked.tracking.failures else "ok"
        )
        if verdict != "ok":
            done.still_violating += 1
        done.lines.append(f"violation {row['id']} -> {new_id}: {verdict}")
        outgoing.append((row["id"], new_id, checked))
    if dry_run or not outgoing:
        done.lines.append(
            f"{len(outgoing)} to replay{' (dry run: nothing sent)' if dry_run else ''}"
        )
        return done
    producer = acked_producer(settings, "ingest-admin-replay-violations")
    await producer.start()
    try:
        # Sent in order, awaited together: the idempotent producer keeps each
        # partition's order, so each customer's messages stay in order.
        sent = [
            await producer.send(
                settings.writes_topic,
                messages.encode(message),
                key=partition_key(message.team_id, message.identifiers),
            )
            for _, _, message in outgoing
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    await conn.executemany(
        "UPDATE tracking_violations SET replayed_at = now(), replay_message_id = $3"
        " WHERE team_id = $1 AND id = $2",
        [(team_id, row_id, new_id) for row_id, new_id, _ in outgoing],
    )
    done.sent = len(outgoing)
    done.lines.append(
        f"{done.sent} replayed, {done.still_violating} of them breaking the plan again"
    )
    return done
