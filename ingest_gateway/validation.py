"""The gateway's one validation layer: nothing it answers 2xx for breaks a store rule.

Every surface reads its request through ``ingest_gateway.body`` (JSON, urlencoded or
multipart) and builds ``WriteMessage`` values through ``ingest_gateway.accept``; both
call here, so a rule is written once and holds on every surface:

* **JSON** (``check_json``): nesting at most ``MAX_JSON_DEPTH``; no NUL in strings
  or names; integers within the signed 64-bit range; numbers finite (the parser
  refuses the rest: ``1e400``, invalid UTF-8, lone surrogates). Walking a parsed
  value costs more than parsing it, so it is walked only when its raw bytes show it
  could break a rule (``needs_walk``): most requests never are.
* **text** from forms (``decode_text``): decoded strictly in the charset the client
  declared, then storable text (no NUL, no lone surrogate); a path must be UTF-8
  once percent-decoded (``check_path``: the server would put U+FFFD in its place).
* **messages** (``check_message``): identifiers normalised as the consumers require
  (``schemas.identity``), times within years 1 to 9999 in UTC, names and ids short
  and storable (``schemas.limits``, the contract the consumers share).
* **reads**: ``QueryText`` for text filters, ``MAX_OFFSET`` for paging offsets.

A broken rule is an ``ApiError`` (400), rendered in the surface's own error format.
This module imports ``schemas``, ``ingest_gateway.errors`` and pydantic only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from msgspec import Meta

from ingest_gateway.errors import ApiError
from schemas.identity import identifiers_refusal
from schemas.limits import (
    INT64_MAX,
    INT64_MIN,
    int_refusal,
    message_refusal,
    text_refusal,
)
from schemas.messages import WriteMessage

# Paging offsets go to PostgreSQL as bigint.
MAX_OFFSET = INT64_MAX

DEPTH_RULE = "JSON nested deeper than {max_depth} levels"
JSON_NUL_RULE = "JSON strings must not contain the NUL character (\\u0000)"
JSON_INT_RULE = f"JSON integers must be within the signed 64-bit range ({INT64_MIN} to {INT64_MAX})"
JSON_NUMBER_RULE = "JSON numbers must be finite and within range"

# -- JSON --------------------------------------------------------------------------

# The shape of JSON text, for ``needs_walk``: digits become "0", opening brackets
# "{", exponent letters "x", every other byte (signs too) a space. The digits of a
# JSON integer are one run whatever its sign, so none the rules care about is
# missed; and a sign is a separator, so the digit groups of ids such as UUIDs or
# dates ("...-4000-8000-0000...") do not join into a false alarm.
_SHAPES = dict(zip(b"0123456789[{eE", b"0000000000{{xx", strict=True))
_SHAPE_TABLE = bytes(_SHAPES.get(byte, ord(" ")) for byte in range(256))
# int64's bounds have 19 digits: any integer beyond them has at least as many.
_LONG_DIGITS = len(str(INT64_MAX))
_LONG_NUMBER = b"0" * _LONG_DIGITS
# Bytes of JSON beyond which searching for such a run is cheaper than counting digits.
_SEARCH_FIRST = 256
# An exponent of three digits or more, signed ("1e-400": "0x 000") or not.
_LONG_EXPONENTS = (b"x000", b"x 000")


def needs_walk(raw: bytes, max_depth: int, *, kept_as_sent: bool = False) -> bool:
    """Whether JSON read from ``raw`` could break a rule ``check_json`` enforces.

    A JSON text cannot nest deeper than it has brackets, a NUL can only be written
    as the escape ``\\u0000``, and an integer beyond 64 bits has 19 digits or more;
    false alarms (brackets or digits inside strings) only cost a walk. JSON that is
    ``kept_as_sent`` (stored as the client wrote it, never parsed) also needs parsing
    when a number could overflow a double or PostgreSQL's numeric: an exponent of
    three digits or more.
    """
    if b"\\u0000" in raw:
        return True
    shape = raw.translate(_SHAPE_TABLE)
    # (Counting the digits first, which reads every byte, spares short texts the
    # search's set-up; on longer ones the search, skipping ahead, costs less.)
    return (
        shape.count(b"{") >= max_depth
        or (
            (len(shape) > _SEARCH_FIRST or shape.count(b"0") >= _LONG_DIGITS)
            and _LONG_NUMBER in shape
        )
        or (kept_as_sent and any(e in shape for e in _LONG_EXPONENTS))
    )


def _problem(value: Any, max_depth: int, *, paths: bool) -> tuple[str, str] | None:
    """(rule, path) of the first value breaking a JSON rule, depth first; paths if asked.

    Nesting too deep is ``DEPTH_RULE``, formatted.
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        kind = type(item)
        if kind is str:
            if "\x00" in item:
                return JSON_NUL_RULE, path
        elif kind is int:
            if int_refusal(item) is not None:
                return JSON_INT_RULE, path
        elif kind is dict or kind is list:
            if depth > max_depth:
                return DEPTH_RULE.format(max_depth=max_depth), path
            if kind is list:
                stack.extend(
                    (child, depth + 1, f"{path}[{i}]" if paths else "")
                    for i, child in enumerate(item)
                )
                continue
            for key, child in item.items():
                if "\x00" in key:
                    return JSON_NUL_RULE, path
                stack.append(
                    (child, depth + 1, (f"{path}.{key}" if path else key) if paths else "")
                )
        # Floats are finite: the parsers refuse the others. Booleans and null pass.
    return None


