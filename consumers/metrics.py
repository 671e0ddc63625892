"""Prometheus metrics of a consumer worker (served when METRICS_PORT is set).

One job: the metrics and how a batch, a plan and a consumer's position feed them.
The list with each metric's meaning is docs/operations.md, "Metrics". Imports
prometheus_client, and ``consumers.plan`` and ``consumers.dead_letter`` for their
types only.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from aiokafka import TopicPartition

    from consumers.dead_letter import DeadLetter
    from consumers.plan import Plan

APPLIED = Counter("ingest_consumer_messages_total", "Messages taken from Kafka and applied")
RECORDS = Counter(
    "ingest_consumer_records_total", "Kafka records polled (a record holds one or more messages)"
)
DISCARDED = Counter("ingest_consumer_discarded_total", "Events discarded by a rule", ["rule"])
DEAD_LETTERS = Counter(
    "ingest_consumer_dead_letters_total",
    "Messages sent to the dead-letter topic, by reason: undecodable, unsupported_version, "
    "refused (breaks a rule of the message format), apply_failed (PostgreSQL refused it)",
    ["reason"],
)
RETRIES = Counter(
    "ingest_consumer_retries_total", "Batch transactions retried, by the error's type", ["reason"]
)
MERGES = Counter("ingest_consumer_merges_total", "Customers merged into another")
BATCH_SECONDS = Histogram(
    "ingest_consumer_batch_duration_seconds",
    "Time to decode, apply and commit one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_MESSAGES = Histogram(
    "ingest_consumer_batch_messages",
    "Messages in one polled batch",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 50000),
)
LAG = Gauge(
    "ingest_consumer_lag_records",
    "Records between this worker's position and the end of each partition it holds "
    "(what KEDA's Kafka scaler sees; a record holds one or more messages)",
    ["topic", "partition"],
)
LAST_COMMITTED = Gauge(
    "ingest_consumer_last_committed_timestamp_seconds",
    "Kafka timestamp of the newest record whose offset this worker committed, per "
    "partition it holds: time() minus it is how old the newest applied write is",
    ["topic", "partition"],
)
RESTARTS = Counter(
    "ingest_consumer_restarts_total",
    "Workers restarted by the supervisor, by worker and cause (exit_N, signal_NAME, "
    "not_started); served on SUPERVISOR_METRICS_PORT",
    ["worker", "cause"],
)
for _reason in ("undecodable", "unsupported_version", "refused", "apply_failed"):
    DEAD_LETTERS.labels(_reason)

# The partitions whose gauges this worker shows: a revoked one's are removed.
_shown: set[tuple[str, str]] = set()
_APPLY_FAILURE = re.compile(r"[A-Z][A-Za-z0-9]*: ")


def record_plan(plan: Plan, size: int) -> None:
    APPLIED.inc(size)
    MERGES.inc(len(plan.merges))
    for (_team, rule, _day), count in plan.discarded.items():
        DISCARDED.labels(rule).inc(count)


def polled(records: int, messages: int) -> None:
    RECORDS.inc(records)
    BATCH_MESSAGES.observe(messages)


def reason_label(reason: str) -> str:
    """The ``reason`` label of a dead letter (its reason is free text)."""
    if reason.startswith(("undecodable", "empty array")):
        return "undecodable"
    if reason.startswith("unsupported wire version"):
        return "unsupported_version"
    if _APPLY_FAILURE.match(reason):  # "UniqueViolationError: ...", from the Apply step
        return "apply_failed"
    return "refused"


def dead_letters(letters: Iterable[DeadLetter]) -> None:
    for letter in letters:
        DEAD_LETTERS.labels(reason_label(letter.reason)).inc()


def committed(newest: Mapping[TopicPartition, int]) -> None:
    """The Kafka timestamps (ms) of the newest records just committed, per partition."""
    for tp, timestamp_ms in newest.items():
        LAST_COMMITTED.labels(tp.topic, str(tp.partition)).set(timestamp_ms / 1000)


async def observe_lag(consumer: Any) -> None:
    """Lag per assigned partition (the broker's high watermark minus our position);
    the gauges of partitions no longer assigned are removed, not left at their last
    value (another worker reports them now)."""
    held = set()
    for tp in consumer.assignment():
        labels = (tp.topic, str(tp.partition))
        held.add(labels)
        end = consumer.highwater(tp)
        if end is not None:
            LAG.labels(*labels).set(max(end - await consumer.position(tp), 0))
    for labels in _shown - held:
        for gauge in (LAG, LAST_COMMITTED):
            with contextlib.suppress(KeyError):  # never set
                gauge.remove(*labels)
    _shown.clear()
    _shown.update(held)
