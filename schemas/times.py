"""Times a client sends: the one parser every surface uses, and the clock-skew rule.

**Accepted** (``parse_time``), RFC 3339's ``date-time`` with the choices below:

* ``YYYY-MM-DD``, a separator ``T`` (also ``t``, or a space, as RFC 3339 allows),
  ``hh:mm:ss`` (seconds required; hour 00-23, second 00-59: no leap second ``60``);
* optionally a fraction of a second: ``.`` and 1 to 9 digits (digits beyond the
  microsecond, which Python keeps, are dropped, never rounded up);
* a zone: ``Z`` (or ``z``), ``+hh:mm`` / ``-hh:mm``, or ``+hh:mm:ss`` / ``-hh:mm:ss``
  (what Python's ``isoformat()`` writes for an offset with seconds, e.g. a local mean
  time from the tz database before 1900), kept exact to the second;
* no zone at all only where the surface's document says a time without one is UTC
  (``naive_is_utc=True``: Segment's spec, the store events of seed 004); elsewhere it
  is refused with ``ZONE_RULE`` (the batch endpoint's ``occurredAt``);
* within the years 1 to 9999 in UTC (``schemas.limits.TIME_RULE``).

The value returned is always in UTC (``tzinfo is datetime.UTC``). That is the fix for
offsets with seconds: Kafka messages are encoded by msgspec, which writes an offset
in whole minutes, so ``12:00:00+05:30:15`` travelled as ``12:00:00+05:30`` and was
stored 15 s off. An instant in UTC travels as ``Z``, exactly.

**Refused**, each with ``FORMAT_RULE`` and a word on what is wrong: a number (Unix
time: no API document here lists one), a date alone, week dates (``2024-W01-1``),
ordinal dates (``2024-123``), the basic format (``20240501T120000Z``), a time without
seconds (``12:00Z``), a fraction with a comma (``12:00:00,5Z``), an offset without
its colon or minutes (``+0530``, ``+05``), a fraction of a second in an offset,
minutes or seconds of an offset beyond 59, surrounding spaces, anything longer than
the longest accepted form (38 characters). ``datetime.fromisoformat`` alone accepts
most of these and guesses (a date is midnight, ``+05:60`` is ``+06:00``, a week date
is its Monday, any character separates date and time). Here it reads the digits and
checks the ranges (in C), then a few lookups by position check the shape it does
not: so the common input costs little more than ``fromisoformat`` itself.

**Clock skew** (``skew_corrected``): Segment's ``receivedAt - (sentAt -
originalTimestamp)`` puts an event as long before its receipt as it waited on the
device. A wait that is negative beyond ``SKEW_MAX_FUTURE`` (60 s, Sentry Relay's
``max_secs_in_future``: sent before it happened, by the device's own clock) or longer
than ``SKEW_MAX_PAST`` (365 days, a generous bound on an offline queue) is not a
clock skew but a broken clock or made-up times; the caller then uses the receive
time and records that it did. A ``sentAt`` far from the receive time is not refused
by itself: a device whose clock was reset (to 1970, or year 1) is what the correction
is for.

Imports only the standard library and ``schemas.limits``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from schemas.limits import TIME_RULE, ZONE_RULE

FORMAT_RULE: Final = "must be an ISO 8601 date-time, e.g. 2024-05-01T12:00:00Z"
SKEW_MAX_FUTURE: Final = timedelta(seconds=60)
SKEW_MAX_PAST: Final = timedelta(days=365)
SkewFallback = Literal["future", "past"]
_MIN_WAIT: Final = -SKEW_MAX_FUTURE

# 2024-05-01T12:00:00.123456789+05:30:15
_MAX_LENGTH: Final = 38
_fromisoformat: Final = datetime.fromisoformat
_SHAPES: Final = frozenset({"--t::", "-- ::"})  # (and "--T::", tried first)


class InvalidTime(ValueError):
    """A time that is refused; ``reason`` says why, to be shown after the field name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_time(value: object, *, naive_is_utc: bool) -> datetime:
    """``value`` (JSON text, as sent) as an instant in UTC, or ``InvalidTime``.

    The formats are the module's; ``naive_is_utc`` says whether the surface's
    document takes a time without a zone as UTC (else it is refused).
    """
    # fromisoformat first (it checks the digits and the ranges, in C), then the
    # shape it does not check: the characters at 4, 7, 10, 13 and 16 in one slice,
    # and after the seconds only nothing, Z, or a fraction with . and a zone.
    try:
        moment = _fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _lower_case(value, naive_is_utc=naive_is_utc)
    text: str = value  # type: ignore[assignment]  # (fromisoformat read it: a str)
    n = len(text)
    shape = text[4:17:3]
    if shape != "--T::" and shape not in _SHAPES:
        raise InvalidTime(_refusal(text))
    # After the seconds: a fraction (. and 1 to 9 digits, the digits fromisoformat's)
    # only before a zone; minutes and seconds of an offset up to 59 (fromisoformat
    # takes +05:60 for +06:00).
    zone = moment.tzinfo
    if text[-1] == "Z":  # ...ssZ, ...ss.fZ
        bad = n != 20 and (text[19] != "." or not 21 < n < 31)
    elif zone is None:  # ...ss, ...ss.f
        bad = n != 19 and (text[19] != "." or not 20 < n < 30)
    elif text[-3] == ":" and text[-6] in "+-":  # ...ss+hh:mm, ...ss.f+hh:mm
        bad = text[-2] > "5" or (n != 25 and (text[19] != "." or not 26 < n < 36))
    else:  # ...ss+hh:mm:ss, ...ss.f+hh:mm:ss
        bad = (
            text[-9] not in "+-"
            or text[-6] != ":"
            or text[-3] != ":"
            or text[-5] > "5"
            or text[-2] > "5"
            or (n != 28 and (text[19] != "." or not 29 < n <= _MAX_LENGTH))
        )
    if bad:
        raise InvalidTime(_refusal(text))
    if zone is UTC:  # Z and +00:00: the common case
        return moment
    if zone is None:
        if naive_is_utc:  # (parsed again: cheaper than moment.replace(tzinfo=UTC))
            return _fromisoformat(f"{text}Z")
        raise InvalidTime(ZONE_RULE)
    try:  # beyond years 1 to 9999 in UTC (0001-01-01T00:00:00+01:00 is in year 0)
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidTime(TIME_RULE) from None


