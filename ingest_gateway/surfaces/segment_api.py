"""The Segment spec (HTTP tracking API) under ``/v1``: what Segment's SDKs send.

**Routes.** ``POST /v1/identify``, ``/v1/track``, ``/v1/page``, ``/v1/screen``,
``/v1/group``, ``/v1/alias`` (one call, its type given by the path; analytics.js
posts them to ``/v1/i``, ``/t``, ``/p``, ``/s``, ``/g``, ``/a``, served too) and
``POST /v1/batch`` (also ``/v1/import`` and analytics.js's ``/v1/b``):
``{"batch": [msg, ...], "sentAt"?, "context"?, "integrations"?, "writeKey"?}``,
each message with its ``type``; the batch's ``sentAt`` and ``context`` stand for
those a message lacks. ``GET /v1/projects/{writeKey}/settings`` is what
analytics.js fetches from its CDN: the least settings that point it at this
gateway (``apiHost``: ``PUBLIC_BASE_URL``, else the request's Host if trusted,
plus ``/v1``; an untrusted Host is 421, ``ingest_gateway.web.hosts``).

**Auth.** The write key is a team API key: the username of HTTP Basic with an empty
password (``Authorization: Basic base64("<key>:")``), or ``writeKey`` in the body
(browser beacons). None or an unknown one: 401.

**Bodies.** JSON whatever the Content-Type (analytics.js sends ``text/plain`` to
avoid a CORS preflight). ``Content-Encoding: gzip`` is decompressed as it streams
in, up to ``MAX_BODY_BYTES`` decompressed (beyond: 413; a broken stream: 400);
another encoding is 415 (``ingest_gateway.edge.content_encoding``, for every surface).

**Limits.** ``MAX_SEGMENT_MESSAGE_BYTES`` (64 KiB) of JSON per message, counting a
batch's context it inherits; ``MAX_SEGMENT_BATCH_MESSAGES`` (2,500) per batch; the body
``MAX_BODY_BYTES`` (5 MB by default) after decompression: beyond each, 413.
(Segment's are 32 KB and 500 KB.) Every message keeps the rules of
``ingest_gateway.write.validation``: 64-bit integers, no NUL, Unicode text, nesting
at most ``MAX_JSON_DEPTH``, times within years 1 to 9999.

**Answers.** ``200 {"success": true}`` once Kafka acknowledged every message of
the call. The whole call is checked before anything is published: one bad message
and it is ``400 {"success": false, "message": "batch[3].userId: ...", "code":
"invalid_request"}`` (the message's index and field; ``code`` as Segment names it,
read by rudder-sdk-python), nothing accepted. 413 too large, 503 with
``Retry-After`` when the broker or the store is away (SDKs retry 5xx).

**Mapping** to the canonical ``WriteMessage`` (api ``segment_api``); every write
creates its customer when missing:

- ``userId`` (a string or a number) is the ``external_id``, ``anonymousId`` the
  ``anonymous_id``; one of them is required. A junk one (``schemas.identity``:
  ``(null)``, ``N/A``, ``0``, ...) or one the team blocked (``ingest-admin
  block-identifier``) beside a usable one is ignored and the call kept, as Segment
  does with its blocked values; with none usable, 400. For ``identify`` only, a
  valid ``traits.email`` is an ``email`` identifier too (an invalid one stays a
  trait).
- ``identify``: ``upsert_customer`` with the traits as attributes (``traits``
  over ``context.traits``, where rudder-sdk-python sends them). ``track``:
  ``track_event`` named ``event`` with ``properties`` as body. ``page`` and
  ``screen``: events ``"page"`` and ``"screen"``, their ``name`` and ``category``
  over the properties. ``group``: ``upsert_customer`` putting the customer in the
  group ``groupId`` with its ``traits``. ``alias``: ``upsert_customer`` naming the
  customer by ``userId`` and ``previousId`` (as an anonymous id), which links them.
- ``messageId`` names the write (``messages.client_message_id``): a resend is
  stored once. Without one, the gateway names it.
- The event time is ``timestamp``; else ``originalTimestamp`` corrected for the
  device's clock skew, ``receivedAt - (sentAt - originalTimestamp)`` (receivedAt is
  the gateway's; a client's is ignored); else ``originalTimestamp``; else when
  received. Times are RFC 3339 as ``schemas.times`` reads them (an offset with
  seconds exact; a date alone, a week date, a comma fraction or a number is 400);
  a time without a zone is UTC. A correction more than 60 s after the receive time
  or more than 365 days before it (``schemas.times.skew_corrected``) is not used:
  the event time is the receive time, and the event's ``context`` records it under
  ``timestampFallback``: ``{"reason": "future" | "past", "originalTimestamp",
  "sentAt"}`` (in UTC, as read). (identify, group and alias store no context.)
- ``context`` is stored with events (``events.context``; identify, group and alias
  keep none); its ``ip`` defaults to the sender's address, its ``userAgent`` is the
  end user's agent for the bot rule (else the request's own if a browser's,
  ``build.browser_agent``). ``integrations`` is accepted and ignored.

**CORS** (``ingest_gateway.web.cors``). Every route answers a preflight ``OPTIONS``.
A request with an ``Origin`` the team allows (``teams.allowed_origins``, set by
``ingest-admin set-allowed-origins``; NULL, the default, allows any: a write key in
a web page is public anyway) is answered with that origin in
``Access-Control-Allow-Origin``; from another origin it is 403 without it. The
settings are open to any origin.

This module only translates, and holds the surface's own answers (``refusal``, the
project settings). Imports the write path (``write.build``, ``write.accept``), JSON
parsing and validation, the HTTP layer (auth, CORS, hosts, routing, errors) and
``schemas``; its examples are data in ``segment_examples``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from ingest_gateway.edge.body import parse_json
from ingest_gateway.edge.pacing import Pacer
from ingest_gateway.surfaces import segment_examples as examples
from ingest_gateway.surfaces.common import responses, write_body
from ingest_gateway.web import cors, deps, hosts
from ingest_gateway.web.auth import basic_username, team_for_key, team_of
from ingest_gateway.web.errors import ApiError
from ingest_gateway.web.responses import JSON
from ingest_gateway.web.routing import Endpoint, Surface
from ingest_gateway.write.accept import accept
from ingest_gateway.write.build import Received, browser_agent, declared_user_agent, new_write
from ingest_gateway.write.validation import DEPTH_RULE, check_containers, check_path
from schemas.identity import InvalidIdentifier, from_json, id_from_json, normalise_external_id
from schemas.limits import (
    MAX_NAME_LENGTH,
    MAX_SEGMENT_BATCH_MESSAGES,
    MAX_SEGMENT_MESSAGE_BYTES,
    text_refusal,
)
from schemas.messages import (
    EventData,
    GroupData,
    Identifiers,
    Operation,
    WriteMessage,
    client_message_id,
    utcnow,
)
from schemas.times import InvalidTime, format_time, parse_time, skew_corrected

PREFIX = "/v1"
API = "segment_api"
CALL_TYPES = ("identify", "track", "page", "screen", "group", "alias")
# The paths analytics.js posts each call type to (the type's first letter).
_SHORT_PATHS = {kind: kind[0] for kind in CALL_TYPES}


# ``code`` as Segment's API names it; rudder-sdk-python reads ``code`` and ``message``.
_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "request_too_large",
    415: "unsupported_encoding",
    429: "too_many_requests",
    503: "service_unavailable",
}


def refusal(status: int, message: str) -> dict[str, Any]:
    """The surface's error answer: ``{"success": false, "message", "code"}``."""
    return {"success": False, "message": message, "code": _CODES.get(status, "error")}


