"""Segment's and RudderStack's Python SDKs, unchanged, against the Segment-spec surface.

Both post to ``{host}/v1/batch`` with the write key as the Basic-auth user, gzipped
(RudderStack always does; Segment's with ``gzip=True``). The single calls go in
``sync_mode`` (a refused request raises ``APIError`` in the test); the bulk goes the
usual way, queued and uploaded by the SDK's thread in batches of ``UPLOAD_SIZE``,
with ``on_error`` collecting what failed.

RudderStack's SDK sends an identify's traits in ``context.traits`` (none at the top
level, as RudderStack's own server reads them), Segment's in ``traits``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
import rudderstack.analytics.client as rudder  # type: ignore[import-untyped]
import rudderstack.analytics.request as rudder_request  # type: ignore[import-untyped]
import segment.analytics.client as segment  # type: ignore[import-untyped]
import segment.analytics.request as segment_request  # type: ignore[import-untyped]

from tests.conftest import Team
from tests.sdk.scenario import Scenario, verify

CLIENTS: dict[str, Any] = {"segment": segment.Client, "rudder": rudder.Client}
REFUSALS = (segment_request.APIError, rudder_request.APIError)
# Both name themselves analytics-python in context.library.
LIBRARY = "analytics-python"
UPLOAD_SIZE = 150

# Segment's JSON keys as these SDKs' keyword arguments.
KEYWORDS = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "previousId": "previous_id",
    "groupId": "group_id",
    "messageId": "message_id",
}


def send(client: Any, call: dict[str, Any]) -> None:
    """Make ``call`` (Segment's JSON shape) with the SDK's method of that type."""
    args = {KEYWORDS.get(k, k): v for k, v in call.items() if k != "type"}
    queued, message = getattr(client, call["type"])(**args)
    assert queued, f"the SDK did not queue {message}"


def client(sdk: str, write_key: str, host: str, **options: Any) -> Any:
    # Few retries, short timeouts: a refusal fails the test in seconds, not hours.
    return CLIENTS[sdk](
        write_key=write_key, host=host, gzip=True, max_retries=2, timeout=10, **options
    )


def send_scenario(sdk: str, write_key: str, host: str, scenario: Scenario) -> None:
    now = client(sdk, write_key, host, sync_mode=True)
    for call in scenario.singles():
        send(now, call)

    failures: list[str] = []
    queued = client(
        sdk,
        write_key,
        host,
        upload_size=UPLOAD_SIZE,
        on_error=lambda error, batch: failures.append(f"{error!r} ({len(batch)} messages)"),
    )
    for call in scenario.bulk_calls():
        send(queued, call)
    queued.shutdown()  # flush, then stop the upload thread
    assert not failures, f"{sdk} SDK uploads failed: {failures}"


@pytest.mark.parametrize("sdk", sorted(CLIENTS))
async def test_every_call_type_and_a_gzipped_bulk_end_in_the_store(
    sdk: str, gateway: str, db: asyncpg.Pool, team: Team
) -> None:
    scenario = Scenario(bulk=UPLOAD_SIZE * 2)
    await asyncio.to_thread(send_scenario, sdk, team.key, gateway, scenario)
    await verify(db, team.id, scenario, LIBRARY)


@pytest.mark.parametrize("sdk", sorted(CLIENTS))
async def test_a_wrong_write_key_fails_the_call(sdk: str, gateway: str) -> None:
    sender = client(sdk, "not-a-key", gateway, sync_mode=True)
    call = {"type": "track", "userId": "u", "event": "Refused"}
    try:
        await asyncio.to_thread(send, sender, call)
    except REFUSALS as refused:
        assert refused.status == 401, refused
    except Exception as other:
        # rudder-sdk-python reads payload["code"] and payload["message"] of a JSON error.
        pytest.fail(f"the {sdk} SDK could not read the gateway's refusal: {other!r}")
    else:
        pytest.fail("a wrong write key was accepted")
