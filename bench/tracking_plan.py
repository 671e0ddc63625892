"""A realistic tracking plan for measuring the cost of enforcing one (issue #22):
50 events of 10 properties each, identify traits of 10, group traits of 10.

The bench's own Segment events (``bench.workload.SEGMENT_EVENTS``) are among the 50,
described as they are sent (so the bench's writes keep the plan and are checked in
full), beside 46 other events of the kind a shop plans; the identify schema names
the traits of the bench's identify calls and of the ``single`` request. Types,
enums, bounds, patterns, required properties and an array of objects: the keywords
plans use.
"""

from __future__ import annotations

import functools
from typing import Any

from bench.workload import CATEGORIES, PLANS, SEGMENT_EVENTS
from schemas.tracking_plans import SCHEMA_DIALECT, CompiledPlan, parse_plan

PRODUCT = {
    "product_id": {"type": "string", "minLength": 1},
    "sku": {"type": "string", "pattern": "^SKU-[0-9]{5}$"},
    "category": {"enum": list(CATEGORIES)},
    "name": {"type": "string", "maxLength": 200},
    "price": {"type": "number", "minimum": 0},
    "currency": {"enum": ["EUR", "USD", "GBP"]},
    "quantity": {"type": "integer", "minimum": 1},
    "cart_id": {"type": "string"},
    "coupon": {"type": ["string", "null"]},
    "position": {"type": "integer", "minimum": 0},
}
ORDER = {
    "order_id": {"type": "string", "minLength": 1},
    "total": {"type": "number", "minimum": 0},
    "revenue": {"type": "number", "minimum": 0},
    "currency": {"enum": ["EUR", "USD", "GBP"]},
    "products": {
        "type": "array",
        "maxItems": 100,
        "items": {"type": "object", "properties": PRODUCT, "required": ["product_id"]},
    },
    "coupon": {"type": ["string", "null"]},
    "discount": {"type": "number", "minimum": 0},
    "shipping": {"type": "number", "minimum": 0},
    "tax": {"type": "number", "minimum": 0},
    "affiliation": {"type": "string"},
}
SEARCH = {
    "query": {"type": "string", "maxLength": 500},
    **{f"filter_{i}": {"type": "string"} for i in range(9)},
}
TRAITS = {
    "email": {"type": "string", "pattern": "^[^@]+@[^@]+$"},
    "name": {"type": "string", "maxLength": 200},
    "plan": {"enum": list(PLANS)},
    "pricingPlan": {"enum": list(PLANS)},
    "logins": {"type": "integer", "minimum": 0},
    "created_at": {"type": "string", "minLength": 10},
    "signupDate": {"type": "string", "minLength": 10},
    "company": {"type": "string"},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "vip": {"type": "boolean"},
}
OTHER = {
    "step": {"type": "integer", "minimum": 0},
    "label": {"type": "string", "maxLength": 100},
    "value": {"type": "number"},
    "source": {"enum": ["web", "ios", "android"]},
    "flag": {"type": "boolean"},
    "campaign": {"type": "string"},
    "variant": {"enum": ["a", "b", "c"]},
    "duration_ms": {"type": "integer", "minimum": 0},
    "count": {"type": "integer", "minimum": 0},
    "url": {"type": "string"},
}


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "$schema": SCHEMA_DIALECT,
        "type": "object",
        "properties": properties,
        "required": required,
    }


def plan_document() -> dict[str, Any]:
    own = {
        "Order Completed": _schema(ORDER, ["order_id", "total"]),
        "Products Searched": _schema(SEARCH, ["query"]),
        "Product Viewed": _schema(PRODUCT, ["product_id"]),
        "Product Added": _schema(PRODUCT, ["product_id", "quantity"]),
    }
    assert set(own) == set(SEGMENT_EVENTS)
    events = {name: {"schema": schema} for name, schema in own.items()}
    for i in range(50 - len(events)):
        events[f"Planned Event {i:02d}"] = {"schema": _schema(OTHER, ["step"])}
    return {
        "mode": "omit",
        "unplanned": "allow",
        "events": events,
        "identify": {"schema": _schema(TRAITS, [])},
        "group": {"schema": _schema(OTHER, [])},
    }


@functools.cache
def compiled(version: int = 1) -> CompiledPlan:
    """The plan, compiled as a gateway process compiles the active version (once: a
    gateway compiles a version when it becomes active, not per request)."""
    return CompiledPlan(version, parse_plan(plan_document()))
