"""``docs/configuration.md``, generated from ``runtime.settings.Settings``.

    python -m runtime.settings_doc [PATH]     the reference, to PATH or stdout (``make docs``)

One job: render every setting (its variable, type, default with secrets masked,
bounds from its ``Field`` constraints, and its docstring) by section, so the
reference cannot drift from the code; ``tests/runtime/test_settings_doc.py`` fails
when the committed file differs from ``markdown()``. Imports ``runtime.settings``
(and pydantic's field metadata) only.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from runtime.settings import PREFIXES, SECTIONS, section_text, shown

PROLOGUE = """\
# Configuration

<!-- Generated from runtime/settings.py by `make docs`; do not edit by hand.
     tests/runtime/test_settings_doc.py fails when this file and the code disagree. -->

Every process (`ingest-gateway`, `ingest-consumer`, `ingest-admin`) reads these
environment variables once, as it starts (`runtime/settings.py`). A variable is named
as its setting in upper case, without prefix; names are matched case-insensitively.
A value out of bounds stops the process at start with the setting's name.

Any setting can be read from a file instead: `NAME_FILE=/path` makes the file's text
(without its final newline) the value of `NAME`, the way Kubernetes and Docker mount
secrets (`KAFKA_SASL_PASSWORD_FILE`, `DATABASE_URL_FILE`). Setting both is refused.

A variable that looks like a setting but names none is named in a warning at the
start of every process, with the closest name (`unknown setting
CONSUMER_HEALTHY_AFTER_S; did you mean CONSUMER_RESTART_HEALTHY_AFTER_S?`). It looks
like one when it begins with a word that begins several settings:
{prefixes}.
Variables the project's own scripts read (such as `KAFKA_PORT`; `SCRIPT_VARIABLES`
in `runtime/settings.py`) are not warned about.

- `ingest-admin config` prints the settings in effect, secrets masked (a password in
  a URL; settings named key, password, secret or token).
- `ingest-admin config --check` exits 1, naming them, when a look-alike variable is
  set or a value is out of bounds: for deploy pipelines.
"""


def markdown(sections: Sequence[type[BaseModel]] = SECTIONS) -> str:
    """The whole reference, as committed in ``docs/configuration.md``: a table for
    each of ``sections`` (``Settings``'s)."""
    parts = [PROLOGUE.format(prefixes=", ".join(f"`{p}`" for p in sorted(PREFIXES)))]
    for section in sections:
        title, intro = section_text(section)
        parts.append(f"## {title}\n")
        if intro:
            parts.append(_text(intro) + "\n")
        parts.append("| Variable | Type | Default | Bounds | Description |")
        parts.append("|---|---|---|---|---|")
        for name, field in section.model_fields.items():
            parts.append(_row(name, field))
        parts.append("")
    return "\n".join(parts)


def _row(name: str, field: FieldInfo) -> str:
    if not field.description:
        raise ValueError(f"setting {name} has no description: give it a docstring")
    cells = [
        f"`{name.upper()}`",
        f"`{_type(field.annotation)}`",
        _default(name, field.get_default(call_default_factory=True)),
        _bounds(name, field.metadata),
        _text(field.description),
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _type(annotation: Any) -> str:
    if get_origin(annotation) is Literal:  # the values it may take, as spelt
        return " | ".join(str(value) for value in get_args(annotation))
    if annotation is SecretStr:
        return "str (secret)"
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _default(name: str, value: object) -> str:
    if value is None:
        return "*(unset)*"
    text = shown(name, value)
    return f"`{text}`" if text else "*(empty)*"


# The constraints of pydantic's Field (annotated_types' Ge, Gt, ...; a pattern), by the
# attribute that holds each.
_BOUNDS = (
    ("ge", "≥ {}"),
    ("gt", "> {}"),
    ("le", "≤ {}"),
    ("lt", "< {}"),
    ("min_length", "length ≥ {}"),
    ("max_length", "length ≤ {}"),
    ("pattern", "matches `{}`"),
)


def _bounds(name: str, metadata: list[Any]) -> str:
    found = []
    for each in metadata:
        spelled = [
            form.format(getattr(each, attribute))
            for attribute, form in _BOUNDS
            if getattr(each, attribute, None) is not None
        ]
        if not spelled:
            # A constraint this reference cannot spell yet must not go unsaid.
            raise ValueError(f"setting {name}: no rendering for the constraint {each!r}")
        found += spelled
    return ", ".join(found)


def _text(docstring: str) -> str:
    """One Markdown paragraph from a docstring (reST ``code`` to Markdown `code`)."""
    return " ".join(inspect.cleandoc(docstring).split()).replace("``", "`")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    text = markdown()
    if args:
        Path(args[0]).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