def _error(status: int, message: str, description: str | None, field: str | None) -> Any:
    return refusal(status, message)


surface = Surface(PREFIX, "Segment spec (/v1)", _error)


# -- the body: JSON ------------------------------------------------------------------


def _located(exc: ApiError, where: str) -> ApiError:
    """A JSON rule ``check_json`` found broken, named at ``where`` + its path."""
    if exc.field:
        rule = exc.message.removesuffix(f" (at {exc.field})")
        return ApiError(exc.status, f"{where}{exc.field}: {rule}", field=f"{where}{exc.field}")
    return ApiError(exc.status, f"{where.rstrip('.')}: {exc.message}" if where else exc.message)


def _json(raw: bytes, max_depth: int, where: str | int) -> Any:
    """``raw`` parsed; a refusal named at ``where``, a prefix or a message's index in
    the batch (its prefix made only then: the loop parses thousands of messages)."""
    try:
        return parse_json(raw, max_depth)
    except ApiError as exc:
        raise _located(exc, where if isinstance(where, str) else _where(where)) from exc


_raw_object = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])


def _raw_fields(raw: bytes, max_depth: int) -> dict[str, msgspec.Raw]:
    """The batch body's top-level fields, each as sent (checked when read)."""
    if not raw.strip():
        raise ApiError(400, "The request body is empty; JSON was expected")
    try:
        return _raw_object.decode(raw)
    except msgspec.ValidationError as exc:
        raise ApiError(400, 'Expected a JSON object {"batch": [...]}') from exc
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"The request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ApiError(400, DEPTH_RULE.format(max_depth=max_depth)) from exc


