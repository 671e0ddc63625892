"""The dead-letter topic's letters, and ``ingest-admin replay-dead-letters``.

    ingest-admin replay-dead-letters [--limit N] [--dry-run] [--reason-contains TEXT]
                 [--team ID]

What a letter is as the repair tools read it (``Letter``: the record the consumers
wrote, ``consumers.dead_letter``), which letters a command selects (``Selection``:
partitions, a time window, a reason, a team) and reading them (``letter_spans``,
``letters_in``); ``admin.inspect_letters`` (list, show) and ``admin.purge_letters``
use these too.

**Replay.** After the cause of some dead letters was fixed (a team restored, a bug deployed
away), this reads the dead-letter topic (``DEAD_LETTER_TOPIC``) with a consumer
group of its own, ``ingest-admin-replay``, and produces each letter's original
value, under its original key, to the writes topic (``WRITES_TOPIC``); a letter
holding a customer delete goes to the overflow lane (``WRITES_OVERFLOW_TOPIC``) too,
as the gateway publishes a delete (``schemas.topics.with_deletes_in_every_lane``), so
that no write accepted after it is applied before it in either lane. The consumers
apply a replayed message once: an id recorded as ``dead_letter`` is claimed again,
an id applied meanwhile is skipped (``consumers.statements.claim_again``), and of a
delete's two copies the second is skipped.

The contract, in order:

- The letters read are those from the group's committed offsets (the topic's start
  on the first run) up to the end each partition had when the command started; a
  letter dead-lettered again meanwhile waits for the next run. ``--limit N`` stops
  after N replayed letters.
- ``--reason-contains TEXT`` replays only the letters whose ``reason`` header
  contains TEXT (case-insensitive), ``--team ID`` only the letters of that team's
  writes (``Letter.teams``), and skips the others; skipped letters stay in the
  topic, but the group's offsets move past them like past the replayed ones.
- Offsets are committed after the writes topics acknowledged every letter read
  before them (``acks=all``, idempotent producer): a failure in between replays some
  letters twice, which the ledger makes harmless, and never loses one.
- ``--dry-run`` prints each letter it would replay (reason, ``source`` header, the
  first bytes of the value) and produces and commits nothing.

Imports Kafka's client, ``runtime.settings``, ``runtime.kafka``, ``schemas``
(messages, topics), ``admin.errors``, ``admin.terminal`` and ``admin.topic_reader``
only: no store, no gateway, no consumer code.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from admin.errors import CommandError
from admin.terminal import parse_time
from admin.topic_reader import (
    Clients,
    Span,
    bounds,
    kafka_clients,
    read_until,
    seek_to,
    topic_partitions,
)
from runtime.kafka import acked_producer
from runtime.settings import Settings
from schemas.messages import WriteMessage, decode_record, encode, split_array
from schemas.topics import in_every_lane, key_team, partition_key

COMMANDS = frozenset({"replay-dead-letters"})

GROUP = "ingest-admin-replay"
PREVIEW_BYTES = 120


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
    add_team_argument(replay)


async def run(settings: Settings, args: argparse.Namespace) -> str:
    """Run ``replay-dead-letters``; returns what to print."""
    if args.limit is not None and args.limit < 1:
        raise CommandError("--limit must be at least 1")
    try:
        replay = await replay_dead_letters(
            settings,
            limit=args.limit,
            dry_run=args.dry_run,
            selection=Selection(reason_contains=args.reason_contains, team=args.team),
        )
    except KafkaError as exc:
        raise CommandError(
            f"Kafka: {type(exc).__name__}: {exc}. The letters committed before are"
            " replayed; run again for the others (a letter replayed twice is harmless)"
        ) from exc
    both = f", {replay.to_both} of them to both lanes (a delete)" if replay.to_both else ""
    if args.dry_run:
        summary = (
            f"dry run: would replay {replay.replayed} dead letter(s){both}, skip"
            f" {replay.skipped}; nothing produced or committed"
        )
        return "\n".join([*replay.previews, summary])
    return f"replayed {replay.replayed} dead letter(s){both}, skipped {replay.skipped}"


@dataclass(frozen=True)
class Letter:
    """A record of the dead-letter topic (``consumers.dead_letter`` writes them): the
    original bytes as its value, why and from where in its headers."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    source: str
    timestamp_ms: int = -1  # when it was dead-lettered (the record's CreateTime)
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, record: Any) -> Letter:
        headers = tuple(record.headers or ())
        named = dict(headers)
        return cls(
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            reason=named.get("reason", b"").decode(errors="replace"),
            source=named.get("source", b"").decode(errors="replace"),
            timestamp_ms=getattr(record, "timestamp", -1),
            headers=headers,
        )

    @property
    def place(self) -> str:
        """``PARTITION:OFFSET``, as ``show-dead-letter`` takes it."""
        return f"{self.partition}:{self.offset}"

    @cached_property
    def messages(self) -> list[WriteMessage] | None:
        """The writes the letter holds (one, or a record's array of them), decoded as
        the gateway encoded them; None when it does not decode."""
        try:
            decoded = decode_record(self.value)
        except (msgspec.MsgspecError, RecursionError, ValueError):
            # What the consumers could not decode is why many a letter is here: a
            # value nested beyond the decoder's recursion, too, is no write.
            return None
        return decoded if isinstance(decoded, list) else [decoded]

    @property
    def teams(self) -> frozenset[int]:
        """The teams whose writes the letter holds: its messages' (one team, unless a
        whole record holding several requests' writes was dead-lettered at once);
        when it does not decode, the team its key names (``schemas.topics.key_team``);
        none when neither says."""
        if self.messages:
            return frozenset(m.team_id for m in self.messages)
        team = key_team(self.key)
        return frozenset() if team is None else frozenset((team,))

    def overflow_copies(self) -> list[tuple[bytes, bytes | None]]:
        """(value, key) of what the overflow lane gets when the letter is replayed:
        its deletes (``in_every_lane``), each as its bytes were received (a field this
        version does not know is kept); the letter itself when it is one delete, else
        each delete on its own under its own partition key."""
        messages = self.messages
        if not messages:  # (nothing decoded: no write of it to order)
            return []
        if len(messages) == 1:
            return [(self.value, self.key)] if in_every_lane(messages[0]) else []
        items = split_array(self.value) or []
        if len(items) != len(messages):  # (not for what decoded as this array)
            items = [encode(m) for m in messages]
        return [
            (item, partition_key(m.team_id, m.identifiers))
            for item, m in zip(items, messages, strict=True)
            if in_every_lane(m)
        ]

    def preview(self) -> str:
        more = "…" if len(self.value) > PREVIEW_BYTES else ""
        both = " (a delete: to both lanes)" if self.overflow_copies() else ""
        return (
            f"{self.partition}/{self.offset} from {self.source or '?'}: {self.reason}{both}\n"
            f"    {self.value[:PREVIEW_BYTES]!r}{more}"
        )


