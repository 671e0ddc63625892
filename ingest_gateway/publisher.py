"""Publishing canonical writes to Kafka, answering only once the broker acknowledged them."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from ingest_gateway.errors import BrokerUnavailable
from schemas.config import Settings
from schemas.messages import WriteMessage, encode, encode_many
from schemas.topics import partition_key

log = logging.getLogger(__name__)


class MemoPartitioner:
    """Kafka's default partitioner (murmur2 of the key), with the hashes memoised.

    aiokafka's murmur2 is pure Python: about 10 us a key, 14% of the gateway's CPU
    under batched load. Customers come back, so their keys' hashes are kept.
    """

    def __init__(self, size: int = 1 << 17) -> None:
        self._hash = functools.lru_cache(maxsize=size)(self._murmur2)
        self._default = DefaultPartitioner()

    @staticmethod
    def _murmur2(key: bytes) -> int:
        return int(murmur2(key)) & 0x7FFFFFFF

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(self._default(key, all_partitions, available))
        return all_partitions[self._hash(key) % len(all_partitions)]

    def partition(self, key: bytes, partitions: int) -> int:
        """The partition Kafka's default partitioner gives ``key`` among ``partitions``."""
        return int(self._hash(key)) % partitions


@dataclass
class _Chunk:
    key: bytes
    values: list[bytes]
    size: int


