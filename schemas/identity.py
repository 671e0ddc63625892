"""One identifier policy for every kind on every surface: normalise, refuse junk.

Every surface names customers through this module (``normalise_email``, ...,
``normalise``/``normalised`` for a whole ``Identifiers``), so a value means the
same customer whichever API sent it, and the consumers compare identifiers byte
for byte. The consumers check again (``identifiers_refusal``) so a message from
another producer cannot bypass it.

**Kinds** (``KINDS``, the fields of ``Identifiers``): ``email``; ``external_id``
(the client's own id of the person: Segment's ``userId``, the batch endpoint's
``customerExternalId``, 004's ``external_id``); ``phone``; ``customer_id`` (ours,
``customers.id``); ``anonymous_id`` (a device's id, Segment's ``anonymousId``).

**Normalisation** (``clean``), the same for every kind, in this order:

1. At most ``4 * MAX_IDENTIFIER_LENGTH`` characters as sent (the work below stays
   bounded), no NUL and no lone surrogate (``limits.text_refusal``).
2. Unicode NFKC: compatibility forms fold (fullwidth ``U+FF21`` is ``A``, a
   no-break space is a space). Skipped for ASCII text, which NFKC leaves as is.
3. Invisible characters are **removed**, not refused: format characters (Unicode
   category Cf: zero-width space U+200B, joiners, word joiner U+2060, BOM U+FEFF,
   soft hyphen, bidi marks, tags) and the other invisible ones (``_INVISIBLE``:
   Hangul fillers, the combining grapheme joiner, variation selectors, the braille
   blank), before NFKC and after it. ``abc`` + U+200B names the customer ``abc``,
   the one it looks like; a refusal would tell the sender about a character they
   cannot see.
4. Surrounding whitespace is trimmed: ``' 1'`` names the customer ``'1'`` (stored
   apart they would be two customers for one person). A character left inside
   that prints nothing (a control, a tab, a line separator, private use) is refused.
5. At most ``MAX_IDENTIFIER_LENGTH`` characters.

Then per kind: emails are case-insensitive (lower-cased) and must be addresses
(``local@domain``, one ``@``, no whitespace, a domain of at least two non-empty
labels: ``a@.``, ``a@b.``, ``a@.com`` are refused); phones become E.164
(``phonenumbers``); customer ids are positive 64-bit integers in ASCII decimal
digits as sent (a compatibility digit such as ``²`` would name another customer
once folded: refused); external and anonymous ids are case-sensitive and kept as
cleaned.

**Junk** (``is_junk``): values a client sends when it has no identifier. Merging on
one fuses strangers, so they are refused (``JunkIdentifier``). A shape, not only a
list: the cleaned value, case-folded, is junk when

- it has no letter or digit at all (``-``, ``{}``, ``[]``, ``""``, a lone
  zero-width space, which cleaning leaves empty);
- its letters and digits are all zeros (``0``, ``0.0``, ``(0)``, the nil UUID
  ``00000000-0000-0000-0000-000000000000``);
- its letters and digits alone spell a junk word (``JUNK_WORDS``): PostHog's
  illegal ids (``person-utils.ts``: anonymous, guest, distinct_id, id,
  not_authenticated, email, undefined, true, false, [object Object], NaN, None,
  null, 0) and the other placeholders clients send (n/a, unknown, nil, test, user,
  ...), whatever the brackets, quotes and separators around or inside them:
  ``(null)``, ``'undefined'``, ``N/A``, ``n.a.``, ``not_set``, ``{{user_id}}``;
- or, brackets, quotes and spaces aside, it is ``-1``.

Ids such as ``1``, ``42``, UUIDs and email addresses are never junk by shape.

What a surface does with a junk identifier: it refuses the write (400 in its own
error format; the batch endpoint rejects the item), except where the API's own
document says the write is kept: on the Segment surface a junk ``userId`` or
``anonymousId`` beside a usable one is ignored and the call kept (Segment's
blocked values "remain in the payload ... not promoted to an identifier"); with
none usable the call is refused. Either way it never links two customers.

**Per-team blocked values** (``blocked_identifiers``, ``ingest-admin
block-identifier``) extend the built-in list for one team; they are stored
normalised by ``normalise_kind`` and enforced by the gateway
(``ingest_gateway.write.accept``).

Imports ``schemas.limits`` and ``schemas.messages`` only (and ``phonenumbers``).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from functools import lru_cache

import phonenumbers

from schemas.limits import (
    INT64_MAX,
    INT64_MIN,
    MAX_NAME_LENGTH,
    bigint_id,
    json_id,
    text_refusal,
)
from schemas.messages import Identifiers

MAX_IDENTIFIER_LENGTH = MAX_NAME_LENGTH
# Beyond this many characters as sent, a value is refused before it is normalised:
# the work per value stays bounded (NFKC and invisible characters can shorten it,
# never by this much in a value a client means).
MAX_RAW_LENGTH = 4 * MAX_IDENTIFIER_LENGTH

# The kinds of identifier, as ``Identifiers`` names them.
KINDS = ("email", "external_id", "phone", "customer_id", "anonymous_id")

# Values clients send when they have no identifier, compared by their letters and
# digits only (``_squashed``): "n/a", "N.A." and "na" are one entry. PostHog's
# illegal ids first, then placeholders seen from SDKs, templates and test data.
JUNK_WORDS = (
    # PostHog, nodejs/src/common/persons/person-utils.ts
    "anonymous",
    "guest",
    "distinctid",
    "distinct_id",
    "id",
    "not_authenticated",
    "email",
    "undefined",
    "true",
    "false",
    "[object Object]",
    "nan",
    "none",
    "null",
    # no value at all
    "n/a",
    "na",
    "nil",
    "unknown",
    "unidentified",
    "unauthenticated",
    "anon",
    "not set",
    "unset",
    "not available",
    "not applicable",
    "not provided",
    "empty",
    "blank",
    "missing",
    "void",
    "undef",
    "nul",
    "nill",
    "nothing",
    "no email",
    "no id",
    "default",
    "placeholder",
    "tbd",
    # template or field names sent instead of their value
    "user",
    "user_id",
    "userid",
    "anonymous_id",
    "anonymousId",
    "external_id",
    "customer_id",
    "identifier",
    "e-mail",
    "email address",
    # test data left in production (Segment names "void" and "abc123")
    "test",
    "testuser",
    "test user",
    "abc123",
    "xxx",
    "dummy",
    "changeme",
)

_SIGNED_JUNK = frozenset({"-1", "\u22121"})  # (U+2212, the minus sign: NFKC keeps it)

# Invisible characters that are not format characters (Cf): Hangul fillers, the
# combining grapheme joiner, variation selectors, Khmer inherent vowels, Mongolian
# free variation selectors, the braille blank.
_INVISIBLE = frozenset(
    "\u115f\u1160\u3164\uffa0\u034f\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)

# Brackets, quotes and spaces around a value: stripped before the "-1" comparison.
_WRAPPING = "\"'`()[]{}<> \t\r\n\u201c\u201d\u2018\u2019\u00ab\u00bb"


class InvalidIdentifier(ValueError):
    """An identifier that cannot name a customer; ``field`` says which."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class JunkIdentifier(InvalidIdentifier):
    """A value clients send when they have no identifier (``is_junk``): a surface
    may ignore it and keep the rest of the write, where its API says so."""


