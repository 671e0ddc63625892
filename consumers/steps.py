"""The consumer's steps: one interface, and the four steps every batch goes through.

The chain is ``Decode -> Apply -> SendDeadLetters -> Commit``, assembled in
``consumers.registry`` and run by ``consumers.worker`` for every polled batch.

The step interface
------------------
A step is an async callable::

    async def __call__(self, batch: Batch) -> Batch

It takes the batch the step before it returned and returns the batch for the next.

- **A step is done with a batch when it returns.** The worker polls the next batch
  only once the whole chain returned, so nothing is in flight between batches:
  there is nothing to poll, join, flush or terminate at a rebalance or a stop, and
  arroyo's ``submit``/``poll``/``join``/``close`` (made for chains that pipeline
  several batches) would be four methods with one doing the work. What a batch
  holds is applied in order, partition by partition, because each step finishes
  before the next starts.
- **A step raises to stop the chain.** Nothing after it runs, so the batch's
  offsets stay uncommitted and Kafka delivers the batch again; the ledger makes
  whatever was applied a no-op then. Raised on purpose: ``faults.Stopping`` (a stop
  asked for while waiting out an outage) and ``DeadLetterLimitExceeded`` (a consumer
  refusing nearly everything stops before it dead-letters or commits). A failing
  message is never raised: it becomes a dead letter.
- **A batch is immutable, and each step hands on what is left to do.** A step
  returns a new ``Batch`` (``dataclasses.replace``) with what it consumed emptied
  and what it produced added: ``records`` (polled) -> ``todo`` and ``dead``
  (decoded, and refused while decoding) -> ``dead`` (applied, or refused while
  applying) -> nothing (dead letters acknowledged by the topic and recorded).
- **A batch carries its own committable offsets**, fixed when it was polled: per
  partition, one past its last record. Only ``Commit``, the last step, commits
  them, and it refuses a batch that still holds work.

Imports aiokafka, asyncpg, ``runtime.settings``, ``schemas`` and the consumers'
modules each step stands for: ``decode``, ``unit_of_work`` (and ``plan``, its
result's type), ``dead_letter``, ``statements`` (the ledger of dead letters),
``faults``, ``metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from consumers import metrics, statements
from consumers.dead_letter import DeadLetter, DeadLetterLimit, DeadLetterSink
from consumers.decode import decode_records, letter_for
from consumers.faults import Backoff, Fault, classify
from consumers.plan import Plan
from consumers.unit_of_work import EventTypeCache, apply_batch
from runtime.settings import Settings
from schemas.messages import WriteMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Batch:
    """One poll's records on their way through the chain (see the module's docstring)."""

    records: list[Any]  # polled, not decoded yet
    offsets: dict[TopicPartition, int]  # what committing the batch commits
    started: float  # time.perf_counter() at the poll
    # Kafka's timestamp (ms) of each partition's last record: how recent the commit is.
    newest: dict[TopicPartition, int] = field(default_factory=dict)
    messages: int = 0  # messages the records held, decoded or not (the dead-letter limit)
    todo: list[tuple[Any, WriteMessage]] = field(default_factory=list)  # to apply, in order
    dead: list[DeadLetter] = field(default_factory=list)  # to dead-letter

    @classmethod
    def polled(cls, records: dict[TopicPartition, list[Any]]) -> Batch:
        """The batch of what ``AIOKafkaConsumer.getmany`` returned."""
        return cls(
            records=[
                record for partition_records in records.values() for record in partition_records
            ],
            offsets={tp: recs[-1].offset + 1 for tp, recs in records.items()},
            started=time.perf_counter(),
            newest={tp: recs[-1].timestamp for tp, recs in records.items()},
        )


class Step(Protocol):
    """The step interface: see the module's docstring."""

    async def __call__(self, batch: Batch) -> Batch: ...


class Decode:
    """Records to messages; what cannot be decoded or breaks a rule becomes a dead letter."""

    async def __call__(self, batch: Batch) -> Batch:
        todo, dead = decode_records(batch.records)
        metrics.polled(len(batch.records), len(todo) + len(dead))
        return replace(batch, records=[], todo=todo, dead=dead, messages=len(todo) + len(dead))


