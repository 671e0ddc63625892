"""The OpenAPI description of the gateway, made from the route table itself.

Every documented ``Route`` becomes an operation: its path parameters, its typed
query parameters (the JSON Schema of the route's ``query`` struct, with their
ranges), the request body and responses its surface declares with the documents'
examples, and a 503 with ``Retry-After`` (Kafka or PostgreSQL away), which any
operation may answer, and a 429 with ``Retry-After`` (beyond the team's quota), which
any write may. Served as ``/openapi.json``, and as Swagger UI at ``/docs``.

The schemas the surfaces share (JSON as stored, names, times, identifiers) are
``schemas.json_schemas``' components, carried under ``components/schemas``.

Imports: the route table, the JSON answer and ``schemas.json_schemas`` (and FastAPI's
Swagger UI page) only.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ingest_gateway.web.responses import JSON
from ingest_gateway.web.routing import Route, Surface
from schemas import json_schemas

TITLE = "Customer-event ingestion gateway"
DESCRIPTION = (
    "Accepts customer and event writes, publishes them to Kafka and answers once the "
    "broker acknowledged them; reads come from the PostgreSQL store."
)
_UNAVAILABLE = {
    "description": "Kafka or PostgreSQL unavailable: nothing was accepted; retry after the"
    " Retry-After header's seconds",
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
}
_QUOTA = {
    "description": "Beyond the team's quota (events per second): nothing was accepted;"
    " retry after the Retry-After header's seconds. RateLimit-Policy and RateLimit say"
    " the quota and what is left (IETF draft-ietf-httpapi-ratelimit-headers).",
    "headers": {
        "Retry-After": {"schema": {"type": "integer"}},
        "RateLimit-Policy": {"schema": {"type": "string"}},
        "RateLimit": {"schema": {"type": "string"}},
    },
}
# The ways an authenticated route takes the team's API key.
_API_KEY_SCHEMES = {
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-KEY"},
    "apiKeyQuery": {"type": "apiKey", "in": "query", "name": "apiKey"},
    "basic": {"type": "http", "scheme": "basic", "description": "the API key as the password"},
}
# Schemes a surface that checks keys itself names in its operations' ``security``
# (``openapi_extra``): the Segment-spec surface's write key.
_SECURITY_SCHEMES = _API_KEY_SCHEMES | {
    "writeKey": {
        "type": "http",
        "scheme": "basic",
        "description": "the write key (the team's API key) as the username, an empty"
        " password; or writeKey in the JSON body",
    },
}


def _query_parameters(shape: type[msgspec.Struct]) -> list[dict[str, Any]]:
    (schema,), components = msgspec.json.schema_components([shape])
    properties = components[schema["$ref"].rsplit("/", 1)[1]]
    required = set(properties.get("required", ()))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": spec.pop("description", ""),
            "schema": spec,
        }
        for name, spec in properties["properties"].items()
    ]


def _operation(route: Route) -> dict[str, Any]:
    extra = dict(route.openapi_extra)
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": route.path_schemas.get(name, {"type": "string"}),
        }
        for name in route.path_parameters
    ]
    if route.query is not None:
        parameters += _query_parameters(route.query)
    parameters += extra.pop("parameters", [])
    responses: dict[str, Any] = {str(status): answer for status, answer in route.responses.items()}
    responses.setdefault(str(route.status_code), {"description": "OK"})
    responses.setdefault("503", _UNAVAILABLE)
    if route.method != "GET":  # a write: counted against its team's quota
        responses.setdefault("429", _QUOTA)
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.endpoint.__name__,
        "responses": responses,
        **extra,
    }
    if route.tag:
        operation["tags"] = [route.tag]
    if parameters:
        operation["parameters"] = parameters
    if route.authenticated:
        operation["security"] = [{name: []} for name in _API_KEY_SCHEMES]
    return operation


def _hoist_definitions(node: Any, components: dict[str, Any]) -> Any:
    """JSON Schema ``$defs`` (msgspec's schemas have them) moved into the document's
    components, their references rewritten: in OpenAPI a ``#/...`` reference is
    resolved from the document's root, not from the schema it sits in."""
    if isinstance(node, dict):
        for name, definition in node.pop("$defs", {}).items():
            components[name] = _hoist_definitions(definition, components)
        return {
            key: (
                value.replace("#/$defs/", "#/components/schemas/")
                if key == "$ref" and isinstance(value, str)
                else _hoist_definitions(value, components)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hoist_definitions(item, components) for item in node]
    return node


def describe(routes: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = dict(json_schemas.components())
    for route in routes:
        if route.documented:
            operation = _hoist_definitions(_operation(route), schemas)
            paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": "0.1.0", "description": DESCRIPTION},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": _SECURITY_SCHEMES},
    }


def surface(routes: list[Route]) -> Surface:
    """``/openapi.json`` and ``/docs`` for ``routes`` (the whole table, filled in later)."""
    docs = Surface("", None, None)
    described: list[dict[str, Any]] = []

    @docs.get("/openapi.json", authenticated=False, include_in_schema=False)
    async def openapi_json(request: Request) -> Response:
        if not described:
            described.append(describe(routes))
        return JSON(described[0])

    @docs.get("/docs", authenticated=False, include_in_schema=False)
    async def swagger_ui(request: Request) -> Response:
        page: HTMLResponse = get_swagger_ui_html(openapi_url="/openapi.json", title=TITLE)
        return page

    return docs
