"""JSON Schemas of the values the contract holds: the OpenAPI description's shared parts.

The gateway's OpenAPI description (``ingest_gateway.web.openapi``) says, field by
field, what a request may hold, so that client generators and fuzzers can trust it.
The rules are the contract's (``schemas.limits``, ``schemas.identity``,
``schemas.times``); their JSON Schemas are made here, from the same rules and the
same functions, so that the two cannot drift apart. Surfaces refer to them with the
``$ref`` constants below (``JSON_OBJECT``, ``EMAIL``, ``DATE_TIME``, ...); the
description carries every one under ``components/schemas`` (``components``).

- **JSON as stored** (``JsonValue``, ``JsonObject``): strings and names without NUL,
  integers within the signed 64-bit range, at any place of a free-form value.
- **Names** (``Name``: 1 to 255 characters, not blank; ``Text``: at most 255) and
  **times** (``DateTime``: RFC 3339 with a zone, a real date, years 1 to 9999;
  ``DateTimeUtc``: the zone optional, UTC when absent).
- **Identifiers** (``IdentifierText``, ``NotJunk``, ``ExternalId``, ``Email``,
  ``Phone``, ``CustomerId``): ``schemas.identity``'s policy as patterns. Its
  character classes come from the rules themselves, per character: a character is
  allowed where, once NFKC-folded and without invisible characters, it prints; an
  identifier must hold a letter or digit other than ``0``; the junk words are
  refused whatever ASCII separators sit around and between their letters.

What JSON Schema cannot say is in each component's ``description``; docs/api.md,
"What the OpenAPI cannot say", lists it in one place.

Imports the standard library and ``schemas`` only.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from functools import cache
from typing import Any

from schemas.identity import (
    _JUNK_SQUASHED,
    _LONGEST_JUNK,
    _NOT_IN_ADDRESS,
    _SIGNED_JUNK,
    _WRAPPING,
    MAX_IDENTIFIER_LENGTH,
    MAX_RAW_LENGTH,
    _squashed,
    _visible,
)
from schemas.limits import INT64_MAX, INT64_MIN, MAX_NAME_LENGTH

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to the component ``name`` (``components``)."""
    return {"$ref": f"#/components/schemas/{name}"}


JSON_VALUE = ref("JsonValue")
JSON_OBJECT = ref("JsonObject")
NAME = ref("Name")
TEXT = ref("Text")
DATE_TIME = ref("DateTime")
DATE_TIME_UTC = ref("DateTimeUtc")
IDENTIFIER_TEXT = ref("IdentifierText")
EXTERNAL_ID = ref("ExternalId")
EMAIL = ref("Email")
PATH_EMAIL = ref("PathEmail")
PHONE = ref("Phone")
CUSTOMER_ID = ref("CustomerId")

NO_NUL = "^[^\\x00]*$"
INT64: Schema = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
# An identifier sent as a JSON integer: its digits, the text; 0 and -1 are junk as text.
INTEGER_ID: Schema = INT64 | {"not": {"enum": [0, -1]}}
# A number with a fraction (an integral one is an integer to JSON Schema, bounded above).
FRACTION: Schema = {"type": "number", "not": {"type": "integer"}}
# An envelope's other fields, which the gateway skips without parsing: any JSON text.
UNREAD_FIELDS: Schema = {
    "propertyNames": True,
    "additionalProperties": {"description": "ignored, unread"},
}
# A value a field may hold where JSON null stands for the field left out.
NULL: Schema = {"type": "null"}

_UNICODE_TEXT = "Unicode text (a lone surrogate, which no UTF-8 can carry, is refused like NUL)"


# -- character classes, per character, from the identity policy's own functions -------


def _escaped(code: int) -> str:
    """A character as a class member reads it alike in ECMA-262, Python and Rust."""
    if code < 0x80:
        char = chr(code)
        return char if char.isalnum() else f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return chr(code)  # (above the BMP the engines share no escape; the character itself)


def _ranges(members: Iterator[int]) -> str:
    """The body of a character class holding ``members`` (ascending code points)."""
    parts: list[str] = []
    start = end = -2
    for code in members:
        if code != end + 1:
            if start >= 0:
                parts.append(_span(start, end))
            start = code
        end = code
    if start >= 0:
        parts.append(_span(start, end))
    return "".join(parts)


def _span(start: int, end: int) -> str:
    if start == end:
        return _escaped(start)
    joint = "" if end == start + 1 else "-"
    return f"{_escaped(start)}{joint}{_escaped(end)}"