def _lower_case(value: object, *, naive_is_utc: bool) -> datetime:
    """RFC 3339's lower-case ``t`` and ``z`` (which fromisoformat refuses), else the
    refusal."""
    if (
        type(value) is str
        and 19 < len(value) <= _MAX_LENGTH
        and (value[10] == "t" or value[-1] == "z")
    ):
        return parse_time(
            f"{value[:10]}T{value[11:-1]}{value[-1].upper()}", naive_is_utc=naive_is_utc
        )
    raise InvalidTime(_refusal(value))


def skew_corrected(
    original: datetime, sent_at: datetime, received: datetime
) -> datetime | SkewFallback:
    """``received - (sent_at - original)``, or why the receive time is used instead:
    ``"future"`` when that is more than ``SKEW_MAX_FUTURE`` after ``received``,
    ``"past"`` when more than ``SKEW_MAX_PAST`` before it."""
    waited = sent_at - original  # (a timedelta holds any difference of two datetimes)
    if waited < _MIN_WAIT:
        return "future"
    if waited > SKEW_MAX_PAST:
        return "past"
    return received - waited


def format_time(moment: datetime) -> str:
    """An aware time as RFC 3339 in UTC with ``Z``, e.g. ``2024-05-01T12:00:00.5Z``."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- saying what is wrong (only on the way to a refusal) ------------------------------

_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_WHY: Final = (
    (re.compile(rf"{_DATE}"), "a date alone is not a date-time"),
    (re.compile(r"[0-9]{4}-?W[0-9]{2}(?:-?[0-9])?(?:[Tt ].*)?"), "week dates are not accepted"),
    (re.compile(r"[0-9]{4}-?[0-9]{3}(?:[Tt ].*)?"), "ordinal dates are not accepted"),
    (re.compile(r"[0-9]{8}(?:[Tt ].*)?"), "the basic format is not accepted: use - and :"),
    (re.compile(r".*[0-9],[0-9].*"), "a fraction of a second takes a '.', not a ','"),
    (
        re.compile(rf"{_DATE}[Tt ][0-9]{{2}}(?::[0-9]{{2}})?(?:[.,][0-9]*)?(?:[Zz]|[+-].*)?"),
        "the time needs its seconds, hh:mm:ss",
    ),
    (
        re.compile(rf"{_DATE}[Tt ][0-9:.]+[+-](?:[0-9]{{2}}|[0-9]{{4}}|[0-9]{{6}})"),
        "the offset needs its colon and minutes, e.g. +05:30",
    ),
    (re.compile(r"\s.*|.*\s"), "spaces around it are not accepted"),
    (
        re.compile(rf"{_DATE}[Tt ][0-9:]{{8}}\.(?:[0-9]{{10,}})?(?:[Zz]|[+-].*)?"),
        "a fraction of a second has 1 to 9 digits",
    ),
    (re.compile(r".*[+-][0-9]{2}:[0-9]{2}:[0-9]{2}[.,].*"), "an offset has whole seconds"),
)
_SHAPED: Final = re.compile(
    rf"{_DATE}[Tt ][0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}(?:\.[0-9]{{1,9}})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2}(?::[0-9]{2})?)?"
)
_OUT_OF_RANGE: Final = (
    "a field is out of range: year 0001-9999, month 01-12, day of the month, hour"
    " 00-23, minute and second 00-59, offset under 24 hours"
)


def _refusal(value: object) -> str:
    if isinstance(value, bool) or value is None or not isinstance(value, int | float | str):
        return f"{FORMAT_RULE} (a JSON string)"
    if not isinstance(value, str):
        return f"{FORMAT_RULE} (text, not a number: Unix times are not accepted)"
    if len(value) > _MAX_LENGTH:
        return f"{FORMAT_RULE} (longer than {_MAX_LENGTH} characters)"
    if _SHAPED.fullmatch(value):  # the shape is right, so a field's value is not
        return f"{FORMAT_RULE} ({_OUT_OF_RANGE})"
    for pattern, why in _WHY:
        if pattern.fullmatch(value):
            return f"{FORMAT_RULE} ({why})"
    return FORMAT_RULE
