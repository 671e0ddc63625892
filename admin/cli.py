"""``ingest-admin``: teams and their API keys.

    ingest-admin create-team NAME [--key KEY]   create a team and print its API key
    ingest-admin list-teams                     teams with their active key prefixes
    ingest-admin rotate-key TEAM [--key KEY]    new key; the old ones are revoked
    ingest-admin revoke-key TEAM                revoke every key of the team
    ingest-admin prune-ledger --older-than-days N
                                                forget applied message ids older than N days

Event groups (``create-event-group``, ``list-event-groups``, ``add-event-types``,
``remove-event-types``, ``delete-event-group``): see ``admin.event_groups``.

Keys are printed once and stored only as SHA-256 digests. ``--key`` sets a key
chosen by the caller, for clients whose key is fixed in their code.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg

from admin import event_groups
from consumers.ledger import prune_ledger
from runtime.pg import Connection
from runtime.settings import get_settings
from schemas.keys import hash_api_key, key_prefix, new_api_key

MIN_KEY_LENGTH = 16


class AdminError(Exception):
    pass


async def _team_id(conn: Connection, team: str) -> int:
    team_id = await conn.fetchval(
        "SELECT id FROM teams WHERE name = $1 OR id::text = $1 ORDER BY name = $1 DESC LIMIT 1",
        team,
    )
    if team_id is None:
        raise AdminError(f"no team named {team!r}")
    return int(team_id)


async def _add_key(conn: Connection, team_id: int, key: str | None) -> str:
    key = key or new_api_key()
    if len(key) < MIN_KEY_LENGTH:
        raise AdminError(f"an API key must have at least {MIN_KEY_LENGTH} characters")
    digest = hash_api_key(key)
    owner = await conn.fetchval("SELECT team_id FROM api_keys WHERE key_hash = $1", digest)
    if owner is not None and owner != team_id:
        raise AdminError("that key already belongs to another team")
    await conn.execute(
        "INSERT INTO api_keys (team_id, key_hash, key_prefix) VALUES ($1, $2, $3)"
        " ON CONFLICT (key_hash) DO UPDATE SET revoked_at = NULL",
        team_id,
        digest,
        key_prefix(key),
    )
    return key


async def create_team(conn: Connection, name: str, key: str | None = None) -> tuple[int, str]:
    """Create the team (or reuse it) and give it ``key`` or a new random key."""
    async with conn.transaction():
        team_id = await conn.fetchval(
            "INSERT INTO teams (name) VALUES ($1)"
            " ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
            name,
        )
        return int(team_id), await _add_key(conn, int(team_id), key)


async def rotate_key(conn: Connection, team: str, key: str | None = None) -> str:
    async with conn.transaction():
        team_id = await _team_id(conn, team)
        await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE team_id = $1 AND revoked_at IS NULL",
            team_id,
        )
        return await _add_key(conn, team_id, key)


async def revoke_keys(conn: Connection, team: str) -> int:
    team_id = await _team_id(conn, team)
    result = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE team_id = $1 AND revoked_at IS NULL", team_id
    )
    return int(result.split()[-1])


async def _run(args: argparse.Namespace) -> str:
    conn = await asyncpg.connect(get_settings().database_url)
    try:
        if args.command == "create-team":
            team_id, key = await create_team(conn, args.name, args.key)
            return f"team {args.name} (id {team_id})\napi key: {key}"
        if args.command == "rotate-key":
            return f"api key: {await rotate_key(conn, args.team, args.key)}"
        if args.command == "revoke-key":
            return f"revoked {await revoke_keys(conn, args.team)} key(s)"
        if args.command == "prune-ledger":
            return f"forgot {await prune_ledger(conn, args.older_than_days)} message id(s)"
        if args.command in event_groups.COMMANDS:
            try:
                return await event_groups.run(conn, args, await _team_id(conn, args.team))
            except event_groups.CommandError as exc:
                raise AdminError(str(exc)) from exc
        rows = await conn.fetch(
            "SELECT t.id, t.name, t.created_at,"
            " coalesce(string_agg(k.key_prefix || '…', ', ') FILTER"
            "   (WHERE k.revoked_at IS NULL), '') AS keys"
            " FROM teams t LEFT JOIN api_keys k ON k.team_id = t.id"
            " GROUP BY t.id ORDER BY t.id"
        )
        lines = [f"{r['id']}\t{r['name']}\t{r['created_at']:%Y-%m-%d}\t{r['keys']}" for r in rows]
        return "\n".join(["id\tname\tcreated\tactive keys", *lines])
    finally:
        await conn.close()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ingest-admin", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-team", help="create a team and print its API key")
    create.add_argument("name")
    create.add_argument("--key", help="use this key instead of a random one")
    sub.add_parser("list-teams", help="list teams")
    rotate = sub.add_parser("rotate-key", help="replace a team's keys with a new one")
    rotate.add_argument("team", help="team name or id")
    rotate.add_argument("--key")
    revoke = sub.add_parser("revoke-key", help="revoke every key of a team")
    revoke.add_argument("team", help="team name or id")
    prune = sub.add_parser("prune-ledger", help="forget applied message ids older than N days")
    prune.add_argument(
        "--older-than-days",
        type=int,
        required=True,
        help="keep at least Kafka's retention of the writes topic (7 days by default)",
    )
    event_groups.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        print(asyncio.run(_run(args)))
    except AdminError as exc:
        print(f"ingest-admin: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