def check_json(value: Any, max_depth: int) -> None:
    """Raise ``ApiError(400)`` when a parsed JSON value breaks a rule.

    The error names the path of the value (in its message, and as ``field``), except
    for nesting: that one is about the document, in the same words on every surface.
    """
    if _problem(value, max_depth, paths=False) is None:
        return
    found = _problem(value, max_depth, paths=True)  # again, to name where: rare
    assert found is not None
    rule, path = found
    if not path or rule == DEPTH_RULE.format(max_depth=max_depth):
        raise ApiError(400, rule)
    raise ApiError(400, f"{rule} (at {path})", field=path)


def check_utf8(raw: bytes, what: str) -> None:
    """Raw JSON kept as sent: msgspec skips such values without checking their bytes."""
    if not raw.isascii():
        try:
            raw.decode()
        except UnicodeDecodeError as exc:
            raise ApiError(400, f"{what} is not valid UTF-8: {exc.reason}") from exc


# -- text --------------------------------------------------------------------------


def decode_text(data: bytes, charset: str, field: str) -> str:
    """``data`` decoded strictly in ``charset`` (the client's), as storable text.

    Decoding can give text PostgreSQL cannot store: NUL, or lone surrogates (from
    utf-7, say), so the result is checked too.
    """
    try:
        text = data.decode(charset)
    except LookupError as exc:  # unknown, or not a text encoding (hex, rot13, ...)
        raise ApiError(400, f"Unsupported charset {charset!r}", field=field) from exc
    except ValueError as exc:  # UnicodeError and the codecs' own errors
        raise ApiError(400, f"Invalid {field}: not valid {charset}", str(exc), field=field) from exc
    refusal = text_refusal(text)
    if refusal is not None:
        raise ApiError(400, f"Invalid {field}: {refusal}", refusal, field=field)
    return text


def check_path(scope: Mapping[str, Any]) -> None:
    """``ApiError(400)`` when the request's path is not UTF-8 once percent-decoded.

    The server decodes paths with U+FFFD for what is not UTF-8, so a path parameter
    (an event name, an email) would be stored changed; the raw path says what was sent.
    """
    raw = scope.get("raw_path") or b""
    if b"%" in raw:
        try:
            unquote_to_bytes(raw).decode()
        except UnicodeDecodeError as exc:
            raise ApiError(
                400, f"The path is not valid UTF-8 once percent-decoded: {exc.reason}"
            ) from exc


# A text query parameter (a filter) PostgreSQL can compare: no NUL. (A query string
# is decoded with U+FFFD for what is not UTF-8, so lone surrogates cannot arrive.)
# A broken rule is the route table's 400 naming the parameter.
QueryText = Annotated[str, Meta(pattern="^[^\\x00]*$")] | None


# -- messages ----------------------------------------------------------------------


def check_message(
    message: WriteMessage, names: dict[str, str] | None = None, *, identifiers: bool = True
) -> WriteMessage:
    """``message``, or ``ApiError(400)`` when a consumer would refuse it by rule.

    ``names`` maps canonical field names (``event.client_event_id``) to the
    surface's own (``eventId``) for the error. ``identifiers=False`` skips the
    identifiers' rule where they come from ``accept.identifiers_or_400`` in the same
    breath (the batch endpoint's hot path), which applies the same normalisation.
    """
    reason = identifiers_refusal(message.identifiers) if identifiers else None
    found = ("identifiers", reason) if reason is not None else message_refusal(message)
    if found is None:
        return message
    field, rule = found
    field = (names or {}).get(field, field)
    raise ApiError(400, f"Invalid {field}: {rule}", rule, field=field)
