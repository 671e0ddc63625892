"""The Segment surface's reader keeps every rule the consumers apply.

It builds its writes with ``new_write(..., fields_checked=True)``: each field is read
by the rule of its module as the call is read, and the builder does not check the
message again. This holds the reader to that: every write it builds from calls at
the edges of the rules (what they refuse: test_api_segment.py, test_hostile_*.py)
passes ``check_message`` unchanged, and so does every write it accepts from 4,000
calls drawn at random (seeded) from values at and beyond those edges. A rule added
to ``check_message`` that the reader does not apply fails here when one of these
calls breaks it: a new rule on a field none of them varies needs its values here.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from ingest_gateway.surfaces.segment_api import _Call, _Received, _Shared, _write
from ingest_gateway.web.errors import ApiError
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


# Values each field is drawn from: usable ones, and ones at and beyond each rule.
DRAWN: dict[str, tuple[Any, ...]] = {
    "userId": ("u-1", 42, 7.0, "", " ", "null", "\x00", LONG, LONG + "x", "a\u200b", None),
    "anonymousId": ("a-1", 0, -1, "undefined", LONG + "x", "\ud800".encode(
        "utf-8", "surrogatepass"
    ).decode("utf-8", "replace"), None),
    "event": ("Bought", "", " x ", LONG, LONG + "x", "a\x00b", 5, None),
    "messageId": ("m-1", "", LONG, LONG + "x", 12, 1.5, 2**70, None),
    "groupId": ("g-1", "", 12, LONG + "x", "[object Object]", None),
    "timestamp": ("2024-05-01T12:00:00Z", "0000-12-31T23:59:59Z", "10000-01-01T00:00:00Z",
                  "2024-05-01", "2024-13-01T00:00:00Z", "0001-01-01T00:00:00+00:01", 1714560000,
                  None),
    "sentAt": ("2024-05-01T12:00:05Z", "9999-12-31T23:59:59Z", "garbage", None),
    "name": ("Home", LONG + "x", "", None),
    "traits": ({"email": "a@b.co"}, {"email": "not an email"}, {"email": LONG + "@b.co"},
               {"n": 2**64}, [], None),
    "properties": ({"a": 1}, {"k\x00": 1}, "text", None),
    "context": ({"ip": "198.51.100.1"}, {"userAgent": 5}, {"traits": {"email": "c@d.io"}}, None),
}  # fmt: skip


def drawn_calls(n: int, seed: int = 20261206) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    kinds = ("track", "page", "screen", "identify", "group", "alias")
    out = []
    for _ in range(n):
        fields = {k: rng.choice(v) for k, v in DRAWN.items() if rng.random() < 0.6}
        out.append((rng.choice(kinds), {k: v for k, v in fields.items() if v is not None}))
    return out


def test_every_write_accepted_from_drawn_calls_keeps_the_consumers_rules() -> None:
    received = _Received(utcnow(), None, "segment_api", "198.51.100.1", _Shared())
    accepted = 0
    for kind, fields in drawn_calls(4000):
        try:
            message = _write(1, _Call(fields, kind), received)
        except ApiError:
            continue
        accepted += 1
        assert check_message(message) is message, (kind, fields)
    assert accepted > 100  # (most draws break a rule: some must get past them all)
