"""Helpers shared by the surfaces: OpenAPI declarations, paging, sorting, ids.

Surfaces read their bodies themselves (``ingest_gateway.edge.body``), so their OpenAPI
request bodies are declared: ``json_body`` gives the JSON Schema and the document's
examples, through ``openapi_extra``; ``responses`` declares answers with examples.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

from ingest_gateway.read_model.paging import Paging
from ingest_gateway.web.errors import ApiError
from ingest_gateway.write.validation import MAX_OFFSET
from schemas.json_schemas import JSON_OBJECT
from schemas.limits import bigint_id

MAX_COUNT = 1000
T = TypeVar("T")


class Page(msgspec.Struct):
    """``count`` and ``offset`` query parameters of the /rest-api lists."""

    count: Annotated[
        int, Meta(ge=0, le=MAX_COUNT, description="Records to return (default 100)")
    ] = 100
    offset: Annotated[int, Meta(ge=0, le=MAX_OFFSET, description="Records to skip (default 0)")] = 0


# ``sort_order`` reads the direction without case; empty is the default, ASC.
_DIRECTION = "^(?:[Aa][Ss][Cc]|[Dd][Ee][Ss][Cc])?$"


class SortedPage(Page):
    """A ``Page`` with ``sort_field`` and ``sort_direction`` (``sort_order`` checks them;
    a surface's subclass names its fields with ``sort_fields``)."""

    sort_field: str | None = None
    sort_direction: (
        Annotated[
            str,
            Meta(
                description="ASC or DESC, in any case (empty: ASC)",
                examples=["ASC"],
                extra_json_schema={"pattern": _DIRECTION},
            ),
        ]
        | None
    ) = None


def sort_fields(columns: dict[str, str], default: str) -> Meta:
    """The OpenAPI of a list's ``sort_field``: one of ``columns`` (empty: ``default``)."""
    return Meta(
        description=f"One of {', '.join(columns)} (empty or absent: {default})",
        extra_json_schema={"enum": ["", *columns]},
    )


def json_body(
    examples: dict[str, Any], *, required: bool = True, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``openapi_extra`` for a JSON request body: its JSON Schema (a free object when
    the document shows none) and ``examples``, a name to a value."""
    return {
        "requestBody": {
            "required": required,
            "content": {
                "application/json": {
                    "schema": schema or JSON_OBJECT,
                    "examples": {name: {"value": value} for name, value in examples.items()},
                }
            },
        }
    }


# On every write: the optional wait for the consumers (``ingest_gateway.write.accept``)
# and the dry run against the tracking plan (``ingest_gateway.write.tracking``).
WRITE_PARAMETERS = [
    {
        "name": "Prefer",
        "in": "header",
        "required": False,
        "description": "return=representation: answer after the consumers applied the write,"
        " with the stored representation (202 with the message id if the bounded wait runs out)",
        "schema": {"type": "string"},
        "example": "return=representation",
    },
    {
        "name": "wait",
        "in": "query",
        "required": False,
        "description": "true: the same as Prefer: return=representation; false (the"
        " default): answer once Kafka acknowledged. Anything but a boolean is 400.",
        "schema": {"type": "boolean"},
    },
    {
        "name": "validate",
        "in": "query",
        "required": False,
        "description": "true: a dry run against the team's tracking plan. Nothing is"
        " published; the answer is 200 with each message's verdict and violations"
        " ({dryRun, planVersion, valid, messages}: docs/tracking-plans.md), not the"
        " write's. Anything but a boolean is 400.",
        "schema": {"type": "boolean"},
    },
]


def write_body(
    examples: dict[str, Any], *, required: bool = True, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``json_body`` for a write through Kafka: also declares the optional wait and dry
    run."""
    return json_body(examples, required=required, schema=schema) | {"parameters": WRITE_PARAMETERS}


def responses(*answers: tuple[int | str, str, Any]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses from (status, summary, example body) triples; a status may repeat."""
    out: dict[int | str, dict[str, Any]] = {}
    for status, summary, example in answers:
        entry = out.setdefault(
            status,
            {"description": summary, "content": {"application/json": {"examples": {}}}},
        )
        examples = entry["content"]["application/json"]["examples"]
        examples[summary if summary not in examples else f"{summary} ({len(examples)})"] = {
            "value": example
        }
    return out


def list_responses(
    what: str, listing: Any, invalid: Any, *more: tuple[int | str, str, Any]
) -> dict[int | str, dict[str, Any]]:
    """``responses`` of a paged list: the page, and the 400 of a bad parameter."""
    return responses((200, what, listing), ("4XX", "Invalid parameter", invalid), *more)


def found(row: T | None, what: str) -> T:
    """``row``, or ``ApiError(404, "<what> was not found")`` when there is none."""
    if row is None:
        raise ApiError(404, f"{what} was not found")
    return row


def row_id(value: str | int | None) -> int | None:
    """A stored bigint id from its decimal-string form; None when it cannot be one."""
    if isinstance(value, bool) or value is None:
        return None
    return bigint_id(str(value))


def sort_order(
    sort_field: str | None, sort_direction: str | None, columns: dict[str, str], default: str
) -> tuple[str, bool]:
    """(SQL column, descending) from the documents' ``sort_field``/``sort_direction``.

    ``columns`` maps the public field names to SQL expressions: only those are
    ever put into SQL text.
    """
    field = sort_field or default
    column = columns.get(field)
    if column is None:
        allowed = ", ".join(sorted(columns))
        raise ApiError(400, f"Invalid sort_field {field!r}; one of: {allowed}", field="sort_field")
    direction = (sort_direction or "ASC").upper()
    if direction not in {"ASC", "DESC"}:
        raise ApiError(400, "Invalid sort_direction; one of: ASC, DESC", field="sort_direction")
    return column, direction == "DESC"


def paging(query: SortedPage, columns: dict[str, str], default: str) -> Paging:
    """The page a sorted list asks for (``sort_order`` checks its sort)."""
    column, descending = sort_order(query.sort_field, query.sort_direction, columns, default)
    return Paging(column, descending, query.offset, query.count)


def rest_api_error(status: int, message: str, description: str | None, field: str | None) -> Any:
    """Error envelope of the ``/rest-api/...`` documents (002, 003), which show none.

    ``{"error": {"code": 404, "message": "...", "description"?: "...", "field"?: "..."}}``,
    beside their ``{"data": ...}`` success envelope.
    """
    error: dict[str, Any] = {"code": status, "message": message}
    if description:
        error["description"] = description
    if field:
        error["field"] = field
    return {"error": error}
