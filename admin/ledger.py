"""``ingest-admin prune-ledger``: forget applied message ids older than N days, by hand.

    ingest-admin prune-ledger --older-than-days N

Only the command: the pruning itself, which the running consumers also do every
``LEDGER_PRUNE_INTERVAL_S``, is ``consumers.ledger.prune_ledger``. Imports that and
``runtime.pg`` only.
"""

from __future__ import annotations

import argparse
from typing import Any

from consumers.ledger import prune_ledger
from runtime.pg import Connection

COMMANDS = frozenset({"prune-ledger"})


def add_parsers(sub: Any) -> None:
    """Add the command to ``ingest-admin``'s subparsers."""
    prune = sub.add_parser("prune-ledger", help="forget applied message ids older than N days")
    prune.add_argument(
        "--older-than-days",
        type=int,
        required=True,
        help="keep at least Kafka's retention of the writes topic (7 days by default)",
    )


async def run(conn: Connection, args: argparse.Namespace) -> str:
    """Run ``prune-ledger``; returns what to print."""
    return f"forgot {await prune_ledger(conn, args.older_than_days)} message id(s)"
