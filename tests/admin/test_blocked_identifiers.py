"""``ingest-admin block-identifier``, ``unblock-identifier``, ``list-blocked-identifiers``:
a team's blocked values, stored normalised, on the real PostgreSQL."""

from __future__ import annotations

import uuid

import asyncpg

from tests.admin.test_admin import admin


async def blocked_of(db: asyncpg.Pool, name: str) -> list[tuple[str, str]]:
    rows = await db.fetch(
        "SELECT b.kind, b.value FROM blocked_identifiers b JOIN teams t ON t.id = b.team_id"
        " WHERE t.name = $1 ORDER BY b.kind, b.value",
        name,
    )
    return [(r["kind"], r["value"]) for r in rows]


async def test_block_list_unblock(database_url: str, db: asyncpg.Pool) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    other = f"shop-{uuid.uuid4().hex[:6]}"
    for team in (name, other):
        assert admin(database_url, "create-team", team).returncode == 0

    def block(kind: str, value: str, team: str = name) -> str:
        result = admin(
            database_url, "block-identifier", "--team", team, "--kind", kind, "--value", value
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    # Stored as the kind normalises: trimmed, NFKC, without invisible characters;
    # emails lower-cased, phones in E.164.
    assert block("external_id", " QA-User\u200b ") == "blocked external_id 'QA-User'"
    assert block("email", "QA@Shop.Example") == "blocked email 'qa@shop.example'"
    assert block("phone", "+1 (415) 555-0100") == "blocked phone '+14155550100'"
    assert block("anonymous_id", "\uff44evice-1") == "blocked anonymous_id 'device-1'"
    assert block("external_id", "QA-User") == "blocked external_id 'QA-User'"  # once
    assert await blocked_of(db, name) == [
        ("anonymous_id", "device-1"),
        ("email", "qa@shop.example"),
        ("external_id", "QA-User"),
        ("phone", "+14155550100"),
    ]
    assert await blocked_of(db, other) == []  # per team

    listing = admin(database_url, "list-blocked-identifiers", "--team", name)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.strip().splitlines()
    assert lines[0] == "kind\tvalue\tblocked"
    assert [line.split("\t")[:2] for line in lines[1:]] == [
        ["anonymous_id", "device-1"],
        ["email", "qa@shop.example"],
        ["external_id", "QA-User"],
        ["phone", "+14155550100"],
    ]

    unblocked = admin(
        database_url, "unblock-identifier", "--team", name, "--kind", "email", "--value",
        " qa@SHOP.example",
    )  # fmt: skip
    assert unblocked.returncode == 0, unblocked.stderr
    assert unblocked.stdout.strip() == "unblocked email 'qa@shop.example'"
    assert ("email", "qa@shop.example") not in await blocked_of(db, name)

    again = admin(
        database_url, "unblock-identifier", "--team", name, "--kind", "email", "--value",
        "qa@shop.example",
    )  # fmt: skip
    assert again.returncode == 1
    assert "is not blocked" in again.stderr


async def test_refusals(database_url: str, db: asyncpg.Pool) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    assert admin(database_url, "create-team", name).returncode == 0

    def block(*args: str) -> tuple[int, str]:
        result = admin(database_url, "block-identifier", *args)
        return result.returncode, result.stderr

    # Built-in junk is refused for every team already: nothing to store.
    code, error = block("--team", name, "--kind", "external_id", "--value", "N/A")
    assert code == 1 and "every team already" in error
    code, error = block("--team", name, "--kind", "email", "--value", "a@.")
    assert code == 1 and "is no email" in error
    code, error = block("--team", name, "--kind", "customer_id", "--value", "abc")
    assert code == 1 and "is no customer_id" in error
    code, error = block("--team", "no-such-team", "--kind", "email", "--value", "a@b.io")
    assert code == 1 and "no team named" in error
    code, error = block("--team", name, "--kind", "user_id", "--value", "x")
    assert code == 2 and "invalid choice" in error  # argparse: the kinds are listed
    assert await blocked_of(db, name) == []
