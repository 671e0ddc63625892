"""The consumer loop: poll a batch, dead-letter the undecodable, apply, then commit.

Offsets are committed only after the PostgreSQL transaction that applied the batch
committed; a crash in between redelivers the batch, and ``processed_messages``
makes the second application a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from consumers import metrics, timestamps
from consumers.apply import EventTypeCache, apply_batch
from consumers.dead_letter import (
    DeadLetter,
    DeadLetterLimit,
    DeadLetterLimitExceeded,
    DeadLetterSink,
)
from consumers.decode import decode_records, message_value
from consumers.exit_codes import STOPPED_FOR_A_PERSON
from consumers.faults import Fault, backoff, classify
from consumers.health import HealthServer
from consumers.ledger import prune_unless_busy
from runtime.gc import tune_gc
from runtime.settings import Settings
from schemas.messages import WriteMessage

log = logging.getLogger(__name__)


class Stopping(BaseException):
    """A stop was asked for while waiting out an outage: leave without committing.

    A BaseException, as ``CancelledError`` is: the handlers that isolate a failing
    message catch ``Exception`` and must not take a stop for a bad message.
    """


async def wait_unless_stopping(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``; raise ``Stopping`` at once if ``stopping`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
    if stopping.is_set():
        raise Stopping


class BatchApplier:
    """Applies batches; waits out the infrastructure, dead-letters what cannot apply."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings, stopping: asyncio.Event) -> None:
        self.pool = pool
        self.settings = settings
        self.stopping = stopping
        self.event_types = EventTypeCache()
        self.window = timedelta(seconds=settings.email_open_window_s)

    async def _apply_with_retry(self, messages: list[WriteMessage]) -> None:
        """Apply in one transaction; raises only for a ``Fault.MESSAGE`` (or a spent ABORT)."""
        attempt = 0
        while True:
            try:
                async with self.pool.acquire() as conn:
                    plan = await apply_batch(conn, messages, self.event_types, self.window)
                if plan is not None:
                    metrics.record_plan(plan, len(messages))
                return
            except Exception as exc:
                fault = classify(exc)
                if fault is Fault.MESSAGE:
                    raise
                attempt += 1
                metrics.RETRIES.labels(type(exc).__name__).inc()
                if fault is Fault.ABORT and attempt >= self.settings.max_transaction_retries:
                    raise
                if fault is Fault.INFRASTRUCTURE:
                    # Connections opened before a restart are dead or in a state
                    # asyncpg cannot leave: the next acquire opens fresh ones.
                    await self.pool.expire_connections()
                    log.warning(
                        "PostgreSQL unavailable (%s: %s); retrying the batch (attempt %d)",
                        type(exc).__name__,
                        exc,
                        attempt,
                    )
                else:
                    log.info("retrying batch after %s (attempt %d)", type(exc).__name__, attempt)
                delay = backoff(attempt, self.settings.retry_backoff_max_s)
                await wait_unless_stopping(self.stopping, delay)

    async def apply(self, items: list[tuple[Any, WriteMessage]]) -> list[DeadLetter]:
        """Apply in order; returns dead letters for the messages that cannot apply."""
        try:
            await self._apply_with_retry([m for _, m in items])
            return []
        except Exception as exc:  # MESSAGE or spent ABORT: find the message at fault
            if len(items) == 1:
                record, message = items[0]
                log.warning(
                    "dead-lettering message %s: %s: %s", message.id, type(exc).__name__, exc
                )
                # A message from an array record is dead-lettered as itself alone.
                value, key = message_value(record, message)
                return [
                    DeadLetter(
                        value=value,
                        key=key,
                        reason=f"{type(exc).__name__}: {exc}",
                        topic=getattr(record, "topic", ""),
                        partition=getattr(record, "partition", -1),
                        offset=getattr(record, "offset", -1),
                        message_id=message.id,
                    )
                ]
        # Split to find the messages that cannot apply; the rest apply in order.
        middle = len(items) // 2
        dead = await self.apply(items[:middle])
        return dead + await self.apply(items[middle:])

    async def record_dead(self, letters: list[DeadLetter]) -> None:
        """Mark dead-lettered message ids as done, so waiting clients learn the outcome."""
        ids = [d.message_id for d in letters if d.message_id]
        if not ids:
            return
        with contextlib.suppress(asyncpg.DataError):
            await self.pool.execute(
                "INSERT INTO processed_messages (message_id, outcome)"
                " SELECT unnest($1::uuid[]), 'dead_letter'"
                " ON CONFLICT (message_id) DO NOTHING",
                ids,
            )


