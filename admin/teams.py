"""Teams and their API keys: create, list, rotate, revoke (``ingest-admin`` commands).

    ingest-admin create-team NAME [--key KEY]   create a team and print its API key
    ingest-admin list-teams                     teams with their active key prefixes
    ingest-admin rotate-key TEAM [--key KEY]    new key; the old ones are revoked
    ingest-admin revoke-key TEAM                revoke every key of the team
    ingest-admin set-allowed-origins --team TEAM [ORIGIN ...]
                                                browser origins allowed to send with the
                                                team's key (CORS); none: any origin

Keys are printed once and stored only as SHA-256 digests. ``--key`` sets a key
chosen by the caller, for clients whose key is fixed in their code. TEAM is a
team's name or id (``find_team``, also used by the event-group commands).

Allowed origins are checked by the Segment-spec surface (``/v1``) on requests that
carry an ``Origin`` (browsers): NULL, the default, allows any, as a write key in a
web page is public anyway. Origins are stored as browsers send them
(``scheme://host[:port]``, lower case, no default port); gateways see a change
within their cache time (10 seconds).

Imports ``schemas.keys`` (key format and digest), ``runtime.pg`` and ``admin.errors``
only; it writes the ``teams`` and ``api_keys`` tables directly.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit

from admin.errors import CommandError
from runtime.pg import Connection
from schemas.keys import hash_api_key, key_prefix, new_api_key

COMMANDS = frozenset(
    {"create-team", "list-teams", "rotate-key", "revoke-key", "set-allowed-origins"}
)

MIN_KEY_LENGTH = 16


def add_parsers(sub: Any) -> None:
    """Add the commands to ``ingest-admin``'s subparsers."""
    create = sub.add_parser("create-team", help="create a team and print its API key")
    create.add_argument("name")
    create.add_argument("--key", help="use this key instead of a random one")
    sub.add_parser("list-teams", help="list teams")
    rotate = sub.add_parser("rotate-key", help="replace a team's keys with a new one")
    rotate.add_argument("team", help="team name or id")
    rotate.add_argument("--key")
    revoke = sub.add_parser("revoke-key", help="revoke every key of a team")
    revoke.add_argument("team", help="team name or id")
    origins = sub.add_parser(
        "set-allowed-origins",
        help="set the browser origins allowed to send with the team's key (none: any origin)",
    )
    origins.add_argument("--team", required=True, help="team name or id")
    origins.add_argument("origins", nargs="*", help="e.g. https://shop.example")


async def run(conn: Connection, args: argparse.Namespace) -> str:
    """Run one of ``COMMANDS``; returns what to print."""
    if args.command == "create-team":
        team_id, key = await create_team(conn, args.name, args.key)
        return f"team {args.name} (id {team_id})\napi key: {key}"
    if args.command == "rotate-key":
        return f"api key: {await rotate_key(conn, args.team, args.key)}"
    if args.command == "revoke-key":
        return f"revoked {await revoke_keys(conn, args.team)} key(s)"
    if args.command == "set-allowed-origins":
        allowed = await set_allowed_origins(conn, args.team, args.origins)
        return f"allowed origins: {', '.join(allowed) if allowed else 'any'}"
    return await list_teams(conn)


async def find_team(conn: Connection, team: str) -> int:
    """The id of the team named ``team`` (or of id ``team``); a name wins over an id."""
    team_id = await conn.fetchval(
        "SELECT id FROM teams WHERE name = $1 OR id::text = $1 ORDER BY name = $1 DESC LIMIT 1",
        team,
    )
    if team_id is None:
        raise CommandError(f"no team named {team!r}")
    return int(team_id)


async def _add_key(conn: Connection, team_id: int, key: str | None) -> str:
    key = key or new_api_key()
    if len(key) < MIN_KEY_LENGTH:
        raise CommandError(f"an API key must have at least {MIN_KEY_LENGTH} characters")
    digest = hash_api_key(key)
    owner = await conn.fetchval("SELECT team_id FROM api_keys WHERE key_hash = $1", digest)
    if owner is not None and owner != team_id:
        raise CommandError("that key already belongs to another team")
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
    """Revoke the team's active keys and give it ``key`` or a new random key."""
    async with conn.transaction():
        team_id = await find_team(conn, team)
        await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE team_id = $1 AND revoked_at IS NULL",
            team_id,
        )
        return await _add_key(conn, team_id, key)


async def revoke_keys(conn: Connection, team: str) -> int:
    """Revoke every active key of the team; returns how many."""
    team_id = await find_team(conn, team)
    result = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE team_id = $1 AND revoked_at IS NULL", team_id
    )
    return int(result.split()[-1])


async def list_teams(conn: Connection) -> str:
    """Teams as a tab-separated table: id, name, creation day, active key prefixes."""
    rows = await conn.fetch(
        "SELECT t.id, t.name, t.created_at,"
        " coalesce(string_agg(k.key_prefix || '…', ', ') FILTER"
        "   (WHERE k.revoked_at IS NULL), '') AS keys"
        " FROM teams t LEFT JOIN api_keys k ON k.team_id = t.id"
        " GROUP BY t.id ORDER BY t.id"
    )
    lines = [f"{r['id']}\t{r['name']}\t{r['created_at']:%Y-%m-%d}\t{r['keys']}" for r in rows]
    return "\n".join(["id\tname\tcreated\tactive keys", *lines])


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(value: str) -> str:
    """``value`` as a browser sends it in ``Origin``: ``scheme://host[:port]``, lower
    case, without the scheme's default port; ``CommandError`` when it is no origin."""
    refusal = CommandError(
        f"{value!r} is not an origin: scheme://host[:port], e.g. https://shop.example"
    )
    parts = urlsplit(value.strip())
    try:
        port = parts.port
    except ValueError as exc:
        raise refusal from exc
    if (
        parts.scheme not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "@" in parts.netloc
    ):
        raise refusal
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    shown_port = f":{port}" if port is not None and port != _DEFAULT_PORTS[parts.scheme] else ""
    return f"{parts.scheme}://{host}{shown_port}"


async def set_allowed_origins(conn: Connection, team: str, origins: list[str]) -> list[str]:
    """Set the team's allowed origins (none: any origin); returns them, normalised."""
    team_id = await find_team(conn, team)
    allowed = sorted({normalise_origin(origin) for origin in origins})
    await conn.execute(
        "UPDATE teams SET allowed_origins = $2 WHERE id = $1", team_id, allowed or None
    )
    return allowed
