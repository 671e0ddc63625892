"""The consumer loop: poll a batch, run it through the chain of steps, repeat.

One job: the worker process's lifetime. It opens the clients (PostgreSQL pool,
Kafka consumer, dead-letter producer, health port), builds the chain of the
consumer it runs (``consumers.registry``), feeds every polled batch through it
(``consumers.steps``: decode -> apply -> dead-letter -> commit), prunes the
ledger now and then, and stops cleanly. Offsets are committed only by the last
step, after the PostgreSQL transactions that applied the batch committed; a crash
in between redelivers the batch, and ``processed_messages`` makes the second
application a no-op. Imports the clients, ``runtime`` and the consumers' modules
it wires together, never ``unit_of_work`` or ``statements`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from consumers import metrics, timestamps
from consumers.dead_letter import DeadLetterLimitExceeded
from consumers.exit_codes import STOPPED_FOR_A_PERSON
from consumers.faults import Backoff, Stopping
from consumers.lanes import Lane
from consumers.ledger import prune_unless_busy
from consumers.registry import Clients, ConsumerSpec, writes
from consumers.steps import Batch, Step
from runtime.gc import tune_gc
from runtime.health_server import HealthServer
from runtime.kafka import acked_producer, consumer_options, described
from runtime.settings import SESSION_TIMEOUT_MS, Settings
from runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, spec: ConsumerSpec, settings: Settings, http_port: int = 0) -> None:
        self.spec = spec
        self.settings = settings
        self.http_port = http_port
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        s, spec = self.settings, self.spec
        # min_size=0: no connection is opened up front, so a consumer starts (and
        # waits in the retry loops) while PostgreSQL is still down.
        pool = await asyncpg.create_pool(
            s.database_url,
            min_size=0,
            max_size=2,
            init=timestamps.install,
            # A connection that goes silent (its host gone, a middlebox dropping it)
            # would hold a batch forever: a statement that takes this long is
            # treated as an outage, its connection dropped and the batch retried.
            timeout=s.consumer_statement_timeout_s,
            command_timeout=s.consumer_statement_timeout_s,
            # The server side of such a connection stays in its transaction, holding
            # the rows it locked, until PostgreSQL ends it: a consumer's transaction
            # is never idle for long, so one that is was abandoned.
            server_settings={
                "idle_in_transaction_session_timeout": str(
                    int(s.consumer_statement_timeout_s * 1000)
                )
            },
        )
        consumer, producer = kafka_clients(spec, s)
        health = HealthServer(
            self.http_port,
            {"kafka": consumer.topics, "postgres": lambda: pool.fetchval("SELECT 1")},
        )
        backoff = Backoff(self._stopping, s.retry_backoff_max_s)
        # Each resource is stopped, last started first, whichever step a stop or a
        # failure interrupts.
        async with contextlib.AsyncExitStack() as started:
            started.push_async_callback(pool.close)
            if self.http_port:
                await health.start()
                started.push_async_callback(health.stop)
            try:
                await backoff.until_done(f"connecting to Kafka at {described(s)}", consumer.start)
                started.push_async_callback(consumer.stop)
                await backoff.until_done("connecting the dead-letter producer", producer.start)
                started.push_async_callback(producer.stop)
                if s.ledger_retention_days:
                    pruning = asyncio.create_task(self._prune_ledger_periodically(pool))
                    started.push_async_callback(cancel_and_wait, pruning)
                await self._consume(
                    consumer, spec.chain(Clients(pool, consumer, producer, self._stopping))
                )
            except Stopping:
                log.info(
                    "stopped while waiting for PostgreSQL or Kafka; the batch is not committed"
                )

    async def _consume(self, consumer: AIOKafkaConsumer, chain: list[Step]) -> None:
        """Poll a batch, pass it down the chain (commit last), until asked to stop."""
        s, spec = self.settings, self.spec
        log.info("consumer started on %s (group %s)", spec.topic, spec.group)
        while not self._stopping.is_set():
            polled = await consumer.getmany(
                timeout_ms=s.consumer_poll_timeout_ms, max_records=spec.max_records
            )
            if not polled:
                await metrics.observe_lag(consumer)
                continue
            started = time.perf_counter()
            batch = Batch.polled(polled)
            for step in chain:
                batch = await step(batch)
            if spec.busy_share < 1:
                busy = time.perf_counter() - started
                await self._rest(busy * (1 / spec.busy_share - 1))

    async def _rest(self, seconds: float) -> None:
        """Wait ``seconds``, or less if asked to stop (the overflow lane's share)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

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


def kafka_clients(spec: ConsumerSpec, s: Settings) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
    """A worker's consumer of ``spec``'s topic and its dead-letter producer, not started."""
    options = consumer_options(s)
    consumer = AIOKafkaConsumer(
        spec.topic,
        **options,
        group_id=spec.group,
        client_id="ingest-consumer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
        fetch_min_bytes=s.consumer_fetch_min_bytes,
        fetch_max_wait_ms=s.consumer_fetch_max_wait_ms,
        # Stated, not left to aiokafka: CONSUMER_REQUEST_TIMEOUT_MS is bounded by it.
        session_timeout_ms=SESSION_TIMEOUT_MS,
    )
    producer = acked_producer(
        s, "ingest-consumer-dlq", request_timeout_ms=options["request_timeout_ms"]
    )
    return consumer, producer


async def run_worker(settings: Settings, lane: Lane = "main", http_port: int = 0) -> None:
    """Run one worker of ``lane`` until SIGTERM/SIGINT; ``http_port``: its metrics and
    health (0: none)."""
    tune_gc()
    worker = Worker(writes(settings, lane), settings, http_port)
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