# The characters ``\\w`` reads as a word's in Python (letters, digits, ``_``) and in
# the Rust engine JSON Schema validators use (letters, marks, decimal digits,
# connector punctuation, the joiners). A class names what they do not agree on itself.
_JOINERS = frozenset("\u200c\u200d")


def _python_word(char: str, category: str) -> bool:
    return char.isalnum() or char == "_"


def _rust_word(char: str, category: str) -> bool:
    return category[0] in "LM" or category in {"Nd", "Nl", "Pc"} or char in _JOINERS


def _class(members: set[int], words: set[int], agreed: set[int]) -> str:
    """A class of ``members``: ``\\w`` for the word characters both engines agree on,
    the others named, so that it stays small for the generators that list every member
    (``words``: word characters to either engine, ``agreed``: to both)."""
    named = _ranges(iter(sorted(members - agreed)))
    barred = _ranges(iter(sorted(words - members)))
    if not barred:
        return f"[\\w{named}]"
    return f"(?:[^\\W{barred}]|[{named}])" if named else f"[^\\W{barred}]"


@cache
def _characters() -> dict[str, str]:
    """Character classes, each from the per-character reading of ``schemas.identity.clean``:

    - ``visible``: prints once NFKC-folded; ``invisible``: cleaning removes it;
    - ``edge``: only whitespace once folded, or invisible (cleaning strips it at the ends);
    - ``alnum``: folds to a letter or a digit other than 0 (what makes a value no junk);
    - ``address``: prints, and folds to none of ``@``, ``.``, whitespace or the
      characters no address holds; ``path_address``: nor is ``/``;
    - ``at``, ``dot``: fold to ``@``, ``.``.

    A character both engines read as ``\\w`` (or ``\\s``) stands in a class as that.
    """
    members: dict[str, set[int]] = {
        name: set() for name in ("visible", "invisible", "edge", "alnum", "address", "at", "dot")
    }
    words: set[int] = set()  # \w to both engines, or to either
    agreed: set[int] = set()
    special = set("@.") | set(_NOT_IN_ADDRESS)
    for code in range(0x110000):
        char = chr(code)
        category = unicodedata.category(char)
        if category in {"Cn", "Co", "Cs"}:
            continue  # unassigned, private or a surrogate: none of the classes
        python, rust = _python_word(char, category), _rust_word(char, category)
        if python or rust:
            words.add(code)
            if python and rust:
                agreed.add(code)
        folded = _visible(char) if code >= 0x80 else char
        if all(c.isspace() for c in folded):
            members["edge"].add(code)
        if not all(c.isprintable() for c in folded):
            continue
        members["visible" if folded else "invisible"].add(code)
        if _squashed(folded).strip("0"):
            members["alnum"].add(code)
        if folded == "@":
            members["at"].add(code)
        elif folded == ".":
            members["dot"].add(code)
        elif folded and not any(c in special or c.isspace() for c in folded):
            members["address"].add(code)
    spaces = {c for c in members["edge"] if chr(c).isspace() and not 0x1C <= c <= 0x1F}
    members["path_address"] = members["address"] - {ord("/")}  # (a path segment holds none)
    classes = {
        name: _class(members[name], words, agreed)
        for name in ("visible", "alnum", "address", "path_address")
    }
    return classes | {
        "invisible": f"[{_ranges(iter(sorted(members['invisible'])))}]",
        "edge": f"[\\s{_ranges(iter(sorted(members['edge'] - spaces)))}]",
        "at": f"[{_ranges(iter(sorted(members['at'])))}]",
        "dot": f"[{_ranges(iter(sorted(members['dot'])))}]",
    }


def not_blank(without: str = "") -> str:
    """A pattern of text with a character other than whitespace, without NUL (nor any
    character of ``without``): what ``str.strip`` leaves something of."""
    refused = "\\x00" + "".join(_escaped(ord(c)) for c in without)
    return f"^[^{refused}]*[^{refused}{_blank()}][^{refused}]*$"


@cache
def _blank() -> str:
    """Whitespace to ``str.strip`` (every such character is below U+3001)."""
    return _ranges(c for c in range(0x3001) if chr(c).isspace())


