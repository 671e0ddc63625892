"""The gateway's one validation layer: nothing it answers 2xx for breaks a store rule.

Every surface reads its request through ``ingest_gateway.edge.body`` (JSON, urlencoded
or multipart) and builds ``WriteMessage`` values through ``ingest_gateway.write.build``;
both call here, so a rule is written once and holds on every surface:

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
This module imports ``schemas``, ``ingest_gateway.web.errors`` and msgspec only (with
the standard library's ``re`` and ``urllib.parse``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from msgspec import Meta

from ingest_gateway.web.errors import ApiError
from schemas.identity import identifiers_refusal
from schemas.limits import (
    INT64_MAX,
    INT64_MIN,
    MAX_JSON_CONTAINERS,
    MAX_JSON_VALUES,
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

# The shape of JSON text, for ``needs_walk``'s first look: digits become "0",
# opening brackets "{", exponent letters "x", every other byte (signs too) a space.
# The digits of a JSON integer are one run whatever its sign, so none the rules care
# about is missed; and a sign is a separator, so the digit groups of ids such as UUIDs
# or dates ("...-4000-8000-0000...") do not join into a false alarm.
_SHAPES = dict(zip(b"0123456789[{eE", b"0000000000{{xx", strict=True))
_SHAPE_TABLE = bytes(_SHAPES.get(byte, ord(" ")) for byte in range(256))
# int64's bounds have 19 digits: any integer beyond them has at least as many.
_LONG_DIGITS = len(str(INT64_MAX))
_LONG_NUMBER = b"0" * _LONG_DIGITS
# Bytes of JSON beyond which searching for such a run is cheaper than counting digits.
_SEARCH_FIRST = 256
# An exponent of three digits or more, signed ("1e-400": "0x 000") or not.
_LONG_EXPONENTS = (b"x000", b"x 000")

# For the exact look, on the JSON text outside its strings (``outside_strings``).
# (Possessive, from the start of a run: linear however long the run.)
_INTEGER = re.compile(rb"(?<![0-9])-?[0-9]{%d,}+(?![.eE])" % _LONG_DIGITS)
_EXPONENT = re.compile(rb"[eE][+-]?[0-9]{3,}")
_BRACKETS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
# Up to this size a refusal names the path of the value (one walk of the parsed
# value, ~1 us per value); beyond, the byte offset where the text shows it.
NAMED_PATH_MAX_BYTES = 64 * 1024


def _unescaped(raw: bytes) -> bytes:
    """``raw`` without its escaped backslashes: a backslash left starts an escape.

    In JSON every backslash starts an escape, read left to right, so removing the
    pairs ``\\\\`` from the left leaves exactly the backslashes that escape what
    follows them: ``\\u0000`` is then a NUL, ``\\\\u0000`` text.
    """
    return raw.replace(b"\\\\", b"") if b"\\\\" in raw else raw


class OutsideStrings:
    """The JSON text outside its strings (each removed, quotes included), built slice
    by slice so that a caller can give the event loop a turn in between (``feed``).

    Escaped backslashes and quotes go first (``_unescaped``): every quote left then
    opens or closes a string, and a slice ends inside one when it splits in an even
    number of pieces. ~150 ns per string, 1 ns per byte.
    """

    def __init__(self, raw: bytes) -> None:
        text = _unescaped(raw)
        self.text = text.replace(b'\\"', b"") if b'\\"' in text else text
        self._parts: list[bytes] = []
        self._inside = False
        self.done = 0  # bytes of ``text`` read

    def feed(self, size: int) -> int:
        """Read up to ``size`` more bytes; how many were read (0: all done)."""
        chunk = self.text[self.done : self.done + size]
        read = len(chunk)
        self.done += read
        if self._inside:
            chunk = b'"' + chunk
        pieces = chunk.split(b'"')
        self._parts.append(b"".join(pieces[::2]))
        self._inside = len(pieces) % 2 == 0
        return read

    def result(self) -> bytes:
        while self.done < len(self.text):
            self.feed(len(self.text))
        return b"".join(self._parts)


def outside_strings(raw: bytes) -> bytes:
    return OutsideStrings(raw).result()


def _deeper_than(structure: bytes, max_depth: int) -> bool:
    """Whether the brackets of ``structure`` (valid JSON outside strings) nest deeper
    than ``max_depth``: each pass removes the innermost pairs, one level everywhere."""
    brackets = structure.translate(_BRACKETS, _NOT_BRACKETS)
    if b"(" * (max_depth + 1) in brackets:
        return True
    for _ in range(max_depth):
        if not brackets:
            return False
        brackets = brackets.replace(b"()", b"")
    return bool(brackets)


def containers(raw: bytes) -> int:
    """At most how many objects and arrays parsing the JSON text ``raw`` builds: its
    ``[`` and ``{``, in strings or not (two passes in C, ~1 ms per 2 MB)."""
    return raw.count(b"[") + raw.count(b"{")


def check_containers(raw: bytes, what: str = "The request body") -> None:
    """``ApiError(413)`` when parsing ``raw`` would build more than
    ``MAX_JSON_CONTAINERS`` objects and arrays (its ``[`` and ``{``) or more than
    ``MAX_JSON_VALUES`` values (its commas and containers), counted in the text,
    strings included (three passes in C, ~1 ms per 2 MB). Parsing costs most per
    object or array it builds (~0.3 us), then per value (~20 ns): with these bounds no
    body within the size limit costs much more to parse than a legitimate one of its
    size, whatever its shape. A body shorter than ``MAX_JSON_CONTAINERS`` bytes cannot
    break either bound (one byte a bracket or comma at most): most are not counted."""
    if len(raw) <= MAX_JSON_CONTAINERS:
        return
    built = containers(raw)
    if built > MAX_JSON_CONTAINERS:
        raise ApiError(
            413,
            f"{what} holds more than {MAX_JSON_CONTAINERS} JSON objects and arrays"
            " ('[' and '{', strings included): split it into smaller requests",
        )
    if built + raw.count(b",") > MAX_JSON_VALUES:
        raise ApiError(
            413,
            f"{what} holds more than {MAX_JSON_VALUES} JSON values (counted by its commas,"
            " strings included): split it into smaller requests",
        )


def needs_walk(raw: bytes, max_depth: int, *, kept_as_sent: bool = False) -> bool:
    """Whether JSON read from ``raw`` (valid JSON) breaks a rule ``check_json`` enforces.

    A first look at the bytes clears most texts (``might_break``). When it cannot,
    the text outside its strings says exactly (``json_text_problem``), so a value is
    walked only when a rule is broken, to name where. JSON that is ``kept_as_sent``
    (stored as the client wrote it, never parsed) also needs parsing when a number
    could overflow a double or PostgreSQL's numeric: an exponent of three digits or
    more.
    """
    if not might_break(raw, max_depth, kept_as_sent=kept_as_sent):
        return False
    structure = outside_strings(raw)
    if kept_as_sent and _EXPONENT.search(structure):
        return True
    return json_text_problem(raw, structure, max_depth) is not None


def might_break(raw: bytes, max_depth: int, *, kept_as_sent: bool = False) -> bool:
    """Whether the JSON text ``raw`` could break a rule, at a first look (~0.5 ns per
    byte): it cannot nest deeper than it has brackets, a NUL can only be written as
    the escape ``\\u0000``, and an integer beyond 64 bits has 19 digits or more."""
    if b"\\u0000" in raw:
        return True
    shape = raw.translate(_SHAPE_TABLE)
    # (Counting the digits first, which reads every byte, spares short texts the
    # search's set-up; on longer ones the search, skipping ahead, costs less.)
    return (
        shape.count(b"{") > max_depth
        or (
            (len(shape) > _SEARCH_FIRST or shape.count(b"0") >= _LONG_DIGITS)
            and _LONG_NUMBER in shape
        )
        or (kept_as_sent and any(e in shape for e in _LONG_EXPONENTS))
    )


def json_text_problem(raw: bytes, structure: bytes, max_depth: int) -> tuple[str, int] | None:
    """(rule, byte offset) of a JSON rule the text ``raw`` (valid JSON; ``structure``:
    its text outside strings) breaks, or None.

    Exact, in time linear in ``raw`` (a few passes in C), without parsing: a NUL
    escape that is not an escaped backslash, nesting counted outside strings, an
    integer literal outside the signed 64-bit range. Nesting is about the document:
    offset 0. The offset of a NUL is that of the first ``\\u0000`` written.
    """
    if b"\\u0000" in raw and b"\\u0000" in _unescaped(raw):
        return JSON_NUL_RULE, raw.find(b"\\u0000")
    if structure.count(b"[") + structure.count(b"{") > max_depth and _deeper_than(
        structure, max_depth
    ):
        return DEPTH_RULE.format(max_depth=max_depth), 0
    if len(structure) >= _LONG_DIGITS:
        for number in _INTEGER.finditer(structure):
            if int_refusal(int(number.group())) is not None:
                return JSON_INT_RULE, raw.find(number.group())
    return None


def _path(entry: tuple[Any, ...] | None) -> str:
    """The path of a walked value from its parent links (``_problem``'s entries)."""
    keys: list[Any] = []
    while entry is not None:
        _item, _depth, parent, key = entry
        if parent is not None:
            keys.append(key)
        entry = parent
    path = ""
    for key in reversed(keys):
        path += f"[{key}]" if isinstance(key, int) else (f".{key}" if path else key)
    return path


def _problem(value: Any, max_depth: int) -> tuple[str, str] | None:
    """(rule, path) of the first value breaking a JSON rule, depth first.

    One walk: each entry links to its parent, so the path is built only for the
    value found, never for the others. Nesting too deep is ``DEPTH_RULE``, formatted.
    """
    stack: list[tuple[Any, int, Any, Any]] = [(value, 1, None, None)]
    while stack:
        entry = stack.pop()
        item, depth = entry[0], entry[1]
        kind = type(item)
        if kind is str:
            if "\x00" in item:
                return JSON_NUL_RULE, _path(entry)
        elif kind is int:
            if int_refusal(item) is not None:
                return JSON_INT_RULE, _path(entry)
        elif kind is dict or kind is list:
            if depth > max_depth:
                return DEPTH_RULE.format(max_depth=max_depth), _path(entry)
            if kind is list:
                stack.extend((child, depth + 1, entry, i) for i, child in enumerate(item))
                continue
            for key, child in item.items():
                if "\x00" in key:
                    return JSON_NUL_RULE, _path(entry)
                stack.append((child, depth + 1, entry, key))
        # Floats are finite: the parsers refuse the others. Booleans and null pass.
    return None


def check_json(value: Any, max_depth: int) -> None:
    """Raise ``ApiError(400)`` when a parsed JSON value breaks a rule.

    The error names the path of the value (in its message, and as ``field``), except
    for nesting: that one is about the document, in the same words on every surface.
    """
    found = _problem(value, max_depth)
    if found is None:
        return
    rule, path = found
    if not path or rule == DEPTH_RULE.format(max_depth=max_depth):
        raise ApiError(400, rule)
    raise ApiError(400, f"{rule} (at {path})", field=path)


def refuse_json_text(raw: bytes, value: Any, found: tuple[str, int], max_depth: int) -> None:
    """Raise the ``ApiError(400)`` of a rule ``json_text_problem`` found broken: naming
    the value's path when the text is small enough for the walk to cost little, else
    the byte offset where the text shows it."""
    rule, offset = found
    if rule == DEPTH_RULE.format(max_depth=max_depth):
        raise ApiError(400, rule)
    if len(raw) <= NAMED_PATH_MAX_BYTES:
        check_json(value, max_depth)
    raise ApiError(400, f"{rule} (near byte {offset} of the JSON)")


def check_json_text(raw: bytes, value: Any, max_depth: int) -> None:
    """``check_json`` for ``value`` parsed from ``raw``, from the text: the value is
    walked only when a rule is broken, and only when small enough (``refuse_json_text``)."""
    if might_break(raw, max_depth):
        found = json_text_problem(raw, outside_strings(raw), max_depth)
        if found is not None:
            refuse_json_text(raw, value, found, max_depth)


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
    message: WriteMessage, names: Mapping[str, str] | None = None, *, identifiers: bool = True
) -> WriteMessage:
    """``message``, or ``ApiError(400)`` when a consumer would refuse it by rule.

    ``names`` maps canonical field names (``event.client_event_id``) to the
    surface's own (``eventId``) for the error. ``identifiers=False`` skips the
    identifiers' rule where they come from ``build.identifiers_or_400`` in the same
    breath (the batch endpoint's hot path), which applies the same normalisation.
    """
    reason = identifiers_refusal(message.identifiers) if identifiers else None
    found = ("identifiers", reason) if reason is not None else message_refusal(message)
    if found is None:
        return message
    field, rule = found
    field = (names or {}).get(field, field)
    raise ApiError(400, f"Invalid {field}: {rule}", rule, field=field)
