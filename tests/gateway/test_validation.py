"""The validation layer's policy, without I/O: the rules, and that the cheap test
(``needs_walk``) never lets a value that breaks one go unwalked."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from ingest_gateway.edge.body import _declares_more_than, _multipart, _urlencoded, parse_json
from ingest_gateway.web.errors import ApiError
from ingest_gateway.write.validation import (
    check_json,
    check_message,
    check_path,
    check_utf8,
    decode_text,
    needs_walk,
)
from schemas.identity import (
    InvalidIdentifier,
    identifiers_refusal,
    normalise_customer_id,
    normalise_email,
    normalise_external_id,
)
from schemas.limits import (
    INT64_MAX,
    INT64_MIN,
    bigint_id,
    message_refusal,
    text_refusal,
    time_refusal,
)
from schemas.messages import EventData, Identifiers, WriteMessage

DEPTH = 32


def refusal(call: Any, *args: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args)
    assert caught.value.status == 400
    return caught.value


# -- JSON ------------------------------------------------------------------------------


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = {"d": value} if i % 2 else [value]
    return value


@pytest.mark.parametrize(
    ("value", "rule", "field"),
    [
        ({"a": INT64_MAX + 1}, "64-bit", "a"),
        ({"a": [1, INT64_MIN - 1]}, "64-bit", "a[1]"),
        ({"a": {"b": 2**70}}, "64-bit", "a.b"),
        ({"a": "x\x00y"}, "NUL", "a"),
        ({"a": {"k\x00": 1}}, "NUL", "a"),
        ([{"s": "\x00"}], "NUL", "[0].s"),
    ],
)
def test_check_json_names_the_rule_and_where(value: Any, rule: str, field: str) -> None:
    error = refusal(check_json, value, DEPTH)
    assert rule in error.message and error.field == field
    assert f"(at {field})" in error.message


def test_check_json_nesting_is_one_message_on_every_surface() -> None:
    check_json(nested(DEPTH), DEPTH)
    error = refusal(check_json, nested(DEPTH + 1), DEPTH)
    assert error.message == "JSON nested deeper than 32 levels" and error.field is None


@pytest.mark.parametrize(
    "value",
    [
        INT64_MAX,
        INT64_MIN,
        True,  # a bool is not an integer here
        1.7976931348623157e308,
        "caf\u00e9 \U0001f600",
        "a\\u0000b",  # a backslash and "u0000": text, not a NUL
        {"": None, "n": [0, -0.0, [], {}]},
    ],
)
def test_check_json_lets_storable_values_through(value: Any) -> None:
    check_json(value, DEPTH)


# Values near every rule's edge, each on both sides; and the texts they are written as.
EDGE_VALUES: list[Any] = [
    INT64_MAX,
    INT64_MAX + 1,
    INT64_MIN,
    INT64_MIN - 1,
    10**18,
    -(10**18),
    2**70,
    123456789012345678,
    1.5e300,
    1e-300,
    "a\x00",
    "\\u0000",
    {"a\x00": 1},
    "x" * 40,
    "1" * 19,
    nested(DEPTH - 1),
    nested(DEPTH),
    nested(DEPTH + 1),
    nested(DEPTH + 1, "\x00"),
]


def _texts(value: Any) -> list[bytes]:
    compact = json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode()
    spaced = json.dumps({"outer": [value]}, indent=1, ensure_ascii=False).encode()
    return [compact, spaced, msgspec.json.encode(value)]


@pytest.mark.parametrize(("value", "other"), list(itertools.product(EDGE_VALUES, [None, "ü", 7])))
def test_needs_walk_never_misses_a_value_check_json_refuses(value: Any, other: Any) -> None:
    for raw in _texts([value, other]):
        parsed = msgspec.json.decode(raw)
        try:
            check_json(parsed, DEPTH)
        except ApiError:
            assert needs_walk(raw, DEPTH), raw
            assert needs_walk(raw, DEPTH, kept_as_sent=True), raw


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"event","email":"a@b.io","eventName":"view","body":{"page":"/p","n":12}}',
        b'{"ts": 1700000000123, "price": 59.9, "when": "2024-05-01T12:00:00Z"}',
        b'{"list": [[[[1]]]], "e": 1.5e-7, "id": "5b0c4a5e-3c2d-4f7e-9b1a-2f6d8e9c0a11"}',
        b'{"phone": "+14155552671", "delta": -150, "day": "2024-05-01", "big": 1e+99}',
        # Digit groups of ids are not one number: a sign separates runs of digits.
        b'{"messageId": "00000000-0000-4000-8000-000000006311", "v": "1-2345678901-2345678"}',
    ],
)
def test_needs_walk_is_false_for_ordinary_json(raw: bytes) -> None:
    assert not needs_walk(raw, DEPTH)
    assert not needs_walk(raw, DEPTH, kept_as_sent=True)


@pytest.mark.parametrize("number", [b"1e400", b"1E+309", b"1e-400", b"2.5e-20000"])
def test_json_kept_as_sent_is_parsed_when_a_number_may_not_survive(number: bytes) -> None:
    raw = b'{"v": ' + number + b"}"
    assert needs_walk(raw, DEPTH, kept_as_sent=True)
    assert not needs_walk(raw, DEPTH)  # parsed JSON is published as parsed


def test_parse_json_keeps_integers_exact_and_refuses_what_breaks_a_rule() -> None:
    assert parse_json(b'{"a": 9223372036854775807}', DEPTH) == {"a": INT64_MAX}
    assert parse_json(b'{"t": 1e-400}', DEPTH) == {"t": 0.0}
    cases = {
        b'{"a": 9223372036854775808}': "64-bit",
        b'{"a": 1e400}': "finite",
        b'{"a": 1' + b"0" * 5000 + b"}": "finite",
        b'{"a": "\\u0000"}': "NUL",
        b'{"a": "caf\xe9"}': "not valid JSON",
        b'{"a": "\\ud800"}': "not valid JSON",
        b"[" * 33 + b"]" * 33: "nested deeper than 32",
        b"[" * 5000 + b"]" * 5000: "nested deeper than 32",
        b"  ": "empty",
    }
    for raw, words in cases.items():
        assert words in refusal(parse_json, raw, DEPTH).message, raw
    assert refusal(parse_json, b"{", DEPTH, "event.data").message.startswith("event.data is")


def test_check_path() -> None:
    check_path({"raw_path": b"/api/1.0/events/caf%C3%A9/a@b.io/x"})
    check_path({"raw_path": b"/api/1.0/customer/a@b.io"})
    check_path({})
    assert "UTF-8" in refusal(check_path, {"raw_path": b"/api/1.0/events/caf%E9/a@b.io/x"}).message


def test_check_utf8() -> None:
    check_utf8(b'{"a": "caf\xc3\xa9"}', "The body")
    assert "UTF-8" in refusal(check_utf8, b'{"a": "caf\xe9"}', "The body").message


# -- text ------------------------------------------------------------------------------


def test_text_rules() -> None:
    assert text_refusal("Jürgen \U0001f600") is None
    assert text_refusal("a\x00b") is not None and "NUL" in str(text_refusal("a\x00b"))
    assert "surrogate" in str(text_refusal("\ud800"))


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        ("Jürgen".encode(), "utf-8", "Jürgen"),
        (b"J\xfcrgen", "latin-1", "Jürgen"),
        (b"\x80", "cp1252", "€"),
        ("Jürgen".encode("utf-16"), "UTF-16", "Jürgen"),
    ],
)
def test_decode_text_in_the_declared_charset(data: bytes, charset: str, text: str) -> None:
    assert decode_text(data, charset, "f") == text


@pytest.mark.parametrize(
    ("data", "charset", "words"),
    [
        (b"caf\xe9", "utf-8", "not valid utf-8"),
        (b"abc", "utf-16", "not valid utf-16"),
        (b"+2AA-", "utf-7", "surrogate"),  # decodes, to a lone surrogate
        (b"\\ud800", "unicode_escape", "surrogate"),
        (b"\\ud800", "punycode", "not valid punycode"),  # UnicodeError, not DecodeError
        (b"a\x00", "ascii", "NUL"),
        (b"1", "hex", "Unsupported charset"),  # not a text encoding
        (b"1", "no-such-set", "Unsupported charset"),
    ],
)
def test_decode_text_refuses(data: bytes, charset: str, words: str) -> None:
    error = refusal(decode_text, data, charset, "f")
    assert words in error.message and error.field == "f"


def test_urlencoded_forms_are_decoded_byte_for_byte_in_their_charset() -> None:
    assert _urlencoded(b"a+b=c+d&e=&n=J%C3%BCrgen", "utf-8") == {
        "a b": "c d",
        "e": "",
        "n": "Jürgen",
    }
    assert _urlencoded(b"n=J%FCrgen", "iso-8859-1") == {"n": "Jürgen"}
    assert "not valid utf-8" in refusal(_urlencoded, b"n=J%FCrgen", "utf-8").message
    assert "NUL" in refusal(_urlencoded, b"n%00=1", "utf-8").message


def _part(name: bytes, value: bytes, headers: bytes = b"") -> bytes:
    disposition = b'Content-Disposition: form-data; name="' + name + b'"\r\n'
    return b"--B\r\n" + disposition + headers + b"\r\n" + value + b"\r\n"


def test_multipart_fields_in_their_own_charsets() -> None:
    body = (
        _part(b"name", "Jürgen".encode("utf-16"))
        + _part(b"price", b"\x80 5", b"Content-Type: text/plain; charset=cp1252\r\n")
        + _part(b"file", b"\x00\xff", b"Content-Type: application/octet-stream\r\n").replace(
            b'name="file"', b'name="file"; filename="x.bin"'
        )
        + b"--B--\r\n"
    )
    fields = _multipart(body, "multipart/form-data; boundary=B; charset=utf-16")
    assert fields == {"name": "Jürgen", "price": "€ 5"}  # field names stay ASCII/UTF-8


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (_part(b"n", b"caf\xe9") + b"--B--\r\n", "boundary=B", "not valid utf-8"),
        (_part(b"n\x00", b"1") + b"--B--\r\n", "boundary=B", "NUL"),
        (_part(b"n", b"+2AA-") + b"--B--\r\n", "boundary=B; charset=utf-7", "surrogate"),
        (b"--B\r\n\r\nx\r\n--B--\r\n", "boundary=B", "no name"),
        (b"not multipart", "charset=utf-8", "no boundary"),
    ],
)
def test_multipart_refusals(body: bytes, content_type: str, words: str) -> None:
    assert words in refusal(_multipart, body, f"multipart/form-data; {content_type}").message


def test_a_content_length_of_thousands_of_digits_is_over_any_limit() -> None:
    assert _declares_more_than(b"9" * 5000, 5 * 1024 * 1024)
    assert _declares_more_than(b"5242881", 5242880)
    assert not _declares_more_than(b"5242880", 5242880)
    assert not _declares_more_than(b"0005242880", 5242880)
    assert not _declares_more_than(b"abc", 5242880)


# -- ids and times -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("1", 1),
        ("007", 7),
        (" 42 ", 42),
        (str(INT64_MAX), INT64_MAX),
        ("0" * 300 + "5", 5),
        (str(INT64_MAX + 1), None),
        ("9" * 5000, None),
        ("0", None),
        ("-1", None),
        ("+1", None),
        ("", None),
        ("²", None),  # str.isdigit says yes, int() says no
        ("١٢", None),  # Arabic-Indic digits: int() would read 12
        ("1e3", None),
    ],
)
def test_bigint_ids(text: str, number: int | None) -> None:
    assert bigint_id(text) == number


def test_customer_ids_are_bigints_in_ascii_digits() -> None:
    assert normalise_customer_id("0042") == "42"
    for bad in (str(INT64_MAX + 1), "²", "١٢", "12\x00"):
        with pytest.raises(InvalidIdentifier):
            normalise_customer_id(bad)


@pytest.mark.parametrize("value", ["a\x00b@example.com", "\ud800@example.com"])
def test_identifiers_must_be_storable_text(value: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalise_email(value)
    with pytest.raises(InvalidIdentifier):
        normalise_external_id(value)


PLUS_ONE = timezone(timedelta(hours=1))
MINUS_ONE = timezone(timedelta(hours=-1))


@pytest.mark.parametrize(
    ("moment", "ok"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), True),
        (datetime(1, 1, 1, 1, tzinfo=PLUS_ONE), True),
        (datetime(1, 1, 1, 0, 59, 59, 999999, tzinfo=PLUS_ONE), False),  # year 0 in UTC
        (datetime.max.replace(tzinfo=UTC), True),
        (datetime(9999, 12, 31, 22, 59, 59, tzinfo=MINUS_ONE), True),
        (datetime(9999, 12, 31, 23, tzinfo=MINUS_ONE), False),  # year 10000 in UTC
    ],
)
def test_times_must_be_within_years_1_to_9999_in_utc(moment: datetime, ok: bool) -> None:
    assert (time_refusal(moment) is None) is ok


def test_a_time_without_a_zone_is_refused() -> None:
    assert "time zone" in str(time_refusal(datetime(2024, 5, 1)))


# -- messages ------------------------------------------------------------------------------

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def message(**changes: Any) -> WriteMessage:
    fields: dict[str, Any] = {
        "id": "0190f6a2-7c41-7d2e-9a1b-3c4d5e6f7a8b",
        "team_id": 1,
        "op": "track_event",
        "identifiers": Identifiers(email="a@b.io"),
        "occurred_at": NOW,
        "received_at": NOW,
        "event": EventData(name="viewed"),
    }
    fields.update(changes)
    return WriteMessage(**fields)


def event(**changes: Any) -> EventData:
    return msgspec.structs.replace(EventData(name="viewed"), **changes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"identifiers": Identifiers(email="A@B.io")}, "identifiers"),  # not normalised
        ({"identifiers": Identifiers()}, "identifiers"),
        ({"identifiers": Identifiers(customer_id=str(INT64_MAX + 1))}, "identifiers"),
        ({"occurred_at": datetime(1, 1, 1, tzinfo=PLUS_ONE)}, "occurred_at"),
        ({"event": event(name=" ")}, "event.name"),
        ({"event": event(name="x" * 256)}, "event.name"),
        ({"event": event(name="a\x00")}, "event.name"),
        ({"event": event(client_event_id="x" * 3000)}, "event.client_event_id"),
        ({"event": event(order_id="x" * 256)}, "event.order_id"),
        ({"event": event(source="a\x00")}, "event.source"),
        ({"event": event(external_id="a\x00")}, "event.external_id"),
    ],
)
def test_check_message_refuses_what_a_consumer_would(changes: dict[str, Any], field: str) -> None:
    bad = message(**changes)
    assert message_refusal(bad) is not None or identifiers_refusal(bad.identifiers) is not None
    error = refusal(check_message, bad)
    assert error.field == field and error.message.startswith(f"Invalid {field}: ")
    renamed = refusal(check_message, bad, {field: "theirName"})
    assert renamed.field == "theirName"


def test_check_message_passes_a_storable_message() -> None:
    ok = message(event=event(name="x" * 255, external_id="e" * 3000, client_event_id="c" * 255))
    assert check_message(ok) is ok
    assert check_message(message(op="upsert_customer", event=None)) is not None


def test_int64_bounds() -> None:
    assert INT64_MAX == 2**63 - 1 and INT64_MIN == -(2**63)
    assert not math.isinf(1.7976931348623157e308)
