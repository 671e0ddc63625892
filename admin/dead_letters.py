"""``ingest-admin replay-dead-letters``: produce dead letters back to the writes topic.

    ingest-admin replay-dead-letters [--limit N] [--dry-run] [--reason-contains TEXT]

After the cause of some dead letters was fixed (a team restored, a bug deployed
away), this reads the dead-letter topic (``DEAD_LETTER_TOPIC``) with a consumer
group of its own, ``ingest-admin-replay``, and produces each letter's original
value, under its original key, to the writes topic (``WRITES_TOPIC``). The
consumers apply a replayed message once: an id recorded as ``dead_letter`` is
claimed again, an id applied meanwhile is skipped (``consumers.statements.claim_again``).

The contract, in order:

- The letters read are those from the group's committed offsets (the topic's start
  on the first run) up to the end each partition had when the command started; a
  letter dead-lettered again meanwhile waits for the next run. ``--limit N`` stops
  after N replayed letters.
- ``--reason-contains TEXT`` replays only the letters whose ``reason`` header
  contains TEXT (case-insensitive) and skips the others; skipped letters stay in
  the topic, but the group's offsets move past them like past the replayed ones.
- Offsets are committed after the writes topic acknowledged every letter read
  before them (``acks=all``, idempotent producer): a failure in between replays some
  letters twice, which the ledger makes harmless, and never loses one.
- ``--dry-run`` prints each letter it would replay (reason, ``source`` header, the
  first bytes of the value) and produces and commits nothing.

Imports Kafka's client, ``runtime.settings``, ``runtime.kafka`` and ``admin.errors`` only: no store,
no gateway, no consumer code.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from admin.errors import CommandError
from runtime.kafka import acked_producer, connection_options
from runtime.settings import Settings

COMMANDS = frozenset({"replay-dead-letters"})

GROUP = "ingest-admin-replay"
PREVIEW_BYTES = 120
# Nothing arrives although the partitions have letters left: the broker is away.
IDLE_TIMEOUT_S = 30.0


def add_parsers(sub: Any) -> None:
    """Add the command to ``ingest-admin``'s subparsers."""
    replay = sub.add_parser(
        "replay-dead-letters", help="produce dead letters back to the writes topic"
    )
    replay.add_argument("--limit", type=int, metavar="N", help="replay at most N letters")
    replay.add_argument(
        "--dry-run", action="store_true", help="print what would be replayed; change nothing"
    )
    replay.add_argument(
        "--reason-contains",
        metavar="TEXT",
        help="replay only letters whose reason contains TEXT (case-insensitive)",
    )


async def run(settings: Settings, args: argparse.Namespace) -> str:
    """Run ``replay-dead-letters``; returns what to print."""
    if args.limit is not None and args.limit < 1:
        raise CommandError("--limit must be at least 1")
    try:
        replay = await replay_dead_letters(
            settings, limit=args.limit, dry_run=args.dry_run, reason_contains=args.reason_contains
        )
    except KafkaError as exc:
        raise CommandError(
            f"Kafka: {type(exc).__name__}: {exc}. The letters committed before are"
            " replayed; run again for the others (a letter replayed twice is harmless)"
        ) from exc
    if args.dry_run:
        summary = (
            f"dry run: would replay {replay.replayed} dead letter(s), skip {replay.skipped};"
            " nothing produced or committed"
        )
        return "\n".join([*replay.previews, summary])
    return f"replayed {replay.replayed} dead letter(s), skipped {replay.skipped}"


@dataclass(frozen=True)
class Letter:
    """A record of the dead-letter topic (``consumers.dead_letter`` writes them)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    source: str

    @classmethod
    def of(cls, record: Any) -> Letter:
        headers = dict(record.headers or ())
        return cls(
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            reason=headers.get("reason", b"").decode(errors="replace"),
            source=headers.get("source", b"").decode(errors="replace"),
        )

    def preview(self) -> str:
        more = "…" if len(self.value) > PREVIEW_BYTES else ""
        return (
            f"{self.partition}/{self.offset} from {self.source or '?'}: {self.reason}\n"
            f"    {self.value[:PREVIEW_BYTES]!r}{more}"
        )


@dataclass
class Replay:
    """What a run did: letters replayed (in a dry run: to replay) and skipped."""

    replayed: int = 0
    skipped: int = 0
    previews: list[str] = field(default_factory=list)  # dry run only


async def replay_dead_letters(
    settings: Settings,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    reason_contains: str | None = None,
    group: str = GROUP,
) -> Replay:
    """Replay the dead letters as the module docstring says; returns the counts."""
    consumer = AIOKafkaConsumer(
        **connection_options(settings),
        group_id=group,
        client_id="ingest-admin-replay",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = acked_producer(settings, "ingest-admin-replay")
    await consumer.start()
    try:
        await producer.start()  # in a dry run too, for the topic's metadata
        try:
            # Assigned, not subscribed: the group only keeps the offsets, nobody joins it.
            consumer.assign(await _partitions(consumer, producer, settings.dead_letter_topic))
            writer = None if dry_run else producer
            return await replay_assigned(
                consumer, writer, settings.writes_topic, limit, reason_contains
            )
        finally:
            await producer.stop()
    finally:
        await consumer.stop()


async def _partitions(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, topic: str
) -> list[TopicPartition]:
    if topic not in await consumer.topics():
        raise CommandError(f"no dead-letter topic {topic!r}")
    return [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]


async def replay_assigned(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer | None,
    writes_topic: str,
    limit: int | None = None,
    reason_contains: str | None = None,
) -> Replay:
    """The replay loop, on a started consumer with the dead-letter partitions assigned.

    Reads each partition from its position to the end it had when this started (or
    until ``limit`` letters were replayed); ``producer`` None is a dry run. Each
    fetched batch is produced, then every acknowledgement awaited, then the offsets
    of what was read committed.
    """
    wanted = None if reason_contains is None else reason_contains.casefold()
    ends: dict[TopicPartition, int] = await consumer.end_offsets(list(consumer.assignment()))
    pending = {tp for tp, end in ends.items() if await consumer.position(tp) < end}
    replay = Replay()
    last_read = time.monotonic()
    while pending and (limit is None or replay.replayed < limit):
        batches = await consumer.getmany(*pending, timeout_ms=500)
        if not batches:
            if time.monotonic() - last_read > IDLE_TIMEOUT_S:
                raise CommandError(
                    f"nothing read from the dead-letter topic for {IDLE_TIMEOUT_S:.0f} s"
                    f" (replayed {replay.replayed} before)"
                )
            continue
        last_read = time.monotonic()
        acks, offsets = [], {}
        for tp, records in batches.items():
            for record in records:
                if record.offset >= ends[tp] or replay.replayed == limit:
                    break
                offsets[tp] = record.offset + 1
                letter = Letter.of(record)
                if wanted is not None and wanted not in letter.reason.casefold():
                    replay.skipped += 1
                    continue
                replay.replayed += 1
                if producer is None:
                    replay.previews.append(letter.preview())
                else:
                    acks.append(
                        await producer.send(writes_topic, value=letter.value, key=letter.key)
                    )
        if producer is not None:
            for ack in acks:
                await ack
            if offsets:
                await consumer.commit(offsets)
        pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    return replay
