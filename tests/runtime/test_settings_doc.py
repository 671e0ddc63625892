"""``docs/configuration.md`` is ``runtime.settings_doc.markdown()``: the reference and
the settings cannot drift apart."""

from __future__ import annotations

import difflib

import pytest
from pydantic import BaseModel, ConfigDict, Field

from runtime.settings import SECTIONS, Settings
from runtime.settings_doc import markdown
from tests.support import REPO

REFERENCE = REPO / "docs" / "configuration.md"


def test_the_committed_reference_is_generated_from_the_settings() -> None:
    committed = REFERENCE.read_text(encoding="utf-8")
    generated = markdown()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            generated.splitlines(keepends=True),
            "docs/configuration.md (committed)",
            "runtime/settings.py (generated)",
        )
    )
    assert committed == generated, f"run `make docs`:\n{diff}"


def test_every_setting_has_one_row_with_its_description_default_and_bounds() -> None:
    in_sections = [name for section in SECTIONS for name in section.model_fields]
    assert sorted(in_sections) == sorted(Settings.model_fields)
    text = markdown()
    for name, field in Settings.model_fields.items():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{name.upper()}` |")]
        assert len(rows) == 1, name
        assert field.description, name
        assert field.description.split()[0].replace("``", "`") in rows[0], name
    row = next(line for line in text.splitlines() if "`DEAD_LETTER_MAX_RATIO`" in line)
    assert "| `float` | `0.9` | > 0, ≤ 1 |" in row
    row = next(line for line in text.splitlines() if "`PRODUCER_COMPRESSION`" in line)
    assert "| `str \\| None` | *(unset)* |  |" in row


class _Secrets(BaseModel):
    """Secrets

    A section of the test's own.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    store_url: str = "postgresql://ingest:hunter2@db.example:5432/ingest"
    """A URL with a password."""
    signing_key: str = Field("k-0123456789", min_length=8)
    """A key."""


def test_secret_defaults_are_masked() -> None:
    text = markdown([_Secrets])
    assert "hunter2" not in text and "k-0123456789" not in text
    assert "`postgresql://ingest:********@db.example:5432/ingest`" in text
    assert "| `SIGNING_KEY` | `str` | `********` | length ≥ 8 | A key. |" in text
    assert "## Secrets\n\nA section of the test's own.\n" in text


class _Undescribed(BaseModel):
    """Undescribed"""

    mystery_s: float = 1.0


def test_a_setting_without_a_description_cannot_be_documented() -> None:
    with pytest.raises(ValueError, match="setting mystery_s has no description"):
        markdown([_Undescribed])
