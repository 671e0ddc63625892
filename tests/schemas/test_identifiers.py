"""Normalisation of identifiers: what makes two writes name the same person."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from schemas.identity import (
    KINDS,
    InvalidIdentifier,
    JunkIdentifier,
    clean,
    identifiers_refusal,
    is_junk,
    normalise_anonymous_id,
    normalise_customer_id,
    normalise_email,
    normalise_external_id,
    normalise_kind,
    normalise_phone,
    normalised,
)
from schemas.messages import Identifiers
from schemas.topics import partition_key


def test_emails_are_trimmed_and_compared_case_insensitively() -> None:
    assert normalise_email("  George.Olah@Selgora.COM ") == "george.olah@selgora.com"


@pytest.mark.parametrize("raw", ["+1 (415) 555-0100", "+14155550100", "+1.415.555.0100"])
def test_phone_numbers_become_e164(raw: str) -> None:
    assert normalise_phone(raw) == "+14155550100"


@pytest.mark.parametrize("raw", ["4155550100", "+1 555", "not a phone"])
def test_phone_numbers_without_country_or_invalid_are_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        normalise_phone(raw)
    assert err.value.field == "phone_number"


@pytest.mark.parametrize("junk", ["null", "undefined", "[object Object]", "guest", " "])
def test_junk_identifiers_are_never_grounds_for_a_merge(junk: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalise_email(junk)


def test_all_writes_about_one_email_share_a_partition_key() -> None:
    by_email = partition_key(7, Identifiers(email="a@x.io"))
    assert partition_key(7, Identifiers(email="a@x.io", phone="+14155550100")) == by_email
    assert partition_key(8, Identifiers(email="a@x.io")) != by_email


# -- one policy for every kind (issue 17) -------------------------------------------

ZWSP, BOM, WORD_JOINER = "\u200b", "\ufeff", "\u2060"

# The look-alikes the issue found merging strangers, and more of PostHog's illegal ids
# in the forms clients send them: what two strangers send the real gateway on every
# surface (tests/gateway/test_hostile_identifiers.py).
SENT_JUNK = [
    # POST /api/1.0/batch customerExternalId
    "N/A",
    "unknown",
    "undefined" + ZWSP,
    # Segment anonymousId
    "(null)",
    "{}",
    "[]",
    "-",
    "0.0",
    ZWSP,
    # PostHog's illegal ids, quoted and cased as clients send them
    "[object Object]",
    "'null'",
    "0",
    "00000000-0000-0000-0000-000000000000",
    BOM + "None",
]

# And more of each shape, for the policy alone.
JUNK = [
    *SENT_JUNK,
    # PostHog's illegal ids, quoted and cased as clients send them
    "anonymous",
    "Guest",
    "distinct_id",
    "distinctId",
    "id",
    "not_authenticated",
    "email",
    "UNDEFINED",
    "true",
    "False",
    "NaN",
    "None",
    "null",
    '"undefined"',
    # the same shapes: separators, brackets, zeros, invisible or fullwidth characters
    "n.a.",
    "N-A",
    "na",
    "<nil>",
    "-1",
    " ( -1 ) ",
    "\u22121",
    "000",
    "(0)",
    "not_set",
    "{{user_id}}",
    "${userId}",
    "test",
    "user",
    "...",
    "\u00a0",
    BOM + "null" + WORD_JOINER,
    "\uff4e\uff55\uff4c\uff4c",  # fullwidth "null"
    "nu\u00adll",  # a soft hyphen inside
    "\u3164",  # a Hangul filler: looks like nothing
]

# Ids that look odd but name someone: never refused as junk.
USABLE = [
    "1",
    "42",
    "0042",
    "-2",
    "u-1",
    "550e8400-e29b-41d4-a716-446655440000",
    "0190f0a4-7b1e-7c3e-9d2a-0c1b2d3e4f50",
    "Nadia",
    "tester",
    "nobody@example.com",
    "null@example.com",
    "John Doe",
    "ÅSA-7",
    "用户42",
]


@pytest.mark.parametrize("junk", JUNK)
@pytest.mark.parametrize(
    "normalise", [normalise_external_id, normalise_anonymous_id, normalise_customer_id]
)
def test_junk_and_its_look_alikes_are_refused_for_every_id_kind(
    normalise: Callable[[str], str], junk: str
) -> None:
    assert is_junk(clean("x", junk))
    with pytest.raises(JunkIdentifier) as err:
        normalise(junk)
    assert "not a usable identifier" in err.value.reason


@pytest.mark.parametrize("junk", JUNK)
def test_junk_emails_and_phones_are_refused(junk: str) -> None:
    with pytest.raises(InvalidIdentifier):
        normalise_email(junk)
    with pytest.raises(InvalidIdentifier):
        normalise_phone(junk)


@pytest.mark.parametrize("value", USABLE)
def test_legitimate_ids_are_kept_as_sent(value: str) -> None:
    assert not is_junk(value)
    assert normalise_external_id(value) == value
    assert normalise_anonymous_id(value) == value


def test_customer_ids_are_positive_integers_trimmed() -> None:
    assert normalise_customer_id(" 1") == normalise_customer_id("1") == "1"
    assert normalise_customer_id("0042") == "42"
    assert normalise_customer_id("\u200b7\ufeff") == "7"  # invisible characters go
    # Our ids are ASCII digits: folded, these would name another customer (2, 12).
    for value in ("a1", "1.5", "-2", "99999999999999999999", "\u00b2", "\uff11\uff12"):
        with pytest.raises(InvalidIdentifier) as err:
            normalise_customer_id(value)
        assert err.value.field == "customer_id"


def test_ids_are_trimmed_nfkc_and_stripped_of_invisible_characters() -> None:
    # One person, however the id was typed or pasted: one customer.
    same = [" 1", "1 ", "\t1\n", ZWSP + "1", "1" + BOM, "\u00a01", "\uff11", "1\u200d"]
    assert {normalise_external_id(v) for v in same} == {"1"}
    assert normalise_anonymous_id("ab" + ZWSP + "c") == "abc"
    assert normalise_external_id("\ufb01le-7") == "file-7"  # the "fi" ligature
    assert normalise_external_id("caf\u0065\u0301") == "caf\u00e9"  # composed


def test_ids_are_case_sensitive_emails_are_not() -> None:
    assert normalise_external_id("AbC") == "AbC" != normalise_external_id("abc")
    assert normalise_anonymous_id("AbC") == "AbC"
    assert normalise_email("Ab@Example.COM") == normalise_email("ab@example.com")
    assert normalise_email("\uff21b@example.com") == "ab@example.com"  # fullwidth A


@pytest.mark.parametrize(
    "value", ["a\x01b", "a\tb", "a\nb", "a\u2028b", "a\x7fb", "a\x85b", "a\ue000b"]
)
def test_control_and_separator_characters_inside_are_refused(value: str) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        normalise_external_id(value)
    assert "control character" in err.value.reason
    assert not isinstance(err.value, JunkIdentifier)


def test_length_is_counted_after_normalisation_and_bounded_before() -> None:
    assert normalise_external_id("x" * 255 + ZWSP * 10) == "x" * 255
    with pytest.raises(InvalidIdentifier, match="longer than 255"):
        normalise_external_id("x" * 256)
    with pytest.raises(InvalidIdentifier, match="longer than 255"):
        normalise_external_id(ZWSP * 5000 + "x")  # refused before any work on it


@pytest.mark.parametrize(
    "address",
    ["a@.", "a@b.", "a@.com", "a@b..com", "@b.com", "a@", "a", "a@b", "a@@b.com",
     "a@b@c.com", "a b@c.com", "a@b c.com", "<a@b.com>", "a@[127.0.0.1]", "a@b.com,c@d.com"],
)  # fmt: skip
def test_emails_are_checked_as_addresses(address: str) -> None:
    with pytest.raises(InvalidIdentifier) as err:
        normalise_email(address)
    assert err.value.field == "email"


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("a@b.co", "a@b.co"),
        ("George+tag@Mail.Example.ORG", "george+tag@mail.example.org"),
        (" a@b.io" + ZWSP, "a@b.io"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("jörg@bücher.example", "jörg@bücher.example"),
    ],
)
def test_real_addresses_are_kept_lower_cased(address: str, expected: str) -> None:
    assert normalise_email(address) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_a_normaliser(kind: str) -> None:
    example = {
        "email": ("A@B.io", "a@b.io"),
        "external_id": (" QA-1 ", "QA-1"),
        "phone": ("+1 415 555 0100", "+14155550100"),
        "customer_id": ("007", "7"),
        "anonymous_id": ("dev" + ZWSP + "ice", "device"),
    }[kind]
    assert normalise_kind(kind, example[0]) == example[1]
    assert kind in Identifiers.__struct_fields__


def test_one_policy_for_a_whole_write_and_the_consumers() -> None:
    sent = Identifiers(email=" A@B.io", external_id="u" + ZWSP + "1", customer_id=" 7")
    checked = normalised(sent)
    assert checked == Identifiers(email="a@b.io", external_id="u1", customer_id="7")
    assert identifiers_refusal(sent) == "identifiers are not normalised"
    assert isinstance(checked, Identifiers) and identifiers_refusal(checked) is None
    junk = Identifiers(email="a@b.io", anonymous_id="(null)")
    refusal = identifiers_refusal(junk)
    assert refusal is not None and "not a usable identifier" in refusal


@pytest.mark.parametrize(
    ("normalise", "value", "expected"),
    [
        # an invisible character between a letter and its mark: removed before folding
        (normalise_external_id, "e" + ZWSP + "\u0301x", "\u00e9x"),
        # a letter lower-cased next to a mark it then composes with
        (normalise_email, "W\u030a@example.com", "\u1e98@example.com"),
    ],
)
def test_cleaning_a_clean_value_changes_nothing(
    normalise: Callable[[str], str], value: str, expected: str
) -> None:
    assert normalise(value) == expected
    assert normalise(expected) == expected  # (the consumers check it is normalised)