_NOT_ALNUM = re.compile(r"[\W_]+")  # (``\w``: what ``str.isalnum`` holds, and "_")


def _squashed(value: str) -> str:
    """The letters and digits of ``value``, case-folded."""
    return _NOT_ALNUM.sub("", value.casefold())


_JUNK_SQUASHED = frozenset(_squashed(word) for word in JUNK_WORDS)


_LONGEST_JUNK = max(map(len, _JUNK_SQUASHED))
_ASCII_SEPARATORS = string.punctuation + string.whitespace
_ZEROS_AND_SEPARATORS = "0" + _ASCII_SEPARATORS


def is_junk(value: str) -> bool:
    """Whether a cleaned value (``clean``) is junk: no letter or digit, zeros only, a
    junk word whatever its separators, or ``-1`` (module docstring, "Junk")."""
    if value.isascii():
        # The usual case, without the regular expression: the ends stripped of
        # separators, then only a short value can spell a junk word.
        core = value.strip(_ASCII_SEPARATORS)
        if not core.strip(_ZEROS_AND_SEPARATORS):
            return True  # nothing, or zeros only
        if len(core) > 2 * _LONGEST_JUNK:
            return False
        squashed = core.lower() if core.isalnum() else _squashed(core)
    else:
        squashed = _squashed(value)
        if not squashed.strip("0"):
            return True
    if squashed == "1":
        return value.strip(_WRAPPING) in _SIGNED_JUNK
    return squashed in _JUNK_SQUASHED


def _invisible(c: str) -> bool:
    return c in _INVISIBLE or unicodedata.category(c) == "Cf"


