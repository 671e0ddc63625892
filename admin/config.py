"""The settings in effect, and a check of the environment (``ingest-admin config``).

    ingest-admin config           the settings in effect, by section, secrets masked
    ingest-admin config --check   exit 1 naming every variable that looks like a setting
                                  but names none (with the closest name) and every
                                  value out of bounds; for deploy pipelines

Without ``--check`` the unknown variables are warned about (as at the start of every
process) and the settings printed. Reads only the environment: no PostgreSQL, no
Kafka. Imports ``runtime.settings`` and ``admin.errors`` only.
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import ValidationError

from admin.errors import CommandError
from runtime.settings import (
    SECTIONS,
    SETTING_NAMES,
    Settings,
    section_text,
    shown,
    unknown_settings,
    warn_unknown_settings,
)

COMMANDS = frozenset({"config"})


def add_parsers(sub: Any) -> None:
    """Add the command to ``ingest-admin``'s subparsers."""
    config = sub.add_parser("config", help="print the settings in effect (secrets masked)")
    config.add_argument(
        "--check",
        action="store_true",
        help="exit 1 on an unknown setting-like variable or an invalid value",
    )


def run(args: argparse.Namespace) -> str:
    """Run ``config``; returns what to print, or raises ``CommandError`` (exit 1)."""
    if args.check:
        return check()
    warn_unknown_settings()
    try:
        return effective(Settings())
    except ValidationError as exc:
        raise CommandError("invalid settings:\n" + "\n".join(invalid(exc))) from None


def check() -> str:
    """``config --check``: what passed, or ``CommandError`` naming every problem."""
    problems = [str(each) for each in unknown_settings()]
    try:
        Settings()
    except ValidationError as exc:
        problems += invalid(exc)
    if problems:
        raise CommandError(
            "config --check: the environment does not fit the settings:\n"
            + "\n".join(f"  {problem}" for problem in problems)
        )
    return f"config --check: ok ({len(SETTING_NAMES)} settings; no unknown variable)"


def effective(settings: Settings) -> str:
    """``NAME=value`` for every setting, by section, secrets masked."""
    lines = []
    for section in SECTIONS:
        lines.append(f"# {section_text(section)[0]}")
        for name in section.model_fields:
            value = getattr(settings, name)
            lines.append(
                f"{name.upper()}=" + ("  # unset" if value is None else shown(name, value))
            )
    return "\n".join(lines)


def invalid(exc: ValidationError) -> list[str]:
    """One line per invalid value: the variable, why, and the value (masked)."""
    found = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "?"
        found.append(f"{name.upper()}: {error['msg']} (got {shown(name, error['input'])!r})")
    return found