def group_records(
    messages: Iterable[WriteMessage],
    partitions: int,
    max_bytes: int,
    partitioner: MemoPartitioner,
) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) records carrying ``messages``, several per record.

    Messages are grouped by the partition of their own key, keep their order within
    it, and fill records of at most ``max_bytes`` (a larger message goes alone). A
    record's key is its first message's; its value is ``encode_many`` of the chunk.
    """
    open_chunks: dict[int, _Chunk] = {}
    records: list[tuple[int, bytes, bytes]] = []
    for message in messages:
        key = partition_key(message.team_id, message.identifiers)
        value = encode(message)
        partition = partitioner.partition(key, partitions)
        chunk = open_chunks.get(partition)
        if chunk is not None and chunk.size + len(value) + 1 > max_bytes:
            records.append((partition, chunk.key, encode_many(chunk.values)))
            chunk = None
        if chunk is None:
            open_chunks[partition] = _Chunk(key, [value], len(value) + 2)
        else:
            chunk.values.append(value)
            chunk.size += len(value) + 1
    records.extend(
        (partition, chunk.key, encode_many(chunk.values))
        for partition, chunk in open_chunks.items()
    )
    return records


class _Waiter:
    """One publish() call: done once every record holding one of its messages is acked."""

    __slots__ = ("future", "pending")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future
        self.pending = 0

    def acked(self) -> None:
        self.pending -= 1
        if self.pending == 0 and not self.future.done():
            self.future.set_result(None)

    def failed(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


@dataclass
class _OpenRecord:
    """A record being filled with messages of one partition, from any number of calls."""

    partition: int
    key: bytes
    values: list[bytes]
    size: int
    waiters: list[_Waiter]


class Publisher:
    """One idempotent, acks=all producer per gateway process.

    The gateway starts even when Kafka is down (it keeps trying in the background),
    so that it can answer 503 instead of refusing connections.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._partitioner = MemoPartitioner()
        # Coalescing (PUBLISH_LINGER_MS): messages of concurrent calls share records.
        self._open: dict[int, _OpenRecord] = {}
        self._ready: list[_OpenRecord] = []
        self._linger: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None

    def _new_producer(self) -> AIOKafkaProducer:
        s = self._settings
        return AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            client_id="ingest-gateway",
            acks="all",
            enable_idempotence=True,
            linger_ms=s.producer_linger_ms,
            max_batch_size=s.producer_max_batch_bytes,
            max_request_size=max(s.max_body_bytes * 2, 1024 * 1024),
            compression_type=s.producer_compression,
            request_timeout_ms=int(s.publish_timeout_s * 1000),
            partitioner=self._partitioner,
        )

    async def start(self) -> None:
        self._connecting = asyncio.create_task(self._connect_until_ready())
        # Give a reachable broker a moment so the first requests do not see 503.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._connecting), timeout=15)

    async def _connect_until_ready(self) -> None:
        delay = 0.5
        while True:
            producer = self._new_producer()
            try:
                await producer.start()
            except KafkaError as exc:
                log.warning("Kafka not reachable (%s); retrying in %.1fs", exc, delay)
                with contextlib.suppress(Exception):
                    await producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._producer = producer
            log.info("connected to Kafka at %s", self._settings.kafka_bootstrap_servers)
            return

    async def stop(self) -> None:
        self._close_open()
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender
        if self._connecting and not self._connecting.done():
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._producer is not None:
            await self._producer.stop()

    @property
    def ready(self) -> bool:
        return self._producer is not None

    async def publish(self, messages: Sequence[WriteMessage]) -> None:
        """Send and wait for every acknowledgement; ``BrokerUnavailable`` if any is missing.

        The messages travel several per record, grouped by partition
        (``group_records``): a send per record rather than per message.
        """
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("not connected to Kafka")
        s = self._settings
        if s.publish_coalesce:
            await self._publish_coalesced(producer, messages)
            return
        topic = s.writes_topic
        try:
            async with asyncio.timeout(s.publish_timeout_s):
                partitions = len(await producer.partitions_for(topic))
                records = group_records(
                    messages, partitions, s.producer_record_max_bytes, self._partitioner
                )
                acks = [
                    await producer.send(topic, value=value, key=key, partition=partition)
                    for partition, key, value in records
                ]
                await asyncio.gather(*acks)
        except (KafkaError, TimeoutError) as exc:
            log.warning("publish failed: %r", exc)
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc

    # -- coalescing: concurrent calls share records ------------------------------------

    async def _publish_coalesced(
        self, producer: AIOKafkaProducer, messages: Sequence[WriteMessage]
    ) -> None:
        """Queue the messages into per-partition records that a linger timer sends.

        Returns once every record holding one of the messages was acknowledged;
        ``BrokerUnavailable`` when one failed or the acknowledgements took longer
        than ``PUBLISH_TIMEOUT_S`` (the messages may still reach Kafka then).
        """
        if not messages:
            return
        s = self._settings
        topic = s.writes_topic
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future())
        try:
            partitions = len(await producer.partitions_for(topic))
        except KafkaError as exc:
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc
        budget = s.producer_record_max_bytes
        for message in messages:
            key = partition_key(message.team_id, message.identifiers)
            value = encode(message)
            partition = self._partitioner.partition(key, partitions)
            record = self._open.get(partition)
            if record is not None and record.size + len(value) + 1 > budget:
                self._ready.append(self._open.pop(partition))
                record = None
            if record is None:
                record = _OpenRecord(partition, key, [value], len(value) + 2, [])
                self._open[partition] = record
            else:
                record.values.append(value)
                record.size += len(value) + 1
            if not record.waiters or record.waiters[-1] is not waiter:
                record.waiters.append(waiter)
                waiter.pending += 1
        if self._ready:
            self._start_sender()
        if self._open and self._linger is None:
            self._linger = loop.call_later(s.publish_linger_ms / 1000, self._close_open)
        try:
            async with asyncio.timeout(s.publish_timeout_s):
                await waiter.future
        except TimeoutError as exc:
            log.warning("publish timed out after %.1fs", s.publish_timeout_s)
            raise BrokerUnavailable("no acknowledgement in time") from exc

    def _close_open(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._open:
            self._ready.extend(self._open.values())
            self._open = {}
            self._start_sender()

    def _start_sender(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_ready())

    async def _send_ready(self) -> None:
        """Send the closed records in order (per partition, the order of the messages)."""
        topic = self._settings.writes_topic
        while self._ready:
            ready, self._ready = self._ready, []
            for record in ready:
                producer = self._producer
                if producer is None:
                    _fail(record.waiters, "not connected to Kafka")
                    continue
                try:
                    ack = await producer.send(
                        topic,
                        value=encode_many(record.values),
                        key=record.key,
                        partition=record.partition,
                    )
                except Exception as exc:  # every waiter must learn of it, whatever it is
                    log.warning("publish failed: %r", exc)
                    _fail(record.waiters, str(exc) or type(exc).__name__)
                    continue
                ack.add_done_callback(functools.partial(_settle, record.waiters))


def _fail(waiters: list[_Waiter], reason: str) -> None:
    for waiter in waiters:
        waiter.failed(BrokerUnavailable(reason))


def _settle(waiters: list[_Waiter], ack: asyncio.Future[object]) -> None:
    if ack.cancelled():
        _fail(waiters, "the send was cancelled")
        return
    exc = ack.exception()
    if exc is not None:
        log.warning("publish failed: %r", exc)
        _fail(waiters, str(exc) or type(exc).__name__)
        return
    for waiter in waiters:
        waiter.acked()