@dataclass(frozen=True)
class Selection:
    """Which letters a command looks at: some partitions (none named: all), a time
    window by Kafka's time index (``topic_reader.bounds``), a reason containing a
    text (case-insensitive), a team's: every write the letter holds is of that team
    (``Letter.teams``; a letter of several teams is selected by none of them)."""

    partitions: frozenset[int] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None
    reason_contains: str | None = None
    team: int | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> Selection:
        """The selection ``add_selection_arguments`` parsed."""
        since = getattr(args, "since", None)
        return cls(
            partitions=frozenset(args.partition or ()),
            since_ms=None if since is None else parse_time(since),
            until_ms=None if args.until is None else parse_time(args.until),
            reason_contains=args.reason_contains,
            team=getattr(args, "team", None),
        )

    def wants(self, letter: Letter) -> bool:
        """Whether the letter's reason and team are those selected (the rest of the
        selection chose where to read)."""
        wanted = self.reason_contains
        if wanted is not None and wanted.casefold() not in letter.reason.casefold():
            return False
        return self.team is None or letter.teams == {self.team}


def add_team_argument(parser: Any) -> None:
    """``--team ID``, for ``Selection.of``."""
    parser.add_argument(
        "--team",
        type=int,
        metavar="ID",
        help="only letters of this team's writes (its id, as list-teams shows it)",
    )


def add_selection_arguments(parser: Any, *, since: bool = True, team: bool = True) -> None:
    """``--partition``, ``--since`` (unless ``since`` is False), ``--until``,
    ``--reason-contains`` and ``--team`` (unless ``team`` is False), for
    ``Selection.of``."""
    parser.add_argument(
        "--partition",
        type=int,
        action="append",
        metavar="P",
        help="only this partition of the dead-letter topic (repeatable)",
    )
    if since:
        parser.add_argument(
            "--since", metavar="TIME", help="dead-lettered at or after TIME (ISO 8601, or 2h)"
        )
    parser.add_argument(
        "--until", metavar="TIME", help="dead-lettered before TIME (ISO 8601, or 2h)"
    )
    parser.add_argument(
        "--reason-contains", metavar="TEXT", help="reason contains TEXT (case-insensitive)"
    )
    if team:
        add_team_argument(parser)