# Characters between the letters of a junk word: every ASCII one that is no letter or
# digit, and the invisible characters of the blocks that hold most of them (soft
# hyphen, zero-width and joiners, bidi and word joiners, BOM, variation selectors,
# tags); other separators are the documented gap (NotJunk's description).
_INVISIBLE_BLOCKS = (
    (0xAD, 0xAD),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
    (0xE0100, 0xE01EF),
)
_SEPARATOR = (
    "["
    + _ranges(
        iter(
            sorted(
                [c for c in range(0x80) if not _squashed(chr(c))]
                + [c for low, high in _INVISIBLE_BLOCKS for c in range(low, high + 1)]
            )
        )
    )
    + "]"
)


def _junk_word(word: str) -> str:
    """``word``'s letters with separators around and between them, as ``is_junk`` reads
    ASCII values: the core (between the outer separators) at most twice the longest
    junk word, so each gap between two letters is bounded to keep within it."""
    letters = [f"[{c.upper()}{c}]" if c.isalpha() else c for c in word]
    gap = (2 * _LONGEST_JUNK - len(word)) // max(len(word) - 1, 1)
    return f"{_SEPARATOR}{{0,{gap}}}".join(letters)


def _junk_patterns() -> list[str]:
    words = "|".join(_junk_word(word) for word in sorted(_JUNK_SQUASHED))
    wrapping = "[" + _ranges(iter(sorted(ord(c) for c in _WRAPPING))) + "]"
    minus = "[" + _ranges(iter(sorted(ord(value[0]) for value in _SIGNED_JUNK))) + "]"
    return [f"^{_SEPARATOR}*(?:{words}){_SEPARATOR}*$", f"^{wrapping}*{minus}1{wrapping}*$"]


def _at_most(limit: int) -> str:
    """A regular expression of the decimal numbers 1 to ``limit`` without leading zeros."""
    digits = str(limit)
    shorter = f"[1-9][0-9]{{0,{len(digits) - 2}}}"
    options = [shorter]
    for i, digit in enumerate(digits):
        rest = len(digits) - i - 1
        low = "1" if i == 0 else "0"
        if digit > low:
            top = str(int(digit) - 1)
            tail = f"[0-9]{{{rest}}}" if rest else ""
            options.append(f"{digits[:i]}[{low}-{top}]{tail}")
    options.append(digits)
    return "(?:" + "|".join(options) + ")"


# -- times -------------------------------------------------------------------------

_YEAR = "(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_MONTH_DAY = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?"
_ZONE = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9])?)"
_EMAIL = (
    "An email address, compared without case: local@domain, one @, a domain of at least"
    ' two non-empty labels, none of space "(),:;<>[\\], once cleaned as IdentifierText'
    " is; not junk (NotJunk). The pattern reads each character alone: a character that"
    " folds into several, one a dot (\u2488 is 1.), is beyond it."
)
_TIMES_RULES = (
    "RFC 3339: YYYY-MM-DD, T (or t, or a space), hh:mm:ss with seconds, an optional"
    " fraction of 1 to 9 digits; a real date in the years 0001 to 9999. The instant must"
    " also fall within the years 1 to 9999 in UTC, which a pattern cannot see at the"
    " year's ends (0001-01-01T00:30:00+01:00 is refused)."
)


