"""``ingest-admin``: teams and keys, on the real PostgreSQL."""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import asyncpg
import uuid_utils

from admin.cli import parser, run_command
from ingest_gateway.web.auth import team_for_key
from ingest_gateway.web.auth_cache import KeyCache
from runtime.settings import Settings
from schemas.keys import hash_api_key
from tests.support import BIN, old_message_id


def admin(
    database_url: str, *args: str, env: dict[str, str] | None = None, stdin: Any = None
) -> subprocess.CompletedProcess[str]:
    """Run ``ingest-admin`` on the database, with ``env`` for the other settings;
    ``stdin``: none (not a terminal) unless given."""
    return subprocess.run(
        [str(BIN / "ingest-admin"), *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        env={**(env or {}), "DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"},
    )


async def command(settings: Settings, *args: str) -> str:
    """What ``ingest-admin ARGS`` prints, run in this process with ``settings``
    (a refusal raises ``CommandError``)."""
    return await run_command(settings, parser().parse_args(args))


def printed_key(output: str) -> str:
    return next(
        line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("api key")
    )


async def test_create_list_rotate_revoke(database_url: str, db: asyncpg.Pool) -> None:
    name = f"acme-{uuid.uuid4().hex[:6]}"
    created = admin(database_url, "create-team", name)
    assert created.returncode == 0, created.stderr
    first = printed_key(created.stdout)
    team_id = await team_for_key(db, KeyCache(), first)
    assert team_id is not None

    # Keys are stored hashed: the key itself is nowhere in the table.
    stored = await db.fetch("SELECT key_hash, key_prefix FROM api_keys WHERE team_id = $1", team_id)
    assert [bytes(r["key_hash"]) for r in stored] == [hash_api_key(first)]
    assert first.encode() not in bytes(stored[0]["key_hash"])

    listing = admin(database_url, "list-teams")
    assert name in listing.stdout and first[:6] in listing.stdout

    rotated = admin(database_url, "rotate-key", name)
    second = printed_key(rotated.stdout)
    assert await team_for_key(db, KeyCache(), first) is None
    assert await team_for_key(db, KeyCache(), second) == team_id

    revoked = admin(database_url, "revoke-key", name)
    assert revoked.stdout.strip() == "revoked 1 key(s)"
    assert await team_for_key(db, KeyCache(), second) is None


async def test_a_fixed_key_chosen_by_the_caller(database_url: str, db: asyncpg.Pool) -> None:
    fixed = f"3645a8a3-5b83-459a-9bea-{uuid.uuid4().hex[:12]}"
    result = admin(database_url, "create-team", f"fixed-{uuid.uuid4().hex[:6]}", "--key", fixed)
    assert printed_key(result.stdout) == fixed
    assert await team_for_key(db, KeyCache(), fixed) is not None

    taken = admin(database_url, "create-team", f"thief-{uuid.uuid4().hex[:6]}", "--key", fixed)
    assert taken.returncode == 1
    assert "already belongs to another team" in taken.stderr
    short = admin(database_url, "create-team", "short", "--key", "abc")
    assert short.returncode == 1 and "at least 16" in short.stderr


async def test_prune_ledger_forgets_only_old_message_ids(
    database_url: str, db: asyncpg.Pool
) -> None:
    old = old_message_id(30)
    recent = uuid.UUID(uuid_utils.uuid7().hex)
    await db.execute(
        "INSERT INTO processed_messages (message_id, processed_at)"
        " VALUES ($1, now() - interval '30 days'), ($2, now())",
        old,
        recent,
    )
    result = admin(database_url, "prune-ledger", "--older-than-days", "7")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("forgot ")
    left = await db.fetch(
        "SELECT message_id FROM processed_messages WHERE message_id = ANY($1::uuid[])",
        [old, recent],
    )
    assert [r["message_id"] for r in left] == [recent]