async def letter_spans(
    kafka: Clients, topic: str, selection: Selection
) -> dict[TopicPartition, Span]:
    """Where the selected letters are, per selected partition of the dead-letter topic."""
    partitions = await topic_partitions(kafka.admin, topic)
    unknown = selection.partitions - {tp.partition for tp in partitions}
    if unknown:
        raise CommandError(
            f"{topic} has no partition {', '.join(map(str, sorted(unknown)))}"
            f" (it has {len(partitions)})"
        )
    if selection.partitions:
        partitions = [tp for tp in partitions if tp.partition in selection.partitions]
    return await bounds(kafka.consumer, partitions, selection.since_ms, selection.until_ms)


async def letters_in(
    consumer: AIOKafkaConsumer, spans: dict[TopicPartition, Span]
) -> AsyncGenerator[Letter, None]:
    """The letters of ``spans``, each partition's in order."""
    seek_to(consumer, spans)
    ends = {tp: span.end for tp, span in spans.items()}
    async with aclosing(read_until(consumer, ends)) as batches:
        async for batch in batches:
            for records in batch.values():
                for record in records:
                    yield Letter.of(record)


@dataclass
class Replay:
    """What a run did: letters replayed (in a dry run: to replay) and skipped, and
    how many of the replayed went to both lanes (a delete)."""

    replayed: int = 0
    skipped: int = 0
    to_both: int = 0
    previews: list[str] = field(default_factory=list)  # dry run only


async def replay_dead_letters(
    settings: Settings,
    *,
    limit: int | None = None,
    dry_run: bool = False,
    selection: Selection | None = None,
    group: str = GROUP,
) -> Replay:
    """Replay the dead letters as the module docstring says; returns the counts."""
    producer = acked_producer(settings, "ingest-admin-replay")
    async with kafka_clients(settings, "ingest-admin-replay", group) as kafka:
        await producer.start()  # in a dry run too: a writes topic away fails before any read
        try:
            # Assigned, not subscribed: the group only keeps the offsets, nobody joins it.
            kafka.consumer.assign(await topic_partitions(kafka.admin, settings.dead_letter_topic))
            writer = None if dry_run else producer
            lanes = Lanes(settings.writes_topic, settings.writes_overflow_topic)
            return await replay_assigned(kafka.consumer, writer, lanes, limit, selection)
        finally:
            await producer.stop()


@dataclass(frozen=True)
class Lanes:
    """The topics a replay produces to: the writes topic, and the overflow topic a
    delete goes to as well."""

    writes: str
    overflow: str


async def replay_assigned(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer | None,
    lanes: Lanes,
    limit: int | None = None,
    selection: Selection | None = None,
) -> Replay:
    """The replay loop, on a started consumer with the dead-letter partitions assigned.

    Reads each partition from its position to the end it had when this started (or
    until ``limit`` letters were replayed); ``producer`` None is a dry run. Each
    fetched batch is produced (a delete to both lanes), then every acknowledgement
    awaited, then the offsets of what was read committed.
    """
    selection = selection or Selection()
    ends: dict[TopicPartition, int] = await consumer.end_offsets(list(consumer.assignment()))
    replay = Replay()
    async with aclosing(read_until(consumer, ends)) as batches:
        async for batch in batches:
            acks, offsets = [], {}
            for tp, records in batch.items():
                for record in records:
                    if replay.replayed == limit:
                        break
                    offsets[tp] = record.offset + 1
                    letter = Letter.of(record)
                    if not selection.wants(letter):
                        replay.skipped += 1
                        continue
                    replay.replayed += 1
                    copies = letter.overflow_copies()
                    replay.to_both += bool(copies)
                    if producer is None:
                        replay.previews.append(letter.preview())
                        continue
                    acks.append(
                        await producer.send(lanes.writes, value=letter.value, key=letter.key)
                    )
                    for value, key in copies:
                        acks.append(await producer.send(lanes.overflow, value=value, key=key))
            if producer is not None:
                for ack in acks:
                    await ack
                if offsets:
                    await consumer.commit(offsets)
            if replay.replayed == limit:
                break
    return replay