class Apply:
    """Applies the messages in order, one transaction (``unit_of_work``) per
    ``CONSUMER_MAX_RECORDS``; waits out the infrastructure, dead-letters what cannot apply.

    A failure is what ``faults.classify`` says: infrastructure is retried for as long
    as it takes, a concurrency abort ``MAX_TRANSACTION_RETRIES`` times; a failing
    message (or a batch that keeps aborting) is split until it is alone, and it
    becomes a dead letter while the others apply.
    """

    def __init__(self, pool: asyncpg.Pool, settings: Settings, stopping: asyncio.Event) -> None:
        self.pool = pool
        self.max_records = settings.consumer_max_records
        self.max_retries = settings.max_transaction_retries
        self.backoff = Backoff(stopping, settings.retry_backoff_max_s)
        self.event_types = EventTypeCache()
        self.window = timedelta(seconds=settings.email_open_window_s)

    async def __call__(self, batch: Batch) -> Batch:
        # A record may carry many messages: one transaction per max_records messages.
        dead = list(batch.dead)
        size = self.max_records
        for start in range(0, len(batch.todo), size):
            dead += await self.apply(batch.todo[start : start + size])
        return replace(batch, todo=[], dead=dead)

    async def apply(self, items: list[tuple[Any, WriteMessage]]) -> list[DeadLetter]:
        """Apply in order; returns dead letters for the messages that cannot apply."""
        try:
            await self._apply_with_retry([m for _, m in items])
            return []
        except Exception as exc:  # MESSAGE or spent ABORT: find the message at fault
            if len(items) == 1:
                record, message = items[0]
                log.warning(
                    "dead-lettering message %s: %s: %s",
                    message.id,
                    type(exc).__name__,
                    exc,
                    extra={"message_id": message.id, "team_id": message.team_id},
                )
                # A message from an array record is dead-lettered as itself alone.
                return [letter_for(record, message, f"{type(exc).__name__}: {exc}")]
        # Split to find the messages that cannot apply; the rest apply in order.
        middle = len(items) // 2
        dead = await self.apply(items[:middle])
        return dead + await self.apply(items[middle:])

    async def _apply_once(self, messages: list[WriteMessage]) -> Plan | None:
        conn = await self.pool.acquire()
        try:
            return await apply_batch(conn, messages, self.event_types, self.window)
        except Exception as exc:
            if classify(exc) is Fault.INFRASTRUCTURE and not conn.is_closed():
                # Broken, or silent (a statement timed out on it): never reset and
                # reuse it; the pool opens a fresh one for the retry.
                with contextlib.suppress(asyncpg.InterfaceError):  # released meanwhile
                    conn.terminate()
            raise
        finally:
            await self.pool.release(conn)

    async def _apply_with_retry(self, messages: list[WriteMessage]) -> None:
        """Apply in one transaction; raises only for a ``Fault.MESSAGE`` (or a spent ABORT)."""
        attempt = 0
        while True:
            try:
                plan = await self._apply_once(messages)
                if plan is not None:
                    metrics.record_plan(plan, len(messages))
                return
            except Exception as exc:
                fault = classify(exc)
                if fault is Fault.MESSAGE:
                    raise
                attempt += 1
                metrics.RETRIES.labels(type(exc).__name__).inc()
                if fault is Fault.ABORT and attempt >= self.max_retries:
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
                await self.backoff.wait(attempt)


class SendDeadLetters:
    """Checks the dead-letter limit, then publishes the batch's dead letters and
    records their ids in the ledger, waiting out outages of either."""

    def __init__(
        self, sink: DeadLetterSink, pool: asyncpg.Pool, limit: DeadLetterLimit, backoff: Backoff
    ) -> None:
        self.sink = sink
        self.pool = pool
        self.limit = limit
        self.backoff = backoff

    async def __call__(self, batch: Batch) -> Batch:
        # Before anything is dead-lettered or committed: a consumer refusing nearly
        # everything stops here, and the batch stays in Kafka.
        self.limit.check(batch.messages, len(batch.dead))
        dead = batch.dead
        if dead:
            ids = [d.message_id for d in dead if d.message_id]
            await self.backoff.until_done("sending dead letters", lambda: self.sink.send(dead))
            await self.backoff.until_done(
                "recording dead letters", lambda: statements.record_dead_letters(self.pool, ids)
            )
            metrics.dead_letters(dead)
        return replace(batch, dead=[])


class Commit:
    """Commits the batch's offsets: the last step, once nothing of the batch is left to do."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer

    async def __call__(self, batch: Batch) -> Batch:
        if batch.records or batch.todo or batch.dead:
            raise RuntimeError("a batch reached the commit step with work left to do")
        try:
            await self.consumer.commit(batch.offsets)
            metrics.committed(batch.newest)
        except (CommitFailedError, KafkaError) as exc:
            # The partitions moved to another consumer, or the broker is away; the
            # batch will be redelivered, and the ledger makes that a no-op.
            log.warning("offset commit failed (%s); the batch will be redelivered", exc)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - batch.started)
        await metrics.observe_lag(self.consumer)
        return batch