# -- one call, field by field --------------------------------------------------------


def _too_large(where: str) -> ApiError:
    name = where.rstrip(".") or "The message"
    return ApiError(
        413, f"{name}: larger than the limit of {MAX_SEGMENT_MESSAGE_BYTES} bytes of JSON"
    )


def _where(index: int | None) -> str:
    """The prefix naming a message's fields in a refusal: ``batch[3].``, "" for a call."""
    return "" if index is None else f"batch[{index}]."


@dataclass(slots=True)
class _Call:
    """One message of the request: its fields, and where it is (``index`` in the batch).
    Its readers refuse a field by the rule of its module, naming it as this surface does."""

    fields: dict[str, Any]
    kind: str
    index: int | None = None

    @property
    def where(self) -> str:
        return _where(self.index)

    def fail(self, field: str, reason: str) -> ApiError:
        return ApiError(400, f"{self.where}{field}: {reason}", field=f"{self.where}{field}")

    def object(self, field: str) -> dict[str, Any]:
        value = self.fields.get(field)
        if value is None:
            return {}
        if type(value) is not dict:  # (parsed JSON: a dict is exactly one)
            raise self.fail(field, "must be an object")
        return value

    def text(self, field: str, *, required: bool = False, blank: bool = True) -> str | None:
        """A string of at most ``MAX_NAME_LENGTH`` characters (not blank if required or not
        ``blank``), or None when absent."""
        value = self.fields.get(field)
        if value is None:
            if required:
                raise self.fail(field, "is required")
            return None
        if type(value) is not str:
            raise self.fail(field, "must be a string")
        if len(value) > MAX_NAME_LENGTH or ((required or not blank) and not value.strip()):
            raise self.fail(field, f"must be 1 to {MAX_NAME_LENGTH} characters")
        refusal = text_refusal(value)
        if refusal is not None:
            raise self.fail(field, refusal)
        return value

    def time(self, field: str) -> datetime | None:
        """The field as an instant in UTC (``schemas.times``: without a zone, UTC), or
        None when absent."""
        value = self.fields.get(field)
        if value is None:
            return None
        try:
            return parse_time(value, naive_is_utc=True)
        except InvalidTime as exc:
            raise self.fail(field, exc.reason) from exc


class _Shared(msgspec.Struct, frozen=True):
    """What the messages of a request share: the batch's sentAt and context."""

    sent_at: datetime | None = None
    context: dict[str, Any] | None = None
    context_bytes: int = 0  # of the context as sent, counted by a message inheriting it


