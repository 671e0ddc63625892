"""The consumer's steps one by one, without Kafka or PostgreSQL (``consumers.steps``).

The apply step against the real PostgreSQL is ``test_retry.py``; the chain as a
running consumer is ``tests/pipeline``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError

from consumers.dead_letter import DeadLetter, DeadLetterLimit, DeadLetterLimitExceeded
from consumers.faults import Backoff
from consumers.registry import Clients, writes
from consumers.steps import Apply, Batch, Commit, Decode, SendDeadLetters
from runtime.settings import Settings
from schemas.messages import Identifiers, WriteMessage, encode, new_message_id
from schemas.outcomes import Outcome

NOW = datetime(2026, 6, 1, tzinfo=UTC)
TP0, TP1 = TopicPartition("writes", 0), TopicPartition("writes", 1)
SETTINGS = Settings()  # no service is reached: these steps are given fakes


class Record(NamedTuple):
    value: bytes
    offset: int
    partition: int = 0
    topic: str = "writes"
    key: bytes | None = None
    timestamp: int = 1_700_000_000_000  # Kafka's, in ms


def message(n: int) -> WriteMessage:
    return WriteMessage(
        id=new_message_id(),
        team_id=1,
        op="upsert_customer",
        identifiers=Identifiers(email=f"s{n}@example.com"),
        occurred_at=NOW,
        received_at=NOW,
        attributes={"n": n},
    )


def letter(message_id: str | None) -> DeadLetter:
    return DeadLetter(b"v", None, "bad", "writes", 0, 1, message_id)


class FakeSink:
    def __init__(self, failures: int = 0) -> None:
        self.sent: list[list[DeadLetter]] = []
        self.failures = failures

    async def send(self, letters: list[DeadLetter]) -> None:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("broker away")
        self.sent.append(letters)


class FakePool:
    def __init__(self) -> None:
        self.executed: list[tuple[Any, ...]] = []

    async def execute(self, *args: Any) -> None:
        self.executed.append(args)


class FakeConsumer:
    def __init__(self, error: Exception | None = None) -> None:
        self.committed: list[dict[TopicPartition, int]] = []
        self.error = error

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.error is not None:
            raise self.error
        self.committed.append(offsets)

    def assignment(self) -> set[TopicPartition]:
        return set()


def dead_letter_step(
    sink: FakeSink, pool: FakePool, limit: DeadLetterLimit | None = None
) -> SendDeadLetters:
    return SendDeadLetters(
        cast(Any, sink),
        cast(asyncpg.Pool, pool),
        limit or DeadLetterLimit(max_ratio=0.5, window=1000),
        Backoff(asyncio.Event(), max_s=0.01),
    )


def test_a_polled_batch_commits_one_past_the_last_record_of_each_partition() -> None:
    a, b, c = Record(b"a", 4), Record(b"b", 5), Record(b"c", 9, partition=1)
    batch = Batch.polled({TP0: [a, b], TP1: [c]})
    assert batch.records == [a, b, c]
    assert batch.offsets == {TP0: 6, TP1: 10}
    assert batch.newest == {TP0: b.timestamp, TP1: c.timestamp}
    assert (batch.todo, batch.dead, batch.messages) == ([], [], 0)


async def test_decode_turns_records_into_messages_and_dead_letters() -> None:
    good = message(1)
    batch = Batch.polled({TP0: [Record(encode(good), 0), Record(b"nonsense", 1)]})
    decoded = await Decode()(batch)
    assert decoded.records == []
    assert [m.id for _, m in decoded.todo] == [good.id]
    assert [d.value for d in decoded.dead] == [b"nonsense"]
    assert decoded.messages == 2
    assert decoded.offsets == batch.offsets


async def test_apply_with_nothing_to_apply_keeps_the_dead_letters() -> None:
    dead = [letter(None)]
    batch = replace(Batch.polled({TP0: [Record(b"x", 0)]}), records=[], dead=dead, messages=1)
    # No message to apply: the pool is never asked for a connection.
    applied = await Apply(cast(asyncpg.Pool, None), SETTINGS, asyncio.Event())(batch)
    assert applied.todo == [] and applied.dead == dead


async def test_dead_letters_are_sent_then_recorded_and_the_batch_handed_on_empty() -> None:
    sink, pool = FakeSink(failures=2), FakePool()  # the broker is away twice: waited out
    dead = [letter("0190f6a2-0000-7000-8000-000000000001"), letter(None)]
    batch = replace(Batch.polled({TP0: [Record(b"x", 0)]}), records=[], dead=dead, messages=2)
    handed = await dead_letter_step(sink, pool, DeadLetterLimit(max_ratio=1.0, window=1))(batch)
    assert sink.sent == [dead]
    ((sql, ids, outcome),) = pool.executed
    assert "processed_messages" in sql
    assert ids == ["0190f6a2-0000-7000-8000-000000000001"] and outcome == Outcome.DEAD_LETTER
    assert handed.dead == [] and handed.offsets == batch.offsets


async def test_over_the_dead_letter_limit_nothing_is_sent_or_recorded() -> None:
    sink, pool = FakeSink(), FakePool()
    dead = [letter(None)] * 10
    batch = replace(Batch.polled({TP0: [Record(b"x", 0)]}), records=[], dead=dead, messages=10)
    step = dead_letter_step(sink, pool, DeadLetterLimit(max_ratio=0.5, window=10))
    with pytest.raises(DeadLetterLimitExceeded):
        await step(batch)
    assert sink.sent == [] and pool.executed == []


async def test_commit_commits_the_batchs_own_offsets() -> None:
    consumer = FakeConsumer()
    batch = replace(Batch.polled({TP0: [Record(b"x", 7)]}), records=[])
    await Commit(cast(AIOKafkaConsumer, consumer))(batch)
    assert consumer.committed == [{TP0: 8}]


async def test_commit_refuses_a_batch_with_work_left() -> None:
    consumer = FakeConsumer()
    polled = Batch.polled({TP0: [Record(b"x", 7)]})
    for unfinished in (
        polled,
        replace(polled, records=[], todo=[(None, message(1))]),
        replace(polled, records=[], dead=[letter(None)]),
    ):
        with pytest.raises(RuntimeError, match="work left"):
            await Commit(cast(AIOKafkaConsumer, consumer))(unfinished)
    assert consumer.committed == []


async def test_a_failed_commit_leaves_the_batch_to_be_redelivered() -> None:
    consumer = FakeConsumer(CommitFailedError("rebalanced"))
    batch = replace(Batch.polled({TP0: [Record(b"x", 7)]}), records=[])
    assert await Commit(cast(AIOKafkaConsumer, consumer))(batch) == batch


def test_the_writes_consumer_is_decode_apply_dead_letter_commit() -> None:
    spec = writes(SETTINGS)
    assert (spec.topic, spec.group) == (SETTINGS.writes_topic, SETTINGS.consumer_group)
    assert spec.dead_letter_topic == SETTINGS.dead_letter_topic
    clients = Clients(
        cast(asyncpg.Pool, FakePool()),
        cast(AIOKafkaConsumer, FakeConsumer()),
        cast(AIOKafkaProducer, None),
        asyncio.Event(),
    )
    chain = spec.chain(clients)
    assert [type(step) for step in chain] == [Decode, Apply, SendDeadLetters, Commit]
