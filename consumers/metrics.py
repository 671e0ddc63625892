"""Prometheus metrics of a consumer process (served when METRICS_PORT is set).

One job: the metrics and how a plan and a consumer's lag feed them. Imports
prometheus_client, and ``consumers.plan`` for its type only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from consumers.plan import Plan

APPLIED = Counter("ingest_consumer_messages_total", "Messages taken from Kafka and applied")
DISCARDED = Counter("ingest_consumer_discarded_total", "Events discarded by a rule", ["rule"])
DEAD_LETTERS = Counter(
    "ingest_consumer_dead_letters_total", "Messages sent to the dead-letter topic"
)
RETRIES = Counter("ingest_consumer_retries_total", "Batch transactions retried", ["reason"])
MERGES = Counter("ingest_consumer_merges_total", "Customers merged into another")
BATCH_SECONDS = Histogram(
    "ingest_consumer_batch_seconds",
    "Time to decode, apply and commit one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAG = Gauge("ingest_consumer_lag", "Records behind the end of the partition", ["partition"])


def record_plan(plan: Plan, size: int) -> None:
    APPLIED.inc(size)
    MERGES.inc(len(plan.merges))
    for (_team, rule, _day), count in plan.discarded.items():
        DISCARDED.labels(rule).inc(count)


async def observe_lag(consumer: Any) -> None:
    """Lag per assigned partition: the broker's high watermark minus our position."""
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is None:
            continue
        LAG.labels(str(tp.partition)).set(max(end - await consumer.position(tp), 0))
