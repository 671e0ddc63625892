"""``ingest-admin``: configuration and operations, straight to PostgreSQL and Kafka.

    ingest-admin create-team | list-teams | rotate-key | revoke-key
                 | set-allowed-origins                                  admin.teams
    ingest-admin block-identifier | unblock-identifier
                 | list-blocked-identifiers                             admin.blocked_identifiers
    ingest-admin create-event-group | list-event-groups | add-event-types
                 | remove-event-types | delete-event-group              admin.event_groups
    ingest-admin prune-ledger --older-than-days N                       admin.ledger
    ingest-admin set-quota TEAM (--events-per-second R [--burst B]
                 | --default)                                           admin.quotas
    ingest-admin control TEAM [CONTROL ... | none] | list-controls     admin.controls
    ingest-admin erase-customer --team TEAM (--email | --external-id
                 | --phone | --anonymous-id | --customer-id) VALUE
                 [--wait SECONDS] [--yes] [--json]                      admin.erase
    ingest-admin list-dead-letters [--partition P ...] [--since TIME]
                 [--until TIME] [--reason-contains TEXT] [--team ID]
                 [--samples N] [--json] | show-dead-letter
                 PARTITION:OFFSET [--hex] [--json]                      admin.inspect_letters
    ingest-admin replay-dead-letters [--limit N] [--dry-run]
                 [--reason-contains TEXT] [--team ID]                   admin.dead_letters
    ingest-admin purge-dead-letters [--partition P ...] [--until TIME]
                 [--reason-contains TEXT] [--replayed] [--dry-run]
                 [--yes]                                                admin.purge_letters
    ingest-admin lag [--lane main|overflow] [--group GROUP]
                 [--topic TOPIC ...] [--json]                           admin.lag
    ingest-admin create-topics [TOPIC[:PARTITIONS] ...]                 admin.topics
    ingest-admin config [--check]                                       admin.config
    ingest-admin plan-upload | plan-show | plan-diff | plan-activate
                 | plan-rollback | violations | replay-violations       admin.tracking_plans

Only the command line: each command module adds its subcommands and runs them
(returning what to print); this module builds the parser from them, opens what the
command needs (a PostgreSQL connection, or only the settings for Kafka), dispatches,
and turns a ``CommandError`` into a message on stderr and exit code 1 (a service
that is away or refuses the connection: its message and exit code 2). As every
process does, it first warns about unknown setting-like environment variables
(``config`` reports them itself). Imports the command modules, ``admin.errors``,
``runtime.settings`` and ``runtime.pg`` (which errors mean PostgreSQL is away).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any, Protocol

import asyncpg
from aiokafka.errors import KafkaError

from admin import (
    blocked_identifiers,
    config,
    controls,
    dead_letters,
    erase,
    event_groups,
    inspect_letters,
    lag,
    ledger,
    purge_letters,
    quotas,
    teams,
    topics,
    tracking_plans,
)
from admin.errors import CommandError
from runtime.pg import UNAVAILABLE
from runtime.settings import Settings, get_settings, warn_unknown_settings


class KafkaCommands(Protocol):
    """A command module that needs only the settings (and Kafka)."""

    COMMANDS: frozenset[str]

    def add_parsers(self, sub: Any) -> None: ...

    async def run(self, settings: Settings, args: argparse.Namespace) -> str: ...


KAFKA_ONLY: tuple[KafkaCommands, ...] = (
    inspect_letters,
    dead_letters,
    purge_letters,
    lag,
    topics,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ingest-admin", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for module in (
        teams,
        blocked_identifiers,
        ledger,
        event_groups,
        quotas,
        controls,
        erase,
        tracking_plans,
    ):
        module.add_parsers(sub)
    for kafka_module in KAFKA_ONLY:
        kafka_module.add_parsers(sub)
    config.add_parsers(sub)
    return p


async def run_command(settings: Settings, args: argparse.Namespace) -> str:
    """Run the parsed command with ``settings``; returns what to print."""
    for module in KAFKA_ONLY:
        if args.command in module.COMMANDS:
            return await module.run(settings, args)
    conn = await asyncpg.connect(settings.database_url)
    try:
        if args.command in event_groups.COMMANDS:
            return await event_groups.run(conn, args, await teams.find_team(conn, args.team))
        if args.command in blocked_identifiers.COMMANDS:
            return await blocked_identifiers.run(conn, args)
        if args.command in ledger.COMMANDS:
            return await ledger.run(conn, args)
        if args.command in quotas.COMMANDS:
            return await quotas.run(conn, args)
        if args.command in controls.COMMANDS:
            return await controls.run(conn, args)
        if args.command in erase.COMMANDS:
            return await erase.run(settings, conn, args)
        if args.command in tracking_plans.COMMANDS:  # issue #22
            return await tracking_plans.run(settings, conn, args)
        return await teams.run(conn, args)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="ingest-admin: %(levelname)s: %(message)s")
    try:
        if args.command in config.COMMANDS:
            print(config.run(args))
            return
        warn_unknown_settings()
        print(asyncio.run(run_command(get_settings(), args)))
    except CommandError as exc:
        print(f"ingest-admin: {exc}", file=sys.stderr)
        sys.exit(1)
    except (KafkaError, *UNAVAILABLE) as exc:
        # A service away, or refusing us (TLS, credentials): what it said, no traceback.
        print(f"ingest-admin: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
