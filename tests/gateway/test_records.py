"""Kafka records carrying several messages: the gateway's grouping and the consumers' decoding."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import murmur2

from consumers.decode import decode_records, message_value
from ingest_gateway.write.publisher import MemoPartitioner, Publisher, group_records
from ingest_gateway.write.sink import BrokerUnavailable
from runtime.settings import Settings
from schemas.messages import (
    Identifiers,
    WriteMessage,
    decode,
    decode_record,
    encode,
    encode_many,
    new_message_id,
    utcnow,
)
from schemas.topics import partition_key


@dataclass(frozen=True)
class Record:
    value: bytes | None
    key: bytes | None = b"k"
    topic: str = "writes"
    partition: int = 0
    offset: int = 0


def message(address: str, **attributes: object) -> WriteMessage:
    now = utcnow()
    return WriteMessage(
        id=new_message_id(),
        team_id=1,
        op="upsert_customer",
        identifiers=Identifiers(email=address),
        occurred_at=now,
        received_at=now,
        attributes=dict(attributes),
    )


def kafka_partition(m: WriteMessage, partitions: int) -> int:
    # Kafka's default partitioner: toPositive(murmur2(key)) % partitions.
    return int(murmur2(partition_key(m.team_id, m.identifiers)) & 0x7FFFFFFF) % partitions


def test_encode_many_is_an_array_and_one_message_stays_an_object() -> None:
    a, b = message("a@example.com"), message("b@example.com")
    assert encode_many([encode(a)]) == encode(a)
    assert decode_record(encode_many([encode(a), encode(b)])) == [a, b]
    assert decode_record(encode(a)) == a


def test_group_records_by_kafka_partition_in_order_under_the_byte_budget() -> None:
    messages = [message(f"user{i % 40}@example.com", n=i) for i in range(400)]
    budget = 4096
    records = group_records(messages, 6, budget, MemoPartitioner())
    assert len(records) < len(messages) / 5
    seen: dict[int, list[WriteMessage]] = {}
    for partition, key, value in records:
        decoded = decode_record(value)
        group = decoded if isinstance(decoded, list) else [decoded]
        assert len(value) <= budget or len(group) == 1
        assert key == partition_key(group[0].team_id, group[0].identifiers)
        assert all(kafka_partition(m, 6) == partition for m in group)
        seen.setdefault(partition, []).extend(group)
    # Every message once, each partition's messages in the order they were given.
    assert sorted(m.id for ms in seen.values() for m in ms) == sorted(m.id for m in messages)
    for partition, ms in seen.items():
        assert ms == [m for m in messages if kafka_partition(m, 6) == partition]


def test_a_message_larger_than_the_budget_travels_alone() -> None:
    big = message("big@example.com", blob="x" * 5000)
    records = group_records([big, message("big@example.com")], 3, 2048, MemoPartitioner())
    assert [decode_record(v) == big for _, _, v in records].count(True) == 1


def test_decode_single_and_array_records_in_order() -> None:
    a, b, c = (message(f"{x}@example.com", n=x) for x in "abc")
    good, dead = decode_records(
        [Record(encode(a), offset=0), Record(encode_many([encode(b), encode(c)]), offset=1)]
    )
    assert dead == []
    # Consumers decode event bodies raw; the messages encode back to the same bytes.
    assert [encode(m) for _, m in good] == [encode(a), encode(b), encode(c)]
    assert [r.offset for r, _ in good] == [0, 1, 1]


def test_one_bad_message_of_an_array_is_dead_lettered_alone() -> None:
    a, c = message("a@example.com"), message("c@example.com")
    bad = b'{"id": "not a message"}'
    not_normalised = msgspec.structs.replace(
        message("b@example.com"), identifiers=Identifiers(email="B@Example.com ")
    )
    value = encode_many([encode(a), bad, encode(not_normalised), encode(c)])
    good, dead = decode_records([Record(value, key=b"first", offset=7)])
    assert [encode(m) for _, m in good] == [encode(a), encode(c)]
    assert [d.value for d in dead] == [bad, encode(not_normalised)]
    assert dead[0].reason.startswith("undecodable message")
    assert dead[1].reason == "identifiers are not normalised"
    assert dead[1].message_id == not_normalised.id
    assert dead[1].key == partition_key(1, not_normalised.identifiers)
    assert all((d.topic, d.partition, d.offset) == ("writes", 0, 7) for d in dead)


def test_an_undecodable_record_is_one_dead_letter() -> None:
    for value in (b'[{"id": 1}, ', b"nonsense", b""):
        good, dead = decode_records([Record(value)])
        assert good == []
        assert [d.value for d in dead] == [value]
        assert dead[0].reason.startswith("undecodable message")


def test_dead_letter_value_of_a_message_is_its_own_bytes() -> None:
    a, b = message("a@example.com"), message("b@example.com")
    single = Record(encode(a), key=b"original")
    assert message_value(single, a) == (encode(a), b"original")
    array = Record(encode_many([encode(a), encode(b)]))
    assert message_value(array, b) == (encode(b), partition_key(1, b.identifiers))
    assert decode(message_value(array, b)[0]) == b


class FakeProducer:
    """Records what the publisher sends; acknowledges (or fails) on demand."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes, bytes, asyncio.Future[None]]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(6))

    async def send(
        self, topic: str, value: bytes, key: bytes, partition: int
    ) -> asyncio.Future[None]:
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent.append((partition, key, value, ack))
        return ack


def coalescing_publisher(**overrides: Any) -> tuple[Publisher, FakeProducer]:
    settings = Settings(publish_coalesce=True, publish_linger_ms=1, **overrides)
    publisher = Publisher(settings)
    fake = FakeProducer()
    publisher.use(fake)
    return publisher, fake


async def test_concurrent_calls_share_records_and_answer_only_after_the_ack() -> None:
    publisher, fake = coalescing_publisher()
    calls = [[message(f"user{(i + k) % 7}@example.com", n=k) for k in range(3)] for i in range(20)]
    tasks = [asyncio.create_task(publisher.publish(c)) for c in calls]
    await asyncio.sleep(0.05)  # well past the 1 ms linger
    assert len(fake.sent) <= 6  # 60 messages, one record per partition
    assert not any(t.done() for t in tasks)
    everything = [m for c in calls for m in c]
    for partition, key, value, ack in fake.sent:
        decoded = decode_record(value)
        group = decoded if isinstance(decoded, list) else [decoded]
        assert group == [m for m in everything if kafka_partition(m, 6) == partition]
        assert key == partition_key(1, group[0].identifiers)
        ack.set_result(None)
    await asyncio.gather(*tasks)


async def test_a_failed_record_fails_every_call_in_it_with_broker_unavailable() -> None:
    publisher, fake = coalescing_publisher()
    same = [message("same@example.com", n=k) for k in range(2)]
    tasks = [asyncio.create_task(publisher.publish([m])) for m in same]
    await asyncio.sleep(0.05)
    assert len(fake.sent) == 1
    fake.sent[0][3].set_exception(KafkaTimeoutError())
    for task in tasks:
        with pytest.raises(BrokerUnavailable):
            await task


async def test_no_acknowledgement_in_time_is_broker_unavailable() -> None:
    publisher, _fake = coalescing_publisher(publish_timeout_s=0.05)
    with pytest.raises(BrokerUnavailable):
        await publisher.publish([message("late@example.com")])
