"""What the repair tools take from people and show them, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from admin.errors import CommandError
from admin.inspect_letters import escaped, reason_head
from admin.terminal import parse_time, stamp, table

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NOON_MS = int(NOON.timestamp() * 1000)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2026-12-01T12:00:00Z", NOON_MS),
        ("2026-12-01T13:00+01:00", NOON_MS),
        ("2026-12-01 12:00", NOON_MS),  # no zone: UTC
        ("2026-12-01", NOON_MS - 12 * 3_600_000),
        ("90s", NOON_MS - 90_000),
        (" 15m ", NOON_MS - 15 * 60_000),
        ("2h", NOON_MS - 2 * 3_600_000),
        ("7d", NOON_MS - 7 * 86_400_000),
    ],
)
def test_a_time_is_iso_8601_or_an_age(typed: str, expected: int) -> None:
    assert parse_time(typed, now=NOON) == expected


@pytest.mark.parametrize("typed", ["yesterday", "2h30m", "-2h", "12/01/2026", ""])
def test_anything_else_is_refused(typed: str) -> None:
    with pytest.raises(CommandError, match="not a time"):
        parse_time(typed, now=NOON)


def test_times_are_shown_in_utc_to_the_millisecond() -> None:
    assert stamp(NOON_MS + 7) == "2026-12-01T12:00:00.007Z"
    assert stamp(-1) == "-"  # a record without a timestamp


def test_numbers_align_right_and_missing_ones_show_a_dash() -> None:
    assert table(["topic", "lag", "owner"], [["a.b", 12, None], ["c", None, "w-1"]]) == (
        "topic  lag  owner\na.b     12  -\nc        -  w-1"
    )
    assert table(["lag", "owner"], [[3, None]]) == "lag  owner\n  3      -"  # all missing
    assert table(None, [["key", "value"]]) == "key  value"


def test_bytes_are_shown_unambiguously() -> None:
    assert (
        escaped(b"caf\xc3\xa9 \\ \xff\x00\n\t\xe2\x80\x8b") == "café \\\\ \\xff\\x00\\n\\t\\u200b"
    )


def test_a_reason_is_grouped_by_its_first_words() -> None:
    assert reason_head("ForeignKeyViolationError: insert or update") == "ForeignKeyViolationError"
    assert reason_head("unsupported wire version 9") == "unsupported wire version 9"
    assert reason_head("") == "(no reason)"
    assert reason_head("x" * 60) == "x" * 47 + "…"
