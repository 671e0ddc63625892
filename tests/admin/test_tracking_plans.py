"""``ingest-admin`` for tracking plans (issue #22) on the real pipeline: upload, show,
diff, activate, roll back, a Segment Protocols import, the violations summary, and
replay: an analyst's fix by SQL ``UPDATE``, replayed twice, stores each event once;
a replayed message that breaks the plan again is a second recorded attempt."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from admin.errors import CommandError
from runtime.settings import Settings
from tests.admin.test_admin import command
from tests.conftest import Team
from tests.gateway.test_tracking_plans import in_force, stored, violations
from tests.support import eventually

ORDER = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "total": {"type": "number"}},
    "required": ["order_id", "total"],
}


def write(tmp_path: Path, document: dict[str, Any], name: str = "plan.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


async def test_upload_show_diff_activate_and_roll_back(
    settings: Settings, tmp_path: Path, team: Team
) -> None:
    first = {"mode": "block", "events": {"Order Completed": {"schema": ORDER}}}
    said = await command(settings, "plan-upload", str(team.id), write(tmp_path, first))
    assert said == "uploaded version 1 (1 events)"
    second = first | {"unplanned": "block"}
    said = await command(
        settings, "plan-upload", str(team.id), write(tmp_path, second), "--activate"
    )
    assert said.startswith("uploaded version 2 (1 events)\nplan version 2 active")
    shown = json.loads(await command(settings, "plan-show", str(team.id)))
    assert shown["unplanned"] == "block"
    diff = await command(settings, "plan-diff", str(team.id), "1", "2")
    assert '+  "unplanned": "block"' in diff
    await command(settings, "plan-activate", str(team.id), "1")
    assert await command(settings, "plan-rollback", str(team.id)) == (
        "plan version 2 active; every gateway process follows within TRACKING_PLAN_REFRESH_S"
    )
    assert (await command(settings, "plan-rollback", str(team.id))).startswith("plan version 1")
    with pytest.raises(CommandError, match="not a JSON Schema"):
        bad = {"events": {"x": {"schema": {"type": "nothing"}}}}
        await command(settings, "plan-upload", str(team.id), write(tmp_path, bad))
    with pytest.raises(CommandError, match="no plan version 9"):
        await command(settings, "plan-activate", str(team.id), "9")


async def test_a_segment_protocols_export_is_imported(
    settings: Settings, tmp_path: Path, team: Team
) -> None:
    export = {
        "data": {
            "rules": [
                {
                    "type": "TRACK",
                    "key": "Order Completed",
                    "version": 1,
                    "jsonSchema": {
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "type": "object",
                        "properties": {"properties": ORDER, "context": {}},
                    },
                },
                {
                    "type": "IDENTIFY",
                    "jsonSchema": {"properties": {"traits": {"required": ["email"]}}},
                },
                {"type": "COMMON", "jsonSchema": {"properties": {"context": {}}}},
            ]
        }
    }
    path = write(tmp_path, export)
    args = ("--format", "segment", "--mode", "omit", "--unplanned", "block")
    said = await command(settings, "plan-upload", str(team.id), path, *args)
    assert said == "uploaded version 1 (1 events)"
    shown = json.loads(await command(settings, "plan-show", str(team.id), "--version", "1"))
    assert shown["mode"] == "omit" and shown["unplanned"] == "block"
    assert shown["events"]["Order Completed"]["schema"]["required"] == ["order_id", "total"]
    assert shown["identify"]["schema"]["required"] == ["email"]


async def test_an_analysts_fix_replayed_twice_stores_each_event_once(
    settings: Settings, tmp_path: Path, http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    plan = {"mode": "block", "events": {"Order Completed": {"schema": ORDER}}}
    await command(settings, "plan-upload", str(team.id), write(tmp_path, plan), "--activate")
    await in_force(http, team, 1)
    sent = [("ana", "o-1", "12.5"), ("bo", "o-2", "7"), ("ana", "o-3", "3")]
    for who, order, total in sent:
        answer = await http.post(
            f"/api/1.0/events/Order Completed/{who}@example.com/{order}?wait=true",
            json={"order_id": order, "total": total},  # a string: the bug in the app
            headers=team.headers,
        )
        assert answer.headers["X-Tracking-Violations"] == "1"
    assert [v["action"] for v in await violations(db, team)] == ["block"] * 3
    assert await stored(db, team, "Order Completed") == []

    # Replayed unfixed: each breaks the plan again, a second attempt beside the first.
    said = await command(settings, "replay-violations", str(team.id))
    assert said.endswith("3 replayed, 3 of them breaking the plan again")

    async def second_attempts() -> list[dict[str, Any]] | None:
        found = await violations(db, team)
        return found if len(found) == 6 else None

    found = await eventually(second_attempts)
    assert [v["attempt"] for v in found] == [1, 1, 1, 2, 2, 2]
    originals = await db.fetch(
        "SELECT original_message_id, count(*) FROM tracking_violations WHERE team_id = $1"
        " GROUP BY 1",
        team.id,
    )
    assert sorted(r["count"] for r in originals) == [2, 2, 2]

    # The analyst's fix, in SQL: the totals as numbers.
    fixed = await db.execute(
        "UPDATE tracking_violations SET message = jsonb_set(message, '{event,body,total}',"
        " to_jsonb((message #>> '{event,body,total}')::numeric))"
        " WHERE team_id = $1 AND action = 'block' AND replayed_at IS NULL",
        team.id,
    )
    assert fixed == "UPDATE 3"
    dry = await command(settings, "replay-violations", str(team.id), "--dry-run")
    lines = dry.splitlines()
    assert [line.split(": ")[-1] for line in lines[:3]] == ["ok", "ok", "ok"]
    ids = [int(line.split()[1]) for line in lines[:3]]
    orders = await db.fetch(
        "SELECT id, message #>> '{event,body,order_id}' AS order_id FROM tracking_violations"
        " WHERE team_id = $1 AND id = ANY($2::bigint[])",
        team.id,
        ids,
    )
    by_id = {r["id"]: r["order_id"] for r in orders}
    # In the order received: each customer's order kept.
    assert [by_id[i] for i in ids] == ["o-1", "o-2", "o-3"]
    assert (await command(settings, "replay-violations", str(team.id))).endswith(
        "3 replayed, 0 of them breaking the plan again"
    )
    assert (await command(settings, "replay-violations", str(team.id))) == "0 to replay"
    # Even sent again (a replay interrupted before it marked its rows), stored once.
    await db.execute(
        "UPDATE tracking_violations SET replayed_at = NULL WHERE team_id = $1 AND attempt = 2",
        team.id,
    )
    await command(settings, "replay-violations", str(team.id))

    async def all_stored() -> list[dict[str, Any]] | None:
        rows = await stored(db, team, "Order Completed")
        return rows if len(rows) == 3 else None

    rows = await eventually(all_stored)
    bodies = sorted(json.loads(r["body"])["total"] for r in rows)
    assert bodies == [3, 7, 12.5]
    await eventually(
        lambda: db.fetchval(
            "SELECT count(*) = 3 FROM processed_messages p JOIN tracking_violations v"
            " ON p.message_id = v.replay_message_id WHERE v.team_id = $1 AND v.attempt = 2",
            team.id,
        )
    )
    assert len(await stored(db, team, "Order Completed")) == 3
    assert len(await violations(db, team)) == 6

    summary = await command(settings, "violations", str(team.id))
    assert "Order Completed  /properties/total  type" in summary
    assert summary.endswith("0 blocked messages not replayed yet")
    counted = json.loads(await command(settings, "violations", str(team.id), "--json"))
    assert counted["failures"][0]["failures"] == 6


async def test_analyst_views_count_per_event_property_and_library(
    db: asyncpg.Pool, team: Team
) -> None:
    message_id = str(uuid.uuid4())
    await db.execute(
        "INSERT INTO tracking_violations (team_id, message_id, original_message_id, action, op,"
        " event_name, surface, failures, message, library, library_version, occurred_at,"
        " received_at) VALUES ($1, $2, $2, 'allow', 'track_event', 'Signed Up', 'segment_api',"
        ' \'[{"pointer": "/properties/plan", "rule": "enum", "message": "no"},'
        ' {"pointer": "/properties/age", "rule": "type", "message": "no"}]\','
        " '{}', 'analytics.js', '2.1', now(), now())",
        team.id,
        message_id,
    )
    daily = await db.fetch(
        "SELECT pointer, rule, failures FROM tracking_violations_daily WHERE team_id = $1"
        " ORDER BY pointer",
        team.id,
    )
    assert [tuple(r) for r in daily] == [
        ("/properties/age", "type", 1),
        ("/properties/plan", "enum", 1),
    ]
    library = await db.fetchrow(
        "SELECT library, library_version, violations FROM tracking_violation_libraries"
        " WHERE team_id = $1",
        team.id,
    )
    assert library is not None
    assert tuple(library) == ("analytics.js", "2.1", 1)
