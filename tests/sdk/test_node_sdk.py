"""``@segment/analytics-node``, unchanged, against the Segment-spec surface.

``js/send.mjs`` makes the scenario's calls with the SDK (which batches them to
``{host}/v1/batch``, ``FLUSH_AT`` to a request) and exits non-zero listing any call
it could not deliver.
"""

from __future__ import annotations

import asyncpg
import orjson

from tests.conftest import Team
from tests.sdk.node import node_script
from tests.sdk.scenario import Scenario, verify

FLUSH_AT = 100


async def test_every_call_type_and_a_bulk_end_in_the_store(
    gateway: str, db: asyncpg.Pool, team: Team
) -> None:
    scenario = Scenario(bulk=300)
    request = {
        "writeKey": team.key,
        "host": gateway,
        "flushAt": FLUSH_AT,
        "calls": scenario.calls(),
    }
    async with node_script("send.mjs") as script:
        await script.finish(orjson.dumps(request), timeout=60)
    await verify(db, team.id, scenario, "@segment/analytics-node")