class _Received(Received, frozen=True):
    """The request as the gateway saw it (``build.Received``: when, its own User-Agent
    when it counts as the end user's, the API), from where, and the batch's fields."""

    ip: str | None
    shared: _Shared


# The key of an event's ``context`` recording that its time is the receive time
# because the clock-skew correction was out of bounds (module docs, "Mapping").
TIME_FALLBACK = "timestampFallback"


def _occurred_at(call: _Call, received: _Received) -> tuple[datetime, dict[str, str] | None]:
    """``timestamp``; else ``originalTimestamp`` corrected by the clock skew ``sentAt``
    shows (``schemas.times.skew_corrected``); else ``originalTimestamp``; else the
    receive time. With it, what to record under ``TIME_FALLBACK`` when the correction
    was out of bounds and the receive time is used instead (else None)."""
    # (each read, used or not: a malformed time is a malformed call)
    timestamp = call.time("timestamp")
    original = call.time("originalTimestamp")
    sent_at = call.time("sentAt") or received.shared.sent_at
    if timestamp is not None:
        return timestamp, None
    if original is None:
        return received.at, None
    if sent_at is None:
        return original, None
    derived = skew_corrected(original, sent_at, received.at)
    if isinstance(derived, datetime):
        return derived, None
    return received.at, {
        "reason": derived,
        "originalTimestamp": format_time(original),
        "sentAt": format_time(sent_at),
    }


# How this surface names the kinds of identifier it sends, in a refusal (``alias``
# names its anonymous id ``previousId``).
_ID_FIELDS = {"external_id": "userId", "anonymous_id": "anonymousId"}
_ALIAS_ID_FIELDS = {"external_id": "userId", "anonymous_id": "previousId"}


def _identifiers(call: _Call, email: object) -> Identifiers:
    """Who the call names, in one question to the identifier policy
    (``schemas.identity.from_json``). A junk id beside a usable one is ignored and the
    call kept, as Segment keeps a blocked value in the payload without making it an
    identifier; ``alias`` requires both of its ids, usable."""
    fields, alias = call.fields, call.kind == "alias"
    names = _ALIAS_ID_FIELDS if alias else _ID_FIELDS
    try:
        identifiers = from_json(
            fields.get("userId"), fields.get(names["anonymous_id"]), email, junk_ignored=not alias
        )
    except InvalidIdentifier as exc:
        raise call.fail(names[exc.field], exc.reason) from exc
    if identifiers.external_id is None and identifiers.anonymous_id is None:
        raise call.fail("userId", "userId or anonymousId is required")
    return identifiers


def _group_id(call: _Call) -> str:
    value = call.fields.get("groupId")
    if value is None:
        raise call.fail("groupId", "is required")
    try:
        return normalise_external_id(id_from_json("groupId", value))
    except InvalidIdentifier as exc:
        raise call.fail("groupId", exc.reason) from exc


def _event(call: _Call, context: dict[str, Any]) -> EventData:
    if call.kind == "track":
        name = call.text("event", required=True)
        assert name is not None
        return EventData(name=name, body=call.object("properties"), context=context)
    body = dict(call.object("properties"))
    for field in ("name", "category"):
        value = call.text(field)
        if value is not None:
            body[field] = value  # the call's own fields win over same-named properties
    return EventData(name=call.kind, body=body, context=context)


