"""Hostile and careless times on every surface that reads one, on the real pipeline.

Issue #17, point 4: an offset with seconds is stored at the exact instant sent (read
back from ``events.occurred_at``); a clock-skew correction out of bounds (a ``sentAt``
in year 1 would have put the event around the year 4050) stores the receive time and
records the choice in the event's context; date-only values, week dates, comma
fractions and numbers are refused with a 400 in each surface's error format,
publishing nothing. Which formats are accepted: ``schemas.times``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from schemas.times import FORMAT_RULE
from tests.conftest import Team
from tests.gateway.test_api_segment import basic, one_users_batch

WAIT = {"Prefer": "return=representation"}
EXACT = "2024-05-01T12:00:00+05:30:15"
EXACT_UTC = datetime(2024, 5, 1, 6, 29, 45, tzinfo=UTC)  # not 06:30:00, as it was


def uid(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def store_path(team: Team) -> str:
    return f"/core/v3/stores/{team.id}/custom_events"  # (a store is named by its team id too)


def store_event(timestamp: Any) -> dict[str, Any]:
    return {
        "type": "order_shipped",
        "id": uid("evt"),
        "timestamp": timestamp,
        "customer": {"external_id": uid("ext")},
    }


def batch_item(occurred_at: Any) -> dict[str, Any]:
    return {"type": "event", "email": f"{uid('t')}@example.com", "eventName": "timed",
            "occurredAt": occurred_at}  # fmt: skip


async def stored(db: asyncpg.Pool, response: httpx.Response) -> asyncpg.Record:
    """The event the write answered after the consumers applied it (``WAIT``)."""
    assert response.status_code == 200, response.text
    if response.request.url.path == "/api/1.0/batch":
        (item,) = response.json()["items"]
        assert item["status"] == "accepted" and item["outcome"] == "applied", item
        message_id = item["id"]
    else:
        message_id = response.headers["x-message-id"]
    row = await db.fetchrow("SELECT * FROM events WHERE id = $1::uuid", message_id)
    assert row is not None, message_id
    return row


def context_of(row: asyncpg.Record) -> dict[str, Any]:
    return dict(json.loads(row["context"])) if row["context"] is not None else {}


# -- an offset with seconds: the exact instant ----------------------------------------


async def test_segment_stores_an_offset_with_seconds_exactly(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    call = {"userId": uid(), "event": "exact", "timestamp": EXACT}
    response = await http.post("/v1/track", json=call, headers={**basic(team), **WAIT})
    assert (await stored(db, response))["occurred_at"] == EXACT_UTC


@pytest.mark.parametrize(
    ("original_timestamp", "sent_at"),
    [
        # The same instant sent in two offsets with seconds (06:29:45Z, 06:29:55Z).
        ("2024-05-01T12:00:00+05:30:15", "2024-05-01T06:29:55-00:00:00"),
        # A device clock reset to 1970: a sentAt far from the receive time is what the
        # correction is for, not refused.
        ("1970-01-01T00:04:50Z", "1970-01-01T00:05:00Z"),
    ],
    ids=["offsets-with-seconds", "clock-reset-to-1970"],
)
async def test_segment_corrects_skew_exactly(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team, original_timestamp: str, sent_at: str
) -> None:
    # Both: the event waited 10 s on the device, by the device's clock.
    call = {
        "userId": uid(),
        "event": "skewed",
        "originalTimestamp": original_timestamp,
        "sentAt": sent_at,
    }
    response = await http.post("/v1/track", json=call, headers={**basic(team), **WAIT})
    row = await stored(db, response)
    assert row["occurred_at"] == row["received_at"] - timedelta(seconds=10)
    assert "timestampFallback" not in context_of(row)


async def test_store_events_stores_an_offset_with_seconds_exactly(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    response = await http.post(
        store_path(team), json=store_event(EXACT), headers={**team.headers, **WAIT}
    )
    assert response.json()["timestamp"] == "2024-05-01T06:29:45Z", response.text
    assert (await stored(db, response))["occurred_at"] == EXACT_UTC


async def test_batch_stores_an_offset_with_seconds_exactly(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    response = await http.post(
        "/api/1.0/batch?wait=true", json={"items": [batch_item(EXACT)]}, headers=team.headers
    )
    assert (await stored(db, response))["occurred_at"] == EXACT_UTC


# -- the clock-skew correction, bounded -----------------------------------------------


@pytest.mark.parametrize(
    ("times", "reason"),
    [
        # The case: sentAt in year 1 put the event around the year 4050.
        ({"originalTimestamp": "2024-05-01T12:00:00Z", "sentAt": "0001-01-01T00:00:00Z"},
         "future"),
        # Sent more than 60 s before it happened, by the device's own clock.
        ({"originalTimestamp": "2024-05-01T12:01:00.001Z", "sentAt": "2024-05-01T12:00:00Z"},
         "future"),
        # Waited more than 365 days on the device (or made-up times).
        ({"originalTimestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-01-01T00:00:00Z"},
         "past"),
        ({"originalTimestamp": "2023-04-30T11:59:59Z", "sentAt": "2024-05-01T12:00:00+00:00"},
         "past"),
    ],
)  # fmt: skip
async def test_a_correction_out_of_bounds_stores_the_receive_time_and_says_so(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team, times: dict[str, str], reason: str
) -> None:
    call = {"userId": uid(), "event": "fallback", "context": {"app": "x"}, **times}
    response = await http.post("/v1/track", json=call, headers={**basic(team), **WAIT})
    row = await stored(db, response)
    assert row["occurred_at"] == row["received_at"]
    original = datetime.fromisoformat(times["originalTimestamp"])
    sent_at = datetime.fromisoformat(times["sentAt"])
    assert context_of(row) == {
        "app": "x",
        "ip": "127.0.0.1",
        "timestampFallback": {
            "reason": reason,
            "originalTimestamp": original.isoformat().replace("+00:00", "Z"),
            "sentAt": sent_at.isoformat().replace("+00:00", "Z"),
        },
    }


async def test_a_batch_sent_at_in_year_1_falls_back_for_each_message_that_uses_it(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    messages = [
        {"type": "track", "event": "a", "originalTimestamp": "2024-05-01T12:00:00Z"},
        # its own time: no correction
        {"type": "track", "event": "b", "timestamp": "2024-05-01T12:00:00Z"},
    ]
    shared = {"sentAt": "0001-01-01T00:00:00Z"}
    _, response = await one_users_batch(http, team, "/v1/batch", messages, shared, WAIT)
    ids = response.headers["x-message-id"].split(",")
    rows = await db.fetch("SELECT * FROM events WHERE id = ANY($1::uuid[])", ids)
    by_id = {str(r["id"]): r for r in rows}
    corrected, own = by_id[ids[0]], by_id[ids[1]]
    assert corrected["occurred_at"] == corrected["received_at"]
    assert context_of(corrected)["timestampFallback"] == {
        "reason": "future",
        "originalTimestamp": "2024-05-01T12:00:00Z",
        "sentAt": "0001-01-01T00:00:00Z",
    }
    assert own["occurred_at"] == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert "timestampFallback" not in context_of(own)


# -- formats that are not date-times: a 400 in each surface's format ----------------

NOT_DATE_TIMES = {
    "2024-05-01": "a date alone",
    "2024-W18-3T12:00:00Z": "week dates",
    "2024-122T12:00:00Z": "ordinal dates",
    "2024-05-01T12:00:00,5Z": "not a ','",
    "2024-05-01T12:00Z": "its seconds",
    "2024-05-01T12:00:00+05:60": "out of range",
    1714564800: "unix times",
}


@pytest.mark.parametrize("value", list(NOT_DATE_TIMES), ids=str)
async def test_segment_refuses_what_is_not_a_date_time(
    http: httpx.AsyncClient, team: Team, value: Any
) -> None:
    for path, body, field in [
        ("/v1/track", {"userId": "a", "event": "x", "timestamp": value}, "timestamp"),
        ("/v1/track", {"userId": "a", "event": "x", "originalTimestamp": value},
         "originalTimestamp"),
        ("/v1/page", {"userId": "a", "sentAt": value, "originalTimestamp": "2024-05-01T12:00:00Z"},
         "sentAt"),
        ("/v1/batch", {"batch": [{"type": "track", "userId": "a", "event": "x"}], "sentAt": value},
         "sentAt"),
        ("/v1/batch", {"batch": [{"type": "track", "userId": "a", "event": "x",
                                  "timestamp": value}]}, "batch[0].timestamp"),
    ]:  # fmt: skip
        response = await http.post(path, json=body, headers=basic(team))
        assert response.status_code == 400, (path, body, response.text)
        assert "x-message-id" not in response.headers
        answer = response.json()
        assert set(answer) == {"success", "message", "code"}, answer
        assert answer["success"] is False and answer["code"] == "invalid_request", answer
        assert answer["message"].startswith(f"{field}: {FORMAT_RULE}"), answer
        assert NOT_DATE_TIMES[value] in answer["message"].lower(), answer


@pytest.mark.parametrize("value", list(NOT_DATE_TIMES), ids=str)
async def test_store_events_refuse_what_is_not_a_date_time(
    http: httpx.AsyncClient, team: Team, value: Any
) -> None:
    response = await http.post(store_path(team), json=store_event(value), headers=team.headers)
    assert response.status_code == 400, response.text
    assert "x-message-id" not in response.headers
    (error,) = response.json()["errors"]
    assert error["field"] == "timestamp", error
    assert error["message"].startswith(FORMAT_RULE), error
    assert NOT_DATE_TIMES[value] in error["message"].lower(), error


@pytest.mark.parametrize("value", [v for v in NOT_DATE_TIMES if isinstance(v, str)])
async def test_batch_rejects_an_item_that_is_not_a_date_time_alone(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team, value: str
) -> None:
    good = batch_item("2024-05-01T12:00:00Z")
    response = await http.post(
        "/api/1.0/batch?wait=true", json={"items": [batch_item(value), good]}, headers=team.headers
    )
    assert response.status_code == 200, response.text
    rejected, accepted = response.json()["items"]
    assert rejected["status"] == "rejected" and "id" not in rejected, rejected
    assert rejected["error"].startswith(f"Invalid occurredAt: {FORMAT_RULE}"), rejected
    assert NOT_DATE_TIMES[value] in rejected["error"].lower(), rejected
    assert accepted["status"] == "accepted" and accepted["outcome"] == "applied", accepted


async def test_batch_needs_a_zone_where_segment_and_store_events_take_utc(
    http: httpx.AsyncClient, db: asyncpg.Pool, team: Team
) -> None:
    naive = "2024-05-01T12:00:00.5"
    batch = await http.post(
        "/api/1.0/batch", json={"items": [batch_item(naive)]}, headers=team.headers
    )
    (item,) = batch.json()["items"]
    assert item["error"] == "Invalid occurredAt: needs a time zone (e.g. 2024-05-01T12:00:00Z)"
    as_utc = datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)
    call = {"userId": uid(), "event": "naive", "timestamp": naive}
    segment = await http.post("/v1/track", json=call, headers={**basic(team), **WAIT})
    assert (await stored(db, segment))["occurred_at"] == as_utc
    store = await http.post(
        store_path(team), json=store_event(naive), headers={**team.headers, **WAIT}
    )
    assert (await stored(db, store))["occurred_at"] == as_utc
