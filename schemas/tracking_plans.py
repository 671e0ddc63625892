"""Tracking plans: the document, its compiled form, and the check of a write against it.

A team's plan (issue #22, ``docs/tracking-plans.md``) says, per event name, what the
event's properties must be (a JSON Schema, draft 2020-12), what ``identify`` traits
and ``group`` traits must be, what to do with a message that breaks it (the mode:
``allow``, ``omit``, ``block``; per plan, and per event) and whether events the plan
does not name are allowed (``unplanned``: ``allow`` or ``block``)::

    {"mode": "allow", "unplanned": "allow",
     "events": {"Order Completed": {"mode": "block", "schema": {...}}},
     "identify": {"schema": {...}}, "group": {"mode": "omit", "schema": {...}}}

``parse_plan`` checks a document (every schema against the 2020-12 meta-schema),
``CompiledPlan`` holds it compiled once (jsonschema-rs: measured fastest of the
Python validators, ``docs/tracking-plans.md``), and ``CompiledPlan.check`` gives a
message's verdict: the message to publish (the offending properties taken out in
``omit`` mode) carrying a ``schemas.violations.Tracking``, or the message unchanged.
``from_segment`` imports a Segment Protocols export.

The gateway (``ingest_gateway.write.tracking``) and ``ingest-admin
replay-violations`` check with this same code. Imports jsonschema-rs, msgspec and
``schemas`` only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import jsonschema_rs
import msgspec

from schemas.messages import WriteMessage
from schemas.violations import Action, Failure, Tracking

Unplanned = Literal["allow", "block"]
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Severity of the modes: a message breaking several rules gets the strictest.
_SEVERITY: dict[str, int] = {"allow": 0, "omit": 1, "block": 2}
# At most this many failures are recorded per part of a message.
MAX_FAILURES = 20


class PlanError(ValueError):
    """A plan document that cannot be used; the message says where and why."""


class Rule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """An event's, identify's or group's rule: the schema of its properties or
    traits, and its own mode (None: the plan's)."""

    schema: dict[str, Any] | bool = True
    mode: Action | None = None
    description: str | None = None


class Plan(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A plan document (see the module's docstring)."""

    mode: Action = "allow"
    unplanned: Unplanned = "allow"
    events: dict[str, Rule] = {}
    identify: Rule | None = None
    group: Rule | None = None
    description: str | None = None


_plan_decoder = msgspec.json.Decoder(Plan)


def parse_plan(raw: bytes | str | dict[str, Any]) -> Plan:
    """The plan of a document (JSON text or an object); ``PlanError`` when it is not one."""
    try:
        plan = msgspec.convert(raw, Plan) if isinstance(raw, dict) else _plan_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise PlanError(f"not a tracking plan: {exc}") from exc
    for where, rule in _rules(plan):
        if isinstance(rule.schema, dict):
            try:
                jsonschema_rs.meta.validate(rule.schema)
                jsonschema_rs.Draft202012Validator(rule.schema)
            except (jsonschema_rs.ValidationError, ValueError) as exc:
                first = str(exc).splitlines()[0]
                raise PlanError(f"{where}: not a JSON Schema (draft 2020-12): {first}") from exc
    return plan


def _rules(plan: Plan) -> Iterable[tuple[str, Rule]]:
    for name, rule in plan.events.items():
        yield f"events[{name!r}]", rule
    if plan.identify is not None:
        yield "identify", plan.identify
    if plan.group is not None:
        yield "group", plan.group


def dumps(plan: Plan) -> str:
    """The plan as stored and shown: JSON, keys sorted, indented (diffs read well)."""
    return msgspec.json.format(msgspec.json.encode(plan, order="sorted"), indent=2).decode()


class _Compiled:
    __slots__ = ("mode", "validator")

    def __init__(self, rule: Rule, default: Action) -> None:
        schema = rule.schema
        self.validator = jsonschema_rs.Draft202012Validator(schema)
        self.mode: Action = rule.mode or default


class CompiledPlan:
    """A plan version compiled once: a validator per event, identify and group."""

    def __init__(self, version: int, plan: Plan) -> None:
        self.version = version
        self.plan = plan
        self.unplanned = plan.unplanned
        self.events = {name: _Compiled(rule, plan.mode) for name, rule in plan.events.items()}
        self.identify = _Compiled(plan.identify, plan.mode) if plan.identify else None
        self.group = _Compiled(plan.group, plan.mode) if plan.group else None

    def check(self, message: WriteMessage) -> WriteMessage:
        """The message as it goes on: unchanged when it keeps the plan, else carrying
        its ``Tracking`` (and without its offending properties in ``omit`` mode)."""
        event = message.event
        checks: list[tuple[str, _Compiled, dict[str, Any]]] = []
        failures: list[Failure] = []
        action: Action = "allow"
        if event is not None and message.op == "track_event":
            compiled = self.events.get(event.name)
            if compiled is None:
                failures.append(
                    Failure("/event", "unplanned", f"{event.name!r} is not in the tracking plan")
                )
                action = self.unplanned
            elif isinstance(event.body, dict):
                checks.append(("properties", compiled, event.body))
        if message.attributes and self.identify is not None:
            checks.append(("traits", self.identify, message.attributes))
        if message.group is not None and self.group is not None:
            checks.append(("group_traits", self.group, message.group.traits))
        omitted: dict[str, dict[str, Any]] = {}
        for part, compiled, value in checks:
            if compiled.validator.is_valid(value):  # the hot path: one call into Rust
                continue
            found, offending = _failures(part, compiled, value)
            failures += found
            if _SEVERITY[compiled.mode] > _SEVERITY[action]:
                action = compiled.mode
            if compiled.mode == "omit" and offending:
                omitted[part] = {key: value[key] for key in offending}
        if not failures and message.tracking is None:
            return message
        replay_of = message.tracking.replay_of if message.tracking else None
        attempt = message.tracking.attempt if message.tracking else 1
        tracking = Tracking(
            self.version, action, tuple(failures), omitted, replay_of=replay_of, attempt=attempt
        )
        if action == "omit" and omitted:
            return _without(message, omitted, tracking)
        return msgspec.structs.replace(message, tracking=tracking)


def _failures(
    part: str, compiled: _Compiled, value: dict[str, Any]
) -> tuple[list[Failure], set[str]]:
    """The failures of ``value`` against the rule, and the top-level keys at fault."""
    prefix = "/traits" if part != "properties" else "/properties"
    failures: list[Failure] = []
    offending: set[str] = set()
    for error in compiled.validator.iter_errors(value):
        path = [str(p) for p in error.instance_path]
        if path:
            offending.add(path[0])
        elif isinstance(error.kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
            for name in map(str, error.kind.unexpected):  # one failure per property
                offending.add(name)
                failures.append(
                    Failure(
                        f"{prefix}/{_escaped(name)}",
                        "additionalProperties",
                        f"{name!r} is not in the plan",
                    )
                )
            continue
        pointer = prefix + "".join("/" + _escaped(p) for p in path)
        keyword = str(error.schema_path[-1]) if error.schema_path else "schema"
        if keyword == "false" or (len(error.schema_path) > 1 and keyword.isdigit()):
            keyword = str(error.schema_path[-2])
        failures.append(Failure(pointer, keyword, error.message))
        if len(failures) >= MAX_FAILURES:
            break
    return failures, offending


def _escaped(token: str) -> str:
    """A JSON pointer's reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def _without(
    message: WriteMessage, omitted: dict[str, dict[str, Any]], tracking: Tracking
) -> WriteMessage:
    """``message`` without the omitted properties or traits."""
    changes: dict[str, Any] = {"tracking": tracking}
    if "properties" in omitted and message.event is not None:
        body = {k: v for k, v in message.event.body.items() if k not in omitted["properties"]}
        changes["event"] = msgspec.structs.replace(message.event, body=body)
    if "traits" in omitted:
        keep = omitted["traits"]
        changes["attributes"] = {k: v for k, v in message.attributes.items() if k not in keep}
    if "group_traits" in omitted and message.group is not None:
        keep = omitted["group_traits"]
        traits = {k: v for k, v in message.group.traits.items() if k not in keep}
        changes["group"] = msgspec.structs.replace(message.group, traits=traits)
    return msgspec.structs.replace(message, **changes)


# -- import: Segment Protocols ------------------------------------------------------


def from_segment(
    export: dict[str, Any], mode: Action = "allow", unplanned: Unplanned = "allow"
) -> Plan:
    """A plan from a Segment Protocols tracking-plan export, in either of its shapes:

    * the Public API's ``GET /tracking-plans/{id}/rules`` answer: ``{"data": {"rules":
      [{"type": "TRACK", "key": "Order Completed", "jsonSchema": {...}}, {"type":
      "IDENTIFY", ...}, {"type": "GROUP", ...}, {"type": "COMMON", ...}]}}``;
    * the Config API's tracking plan: ``{"rules": {"events": [{"name": ..., "rules":
      {...}}], "identify": {...}, "group": {...}, "global": {...}}}``.

    Each rule's schema describes the whole call; the plan keeps its ``properties``
    (events) or ``traits`` (identify, group) sub-schema. ``COMMON``/``global`` rules
    (context fields) have no counterpart and are left out. Protocols keeps the
    modes in each source's settings, not in the export: ``mode`` and ``unplanned``.
    """
    events: dict[str, Rule] = {}
    identify = group = None
    body = export.get("data", export)
    rules = body.get("rules", [])
    if isinstance(rules, list):  # the Public API's shape
        entries = [(r.get("type", ""), r.get("key") or "", r.get("jsonSchema")) for r in rules]
    elif isinstance(rules, dict):  # the Config API's shape
        entries = [("TRACK", e.get("name", ""), e.get("rules")) for e in rules.get("events", [])]
        entries += [("IDENTIFY", "", rules.get("identify")), ("GROUP", "", rules.get("group"))]
    else:
        raise PlanError("not a Segment tracking plan export: no rules")
    for kind, key, schema in entries:
        if not isinstance(schema, dict):
            continue
        if kind == "TRACK" and key:
            events[key] = Rule(schema=_part(schema, "properties"))
        elif kind == "IDENTIFY":
            identify = Rule(schema=_part(schema, "traits"))
        elif kind == "GROUP":
            group = Rule(schema=_part(schema, "traits"))
    return parse_plan(
        msgspec.to_builtins(
            Plan(mode=mode, unplanned=unplanned, events=events, identify=identify, group=group)
        )
    )


def _part(schema: dict[str, Any], name: str) -> dict[str, Any] | bool:
    """The sub-schema of a call's ``properties`` or ``traits`` (draft-07 there: its
    keywords mean the same in 2020-12), with this plan's dialect."""
    part = schema.get("properties", {}).get(name, True)
    if not isinstance(part, dict):
        return True
    return {k: v for k, v in part.items() if k != "$schema"} | {"$schema": SCHEMA_DIALECT}