def _write(team_id: int, call: _Call, received: _Received) -> WriteMessage:
    """One call as a write. Its fields are read in the order in which a refusal names
    the first fault: the times, the context, an identify's traits, the identifiers,
    messageId, then the kind's own. Each is read once, by the rules the consumers
    apply, so the builder does not check them again."""
    kind, fields = call.kind, call.fields
    occurred_at, time_fallback = _occurred_at(call, received)
    # The call's own context, else the batch's; with the sender's address as its ip.
    context = call.object("context") if "context" in fields else (received.shared.context or {})
    if received.ip and "ip" not in context:
        context = {**context, "ip": received.ip}
    if time_fallback is not None:  # (stored with events: an analyst sees the choice)
        context = {**context, TIME_FALLBACK: time_fallback}
    attributes: dict[str, Any] = {}
    if kind == "identify":  # ``traits`` over ``context.traits`` (rudder-sdk-python's)
        attributes = call.object("traits")
        in_context = context.get("traits")
        if type(in_context) is dict and in_context:
            attributes = in_context | attributes
    identifiers = _identifiers(call, attributes.get("email"))  # (identify's traits only)
    message_id = call.text("messageId", blank=False)
    op: Operation = "upsert_customer"
    event = group = None
    if kind == "group":
        group = GroupData(group_id=_group_id(call), traits=call.object("traits"))
    elif kind != "identify" and kind != "alias":
        op, event = "track_event", _event(call, context)
    return new_write(
        received,
        team_id,
        op,
        identifiers,
        occurred_at=occurred_at,
        attributes=attributes,
        event=event,
        group=group,
        message_id=None if message_id is None else client_message_id(team_id, message_id),
        # The end user's agent: the context's, the request's, else one in the body.
        user_agent=declared_user_agent(context) or received.agent,
        fields_checked=True,
    )


# -- the request: key, origin, calls --------------------------------------------------


_SEND_WRITE_KEY = (
    "Send the write key as the username of HTTP Basic auth, or as writeKey in the body."
)


async def _team(request: Request, key: str | None) -> int:
    """The write key's team, if the request's origin may send with it."""
    team_id = await team_of(request, key, name="write key", how=_SEND_WRITE_KEY)
    await cors.check_origin(request, team_id)
    return team_id


# A write key's JSON longer than this names no key: it is refused unread.
_MAX_KEY_JSON = 1024
_key_decoder = msgspec.json.Decoder(str | None)


def _key_in(raw: msgspec.Raw | None) -> str | None:
    """The ``writeKey`` of a body, read from its own bytes only (no larger than a key)."""
    if raw is None:
        return None
    if len(raw) > _MAX_KEY_JSON:
        raise ApiError(401, "Invalid write key", "The write key is unknown or was revoked.")
    try:
        key = _key_decoder.decode(raw)
    except msgspec.MsgspecError:
        return None
    return key.strip() if key else None


class _Request(msgspec.Struct):
    """A single call's ``writeKey``, the rest of the call left unread."""

    writeKey: msgspec.Raw = msgspec.Raw(b"null")


_request = msgspec.json.Decoder(_Request)


def _single_key(raw: bytes) -> str | None:
    try:
        return _key_in(_request.decode(raw).writeKey)
    except (msgspec.MsgspecError, RecursionError):
        return None  # not a JSON object: said once it is read


def _not_a_key(where: str = "") -> ApiError:
    return ApiError(400, f"{where}writeKey: must be a string", field=f"{where}writeKey")


def _check_key(raw: msgspec.Raw | None) -> None:
    """A batch's ``writeKey``, read or not: a string (or null) of storable text, as the
    rest of a request is (a single call's is checked with it)."""
    if raw is None:
        return
    try:
        key = _key_decoder.decode(raw)
    except msgspec.MsgspecError:
        raise _not_a_key() from None
    refusal = text_refusal(key) if key else None
    if refusal is not None:
        raise ApiError(400, f"writeKey: {refusal}", field="writeKey")


def _single(raw: bytes, kind: str, max_depth: int) -> _Call:
    payload = _json(raw, max_depth, "")
    if not isinstance(payload, dict):
        raise ApiError(400, f"Expected a JSON object: one {kind} call")
    if not isinstance(payload.get("writeKey"), str | None):  # (read even when Basic sent one)
        raise _not_a_key()
    return _Call(payload, kind)


