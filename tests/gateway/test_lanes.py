"""Which lane a request's writes take (``ingest_gateway/write/lanes.py``), on a clock of
the test's own: the rates are counted per second, per team and per customer key."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from ingest_gateway.write.lanes import Lanes
from runtime.settings import Settings
from schemas.messages import Identifiers, WriteMessage

T0 = datetime(2026, 12, 6, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def writes(team_id: int, count: int, email: str | None = None) -> list[WriteMessage]:
    return [
        WriteMessage(
            id=f"m-{team_id}-{i}",
            team_id=team_id,
            op="upsert_customer",
            identifiers=Identifiers(email=email or f"p{i}@example.com"),
            occurred_at=T0,
            received_at=T0,
        )
        for i in range(count)
    ]


def lanes(team_rate: float = 100, customer_rate: float = 10) -> tuple[Lanes, Clock]:
    clock = Clock()
    settings = Settings(
        lane_team_events_per_second=team_rate, lane_customer_events_per_second=customer_rate
    )
    return Lanes(settings, clock), clock


def sizes(routed: tuple[object, object]) -> tuple[int, int]:
    main, overflow = routed
    return len(main), len(overflow)  # type: ignore[arg-type]


def test_a_team_beyond_its_rate_overflows_while_others_share_the_process() -> None:
    lane, _ = lanes()
    assert sizes(lane.route(writes(2, 5))) == (5, 0)  # a quiet team
    assert sizes(lane.route(writes(1, 60))) == (60, 0)
    assert sizes(lane.route(writes(1, 60))) == (0, 60)  # 120 > 100 this second
    assert sizes(lane.route(writes(2, 5))) == (5, 0)  # the quiet team is not held up


def test_a_team_alone_on_the_process_keeps_the_main_lane() -> None:
    lane, clock = lanes()
    for _ in range(5):
        assert sizes(lane.route(writes(1, 60))) == (60, 0)
    clock.now += 1.0
    assert sizes(lane.route(writes(1, 60))) == (60, 0)


def test_a_team_stays_in_the_overflow_lane_for_the_next_second_then_leaves_it() -> None:
    lane, clock = lanes()
    lane.route(writes(2, 1))
    lane.route(writes(1, 150))  # over the rate: overflow
    clock.now += 1.0
    # Over the rate in the last window: all of its writes this one, however few.
    assert sizes(lane.route(writes(1, 1))) == (0, 1)
    lane.route(writes(2, 1))
    clock.now += 1.0
    assert sizes(lane.route(writes(1, 1))) == (1, 0)  # a whole second under the rate


def test_after_an_idle_second_nothing_is_held_against_a_team() -> None:
    lane, clock = lanes()
    lane.route(writes(2, 1))
    lane.route(writes(1, 150))
    clock.now += 5.0
    lane.route(writes(2, 1))
    assert sizes(lane.route(writes(1, 1))) == (1, 0)


def test_only_the_hot_customer_key_overflows_within_a_quiet_team() -> None:
    lane, clock = lanes(customer_rate=10)
    hot = writes(3, 15, email="fleet@example.com")
    others = writes(3, 15)
    main, overflow = lane.route(hot[:8] + others + hot[8:])
    assert [m.identifiers.email for m in overflow] == ["fleet@example.com"] * 5
    assert len(main) == 25
    assert main == hot[:8] + others + hot[8:10]  # in order, within each lane
    clock.now += 1.0
    # Hot in the last second: its next write overflows too, the others do not.
    main, overflow = lane.route(writes(3, 1, email="fleet@example.com") + writes(3, 1))
    assert (len(main), len(overflow)) == (1, 1)
    assert overflow[0].identifiers.email == "fleet@example.com"


def test_the_overflow_control_sends_every_write_there() -> None:
    lane, _ = lanes()
    assert sizes(lane.route(writes(1, 1), overflow=True)) == (0, 1)


def test_rate_0_turns_a_rule_off() -> None:
    lane, _ = lanes(team_rate=0, customer_rate=0)
    lane.route(writes(2, 1))
    assert sizes(lane.route(writes(1, 10_000, email="one@example.com"))) == (10_000, 0)


def test_a_delete_goes_to_both_lanes_in_the_requests_order() -> None:
    lane, _ = lanes(customer_rate=2)
    hot = writes(1, 4, email="fleet@example.com")
    delete = msgspec.structs.replace(hot[2], id="delete", op="delete_customer")
    request = [hot[0], hot[1], delete, hot[3]]
    main, overflow = lane.route(request)
    assert [m.id for m in main] == [hot[0].id, hot[1].id, "delete"]
    assert [m.id for m in overflow] == ["delete", hot[3].id]
    # And when the whole team overflows, the main lane still gets the delete.
    main, overflow = lane.route([delete], overflow=True)
    assert ([m.id for m in main], [m.id for m in overflow]) == (["delete"], ["delete"])
