"""Comparing answers with the seed documents' examples: same status, same shape.

"Shape" means: every field the document shows is there, with a value of the same
JSON type (a documented ``null`` accepts anything); list items are compared with
the document's items. Values differ by nature (ids, times, the documents' made-up
data) and are asserted separately where they matter.
"""

from __future__ import annotations

from typing import Any


def assert_shape(actual: Any, documented: Any, path: str = "$") -> None:
    if documented is None:
        return
    if isinstance(documented, dict):
        assert isinstance(actual, dict), f"{path}: expected an object, got {actual!r}"
        missing = sorted(documented.keys() - actual.keys())
        assert not missing, f"{path}: missing {missing} in {actual!r}"
        for key, value in documented.items():
            assert_shape(actual[key], value, f"{path}.{key}")
    elif isinstance(documented, list):
        assert isinstance(actual, list), f"{path}: expected an array, got {actual!r}"
        for i, item in enumerate(actual):
            if documented:
                assert_shape(item, documented[min(i, len(documented) - 1)], f"{path}[{i}]")
    elif isinstance(documented, bool):
        assert isinstance(actual, bool), f"{path}: expected a boolean, got {actual!r}"
    elif isinstance(documented, int | float):
        ok = isinstance(actual, int | float) and not isinstance(actual, bool)
        assert ok, f"{path}: expected a number, got {actual!r}"
    else:
        assert isinstance(actual, type(documented)), f"{path}: expected {type(documented)}"
