"""schemathesis hooks of the fuzz test (``test_fuzz.py``): how to draw what a pattern cannot say.

Two formats of the OpenAPI name what no pattern can say; schemathesis is told how to
draw them, so that a valid request is one the gateway takes:

- ``phone`` (``schemas.json_schemas``' ``Phone``): an E.164 number that is valid in
  its country's numbering plan (the pattern gives the shape); drawn from the numbering
  plans' own example numbers, the phonenumbers library's;
- ``json-object`` (document 003's ``event.data`` as text): the JSON text of an object
  the store keeps (no NUL, 64-bit integers).
"""

from __future__ import annotations

import json

import phonenumbers
import schemathesis
from hypothesis import strategies as st

_KINDS = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
_EXAMPLES = sorted(
    {
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        for region in phonenumbers.SUPPORTED_REGIONS
        for kind in _KINDS
        if (number := phonenumbers.example_number_for_type(region, kind)) is not None
    }
)

_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)

schemathesis.openapi.format("phone", st.sampled_from(_EXAMPLES))
schemathesis.openapi.format(
    "json-object", st.dictionaries(_TEXT, _VALUES, max_size=4).map(json.dumps)
)
