"""``ingest-admin set-allowed-origins``: the origins a team's write key may be used from."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from admin.errors import CommandError
from admin.teams import normalise_origin
from tests.admin.test_admin import admin


async def origins_of(db: asyncpg.Pool, name: str) -> list[str] | None:
    found = await db.fetchval("SELECT allowed_origins FROM teams WHERE name = $1", name)
    return None if found is None else list(found)


async def test_set_then_clear_allowed_origins(database_url: str, db: asyncpg.Pool) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    assert admin(database_url, "create-team", name).returncode == 0
    assert await origins_of(db, name) is None  # the default: any origin

    result = admin(
        database_url,
        "set-allowed-origins",
        "--team",
        name,
        "https://Shop.Example/",
        "http://localhost:3000",
        "https://shop.example:443",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "allowed origins: http://localhost:3000, https://shop.example"
    assert await origins_of(db, name) == ["http://localhost:3000", "https://shop.example"]

    cleared = admin(database_url, "set-allowed-origins", "--team", name)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.strip() == "allowed origins: any"
    assert await origins_of(db, name) is None


async def test_refusals(database_url: str, db: asyncpg.Pool) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    assert admin(database_url, "create-team", name).returncode == 0
    bad = admin(database_url, "set-allowed-origins", "--team", name, "shop.example/path")
    assert bad.returncode == 1
    assert "is not an origin" in bad.stderr
    assert await origins_of(db, name) is None  # nothing changed
    nobody = admin(database_url, "set-allowed-origins", "--team", "no-such-team", "https://a.b")
    assert nobody.returncode == 1
    assert "no team named" in nobody.stderr


def test_origins_are_normalised_as_browsers_send_them() -> None:
    assert normalise_origin("HTTPS://Shop.Example:8443") == "https://shop.example:8443"
    assert normalise_origin("http://[::1]:80/") == "http://[::1]"
    for value in (
        "ftp://a.example",
        "https://",
        "https://a.example/x",
        "https://a:b@c.d",
        "https://a.example:99999",
        "https://a.example?q=1",
    ):
        with pytest.raises(CommandError):
            normalise_origin(value)
