"""Normalisation and validation of customer identifiers.

Done at the gateway so the consumers compare identifiers byte for byte; the
consumers check again (``identifiers_refusal``) so a message from another producer
cannot bypass it.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from schemas.limits import MAX_NAME_LENGTH, bigint_id, text_refusal
from schemas.messages import Identifiers

MAX_IDENTIFIER_LENGTH = MAX_NAME_LENGTH

# Values that clients send when they have no identifier at all. Merging on them
# would fuse unrelated people into one profile, so they are refused outright.
JUNK_IDENTIFIERS = frozenset(
    {
        "",
        "null",
        "none",
        "nil",
        "undefined",
        "nan",
        "0",
        "-1",
        "guest",
        "anonymous",
        "[object object]",
        "true",
        "false",
        "email",
        "test",
    }
)


class InvalidIdentifier(ValueError):
    """An identifier that cannot name a customer; ``field`` says which."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _check_plain(field: str, value: str) -> str:
    value = value.strip()
    if value.lower() in JUNK_IDENTIFIERS:
        raise InvalidIdentifier(field, f"{value!r} is not a usable identifier")
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise InvalidIdentifier(field, f"longer than {MAX_IDENTIFIER_LENGTH} characters")
    refusal = text_refusal(value)
    if refusal is not None:
        raise InvalidIdentifier(field, refusal)
    return value


def normalise_email(value: str) -> str:
    """Trimmed and lower-cased: emails are compared case-insensitively."""
    email = _check_plain("email", value).lower()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or " " in email:
        raise InvalidIdentifier("email", f"{value!r} is not an email address")
    return email


def normalise_phone(value: str) -> str:
    """E.164, as the maintained ``phonenumbers`` library formats it."""
    raw = _check_plain("phone_number", value)
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentifier("phone_number", f"{value!r} is not in E.164 format") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidIdentifier("phone_number", f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise_external_id(value: str) -> str:
    return _check_plain("external_id", str(value))


def normalise_customer_id(value: str) -> str:
    """Our own ids: ``customers.id``, a positive ``bigint`` in ASCII decimal digits."""
    number = bigint_id(_check_plain("customer_id", str(value)))
    if number is None:
        raise InvalidIdentifier("customer_id", f"{value!r} is not a customer id")
    return str(number)


def normalise_anonymous_id(value: str) -> str:
    return _check_plain("anonymous_id", str(value))


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


def identifiers_refusal(identifiers: Identifiers) -> str | None:
    """Why a message's identifiers cannot be applied, or None: the consumers' rule.

    They must name someone and be normalised already, so that the consumers compare
    them byte for byte; the gateway applies the same rule before publishing.
    """
    checked = normalised(identifiers)
    if isinstance(checked, InvalidIdentifier):
        return f"invalid identifier: {checked}"
    if checked != identifiers:
        return "identifiers are not normalised"
    if not checked.email and not checked.items():  # (an email alone: the hot path)
        return "no customer identifier"
    return None