def _visible(value: str) -> str:
    """NFKC, without invisible characters: removed before folding too, so that what
    they stood between folds as it will when cleaned again (``e`` U+200B U+0301 is
    ``é``, as ``e`` U+0301 is): cleaning a clean value changes nothing."""
    value = "".join(c for c in value if not _invisible(c))
    value = unicodedata.normalize("NFKC", value)
    return "".join(c for c in value if not _invisible(c))


def clean(field: str, value: str) -> str:
    """``value`` normalised as every kind is (steps 1 to 5 of the module docstring),
    without the junk test; ``InvalidIdentifier`` naming ``field`` when it cannot be."""
    if len(value) > MAX_RAW_LENGTH:
        raise InvalidIdentifier(field, f"longer than {MAX_IDENTIFIER_LENGTH} characters")
    refusal = text_refusal(value)
    if refusal is not None:
        raise InvalidIdentifier(field, refusal)
    if not value.isascii():
        value = _visible(value)
    value = value.strip()
    if not value.isprintable():
        odd = next(c for c in value if not c.isprintable())
        raise InvalidIdentifier(
            field, f"contains an invisible or control character (U+{ord(odd):04X})"
        )
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise InvalidIdentifier(field, f"longer than {MAX_IDENTIFIER_LENGTH} characters")
    return value


def _usable(field: str, value: str) -> str:
    cleaned = clean(field, value)
    if is_junk(cleaned):
        raise JunkIdentifier(field, f"{value!r} is not a usable identifier")
    return cleaned


# Characters no address of ours holds (quoted local parts and IP literals are not
# supported: no client sends them to name a customer).
_NOT_IN_ADDRESS = frozenset(' "(),:;<>[\\]')


def normalise_email(value: str) -> str:
    """Cleaned and lower-cased (emails are compared case-insensitively); an address:
    ``local@domain`` with one ``@`` and a domain of non-empty labels, a dot between."""
    email = _usable("email", value).lower()
    if not email.isascii():  # (a lower-case letter may compose with a mark that follows)
        email = unicodedata.normalize("NFKC", email)
    local, at, domain = email.partition("@")
    labels = domain.split(".")
    if (
        not at
        or not local
        or "@" in domain
        or len(labels) < 2
        or not all(labels)
        or not _NOT_IN_ADDRESS.isdisjoint(email)
    ):
        raise InvalidIdentifier("email", f"{value!r} is not an email address")
    return email


