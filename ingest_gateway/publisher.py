"""Publishing canonical writes to Kafka, answering only once the broker acknowledged them."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from ingest_gateway.errors import BrokerUnavailable
from schemas.config import Settings
from schemas.messages import WriteMessage, encode
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


class Publisher:
    """One idempotent, acks=all producer per gateway process.

    The gateway starts even when Kafka is down (it keeps trying in the background),
    so that it can answer 503 instead of refusing connections.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None

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
            partitioner=MemoPartitioner(),
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
        """Send and wait for every acknowledgement; ``BrokerUnavailable`` if any is missing."""
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("not connected to Kafka")
        topic = self._settings.writes_topic
        try:
            async with asyncio.timeout(self._settings.publish_timeout_s):
                acks = [
                    await producer.send(
                        topic, value=encode(m), key=partition_key(m.team_id, m.identifiers)
                    )
                    for m in messages
                ]
                await asyncio.gather(*acks)
        except (KafkaError, TimeoutError) as exc:
            log.warning("publish failed: %r", exc)
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc
