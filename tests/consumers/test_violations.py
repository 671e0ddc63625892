"""``consumers.violations.as_sent``: the violations table keeps the message as the
client sent it, the omitted properties and traits put back (issue #22)."""

from __future__ import annotations

import msgspec

from consumers.violations import as_sent
from schemas.messages import WriteMessage
from schemas.violations import Failure, Tracking
from tests.schemas.test_tracking_plans import track


def test_the_omitted_parts_are_put_back_and_the_verdict_left_out() -> None:
    tracking = Tracking(
        2,
        "omit",
        (Failure("/properties/total", "type", "no"),),
        {"properties": {"total": "1"}, "traits": {"plan": "gold"}},
    )
    message = track(
        "Order Completed", {"order_id": "o"}, attributes={"name": "Ana"}, tracking=tracking
    )
    sent = msgspec.json.decode(as_sent(message))
    assert sent["event"]["body"] == {"order_id": "o", "total": "1"}
    assert sent["attributes"] == {"name": "Ana", "plan": "gold"}
    assert "tracking" not in sent
    assert msgspec.json.decode(as_sent(message), type=WriteMessage).tracking is None