class _Body(msgspec.Struct):
    """A batch request's fields that are read (``_TOP``), each as sent; JSON null
    stands for a field absent, as it does when read."""

    batch: list[msgspec.Raw]
    sentAt: msgspec.Raw = msgspec.Raw(b"null")
    context: msgspec.Raw = msgspec.Raw(b"null")
    writeKey: msgspec.Raw = msgspec.Raw(b"null")


_body = msgspec.json.Decoder(_Body)


@dataclass(frozen=True)
class _Envelope:
    """A batch request as sent: its messages and its own fields that are read, each
    still unparsed (one pass of msgspec over the body, building nothing else)."""

    items: list[msgspec.Raw]
    fields: dict[str, msgspec.Raw]


def _envelope(raw: bytes, max_depth: int) -> _Envelope:
    try:  # in one pass over the body, as a well-formed batch allows
        body = _body.decode(raw)
    except (msgspec.MsgspecError, RecursionError):
        pass  # read field by field below, to say what is wrong
    else:
        return _counted(_Envelope(body.batch, {name: getattr(body, name) for name in _TOP}))
    fields = _raw_fields(raw, max_depth)
    if "batch" not in fields:
        raise ApiError(400, "batch: is required, an array of messages", field="batch")
    try:
        items = _raw_list.decode(fields["batch"])
    except msgspec.ValidationError as exc:
        raise ApiError(400, "batch: must be an array of messages", field="batch") from exc
    return _counted(_Envelope(items, {name: fields[name] for name in _TOP if name in fields}))


def _counted(envelope: _Envelope) -> _Envelope:
    if len(envelope.items) > MAX_SEGMENT_BATCH_MESSAGES:
        raise ApiError(413, f"batch: at most {MAX_SEGMENT_BATCH_MESSAGES} messages per request")
    return envelope


def _shared(envelope: _Envelope, max_depth: int) -> _Shared:
    """The batch's sentAt and context, each parsed only if no larger than a message
    (a context is copied into every message that inherits it)."""
    _check_key(envelope.fields.get("writeKey"))
    read = {}
    for name in ("sentAt", "context"):
        value = envelope.fields.get(name)
        if value is not None:
            if len(value) > MAX_SEGMENT_MESSAGE_BYTES:
                raise _too_large(f"{name}.")
            read[name] = _json(bytes(value), max_depth, f"{name}.")
    top = _Call(read, "batch")
    context = top.object("context") or None
    size = len(envelope.fields["context"]) if context else 0
    return _Shared(top.time("sentAt"), context, size)


def _batch_call(item: msgspec.Raw, index: int, shared: _Shared, max_depth: int) -> _Call:
    if len(item) > MAX_SEGMENT_MESSAGE_BYTES:
        raise _too_large(_where(index))
    message = _json(bytes(item), max_depth, index)
    if type(message) is not dict:
        raise ApiError(400, f"batch[{index}]: must be an object", field=f"batch[{index}]")
    key = message.get("writeKey")
    if key is not None and type(key) is not str:  # (a message's is not read)
        raise _not_a_key(_where(index))
    kind = message.get("type")
    if kind not in CALL_TYPES:
        field = f"{_where(index)}type"
        raise ApiError(400, f"{field}: must be one of {', '.join(CALL_TYPES)}", field=field)
    if "context" not in message and len(item) + shared.context_bytes > MAX_SEGMENT_MESSAGE_BYTES:
        raise _too_large(_where(index))  # with the batch's context it would not fit
    return _Call(message, kind, index)


# The batch's own fields that are read (``integrations`` is ignored).
_TOP = ("sentAt", "context", "writeKey")


def _inheritance_refusal(inherited: int, sent: int) -> ApiError:
    return ApiError(
        413,
        f"context: the batch's context, copied into each message without one, would"
        f" store {inherited} bytes, more than the {sent} bytes of the request: send a"
        " smaller context, or each message's own",
        field="context",
    )