class Worker:
    def __init__(self, settings: Settings, http_port: int = 0) -> None:
        self.settings = settings
        self.http_port = http_port
        self._stopping = asyncio.Event()
        self._dead_letter_limit = DeadLetterLimit(
            settings.dead_letter_max_ratio, settings.dead_letter_window
        )

    def stop(self) -> None:
        self._stopping.set()

    async def _until_done(self, what: str, operation: Callable[[], Awaitable[None]]) -> None:
        """Run ``operation`` until it succeeds, waiting out infrastructure faults.

        Anything else is raised. Work whose offsets are not committed yet is safe to
        repeat: the ledger makes a second application a no-op.
        """
        attempt = 0
        while True:
            try:
                await operation()
                return
            except Exception as exc:
                if classify(exc) is not Fault.INFRASTRUCTURE:
                    raise
                attempt += 1
                metrics.RETRIES.labels(type(exc).__name__).inc()
                log.warning(
                    "%s failed (%s: %s); retrying (attempt %d)",
                    what,
                    type(exc).__name__,
                    exc,
                    attempt,
                )
                delay = backoff(attempt, self.settings.retry_backoff_max_s)
                await wait_unless_stopping(self._stopping, delay)

    async def run(self) -> None:
        s = self.settings
        # min_size=0: no connection is opened up front, so a consumer starts (and
        # waits in the retry loops) while PostgreSQL is still down.
        pool = await asyncpg.create_pool(
            s.database_url, min_size=0, max_size=2, init=timestamps.install
        )
        consumer = AIOKafkaConsumer(
            s.writes_topic,
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=s.consumer_group,
            client_id="ingest-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=32 * 1024 * 1024,
            fetch_min_bytes=s.consumer_fetch_min_bytes,
            fetch_max_wait_ms=s.consumer_fetch_max_wait_ms,
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            client_id="ingest-consumer-dlq",
            acks="all",
            enable_idempotence=True,
            max_request_size=s.kafka_message_max_bytes,
        )
        health = HealthServer(
            self.http_port,
            {"kafka": consumer.topics, "postgres": lambda: pool.fetchval("SELECT 1")},
        )
        if self.http_port:
            await health.start()
        try:
            await self._until_done("connecting to Kafka", consumer.start)
            await self._until_done("connecting the dead-letter producer", producer.start)
        except Stopping:
            await health.stop()
            await pool.close()
            return
        applier = BatchApplier(pool, s, self._stopping)
        sink = DeadLetterSink(producer, s.dead_letter_topic, s.kafka_message_max_bytes)
        pruning = (
            asyncio.create_task(self._prune_ledger_periodically(pool))
            if s.ledger_retention_days
            else None
        )
        log.info("consumer started on %s (group %s)", s.writes_topic, s.consumer_group)
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(
                    timeout_ms=s.consumer_poll_timeout_ms, max_records=s.consumer_max_records
                )
                if not batches:
                    await metrics.observe_lag(consumer)
                    continue
                await self._process(batches, applier, sink, consumer)
        except Stopping:
            log.info("stopped while waiting for PostgreSQL or Kafka; the batch is not committed")
        finally:
            if pruning is not None:
                pruning.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pruning
            await health.stop()
            await consumer.stop()
            await producer.stop()
            await pool.close()

    async def _prune_ledger_periodically(self, pool: asyncpg.Pool) -> None:
        """Forget old applied message ids now and then; one consumer of the group at a time."""
        s = self.settings
        while True:
            await asyncio.sleep(s.ledger_prune_interval_s)
            try:
                async with pool.acquire() as conn:
                    forgotten = await prune_unless_busy(conn, s.ledger_retention_days)
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning(
                    "pruning the ledger failed (%s); next try in %.0fs",
                    exc,
                    s.ledger_prune_interval_s,
                )
                continue
            if forgotten:
                log.info(
                    "forgot %d applied message id(s) older than %d days",
                    forgotten,
                    s.ledger_retention_days,
                )

    async def _process(
        self,
        batches: dict[TopicPartition, list[Any]],
        applier: BatchApplier,
        sink: DeadLetterSink,
        consumer: AIOKafkaConsumer,
    ) -> None:
        started = time.perf_counter()
        records = [record for partition_records in batches.values() for record in partition_records]
        items, dead = decode_records(records)
        messages = len(items) + len(dead)
        # A record may carry many messages: one transaction per CONSUMER_MAX_RECORDS
        # messages, in order; the offsets are committed once all of them committed.
        size = self.settings.consumer_max_records
        for start in range(0, len(items), size):
            dead += await applier.apply(items[start : start + size])
        # Before anything is dead-lettered or committed: a consumer refusing nearly
        # everything stops here, and the batch stays in Kafka.
        self._dead_letter_limit.check(messages, len(dead))
        if dead:
            await self._until_done("sending dead letters", lambda: sink.send(dead))
            await self._until_done("recording dead letters", lambda: applier.record_dead(dead))
            metrics.DEAD_LETTERS.inc(len(dead))
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items()}
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The partitions moved to another consumer, or the broker is away; the
            # batch will be redelivered, and the ledger makes that a no-op.
            log.warning("offset commit failed (%s); the batch will be redelivered", exc)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        await metrics.observe_lag(consumer)


async def run_worker(settings: Settings, http_port: int = 0) -> None:
    """Run one worker until SIGTERM/SIGINT; ``http_port``: its metrics and health (0: none)."""
    tune_gc()
    worker = Worker(settings, http_port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    except DeadLetterLimitExceeded as exc:
        log.critical(
            "stopping the consumer: %s. Nothing of this batch was dead-lettered or committed;"
            " fix the cause (see the reasons logged above), then start the consumer again.",
            exc,
        )
        raise SystemExit(STOPPED_FOR_A_PERSON) from exc
