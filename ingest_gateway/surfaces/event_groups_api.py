"""Event groups of seed 002, under ``/rest-api/customer-interface/v1.0``.

The document's two reads, as it shows them:

- ``GET /event-groups`` with ``count`` (default 100), ``offset`` (default 0),
  ``sort_field``, ``sort_direction`` (``ASC``/``DESC``), ``name`` (part of the name,
  case-insensitive) and ``text_id``: ``{"data": {"event_groups": [...], "total_items": N}}``;
- ``GET /event-groups/{event_group_id}``: ``{"data": EventGroup}``, 404 when unknown.

The document only reads groups, so this module adds a way to make them (also in
``ingest-admin``): ``POST``/``PATCH``/``DELETE`` on groups, and ``GET``/``PUT``/``DELETE``
``/event-groups/{id}/event-types/{event_type_id}`` for membership, plus
``GET``/``POST /event-types`` to find or create the event types (so that seed 003
clients can learn an ``event_type_id``). These write PostgreSQL directly: they
are team configuration, not customer traffic.

Auth: the team API key as the password of HTTP Basic (as the document shows; the
user name is ignored), or in ``X-API-KEY`` / ``?apiKey=``. Errors:
``{"error": {"code", "message", "description"?, "field"?}}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import asyncpg
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from ingest_gateway.edge.body import read_json
from ingest_gateway.read_model import event_groups as q
from ingest_gateway.surfaces import event_groups_examples as examples
from ingest_gateway.surfaces.common import (
    Page,
    SortedPage,
    found,
    json_body,
    list_responses,
    paging,
    responses,
    rest_api_error,
    row_id,
    sort_fields,
)
from ingest_gateway.web import deps
from ingest_gateway.web.errors import ApiError
from ingest_gateway.web.responses import JSON
from ingest_gateway.web.routing import Surface
from ingest_gateway.write.validation import QueryText
from schemas.json_schemas import NAME, nullable, object_of
from schemas.limits import MAX_NAME_LENGTH

PREFIX = "/rest-api/customer-interface/v1.0"

surface = Surface(PREFIX, "Event groups (seed 002)", rest_api_error)

# -- examples from the document ---------------------------------------------------


# -- helpers ---------------------------------------------------------------------


_MAX_STATE = 32767  # (a smallint)


def _group_id(event_group_id: str) -> int:
    group_id = row_id(event_group_id)
    if group_id is None:
        raise ApiError(404, f"Event group {event_group_id} was not found")
    return group_id


# What a name or description must be (the store's limit, ``schemas.limits``).
_NAME_RULE = f"must be a string of 1 to {MAX_NAME_LENGTH} characters"


def _text(payload: dict[str, Any], field: str, *, required: bool) -> str | None:
    value = payload.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH:
        raise ApiError(400, f"{field} {_NAME_RULE}", field=field)
    return value.strip()


def _state(payload: dict[str, Any], default: int | None) -> int | None:
    value = payload.get("state", default)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # (1.0 is the integer 1, to JSON Schema as to JSON)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_STATE:
        raise ApiError(400, f"state must be an integer from 0 to {_MAX_STATE}", field="state")
    return value


async def _object_body(request: Request) -> dict[str, Any]:
    payload = await read_json(request, deps.settings(request).max_json_depth)
    if not isinstance(payload, dict):
        raise ApiError(400, "Expected a JSON object")
    return payload


def _conflict(text_id: str | None) -> ApiError:
    return ApiError(409, f"An event group with text_id {text_id!r} exists", field="text_id")


# -- the document's reads --------------------------------------------------------


class GroupsQuery(SortedPage):
    sort_field: Annotated[str, sort_fields(q.GROUP_SORT_COLUMNS, "event_group_id")] | None = None
    name: Annotated[QueryText, Meta(description="Name or part of the name", examples=["Cart"])] = (
        None
    )
    text_id: Annotated[QueryText, Meta(description="Text id", examples=["shopping_cart"])] = None


class TypesQuery(Page):
    name: Annotated[QueryText, Meta(description="Name or part of the name")] = None


@surface.get(
    "/event-groups",
    summary="List of all event groups",
    query=GroupsQuery,
    responses=list_responses(
        "Event groups",
        examples.LIST,
        examples.BAD_SORT,
        ("4XX", "Missing or wrong credentials", examples.UNAUTHORISED),
    ),
)
async def list_event_groups(team_id: int, request: Request, query: GroupsQuery) -> Response:
    page = paging(query, q.GROUP_SORT_COLUMNS, "event_group_id")
    total, rows = await q.list_groups(
        deps.db(request), team_id, page, name=query.name, text_id=query.text_id
    )
    groups = [q.group_view(r) for r in rows]
    return JSON({"data": {"event_groups": groups, "total_items": total}})


@surface.get(
    "/event-groups/{event_group_id}",
    summary="Detail of a specific event group",
    responses=responses(
        (200, "Event group", {"data": examples.GROUP}),
        ("4XX", "Unknown event group", examples.NOT_FOUND),
    ),
)
async def get_event_group(event_group_id: str, team_id: int, request: Request) -> Response:
    row = found(
        await q.get_group(deps.db(request), team_id, _group_id(event_group_id)),
        f"Event group {event_group_id}",
    )
    return JSON({"data": q.group_view(row)})


# -- configuration: groups -------------------------------------------------------

_STATE = {
    "type": ["integer", "null"],
    "minimum": 0,
    "maximum": _MAX_STATE,
    "description": "1 by default; null: the default (on PATCH: unchanged)",
}
_NAME_TEXT = NAME | {"description": "the name, as shown; surrounding whitespace is trimmed"}
_TEXT_ID = NAME | {"description": "the group's text id (unique in the team), trimmed"}
_NEW_GROUP = {"name": "Shopping Cart", "text_id": "shopping_cart", "state": 1}


@surface.post(
    "/event-groups",
    summary="Create an event group (not in the document)",
    status_code=201,
    openapi_extra=json_body(
        {"new group": _NEW_GROUP},
        schema=object_of(
            {"name": _NAME_TEXT, "text_id": _TEXT_ID, "state": _STATE}, "name", "text_id"
        ),
    ),
    responses=responses(
        (201, "Created", {"data": {**examples.GROUP, "event_group_id": "1"}}),
        (
            "4XX",
            "Text id taken",
            {
                "error": {
                    "code": 409,
                    "message": "An event group with text_id 'shopping_cart' exists",
                    "field": "text_id",
                }
            },
        ),
    ),
)
async def create_event_group(team_id: int, request: Request) -> Response:
    payload = await _object_body(request)
    name = _text(payload, "name", required=True)
    text_id = _text(payload, "text_id", required=True)
    state = _state(payload, 1)
    if state is None:  # "state": null asks for the default, as leaving it out does
        state = 1
    assert name is not None and text_id is not None
    try:
        row = await q.create_group(deps.db(request), team_id, name, text_id, state)
    except asyncpg.UniqueViolationError as exc:
        raise _conflict(text_id) from exc
    return JSON({"data": q.group_view(row)}, status_code=201)


@surface.patch(
    "/event-groups/{event_group_id}",
    summary="Change an event group's name, text id or state (not in the document)",
    openapi_extra=json_body(
        {"rename": {"name": "Cart"}, "disable": {"state": 0}},
        schema=object_of(
            {"name": nullable(_NAME_TEXT), "text_id": nullable(_TEXT_ID), "state": _STATE}
        ),
    ),
    responses=responses(
        (200, "Changed", {"data": examples.GROUP}), ("4XX", "Unknown", examples.NOT_FOUND)
    ),
)
async def update_event_group(event_group_id: str, team_id: int, request: Request) -> Response:
    group_id = _group_id(event_group_id)
    payload = await _object_body(request)
    text_id = _text(payload, "text_id", required=False)
    changes = {
        "name": _text(payload, "name", required=False),
        "text_id": text_id,
        "state": _state(payload, None),
    }
    try:
        row = await q.update_group(deps.db(request), team_id, group_id, changes)
    except asyncpg.UniqueViolationError as exc:
        raise _conflict(text_id) from exc
    if row is None:
        raise ApiError(404, f"Event group {event_group_id} was not found")
    return JSON({"data": q.group_view(row)})


@surface.delete(
    "/event-groups/{event_group_id}",
    summary="Delete an event group (not in the document)",
    status_code=204,
    responses=responses(("4XX", "Unknown", examples.NOT_FOUND)),
)
async def delete_event_group(event_group_id: str, team_id: int, request: Request) -> Response:
    if not await q.delete_group(deps.db(request), team_id, _group_id(event_group_id)):
        raise ApiError(404, f"Event group {event_group_id} was not found")
    return Response(status_code=204)


# -- configuration: membership ---------------------------------------------------


@surface.get(
    "/event-groups/{event_group_id}/event-types",
    summary="Event types in a group (not in the document)",
    responses=responses((200, "Members", examples.TYPES), ("4XX", "Unknown", examples.NOT_FOUND)),
)
async def get_group_event_types(event_group_id: str, team_id: int, request: Request) -> Response:
    db = deps.db(request)
    group_id = _group_id(event_group_id)
    if await q.get_group(db, team_id, group_id) is None:
        raise ApiError(404, f"Event group {event_group_id} was not found")
    types = [dict(r) for r in await q.group_event_types(db, team_id, group_id)]
    return JSON({"data": {"event_types": types, "total_items": len(types)}})


async def _member_ids(
    request: Request, team_id: int, event_group_id: str, event_type_id: str
) -> tuple[int, int]:
    db = deps.db(request)
    group_id = _group_id(event_group_id)
    if await q.get_group(db, team_id, group_id) is None:
        raise ApiError(404, f"Event group {event_group_id} was not found")
    type_id = row_id(event_type_id)
    if type_id is None or await q.event_type(db, team_id, type_id) is None:
        raise ApiError(404, f"Event type {event_type_id} was not found", field="event_type_id")
    return group_id, type_id


def _membership_route(
    method: str, name: str, summary: str, change: Callable[..., Awaitable[object]]
) -> None:
    """Put an event type in a group, or take it out: one route shape, two changes."""

    async def endpoint(
        event_group_id: str, event_type_id: str, team_id: int, request: Request
    ) -> Response:
        group_id, type_id = await _member_ids(request, team_id, event_group_id, event_type_id)
        await change(deps.db(request), team_id, group_id, [type_id])
        return Response(status_code=204)

    endpoint.__name__ = name
    surface.route(
        method,
        "/event-groups/{event_group_id}/event-types/{event_type_id}",
        summary=summary,
        status_code=204,
        responses=responses(("4XX", "Unknown group or event type", examples.NOT_FOUND)),
    )(endpoint)


_membership_route(
    "PUT",
    "add_group_event_type",
    "Put an event type in a group (not in the document)",
    q.add_members,
)
_membership_route(
    "DELETE",
    "remove_group_event_type",
    "Take an event type out of a group (not in the document)",
    q.remove_members,
)


# -- configuration: event types --------------------------------------------------


@surface.get(
    "/event-types",
    query=TypesQuery,
    summary="Event types of the team (not in the document)",
    responses=responses(
        (200, "Event types", examples.TYPES),
        (
            "4XX",
            "Invalid parameter",
            {"error": {"code": 400, "message": "Invalid parameter count"}},
        ),
    ),
)
async def list_event_types(team_id: int, request: Request, query: TypesQuery) -> Response:
    name, offset, count = query.name, query.offset, query.count
    total, rows = await q.list_event_types(
        deps.db(request), team_id, name=name, offset=offset, count=count
    )
    return JSON({"data": {"event_types": [dict(r) for r in rows], "total_items": total}})


@surface.post(
    "/event-types",
    summary="Create an event type, or find it by name (not in the document)",
    status_code=201,
    openapi_extra=json_body(
        {"new type": {"name": "cart.updated"}},
        schema=object_of({"name": _NAME_TEXT}, "name"),
    ),
    responses=responses(
        (201, "Created or found", {"data": {"event_type_id": "7", "name": "cart.updated"}}),
        (
            "4XX",
            "Invalid name",
            {"error": {"code": 400, "message": f"name {_NAME_RULE}"}},
        ),
    ),
)
async def create_event_type(team_id: int, request: Request) -> Response:
    payload = await _object_body(request)
    name = _text(payload, "name", required=True)
    assert name is not None
    ids = await q.ensure_event_types(deps.db(request), team_id, [name])
    return JSON({"data": {"event_type_id": str(ids[name]), "name": name}}, status_code=201)