async def _batch_writes(
    raw: bytes, envelope: _Envelope, team_id: int, received: _Received, max_depth: int
) -> dict[str, WriteMessage]:
    """The batch's writes by id (a messageId twice in one batch: once), translated a
    slice at a time so that other requests are served in between.

    What a request stores is bounded by what it sent: the context messages inherit
    may add at most as many bytes as the request's own JSON (stored <= 2x sent).
    """
    writes: dict[str, WriteMessage] = {}
    pacer = Pacer()
    inherited = 0
    context_bytes = received.shared.context_bytes
    for index, item in enumerate(envelope.items):
        call = _batch_call(item, index, received.shared, max_depth)
        if context_bytes and "context" not in call.fields:
            inherited += context_bytes
            if inherited > len(raw):
                raise _inheritance_refusal(inherited, len(raw))
        message = _write(team_id, call, received)
        writes.setdefault(message.id, message)
        if pacer.due(len(item)):
            await pacer.turn()
    return writes


async def _accept_calls(request: Request, kind: str | None) -> Response:
    """One call (``kind``) or a batch (None): all its messages accepted, or none.

    Bounded work before the key is known: a body holding more than
    ``MAX_JSON_CONTAINERS`` objects and arrays is refused unparsed, and the key comes
    from the headers, else from the body's ``writeKey`` read without parsing anything
    else (one pass of msgspec that builds nothing). Only then is the rest parsed, each
    part no larger than a message, with turns of the event loop in between.
    """
    now = utcnow()
    max_depth = deps.settings(request).max_json_depth
    header_key = basic_username(request)
    team_id = await _team(request, header_key) if header_key else None
    raw = await request.body()
    if kind is not None and len(raw) > MAX_SEGMENT_MESSAGE_BYTES:
        raise _too_large("")
    check_containers(raw)
    envelope = _envelope(raw, max_depth) if kind is None else None
    if team_id is None:
        body_key = _key_in(envelope.fields.get("writeKey")) if envelope else _single_key(raw)
        team_id = await _team(request, body_key)
    check_path(request.scope)  # (once: every call has the request's path)
    ip = request.client.host if request.client else None
    agent = browser_agent(request)
    if envelope is None:
        assert kind is not None
        message = _write(
            team_id, _single(raw, kind, max_depth), _Received(now, agent, API, ip, _Shared())
        )
        writes = {message.id: message}
    else:
        received = _Received(now, agent, API, ip, _shared(envelope, max_depth))
        writes = await _batch_writes(raw, envelope, team_id, received, max_depth)
    accepted = await accept(request, list(writes.values()))
    return accepted.respond(examples.SUCCESS)


# -- routes --------------------------------------------------------------------------

_SECURITY: dict[str, Any] = {"security": [{"writeKey": []}]}
_LIMITS = (
    f"Limits: {MAX_SEGMENT_MESSAGE_BYTES} bytes of JSON per message (with the batch's context it"
    f" inherits), {MAX_SEGMENT_BATCH_MESSAGES} messages per batch, and the gateway's body limit"
    " (MAX_BODY_BYTES, 5 MB by default) after gzip decompression: beyond, 413. The whole"
    " request is checked before anything is published (a 400 names the message and field,"
    " e.g. batch[3].userId). Auth: the write key as the username of HTTP Basic (empty"
    " password), or writeKey in the body. Any Content-Type is read as JSON (analytics.js"
    " sends text/plain); Content-Encoding: gzip is accepted. integrations is ignored."
    " CORS: preflight answered; an Origin the team does not allow is 403."
)
_ANSWERS = responses(
    (200, "Accepted: Kafka acknowledged every message", examples.SUCCESS),
    (202, "Accepted; the wait for the consumers (?wait=true) ran out", examples.SUCCESS),
    (400, "Malformed call: nothing accepted", examples.INVALID),
    (401, "Missing or unknown write key", examples.UNAUTHORISED),
    (403, "The request's Origin is not allowed for this write key", examples.FORBIDDEN),
    (413, "Too large: a message, the batch or the body", examples.TOO_LARGE),
    (415, "Unsupported Content-Encoding", examples.UNSUPPORTED),
    (503, "Kafka or PostgreSQL unavailable: retry after Retry-After", examples.UNAVAILABLE),
)


