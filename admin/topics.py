"""``ingest-admin create-topics``: the topics the pipeline needs, made as the settings say.

    ingest-admin create-topics [TOPIC[:PARTITIONS] ...]

Without arguments: the writes topic and its overflow lane (6 partitions each) and the
dead-letter topic (1).
Each is made with ``KAFKA_REPLICATION_FACTOR`` copies, ``min.insync.replicas`` of
``KAFKA_MIN_INSYNC_REPLICAS`` and records up to ``KAFKA_MESSAGE_MAX_BYTES``; a topic
that exists is left as it is and reported. ``make run`` runs it after the migrations;
the tests and the bench make their own topics through ``ensure_topics``. Imports
``admin.errors``, ``runtime.kafka`` and ``runtime.settings``.
"""

from __future__ import annotations

import argparse
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from admin.errors import CommandError
from runtime.kafka import connection_options
from runtime.settings import Settings

COMMANDS = frozenset({"create-topics"})
WRITES_PARTITIONS = 6


def add_parsers(sub: Any) -> None:
    """Add the command to ``ingest-admin``'s subparsers."""
    create = sub.add_parser(
        "create-topics", help="create the writes, overflow and dead-letter topics (or those named)"
    )
    create.add_argument(
        "topics",
        nargs="*",
        metavar="TOPIC[:PARTITIONS]",
        help="default: WRITES_TOPIC:6, WRITES_OVERFLOW_TOPIC:6 and DEAD_LETTER_TOPIC:1",
    )


async def run(settings: Settings, args: argparse.Namespace) -> str:
    """Run ``create-topics``; returns what to print."""
    wanted = dict(_parse(spec) for spec in args.topics) or {
        settings.writes_topic: WRITES_PARTITIONS,
        settings.writes_overflow_topic: WRITES_PARTITIONS,
        settings.dead_letter_topic: 1,
    }
    created = await ensure_topics(settings, wanted)
    return "\n".join(
        f"{name}: {'created' if name in created else 'exists'}"
        f" ({partitions} partitions requested, {settings.kafka_replication_factor} copies)"
        for name, partitions in wanted.items()
    )


def _parse(spec: str) -> tuple[str, int]:
    name, _, partitions = spec.partition(":")
    if not name or (partitions and not partitions.isdigit()) or partitions == "0":
        raise CommandError(f"not TOPIC[:PARTITIONS]: {spec!r}")
    return name, int(partitions or WRITES_PARTITIONS)


async def ensure_topics(settings: Settings, partitions: dict[str, int]) -> set[str]:
    """Create the topics of ``partitions`` (name: count) that do not exist; returns
    the names created."""
    admin = AIOKafkaAdminClient(**connection_options(settings), client_id="ingest-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in partitions if name not in existing]
        if missing:
            answer = await admin.create_topics(
                [_new_topic(settings, n, partitions[n]) for n in missing]
            )
            for name, code, *message in answer.topic_errors:
                error = for_code(code)
                # Made meanwhile by another process: as good as made here.
                if code and error is not TopicAlreadyExistsError:
                    raise CommandError(f"topic {name}: {error.__name__} {message[:1]}")
        return set(missing)
    finally:
        await admin.close()


def _new_topic(settings: Settings, name: str, partitions: int) -> NewTopic:
    return NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=settings.kafka_replication_factor,
        topic_configs={
            "max.message.bytes": str(settings.kafka_message_max_bytes),
            "min.insync.replicas": str(settings.kafka_min_insync_replicas),
        },
    )
