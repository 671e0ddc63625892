"""The tracking plan's check, without I/O: verdicts per mode, omission, unplanned
events, the strictest mode of a message's parts, the plan document's checks and the
Segment Protocols import (issue #22)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from schemas.messages import EventData, GroupData, Identifiers, WriteMessage, utcnow
from schemas.tracking_plans import CompiledPlan, PlanError, from_segment, parse_plan
from schemas.violations import Tracking

ORDER = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "total": {"type": "number"}},
    "required": ["order_id"],
    "additionalProperties": False,
}


def compiled(**document: Any) -> CompiledPlan:
    base: dict[str, Any] = {"events": {"Order Completed": {"schema": ORDER}}}
    return CompiledPlan(7, parse_plan(base | document))


def track(name: str, body: dict[str, Any], **more: Any) -> WriteMessage:
    now = utcnow()
    return WriteMessage(
        id="m-1",
        team_id=1,
        op="track_event",
        identifiers=Identifiers(email="a@example.com"),
        occurred_at=now,
        received_at=now,
        event=EventData(name=name, body=body),
        **more,
    )


def test_a_message_that_keeps_the_plan_goes_on_unchanged() -> None:
    message = track("Order Completed", {"order_id": "o", "total": 1})
    assert compiled().check(message) is message


@pytest.mark.parametrize("mode", ["allow", "block"])
def test_allow_and_block_keep_the_message_whole(mode: str) -> None:
    message = track("Order Completed", {"order_id": "o", "total": "1"})
    checked = compiled(mode=mode).check(message)
    assert checked.event == message.event
    assert checked.tracking is not None
    assert checked.tracking.action == mode and checked.tracking.plan_version == 7
    assert [(f.pointer, f.rule) for f in checked.tracking.failures] == [
        ("/properties/total", "type")
    ]


def test_omit_drops_the_offending_and_unplanned_properties_and_keeps_them_aside() -> None:
    message = track("Order Completed", {"order_id": "o", "total": "1", "extra": [1]})
    checked = compiled(mode="omit").check(message)
    assert checked.event is not None and checked.event.body == {"order_id": "o"}
    assert checked.tracking is not None
    assert checked.tracking.omitted == {"properties": {"total": "1", "extra": [1]}}
    assert {(f.pointer, f.rule) for f in checked.tracking.failures} == {
        ("/properties/total", "type"),
        ("/properties/extra", "additionalProperties"),
    }


def test_a_missing_required_property_is_recorded_and_nothing_omitted() -> None:
    checked = compiled(mode="omit").check(track("Order Completed", {"total": 2}))
    assert checked.tracking is not None and checked.tracking.omitted == {}
    assert checked.event is not None and checked.event.body == {"total": 2}
    assert [f.rule for f in checked.tracking.failures] == ["required"]


@pytest.mark.parametrize("unplanned", ["allow", "block"])
def test_unplanned_events(unplanned: str) -> None:
    checked = compiled(unplanned=unplanned).check(track("order_completed", {}))
    assert checked.tracking is not None and checked.tracking.action == unplanned
    assert [(f.pointer, f.rule) for f in checked.tracking.failures] == [("/event", "unplanned")]


def test_the_event_mode_wins_over_the_plan_and_the_strictest_part_decides() -> None:
    traits = {"schema": {"properties": {"plan": {"enum": ["pro"]}}}, "mode": "omit"}
    message = track("Order Completed", {"total": "x"}, attributes={"plan": "gold", "a": 1})
    blocking = {"Order Completed": {"schema": ORDER, "mode": "block"}}
    checked = compiled(mode="allow", events=blocking, identify=traits).check(message)
    assert checked.tracking is not None and checked.tracking.action == "block"
    assert checked.attributes == message.attributes  # a blocked message is kept whole
    allowing = {"Order Completed": {"schema": ORDER}}
    checked = compiled(mode="allow", events=allowing, identify=traits).check(message)
    assert checked.tracking is not None and checked.tracking.action == "omit"
    assert checked.attributes == {"a": 1}  # the identify part omitted its own
    assert checked.event == message.event  # the event's part allowed as sent
    group = msgspec.structs.replace(message, op="upsert_customer", event=None, attributes={})
    group = msgspec.structs.replace(group, group=GroupData("g", {"seats": "x"}))
    assert compiled().check(group) is group  # no group rule: nothing to check


def test_a_replayed_message_keeps_its_attempt_even_when_it_now_keeps_the_plan() -> None:

    replayed = track(
        "Order Completed", {"order_id": "o"}, tracking=Tracking(3, replay_of="r", attempt=2)
    )
    checked = compiled().check(replayed)
    assert checked.tracking is not None
    assert (checked.tracking.failures, checked.tracking.replay_of, checked.tracking.attempt) == (
        (),
        "r",
        2,
    )


@pytest.mark.parametrize(
    ("document", "said"),
    [
        ({"events": {"x": {"schema": {"type": "wat"}}}}, "events['x']: not a JSON Schema"),
        ({"mode": "drop"}, "not a tracking plan"),
        ({"events": {"x": {"schema": {}, "colour": 1}}}, "not a tracking plan"),
    ],
)
def test_a_plan_that_cannot_be_used_is_refused(document: dict[str, Any], said: str) -> None:
    with pytest.raises(PlanError, match=said.replace("[", r"\[")):
        parse_plan(document)


def test_the_segment_config_api_shape_is_imported() -> None:
    export = {
        "display_name": "Shop",
        "rules": {
            "events": [
                {"name": "Signed Up", "rules": {"properties": {"properties": ORDER}}},
            ],
            "group": {"properties": {"traits": {"required": ["name"]}}},
            "global": {"properties": {"context": {}}},
        },
    }
    plan = from_segment(export, mode="block", unplanned="block")
    assert list(plan.events) == ["Signed Up"]
    schema = plan.events["Signed Up"].schema
    assert isinstance(schema, dict) and schema["required"] == ["order_id"]
    assert plan.group is not None and plan.identify is None
    assert (plan.mode, plan.unplanned) == ("block", "block")
