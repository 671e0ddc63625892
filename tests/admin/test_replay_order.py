"""The replay loop without Kafka: what it reads, what it produces, when it commits.

``replay_assigned`` runs on a fake consumer and producer that log every send,
acknowledgement and commit, so the order is visible: offsets are committed only
after the acknowledgements of everything read before them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from admin.dead_letters import Lanes, Replay, Selection, replay_assigned
from bench.writes import new_write
from schemas.messages import Identifiers, WriteMessage, encode, encode_many
from schemas.topics import partition_key

DLQ = "dlq"
Log = list[tuple[str, object]]


@dataclass
class Record:
    partition: int
    offset: int
    value: bytes
    key: bytes | None
    headers: list[tuple[str, bytes]]


class FakeConsumer:
    """Partitions of letters (one reason each), fetched ``per_fetch`` at a time.

    ``late`` letters are in the topic but arrived after the replay started: beyond
    the end offsets it sees.
    """

    def __init__(self, log: Log, reasons: dict[int, list[str]], per_fetch: int, late: int = 0):
        self.log = log
        self.per_fetch = per_fetch
        self.records = {
            TopicPartition(DLQ, p): [
                Record(p, o, f"{p}/{o}".encode(), b"key", [("reason", r.encode())])
                for o, r in enumerate(rs)
            ]
            for p, rs in reasons.items()
        }
        self.ends = {tp: len(rs) - late for tp, rs in self.records.items()}
        self.positions = dict.fromkeys(self.records, 0)

    def assignment(self) -> set[TopicPartition]:
        return set(self.records)

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.ends[tp] for tp in partitions}

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int
    ) -> dict[TopicPartition, list[Record]]:
        batch = {}
        for tp in partitions:
            start = self.positions[tp]
            if records := self.records[tp][start : start + self.per_fetch]:
                batch[tp] = records
                self.positions[tp] = start + len(records)
        return batch

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.log.append(("commit", {tp.partition: o for tp, o in offsets.items()}))


@dataclass
class FakeProducer:
    """Acknowledges each send on a later turn of the event loop."""

    log: Log
    sent: list[tuple[str, bytes, bytes | None]] = field(default_factory=list)

    async def send(self, topic: str, value: bytes, key: bytes | None) -> asyncio.Future[None]:
        self.sent.append((topic, value, key))
        self.log.append(("send", value))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def acknowledge() -> None:
            self.log.append(("ack", value))
            ack.set_result(None)

        asyncio.get_running_loop().call_soon(acknowledge)
        return ack


async def replay(
    reasons: dict[int, list[str]],
    per_fetch: int = 2,
    late: int = 0,
    dry_run: bool = False,
    limit: int | None = None,
    reason_contains: str | None = None,
) -> tuple[Replay, Log, FakeProducer]:
    log: Log = []
    producer = FakeProducer(log)
    consumer = FakeConsumer(log, reasons, per_fetch, late)
    done = await replay_assigned(
        consumer,
        None if dry_run else producer,
        Lanes("writes", "overflow"),
        limit,
        Selection(reason_contains=reason_contains),
    )
    return done, log, producer


async def test_offsets_are_committed_after_the_acknowledgements_of_their_batch() -> None:
    done, log, producer = await replay({0: ["a", "b", "c"]})
    assert (done.replayed, done.skipped) == (3, 0)
    assert log == [
        ("send", b"0/0"),
        ("send", b"0/1"),
        ("ack", b"0/0"),
        ("ack", b"0/1"),
        ("commit", {0: 2}),
        ("send", b"0/2"),
        ("ack", b"0/2"),
        ("commit", {0: 3}),
    ]
    # The original value under the original key, to the writes topic.
    assert producer.sent[0] == ("writes", b"0/0", b"key")


async def test_every_partition_is_read_to_its_end_and_no_further() -> None:
    done, log, _ = await replay({0: ["a", "b", "c"], 1: ["d"]}, per_fetch=10, late=1)
    # Partition 1's only letter came after the start; partition 0's third too.
    assert (done.replayed, done.skipped) == (2, 0)
    assert [entry for entry in log if entry[0] == "commit"] == [("commit", {0: 2})]


async def test_the_limit_commits_up_to_the_last_letter_replayed() -> None:
    done, log, producer = await replay({0: ["a", "b", "c", "d", "e"]}, limit=3)
    assert done.replayed == 3
    assert [value for _, value, _ in producer.sent] == [b"0/0", b"0/1", b"0/2"]
    assert log[-1] == ("commit", {0: 3})


async def test_skipped_letters_are_not_produced_but_committed_past() -> None:
    done, log, producer = await replay(
        {0: ["ForeignKeyViolationError: x", "undecodable message", "ForeignKeyViolation"]},
        reason_contains="foreignkey",
    )
    assert (done.replayed, done.skipped) == (2, 1)
    assert [value for _, value, _ in producer.sent] == [b"0/0", b"0/2"]
    assert log[-1] == ("commit", {0: 3})


async def test_a_dry_run_produces_and_commits_nothing() -> None:
    done, log, _ = await replay({0: ["why"] * 3}, dry_run=True, limit=2)
    assert log == []
    assert (done.replayed, done.skipped) == (2, 0)
    assert done.previews[0] == "0/0 from ?: why\n    b'0/0'"


def with_letters(consumer: FakeConsumer, letters: list[tuple[bytes, bytes | None]]) -> None:
    """Partition 0 of ``consumer`` holds ``letters`` (value, key) instead."""
    tp = TopicPartition(DLQ, 0)
    consumer.records[tp] = [
        Record(0, o, value, key, [("reason", b"why")]) for o, (value, key) in enumerate(letters)
    ]
    consumer.ends[tp] = len(letters)


def letter(*messages: WriteMessage) -> tuple[bytes, bytes | None]:
    """A letter as the consumers write one: a message's bytes under its key (or a
    whole record's array under its first message's key)."""
    first = messages[0]
    return encode_many([encode(m) for m in messages]), partition_key(
        first.team_id, first.identifiers
    )


async def test_a_delete_goes_to_both_lanes_and_is_acknowledged_in_both_before_the_commit() -> None:
    ana, bo = Identifiers(email="ana@example.com"), Identifiers(email="bo@example.com")
    upsert = new_write(7, "upsert_customer", ana)
    delete = new_write(7, "delete_customer", ana)
    other_delete = new_write(7, "delete_customer", bo)
    letters = [letter(upsert), letter(delete), letter(upsert, other_delete)]
    log: Log = []
    producer = FakeProducer(log)
    consumer = FakeConsumer(log, {0: []}, per_fetch=10)
    with_letters(consumer, letters)

    done = await replay_assigned(consumer, producer, Lanes("writes", "overflow"))

    assert (done.replayed, done.skipped, done.to_both) == (3, 0, 2)
    assert producer.sent == [
        ("writes", *letters[0]),
        ("writes", *letters[1]),
        ("overflow", *letters[1]),  # the letter itself: one delete
        ("writes", *letters[2]),  # the record's array, as it was
        ("overflow", encode(other_delete), partition_key(7, bo)),  # its delete alone
    ]
    assert [kind for kind, _ in log] == ["send"] * 5 + ["ack"] * 5 + ["commit"]


async def test_a_team_replays_only_the_letters_of_its_writes() -> None:
    ana = Identifiers(email="ana@example.com")
    ours, theirs = new_write(7, "upsert_customer", ana), new_write(8, "upsert_customer", ana)
    undecodable_ours = (b'{"id": "not a message"', b"7:email:ana@example.com")
    letters = [
        letter(ours),
        letter(theirs),
        undecodable_ours,
        (b"[]", None),  # names no team
        letter(ours, theirs),  # two teams': neither's alone
    ]
    log: Log = []
    producer = FakeProducer(log)
    consumer = FakeConsumer(log, {0: []}, per_fetch=10)
    with_letters(consumer, letters)

    done = await replay_assigned(consumer, producer, Lanes("w", "o"), selection=Selection(team=7))

    assert (done.replayed, done.skipped) == (2, 3)
    assert [(value, key) for _, value, key in producer.sent] == [letters[0], letters[2]]
    assert log[-1] == ("commit", {0: 5})  # past the skipped, as --reason-contains


async def test_a_delete_copied_to_the_overflow_lane_keeps_its_bytes_as_received() -> None:
    """A field this version does not know (a letter of a newer gateway's, during an
    upgrade) reaches the overflow lane as it reaches the main one."""
    bo = Identifiers(email="bo@example.com")
    upsert = new_write(7, "upsert_customer", Identifiers(email="ana@example.com"))
    delete = encode(new_write(7, "delete_customer", bo))
    newer = delete[:-1] + b', "field_of_a_newer_gateway": 1}'
    value = b"[" + encode(upsert) + b"," + newer + b"]"
    log: Log = []
    producer = FakeProducer(log)
    consumer = FakeConsumer(log, {0: []}, per_fetch=10)
    with_letters(consumer, [(value, b"7:email:ana@example.com")])

    done = await replay_assigned(consumer, producer, Lanes("writes", "overflow"))

    assert done.to_both == 1
    assert producer.sent[1] == ("overflow", newer, partition_key(7, bo))


async def test_a_letter_too_deep_to_decode_is_replayed_as_undecodable() -> None:
    """The consumers dead-letter what they cannot decode, a value nested beyond the
    decoder's recursion too: the replay forwards it, a team's by its key."""
    deep = (b"[" * 100_000 + b"]" * 100_000, b"7:email:ana@example.com")
    for selection in (Selection(), Selection(team=7)):
        log: Log = []
        producer = FakeProducer(log)
        consumer = FakeConsumer(log, {0: []}, per_fetch=10)
        with_letters(consumer, [deep])

        done = await replay_assigned(consumer, producer, Lanes("w", "o"), selection=selection)

        assert (done.replayed, done.to_both) == (1, 0)
        assert producer.sent == [("w", *deep)]
