"""The one error of ``ingest-admin``'s commands: a refusal the CLI prints, then exits 1.

Imports nothing; every command module raises it, ``admin.cli`` catches it.
"""

from __future__ import annotations


class CommandError(Exception):
    """The command cannot be done as asked (no such team, a key taken, ...)."""
