"""The one parser of client times, and the bounds of the clock-skew correction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from bench.writes import new_write
from schemas.limits import TIME_RULE, ZONE_RULE
from schemas.messages import Identifiers, decode, encode
from schemas.times import (
    FORMAT_RULE,
    SKEW_MAX_FUTURE,
    SKEW_MAX_PAST,
    InvalidTime,
    format_time,
    parse_time,
    skew_corrected,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


ACCEPTED = {
    # separator T, t or a space; zone Z or z
    "2024-05-01T12:00:00Z": utc(2024, 5, 1, 12),
    "2024-05-01t12:00:00z": utc(2024, 5, 1, 12),
    "2024-05-01T12:00:00z": utc(2024, 5, 1, 12),
    "2024-05-01t12:00:00Z": utc(2024, 5, 1, 12),
    "2024-05-01 12:00:00Z": utc(2024, 5, 1, 12),
    # fractions: 1 to 9 digits, beyond the microsecond dropped (never rounded up)
    "2024-05-01T12:00:00.5Z": utc(2024, 5, 1, 12, 0, 0, 500000),
    "2024-05-01T12:00:00.000Z": utc(2024, 5, 1, 12),  # analytics.js
    "2024-05-01T12:00:00.123456+00:00": utc(2024, 5, 1, 12, 0, 0, 123456),  # Python
    "2024-05-01T12:00:00.123456789Z": utc(2024, 5, 1, 12, 0, 0, 123456),  # Go, Java
    "2024-12-31T23:59:59.9999999Z": utc(2024, 12, 31, 23, 59, 59, 999999),
    # numeric offsets, with seconds exact to the second
    "2024-05-01T12:00:00+05:30": utc(2024, 5, 1, 6, 30),
    "2024-05-01T12:00:00-00:00": utc(2024, 5, 1, 12),
    "2024-05-01T12:00:00+05:30:15": utc(2024, 5, 1, 6, 29, 45),
    "2024-05-01T12:00:00-05:30:15": utc(2024, 5, 1, 17, 30, 15),
    "2024-05-01T12:00:00.25+05:30:15": utc(2024, 5, 1, 6, 29, 45, 250000),
    "2024-05-01T12:00:00.123456789-00:00:01": utc(2024, 5, 1, 12, 0, 1, 123456),
    "2024-05-01T12:00:00+23:59:59": utc(2024, 4, 30, 12, 0, 1),
    "1890-01-01T00:00:00+05:53:28": utc(1889, 12, 31, 18, 6, 32),  # Kolkata's LMT
    # the first and last moments in UTC
    "0001-01-01T00:00:00Z": utc(1, 1, 1),
    "0001-01-01T01:00:00+01:00": utc(1, 1, 1),
    "9999-12-31T23:59:59.999999Z": utc(9999, 12, 31, 23, 59, 59, 999999),
    "9999-12-31T22:59:59-01:00": utc(9999, 12, 31, 23, 59, 59),
}


@pytest.mark.parametrize("text", sorted(ACCEPTED))
def test_accepted_times_are_the_instant_sent_in_utc(text: str) -> None:
    moment = parse_time(text, naive_is_utc=False)
    assert moment == ACCEPTED[text]
    assert moment.tzinfo is UTC
    assert parse_time(text, naive_is_utc=True) == moment


def test_an_offset_with_seconds_survives_the_wire_exactly() -> None:
    sent = "2024-05-01T12:00:00+05:30:15"
    exact = utc(2024, 5, 1, 6, 29, 45)
    # Why it was stored 15 s off: the Kafka message's encoding (msgspec) writes an
    # offset in whole minutes, so an aware time kept in its offset lost the seconds.
    as_sent = datetime.fromisoformat(sent)
    assert msgspec.json.encode(as_sent) == b'"2024-05-01T12:00:00+05:30"'
    moment = parse_time(sent, naive_is_utc=False)
    assert moment == exact
    message = new_write(1, "track_event", Identifiers(email="a@x.io"), occurred_at=moment)
    assert decode(encode(message)).occurred_at == exact
    assert format_time(moment) == "2024-05-01T06:29:45Z"


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2024-05-01T12:00:00", utc(2024, 5, 1, 12)),
        ("2024-05-01 12:00:00", utc(2024, 5, 1, 12)),
        ("2024-05-01T12:00:00.5", utc(2024, 5, 1, 12, 0, 0, 500000)),
        ("9999-12-31T23:59:59.999999", utc(9999, 12, 31, 23, 59, 59, 999999)),
    ],
)
def test_a_time_without_a_zone_is_utc_only_where_the_api_says_so(
    text: str, moment: datetime
) -> None:
    assert parse_time(text, naive_is_utc=True) == moment
    assert parse_time(text, naive_is_utc=True).tzinfo is UTC
    with pytest.raises(InvalidTime) as refused:
        parse_time(text, naive_is_utc=False)
    assert refused.value.reason == ZONE_RULE


REFUSED = {
    # what fromisoformat alone would guess
    "2024-05-01": "a date alone",
    "2024-W01-1": "week dates",
    "2024-W01-1T12:00:00Z": "week dates",
    "2024W011T120000Z": "week dates",
    "2024-123": "ordinal dates",
    "2024-123T12:00:00Z": "ordinal dates",
    "20240501T120000Z": "basic format",
    "20240501T120000.123456+05:30": "basic format",
    "2024-05-01T12:00:00,5Z": "not a ','",
    "2024-05-01 12:00:00,123": "not a ','",
    "2024-05-01T12:00Z": "its seconds",
    "2024-05-01T12:00+05:30": "its seconds",
    "2024-05-01T12Z": "its seconds",
    "2024-05-01T12:00:00+0530": "colon and minutes",
    "2024-05-01T12:00:00+05": "colon and minutes",
    "2024-05-01T12:00:00+05:60": "out of range",  # fromisoformat: +06:00
    "2024-05-01T12:00:00+05:30:60": "out of range",  # fromisoformat: +05:31
    "2024-05-01T12:00:00+05:30:15.5": "whole seconds",
    "2024-05-01T12:00:00.Z": "1 to 9 digits",
    "2024-05-01T12:00:00.+05:30": "1 to 9 digits",
    "2024-05-01T12:00:00.1234567890Z": "1 to 9 digits",
    "2024-05-01x12:00:00Z": "",  # fromisoformat: any separator
    "2024-05-01T24:00:00Z": "out of range",
    "2024-05-01T12:00:60Z": "out of range",  # no leap second
    "2024-02-30T12:00:00Z": "out of range",
    "0000-05-01T12:00:00Z": "out of range",
    "2024-05-01T12:00:00+24:00": "out of range",
    " 2024-05-01T12:00:00Z": "spaces",
    "2024-05-01T12:00:00Z ": "spaces",
    "2024-05-01T12:00:00.1a3Z": "",
    "2024-05-01T12:00:00.１２Z": "",  # digits, but not ASCII ones
    "２０２４-05-01T12:00:00Z": "",
    "2024-05-01T12:00:00ZZ": "",
    "2024-05-01T12:00:00+05:30Z": "",
    "2024-05-01T12:00:00.1:00:00+05:30": "",
    "yesterday": "",
    "": "",
    "x" * 100_000: "longer than 38",
}


@pytest.mark.parametrize("text", sorted(REFUSED))
def test_refused_times_say_what_is_wrong(text: str) -> None:
    for naive_is_utc in (True, False):
        with pytest.raises(InvalidTime) as refused:
            parse_time(text, naive_is_utc=naive_is_utc)
        assert refused.value.reason.startswith(FORMAT_RULE)
        assert REFUSED[text] in refused.value.reason


@pytest.mark.parametrize("value", [1714557600, 1714557600123, 1714557600.5])
def test_numbers_are_refused_unix_times_are_not_a_documented_format(value: object) -> None:
    with pytest.raises(InvalidTime) as refused:
        parse_time(value, naive_is_utc=True)
    assert (
        refused.value.reason == f"{FORMAT_RULE} (text, not a number: Unix times are not accepted)"
    )


@pytest.mark.parametrize("value", [None, True, {"iso": "2024-05-01T12:00:00Z"}, ["x"]])
def test_other_json_values_are_refused(value: object) -> None:
    with pytest.raises(InvalidTime) as refused:
        parse_time(value, naive_is_utc=True)
    assert refused.value.reason == f"{FORMAT_RULE} (a JSON string)"


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",  # 0000-12-31T23:00:00 in UTC
        "0001-01-01T00:59:59.999999+01:00",
        "0001-01-01T00:00:00+00:00:01",
        "9999-12-31T23:59:59-00:01",  # 10000-01-01 in UTC
        "9999-12-31T23:59:59-00:00:01",
        "9999-12-31T20:00:00-05:00",
    ],
)
def test_times_beyond_years_1_to_9999_in_utc_are_refused(text: str) -> None:
    with pytest.raises(InvalidTime) as refused:
        parse_time(text, naive_is_utc=False)
    assert refused.value.reason == TIME_RULE


# -- the clock-skew correction ----------------------------------------------------------

RECEIVED = utc(2026, 12, 5, 10)


def test_the_correction_puts_the_event_as_long_before_receipt_as_it_waited() -> None:
    # A device whose clock is a year behind: sent 10 s after the event.
    original, sent_at = utc(2025, 12, 5, 9, 59, 50), utc(2025, 12, 5, 10)
    assert skew_corrected(original, sent_at, RECEIVED) == RECEIVED - timedelta(seconds=10)
    # A device reset to year 1 (or 1970) says the same: the correction is for it.
    assert skew_corrected(utc(1, 1, 1), utc(1, 1, 1, 0, 0, 10), RECEIVED) == (
        RECEIVED - timedelta(seconds=10)
    )


def test_the_correction_is_kept_up_to_its_bounds() -> None:
    sent_at = utc(2020, 1, 1)
    assert skew_corrected(sent_at + SKEW_MAX_FUTURE, sent_at, RECEIVED) == (
        RECEIVED + SKEW_MAX_FUTURE
    )
    assert skew_corrected(sent_at - SKEW_MAX_PAST, sent_at, RECEIVED) == RECEIVED - SKEW_MAX_PAST


@pytest.mark.parametrize(
    ("original", "sent_at", "why"),
    [
        # The case: sentAt in year 1, a real originalTimestamp. Unbounded, the
        # event would be put in the year 4050.
        (utc(2024, 5, 1), utc(1, 1, 1), "future"),
        (utc(2020, 1, 1) + SKEW_MAX_FUTURE + timedelta(microseconds=1), utc(2020, 1, 1), "future"),
        (utc(9999, 12, 31), utc(1, 1, 1), "future"),
        (utc(2020, 1, 1) - SKEW_MAX_PAST - timedelta(microseconds=1), utc(2020, 1, 1), "past"),
        (utc(1, 1, 1), utc(9999, 1, 1), "past"),  # (which overflowed before)
        (utc(1, 1, 1), utc(2024, 5, 1), "past"),
    ],
)
def test_a_correction_out_of_bounds_says_which_bound(
    original: datetime, sent_at: datetime, why: str
) -> None:
    assert skew_corrected(original, sent_at, RECEIVED) == why


def test_the_bounds_are_those_documented() -> None:
    assert timedelta(seconds=60) == SKEW_MAX_FUTURE  # Sentry Relay's max_secs_in_future
    assert timedelta(days=365) == SKEW_MAX_PAST


def test_format_time_is_rfc_3339_in_utc() -> None:
    assert format_time(utc(2024, 5, 1, 12)) == "2024-05-01T12:00:00Z"
    five_thirty = timezone(timedelta(hours=5, minutes=30, seconds=15))
    moment = datetime(2024, 5, 1, 12, tzinfo=five_thirty)
    assert format_time(moment) == "2024-05-01T06:29:45Z"
    assert format_time(utc(1, 1, 1, 0, 0, 0, 5)) == "0001-01-01T00:00:00.000005Z"
