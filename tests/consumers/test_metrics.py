"""The consumer metrics that need more than a scrape to check: a revoked partition's
gauges go away, and dead-letter reasons become a few labels."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from consumers import metrics


class HoldingConsumer:
    """The three calls ``observe_lag`` makes, over a chosen assignment."""

    def __init__(self, *partitions: int) -> None:
        self.partitions = {TopicPartition("metrics.test", p) for p in partitions}

    def assignment(self) -> set[TopicPartition]:
        return self.partitions

    def highwater(self, tp: TopicPartition) -> int:
        return 100

    async def position(self, tp: TopicPartition) -> int:
        return 40 + int(tp.partition)


def lag(partition: int) -> Any:
    labels = {"topic": "metrics.test", "partition": str(partition)}
    return REGISTRY.get_sample_value("ingest_consumer_lag_records", labels)


async def test_a_revoked_partitions_lag_is_removed_not_left_at_its_last_value() -> None:
    await metrics.observe_lag(HoldingConsumer(0, 1))
    metrics.committed({TopicPartition("metrics.test", 1): 1_700_000_000_000})
    assert (lag(0), lag(1)) == (60, 59)

    await metrics.observe_lag(HoldingConsumer(0))  # partition 1 went to another worker
    assert (lag(0), lag(1)) == (60, None)
    committed = REGISTRY.get_sample_value(
        "ingest_consumer_last_committed_timestamp_seconds",
        {"topic": "metrics.test", "partition": "1"},
    )
    assert committed is None


def test_dead_letter_reasons_become_a_few_labels() -> None:
    assert metrics.reason_label("undecodable message: expected '}'") == "undecodable"
    assert metrics.reason_label("empty array of messages") == "undecodable"
    assert metrics.reason_label("unsupported wire version 9") == "unsupported_version"
    assert metrics.reason_label("UntranslatableCharacterError: NUL") == "apply_failed"
    assert metrics.reason_label("identifiers: no usable identifier") == "refused"
