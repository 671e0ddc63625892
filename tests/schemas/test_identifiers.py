"""Normalisation of identifiers: what makes two writes name the same person."""

from __future__ import annotations

import pytest

from schemas.identity import InvalidIdentifier, normalise_email, normalise_phone
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