@cache
def components() -> dict[str, Schema]:
    """Every shared schema by name, for the description's ``components/schemas``."""
    chars = _characters()
    visible, invisible, edge = chars["visible"], chars["invisible"], chars["edge"]
    at, dot = chars["at"], chars["dot"]
    blank = _blank()

    def email(address: str, description: str) -> Schema:
        # (invisible characters anywhere but in place of a label's one character)
        local = f"(?:(?:{address}|{dot}){invisible}*)+"
        label = f"{invisible}*(?:{address}{invisible}*)+"
        structure = f"^{edge}*{local}{at}{label}(?:{dot}{label})+{edge}*$"
        return {
            "description": description,
            "allOf": [IDENTIFIER_TEXT, {"pattern": structure}, ref("NotJunk")],
        }

    return {
        "JsonValue": {
            "description": "Any JSON value the store keeps: strings and object keys without"
            f" NUL (\\u0000), integers from {INT64_MIN} to {INT64_MAX}, finite numbers;"
            " nested at most MAX_JSON_DEPTH (32) levels, which JSON Schema cannot count;"
            f" {_UNICODE_TEXT}.",
            "anyOf": [
                {"type": "string", "pattern": NO_NUL},
                INT64,
                FRACTION,
                {"type": "boolean"},
                NULL,
                {"type": "array", "items": JSON_VALUE},
                JSON_OBJECT,
            ],
        },
        "JsonObject": {
            "type": "object",
            "description": "A JSON object of any fields, each a JsonValue.",
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": JSON_VALUE,
        },
        "Name": {
            "type": "string",
            "description": f"1 to {MAX_NAME_LENGTH} characters, not all whitespace, no NUL;"
            f" {_UNICODE_TEXT}.",
            "minLength": 1,
            "maxLength": MAX_NAME_LENGTH,
            "pattern": not_blank(),
        },
        "Text": {
            "type": "string",
            "description": f"At most {MAX_NAME_LENGTH} characters, no NUL; {_UNICODE_TEXT}.",
            "maxLength": MAX_NAME_LENGTH,
            "pattern": NO_NUL,
        },
        "DateTime": {
            "type": "string",
            "format": "date-time",
            "description": "A date-time with its zone (Z or an offset, +hh:mm[:ss]). "
            + _TIMES_RULES,
            "pattern": f"^{_DATE}[Tt ]{_TIME}{_ZONE}$",
        },
        "DateTimeUtc": {
            "type": "string",
            "description": "A date-time; without a zone it is UTC. " + _TIMES_RULES,
            "pattern": f"^{_DATE}[Tt ]{_TIME}{_ZONE}?$",
        },
        "IdentifierText": {
            "type": "string",
            "description": "Text that names a customer once cleaned (schemas.identity): NFKC"
            " folds it (fullwidth A is A), invisible characters (zero-width space, BOM, soft"
            " hyphen, ...) are removed, surrounding whitespace is trimmed, and what is left must"
            f" print and be at most {MAX_IDENTIFIER_LENGTH} characters ({MAX_RAW_LENGTH} as"
            " sent). The pattern reads each character alone: a character that NFKC folds into"
            " several (\ufb00 is ff) counts as one, and a letter and a combining mark that NFKC"
            " composes as two.",
            "maxLength": MAX_RAW_LENGTH,
            "pattern": f"^{edge}*(?:{visible}{invisible}*){{0,{MAX_IDENTIFIER_LENGTH}}}{edge}*$",
        },
        "NotJunk": {
            "description": "Not a value clients send when they have no identifier"
            " (schemas.identity, is_junk): it holds a letter or a digit other than 0, and is"
            " not a junk word (null, undefined, n/a, anonymous, test, ...) whatever separators"
            " sit around or between its letters, nor -1. The junk-word patterns read ASCII;"
            " a junk word written with other separators or compatibility letters (n\u00b7u"
            "\u00b7l\u00b7l, \uff4e\uff55\uff4c\uff4c) is refused as well, which they do not"
            " see; so are the values a team blocked (ingest-admin block-identifier).",
            "pattern": chars["alnum"],
            "not": {"anyOf": [{"pattern": p} for p in _junk_patterns()]},
        },
        "ExternalId": {
            "description": "An identifier: your own id of the person or device, case-sensitive,"
            " as cleaned (IdentifierText, NotJunk).",
            "allOf": [IDENTIFIER_TEXT, ref("NotJunk")],
        },
        "Email": email(chars["address"], _EMAIL),
        "PathEmail": email(
            chars["path_address"], _EMAIL + " In a path, without / (a path segment holds none)."
        ),
        "Phone": {
            "type": "string",
            "format": "phone",
            "description": "A phone number in E.164 (+14155552671) that is a valid number of"
            " its country's numbering plan (the phonenumbers library): the pattern gives the"
            ' shape, the format "phone" the validity no pattern can say.',
            "pattern": "^\\+[1-9][0-9]{1,14}$",
        },
        "CustomerId": {
            "description": f"Our customer id (customers.id): a positive integer up to {INT64_MAX},"
            " as a JSON number or as its ASCII decimal digits (leading zeros and surrounding"
            " whitespace aside).",
            "type": ["string", "integer"],
            "pattern": f"^[{blank}]*0*{_at_most(INT64_MAX)}[{blank}]*$",
            "minimum": 1,
            "maximum": INT64_MAX,
        },
    }


def nullable(schema: Schema) -> Schema:
    """``schema``, or JSON null standing for the field left out."""
    return {"anyOf": [schema, NULL]}


def object_of(properties: dict[str, Schema], *required: str, **more: Any) -> Schema:
    """A JSON object with ``properties`` (other fields: any JsonValue, ignored); ``more``
    adds keywords, or replaces these (``propertyNames``, ``additionalProperties``)."""
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "propertyNames": {"pattern": NO_NUL},
        "additionalProperties": JSON_VALUE,
    }
    if required:
        schema["required"] = list(required)
    return schema | more
