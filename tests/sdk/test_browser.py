"""analytics.js (``@segment/analytics-next``, unchanged) in Debian's headless Chromium.

``js/browser.mjs`` serves a page on ``127.0.0.1`` while the gateway is called
``localhost``, so every call is a real cross-origin one (preflight and all): the
bundle fetches the gateway's ``/v1/projects/<writeKey>/settings``, sends identify,
track and page to ``/v1/i``, ``/t``, ``/p``, and one event as the page unloads (the
batching strategy's ``/v1/b``, fetch keepalive).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import orjson

from schemas.messages import client_message_id
from tests.conftest import Team
from tests.sdk.node import chromium_binary, node_script
from tests.sdk.scenario import (
    ORDER,
    PAGE,
    TRAITS,
    Scenario,
    applied,
    assert_contains,
    assert_sent_by,
    identified_user,
    stored_events,
)

LIBRARY = "analytics.js"


def sent_ids(team_id: int, visit: dict[str, Any]) -> list[str]:
    """The store ids of a visit's calls; fails on any the SDK reported undelivered."""
    assert "error" not in visit, visit["error"]
    failed = [s for s in visit["sent"] if s["failed"]]
    assert not failed, f"analytics.js could not deliver: {failed}"
    return [client_message_id(team_id, s["messageId"]) for s in visit["sent"]]


async def test_analytics_js_in_chromium_sends_across_origins_and_on_unload(
    gateway: str, db: asyncpg.Pool, team: Team, tmp_path: Path
) -> None:
    chromium_binary()
    scenario = Scenario(bulk=0)
    config = {
        "writeKey": team.key,
        "gateway": gateway.replace("127.0.0.1", "localhost"),
        "userId": scenario.user_id,
        "traits": {**TRAITS, "email": scenario.email},
        "order": ORDER,
        "page": PAGE,
    }
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    async with node_script("browser.mjs", orjson.dumps(config).decode(), str(profile)) as browser:
        seen = await browser.message(timeout=60)
        assert "error" not in seen, f"{seen['error']}\n{browser.log()}"
        assert not seen["problems"], f"{seen}"
        # What the browser saw of the gateway.
        gateway_said = {n.split(" ", 1)[1] for n in seen["network"] if "localhost" in n}
        for call in [f"projects/{team.key}/settings", "i", "t", "p"]:
            assert f"{config['gateway']}/v1/{call} 200" in gateway_said, gateway_said
        identify, track, page = sent_ids(team.id, seen["first"])
        (left,) = sent_ids(team.id, seen["leave"])
        # `left` went as the page unloaded: only the store shows it (Playwright does not
        # see the requests of a page that is gone).
        await applied(db, [identify, track, page, left])
        await browser.finish()

    anonymous_id = seen["first"]["anonymousId"]
    user = await identified_user(db, team.id, scenario, [("anonymous_id", anonymous_id)])

    events = await stored_events(db, [track, page, left])
    assert set(events) == {track, page, left}, events
    assert events[track]["name"] == "Order Completed" and events[track]["body"] == ORDER
    assert events[page]["name"] == "page"
    assert_contains(
        events[page]["body"],
        {**PAGE["properties"], "name": PAGE["name"], "category": PAGE["category"]},
        "page body",
    )
    assert events[left]["name"] == "Left Page"
    for event in events.values():
        assert event["customer_id"] == user["id"], event
        assert_sent_by(event, LIBRARY)
        context = event["context"]
        assert context["userAgent"].startswith("Mozilla/"), context
        assert context["page"]["url"].startswith(seen["origin"]), context
