"""The Segment surface's reader keeps every rule the consumers apply.

It builds its writes with ``new_write(..., fields_checked=True)``: each field is read
by the rule of its module as the call is read, and the builder does not check the
message again. This holds the reader to that: every write it builds from calls at
the edges of the rules (what they refuse: test_api_segment.py, test_hostile_*.py)
passes ``check_message`` unchanged. A rule added to
``schemas.limits.message_refusal`` that the reader does not apply fails here.
"""

from __future__ import annotations

from typing import Any

import pytest

from ingest_gateway.surfaces.segment_api import _Call, _Received, _Shared, _write
from ingest_gateway.write.validation import check_message
from schemas.limits import MAX_NAME_LENGTH
from schemas.messages import utcnow

LONG = "x" * MAX_NAME_LENGTH
TIMES: tuple[dict[str, str], ...] = (
    {},
    {"timestamp": "2024-05-01T12:00:00+05:30:15"},
    {"timestamp": "0001-01-01T00:00:00Z"},
    {"timestamp": "9999-12-31T23:59:59.999999Z"},
    {"timestamp": "0001-01-01T04:00:00+03:59:59"},
    {"originalTimestamp": "2024-05-01T12:00:00", "sentAt": "2024-05-01T12:00:05Z"},
    {"originalTimestamp": "0001-01-01T00:00:00Z", "sentAt": "9999-12-31T23:59:59Z"},
    {"originalTimestamp": "2024-05-01t12:00:00z"},
)
IDS = (
    {"userId": "u-1"},
    {"anonymousId": "a-1"},
    {"userId": "null", "anonymousId": " a-2\u200b"},
    {"userId": 42, "anonymousId": 7.0},
    {"userId": LONG},
)
CALLS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("track", {"event": "Bought"}),
    ("track", {"event": LONG, "messageId": LONG, "properties": {"a": 1}}),
    ("track", {"event": " x ", "context": {"userAgent": "Mozilla/5.0"}}),
    ("page", {"name": LONG, "category": "c"}),
    ("screen", {}),
    ("identify", {"traits": {"email": "A@Example.com", "plan": "gold"}}),
    ("identify", {"traits": {"email": "not an email"}, "context": {"traits": {"a": 1}}}),
    ("group", {"groupId": "g-1", "traits": {"seats": 5}}),
    ("group", {"groupId": 12}),
)


def calls() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for kind, fields in CALLS:
        for ids in IDS:
            for times in TIMES:
                out.append((kind, fields | ids | times))
    for times in TIMES:
        out.append(("alias", {"userId": "u-1", "previousId": "a-1"} | times))
    return out


@pytest.mark.parametrize(("kind", "fields"), calls())
def test_every_write_built_keeps_the_consumers_rules(kind: str, fields: dict[str, Any]) -> None:
    received = _Received(utcnow(), None, "segment_api", "198.51.100.1", _Shared())
    message = _write(1, _Call(fields, kind), received)
    assert check_message(message) is message
