"""The customer API of the Postman collection (seed ``000``), under ``/api/1.0``.

Customers by email (read, create or update, delete), customers in bulk (paginated
list, batch upsert, batch delete) and events by name per customer.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta
from starlette.requests import Request
from starlette.responses import Response

from ingest_gateway.edge.body import MAX_FORM_FIELDS, read_json, read_key_values
from ingest_gateway.read_model.customers import (
    count_customers,
    customer_by_identifier,
    customers_by_email,
    existing_identifiers,
    flat_customer,
    list_customers,
)
from ingest_gateway.surfaces.common import WRITE_PARAMETERS, responses, write_body
from ingest_gateway.web import deps, hosts
from ingest_gateway.web.errors import ApiError
from ingest_gateway.web.responses import JSON
from ingest_gateway.web.routing import Surface
from ingest_gateway.write.accept import accept
from ingest_gateway.write.build import identifiers_or_400, new_write, received
from ingest_gateway.write.validation import MAX_OFFSET
from schemas.identity import InvalidIdentifier, normalise_email
from schemas.json_schemas import EMAIL, JSON_VALUE, NO_NUL, PATH_EMAIL, not_blank, object_of
from schemas.limits import MAX_NAME_LENGTH
from schemas.messages import EventData, Identifiers

PREFIX = "/api/1.0"
API = "customers_api"


def _error(status: int, message: str, description: str | None, field: str | None) -> Any:
    return {"error": message}


surface = Surface(PREFIX, "Customer API (api/1.0)", _error)

# Names that address the customer rather than describe it.
_IDENTITY_KEYS = {"email"}


# -- examples from the Postman collection (OpenAPI) -------------------------------

_GEORGE = {
    "name": "George",
    "email": "george.olah@selgora.com",
    "signupDate": "1924-06-19 00:00:00",
    "pricingPlan": "gold",
    "lastloginDate": "2019-06-24 00:00:00",
}
_NOT_FOUND = {"error": "Customer with email george.olah@selgora.com was not found."}
_FORM = {
    "signupDate": "2019-07-07 12:22:22",
    "projects": "4",
    "tasks": "15",
    "hasFinishedOnboarding": "0",
    "name": "George",
}
# A form's fields are text; a JSON body's, any JSON. Either way "email" is ignored
# (the path names the customer) and the rest become attributes.
_FORM_FIELDS = {
    "type": "object",
    "description": "the customer's attributes, as text",
    "maxProperties": MAX_FORM_FIELDS,
    "propertyNames": {"pattern": NO_NUL},
    "additionalProperties": {"type": "string", "pattern": NO_NUL},
}
_FORM_BODY = {
    "required": False,
    "content": {
        "multipart/form-data": {"schema": _FORM_FIELDS, "example": _FORM},
        "application/x-www-form-urlencoded": {"schema": _FORM_FIELDS, "example": _FORM},
        "application/json": {
            "schema": object_of({}, description="the customer's attributes"),
            "example": _FORM,
        },
    },
}
# The path's email, the customer's (schemas.identity); on a read, one that is no
# address names nobody: 404. A path segment holds no "/".
_EMAIL_PATH = {"email": PATH_EMAIL}
_BATCH = [
    {
        "email": "george.olah@selgora.com",
        "signupDate": "2019-07-19 12:22:00",
        "projects": "3",
        "tasks": "15",
        "hasFinishedOnboarding": "0",
        "name": "George",
    },
    {
        "email": "mycustomer@gmail.com",
        "signupDate": "2019-05-17 14:22:00",
        "campaigns": "2",
        "emailsSent": "1504",
        "hasFinishedOnboarding": "0",
        "name": "George",
        "secondary_email": "personal@yahoo.com",
    },
]
_LIST = {
    "metadata": {
        "numberOfResults": 112,
        "startingFrom": "15",
        "itemsPerPage": "5",
        "nextPageUrl": "http://localhost/api/1.0/customers?startingFrom=20&itemsPerPage=5",
    },
    "results": [
        {
            "name": "Mr. Buck Torp",
            "email": "lemke.gilberto@hotmail.com",
            "lastloginDate": "2019-05-06 23:11:42",
            "pricingPlan": "gold",
        }
    ],
}
_EVENT_BODY = {
    "key": "Here can be any json that makes sense for you such",
    "key2": [{"key3": "can have arrays and multilevel elements in it"}],
    "hello": "Enjoy life!",
}
_UNAUTHORISED = {"error": "Missing API key"}


def _not_found(email: str) -> ApiError:
    return ApiError(404, f"Customer with email {email} was not found.")


@surface.get(
    "/customer/{email}",
    summary="Get customer data",
    path_schemas=_EMAIL_PATH,
    responses=responses(
        (200, "Get a customer data", _GEORGE),
        ("4XX", "404 Customer was not found", _NOT_FOUND),
        ("4XX", "Missing API key", _UNAUTHORISED),
    ),
)
async def get_customer(email: str, team_id: int, request: Request) -> Response:
    try:
        normalised = normalise_email(email)
    except InvalidIdentifier as exc:
        raise _not_found(email) from exc
    row = await customer_by_identifier(deps.db(request), team_id, "email", normalised)
    if row is None:
        raise _not_found(email)
    return JSON(flat_customer(row["attributes"], normalised))


@surface.post(
    "/customer/{email}",
    summary="Create or update customer",
    path_schemas=_EMAIL_PATH,
    openapi_extra={"requestBody": _FORM_BODY, "parameters": WRITE_PARAMETERS},
    responses=responses(
        (200, "Create Customer", {"email": "name@yourcompany.com", **_FORM}),
        (
            202,
            "Accepted; the wait for the consumers ran out",
            {"id": "0190...", "status": "accepted"},
        ),
        ("4XX", "Invalid email", {"error": "Invalid email"}),
    ),
)
async def upsert_customer(email: str, team_id: int, request: Request) -> Response:
    identifiers = identifiers_or_400(Identifiers(email=email))
    attributes = await read_key_values(request, deps.settings(request).max_json_depth)
    attributes = {k: v for k, v in attributes.items() if k not in _IDENTITY_KEYS}
    message = new_write(
        received(request, API), team_id, "upsert_customer", identifiers, attributes=attributes
    )
    accepted = await accept(request, [message])
    answer: dict[str, Any] = {"email": identifiers.email, **attributes}
    if accepted.timed_out:
        answer = {"id": message.id, "status": "accepted"}
    elif accepted.waited:  # the customer as stored, once the consumers applied the write
        db = deps.db(request)
        row = await customer_by_identifier(db, team_id, "email", identifiers.email or "")
        if row is not None:
            answer = flat_customer(row["attributes"], identifiers.email)
    return accepted.respond(answer)


@surface.delete(
    "/customer/{email}",
    summary="Delete a customer",
    path_schemas=_EMAIL_PATH,
    openapi_extra={"parameters": WRITE_PARAMETERS},
    responses=responses(
        (200, "Delete a customer", {"success": True}),
        ("4XX", "Invalid email", {"error": "Invalid email"}),
    ),
)
async def delete_customer(email: str, team_id: int, request: Request) -> Response:
    identifiers = identifiers_or_400(Identifiers(email=email))
    message = new_write(received(request, API), team_id, "delete_customer", identifiers)
    accepted = await accept(request, [message])
    return JSON({"success": True}, headers=accepted.headers)


class CustomersPage(msgspec.Struct):
    starting_from: Annotated[int, Meta(ge=0, le=MAX_OFFSET, examples=[15])] = msgspec.field(
        default=0, name="startingFrom"
    )
    items_per_page: Annotated[int, Meta(ge=1, le=1000, description="Default 50", examples=[5])] = (
        msgspec.field(default=50, name="itemsPerPage")
    )


@surface.get(
    "/customers",
    summary="Get a list of customers",
    query=CustomersPage,
    responses=responses(
        (200, "Get a list of customers", _LIST),
        ("4XX", "Invalid parameter", {"error": "Invalid parameter itemsPerPage: ..."}),
        (
            421,
            "The Host is not one the gateway answers for (PUBLIC_BASE_URL, TRUSTED_HOSTS)",
            {"error": hosts.UNTRUSTED},
        ),
    ),
)
async def get_customers(team_id: int, request: Request, query: CustomersPage) -> Response:
    starting_from, items_per_page = query.starting_from, query.items_per_page
    # nextPageUrl names the gateway as hosts.public_base does: never by an untrusted Host
    # (a cache in front would serve it to everyone). Checked on every page, so that
    # whether a Host is refused does not depend on how many customers there are.
    host, scheme = hosts.public_base(request)
    db = deps.db(request)
    total = await count_customers(db, team_id)
    rows = await list_customers(db, team_id, starting_from, items_per_page)
    next_from = starting_from + items_per_page
    next_url = None
    if next_from < total:
        next_url = (
            f"{scheme}://{host}{PREFIX}/customers"
            f"?startingFrom={next_from}&itemsPerPage={items_per_page}"
        )
    # Without PUBLIC_BASE_URL, nextPageUrl is the request's (trusted) Host.
    headers = None if deps.settings(request).public_base_url else {"Vary": "Host"}
    return JSON(
        {
            "metadata": {
                "numberOfResults": total,
                "startingFrom": str(starting_from),
                "itemsPerPage": str(items_per_page),
                "nextPageUrl": next_url,
            },
            "results": [flat_customer(r["attributes"], r["email"]) for r in rows],
        },
        headers=headers,
    )


@surface.post(
    "/customers",
    summary="Batch create/update customers",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "description": "customers, each an object with its email and"
                        " attributes; an entry without a usable email (an object with an Email)"
                        " is left out of the answer, not refused. At most MAX_BATCH_ITEMS"
                        " (a setting, 5,000 by default) entries: 413 beyond.",
                        "items": {
                            "anyOf": [object_of({"email": EMAIL}, "email"), JSON_VALUE],
                        },
                    },
                    "example": _BATCH,
                }
            },
        },
        "parameters": WRITE_PARAMETERS,
    },
    responses=responses(
        (200, "Batch Create/Update Customers", [{**_BATCH[0], "pricingPlan": "gold"}, _BATCH[1]]),
        (
            202,
            "Accepted; the wait for the consumers ran out",
            [{"id": "0190...", "status": "accepted"}],
        ),
        ("4XX", "Not an array", {"error": "Expected a JSON array of customers"}),
    ),
)
async def upsert_customers(team_id: int, request: Request) -> Response:
    settings = deps.settings(request)
    entries = await read_json(request, settings.max_json_depth)
    if not isinstance(entries, list):
        raise ApiError(400, "Expected a JSON array of customers")
    if len(entries) > settings.max_batch_items:
        raise ApiError(413, f"At most {settings.max_batch_items} customers per request")
    messages, saved = [], []
    for entry in entries:
        # Entries without a usable email are left out of the answer, as documented.
        if not isinstance(entry, dict) or not isinstance(entry.get("email"), str):
            continue
        try:
            identifiers = identifiers_or_400(Identifiers(email=entry["email"]))
        except ApiError:
            continue
        attributes = {k: v for k, v in entry.items() if k not in _IDENTITY_KEYS}
        messages.append(
            new_write(
                received(request, API),
                team_id,
                "upsert_customer",
                identifiers,
                attributes=attributes,
            )
        )
        saved.append({"email": identifiers.email, **attributes})
    # The answer lists "the saved customers with their attributes": the stored ones
    # under the ones sent. Read before publishing, so that a failed read never turns
    # an accepted write into an error.
    db = deps.db(request)
    emails = [m.identifiers.email or "" for m in messages]
    before = await customers_by_email(db, team_id, emails) if messages else {}
    accepted = await accept(request, messages)
    if accepted.timed_out:
        return accepted.respond([{"id": m.id, "status": "accepted"} for m in messages])
    if accepted.waited:
        after = await customers_by_email(db, team_id, emails)
        saved = [after.get(e, entry) for e, entry in zip(emails, saved, strict=True)]
    else:
        saved = [before.get(e, {}) | entry for e, entry in zip(emails, saved, strict=True)]
    return accepted.respond(saved)


@surface.delete(
    "/customers",
    summary="Batch delete customers",
    openapi_extra=write_body(
        {"Batch Delete Customers": {"emails": [_BATCH[0]["email"], "hello@selgora.com"]}},
        schema=object_of(
            {
                "emails": {
                    "type": "array",
                    "description": "email addresses; one that names no customer of the team,"
                    " or is no address, is answered in couldNotDelete",
                    "items": JSON_VALUE,
                }
            },
            "emails",
        ),
    ),
    responses=responses(
        (
            200,
            "Batch Delete Customers",
            {
                "deletedCustomers": [],
                "couldNotDelete": ["george.olah@selgora.com", "hello@selgora.com"],
            },
        ),
        ("4XX", "Bad body", {"error": 'Expected {"emails": [...]}'}),
    ),
)
async def delete_customers(team_id: int, request: Request) -> Response:
    settings = deps.settings(request)
    # The collection sends this JSON body with a form content type: read it as JSON.
    payload = await read_json(request, settings.max_json_depth)
    emails = payload.get("emails") if isinstance(payload, dict) else None
    if not isinstance(emails, list):
        raise ApiError(400, 'Expected {"emails": [...]}')
    normalised: dict[str, str] = {}
    could_not: list[Any] = []
    for email in emails:
        try:
            normalised[normalise_email(email)] = email
        except (InvalidIdentifier, AttributeError, TypeError):
            could_not.append(email)
    known = await existing_identifiers(deps.db(request), team_id, "email", list(normalised))
    messages = [
        new_write(received(request, API), team_id, "delete_customer", Identifiers(email=e))
        for e in normalised
        if e in known
    ]
    could_not.extend(original for e, original in normalised.items() if e not in known)
    accepted = await accept(request, messages)
    return JSON(
        {
            "deletedCustomers": [normalised[m.identifiers.email or ""] for m in messages],
            "couldNotDelete": could_not,
        },
        headers=accepted.headers,
    )


@surface.post(
    "/events/{event_name}/{customer_email}/{external_id}",
    summary="Create event",
    path_schemas={
        "event_name": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_NAME_LENGTH,
            "pattern": not_blank("/"),
            "description": f"1 to {MAX_NAME_LENGTH} characters, not all whitespace (in a"
            " path: no /)",
        },
        "customer_email": PATH_EMAIL,
        "external_id": {"type": "string", "minLength": 1, "pattern": "^[^\\x00/]*$"},
    },
    openapi_extra=write_body(
        {"Create event": _EVENT_BODY},
        required=False,
        schema=JSON_VALUE | {"description": "the event's body: any JSON (none: {})"},
    ),
    responses=responses(
        (
            200,
            "Create event",
            {
                "id": "0190...",
                "eventName": "task.created",
                "externalId": "3321",
                "body": _EVENT_BODY,
            },
        ),
        (
            202,
            "Accepted; the wait for the consumers ran out",
            {"id": "0190...", "eventName": "task.created", "externalId": "3321"},
        ),
        ("4XX", "Invalid email", {"error": "Invalid email"}),
    ),
)
async def create_event(
    event_name: str, customer_email: str, external_id: str, team_id: int, request: Request
) -> Response:
    identifiers = identifiers_or_400(Identifiers(email=customer_email))
    raw = await request.body()
    body = await read_json(request, deps.settings(request).max_json_depth) if raw.strip() else {}
    if not event_name.strip() or len(event_name) > MAX_NAME_LENGTH:
        raise ApiError(400, f"The event name must be 1 to {MAX_NAME_LENGTH} characters")
    event = EventData(name=event_name, body=body, external_id=external_id)
    message = new_write(received(request, API), team_id, "track_event", identifiers, event=event)
    accepted = await accept(request, [message])
    answer = {"id": message.id, "eventName": event_name, "externalId": external_id, "body": body}
    if accepted.timed_out:
        return accepted.respond(answer)
    return accepted.respond(answer)