def _endpoint(name: str, kind: str | None) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await _accept_calls(request, kind)

    return cors.with_cors(endpoint, name)


def _post(paths: tuple[str, ...], endpoint: Endpoint, summary: str, body: dict[str, Any]) -> None:
    documented, *aliases = paths
    also = f" Also served at {', '.join(PREFIX + alias for alias in aliases)}." if aliases else ""
    options: dict[str, Any] = {
        "summary": summary,
        "openapi_extra": body | _SECURITY | {"description": _LIMITS + also},
        "responses": _ANSWERS,
        "authenticated": False,
    }
    surface.post(documented, **options)(endpoint)
    for alias in aliases:
        surface.post(alias, **options, include_in_schema=False)(endpoint)


for _kind in CALL_TYPES:
    _post(
        (f"/{_kind}", f"/{_SHORT_PATHS[_kind]}"),
        _endpoint(f"segment_{_kind}", _kind),
        f"Segment {_kind} call",
        write_body(
            {f"a {_kind} call": examples.CALL_EXAMPLES[_kind]},
            schema=examples.CALL_SCHEMAS[_kind],
        ),
    )
_BATCH_BODY = write_body({"three calls": examples.BATCH}, schema=examples.BATCH_SCHEMA)
_post(
    ("/batch", "/b"),
    _endpoint("segment_batch", None),
    "Segment batch of calls: all accepted or none",
    _BATCH_BODY,
)
_post(
    ("/import",),
    _endpoint("segment_import", None),
    "Segment import: the same as /v1/batch",
    _BATCH_BODY,
)


def _api_base(request: Request) -> tuple[str, str]:
    """(host + /v1, scheme) the SDK should send to: PUBLIC_BASE_URL, else the request's
    Host if trusted (else 421: ``hosts.public_base``)."""
    base, scheme = hosts.public_base(request)
    return base + PREFIX, scheme


def project_settings(write_key: str, api_host: str, protocol: str) -> dict[str, Any]:
    """What ``GET /v1/projects/{writeKey}/settings`` answers: the least analytics.js needs."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {
            "track": {"__default": {"enabled": True, "integrations": {}}},
            "identify": {"__default": {"enabled": True}},
            "group": {"__default": {"enabled": True}},
        },
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


async def _settings(request: Request, writeKey: str) -> Response:
    services = deps.services(request)
    api_host, protocol = _api_base(request)  # (before the key: an untrusted Host costs nothing)
    if await team_for_key(services.db, services.key_cache, writeKey) is None:
        raise ApiError(404, "No project has this write key")
    answer = JSON(project_settings(writeKey, api_host, protocol))
    if not services.settings.public_base_url:
        answer.headers["Vary"] = "Host"  # apiHost is the request's (trusted) Host
    return answer


surface.get(
    "/projects/{writeKey}/settings",
    summary="The settings analytics.js loads from its CDN, pointing it at this gateway"
    " (AnalyticsBrowser.load({writeKey, cdnURL: '<this gateway>'})); open to any origin",
    authenticated=False,
    responses=responses(
        (
            200,
            "The project's settings",
            project_settings("<writeKey>", "ingest.example.com/v1", "https"),
        ),
        (404, "Unknown write key", examples.NOT_FOUND),
        (
            421,
            "The Host is not one the gateway answers for (PUBLIC_BASE_URL, TRUSTED_HOSTS)",
            refusal(421, hosts.UNTRUSTED),
        ),
        (503, "PostgreSQL unavailable: retry after Retry-After", examples.UNAVAILABLE),
    ),
)(cors.with_cors(_settings, "segment_settings", open_to_all=True))


# Every route answers the browser's preflight.
cors.answer_preflights(surface)
