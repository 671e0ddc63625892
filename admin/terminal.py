"""What people type and read at ``ingest-admin``'s repair tools.

One job: times as typed (``parse_time``: ISO 8601 or an age such as ``2h``) and as
shown (``stamp``), aligned tables (``table``), JSON for scripts (``to_json``), and the
confirmation a destructive command asks for (``confirm``). Imports ``admin.errors``
only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import orjson

from admin.errors import CommandError

_AGE = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, now: datetime | None = None) -> int:
    """Milliseconds since the epoch of ``text``: ISO 8601 (``2026-12-01``,
    ``2026-12-01T10:30:00+01:00``; without a zone, UTC) or an age before now
    (``90s``, ``15m``, ``2h``, ``7d``). ``CommandError`` for anything else."""
    age = _AGE.fullmatch(text.strip())
    if age:
        delta = timedelta(**{_UNITS[age[2]]: int(age[1])})
        return int(((now or datetime.now(UTC)) - delta).timestamp() * 1000)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(
            f"not a time: {text!r} (ISO 8601 such as 2026-12-01T10:30Z, or an age such as 2h)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def stamp(ms: int) -> str:
    """A Kafka timestamp as ISO 8601 in UTC, to the millisecond (``-`` if it has none)."""
    if ms < 0:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def table(header: Sequence[str] | None, rows: Iterable[Sequence[object]]) -> str:
    """Columns aligned by padding: numbers to the right, the rest to the left; no
    header line when ``header`` is None."""
    raw = [list(row) for row in rows]
    width = len(header) if header is not None else len(raw[0]) if raw else 0
    numeric = [_numeric([row[i] for row in raw]) for i in range(width)]
    cells = [list(header)] if header is not None else []
    cells += [[_cell(v) for v in row] for row in raw]
    widths = [max(len(row[i]) for row in cells) for i in range(width)]
    return "\n".join(
        "  ".join(
            text.rjust(widths[i]) if numeric[i] else text.ljust(widths[i])
            for i, text in enumerate(row)
        ).rstrip()
        for row in cells
    )


def _numeric(column: list[object]) -> bool:
    """Numbers, some (or all) missing: ``None``, shown ``-``."""
    return all(v is None or isinstance(v, int) for v in column)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def to_json(value: Any) -> str:
    """``value`` as indented JSON (what ``--json`` prints)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def confirm(plan: str, yes: bool, out: TextIO | None = None) -> None:
    """Show ``plan`` (what the command is about to do) and return once the operator
    agreed: ``--yes``, or ``y`` typed at a terminal. Otherwise ``CommandError``, and
    nothing is done. ``out``: where the plan goes (stderr when stdout is JSON)."""
    out = out or sys.stdout
    print(plan, file=out, flush=True)
    if yes:
        return
    if not sys.stdin.isatty():
        raise CommandError("not confirmed: run again with --yes to do it (nothing was done)")
    # The question on stderr: stdout keeps only the plan and the result.
    print("Go ahead? [y/N] ", end="", file=sys.stderr, flush=True)
    if input().strip().lower() not in ("y", "yes"):
        raise CommandError("not confirmed (nothing was done)")