def normalise_phone(value: str) -> str:
    """E.164, as the maintained ``phonenumbers`` library formats it."""
    raw = _usable("phone_number", value)
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentifier("phone_number", f"{value!r} is not in E.164 format") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidIdentifier("phone_number", f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_external_id(value: str) -> str:
    """Cleaned, case-sensitive; junk refused."""
    return _usable("external_id", str(value))


def normalise_customer_id(value: str) -> str:
    """Our own ids: ``customers.id``, a positive ``bigint`` in ASCII decimal digits.

    Digits are taken as sent, not folded by NFKC: ``²`` or a fullwidth one (U+FF11)
    would read as 2 or 1, the id of another customer, so they are refused."""
    text = str(value)
    number = bigint_id(_usable("customer_id", text))
    if number is None or not all(c.isascii() or c.isspace() or _invisible(c) for c in text):
        raise InvalidIdentifier("customer_id", f"{value!r} is not a customer id")
    return str(number)


def normalise_anonymous_id(value: str) -> str:
    """Cleaned, case-sensitive; junk refused."""
    return _usable("anonymous_id", str(value))


NORMALISERS: dict[str, Callable[[str], str]] = {
    "email": normalise_email,
    "external_id": normalise_external_id,
    "phone": normalise_phone,
    "customer_id": normalise_customer_id,
    "anonymous_id": normalise_anonymous_id,
}


def normalise_kind(kind: str, value: str) -> str:
    """``value`` normalised as an identifier of ``kind`` (one of ``KINDS``)."""
    return NORMALISERS[kind](value)


def normalise(identifiers: Identifiers) -> Identifiers:
    return Identifiers(
        email=normalise_email(identifiers.email) if identifiers.email else None,
        external_id=(
            normalise_external_id(identifiers.external_id) if identifiers.external_id else None
        ),
        phone=normalise_phone(identifiers.phone) if identifiers.phone else None,
        customer_id=(
            normalise_customer_id(identifiers.customer_id) if identifiers.customer_id else None
        ),
        anonymous_id=(
            normalise_anonymous_id(identifiers.anonymous_id) if identifiers.anonymous_id else None
        ),
    )


@lru_cache(maxsize=1 << 16)
def normalised(identifiers: Identifiers) -> Identifiers | InvalidIdentifier:
    """``normalise``, or the error it raises; cached (parsing a phone costs tens of us)."""
    try:
        return normalise(identifiers)
    except InvalidIdentifier as exc:
        return exc


# -- identifiers as a JSON document sends them ------------------------------------------

# A JSON value that is neither a string nor an integer names no one.
ID_TYPE_RULE = f"must be a string or an integer from {INT64_MIN} to {INT64_MAX}"
REQUIRED_RULE = "is required"
_NO_ONE = Identifiers()


def from_json(
    external_id: object, anonymous_id: object, email: object = None, *, junk_ignored: bool
) -> Identifiers:
    """The customer a JSON document names by an external id, an anonymous id and maybe
    an email, as sent (None: absent), normalised: the Segment spec's ``userId``,
    ``anonymousId`` (or ``previousId``) and ``traits.email``, read by one call per
    message. An id may be a string or an integer (an integral float is that integer).

    ``junk_ignored``: a junk id beside a usable one is ignored (the module docstring,
    "Junk"); with none usable, the first junk one is refused; with none sent, the
    ``Identifiers`` name no one and the caller says what it requires. Otherwise both
    ids are required and a junk one is refused. An ``email`` that is not a usable
    address is no identifier (nor an error). A refusal is ``InvalidIdentifier``, its
    ``field`` the kind (``external_id``, ``anonymous_id``), checked in that order.

    Cached: a customer's ids come back call after call (a refusal is raised again,
    never cached). Numbers are not cached (1, 1.0 and True would be one key), nor a
    value longer than any valid id (it would hold the memory).
    """
    if type(email) is not str:
        email = None
    if (
        (external_id is None or (type(external_id) is str and len(external_id) <= MAX_NAME_LENGTH))
        and (
            anonymous_id is None
            or (type(anonymous_id) is str and len(anonymous_id) <= MAX_NAME_LENGTH)
        )
        and (email is None or len(email) <= MAX_NAME_LENGTH)
    ):
        return _from_json_cached(external_id, anonymous_id, email, junk_ignored)
    return _from_json(external_id, anonymous_id, email, junk_ignored)


def id_from_json(field: str, value: object) -> str:
    """An identifier sent as JSON (not None) as text (``limits.json_id``), else
    ``InvalidIdentifier`` naming ``field``."""
    if type(value) is str:  # (the usual id, without a call: the Segment loop asks per id)
        return value
    text = json_id(value)
    if text is None:
        raise InvalidIdentifier(field, ID_TYPE_RULE)
    return text


@lru_cache(maxsize=1 << 14)
def _from_json_cached(
    external_id: str | None, anonymous_id: str | None, email: str | None, junk_ignored: bool
) -> Identifiers:
    return _from_json(external_id, anonymous_id, email, junk_ignored)


def _from_json(
    external_id: object, anonymous_id: object, email: str | None, junk_ignored: bool
) -> Identifiers:
    junk: JunkIdentifier | None = None
    named: list[str | None] = []
    for kind, value, normalise in (
        ("external_id", external_id, normalise_external_id),
        ("anonymous_id", anonymous_id, normalise_anonymous_id),
    ):
        if value is None:
            if not junk_ignored:
                raise InvalidIdentifier(kind, REQUIRED_RULE)
            named.append(None)
            continue
        try:
            named.append(normalise(id_from_json(kind, value)))
        except JunkIdentifier as exc:
            if not junk_ignored:
                raise
            junk = junk or exc
            named.append(None)
    external, anonymous = named
    if external is None and anonymous is None:
        if junk is not None:
            raise junk
        return _NO_ONE
    if email is not None:
        try:
            email = normalise_email(email)
        except InvalidIdentifier:
            email = None  # not an identifier, only a trait
    return Identifiers(email=email, external_id=external, anonymous_id=anonymous)


def identifiers_refusal(identifiers: Identifiers) -> str | None:
    """Why a message's identifiers cannot be applied, or None: the consumers' rule.

    They must name someone and be normalised already, so that the consumers compare
    them byte for byte; the gateway applies the same rule before publishing. A
    message published before a rule was added (a junk id the gateway then let
    through) is dead-lettered with this reason rather than merged on.
    """
    checked = normalised(identifiers)
    if isinstance(checked, InvalidIdentifier):
        return f"invalid identifier: {checked}"
    if checked != identifiers:
        return "identifiers are not normalised"
    if not checked.email and not checked.items():  # (an email alone: the hot path)
        return "no customer identifier"
    return None
