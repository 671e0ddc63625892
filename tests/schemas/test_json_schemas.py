"""The OpenAPI's identifier and time patterns agree with the rules they describe.

``schemas.json_schemas`` makes its patterns from ``schemas.identity`` and
``schemas.times``; these tests draw values (seeded) and compare the pattern's verdict
with the rule's, allowing only the gaps docs/api.md lists ("What the OpenAPI cannot
say"), which the values drawn here avoid.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable

import pytest

from schemas import identity
from schemas.json_schemas import components
from schemas.times import InvalidTime, parse_time

SCHEMAS = components()
_NOT_JUNK = SCHEMAS["NotJunk"]
_HAS_ALNUM = re.compile(_NOT_JUNK["pattern"])
_JUNK = [re.compile(p["pattern"]) for p in _NOT_JUNK["not"]["anyOf"]]
_TEXT = re.compile(SCHEMAS["IdentifierText"]["pattern"])
_EMAIL = re.compile(SCHEMAS["Email"]["allOf"][1]["pattern"])
# Characters the patterns read exactly: no compatibility form that folds into
# several characters, none that composes with its neighbours, no separator of a junk
# word beyond ASCII's and the invisible ones (the documented gaps).
_POOL = [
    chr(c)
    for c in range(0x30000)
    if unicodedata.category(chr(c))[0] in "LNC"
    and unicodedata.category(chr(c)) not in {"Cs", "Cf"}
    and len(unicodedata.normalize("NFKC", chr(c))) == 1
]
_ASCII = [chr(c) for c in range(0x20, 0x7F)]
_INVISIBLE = ["\u200b", "\u00ad", "\ufe0f", "\U000e0041"]


def _not_junk(value: str) -> bool:
    return bool(_HAS_ALNUM.search(value)) and not any(p.search(value) for p in _JUNK)


def _accepts(normalise: Callable[[str], str], value: str) -> bool:
    try:
        normalise(value)
    except identity.InvalidIdentifier:
        return False
    return True


def _draw(rng: random.Random, alphabet: str) -> str:
    size = rng.choice([1, 2, 3, 5, 8, 30])
    return "".join(
        rng.choice(_POOL)
        if rng.random() < 0.2
        else rng.choice(_INVISIBLE)
        if rng.random() < 0.1
        else rng.choice(alphabet)
        for _ in range(size)
    )


def test_an_external_id_matches_its_schema_exactly_when_the_gateway_takes_it() -> None:
    rng = random.Random(20261205)
    for value in [_draw(rng, "abcnulId0 -_/.'()") for _ in range(20000)] + [
        "null",
        " N/A ",
        "(null)",
        "n-u-l-l",
        "-1",
        "0.0",
        "x" * 255 + "\u200b" * 10,
        "x" * 256,
        "a\tb",
        " a ",
    ]:
        gateway = _accepts(identity.normalise_external_id, value)
        schema = len(value) <= identity.MAX_RAW_LENGTH and bool(_TEXT.search(value))
        assert gateway == (schema and _not_junk(value)), repr(value)


def test_an_email_matches_its_schema_exactly_when_the_gateway_takes_it() -> None:
    rng = random.Random(20261206)
    values = [_draw(rng, "ab0.-") + rng.choice("@@.") + _draw(rng, "ab0.") for _ in range(20000)]
    for value in [*values, "a@b.co", "a@b", "a@.b", "a b@c.de", "0@0.0", "n@a.n", "A@B.CO"]:
        gateway = _accepts(identity.normalise_email, value)
        schema = bool(_TEXT.search(value)) and bool(_EMAIL.search(value))
        assert gateway == (schema and _not_junk(value)), repr(value)


@pytest.mark.parametrize(("name", "naive_is_utc"), [("DateTime", False), ("DateTimeUtc", True)])
def test_a_time_matches_its_pattern_exactly_when_the_gateway_reads_it(
    name: str, naive_is_utc: bool
) -> None:
    pattern = re.compile(SCHEMAS[name]["pattern"])
    rng = random.Random(7)
    for _ in range(20000):
        value = (
            f"{rng.choice(['0000', '0001', '1900', '2000', '2023', '2024', '9999'])}"
            f"-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d}{rng.choice('Tt ')}"
            f"{rng.randint(0, 24):02d}:{rng.randint(0, 60):02d}:{rng.randint(0, 60):02d}"
            f"{rng.choice(['', '.5', '.123456789', '.1234567890'])}"
            f"{rng.choice(['', 'Z', 'z', '+05:30', '-00:00', '+24:00', '+05:60', '+01:00:30'])}"
        )
        try:
            moment = parse_time(value, naive_is_utc=naive_is_utc)
        except InvalidTime:
            moment = None
        at_the_ends = value[:4] in {"0001", "9999"}  # (the documented gap, with offsets)
        if not at_the_ends:
            assert (moment is not None) == bool(pattern.search(value)), value
