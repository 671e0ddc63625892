"""The Kafka sink: publishing canonical writes, answering only once the broker acknowledged them.

``Publisher`` is the gateway's ``sink.Sink``; it raises the sink's domain errors
(``MessageTooLarge``, ``BrokerUnavailable``), never an HTTP status. Imports the
sink's interface, the gateway's ``metrics``, ``runtime`` (settings, the acked producer)
and ``schemas``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from time import perf_counter

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    NotLeaderForPartitionError,
    RecordTooLargeError,
    RequestTimedOutError,
)
from aiokafka.partitioner import DefaultPartitioner, murmur2

from ingest_gateway import metrics
from ingest_gateway.write.sink import BrokerUnavailable, MessageTooLarge
from runtime.kafka import acked_producer, described
from runtime.settings import Settings
from schemas.messages import WriteMessage, encode, encode_many
from schemas.topics import partition_key

log = logging.getLogger(__name__)

# Room kept in a record of KAFKA_MESSAGE_MAX_BYTES besides one message: Kafka's
# batch and record headers, the key, and the headers a dead letter adds, so that
# whatever the gateway publishes can also be dead-lettered whole.
RECORD_OVERHEAD_BYTES = 16 * 1024


def message_limit(settings: Settings) -> int:
    """The largest encoded message the gateway publishes (docs/operations.md, "What is
    guaranteed")."""
    return settings.kafka_message_max_bytes - RECORD_OVERHEAD_BYTES


def encode_within(message: WriteMessage, limit: int) -> bytes:
    """``encode(message)``, or ``MessageTooLarge`` when it would not fit in a Kafka record."""
    value = encode(message)
    if len(value) > limit:
        raise MessageTooLarge(len(value), limit)
    return value


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
    message_max_bytes: int = 1 << 62,
) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) records carrying ``messages``, several per record.

    Messages are grouped by the partition of their own key, keep their order within
    it, and fill records of at most ``max_bytes`` (a larger message goes alone). A
    record's key is its first message's; its value is ``encode_many`` of the chunk.
    A message larger than ``message_max_bytes`` is refused (``encode_within``).
    """
    open_chunks: dict[int, _Chunk] = {}
    records: list[tuple[int, bytes, bytes]] = []
    for message in messages:
        key = partition_key(message.team_id, message.identifiers)
        value = encode_within(message, message_max_bytes)
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

    topic: str
    partition: int
    key: bytes
    values: list[bytes]
    size: int
    waiters: list[_Waiter]


class Publisher:
    """The Kafka ``Sink``: one idempotent, acks=all producer per gateway process.

    The gateway starts even when Kafka is down (it keeps trying in the background),
    so that it can answer 503 instead of refusing connections.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._partitioner = MemoPartitioner()
        # Coalescing (PUBLISH_LINGER_MS): messages of concurrent calls share records.
        self._open: dict[tuple[str, int], _OpenRecord] = {}
        self._ready: list[_OpenRecord] = []
        self._linger: asyncio.TimerHandle | None = None
        self._sender: asyncio.Task[None] | None = None
        # Whether the broker answered lately (``_watch_broker``): while it does not,
        # writes get 503 at once instead of waiting PUBLISH_TIMEOUT_S for an ack.
        self._reachable = False
        self._watching: asyncio.Task[None] | None = None
        self._replacing: asyncio.Task[None] | None = None

    def _new_producer(self) -> AIOKafkaProducer:
        s = self._settings
        return acked_producer(
            s,
            "ingest-gateway",
            linger_ms=s.producer_linger_ms,
            max_batch_size=s.producer_max_batch_bytes,
            compression_type=s.producer_compression,
            request_timeout_ms=int(s.publish_timeout_s * 1000),
            partitioner=self._partitioner,
        )

    async def start(self) -> None:
        self._connecting = asyncio.create_task(self._connect_until_ready())
        self._watching = asyncio.create_task(self._watch_broker())
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
                log.warning(
                    "Kafka not reachable at %s (%s); retrying in %.1fs",
                    described(self._settings),
                    exc,
                    delay,
                )
                with contextlib.suppress(Exception):
                    await producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.use(producer)
            log.info("connected to Kafka at %s", described(self._settings))
            return

    def use(self, producer: AIOKafkaProducer) -> None:
        """Publish through ``producer``, started and connected (a test's fake, too)."""
        self._producer = producer
        self._reachable = True

    async def _watch_broker(self) -> None:
        """Ask for the cluster's metadata every BROKER_CHECK_INTERVAL_S: is a broker there?

        A broken connection is only noticed by the next send otherwise, and every
        write would wait the whole publish timeout for an acknowledgement that
        cannot come. One small request a second costs nothing next to that.
        """
        interval = self._settings.broker_check_interval_s
        while True:
            await asyncio.sleep(interval)
            producer = self._producer
            if producer is None:
                continue
            try:
                answered = bool(
                    await asyncio.wait_for(producer.client.force_metadata_update(), interval * 2)
                )
            except (KafkaError, TimeoutError, OSError):
                answered = False
            if answered != self._reachable:
                log.warning("Kafka is %s", "reachable again" if answered else "unreachable")
            self._reachable = answered

    def _on_send_error(self, exc: BaseException) -> None:
        """What a failed send says about the producer: the broker is away, or the
        producer must be replaced.

        After a record the broker refused for good (too large, or an idempotence
        sequence error), aiokafka's idempotent producer fails every later send to
        that partition (``OutOfOrderSequenceNumber``) until it is recreated: one bad
        write would block a partition for every team.
        """
        if isinstance(exc, KafkaConnectionError | TimeoutError):
            self._reachable = False
        elif isinstance(exc, KafkaError) and not exc.retriable and self._replacing is None:
            self._replacing = asyncio.create_task(self._replace_producer(exc))

    async def _replace_producer(self, cause: BaseException) -> None:
        old = self._producer
        log.warning("replacing the Kafka producer after %r", cause)
        self._producer = None  # writes meanwhile get 503 at once
        try:
            if old is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(old.stop(), self._settings.publish_timeout_s)
            await self._connect_until_ready()
        finally:
            self._replacing = None

    async def stop(self) -> None:
        """Flush what was sent and stop, within PUBLISH_TIMEOUT_S.

        With the broker away, aiokafka's idempotent producer retries its batches
        forever (it never expires them), so an unbounded flush would hold a stopping
        gateway for as long as Kafka is down. Every write still unacknowledged then
        was answered 503, so giving up on it loses nothing that was accepted.
        """
        for task in (self._watching, self._replacing):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._close_open()
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await self._sender
        if self._connecting and not self._connecting.done():
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._producer is not None:
            try:
                await asyncio.wait_for(self._producer.stop(), self._settings.publish_timeout_s)
            except TimeoutError:
                log.warning(
                    "Kafka did not take the last records within %.0fs; stopping without them"
                    " (their writes were answered 503)",
                    self._settings.publish_timeout_s,
                )

    @property
    def ready(self) -> bool:
        """Connected, and the broker answered the last check: writes can be accepted."""
        return self._producer is not None and self._reachable

    async def publish(self, messages: Sequence[WriteMessage], topic: str | None = None) -> None:
        """Send to ``topic`` (default ``WRITES_TOPIC``) and wait for every
        acknowledgement; ``BrokerUnavailable`` if any is missing.

        The messages travel several per record, grouped by partition
        (``group_records``): a send per record rather than per message.
        """
        producer = self._connected()
        s = self._settings
        topic = topic or s.writes_topic
        if s.publish_coalesce:
            await self._publish_coalesced(producer, messages, topic)
            return
        started = perf_counter()
        try:
            async with asyncio.timeout(s.publish_timeout_s):
                partitions = len(await producer.partitions_for(topic))
                records = group_records(
                    messages,
                    partitions,
                    s.producer_record_max_bytes,
                    self._partitioner,
                    message_limit(s),
                )
                acks = [
                    await producer.send(topic, value=value, key=key, partition=partition)
                    for partition, key, value in records
                ]
                await asyncio.gather(*acks)
            metrics.published(started)
        except (KafkaError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc

    async def publish_dead_letters(self, messages: Sequence[WriteMessage], reason: str) -> None:
        """Send each message to ``DEAD_LETTER_TOPIC`` as the consumers' dead letters are
        (its bytes as the value, ``reason`` and ``source`` headers), and wait for the
        acknowledgements; ``BrokerUnavailable`` if any is missing."""
        producer = self._connected()
        s = self._settings
        headers = [("reason", reason.encode()), ("source", b"gateway")]
        limit = message_limit(s)
        try:
            async with asyncio.timeout(s.publish_timeout_s):
                acks = [
                    await producer.send(
                        s.dead_letter_topic,
                        value=encode_within(message, limit),
                        key=partition_key(message.team_id, message.identifiers),
                        headers=headers,
                    )
                    for message in messages
                ]
                await asyncio.gather(*acks)
        except (KafkaError, TimeoutError) as exc:
            raise self._unavailable(exc) from exc

    def _connected(self) -> AIOKafkaProducer:
        """The producer, when the broker answers; else ``BrokerUnavailable``."""
        producer = self._producer
        if producer is None or not self._reachable:
            metrics.publish_failed("broker_unavailable")
            raise BrokerUnavailable("not connected to Kafka")
        return producer

    def _unavailable(self, exc: BaseException) -> BrokerUnavailable:
        """The error to raise for a send that failed with ``exc``, noted."""
        log.warning("publish failed: %r", exc)
        metrics.publish_failed(failure_reason(exc))
        self._on_send_error(exc)
        return BrokerUnavailable(str(exc) or type(exc).__name__)

    # -- coalescing: concurrent calls share records ------------------------------------

    async def _publish_coalesced(
        self, producer: AIOKafkaProducer, messages: Sequence[WriteMessage], topic: str
    ) -> None:
        """Queue the messages into per-partition records that a linger timer sends.

        Returns once every record holding one of the messages was acknowledged;
        ``BrokerUnavailable`` when one failed or the acknowledgements took longer
        than ``PUBLISH_TIMEOUT_S`` (the messages may still reach Kafka then).
        """
        if not messages:
            return
        s = self._settings
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop.create_future())
        try:
            partitions = len(await producer.partitions_for(topic))
        except KafkaError as exc:
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc
        budget = s.producer_record_max_bytes
        # Encoded first: a message too large is refused before any of the call's
        # messages is queued.
        limit = message_limit(s)
        encoded = [encode_within(message, limit) for message in messages]
        for message, value in zip(messages, encoded, strict=True):
            key = partition_key(message.team_id, message.identifiers)
            partition = self._partitioner.partition(key, partitions)
            record = self._open.get((topic, partition))
            if record is not None and record.size + len(value) + 1 > budget:
                self._ready.append(self._open.pop((topic, partition)))
                record = None
            if record is None:
                record = _OpenRecord(topic, partition, key, [value], len(value) + 2, [])
                self._open[(topic, partition)] = record
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
            metrics.publish_failed("timeout")
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
        while self._ready:
            ready, self._ready = self._ready, []
            for record in ready:
                producer = self._producer
                if producer is None:
                    metrics.publish_failed("broker_unavailable")
                    _fail(record.waiters, "not connected to Kafka")
                    continue
                started = perf_counter()
                try:
                    ack = await producer.send(
                        record.topic,
                        value=encode_many(record.values),
                        key=record.key,
                        partition=record.partition,
                    )
                except Exception as exc:  # every waiter must learn of it, whatever it is
                    self._failed(record.waiters, exc)
                    continue
                ack.add_done_callback(functools.partial(self._settle, record.waiters, started))

    def _settle(self, waiters: list[_Waiter], started: float, ack: asyncio.Future[object]) -> None:
        if ack.cancelled():
            metrics.publish_failed("other")
            _fail(waiters, "the send was cancelled")
            return
        exc = ack.exception()
        if exc is not None:
            self._failed(waiters, exc)
            return
        metrics.published(started)
        for waiter in waiters:
            waiter.acked()

    def _failed(self, waiters: list[_Waiter], exc: BaseException) -> None:
        unavailable = self._unavailable(exc)
        for waiter in waiters:
            waiter.failed(unavailable)


# A broker (or the partition's leader, or enough in-sync replicas) is away.
_BROKER_AWAY = (
    KafkaConnectionError,
    LeaderNotAvailableError,
    NotLeaderForPartitionError,
    NotEnoughReplicasError,
    NotEnoughReplicasAfterAppendError,
)


def failure_reason(exc: BaseException) -> str:
    """The ``reason`` label of a failed send (``ingest_gateway_publish_failures_total``)."""
    if isinstance(exc, TimeoutError | KafkaTimeoutError | RequestTimedOutError):
        return "timeout"
    if isinstance(exc, MessageSizeTooLargeError | RecordTooLargeError):
        return "too_large"
    if isinstance(exc, _BROKER_AWAY):
        return "broker_unavailable"
    return "other"


def _fail(waiters: list[_Waiter], reason: str) -> None:
    for waiter in waiters:
        waiter.failed(BrokerUnavailable(reason))
